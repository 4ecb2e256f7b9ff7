//! AV1 (AOMedia AV1 Bitstream & Decoding Process Specification, 2019):
//! OBUs in the low-overhead bitstream format, the sequence header (size,
//! profile, level, colour format), key frame detection, and the
//! `AV1CodecConfigurationRecord` (`av1C`) that MP4 (AV1-ISOBMFF 2.3) and
//! Enhanced RTMP's `av01` SequenceStart carry.
//!
//! A frame here is one temporal unit as MP4 stores a sample: OBUs that all
//! have `obu_has_size_field` set, temporal delimiters, padding and tile
//! lists left out ([`normalize`]); a keyframe starts with the sequence
//! header ([`with_sequence_header`]), as an H.264 keyframe starts with its
//! parameter sets. The track's `extradata` is the whole `av1C` record.
//!
//! ```
//! use camrouter_media::av1;
//! // OBU_TEMPORAL_DELIMITER (size 0), then an OBU_PADDING without a size field.
//! let tu = av1::normalize(&[0x12, 0x00, 0x78, 0xAA]).unwrap();
//! assert!(tu.is_empty());
//! ```

use crate::bits::BitReader;
use crate::codec::{CodecInfo, CodecName, VIDEO_CLOCK_RATE};
use crate::error::{Error, Result};

/// OBU types (AV1 6.2.2).
pub mod obu_type {
    /// Sequence header.
    pub const SEQUENCE_HEADER: u8 = 1;
    /// Temporal delimiter: starts a temporal unit, no payload.
    pub const TEMPORAL_DELIMITER: u8 = 2;
    /// Frame header alone.
    pub const FRAME_HEADER: u8 = 3;
    /// Tile group.
    pub const TILE_GROUP: u8 = 4;
    /// Metadata.
    pub const METADATA: u8 = 5;
    /// Frame header and its first tile group.
    pub const FRAME: u8 = 6;
    /// A copy of the frame header.
    pub const REDUNDANT_FRAME_HEADER: u8 = 7;
    /// Tile list (large scale tile decoding only).
    pub const TILE_LIST: u8 = 8;
    /// Padding.
    pub const PADDING: u8 = 15;
}

/// Largest OBU we accept: a frame of a 8K stream fits many times over, and a
/// bogus size field cannot make us look past what a frame could hold.
const MAX_OBU: u64 = 64 << 20;

/// One OBU of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// `obu_type`.
    pub kind: u8,
    /// The header (1 byte, 2 with the extension), without the size field.
    pub header: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
}

/// `leb128()` (AV1 4.10.5): the value and how many bytes it took. At most 8
/// bytes and a value below 2^32, as the specification requires.
pub fn read_leb128(b: &[u8]) -> Result<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let byte = *b.get(i).ok_or(Error::Truncated("AV1 leb128"))?;
        value |= u64::from(byte & 0x7F) << (i * 7);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return Err(Error::invalid("AV1 leb128", "value above 2^32 - 1"));
            }
            return Ok((value, i + 1));
        }
    }
    Err(Error::invalid("AV1 leb128", "longer than 8 bytes"))
}

/// Appends `value` as `leb128()` in as few bytes as it needs.
pub fn write_leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The OBUs of a low-overhead bitstream buffer (AV1 5.3.1). An OBU without
/// a size field runs to the end of the buffer, so it can only be the last.
pub fn obus(mut b: &[u8]) -> impl Iterator<Item = Result<Obu<'_>>> {
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let r = split_obu(b);
        match &r {
            Ok((_, rest)) => b = rest,
            Err(_) => b = &[],
        }
        Some(r.map(|(o, _)| o))
    })
}

fn split_obu(b: &[u8]) -> Result<(Obu<'_>, &[u8])> {
    let h = b[0];
    if h & 0x80 != 0 {
        return Err(Error::invalid("AV1 OBU header", "forbidden bit set"));
    }
    let kind = (h >> 3) & 0x0F;
    let header_len = if h & 0x04 != 0 { 2 } else { 1 };
    let header = b
        .get(..header_len)
        .ok_or(Error::Truncated("AV1 OBU header"))?;
    let rest = &b[header_len..];
    if h & 0x02 == 0 {
        return Ok((
            Obu {
                kind,
                header,
                payload: rest,
            },
            &[],
        ));
    }
    let (size, n) = read_leb128(rest)?;
    if size > MAX_OBU {
        return Err(Error::invalid("AV1 OBU", format!("size {size}")));
    }
    let size = size as usize;
    let payload = rest
        .get(n..n + size)
        .ok_or(Error::Truncated("AV1 OBU payload"))?;
    Ok((
        Obu {
            kind,
            header,
            payload,
        },
        &rest[n + size..],
    ))
}

/// Appends `obu` with `obu_has_size_field` set.
fn push_sized(out: &mut Vec<u8>, obu: &Obu<'_>) {
    out.push(obu.header[0] | 0x02);
    out.extend_from_slice(&obu.header[1..]);
    write_leb128(out, obu.payload.len() as u64);
    out.extend_from_slice(obu.payload);
}

/// A temporal unit as a frame is carried here: every OBU with its size
/// field; temporal delimiters, padding and tile lists dropped (AV1-ISOBMFF
/// 2.4 leaves them out of samples). Errors on a malformed OBU.
pub fn normalize(tu: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(tu.len() + 8);
    for obu in obus(tu) {
        let obu = obu?;
        if matches!(
            obu.kind,
            obu_type::TEMPORAL_DELIMITER | obu_type::PADDING | obu_type::TILE_LIST
        ) {
            continue;
        }
        push_sized(&mut out, &obu);
    }
    Ok(out)
}

/// The first sequence header OBU of `b` (with its size field), if any.
pub fn find_sequence_header(b: &[u8]) -> Option<Vec<u8>> {
    let obu = obus(b)
        .map_while(|o| o.ok())
        .find(|o| o.kind == obu_type::SEQUENCE_HEADER)?;
    let mut out = Vec::with_capacity(obu.payload.len() + 4);
    push_sized(&mut out, &obu);
    Some(out)
}

/// A keyframe as the graph carries it: `seq_header` (a sized sequence header
/// OBU) first unless the temporal unit already has one.
pub fn with_sequence_header(seq_header: &[u8], tu: Vec<u8>) -> Vec<u8> {
    let has = obus(&tu)
        .map_while(|o| o.ok())
        .any(|o| o.kind == obu_type::SEQUENCE_HEADER);
    if has || seq_header.is_empty() {
        return tu;
    }
    let mut out = Vec::with_capacity(seq_header.len() + tu.len());
    out.extend_from_slice(seq_header);
    out.extend_from_slice(&tu);
    out
}

/// Whether a temporal unit starts a coded video sequence a decoder can join:
/// its first frame header is a shown `KEY_FRAME` (AV1 7.5: a random access
/// point also needs the sequence header, which `with_sequence_header` puts in
/// front when the container kept it aside). `reduced_still_picture` is the
/// sequence header's flag (every frame of such a stream is a key frame).
pub fn is_keyframe(tu: &[u8], reduced_still_picture: bool) -> bool {
    for obu in obus(tu).map_while(|o| o.ok()) {
        if !matches!(obu.kind, obu_type::FRAME | obu_type::FRAME_HEADER) {
            continue;
        }
        if reduced_still_picture {
            return true;
        }
        let Some(&first) = obu.payload.first() else {
            return false;
        };
        // uncompressed_header (5.9.2): show_existing_frame, frame_type (2 bits),
        // show_frame. A shown existing frame is never a new key frame here.
        let show_existing = first & 0x80 != 0;
        let frame_type = (first >> 5) & 0x03;
        let show_frame = first & 0x10 != 0;
        return !show_existing && frame_type == 0 && show_frame;
    }
    false
}

/// What the sequence header says (AV1 5.5), as far as the outputs need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceHeader {
    /// `seq_profile`: 0 Main, 1 High, 2 Professional.
    pub profile: u8,
    /// `still_picture`.
    pub still_picture: bool,
    /// `reduced_still_picture_header`.
    pub reduced_still_picture: bool,
    /// `seq_level_idx[0]` (level X.Y is 2 + idx / 4 . idx % 4).
    pub level_idx: u8,
    /// `seq_tier[0]`: the High tier.
    pub tier: bool,
    /// `max_frame_width_minus_1 + 1`.
    pub width: u32,
    /// `max_frame_height_minus_1 + 1`.
    pub height: u32,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// `mono_chrome`.
    pub monochrome: bool,
    /// `subsampling_x`.
    pub subsampling_x: bool,
    /// `subsampling_y`.
    pub subsampling_y: bool,
    /// `chroma_sample_position`.
    pub chroma_sample_position: u8,
}

/// `uvlc()` (AV1 4.10.3).
fn uvlc(r: &mut BitReader) -> Result<u32> {
    let mut zeros = 0;
    while !r.flag()? {
        zeros += 1;
        if zeros >= 32 {
            return Ok(u32::MAX);
        }
    }
    Ok(r.u(zeros)?.saturating_add((1u32 << zeros) - 1))
}

impl SequenceHeader {
    /// Parses a sequence header OBU's payload (AV1 5.5.1).
    pub fn parse(payload: &[u8]) -> Result<SequenceHeader> {
        let mut r = BitReader::new_raw(payload);
        let mut s = SequenceHeader {
            profile: r.u(3)? as u8,
            still_picture: r.flag()?,
            reduced_still_picture: r.flag()?,
            ..Default::default()
        };
        if s.profile > 2 {
            return Err(Error::invalid(
                "AV1 sequence header",
                format!("profile {}", s.profile),
            ));
        }
        if s.reduced_still_picture {
            s.level_idx = r.u(5)? as u8;
        } else {
            let timing_info = r.flag()?;
            let mut decoder_model_info = false;
            let mut buffer_delay_length = 0;
            if timing_info {
                r.u(32)?; // num_units_in_display_tick
                r.u(32)?; // time_scale
                if r.flag()? {
                    uvlc(&mut r)?; // num_ticks_per_picture_minus_1
                }
                decoder_model_info = r.flag()?;
                if decoder_model_info {
                    buffer_delay_length = r.u(5)? + 1;
                    r.u(32)?; // num_units_in_decoding_tick
                    r.u(5)?; // buffer_removal_time_length_minus_1
                    r.u(5)?; // frame_presentation_time_length_minus_1
                }
            }
            let initial_display_delay = r.flag()?;
            let operating_points = r.u(5)? + 1;
            for i in 0..operating_points {
                r.u(12)?; // operating_point_idc
                let level = r.u(5)? as u8;
                let tier = level > 7 && r.flag()?;
                if i == 0 {
                    s.level_idx = level;
                    s.tier = tier;
                }
                if decoder_model_info && r.flag()? {
                    r.u(buffer_delay_length)?; // decoder_buffer_delay
                    r.u(buffer_delay_length)?; // encoder_buffer_delay
                    r.flag()?; // low_delay_mode_flag
                }
                if initial_display_delay && r.flag()? {
                    r.u(4)?;
                }
            }
        }
        let width_bits = r.u(4)? + 1;
        let height_bits = r.u(4)? + 1;
        s.width = r.u(width_bits)? + 1;
        s.height = r.u(height_bits)? + 1;
        let frame_id_numbers = !s.reduced_still_picture && r.flag()?;
        if frame_id_numbers {
            r.u(4)?; // delta_frame_id_length_minus_2
            r.u(3)?; // additional_frame_id_length_minus_1
        }
        r.u(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
        if !s.reduced_still_picture {
            r.u(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = r.flag()?;
            if order_hint {
                r.u(2)?; // enable_jnt_comp, enable_ref_frame_mvs
            }
            // seq_choose_screen_content_tools, else seq_force_screen_content_tools.
            let force_screen_content = if r.flag()? { 2 } else { r.u(1)? };
            if force_screen_content > 0 && !r.flag()? {
                r.u(1)?; // seq_force_integer_mv
            }
            if order_hint {
                r.u(3)?; // order_hint_bits_minus_1
            }
        }
        r.u(3)?; // enable_superres, enable_cdef, enable_restoration
                 // color_config (5.5.2).
        let high_bitdepth = r.flag()?;
        s.bit_depth = if s.profile == 2 && high_bitdepth {
            if r.flag()? {
                12
            } else {
                10
            }
        } else if high_bitdepth {
            10
        } else {
            8
        };
        s.monochrome = s.profile != 1 && r.flag()?;
        let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
        if r.flag()? {
            primaries = r.u(8)?;
            transfer = r.u(8)?;
            matrix = r.u(8)?;
        }
        if s.monochrome {
            r.flag()?; // color_range
            s.subsampling_x = true;
            s.subsampling_y = true;
        } else if primaries == 1 && transfer == 13 && matrix == 0 {
            // sRGB: 4:4:4, full range.
        } else {
            r.flag()?; // color_range
            match s.profile {
                0 => (s.subsampling_x, s.subsampling_y) = (true, true),
                1 => {}
                _ if s.bit_depth == 12 => {
                    s.subsampling_x = r.flag()?;
                    s.subsampling_y = s.subsampling_x && r.flag()?;
                }
                _ => s.subsampling_x = true,
            }
            if s.subsampling_x && s.subsampling_y {
                s.chroma_sample_position = r.u(2)? as u8;
            }
        }
        Ok(s)
    }

    /// The first sequence header in a buffer of OBUs.
    pub fn find(b: &[u8]) -> Result<SequenceHeader> {
        for obu in obus(b) {
            let obu = obu?;
            if obu.kind == obu_type::SEQUENCE_HEADER {
                return SequenceHeader::parse(obu.payload);
            }
        }
        Err(Error::invalid("AV1", "no sequence header OBU"))
    }

    /// "Main", "High" or "Professional".
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            0 => "Main",
            1 => "High",
            _ => "Professional",
        }
    }

    /// Level as "X.Y" (AV1 Annex A.3); empty for 31 (no level constraint).
    pub fn level_name(&self) -> String {
        if self.level_idx >= 31 {
            return String::new();
        }
        format!("{}.{}", 2 + self.level_idx / 4, self.level_idx % 4)
    }

    /// The RFC 6381 codec string of AV1-ISOBMFF Annex A (`av01.0.04M.08`),
    /// the short form MSE and HLS take.
    pub fn mime(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level_idx,
            if self.tier { 'H' } else { 'M' },
            self.bit_depth
        )
    }

    /// The four fixed bytes of `av1C` (AV1-ISOBMFF 2.3.3), no
    /// `initial_presentation_delay`.
    fn record_head(&self) -> [u8; 4] {
        let b = |v: bool, shift: u8| u8::from(v) << shift;
        [
            0x81, // marker, version 1
            (self.profile << 5) | (self.level_idx & 0x1F),
            b(self.tier, 7)
                | b(self.bit_depth > 8, 6)
                | b(self.bit_depth == 12, 5)
                | b(self.monochrome, 4)
                | b(self.subsampling_x, 3)
                | b(self.subsampling_y, 2)
                | (self.chroma_sample_position & 3),
            0,
        ]
    }
}

/// An `AV1CodecConfigurationRecord` read (AV1-ISOBMFF 2.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    /// What the sequence header in `configOBUs` says.
    pub sequence: SequenceHeader,
    /// That sequence header OBU, with its size field.
    pub sequence_header: Vec<u8>,
}

impl ConfigRecord {
    /// Parses `av1C`'s body. The record must carry the sequence header in
    /// its `configOBUs`: without it the size is unknown until a keyframe,
    /// and every writer we met (ffmpeg, OBS, libaom) puts it there.
    pub fn parse(rec: &[u8]) -> Result<ConfigRecord> {
        let head = rec.get(..4).ok_or(Error::Truncated("AV1 configuration"))?;
        if head[0] != 0x81 {
            return Err(Error::invalid(
                "AV1 configuration",
                format!("marker/version byte {:#04x}", head[0]),
            ));
        }
        let obus = &rec[4..];
        let sequence_header = find_sequence_header(obus)
            .ok_or_else(|| Error::invalid("AV1 configuration", "no sequence header OBU"))?;
        let sequence = SequenceHeader::find(&sequence_header)?;
        Ok(ConfigRecord {
            sequence,
            sequence_header,
        })
    }

    /// The track description: size, profile, level, and the record itself
    /// (rebuilt, so what is passed on is always well formed) as `extradata`.
    pub fn codec_info(&self) -> CodecInfo {
        let mut info = CodecInfo::new(CodecName::Av1, VIDEO_CLOCK_RATE);
        info.width = self.sequence.width;
        info.height = self.sequence.height;
        info.profile = self.sequence.profile_name().into();
        info.level = self.sequence.level_name();
        info.extradata = self.to_bytes();
        info
    }

    /// `av1C`'s body: the fixed bytes from the sequence header, then it as
    /// the only config OBU.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.sequence.record_head().to_vec();
        b.extend_from_slice(&self.sequence_header);
        b
    }
}

/// The configuration record of a track from its `extradata`: an `av1C`
/// body, or OBUs holding a sequence header (as an encoder's extradata can
/// be).
pub fn config_record(extradata: &[u8]) -> Result<ConfigRecord> {
    if extradata.first() == Some(&0x81) {
        return ConfigRecord::parse(extradata);
    }
    let sequence_header = find_sequence_header(extradata)
        .ok_or_else(|| Error::invalid("AV1 codec info", "no configuration record"))?;
    Ok(ConfigRecord {
        sequence: SequenceHeader::find(&sequence_header)?,
        sequence_header,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `av1C` body libsvtav1 (ffmpeg 5.1, 320x240 yuv420p, preset 12)
    /// wrote into an MP4: Main profile, level 2.0, 8 bits, 4:2:0, and the
    /// sequence header as its config OBU.
    pub const AV1C_320X240: [u8; 17] = [
        0x81, 0x00, 0x0C, 0x00, 0x0A, 0x0B, 0x00, 0x00, 0x00, 0x04, 0x3C, 0xFF, 0xBC, 0x02, 0xF8,
        0x00, 0x40,
    ];

    /// MSB-first bits, for hand-built headers.
    struct Bits {
        out: Vec<u8>,
        n: u32,
    }

    impl Bits {
        fn new() -> Self {
            Bits {
                out: Vec::new(),
                n: 0,
            }
        }
        fn put(&mut self, width: u32, value: u32) {
            for i in (0..width).rev() {
                if self.n.is_multiple_of(8) {
                    self.out.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.out.last_mut().unwrap() |= bit << (7 - self.n % 8);
                self.n += 1;
            }
        }
        fn finish(self) -> Vec<u8> {
            self.out
        }
    }

    #[test]
    fn leb128_round_trip_and_limits() {
        for v in [0u64, 1, 127, 128, 300, 1 << 20, u64::from(u32::MAX)] {
            let mut b = Vec::new();
            write_leb128(&mut b, v);
            assert_eq!(read_leb128(&b).unwrap(), (v, b.len()));
        }
        // Non-minimal encodings are legal (AV1 4.10.5).
        assert_eq!(read_leb128(&[0x80, 0x80, 0x00]).unwrap(), (0, 3));
        assert!(read_leb128(&[0x80; 9]).is_err());
        assert!(read_leb128(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).is_err());
        assert!(read_leb128(&[0x80]).is_err());
    }

    #[test]
    fn real_sequence_header() {
        let rec = ConfigRecord::parse(&AV1C_320X240).unwrap();
        let s = rec.sequence;
        assert_eq!((s.width, s.height), (320, 240));
        assert_eq!(
            (s.profile, s.level_idx, s.tier, s.bit_depth),
            (0, 0, false, 8)
        );
        assert!(s.subsampling_x && s.subsampling_y && !s.monochrome);
        assert_eq!(s.mime(), "av01.0.00M.08");
        assert_eq!(s.level_name(), "2.0");
        // Rebuilt byte for byte as libsvtav1's muxer wrote it.
        assert_eq!(rec.to_bytes(), AV1C_320X240);
        let info = rec.codec_info();
        assert_eq!(
            (info.name, info.width, info.profile.as_str()),
            (CodecName::Av1, 320, "Main")
        );
        // The bare sequence header OBU works as extradata too.
        assert_eq!(config_record(&AV1C_320X240[4..]).unwrap(), rec);
    }

    #[test]
    fn normalizes_and_detects_keyframes() {
        let seq = &AV1C_320X240[4..];
        // TD, sequence header, then an OBU_FRAME without a size field whose
        // header says KEY_FRAME (frame_type 0), show_frame 1.
        let mut tu = vec![0x12, 0x00];
        tu.extend_from_slice(seq);
        tu.extend_from_slice(&[0x30, 0x10, 0xAB, 0xCD]);
        let n = normalize(&tu).unwrap();
        assert_eq!(&n[..seq.len()], seq);
        assert_eq!(&n[seq.len()..], &[0x32, 0x03, 0x10, 0xAB, 0xCD]);
        assert!(is_keyframe(&n, false));
        // An inter frame (frame_type 1), and a hidden key frame.
        assert!(!is_keyframe(&[0x32, 0x01, 0x30], false));
        assert!(!is_keyframe(&[0x32, 0x01, 0x00], false));
        // A shown existing frame.
        assert!(!is_keyframe(&[0x1A, 0x01, 0x80], false));
        assert!(is_keyframe(&[0x1A, 0x01, 0x80], true));
        // The sequence header goes in front of a keyframe that lacks one, once.
        let frame = vec![0x32, 0x02, 0x10, 0x00];
        let with = with_sequence_header(seq, frame.clone());
        assert_eq!(with.len(), seq.len() + frame.len());
        assert_eq!(with_sequence_header(seq, with.clone()), with);
    }

    #[test]
    fn malformed_obus_are_errors() {
        assert!(normalize(&[0x80]).is_err(), "forbidden bit");
        assert!(normalize(&[0x32, 0x05, 0x00]).is_err(), "size past the end");
        assert!(normalize(&[0x36]).is_err(), "extension byte missing");
        assert!(normalize(&[0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        assert!(ConfigRecord::parse(&[0x81, 0, 0, 0]).is_err(), "no OBU");
        assert!(ConfigRecord::parse(&[0x01, 0, 0, 0]).is_err());
        for cut in 0..AV1C_320X240.len() {
            let _ = ConfigRecord::parse(&AV1C_320X240[..cut]);
            let _ = SequenceHeader::parse(&AV1C_320X240[6..6 + cut.min(10)]);
        }
    }

    #[test]
    fn sequence_header_with_timing_and_operating_points() {
        // Hand-built: profile 0, timing info with a decoder model, two
        // operating points (the first at level 8 = 4.0, High tier), 1920x1080.
        let mut w = Bits::new();
        w.put(3, 0); // seq_profile
        w.put(1, 0); // still_picture
        w.put(1, 0); // reduced_still_picture_header
        w.put(1, 1); // timing_info_present_flag
        w.put(32, 1001);
        w.put(32, 60000);
        w.put(1, 1); // equal_picture_interval
        w.put(3, 0b010); // uvlc: one leading zero, then 0 → 1
        w.put(1, 1); // decoder_model_info_present_flag
        w.put(5, 9); // buffer_delay_length_minus_1
        w.put(32, 1001);
        w.put(5, 0);
        w.put(5, 0);
        w.put(1, 1); // initial_display_delay_present_flag
        w.put(5, 1); // two operating points
        for level in [8u32, 4] {
            w.put(12, 0);
            w.put(5, level);
            if level > 7 {
                w.put(1, 1); // High tier
            }
            w.put(1, 1); // decoder_model_present_for_this_op
            w.put(10, 5);
            w.put(10, 5);
            w.put(1, 0);
            w.put(1, 1); // initial_display_delay_present_for_this_op
            w.put(4, 3);
        }
        w.put(4, 10); // frame_width_bits_minus_1
        w.put(4, 10);
        w.put(11, 1919);
        w.put(11, 1079);
        w.put(1, 0); // frame_id_numbers_present_flag
        w.put(3, 0);
        w.put(4, 0);
        w.put(1, 1); // enable_order_hint
        w.put(2, 0);
        w.put(1, 1); // seq_choose_screen_content_tools → SELECT
        w.put(1, 1); // seq_choose_integer_mv
        w.put(3, 6); // order_hint_bits_minus_1
        w.put(3, 0);
        w.put(1, 1); // high_bitdepth → 10 bits
        w.put(1, 0); // mono_chrome
        w.put(1, 0); // color_description_present_flag
        w.put(1, 0); // color_range
        w.put(2, 1); // chroma_sample_position
        w.put(1, 0); // separate_uv_delta_q
        w.put(1, 0); // film_grain_params_present
        let s = SequenceHeader::parse(&w.finish()).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!((s.level_idx, s.tier, s.bit_depth), (8, true, 10));
        assert_eq!(s.chroma_sample_position, 1);
        assert_eq!(s.mime(), "av01.0.08H.10");
        assert_eq!(s.level_name(), "4.0");
    }
}
