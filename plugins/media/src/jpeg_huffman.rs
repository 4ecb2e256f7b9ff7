//! Lossless re-encoding of a baseline JPEG's entropy-coded data with the
//! standard Huffman tables (ITU-T T.81 Annex K.3).
//!
//! RTP/JPEG (RFC 2435) cannot carry Huffman tables: the receiver rebuilds
//! the headers with the standard ones. Many encoders use their own tables
//! (ffmpeg's mjpeg encoder writes "optimal" tables by default, and so do
//! many HTTP-MJPEG cameras). [`to_standard_huffman`] decodes every DC and
//! AC run/size symbol and its extra bits with the image's own tables and
//! writes the same symbols and bits again with the standard tables: no DCT,
//! no requantisation, so the decoded pixels are bit-identical.
//!
//! Handled: baseline and extended sequential Huffman (SOF0/SOF1) with
//! 8-bit samples, 1 to 4 components with any sampling factors (4:2:0,
//! 4:2:2, 4:4:4, grayscale, ...), one scan (interleaved, or a single
//! component), restart intervals (DRI/RSTn). Progressive, lossless,
//! hierarchical and arithmetic-coded JPEGs, 12-bit samples and images
//! with several scans are refused with [`Error::Unsupported`].
//!
//! Sans-IO and bounded: every block consumes at least two bits of input
//! (or the scan is reported as truncated), so the work is linear in the
//! input size whatever the header claims; the output is capped at
//! [`MAX_SCAN_SIZE`].

use crate::error::{Error, Result};
use crate::rfc2435::STD_HUFFMAN;

const WHAT: &str = "JPEG Huffman re-encoding";

/// Largest re-encoded scan accepted (RFC 2435's fragment offset is 24
/// bits, so nothing larger can be sent anyway).
pub const MAX_SCAN_SIZE: usize = 1 << 24;

/// Most data units in one MCU of an interleaved scan (T.81 B.2.3).
const MAX_BLOCKS_PER_MCU: u32 = 10;

/// Codes up to this length are decoded with one table look-up.
const LOOKUP_BITS: u32 = 9;

/// Why a start-of-frame marker other than SOF0/SOF1 cannot be handled, or
/// `None` for SOF0/SOF1 and markers that are not SOF.
pub(crate) fn unsupported_sof(m: u8) -> Option<&'static str> {
    match m {
        0xC2 => Some("progressive JPEG (SOF2)"),
        0xC3 => Some("lossless JPEG (SOF3)"),
        0xC5..=0xC7 => Some("hierarchical JPEG (SOF5..SOF7)"),
        0xC9 | 0xCA | 0xCB | 0xCD | 0xCE | 0xCF => Some("arithmetic-coded JPEG (SOF9..SOF15)"),
        _ => None,
    }
}

/// A Huffman table read from a DHT segment, ready for decoding
/// (T.81 F.2.2.3 plus a look-up table for short codes).
#[derive(Clone)]
struct DecodeTable {
    /// Indexed by the next `LOOKUP_BITS` bits: `len << 8 | value`, or 0
    /// when the code is longer than `LOOKUP_BITS`.
    lookup: Vec<u16>,
    /// Per code length 0..=16: largest code, or -1 when there are none.
    maxcode: [i32; 17],
    mincode: [i32; 17],
    valptr: [i32; 17],
    vals: Vec<u8>,
}

impl DecodeTable {
    /// Build from BITS (code counts per length 1..=16) and HUFFVAL
    /// (T.81 Annex C); rejects tables whose codes do not fit.
    fn new(bits: &[u8; 16], vals: &[u8]) -> Result<Self> {
        let mut t = DecodeTable {
            lookup: vec![0; 1 << LOOKUP_BITS],
            maxcode: [-1; 17],
            mincode: [0; 17],
            valptr: [0; 17],
            vals: vals.to_vec(),
        };
        let mut code: i32 = 0;
        let mut k: i32 = 0;
        for len in 1..=16u32 {
            let n = i32::from(bits[len as usize - 1]);
            t.valptr[len as usize] = k;
            t.mincode[len as usize] = code;
            if n > 0 {
                if code + n > (1 << len) {
                    return Err(Error::invalid(WHAT, "Huffman table has too many codes"));
                }
                t.maxcode[len as usize] = code + n - 1;
                if len <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len;
                    for i in 0..n {
                        let value = *vals
                            .get((k + i) as usize)
                            .ok_or(Error::Truncated("JPEG DHT values"))?;
                        let first = ((code + i) as usize) << shift;
                        let entry = ((len as u16) << 8) | u16::from(value);
                        for slot in t.lookup.iter_mut().skip(first).take(1 << shift) {
                            *slot = entry;
                        }
                    }
                }
                code += n;
                k += n;
            }
            code <<= 1;
        }
        if k as usize > vals.len() {
            return Err(Error::Truncated("JPEG DHT values"));
        }
        Ok(t)
    }

    #[inline]
    fn decode(&self, r: &mut BitReader<'_>) -> Result<u8> {
        let peek = r.peek16();
        let e = self
            .lookup
            .get((peek >> (16 - LOOKUP_BITS)) as usize)
            .copied()
            .unwrap_or(0);
        if e != 0 {
            r.consume(u32::from(e >> 8))?;
            return Ok(e as u8);
        }
        for len in LOOKUP_BITS + 1..=16 {
            let code = (peek >> (16 - len)) as i32;
            let l = len as usize;
            if code <= self.maxcode[l] && code >= self.mincode[l] {
                let idx = self.valptr[l] + code - self.mincode[l];
                let v = *self
                    .vals
                    .get(idx as usize)
                    .ok_or_else(|| Error::invalid(WHAT, "bad Huffman code"))?;
                r.consume(len)?;
                return Ok(v);
            }
        }
        Err(Error::invalid(WHAT, "bad Huffman code"))
    }
}

/// Entropy-coded data reader: removes byte stuffing, stops at a marker.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Next bits, left-aligned; bits past `nbits` are zero.
    acc: u64,
    nbits: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            acc: 0,
            nbits: 0,
        }
    }

    #[inline]
    fn fill(&mut self) {
        while self.nbits <= 56 {
            let Some(&b) = self.data.get(self.pos) else {
                return;
            };
            if b == 0xFF {
                if self.data.get(self.pos + 1) != Some(&0) {
                    return; // a marker (or fill bytes before one)
                }
                self.pos += 2;
            } else {
                self.pos += 1;
            }
            self.acc |= u64::from(b) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    /// The next 16 bits; past the end of the data they read as 1s (the
    /// padding), but [`consume`](Self::consume) refuses to go there.
    #[inline]
    fn peek16(&mut self) -> u32 {
        if self.nbits < 16 {
            self.fill();
        }
        let mut v = (self.acc >> 48) as u32;
        if self.nbits < 16 {
            v |= 0xFFFF >> self.nbits;
        }
        v
    }

    #[inline]
    fn consume(&mut self, n: u32) -> Result<()> {
        if n > self.nbits {
            return Err(Error::Truncated("JPEG scan data"));
        }
        self.acc = if n == 64 { 0 } else { self.acc << n };
        self.nbits -= n;
        Ok(())
    }

    /// `n` (0..=16) raw bits.
    #[inline]
    fn bits(&mut self, n: u32) -> Result<u16> {
        if n == 0 {
            return Ok(0);
        }
        if self.nbits < n {
            self.fill();
        }
        let v = (self.acc >> (64 - n)) as u16;
        self.consume(n)?;
        Ok(v)
    }

    /// Drop what is left of the current segment and return the marker
    /// that ends it (fill bytes skipped), or `None` at the end of the data.
    fn next_marker(&mut self) -> Option<u8> {
        self.acc = 0;
        self.nbits = 0;
        loop {
            let i = self.pos + self.data.get(self.pos..)?.iter().position(|&b| b == 0xFF)?;
            let mut j = i + 1;
            while self.data.get(j) == Some(&0xFF) {
                j += 1;
            }
            let m = *self.data.get(j)?;
            self.pos = j + 1;
            if m != 0 {
                return Some(m);
            }
        }
    }
}

/// Entropy-coded data writer: byte stuffing, padding with 1s.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    nbits: u32,
    limit: usize,
}

impl BitWriter<'_> {
    /// Append the low `len` (0..=32) bits of `code`.
    #[inline]
    fn put(&mut self, code: u32, len: u32) {
        // Fewer than 32 bits are pending, so at most 63 after this.
        self.acc = (self.acc << len) | (u64::from(code) & ((1u64 << len) - 1));
        self.nbits += len;
        if self.nbits >= 32 {
            self.nbits -= 32;
            let word = ((self.acc >> self.nbits) as u32).to_be_bytes();
            if word.contains(&0xFF) {
                for b in word {
                    self.out.push(b);
                    if b == 0xFF {
                        self.out.push(0);
                    }
                }
            } else {
                self.out.extend_from_slice(&word);
            }
        }
    }

    /// Write out what is pending, the last byte padded with 1 bits
    /// (T.81 F.1.2.3).
    fn flush(&mut self) {
        let pad = (8 - self.nbits % 8) % 8;
        self.acc = (self.acc << pad) | ((1u64 << pad) - 1);
        self.nbits += pad;
        while self.nbits >= 8 {
            self.nbits -= 8;
            let b = (self.acc >> self.nbits) as u8;
            self.out.push(b);
            if b == 0xFF {
                self.out.push(0);
            }
        }
    }

    fn check(&self) -> Result<()> {
        if self.out.len() > self.limit {
            return Err(Error::invalid(WHAT, "re-encoded scan larger than 16 MiB"));
        }
        Ok(())
    }
}

/// Encoding table: code and length per symbol (length 0: not coded).
struct EncodeTable {
    code: [u16; 256],
    size: [u8; 256],
}

impl EncodeTable {
    fn new(bits: &[u8; 16], vals: &[u8]) -> Self {
        let mut t = EncodeTable {
            code: [0; 256],
            size: [0; 256],
        };
        let mut code = 0u16;
        let mut vals = vals.iter();
        for (i, &n) in bits.iter().enumerate() {
            for _ in 0..n {
                if let Some(&v) = vals.next() {
                    t.code[usize::from(v)] = code;
                    t.size[usize::from(v)] = i as u8 + 1;
                }
                code = code.wrapping_add(1);
            }
            code = code.wrapping_shl(1);
        }
        t
    }

    /// Write the code of `symbol` followed by `extra` bits of `bits`.
    #[inline]
    fn put(&self, w: &mut BitWriter<'_>, symbol: u8, bits: u16, extra: u8) -> Result<()> {
        let size = self.size[usize::from(symbol)];
        if size == 0 {
            return Err(Error::invalid(
                WHAT,
                format!("symbol 0x{symbol:02x} has no standard code"),
            ));
        }
        let extra = u32::from(extra);
        let bits = u32::from(bits) & ((1 << extra) - 1);
        let code = (u32::from(self.code[usize::from(symbol)]) << extra) | bits;
        w.put(code, u32::from(size) + extra);
        Ok(())
    }
}

/// One decoded item of the entropy-coded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symbol {
    /// DC size category and its extra bits, for scan component `comp`.
    Dc { comp: u8, size: u8, bits: u16 },
    /// AC run/size byte (0x00 EOB, 0xF0 ZRL) and its extra bits.
    Ac { comp: u8, rs: u8, bits: u16 },
    /// A restart marker RST`n` between intervals.
    Restart(u8),
}

/// One component of the frame (T.81 B.2.2).
#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
}

/// One component of the scan: index into the frame's components and the
/// tables it uses.
#[derive(Debug, Clone, Copy)]
struct ScanComponent {
    frame_index: usize,
    dc: usize,
    ac: usize,
}

/// Everything before the entropy-coded data.
struct Headers<'a> {
    /// SOI and every segment before SOS except DHT, as they were.
    kept: Vec<&'a [u8]>,
    components: Vec<Component>,
    width: u16,
    height: u16,
    restart_interval: u16,
    /// DC tables (class 0) then AC tables (class 1), ids 0..=3.
    tables: [[Option<DecodeTable>; 4]; 2],
    scan: Vec<ScanComponent>,
    /// Offset of the entropy-coded data.
    data_start: usize,
}

fn parse_dht(mut body: &[u8], tables: &mut [[Option<DecodeTable>; 4]; 2]) -> Result<()> {
    while let Some((&tc_th, rest)) = body.split_first() {
        let (class, id) = (usize::from(tc_th >> 4), usize::from(tc_th & 0x0F));
        if class > 1 || id > 3 {
            return Err(Error::invalid(WHAT, "DHT class or id"));
        }
        let (bits, rest) = rest
            .split_first_chunk::<16>()
            .ok_or(Error::Truncated("JPEG DHT"))?;
        let n: usize = bits.iter().map(|&b| usize::from(b)).sum();
        if n > 256 {
            return Err(Error::invalid(WHAT, "DHT with more than 256 codes"));
        }
        let (vals, rest) = rest
            .split_at_checked(n)
            .ok_or(Error::Truncated("JPEG DHT"))?;
        tables[class][id] = Some(DecodeTable::new(bits, vals)?);
        body = rest;
    }
    Ok(())
}

fn parse_headers(jpeg: &[u8]) -> Result<Headers<'_>> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(Error::invalid(WHAT, "no SOI"));
    }
    let mut h = Headers {
        kept: vec![&jpeg[..2]],
        components: Vec::new(),
        width: 0,
        height: 0,
        restart_interval: 0,
        tables: Default::default(),
        scan: Vec::new(),
        data_start: 0,
    };
    let mut pos = 2;
    loop {
        let seg = crate::jpeg_segment::segment_at(jpeg, pos, WHAT)?;
        let (m, segment, body) = (seg.marker, seg.whole, seg.body);
        pos = seg.next;
        if m == 0xD9 {
            return Err(Error::invalid(WHAT, "EOI before SOS"));
        }
        if let Some(why) = unsupported_sof(m) {
            return Err(Error::unsupported(WHAT, why));
        }
        match m {
            0xC4 => {
                parse_dht(body, &mut h.tables)?;
                continue; // replaced by the standard tables
            }
            0xCC => return Err(Error::unsupported(WHAT, "arithmetic coding (DAC)")),
            0xC0 | 0xC1 => {
                if !h.components.is_empty() {
                    return Err(Error::invalid(WHAT, "two SOF segments"));
                }
                let f = body.get(..6).ok_or(Error::Truncated("JPEG SOF"))?;
                if f[0] != 8 {
                    return Err(Error::unsupported(WHAT, "samples are not 8-bit"));
                }
                h.height = u16::from_be_bytes([f[1], f[2]]);
                h.width = u16::from_be_bytes([f[3], f[4]]);
                if h.height == 0 || h.width == 0 {
                    return Err(Error::unsupported(WHAT, "size 0 (height from DNL)"));
                }
                let nf = usize::from(f[5]);
                if !(1..=4).contains(&nf) {
                    return Err(Error::unsupported(WHAT, "number of components not 1..=4"));
                }
                let comps = body
                    .get(6..6 + 3 * nf)
                    .ok_or(Error::Truncated("JPEG SOF"))?;
                for c in comps.chunks_exact(3) {
                    let (hs, vs) = (c[1] >> 4, c[1] & 0x0F);
                    if !(1..=4).contains(&hs) || !(1..=4).contains(&vs) {
                        return Err(Error::invalid(WHAT, "sampling factor not 1..=4"));
                    }
                    h.components.push(Component {
                        id: c[0],
                        h: hs,
                        v: vs,
                    });
                }
            }
            0xDD => {
                let b = body.get(..2).ok_or(Error::Truncated("JPEG DRI"))?;
                h.restart_interval = u16::from_be_bytes([b[0], b[1]]);
            }
            0xDA => {
                if h.components.is_empty() {
                    return Err(Error::invalid(WHAT, "no SOF before SOS"));
                }
                let ns = usize::from(*body.first().ok_or(Error::Truncated("JPEG SOS"))?);
                if !(1..=4).contains(&ns) {
                    return Err(Error::invalid(WHAT, "SOS component count"));
                }
                let s = body
                    .get(1..4 + 2 * ns)
                    .ok_or(Error::Truncated("JPEG SOS"))?;
                for c in s[..2 * ns].chunks_exact(2) {
                    let frame_index = h
                        .components
                        .iter()
                        .position(|k| k.id == c[0])
                        .ok_or(Error::invalid(WHAT, "SOS names an unknown component"))?;
                    if h.scan.iter().any(|k| k.frame_index == frame_index) {
                        return Err(Error::invalid(WHAT, "SOS names a component twice"));
                    }
                    let (dc, ac) = (usize::from(c[1] >> 4), usize::from(c[1] & 0x0F));
                    if dc > 3 || ac > 3 {
                        return Err(Error::invalid(WHAT, "SOS table id"));
                    }
                    h.scan.push(ScanComponent {
                        frame_index,
                        dc,
                        ac,
                    });
                }
                let tail = &s[2 * ns..];
                if tail != [0, 63, 0] {
                    return Err(Error::unsupported(
                        WHAT,
                        "spectral selection or successive approximation (not sequential)",
                    ));
                }
                if ns < h.components.len() {
                    return Err(Error::unsupported(WHAT, "several scans"));
                }
                for c in &h.scan {
                    if h.tables[0][c.dc].is_none() || h.tables[1][c.ac].is_none() {
                        return Err(Error::invalid(WHAT, "scan uses an undefined Huffman table"));
                    }
                }
                h.data_start = pos;
                return Ok(h);
            }
            _ => {}
        }
        h.kept.push(segment);
    }
}

/// Blocks per MCU for each scan component, in order, and the MCU count.
fn geometry(h: &Headers<'_>) -> Result<(Vec<(usize, u32)>, u64)> {
    let hmax = h.components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = h.components.iter().map(|c| c.v).max().unwrap_or(1);
    let (w, ht) = (u64::from(h.width), u64::from(h.height));
    if let [only] = h.scan[..] {
        // Non-interleaved: one block per MCU, over the component's own
        // size (T.81 A.2.2).
        let c = h
            .components
            .get(only.frame_index)
            .ok_or(Error::invalid(WHAT, "component"))?;
        let cw = (w * u64::from(c.h)).div_ceil(u64::from(hmax));
        let ch = (ht * u64::from(c.v)).div_ceil(u64::from(vmax));
        return Ok((vec![(0, 1)], cw.div_ceil(8) * ch.div_ceil(8)));
    }
    let mut per = Vec::with_capacity(h.scan.len());
    let mut total = 0;
    for (i, s) in h.scan.iter().enumerate() {
        let c = h
            .components
            .get(s.frame_index)
            .ok_or(Error::invalid(WHAT, "component"))?;
        let n = u32::from(c.h) * u32::from(c.v);
        total += n;
        per.push((i, n));
    }
    if total > MAX_BLOCKS_PER_MCU {
        return Err(Error::invalid(WHAT, "more than 10 blocks per MCU"));
    }
    let mcus = w.div_ceil(8 * u64::from(hmax)) * ht.div_ceil(8 * u64::from(vmax));
    Ok((per, mcus))
}

/// Decode the entropy-coded data of the scan, calling `sink` for every
/// symbol. Returns the offset just past the data (at the marker after it,
/// or the end).
fn walk_scan(
    jpeg: &[u8],
    h: &Headers<'_>,
    mut sink: impl FnMut(Symbol) -> Result<()>,
) -> Result<usize> {
    let (per_mcu, mcus) = geometry(h)?;
    let data = jpeg.get(h.data_start..).unwrap_or(&[]);
    let mut r = BitReader::new(data);
    let ri = u64::from(h.restart_interval);
    let mut next_rst = 0u8;
    // (scan component, blocks per MCU, DC table, AC table)
    let mut units = Vec::with_capacity(per_mcu.len());
    for &(i, blocks) in &per_mcu {
        let sc = h.scan[i];
        let dc = h.tables[0][sc.dc]
            .as_ref()
            .ok_or_else(|| Error::invalid(WHAT, "no DC table"))?;
        let ac = h.tables[1][sc.ac]
            .as_ref()
            .ok_or_else(|| Error::invalid(WHAT, "no AC table"))?;
        units.push((i as u8, blocks, dc, ac));
    }
    for mcu in 0..mcus {
        if ri != 0 && mcu != 0 && mcu % ri == 0 {
            match r.next_marker() {
                Some(m) if m == 0xD0 + next_rst => {}
                Some(m) if (0xD0..=0xD7).contains(&m) => {
                    return Err(Error::invalid(WHAT, "restart marker out of sequence"));
                }
                Some(_) | None => return Err(Error::Truncated("JPEG restart interval")),
            }
            sink(Symbol::Restart(next_rst))?;
            next_rst = (next_rst + 1) & 7;
        }
        for &(comp, blocks, dc, ac) in &units {
            for _ in 0..blocks {
                let size = dc.decode(&mut r)?;
                if size > 11 {
                    return Err(Error::invalid(WHAT, "DC difference category > 11"));
                }
                let bits = r.bits(u32::from(size))?;
                sink(Symbol::Dc { comp, size, bits })?;
                let mut k = 1u32;
                while k < 64 {
                    let rs = ac.decode(&mut r)?;
                    let (run, size) = (u32::from(rs >> 4), rs & 0x0F);
                    if size == 0 {
                        match run {
                            0 => {
                                sink(Symbol::Ac { comp, rs, bits: 0 })?;
                                break;
                            }
                            15 => {
                                k += 16;
                                if k > 64 {
                                    return Err(Error::invalid(WHAT, "ZRL past coefficient 63"));
                                }
                                sink(Symbol::Ac { comp, rs, bits: 0 })?;
                                continue;
                            }
                            _ => {
                                return Err(Error::invalid(
                                    WHAT,
                                    format!("AC symbol 0x{rs:02x} is not baseline"),
                                ))
                            }
                        }
                    }
                    if size > 10 {
                        return Err(Error::invalid(WHAT, "AC coefficient category > 10"));
                    }
                    k += run;
                    if k > 63 {
                        return Err(Error::invalid(WHAT, "AC run past coefficient 63"));
                    }
                    let bits = r.bits(u32::from(size))?;
                    sink(Symbol::Ac { comp, rs, bits })?;
                    k += 1;
                }
            }
        }
    }
    // Whatever follows the last MCU up to the next marker is padding.
    match r.next_marker() {
        None | Some(0xD9) => {}
        Some(0xD0..=0xD7) => return Err(Error::invalid(WHAT, "restart marker after the last MCU")),
        Some(_) => return Err(Error::unsupported(WHAT, "several scans")),
    }
    Ok(h.data_start + r.pos)
}

fn segment(out: &mut Vec<u8>, m: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, m]);
    let len = u16::try_from(body.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// Re-encode a baseline JPEG with the standard Huffman tables (T.81 K.3),
/// writing the complete new image (SOI .. EOI) to `out`, which is cleared
/// first.
///
/// The new image keeps every segment before SOS except DHT, in order,
/// followed by the four standard DHT tables and an SOS where the first
/// frame component uses tables 0 (luminance) and the others tables 1
/// (chrominance), as RFC 2435 receivers assume. Trailing data after the
/// scan is dropped. On error `out` holds nothing useful.
pub fn to_standard_huffman(jpeg: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let h = parse_headers(jpeg)?;
    let enc = [
        [
            EncodeTable::new(STD_HUFFMAN[0].1, STD_HUFFMAN[0].2),
            EncodeTable::new(STD_HUFFMAN[1].1, STD_HUFFMAN[1].2),
        ],
        [
            EncodeTable::new(STD_HUFFMAN[2].1, STD_HUFFMAN[2].2),
            EncodeTable::new(STD_HUFFMAN[3].1, STD_HUFFMAN[3].2),
        ],
    ];
    // Luminance tables for the first frame component, chrominance else.
    let table_of: Vec<usize> = h
        .scan
        .iter()
        .map(|s| usize::from(s.frame_index != 0))
        .collect();

    out.reserve(jpeg.len() + 1024);
    for part in &h.kept {
        out.extend_from_slice(part);
    }
    for (class_id, bits, vals) in STD_HUFFMAN {
        let mut body = Vec::with_capacity(17 + vals.len());
        body.push(class_id);
        body.extend_from_slice(bits);
        body.extend_from_slice(vals);
        segment(out, 0xC4, &body);
    }
    let mut sos = vec![h.scan.len() as u8];
    for (s, &t) in h.scan.iter().zip(&table_of) {
        let id = h.components.get(s.frame_index).map_or(0, |c| c.id);
        sos.extend_from_slice(&[id, (t as u8) << 4 | t as u8]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    segment(out, 0xDA, &sos);

    let limit = out.len() + MAX_SCAN_SIZE;
    let mut w = BitWriter {
        out,
        acc: 0,
        nbits: 0,
        limit,
    };
    let mut count = 0u32;
    walk_scan(jpeg, &h, |sym| {
        match sym {
            Symbol::Dc { comp, size, bits } => {
                enc[table_of[usize::from(comp)]][0].put(&mut w, size, bits, size)?;
            }
            Symbol::Ac { comp, rs, bits } => {
                enc[table_of[usize::from(comp)]][1].put(&mut w, rs, bits, rs & 0x0F)?;
            }
            Symbol::Restart(n) => {
                w.flush();
                w.out.extend_from_slice(&[0xFF, 0xD0 + n]);
            }
        }
        count += 1;
        if count.is_multiple_of(4096) {
            w.check()?;
        }
        Ok(())
    })?;
    w.flush();
    w.check()?;
    w.out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc2435::parse_jpeg;

    fn load(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every symbol of the scan, decoded with the image's own tables.
    fn symbols(jpeg: &[u8]) -> Result<Vec<Symbol>> {
        let h = parse_headers(jpeg)?;
        let mut v = Vec::new();
        walk_scan(jpeg, &h, |s| {
            v.push(s);
            Ok(())
        })?;
        Ok(v)
    }

    fn reencode(jpeg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        to_standard_huffman(jpeg, &mut out).unwrap();
        out
    }

    /// Whether every DHT in the image is one of the standard tables.
    fn dht_standard(jpeg: &[u8]) -> bool {
        let mut pos = 2;
        while let (Some(&0xFF), Some(&m)) = (jpeg.get(pos), jpeg.get(pos + 1)) {
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if m == 0xC4 {
                let body = &jpeg[pos + 4..pos + 2 + len];
                let std = STD_HUFFMAN.iter().find(|t| t.0 == body[0]).unwrap();
                if &body[1..17] != std.1 || &body[17..] != std.2 {
                    return false;
                }
            }
            if m == 0xDA {
                break;
            }
            pos += 2 + len;
        }
        true
    }

    /// (file, components, restart interval, RFC 2435 can send it).
    /// ffmpeg writes 4:2:2 as Y 2x2 + chroma 1x2, which RFC 2435 type 0
    /// (Y 2x1 + chroma 1x1) cannot describe.
    const FIXTURES: [(&str, usize, u16, bool); 8] = [
        ("jpeg_opt_420.jpg", 3, 0, true),
        ("jpeg_opt_422.jpg", 3, 0, false),
        ("jpeg_opt_444.jpg", 3, 0, false),
        ("jpeg_opt_gray.jpg", 1, 0, false),
        ("jpeg_opt_420_rst.jpg", 3, 2, true),
        ("jpeg_opt_420_100x74_rst.jpg", 3, 2, true),
        ("jpeg_opt_422_rst.jpg", 3, 20, false),
        ("jpeg_opt_gray_100x74_rst.jpg", 1, 7, false),
    ];

    #[test]
    fn fixtures_round_trip() {
        for (file, ncomp, ri, rtp) in FIXTURES {
            let orig = load(file);
            assert!(!dht_standard(&orig), "{file} should have its own tables");
            let h = parse_headers(&orig).unwrap();
            assert_eq!(h.components.len(), ncomp, "{file}");
            assert_eq!(h.restart_interval, ri, "{file}");
            let out = reencode(&orig);
            assert!(dht_standard(&out), "{file}");
            // Same symbols and extra bits, decoded with the new tables.
            let a = symbols(&orig).unwrap();
            let b = symbols(&out).unwrap();
            assert!(a.len() > 1000, "{file}");
            assert_eq!(
                a.iter().filter(|s| matches!(s, Symbol::Restart(_))).count() > 0,
                ri != 0,
                "{file}"
            );
            assert!(a == b, "{file}: symbols differ");
            // A fixed point, and the headers survive.
            assert_eq!(reencode(&out), out, "{file}");
            assert!(out.ends_with(&[0xFF, 0xD9]));
            let (po, pn) = (parse_jpeg(&orig), parse_jpeg(&out));
            assert_eq!(po.is_ok(), rtp, "{file}: {po:?}");
            if let (Ok(po), Ok(pn)) = (po, pn) {
                assert!(!po.standard_huffman, "{file}");
                assert!(pn.standard_huffman, "{file}");
                assert_eq!(po.params, pn.params, "{file}");
            }
        }
    }

    #[test]
    fn matches_ffmpeg_default_tables() {
        // ffmpeg encodes the same coefficients whatever its Huffman
        // setting, so re-encoding the optimal-table image must give the
        // exact scan ffmpeg wrote with `-huffman default` (padding
        // included).
        let out = reencode(&load("jpeg_opt_420.jpg"));
        let std = load("jpeg_std_420.jpg");
        assert_eq!(
            parse_jpeg(&out).unwrap().scan,
            parse_jpeg(&std).unwrap().scan
        );
        // And re-encoding a standard-table image changes nothing.
        let again = reencode(&std);
        assert_eq!(
            parse_jpeg(&again).unwrap().scan,
            parse_jpeg(&std).unwrap().scan
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let orig = load("jpeg_opt_420.jpg");
        let mut out = Vec::new();
        // Progressive: SOF0 turned into SOF2.
        let sof = orig.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        for (m, word) in [
            (0xC2, "progressive"),
            (0xC9, "arithmetic"),
            (0xC3, "lossless"),
        ] {
            let mut p = orig.clone();
            p[sof + 1] = m;
            let e = to_standard_huffman(&p, &mut out).unwrap_err();
            assert!(
                matches!(e, Error::Unsupported { .. }) && e.to_string().contains(word),
                "{e}"
            );
        }
        // 12-bit samples.
        let mut p = orig.clone();
        p[sof + 4] = 12;
        assert!(matches!(
            to_standard_huffman(&p, &mut out),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let orig = load("jpeg_opt_420_100x74_rst.jpg");
        let mut out = Vec::new();
        // Every truncation: an error or a (shorter) image, never a panic.
        for n in (0..orig.len()).step_by(7) {
            let _ = to_standard_huffman(&orig[..n], &mut out);
        }
        // Scan cut short.
        let sos = orig.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        assert!(to_standard_huffman(&orig[..sos + 200], &mut out).is_err());
        // Corrupt bytes everywhere.
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut p = orig.clone();
            for _ in 0..3 {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (state >> 8) as usize % p.len();
                p[i] = (state >> 24) as u8;
            }
            if to_standard_huffman(&p, &mut out).is_ok() {
                // Whatever came out decodes with the standard tables.
                symbols(&out).unwrap();
            }
        }
        // A restart marker out of sequence.
        let mut p = orig.clone();
        let rst = p[sos..].windows(2).position(|w| w == [0xFF, 0xD1]).unwrap() + sos;
        p[rst + 1] = 0xD5;
        assert!(to_standard_huffman(&p, &mut out).is_err());
    }

    #[test]
    fn bad_tables_are_rejected() {
        // 3 codes of length 1 cannot exist.
        let mut bits = [0u8; 16];
        bits[0] = 3;
        assert!(DecodeTable::new(&bits, &[1, 2, 3]).is_err());
        // Values missing.
        bits[0] = 2;
        assert!(DecodeTable::new(&bits, &[1]).is_err());
        assert!(DecodeTable::new(&bits, &[1, 2]).is_ok());
    }

    #[test]
    fn writer_stuffs_and_pads() {
        let mut v = Vec::new();
        let mut w = BitWriter {
            out: &mut v,
            acc: 0,
            nbits: 0,
            limit: usize::MAX,
        };
        w.put(0xFF, 8);
        w.put(0b101, 3);
        w.flush();
        assert_eq!(v, [0xFF, 0x00, 0b1011_1111]);
        let mut r = BitReader::new(&v);
        assert_eq!(r.bits(8).unwrap(), 0xFF);
        assert_eq!(r.bits(3).unwrap(), 0b101);
        assert_eq!(r.bits(5).unwrap(), 0b11111);
        assert!(r.bits(1).is_err());
    }
}
