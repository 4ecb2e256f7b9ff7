//! Between the media library's descriptions and the ABI's `Codec`/`Media`.

use camrouter_media::sdp::{Direction as SdpDirection, MediaType, SdpMedia};
use camrouter_media::{CodecInfo, CodecName};
use camrouter_plugin_api::{Codec, Direction, Media, MediaKind, RVec};

pub fn codec_name(go2rtc: &str) -> Option<CodecName> {
    Some(match go2rtc {
        "H264" => CodecName::H264,
        "H265" => CodecName::H265,
        "JPEG" => CodecName::Mjpeg,
        "MPEG4-GENERIC" => CodecName::Aac,
        "OPUS" => CodecName::Opus,
        "PCMA" => CodecName::Pcma,
        "PCMU" => CodecName::Pcmu,
        "L16" => CodecName::PcmS16be,
        "PCML" => CodecName::PcmS16le,
        "G722" => CodecName::G722,
        _ => return None,
    })
}

pub fn to_codec(info: &CodecInfo) -> Codec {
    Codec {
        name: info.name.go2rtc_name().into(),
        clock_rate: info.clock_rate,
        channels: info.channels,
        payload_type: 0,
        fmtp: Default::default(),
        extradata: RVec::from(info.extradata.clone()),
        width: info.width,
        height: info.height,
        profile: info.profile.as_str().into(),
        level: info.level.as_str().into(),
    }
}

pub fn to_info(codec: &Codec) -> Option<CodecInfo> {
    let name = codec_name(codec.name.as_str())?;
    let mut info = CodecInfo::new(name, codec.clock_rate);
    info.channels = codec.channels;
    info.width = codec.width;
    info.height = codec.height;
    info.profile = codec.profile.to_string();
    info.level = codec.level.to_string();
    info.extradata = codec.extradata.to_vec();
    Some(info)
}

/// A producer media from an SDP media of a camera, read as go2rtc reads it:
/// `a=sendonly` is the ONVIF backchannel (we send, the camera plays it);
/// anything else is a media we receive.
pub fn sdp_media(m: &SdpMedia, format: usize) -> Option<Media> {
    let kind = match m.kind {
        MediaType::Video => MediaKind::Video,
        MediaType::Audio => MediaKind::Audio,
        _ => return None,
    };
    let f = m.formats.get(format)?;
    let mut codec = match &f.info {
        Some(info) => to_codec(info),
        None => Codec {
            name: f.codec.as_str().into(),
            clock_rate: f.clock_rate,
            channels: f.channels,
            ..Default::default()
        },
    };
    codec.payload_type = f.payload_type;
    codec.fmtp = f.fmtp.as_str().into();
    if codec.name.as_str() == "OPUS" {
        // RFC 7587: always 48000/2 whatever a camera writes.
        codec.clock_rate = 48000;
        codec.channels = 2;
    }
    let direction = match m.direction {
        SdpDirection::SendOnly => Direction::SendOnly,
        _ => Direction::RecvOnly,
    };
    Some(Media {
        kind,
        direction,
        codecs: RVec::from(vec![codec]),
    })
}
