//! ITU-T H.264 NAL unit types and sequence parameter set parsing.

use crate::annexb::push_length_prefixed;
use crate::bits::BitReader;
use crate::codec::{CodecInfo, CodecName, VIDEO_CLOCK_RATE};
use crate::error::{Error, Result};

/// NAL unit type values (ITU-T H.264 Table 7-1).
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice data partition A.
    pub const SLICE_DPA: u8 = 2;
    /// Coded slice data partition C (last of the partitioned slice types).
    pub const SLICE_DPC: u8 = 4;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// End of sequence.
    pub const END_OF_SEQUENCE: u8 = 10;
    /// End of stream.
    pub const END_OF_STREAM: u8 = 11;
    /// Filler data.
    pub const FILLER: u8 = 12;
    /// Sequence parameter set extension.
    pub const SPS_EXT: u8 = 13;
    /// Prefix NAL unit (SVC).
    pub const PREFIX: u8 = 14;
    /// Subset sequence parameter set.
    pub const SUBSET_SPS: u8 = 15;
}

/// `nal_unit_type` from the first NAL header byte (H.264 7.3.1).
pub fn nal_unit_type(header: u8) -> u8 {
    header & 0x1f
}

/// Type of a NAL given its bytes (0 if empty).
pub fn nal_type_of(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |&b| nal_unit_type(b))
}

/// Whether a NAL type starts a random access point. Only IDR is a
/// guaranteed decoder refresh (H.264 3.69); recovery-point SEI is ignored.
pub fn is_keyframe(nal_type: u8) -> bool {
    nal_type == nal_type::IDR
}

/// Whether a NAL type is a VCL (coded slice) NAL (H.264 7.4.1.2.3: types 1..5).
pub fn is_vcl(nal_type: u8) -> bool {
    (nal_type::SLICE..=nal_type::IDR).contains(&nal_type)
}

/// `first_mb_in_slice` of a slice NAL (H.264 7.3.3): the first ue(v) after
/// the one-byte NAL header. Zero means this slice begins a new picture.
pub fn first_mb_in_slice(nal: &[u8]) -> Result<u32> {
    let payload = nal.get(1..).ok_or(Error::Truncated("slice header"))?;
    BitReader::new_escaped(payload).ue()
}

/// Fields of a sequence parameter set (H.264 7.3.2.1.1) that callers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// constraint_set0..5 flags and reserved bits, as the raw byte.
    pub constraint_flags: u8,
    /// level_idc (10 x level number; 11 with constraint_set3 may mean 1b).
    pub level_idc: u8,
    /// seq_parameter_set_id.
    pub sps_id: u32,
    /// chroma_format_idc (0 mono, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format_idc: u32,
    /// separate_colour_plane_flag.
    pub separate_colour_plane: bool,
    /// bit_depth_luma_minus8 + 8.
    pub bit_depth_luma: u32,
    /// frame_mbs_only_flag (false: the stream may contain fields).
    pub frame_mbs_only: bool,
    /// Displayed width after frame cropping.
    pub width: u32,
    /// Displayed height after frame cropping.
    pub height: u32,
}

/// Profiles whose SPS carries chroma_format_idc etc. (H.264 7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Upper bound on picture size in macroblocks per dimension. H.264 Table
/// A-1 tops out at 139264 MBs per frame; this only guards arithmetic.
const MAX_MBS: u32 = 1 << 16;

impl Sps {
    /// Parse an SPS NAL unit (including its one-byte header, escaped).
    pub fn parse(nal: &[u8]) -> Result<Sps> {
        let (&header, payload) = nal.split_first().ok_or(Error::Truncated("H.264 SPS"))?;
        if nal_unit_type(header) != nal_type::SPS {
            return Err(Error::invalid(
                "H.264 SPS",
                format!("NAL type {} is not SPS", nal_unit_type(header)),
            ));
        }
        let mut r = BitReader::new_escaped(payload);
        let profile_idc = r.u(8)? as u8;
        let constraint_flags = r.u(8)? as u8;
        let level_idc = r.u(8)? as u8;
        let sps_id = r.ue()?;
        if sps_id > 31 {
            return Err(Error::invalid("H.264 SPS", "seq_parameter_set_id > 31"));
        }
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return Err(Error::invalid("H.264 SPS", "chroma_format_idc > 3"));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            bit_depth_luma = r.ue()?.saturating_add(8);
            let _bit_depth_chroma_minus8 = r.ue()?;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                // seq_scaling_matrix_present_flag: 8 lists, or 12 for 4:4:4.
                let count = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..count {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num_minus4 = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_poc_lsb_minus4 = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom_field = r.se()?;
                let cycle = r.ue()?;
                // 7.4.2.1.1: num_ref_frames_in_pic_order_cnt_cycle is 0..255.
                if cycle > 255 {
                    return Err(Error::invalid("H.264 SPS", "POC cycle > 255"));
                }
                for _ in 0..cycle {
                    let _offset_for_ref_frame = r.se()?;
                }
            }
            2 => {}
            _ => return Err(Error::invalid("H.264 SPS", "pic_order_cnt_type > 2")),
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let width_mbs = r.ue()?.saturating_add(1);
        let height_map_units = r.ue()?.saturating_add(1);
        if width_mbs > MAX_MBS || height_map_units > MAX_MBS {
            return Err(Error::invalid("H.264 SPS", "picture size out of range"));
        }
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
        if r.flag()? {
            crop_l = r.ue()?.into();
            crop_r = r.ue()?.into();
            crop_t = r.ue()?.into();
            crop_b = r.ue()?.into();
        }
        // VUI is not needed for dimensions; stop here so SPSs with exotic VUI
        // still parse.

        // 7.4.2.1.1, equations 7-19..7-22: crop units depend on ChromaArrayType.
        let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h): (u64, u64) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
            (1, field_factor)
        } else {
            (sub_w, sub_h * field_factor)
        };
        let full_w = u64::from(width_mbs) * 16;
        let full_h = u64::from(height_map_units) * 16 * field_factor;
        let crop_w = crop_unit_x.saturating_mul(crop_l.saturating_add(crop_r));
        let crop_h = crop_unit_y.saturating_mul(crop_t.saturating_add(crop_b));
        if crop_w >= full_w || crop_h >= full_h {
            return Err(Error::invalid("H.264 SPS", "cropping exceeds picture"));
        }
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            sps_id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            frame_mbs_only,
            width: u32::try_from(full_w - crop_w).unwrap_or(u32::MAX),
            height: u32::try_from(full_h - crop_h).unwrap_or(u32::MAX),
        })
    }

    /// Profile name as ffmpeg prints it (H.264 Annex A.2).
    pub fn profile_name(&self) -> &'static str {
        let c1 = self.constraint_flags & 0x40 != 0;
        let c3 = self.constraint_flags & 0x10 != 0;
        match self.profile_idc {
            66 if c1 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 if c3 => "High 10 Intra",
            110 => "High 10",
            122 if c3 => "High 4:2:2 Intra",
            122 => "High 4:2:2",
            244 if c3 => "High 4:4:4 Intra",
            244 => "High 4:4:4 Predictive",
            44 => "CAVLC 4:4:4",
            _ => "Unknown",
        }
    }

    /// Level as text, e.g. "3.0", "4.1" or "1b" (H.264 A.3.1, A.3.2).
    pub fn level_string(&self) -> String {
        let c3 = self.constraint_flags & 0x10 != 0;
        if self.level_idc == 11 && c3 && matches!(self.profile_idc, 66 | 77 | 88) {
            return "1b".to_string();
        }
        if self.level_idc == 9 {
            return "1b".to_string();
        }
        format!("{}.{}", self.level_idc / 10, self.level_idc % 10)
    }

    /// Level number as ffmpeg reports it (level_idc, e.g. 30 for 3.0).
    pub fn ffmpeg_level(&self) -> i32 {
        i32::from(self.level_idc)
    }

    /// RFC 6184 `profile-level-id` / codecs string suffix, e.g. "64001E".
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02X}{:02X}{:02X}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// Skip scaling_list() (H.264 7.3.2.1.1.1); values are not needed but the
/// bits must be consumed to reach the fields after them.
fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<()> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(Error::invalid(
                    "H.264 scaling list",
                    "delta_scale out of range",
                ));
            }
            next_scale = (last_scale + delta + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Build the track description from an SPS and (optionally) a PPS NAL.
pub fn codec_info(sps_nal: &[u8], pps_nal: Option<&[u8]>) -> Result<CodecInfo> {
    let sps = Sps::parse(sps_nal)?;
    let mut info = CodecInfo::new(CodecName::H264, VIDEO_CLOCK_RATE);
    info.width = sps.width;
    info.height = sps.height;
    info.profile = sps.profile_name().to_string();
    info.level = sps.level_string();
    push_length_prefixed(&mut info.extradata, sps_nal);
    if let Some(pps) = pps_nal {
        push_length_prefixed(&mut info.extradata, pps);
    }
    Ok(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SPS of `ffmpeg -f lavfi -i testsrc2=size=640x360 -c:v libx264` (High, 3.0).
    pub const SPS_640X360_HIGH: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
    ];
    /// SPS of a libx264 1920x1080 High 4.0 stream: 1088 coded lines cropped to 1080.
    pub const SPS_1920X1080_HIGH: [u8; 27] = [
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00,
        0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc6, 0x58,
    ];

    /// Minimal MSB-first bit writer for building test SPSs.
    #[derive(Default)]
    pub struct BitWriter {
        bytes: Vec<u8>,
        nbits: usize,
    }
    impl BitWriter {
        pub fn u(&mut self, n: u32, v: u64) {
            for i in (0..n).rev() {
                if self.nbits & 7 == 0 {
                    self.bytes.push(0);
                }
                if (v >> i) & 1 == 1 {
                    let last = self.bytes.len() - 1;
                    self.bytes[last] |= 0x80 >> (self.nbits % 8);
                }
                self.nbits += 1;
            }
        }
        pub fn ue(&mut self, v: u64) {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.u(len - 1, 0);
            self.u(len, x);
        }
        pub fn se(&mut self, v: i64) {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u64);
        }
        /// Append the RBSP stop bit and return the bytes (no escaping needed
        /// for the values used in tests).
        pub fn finish(mut self) -> Vec<u8> {
            self.u(1, 1);
            self.bytes
        }
    }

    #[test]
    fn parses_real_640x360() {
        let sps = Sps::parse(&SPS_640X360_HIGH).unwrap();
        assert_eq!((sps.width, sps.height), (640, 360));
        assert_eq!(sps.profile_idc, 100);
        assert_eq!(sps.profile_name(), "High");
        assert_eq!(sps.level_string(), "3.0");
        assert_eq!(sps.ffmpeg_level(), 30);
        assert_eq!(sps.profile_level_id(), "64001E");
        assert!(sps.frame_mbs_only);
    }

    #[test]
    fn parses_real_1080p_with_cropping() {
        let sps = Sps::parse(&SPS_1920X1080_HIGH).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.level_string(), "4.0");
        let info = codec_info(&SPS_1920X1080_HIGH, Some(&[0x68, 0xef, 0x81, 0x37, 0x2c])).unwrap();
        assert_eq!(info.profile, "High");
        assert_eq!(info.extradata.len(), 4 + 27 + 4 + 5);
        assert_eq!(info.clock_rate, 90000);
    }

    /// High 4:2:2 interlaced SPS with scaling lists and cropping.
    fn synthetic_sps(with_scaling: bool) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.u(8, 0x67);
        w.u(8, 122); // profile High 4:2:2
        w.u(8, 0);
        w.u(8, 31); // level 3.1
        w.ue(0); // sps id
        w.ue(2); // chroma 4:2:2
        w.ue(2); // bit depth luma - 8
        w.ue(2); // bit depth chroma - 8
        w.u(1, 0);
        w.u(1, u64::from(with_scaling));
        if with_scaling {
            for i in 0..8 {
                if i == 1 || i == 6 {
                    w.u(1, 1);
                    let size = if i < 6 { 16 } else { 64 };
                    // Deltas that end the list early via next_scale == 0.
                    w.se(3);
                    for _ in 1..size / 2 {
                        w.se(1);
                    }
                    w.se(-(8 + 3 + (size as i64 / 2 - 1)));
                } else {
                    w.u(1, 0);
                }
            }
        }
        w.ue(0); // log2_max_frame_num - 4
        w.ue(1); // poc type 1
        w.u(1, 0);
        w.se(-1);
        w.se(2);
        w.ue(2);
        w.se(1);
        w.se(-1);
        w.ue(4); // max ref frames
        w.u(1, 0);
        w.ue(119); // 1920 / 16 - 1
        w.ue(33); // 34 map units * 2 (fields) * 16 = 1088
        w.u(1, 0); // frame_mbs_only = 0
        w.u(1, 1); // mbaff
        w.u(1, 1);
        w.u(1, 1); // cropping
        w.ue(1); // left: 2 px for 4:2:2
        w.ue(1); // right: 2 px
        w.ue(0);
        w.ue(4); // bottom: 4 * SubHeightC(1) * 2 = 8 lines
        w.u(1, 0); // no VUI
        w.finish()
    }

    #[test]
    fn parses_synthetic_422_interlaced_scaling() {
        for scaling in [false, true] {
            let nal = synthetic_sps(scaling);
            let sps = Sps::parse(&nal).unwrap();
            assert_eq!((sps.width, sps.height), (1916, 1080), "scaling={scaling}");
            assert_eq!(sps.chroma_format_idc, 2);
            assert_eq!(sps.bit_depth_luma, 10);
            assert!(!sps.frame_mbs_only);
            assert_eq!(sps.profile_name(), "High 4:2:2");
            assert_eq!(sps.level_string(), "3.1");
        }
    }

    #[test]
    fn level_1b() {
        let mut sps = Sps::parse(&SPS_640X360_HIGH).unwrap();
        sps.profile_idc = 66;
        sps.constraint_flags = 0x10;
        sps.level_idc = 11;
        assert_eq!(sps.level_string(), "1b");
        sps.constraint_flags = 0x40;
        assert_eq!(sps.profile_name(), "Constrained Baseline");
        assert_eq!(sps.level_string(), "1.1");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x67]).is_err());
        assert!(Sps::parse(&[0x68, 1, 2, 3]).is_err());
        for len in 0..SPS_640X360_HIGH.len() - 1 {
            // Truncations must error (or parse) but never panic.
            let _ = Sps::parse(&SPS_640X360_HIGH[..len]);
        }
        assert!(Sps::parse(&SPS_640X360_HIGH[..6]).is_err());
        assert!(Sps::parse(&[0x67, 0x64, 0, 0x1e, 0, 0, 0, 0, 0, 0]).is_err());
        // All-ones parses as the smallest legal picture (every ue(v) is 0).
        let tiny = Sps::parse(&[0x67, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!((tiny.width, tiny.height), (16, 16));
        assert!(Sps::parse(&[0x67, 0x42, 0, 0x1e, 0xff]).is_err());
    }

    #[test]
    fn slice_first_mb() {
        assert_eq!(first_mb_in_slice(&[0x65, 0x88]).unwrap(), 0);
        assert_eq!(first_mb_in_slice(&[0x41, 0x40]).unwrap(), 1);
        assert!(first_mb_in_slice(&[0x41]).is_err());
        assert!(is_keyframe(5) && !is_keyframe(1));
        assert!(is_vcl(1) && is_vcl(5) && !is_vcl(6));
    }
}
