//! Between the media library's descriptions and the ABI's `Codec`/`Media`.

use camrouter_media::sdp::{Direction as SdpDirection, MediaType, SdpMedia};
pub use camrouter_plugin_api::media::{to_codec, to_info};
use camrouter_plugin_api::{Codec, Direction, Media, MediaKind, RVec};

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
