//! Access-unit assembler: turns an Annex-B byte stream, pushed in chunks of
//! any size, into complete access units (one picture each) with 4-byte
//! length-prefixed NAL units.
//!
//! Boundaries follow ITU-T H.264 7.4.1.2.3 and H.265 7.4.2.4.4: an access
//! unit ends before an AUD, before parameter sets / prefix SEI that follow a
//! slice, or before a slice that starts a new picture.

use std::collections::VecDeque;

use crate::annexb::{find_start_code, push_length_prefixed, trim_trailing_zeros};
use crate::{h264, h265};

/// Which Annex-B codec the stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// ITU-T H.264.
    H264,
    /// ITU-T H.265.
    H265,
}

/// One coded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL units, each with a 4-byte big-endian length prefix. AUDs removed.
    pub data: Vec<u8>,
    /// Contains an IDR (H.264) or IRAP (H.265) slice.
    pub keyframe: bool,
}

/// A single NAL larger than this is discarded; it protects memory against
/// garbage input that never contains another start code.
pub const MAX_NAL_SIZE: usize = 16 * 1024 * 1024;

/// What role a NAL plays in access-unit boundary detection.
enum Role {
    /// Drop it (AUD is re-derivable, filler data is padding).
    Drop,
    /// Access unit delimiter: always starts a new AU.
    Delimiter,
    /// Parameter set / prefix SEI: starts a new AU if a slice came before.
    Prefix,
    /// Coded slice; `first` = starts a new picture; `key` = random access.
    Slice { first: bool, key: bool },
    /// Belongs to the current AU (suffix SEI, end of sequence, ...).
    Suffix,
}

/// Sans-IO access-unit assembler.
#[derive(Debug, Clone)]
pub struct AuAssembler {
    codec: VideoCodec,
    /// Unconsumed input; starts at a start code once one has been seen.
    buf: Vec<u8>,
    /// Offset in `buf` from which to continue searching for a start code.
    scan: usize,
    /// Whether `buf` begins with a start code (payload at `payload_start`).
    in_nal: bool,
    /// Offset of the current NAL payload (after its start code).
    payload_start: usize,
    /// Skipping an oversized NAL until the next start code.
    discarding: bool,
    cur: Vec<Vec<u8>>,
    cur_has_slice: bool,
    cur_keyframe: bool,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    out: VecDeque<AccessUnit>,
    dropped_bytes: u64,
}

impl AuAssembler {
    /// New assembler for the given codec.
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            buf: Vec::new(),
            scan: 0,
            in_nal: false,
            payload_start: 0,
            discarding: false,
            cur: Vec::new(),
            cur_has_slice: false,
            cur_keyframe: false,
            vps: None,
            sps: None,
            pps: None,
            out: VecDeque::new(),
            dropped_bytes: 0,
        }
    }

    /// The codec this assembler was created for.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Last VPS seen (H.265 only).
    pub fn vps(&self) -> Option<&[u8]> {
        self.vps.as_deref()
    }

    /// Last SPS seen.
    pub fn sps(&self) -> Option<&[u8]> {
        self.sps.as_deref()
    }

    /// Last PPS seen.
    pub fn pps(&self) -> Option<&[u8]> {
        self.pps.as_deref()
    }

    /// Bytes thrown away (before the first start code, oversized NALs).
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Feed more Annex-B bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        loop {
            // Resume two bytes back: a start code may straddle chunks.
            let from = self.scan.max(self.payload_start);
            let Some(sc) = find_start_code(&self.buf, from) else {
                self.scan = self.buf.len().saturating_sub(2).max(self.payload_start);
                break;
            };
            if self.in_nal && !self.discarding {
                let nal = self.buf.get(self.payload_start..sc).unwrap_or(&[]);
                let nal = trim_trailing_zeros(nal).to_vec();
                self.handle_nal(nal);
            } else if !self.in_nal {
                self.dropped_bytes += sc as u64;
            }
            self.discarding = false;
            self.in_nal = true;
            self.buf.drain(..sc);
            self.payload_start = 3;
            self.scan = 3;
        }
        self.enforce_limit();
    }

    fn enforce_limit(&mut self) {
        let pending = self.buf.len().saturating_sub(self.payload_start);
        if pending > MAX_NAL_SIZE || (!self.in_nal && self.buf.len() > 2) {
            // Keep the last two bytes: they may begin a start code.
            let keep_from = self.buf.len().saturating_sub(2);
            self.dropped_bytes += keep_from as u64;
            self.buf.drain(..keep_from);
            if self.in_nal {
                self.discarding = true;
            }
            self.payload_start = 0;
            self.scan = 0;
        }
    }

    /// End of a chunk of complete access units (e.g. end of a PES packet or
    /// end of input): the buffered NAL and the current AU are emitted.
    /// Parameter sets stay known for later keyframes.
    pub fn flush(&mut self) {
        if self.in_nal && !self.discarding {
            let nal =
                trim_trailing_zeros(self.buf.get(self.payload_start..).unwrap_or(&[])).to_vec();
            self.handle_nal(nal);
        }
        self.buf.clear();
        self.in_nal = false;
        self.discarding = false;
        self.payload_start = 0;
        self.scan = 0;
        self.emit();
    }

    /// Next complete access unit, if any.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.out.pop_front()
    }

    fn role(&self, nal: &[u8]) -> Role {
        match self.codec {
            VideoCodec::H264 => {
                use h264::nal_type as t;
                let ty = h264::nal_type_of(nal);
                match ty {
                    t::AUD => Role::Delimiter,
                    t::FILLER => Role::Drop,
                    t::SLICE..=t::IDR => Role::Slice {
                        // A slice whose header cannot be read is treated as a
                        // continuation, which keeps the bytes in some AU.
                        first: h264::first_mb_in_slice(nal).is_ok_and(|mb| mb == 0),
                        key: h264::is_keyframe(ty),
                    },
                    // 7.4.1.2.3: SEI, SPS, PPS, 14..18 precede the first VCL NAL.
                    t::SEI | t::SPS | t::PPS | 14..=18 => Role::Prefix,
                    _ => Role::Suffix,
                }
            }
            VideoCodec::H265 => {
                use h265::nal_type as t;
                let ty = h265::nal_type_of(nal);
                match ty {
                    t::AUD => Role::Delimiter,
                    t::FD => Role::Drop,
                    0..=31 => Role::Slice {
                        first: h265::first_slice_segment_in_pic(nal).unwrap_or(false),
                        key: h265::is_keyframe(ty),
                    },
                    // 7.4.2.4.4: VPS, SPS, PPS, prefix SEI, 41..44, 48..55.
                    t::VPS | t::SPS | t::PPS | t::PREFIX_SEI | 41..=44 | 48..=55 => Role::Prefix,
                    _ => Role::Suffix,
                }
            }
        }
    }

    fn handle_nal(&mut self, nal: Vec<u8>) {
        if nal.is_empty() {
            return;
        }
        match self.role(&nal) {
            Role::Drop => return,
            Role::Delimiter => {
                if self.cur_has_slice {
                    self.emit();
                }
                return;
            }
            Role::Prefix => {
                if self.cur_has_slice {
                    self.emit();
                }
                self.capture_parameter_set(&nal);
            }
            Role::Slice { first, key } => {
                if first && self.cur_has_slice {
                    self.emit();
                }
                self.cur_has_slice = true;
                self.cur_keyframe |= key;
            }
            Role::Suffix => {}
        }
        self.cur.push(nal);
    }

    fn capture_parameter_set(&mut self, nal: &[u8]) {
        let slot = match self.codec {
            VideoCodec::H264 => match h264::nal_type_of(nal) {
                h264::nal_type::SPS => &mut self.sps,
                h264::nal_type::PPS => &mut self.pps,
                _ => return,
            },
            VideoCodec::H265 => match h265::nal_type_of(nal) {
                h265::nal_type::VPS => &mut self.vps,
                h265::nal_type::SPS => &mut self.sps,
                h265::nal_type::PPS => &mut self.pps,
                _ => return,
            },
        };
        *slot = Some(nal.to_vec());
    }

    fn is_type(&self, nal: &[u8], h264_ty: u8, h265_ty: u8) -> bool {
        match self.codec {
            VideoCodec::H264 => h264::nal_type_of(nal) == h264_ty,
            VideoCodec::H265 => h265::nal_type_of(nal) == h265_ty,
        }
    }

    /// Finish the current AU. An AU without slices (e.g. parameter sets at
    /// end of input) is kept pending, because it has no picture to carry.
    fn emit(&mut self) {
        if !self.cur_has_slice {
            return;
        }
        let nals = std::mem::take(&mut self.cur);
        let keyframe = self.cur_keyframe;
        self.cur_has_slice = false;
        self.cur_keyframe = false;

        let mut data = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum::<usize>() + 64);
        if keyframe {
            // Decoders joining at this keyframe need the parameter sets in
            // band; prepend the last known ones the encoder did not repeat.
            let needed = [
                (self.vps.as_ref(), 0xff, h265::nal_type::VPS),
                (self.sps.as_ref(), h264::nal_type::SPS, h265::nal_type::SPS),
                (self.pps.as_ref(), h264::nal_type::PPS, h265::nal_type::PPS),
            ];
            for (ps, t264, t265) in needed {
                if let Some(ps) = ps {
                    if !nals.iter().any(|n| self.is_type(n, t264, t265)) {
                        push_length_prefixed(&mut data, ps);
                    }
                }
            }
        }
        for nal in &nals {
            push_length_prefixed(&mut data, nal);
        }
        self.out.push_back(AccessUnit { data, keyframe });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annexb::avcc_units;

    fn types(au: &AccessUnit, codec: VideoCodec) -> Vec<u8> {
        avcc_units(&au.data)
            .map(|n| {
                let n = n.unwrap();
                match codec {
                    VideoCodec::H264 => h264::nal_type_of(n),
                    VideoCodec::H265 => h265::nal_type_of(n),
                }
            })
            .collect()
    }

    fn run(codec: VideoCodec, data: &[u8], chunk: usize) -> Vec<AccessUnit> {
        let mut a = AuAssembler::new(codec);
        for c in data.chunks(chunk.max(1)) {
            a.push(c);
        }
        a.flush();
        std::iter::from_fn(|| a.pop()).collect()
    }

    // first_mb_in_slice = 0 is ue '1' -> byte 0x80; = 1 is '010' -> 0x40.
    const H264_STREAM: &[u8] = &[
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 0, 1, 0x67, 0x42, 0, 0x1e, // SPS (content irrelevant here)
        0, 0, 1, 0x68, 0xce, // PPS
        0, 0, 1, 0x65, 0x88, 0x11, // IDR, first_mb 0
        0, 0, 1, 0x65, 0x40, 0x22, // IDR, first_mb 1: same picture
        0, 0, 0, 1, 0x41, 0x80, 0x33, // P, first_mb 0: new AU without AUD
        0, 0, 1, 0x06, 0x05, 0x01, // SEI after slice: new AU
        0, 0, 1, 0x41, 0x80, 0x44, 0, 0, // P, trailing zeros
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 1, 0x65, 0x80, 0x55, 0, // IDR without SPS/PPS
    ];

    #[test]
    fn splits_h264_access_units_in_any_chunking() {
        let whole = run(VideoCodec::H264, H264_STREAM, usize::MAX);
        assert_eq!(whole.len(), 4);
        assert_eq!(types(&whole[0], VideoCodec::H264), vec![7, 8, 5, 5]);
        assert!(whole[0].keyframe);
        assert_eq!(types(&whole[1], VideoCodec::H264), vec![1]);
        assert!(!whole[1].keyframe);
        assert_eq!(types(&whole[2], VideoCodec::H264), vec![6, 1]);
        // Last IDR gets SPS/PPS prepended; AUD stripped.
        assert_eq!(types(&whole[3], VideoCodec::H264), vec![7, 8, 5]);
        assert_eq!(
            whole[3].data,
            [
                &[0, 0, 0, 4, 0x67, 0x42, 0, 0x1e][..],
                &[0, 0, 0, 2, 0x68, 0xce],
                &[0, 0, 0, 3, 0x65, 0x80, 0x55]
            ]
            .concat()
        );
        for chunk in 1..16 {
            assert_eq!(
                run(VideoCodec::H264, H264_STREAM, chunk),
                whole,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn splits_h265_access_units() {
        let stream: &[u8] = &[
            0, 0, 0, 1, 0x40, 0x01, 0x0c, // VPS
            0, 0, 1, 0x42, 0x01, 0x01, // SPS
            0, 0, 1, 0x44, 0x01, 0xc0, // PPS
            0, 0, 1, 0x4e, 0x01, 0x05, // prefix SEI
            0, 0, 1, 0x26, 0x01, 0xaf, // IDR_W_RADL, first segment
            0, 0, 1, 0x26, 0x01, 0x2f, // second segment, same picture
            0, 0, 1, 0x50, 0x01, 0x05, // suffix SEI stays
            0, 0, 1, 0x02, 0x01, 0xd0, // TRAIL_R first segment: new AU
            0, 0, 1, 0x46, 0x01, 0x50, // AUD
            0, 0, 1, 0x2a, 0x01, 0xaf, // CRA without params
        ];
        let whole = run(VideoCodec::H265, stream, usize::MAX);
        assert_eq!(whole.len(), 3);
        assert_eq!(
            types(&whole[0], VideoCodec::H265),
            vec![32, 33, 34, 39, 19, 19, 40]
        );
        assert!(whole[0].keyframe);
        assert_eq!(types(&whole[1], VideoCodec::H265), vec![1]);
        assert_eq!(types(&whole[2], VideoCodec::H265), vec![32, 33, 34, 21]);
        for chunk in 1..9 {
            assert_eq!(run(VideoCodec::H265, stream, chunk), whole);
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut x: u32 = 12345;
        let mut data = Vec::new();
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = (x >> 16) as u8;
            // Plenty of zeros so that start codes occur.
            data.push(if b < 80 {
                0
            } else if b < 100 {
                1
            } else {
                b
            });
        }
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            for chunk in [1, 7, 5000] {
                let _ = run(codec, &data, chunk);
            }
        }
        assert!(run(VideoCodec::H264, &[0, 0, 1], 1).is_empty());
        assert!(run(VideoCodec::H264, &[0, 0, 1, 0x67], 1).is_empty());
    }
}
