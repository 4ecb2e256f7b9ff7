//! ITU-T H.265 NAL unit types and sequence parameter set parsing.

use crate::annexb::push_length_prefixed;
use crate::bits::BitReader;
use crate::codec::{CodecInfo, CodecName, VIDEO_CLOCK_RATE};
use crate::error::{Error, Result};

/// NAL unit type values (ITU-T H.265 Table 7-1).
pub mod nal_type {
    /// First IRAP type (BLA_W_LP).
    pub const BLA_W_LP: u8 = 16;
    /// IDR with leading pictures.
    pub const IDR_W_RADL: u8 = 19;
    /// IDR without leading pictures.
    pub const IDR_N_LP: u8 = 20;
    /// Clean random access.
    pub const CRA: u8 = 21;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// End of sequence.
    pub const EOS: u8 = 36;
    /// End of bitstream.
    pub const EOB: u8 = 37;
    /// Filler data.
    pub const FD: u8 = 38;
    /// Prefix SEI.
    pub const PREFIX_SEI: u8 = 39;
    /// Suffix SEI.
    pub const SUFFIX_SEI: u8 = 40;
}

/// `nal_unit_type` from the first NAL header byte (H.265 7.3.1.2).
pub fn nal_unit_type(header0: u8) -> u8 {
    (header0 >> 1) & 0x3f
}

/// Type of a NAL given its bytes (0 if empty).
pub fn nal_type_of(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |&b| nal_unit_type(b))
}

/// IRAP pictures (H.265 3.73) are the random access points: BLA, IDR, CRA.
pub fn is_keyframe(nal_type: u8) -> bool {
    (nal_type::BLA_W_LP..=nal_type::CRA).contains(&nal_type)
}

/// VCL NAL types are 0..=31 (H.265 Table 7-1).
pub fn is_vcl(nal_type: u8) -> bool {
    nal_type < 32
}

/// `first_slice_segment_in_pic_flag` (H.265 7.3.6.1): first bit after the
/// two-byte NAL header of a slice segment.
pub fn first_slice_segment_in_pic(nal: &[u8]) -> Result<bool> {
    let b = nal.get(2).ok_or(Error::Truncated("HEVC slice header"))?;
    Ok(b & 0x80 != 0)
}

/// Fields of a sequence parameter set (H.265 7.3.2.2.1) that callers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// general_profile_space.
    pub profile_space: u8,
    /// general_tier_flag (false: Main tier).
    pub tier_flag: bool,
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt).
    pub profile_idc: u8,
    /// general_profile_compatibility_flags.
    pub profile_compatibility: u32,
    /// general_level_idc (30 x level number).
    pub level_idc: u8,
    /// sps_max_sub_layers_minus1.
    pub max_sub_layers_minus1: u8,
    /// sps_seq_parameter_set_id.
    pub sps_id: u32,
    /// chroma_format_idc.
    pub chroma_format_idc: u32,
    /// bit_depth_luma_minus8 + 8.
    pub bit_depth_luma: u32,
    /// Width after the conformance window.
    pub width: u32,
    /// Height after the conformance window.
    pub height: u32,
}

/// Guards arithmetic; H.265 level 6.2 allows 8192x4320.
const MAX_DIMENSION: u32 = 1 << 16;

impl Sps {
    /// Parse an SPS NAL unit (including its two-byte header, escaped).
    pub fn parse(nal: &[u8]) -> Result<Sps> {
        let header = nal.first().ok_or(Error::Truncated("HEVC SPS"))?;
        if nal_unit_type(*header) != nal_type::SPS {
            return Err(Error::invalid(
                "HEVC SPS",
                format!("NAL type {} is not SPS", nal_unit_type(*header)),
            ));
        }
        let payload = nal.get(2..).ok_or(Error::Truncated("HEVC SPS"))?;
        let mut r = BitReader::new_escaped(payload);
        let _vps_id = r.u(4)?;
        let max_sub_layers_minus1 = r.u(3)? as u8;
        if max_sub_layers_minus1 > 6 {
            return Err(Error::invalid("HEVC SPS", "sps_max_sub_layers_minus1 > 6"));
        }
        let _temporal_id_nesting = r.flag()?;

        // profile_tier_level(1, sps_max_sub_layers_minus1), H.265 7.3.3.
        let profile_space = r.u(2)? as u8;
        let tier_flag = r.flag()?;
        let profile_idc = r.u(5)? as u8;
        let profile_compatibility = r.u(32)?;
        // progressive, interlaced, non_packed, frame_only + 43 reserved/flag
        // bits + inbld/reserved bit = 48 bits.
        r.skip(48)?;
        let level_idc = r.u(8)? as u8;
        let mut sub_profile_present = [false; 8];
        let mut sub_level_present = [false; 8];
        for i in 0..usize::from(max_sub_layers_minus1) {
            if let (Some(p), Some(l)) =
                (sub_profile_present.get_mut(i), sub_level_present.get_mut(i))
            {
                *p = r.flag()?;
                *l = r.flag()?;
            }
        }
        if max_sub_layers_minus1 > 0 {
            for _ in max_sub_layers_minus1..8 {
                let _reserved_zero_2bits = r.u(2)?;
            }
        }
        for i in 0..usize::from(max_sub_layers_minus1) {
            if sub_profile_present.get(i) == Some(&true) {
                // sub_layer profile space..reserved bits: 2+1+5+32+4+43+1.
                r.skip(88)?;
            }
            if sub_level_present.get(i) == Some(&true) {
                r.skip(8)?;
            }
        }

        let sps_id = r.ue()?;
        if sps_id > 15 {
            return Err(Error::invalid("HEVC SPS", "sps_seq_parameter_set_id > 15"));
        }
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(Error::invalid("HEVC SPS", "chroma_format_idc > 3"));
        }
        let mut separate_colour_plane = false;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        let full_w = r.ue()?;
        let full_h = r.ue()?;
        if full_w == 0 || full_h == 0 || full_w > MAX_DIMENSION || full_h > MAX_DIMENSION {
            return Err(Error::invalid("HEVC SPS", "picture size out of range"));
        }
        let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
        if r.flag()? {
            cl = r.ue()?.into();
            cr = r.ue()?.into();
            ct = r.ue()?.into();
            cb = r.ue()?.into();
        }
        let bit_depth_luma = r.ue()?.saturating_add(8);

        // 7.4.3.2.1: conformance window offsets are in chroma sample units
        // (SubWidthC/SubHeightC, Table 6-1; 1 when ChromaArrayType is 0).
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
        let crop_w = sub_w.saturating_mul(cl.saturating_add(cr));
        let crop_h = sub_h.saturating_mul(ct.saturating_add(cb));
        if crop_w >= u64::from(full_w) || crop_h >= u64::from(full_h) {
            return Err(Error::invalid(
                "HEVC SPS",
                "conformance window exceeds picture",
            ));
        }
        Ok(Sps {
            profile_space,
            tier_flag,
            profile_idc,
            profile_compatibility,
            level_idc,
            max_sub_layers_minus1,
            sps_id,
            chroma_format_idc,
            bit_depth_luma,
            width: u32::try_from(u64::from(full_w) - crop_w).unwrap_or(0),
            height: u32::try_from(u64::from(full_h) - crop_h).unwrap_or(0),
        })
    }

    /// Profile name as ffmpeg prints it (H.265 Annex A.3).
    pub fn profile_name(&self) -> &'static str {
        // A.3: a decoder may signal a profile only via the compatibility flag.
        let compat = |i: u32| self.profile_compatibility & (0x8000_0000 >> i) != 0;
        match self.profile_idc {
            1 => "Main",
            2 => "Main 10",
            3 => "Main Still Picture",
            4 => "Rext",
            0 if compat(1) => "Main",
            0 if compat(2) => "Main 10",
            _ => "Unknown",
        }
    }

    /// Level as text, e.g. "4.0", "5.1" (general_level_idc = 30 x level).
    pub fn level_string(&self) -> String {
        let major = self.level_idc / 30;
        let minor = (self.level_idc % 30) / 3;
        format!("{major}.{minor}")
    }

    /// Level number as ffmpeg reports it (general_level_idc, e.g. 120).
    pub fn ffmpeg_level(&self) -> i32 {
        i32::from(self.level_idc)
    }
}

/// Build the track description from VPS/SPS/PPS NALs.
pub fn codec_info(vps: Option<&[u8]>, sps_nal: &[u8], pps: Option<&[u8]>) -> Result<CodecInfo> {
    let sps = Sps::parse(sps_nal)?;
    let mut info = CodecInfo::new(CodecName::H265, VIDEO_CLOCK_RATE);
    info.width = sps.width;
    info.height = sps.height;
    info.profile = sps.profile_name().to_string();
    info.level = sps.level_string();
    for nal in [vps, Some(sps_nal), pps].into_iter().flatten() {
        push_length_prefixed(&mut info.extradata, nal);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::tests::BitWriter;

    /// SPS of a libx265 1920x1080 Main stream (level 4.0).
    pub const SPS_1920X1080_MAIN: [u8; 43] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x11, 0x07, 0xcb, 0x96, 0x56, 0x54, 0xa4, 0xc2,
        0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c, 0x84,
    ];

    #[test]
    fn parses_real_1080p_main() {
        let sps = Sps::parse(&SPS_1920X1080_MAIN).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_name(), "Main");
        assert_eq!(sps.level_idc, 120);
        assert_eq!(sps.level_string(), "4.0");
        assert_eq!(sps.ffmpeg_level(), 120);
        let info = codec_info(Some(&[0x40, 0x01]), &SPS_1920X1080_MAIN, Some(&[0x44, 1])).unwrap();
        assert_eq!(info.name, CodecName::H265);
        assert_eq!(info.extradata.len(), 3 * 4 + 2 + 43 + 2);
    }

    fn synthetic(sub_layers: u8) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.u(16, 0x4201);
        w.u(4, 0);
        w.u(3, u64::from(sub_layers));
        w.u(1, 1);
        w.u(2, 0);
        w.u(1, 0);
        w.u(5, 2); // Main 10
        w.u(32, 0x2000_0000);
        w.u(48, 0);
        w.u(8, 153); // level 5.1
        for i in 0..sub_layers {
            w.u(1, u64::from(i % 2 == 0)); // profile present
            w.u(1, 1); // level present
        }
        if sub_layers > 0 {
            for _ in sub_layers..8 {
                w.u(2, 0);
            }
        }
        for i in 0..sub_layers {
            if i % 2 == 0 {
                w.u(32, 0xffff_ffff);
                w.u(32, 0xffff_ffff);
                w.u(24, 0xff_ffff);
            }
            w.u(8, 0xff);
        }
        w.ue(0);
        w.ue(1); // 4:2:0
        w.ue(3840);
        w.ue(2176);
        w.u(1, 1);
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(8); // 16 lines cropped
        w.ue(2);
        w.finish()
    }

    #[test]
    fn parses_sub_layers_and_conformance_window() {
        for n in 0..=6 {
            let sps = Sps::parse(&synthetic(n)).unwrap();
            assert_eq!((sps.width, sps.height), (3840, 2160), "sub layers {n}");
            assert_eq!(sps.profile_name(), "Main 10");
            assert_eq!(sps.level_string(), "5.1");
            assert_eq!(sps.bit_depth_luma, 10);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x42]).is_err());
        assert!(Sps::parse(&[0x42, 0x01]).is_err());
        assert!(Sps::parse(&[0x40, 0x01, 0, 0]).is_err());
        for len in 0..SPS_1920X1080_MAIN.len() {
            let _ = Sps::parse(&SPS_1920X1080_MAIN[..len]);
        }
        assert!(Sps::parse(&SPS_1920X1080_MAIN[..20]).is_err());
        assert!(Sps::parse(&[0x42, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn nal_helpers() {
        assert_eq!(nal_unit_type(0x40), 32);
        assert_eq!(nal_unit_type(0x26), 19);
        assert!(is_keyframe(19) && is_keyframe(21) && !is_keyframe(1) && !is_keyframe(22));
        assert!(first_slice_segment_in_pic(&[0x26, 0x01, 0xaf]).unwrap());
        assert!(!first_slice_segment_in_pic(&[0x02, 0x01, 0x2f]).unwrap());
        assert!(first_slice_segment_in_pic(&[0x02, 0x01]).is_err());
    }
}
