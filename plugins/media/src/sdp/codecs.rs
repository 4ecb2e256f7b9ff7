//! CodecInfo from an SDP format: RFC 6184 8.1 (H.264), RFC 7798 7.1
//! (H.265), RFC 3640 4.1 (mpeg4-generic), RFC 6416 7.1 (MP4A-LATM).

use super::SdpFormat;
use crate::adts::{AudioSpecificConfig, SAMPLE_RATES};
use crate::b64;
use crate::bits::BitReader;
use crate::codec::{CodecInfo, CodecName, VIDEO_CLOCK_RATE};
use crate::error::Result;
use crate::{h264, h265};

/// Decode an even-length hex string.
pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Best-effort track description; `None` for codecs this crate has no
/// name for (MPA, GSM, ...).
pub(crate) fn codec_info(f: &SdpFormat) -> Option<CodecInfo> {
    let audio = |name: CodecName, default_rate: u32| {
        let mut info = CodecInfo::new(
            name,
            if f.clock_rate > 0 {
                f.clock_rate
            } else {
                default_rate
            },
        );
        info.channels = f.channels.max(1);
        info
    };
    Some(match f.codec.as_str() {
        "H264" => h264_info(f),
        "H265" => h265_info(f),
        "JPEG" => CodecInfo::new(CodecName::Mjpeg, VIDEO_CLOCK_RATE),
        "MPEG4-GENERIC" => {
            let config = f
                .fmtp_param("config")
                .and_then(hex_decode)
                .unwrap_or_default();
            aac_info(f, parse_asc(&mut BitReader::new_raw(&config)).ok(), config)
        }
        "MP4A-LATM" => {
            let config = f
                .fmtp_param("config")
                .and_then(hex_decode)
                .unwrap_or_default();
            let asc = parse_stream_mux_config(&config).ok();
            let extradata = asc
                .filter(|a| a.0 < 31 && a.1 < 15)
                .map(|(object_type, sample_rate_index, channel_config, _)| {
                    AudioSpecificConfig {
                        object_type,
                        sample_rate_index,
                        channel_config,
                    }
                    .to_bytes()
                    .to_vec()
                })
                .unwrap_or_default();
            aac_info(f, asc, extradata)
        }
        "OPUS" => {
            // RFC 7587 7: always opus/48000/2 in rtpmap.
            let mut info = CodecInfo::new(CodecName::Opus, 48000);
            info.channels = f.channels.max(1);
            info
        }
        "PCMA" => audio(CodecName::Pcma, 8000),
        "PCMU" => audio(CodecName::Pcmu, 8000),
        "L16" => audio(CodecName::PcmS16be, 44100),
        "G722" => audio(CodecName::G722, 8000),
        _ => return None,
    })
}

fn h264_info(f: &SdpFormat) -> CodecInfo {
    let nals: Vec<Vec<u8>> = f
        .fmtp_param("sprop-parameter-sets")
        .map(|v| v.split(',').filter_map(b64::decode).collect())
        .unwrap_or_default();
    let find = |t: u8| nals.iter().find(|n| h264::nal_type_of(n) == t);
    if let Some(sps) = find(h264::nal_type::SPS) {
        if let Ok(info) = h264::codec_info(sps, find(h264::nal_type::PPS).map(|p| &p[..])) {
            return info;
        }
    }
    let mut info = CodecInfo::new(CodecName::H264, VIDEO_CLOCK_RATE);
    // RFC 6184 8.1 profile-level-id: profile_idc, constraint flags, level_idc.
    if let Some(b) = f.fmtp_param("profile-level-id").and_then(hex_decode) {
        if let [profile_idc, constraint_flags, level_idc] = b[..] {
            let sps = h264::Sps {
                profile_idc,
                constraint_flags,
                level_idc,
                sps_id: 0,
                chroma_format_idc: 1,
                separate_colour_plane: false,
                bit_depth_luma: 8,
                frame_mbs_only: true,
                width: 0,
                height: 0,
            };
            info.profile = sps.profile_name().to_string();
            info.level = sps.level_string();
        }
    }
    info
}

fn h265_info(f: &SdpFormat) -> CodecInfo {
    let get = |k: &str| {
        f.fmtp_param(k)
            .and_then(|v| v.split(',').find_map(b64::decode))
    };
    let (vps, sps, pps) = (get("sprop-vps"), get("sprop-sps"), get("sprop-pps"));
    if let Some(sps) = &sps {
        if let Ok(info) = h265::codec_info(vps.as_deref(), sps, pps.as_deref()) {
            return info;
        }
    }
    CodecInfo::new(CodecName::H265, VIDEO_CLOCK_RATE)
}

/// (audioObjectType, samplingFrequencyIndex, channelConfiguration,
/// sample rate) from an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
type AscFields = (u8, u8, u8, u32);

fn parse_asc(r: &mut BitReader) -> Result<AscFields> {
    let mut object_type = r.u(5)? as u8;
    if object_type == 31 {
        object_type = 32 + r.u(6)? as u8;
    }
    let index = r.u(4)? as u8;
    let rate = if index == 15 {
        r.u(24)?
    } else {
        SAMPLE_RATES.get(usize::from(index)).copied().unwrap_or(0)
    };
    let channels = r.u(4)? as u8;
    Ok((object_type, index, channels, rate))
}

/// StreamMuxConfig (ISO/IEC 14496-3 1.7.3) with audioMuxVersion 0: skip
/// to the first program/layer's AudioSpecificConfig.
fn parse_stream_mux_config(config: &[u8]) -> Result<AscFields> {
    let mut r = BitReader::new_raw(config);
    if r.u(1)? != 0 {
        return Err(crate::error::Error::unsupported(
            "StreamMuxConfig",
            "audioMuxVersion 1",
        ));
    }
    // allStreamsSameTimeFraming(1) numSubFrames(6) numProgram(4) numLayer(3)
    r.skip(1 + 6 + 4 + 3)?;
    parse_asc(&mut r)
}

fn aac_info(f: &SdpFormat, asc: Option<AscFields>, extradata: Vec<u8>) -> CodecInfo {
    let mut info = CodecInfo::new(CodecName::Aac, f.clock_rate);
    info.channels = f.channels.max(1);
    if let Some((object_type, _, channel_config, rate)) = asc {
        if info.clock_rate == 0 {
            info.clock_rate = rate;
        }
        if channel_config > 0 {
            info.channels = crate::adts::channels_of(channel_config);
        }
        info.profile = match object_type {
            1 => "Main",
            2 => "LC",
            3 => "SSR",
            4 => "LTP",
            5 => "HE-AAC",
            29 => "HE-AACv2",
            _ => "",
        }
        .to_string();
    }
    info.extradata = extradata;
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latm_config() {
        // ffmpeg -rtpflags latm, 44100 Hz stereo AAC-LC.
        let c = hex_decode("400024203fc0").unwrap();
        assert_eq!(parse_stream_mux_config(&c).unwrap(), (2, 4, 2, 44100));
        assert!(parse_stream_mux_config(&[0x80]).is_err());
        assert!(hex_decode("abc").is_none());
        assert!(hex_decode("zz").is_none());
    }
}
