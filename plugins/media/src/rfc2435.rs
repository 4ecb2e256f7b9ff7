//! JPEG over RTP (RFC 2435) helpers shared by the depacketizer and the
//! packetizer: the default tables, JPEG header reconstruction (Appendix A
//! and B) and extraction of what RTP carries from a JFIF image.

use crate::error::{Error, Result};
use crate::jpeg_huffman::unsupported_sof;

/// RFC 2435 Appendix A default luma table (ITU-T T.81 Table K.1), in
/// zig-zag order as it appears in a DQT segment.
const LUMA_Q: [u8; 64] = [
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
    29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81,
    87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
];

/// Default chroma table (T.81 Table K.2), zig-zag order.
const CHROMA_Q: [u8; 64] = {
    let mut t = [99u8; 64];
    let head = [17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66];
    let mut i = 0;
    while i < head.len() {
        t[i] = head[i];
        i += 1;
    }
    t
};

/// Standard Huffman tables (T.81 K.3): (class/id byte, BITS, HUFFVAL).
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// The four standard tables as (Tc<<4 | Th, bits, vals).
pub(crate) const STD_HUFFMAN: [(u8, &[u8; 16], &[u8]); 4] = [
    (0x00, &DC_LUMA_BITS, &DC_VALS),
    (0x10, &AC_LUMA_BITS, &AC_LUMA_VALS),
    (0x01, &DC_CHROMA_BITS, &DC_VALS),
    (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALS),
];

/// Quantization tables for a Q factor 1..=99 (RFC 2435 Appendix A
/// MakeTables): luma then chroma, 64 bytes each, zig-zag order.
pub fn default_qtables(q: u8) -> Vec<u8> {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 {
        5000 / factor
    } else {
        200 - factor * 2
    };
    LUMA_Q
        .iter()
        .chain(CHROMA_Q.iter())
        .map(|&v| ((u32::from(v) * scale + 50) / 100).clamp(1, 255) as u8)
        .collect()
}

/// What the RTP JPEG header describes about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegParams {
    /// RFC 2435 type without the restart bit: 0 (4:2:2) or 1 (4:2:0).
    pub kind: u8,
    /// Width in pixels (multiple of 8 on the wire).
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Restart interval in MCUs (0 = none; type + 64 on the wire).
    pub restart_interval: u16,
    /// Quantization tables, 64 bytes each (128 when 16-bit precision).
    pub qtables: Vec<u8>,
    /// Bit i set: table i has 16-bit precision.
    pub precision: u8,
}

fn marker(out: &mut Vec<u8>, m: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, m]);
    let len = u16::try_from(body.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// Build the JFIF header up to and including SOS (RFC 2435 Appendix B
/// MakeHeaders, plus an APP0 JFIF segment some decoders insist on).
pub fn make_headers(p: &JpegParams) -> Vec<u8> {
    let mut out = Vec::with_capacity(700);
    out.extend_from_slice(&[0xFF, 0xD8]);
    marker(
        &mut out,
        0xE0,
        &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
    );
    // DQT: one segment with every table; 8-bit tables are 64 bytes,
    // 16-bit ones 128 (T.81 B.2.4.1).
    let mut dqt = Vec::with_capacity(p.qtables.len() + 4);
    let mut rest = &p.qtables[..];
    let mut id = 0u8;
    while !rest.is_empty() && id < 4 {
        let wide = p.precision & (1 << id) != 0;
        let n = if wide { 128 } else { 64 };
        let Some((table, after)) = rest.split_at_checked(n) else {
            break;
        };
        dqt.push((u8::from(wide) << 4) | id);
        dqt.extend_from_slice(table);
        rest = after;
        id += 1;
    }
    marker(&mut out, 0xDB, &dqt);
    if p.restart_interval != 0 {
        marker(&mut out, 0xDD, &p.restart_interval.to_be_bytes());
    }
    // SOF0: 3 components; Y is 2x1 (type 0) or 2x2 (type 1), chroma 1x1.
    let chroma_q = u8::from(id > 1);
    let y_sampling = if p.kind == 0 { 0x21 } else { 0x22 };
    let [h1, h0] = p.height.to_be_bytes();
    let [w1, w0] = p.width.to_be_bytes();
    marker(
        &mut out,
        0xC0,
        &[
            8, h1, h0, w1, w0, 3, 1, y_sampling, 0, 2, 0x11, chroma_q, 3, 0x11, chroma_q,
        ],
    );
    for (class_id, bits, vals) in STD_HUFFMAN {
        let mut body = Vec::with_capacity(17 + vals.len());
        body.push(class_id);
        body.extend_from_slice(bits);
        body.extend_from_slice(vals);
        marker(&mut out, 0xC4, &body);
    }
    marker(&mut out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    out
}

/// A JFIF image split into what RFC 2435 transmits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedJpeg<'a> {
    /// Header fields and tables (luma table, then chroma table).
    pub params: JpegParams,
    /// Entropy-coded scan data, without the final EOI.
    pub scan: &'a [u8],
    /// False when a DHT segment differs from the standard tables, or the
    /// scan does not use them the way the headers an RFC 2435 receiver
    /// rebuilds do (one scan with the 3 components in frame order, Y on
    /// tables 0, Cb and Cr on tables 1). RFC 2435 cannot signal either:
    /// such an image must be re-encoded
    /// ([`to_standard_huffman`](crate::jpeg_huffman::to_standard_huffman)).
    pub standard_huffman: bool,
}

fn is_standard_dht(mut body: &[u8]) -> bool {
    while let Some((&class_id, rest)) = body.split_first() {
        let Some(std) = STD_HUFFMAN.iter().find(|t| t.0 == class_id) else {
            return false;
        };
        let Some((bits, rest)) = rest.split_first_chunk::<16>() else {
            return false;
        };
        let n: usize = bits.iter().map(|&b| usize::from(b)).sum();
        let Some((vals, rest)) = rest.split_at_checked(n) else {
            return false;
        };
        if bits != std.1 || vals != std.2 {
            return false;
        }
        body = rest;
    }
    true
}

/// Parse a baseline JPEG (SOF0/SOF1, 8-bit, 3 components, 4:2:2 or 4:2:0,
/// chroma components sharing one table) into RFC 2435 fields.
pub fn parse_jpeg(jpeg: &[u8]) -> Result<ParsedJpeg<'_>> {
    const WHAT: &str = "JPEG for RTP";
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(Error::invalid(WHAT, "no SOI"));
    }
    let mut tables: [Option<(bool, &[u8])>; 4] = [None; 4];
    let mut sof: Option<&[u8]> = None;
    let mut restart_interval = 0u16;
    let mut standard_huffman = true;
    let sos;
    let mut pos = 2;
    loop {
        let seg = crate::jpeg_segment::segment_at(jpeg, pos, WHAT)?;
        let (m, body) = (seg.marker, seg.body);
        pos = seg.next;
        if m == 0xD9 {
            return Err(Error::invalid(WHAT, "EOI before SOS"));
        }
        match m {
            0xDB => {
                // DQT: Pq/Tq then 64 or 128 bytes, repeated (T.81 B.2.4.1).
                let mut rest = body;
                while let Some((&pt, after)) = rest.split_first() {
                    let wide = pt >> 4 != 0;
                    let (t, after) = after
                        .split_at_checked(if wide { 128 } else { 64 })
                        .ok_or(Error::Truncated("JPEG DQT"))?;
                    if let Some(slot) = tables.get_mut(usize::from(pt & 0x0F)) {
                        *slot = Some((wide, t));
                    }
                    rest = after;
                }
            }
            0xC4 => standard_huffman &= is_standard_dht(body),
            0xDD => {
                let b = body.get(..2).ok_or(Error::Truncated("JPEG DRI"))?;
                restart_interval = u16::from_be_bytes([b[0], b[1]]);
            }
            0xC0 | 0xC1 => sof = Some(body),
            0xC2..=0xCF if m != 0xC4 && m != 0xC8 && m != 0xCC => {
                let why = unsupported_sof(m).unwrap_or("not baseline (SOF0/SOF1)");
                return Err(Error::unsupported(WHAT, why));
            }
            0xDA => {
                sos = body;
                break;
            }
            _ => {}
        }
    }
    let sof = sof.ok_or(Error::invalid(WHAT, "no SOF before SOS"))?;
    // SOF: P Y X Nf, then Nf x (C, HV, Tq).
    let f = sof
        .get(..15)
        .ok_or(Error::unsupported(WHAT, "not a 3-component image"))?;
    if f[0] != 8 || f[5] != 3 {
        return Err(Error::unsupported(WHAT, "need 8-bit, 3 components"));
    }
    let height = u16::from_be_bytes([f[1], f[2]]);
    let width = u16::from_be_bytes([f[3], f[4]]);
    let kind = match (f[7], f[10], f[13]) {
        (0x21, 0x11, 0x11) => 0,
        (0x22, 0x11, 0x11) => 1,
        _ => return Err(Error::unsupported(WHAT, "sampling is not 4:2:2 or 4:2:0")),
    };
    // The receiver's SOS: components 1, 2, 3 (ours in frame order) on
    // tables 0x00, 0x11, 0x11, sequential.
    let std_sos = [3, f[6], 0x00, f[9], 0x11, f[12], 0x11, 0, 63, 0];
    standard_huffman &= sos.get(..10) == Some(&std_sos[..]);
    if f[11] != f[14] {
        return Err(Error::unsupported(WHAT, "Cb and Cr use different tables"));
    }
    if width == 0 || height == 0 || width > 2040 || height > 2040 {
        return Err(Error::unsupported(WHAT, "size must be 1..=2040"));
    }
    let mut qtables = Vec::with_capacity(128);
    let mut precision = 0u8;
    for (i, tq) in [f[8], f[11]].into_iter().enumerate() {
        let (wide, t) = tables
            .get(usize::from(tq))
            .copied()
            .flatten()
            .ok_or(Error::invalid(WHAT, "missing quantization table"))?;
        precision |= u8::from(wide) << i;
        qtables.extend_from_slice(t);
    }
    // Scan data runs to the EOI at the end (trailing bytes ignored).
    let scan_all = jpeg.get(pos..).unwrap_or(&[]);
    let end = scan_all
        .windows(2)
        .rposition(|w| w == [0xFF, 0xD9])
        .unwrap_or(scan_all.len());
    Ok(ParsedJpeg {
        params: JpegParams {
            kind,
            width,
            height,
            restart_interval,
            qtables,
            precision,
        },
        scan: scan_all.get(..end).unwrap_or(&[]),
        standard_huffman,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(
            AC_LUMA_BITS.iter().map(|&b| usize::from(b)).sum::<usize>(),
            162
        );
        assert_eq!(
            AC_CHROMA_BITS
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>(),
            162
        );
        assert_eq!(
            DC_LUMA_BITS.iter().map(|&b| usize::from(b)).sum::<usize>(),
            12
        );
        assert_eq!(
            DC_CHROMA_BITS
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>(),
            12
        );
        // Q=50 is the unscaled table.
        let q50 = default_qtables(50);
        assert_eq!(&q50[..64], &LUMA_Q);
        assert_eq!(&q50[64..], &CHROMA_Q);
        assert!(default_qtables(99).iter().all(|&v| v >= 1));
    }

    #[test]
    fn headers_parse_back() {
        let p = JpegParams {
            kind: 1,
            width: 320,
            height: 240,
            restart_interval: 4,
            qtables: default_qtables(80),
            precision: 0,
        };
        let mut img = make_headers(&p);
        img.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56]);
        img.extend_from_slice(&[0xFF, 0xD9]);
        let parsed = parse_jpeg(&img).unwrap();
        assert_eq!(parsed.params, p);
        assert!(parsed.standard_huffman);
        assert_eq!(parsed.scan, &[0x12, 0x34, 0xFF, 0x00, 0x56]);
        for n in 0..img.len() {
            let _ = parse_jpeg(&img[..n]);
        }
        // Standard DHT but Cb on the luma tables: the receiver would use
        // the wrong ones.
        let sos = img.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        assert_eq!(img[sos + 8], 0x11);
        img[sos + 8] = 0x00;
        assert!(!parse_jpeg(&img).unwrap().standard_huffman);
    }
}
