//! Between camrouter-media's track descriptions ([`CodecInfo`]) and the ABI's
//! [`Codec`]/[`Media`] (feature `media`, for plugins that use that library).
//! Its tests run with `cargo test -p camrouter-plugin-api --features media`.

use camrouter_media::codec::{CodecInfo, CodecName, MediaKind as MKind};

use crate::abi::{Codec, Direction, Media, MediaKind};
use crate::RVec;

/// A demuxed frame (`exec:` stdout, an HTTP body) as a packet. `received` is
/// the time since the source connected; it stamps frames whose container
/// has no timestamps, in the track's `clock_rate`.
pub fn frame_packet(
    frame: camrouter_media::Frame,
    clock_rate: u32,
    received: std::time::Duration,
) -> crate::Packet {
    let clock = u128::from(clock_rate.max(1));
    let pts = frame
        .pts
        .unwrap_or((received.as_micros() * clock / 1_000_000) as i64);
    let dts = frame.dts.filter(|_| frame.pts.is_some()).unwrap_or(pts);
    crate::Packet {
        track: frame.track as u32,
        flags: if frame.keyframe {
            crate::FLAG_KEYFRAME
        } else {
            0
        },
        pts,
        dts,
        received_at_us: received.as_micros() as u64,
        payload: crate::RArc::new(RVec::from(frame.data)),
    }
}

/// The ABI codec for a track; `payload_type` and `fmtp` are left empty (they
/// belong to an SDP, which a `CodecInfo` does not carry).
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

/// The track description for an ABI codec; `None` for a codec camrouter-media
/// does not know (by its go2rtc name). `payload_type` and `fmtp` are dropped.
pub fn to_info(codec: &Codec) -> Option<CodecInfo> {
    let name = CodecName::from_go2rtc_name(codec.name.as_str())?;
    let mut info = CodecInfo::new(name, codec.clock_rate);
    info.channels = codec.channels;
    info.width = codec.width;
    info.height = codec.height;
    info.profile = codec.profile.to_string();
    info.level = codec.level.to_string();
    info.extradata = codec.extradata.to_vec();
    Some(info)
}

/// Video or audio, as the ABI says it.
fn to_kind(kind: MKind) -> MediaKind {
    match kind {
        MKind::Video => MediaKind::Video,
        MKind::Audio => MediaKind::Audio,
    }
}

/// A producer media (`recvonly`: consumers receive it) with this one codec.
pub fn to_media(info: &CodecInfo) -> Media {
    Media {
        kind: to_kind(info.kind()),
        direction: Direction::RecvOnly,
        codecs: RVec::from(vec![to_codec(info)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264() -> CodecInfo {
        let mut info = CodecInfo::new(CodecName::H264, 90000);
        info.width = 1280;
        info.height = 720;
        info.profile = "High".into();
        info.level = "3.1".into();
        info.extradata = vec![0, 0, 0, 2, 0x67, 0x64];
        info
    }

    #[test]
    fn codec_from_info() {
        let c = to_codec(&h264());
        assert_eq!(c.name.as_str(), "H264");
        assert_eq!((c.clock_rate, c.channels), (90000, 0));
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!((c.profile.as_str(), c.level.as_str()), ("High", "3.1"));
        assert_eq!(c.extradata.as_slice(), [0, 0, 0, 2, 0x67, 0x64]);
        assert_eq!((c.payload_type, c.fmtp.as_str()), (0, ""));

        let mut aac = CodecInfo::new(CodecName::Aac, 48000);
        aac.channels = 2;
        let c = to_codec(&aac);
        assert_eq!(c.name.as_str(), "MPEG4-GENERIC");
        assert_eq!((c.clock_rate, c.channels), (48000, 2));
    }

    #[test]
    fn info_from_codec() {
        // Round trip; SDP-only fields do not survive and do not matter.
        let mut c = to_codec(&h264());
        c.payload_type = 96;
        c.fmtp = "packetization-mode=1".into();
        assert_eq!(to_info(&c), Some(h264()));

        let pcml = Codec {
            name: "PCML".into(),
            clock_rate: 16000,
            channels: 1,
            ..Default::default()
        };
        let info = to_info(&pcml).unwrap();
        assert_eq!(info.name, CodecName::PcmS16le);
        assert_eq!((info.clock_rate, info.channels), (16000, 1));

        for unknown in ["FLAC", "h264", "VP8", ""] {
            let c = Codec {
                name: unknown.into(),
                ..Default::default()
            };
            assert_eq!(to_info(&c), None, "{unknown}");
        }
    }

    #[test]
    fn media_from_info() {
        let m = to_media(&h264());
        assert_eq!(m.kind, MediaKind::Video);
        assert_eq!(m.direction, Direction::RecvOnly);
        assert_eq!(m.codecs.as_slice(), [to_codec(&h264())]);

        let m = to_media(&CodecInfo::new(CodecName::Pcma, 8000));
        assert_eq!(m.kind, MediaKind::Audio);
        assert_eq!(m.codecs[0].name.as_str(), "PCMA");
    }
}
