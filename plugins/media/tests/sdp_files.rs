//! One test per SDP in testdata/sdp (see its README for provenance).

use camrouter_media::sdp::{write_session, Direction, MediaDescription, MediaType, SdpFormat};
use camrouter_media::{CodecInfo, CodecName, Session};

fn parse(name: &str) -> Session {
    let path = format!("{}/testdata/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Session::parse(&text).unwrap()
}

fn codecs(s: &Session) -> Vec<&str> {
    s.medias
        .iter()
        .flat_map(|m| m.formats.iter().map(|f| f.codec.as_str()))
        .collect()
}

fn controls(s: &Session, base: &str) -> Vec<String> {
    s.medias.iter().map(|m| s.control_url(base, m)).collect()
}

fn info(f: &SdpFormat) -> &CodecInfo {
    f.info.as_ref().expect("codec info")
}

fn size(f: &SdpFormat) -> (u32, u32) {
    (info(f).width, info(f).height)
}

#[test]
fn hikvision() {
    let s = parse("hikvision.sdp");
    assert_eq!(codecs(&s), ["H264", "PCMA"]);
    let base = "rtsp://192.168.1.64:554/Streaming/Channels/101";
    assert_eq!(
        controls(&s, base),
        [
            "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast",
            "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast"
        ]
    );
    assert!(s.medias.iter().all(|m| m.direction == Direction::RecvOnly));
    let v = &s.medias[0].formats[0];
    assert_eq!(size(v), (1920, 1080));
    assert_eq!(info(v).profile, "Main");
    assert_eq!(v.fmtp_param("packetization-mode"), Some("1"));
    let a = &s.medias[1].formats[0];
    assert_eq!((a.payload_type, a.clock_rate, a.channels), (8, 8000, 1));
    assert_eq!(info(a).name, CodecName::Pcma);
}

#[test]
fn hikvision_h265() {
    let s = parse("hikvision_h265.sdp");
    assert_eq!(codecs(&s), ["H265"]);
    let v = &s.medias[0].formats[0];
    assert_eq!(size(v), (2688, 1520));
    assert_eq!(info(v).name, CodecName::H265);
    // VPS, SPS, PPS in extradata.
    assert_eq!(
        camrouter_media::annexb::avcc_units(&info(v).extradata).count(),
        3
    );
}

#[test]
fn dahua() {
    let s = parse("dahua.sdp");
    assert_eq!(codecs(&s), ["H264", "MPEG4-GENERIC"]);
    assert_eq!(s.control.as_deref(), Some("*"));
    assert_eq!(
        controls(
            &s,
            "rtsp://10.0.0.2:554/cam/realmonitor?channel=1&subtype=0"
        ),
        [
            "rtsp://10.0.0.2:554/cam/realmonitor?channel=1&subtype=0/trackID=0",
            "rtsp://10.0.0.2:554/cam/realmonitor?channel=1&subtype=0/trackID=1"
        ]
    );
    assert_eq!(size(&s.medias[0].formats[0]), (2560, 1440));
    let a = &s.medias[1].formats[0];
    assert_eq!((info(a).clock_rate, info(a).channels), (16000, 1));
    assert_eq!(info(a).profile, "LC");
    assert_eq!(info(a).extradata, [0x14, 0x08]);
}

#[test]
fn amcrest_backchannel() {
    let s = parse("amcrest_backchannel.sdp");
    assert_eq!(codecs(&s), ["H264", "PCMU", "PCMU"]);
    let dirs: Vec<_> = s.medias.iter().map(|m| m.direction).collect();
    assert_eq!(
        dirs,
        [
            Direction::RecvOnly,
            Direction::RecvOnly,
            Direction::SendOnly
        ]
    );
    // The backchannel has no rtpmap: static payload type 0.
    let back = &s.medias[2].formats[0];
    assert_eq!(
        (back.payload_type, back.clock_rate, back.channels),
        (0, 8000, 1)
    );
    assert_eq!(info(back).name, CodecName::Pcmu);
    assert_eq!(
        controls(&s, "rtsp://cam/"),
        [
            "rtsp://cam/trackID=0",
            "rtsp://cam/trackID=1",
            "rtsp://cam/trackID=5"
        ]
    );
    assert_eq!(size(&s.medias[0].formats[0]), (1920, 1080));
}

#[test]
fn reolink() {
    let s = parse("reolink.sdp");
    assert_eq!(codecs(&s), ["H264", "MPEG4-GENERIC"]);
    assert_eq!(
        controls(&s, "rtsp://192.168.1.50:554/h264Preview_01_main"),
        [
            "rtsp://192.168.1.50:554/h264Preview_01_main/track1",
            "rtsp://192.168.1.50:554/h264Preview_01_main/track2"
        ]
    );
    let v = &s.medias[0].formats[0];
    assert_eq!(size(v), (2560, 1920));
    assert_eq!(info(v).profile, "High");
    assert_eq!(info(v).level, "5.0");
    assert!(s.medias.iter().all(|m| m.direction == Direction::SendRecv));
}

#[test]
fn tapo() {
    let s = parse("tapo.sdp");
    assert!(!std::fs::read_to_string(format!(
        "{}/testdata/sdp/tapo.sdp",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .contains('\r'));
    assert_eq!(s.medias.len(), 3);
    assert_eq!(codecs(&s), ["H264", "PCMA"]);
    assert_eq!(
        s.medias[2].kind,
        MediaType::Other("application/TP-LINK".into())
    );
    assert!(s.medias[2].formats.is_empty());
    assert_eq!(
        controls(&s, "rtsp://192.168.1.20:554/stream1"),
        [
            "rtsp://192.168.1.20:554/stream1/track1",
            "rtsp://192.168.1.20:554/stream1/track2",
            "rtsp://192.168.1.20:554/stream1/track3"
        ]
    );
    assert_eq!(size(&s.medias[0].formats[0]), (1920, 1080));
}

#[test]
fn axis() {
    let s = parse("axis.sdp");
    assert_eq!(codecs(&s), ["H264", "MPEG4-GENERIC", "VND.ONVIF.METADATA"]);
    assert_eq!(s.medias[2].kind, MediaType::Application);
    assert!(s.medias[2].formats[0].info.is_none());
    // Absolute media controls win over the base.
    assert_eq!(
        controls(&s, "rtsp://ignored/")[1],
        "rtsp://192.168.0.90/axis-media/media.amp/stream=1?videocodec=h264&resolution=1280x720"
    );
    assert_eq!(size(&s.medias[0].formats[0]), (1280, 720));
    let a = &s.medias[1].formats[0];
    assert_eq!((a.clock_rate, a.channels), (16000, 1));
}

#[test]
fn gstreamer() {
    let s = parse("gstreamer.sdp");
    assert_eq!(codecs(&s), ["H264", "OPUS"]);
    assert_eq!(
        controls(&s, "rtsp://127.0.0.1:8554/test"),
        [
            "rtsp://127.0.0.1:8554/test/stream=0",
            "rtsp://127.0.0.1:8554/test/stream=1"
        ]
    );
    assert_eq!(size(&s.medias[0].formats[0]), (320, 240));
    let o = info(&s.medias[1].formats[0]);
    assert_eq!(
        (o.name, o.clock_rate, o.channels),
        (CodecName::Opus, 48000, 2)
    );
}

#[test]
fn ffmpeg_announce() {
    let s = parse("ffmpeg_announce.sdp");
    assert_eq!(codecs(&s), ["H264", "OPUS"]);
    assert_eq!(
        controls(&s, "rtsp://127.0.0.1:8554/x"),
        [
            "rtsp://127.0.0.1:8554/x/streamid=0",
            "rtsp://127.0.0.1:8554/x/streamid=1"
        ]
    );
    assert_eq!(size(&s.medias[0].formats[0]), (640, 360));
    assert_eq!(info(&s.medias[0].formats[0]).level, "3.0");
}

#[test]
fn ffmpeg_rtp_outputs() {
    let s = parse("ffmpeg_h264_aac.sdp");
    assert_eq!(codecs(&s), ["H264", "MPEG4-GENERIC"]);
    assert_eq!(size(&s.medias[0].formats[0]), (640, 360));
    let a = info(&s.medias[1].formats[0]);
    assert_eq!((a.clock_rate, a.channels), (44100, 2));
    assert_eq!(s.medias[0].port, 5004);
    // No a=control at all: the base URL is used.
    assert_eq!(controls(&s, "rtsp://h/x")[0], "rtsp://h/x");

    let s = parse("ffmpeg_h265_opus.sdp");
    assert_eq!(codecs(&s), ["H265", "OPUS"]);
    assert_eq!(size(&s.medias[0].formats[0]), (1920, 1080));
    assert_eq!(info(&s.medias[0].formats[0]).profile, "Main");

    let s = parse("ffmpeg_mjpeg_pcma.sdp");
    assert_eq!(codecs(&s), ["JPEG", "PCMA"]);
    assert_eq!(s.medias[0].formats[0].clock_rate, 90000);
    assert_eq!(info(&s.medias[0].formats[0]).name, CodecName::Mjpeg);

    let s = parse("ffmpeg_latm.sdp");
    assert_eq!(codecs(&s), ["MP4A-LATM"]);
    let a = info(&s.medias[0].formats[0]);
    assert_eq!(
        (a.name, a.clock_rate, a.channels),
        (CodecName::Aac, 44100, 2)
    );
    assert_eq!(a.extradata, [0x12, 0x10]);
}

#[test]
fn odd_inputs() {
    assert!(Session::parse("").is_err());
    assert!(Session::parse("hello world").is_err());
    // Several formats per m= line, unknown dynamic PT, session direction,
    // rtpmap with spaces, case differences, stray lines.
    let s = Session::parse(
        "v=0\nm=audio 0 RTP/AVP 0 8 101 96\na=sendonly\na=rtpmap:101 telephone-event/8000\n\
         a=rtpmap:96 l16/16000/2\ngarbage\na=fmtp:96\nm=video 0 RTP/AVP\n",
    )
    .unwrap();
    assert_eq!(codecs(&s), ["PCMU", "PCMA", "TELEPHONE-EVENT", "L16"]);
    assert_eq!(s.medias[0].direction, Direction::SendOnly);
    let l16 = info(&s.medias[0].formats[3]);
    assert_eq!(
        (l16.name, l16.clock_rate, l16.channels),
        (CodecName::PcmS16be, 16000, 2)
    );
    assert!(s.medias[1].formats.is_empty());
    assert!(Session::parse("v=0\nm=video\n").is_err());
}

#[test]
fn writer_roundtrip() {
    let h264 = parse("ffmpeg_announce.sdp").medias[0].formats[0]
        .info
        .clone()
        .unwrap();
    let h265 = parse("hikvision_h265.sdp").medias[0].formats[0]
        .info
        .clone()
        .unwrap();
    let mut aac = CodecInfo::new(CodecName::Aac, 48000);
    aac.channels = 2;
    let mut opus = CodecInfo::new(CodecName::Opus, 48000);
    opus.channels = 2;
    let pcmu = CodecInfo::new(CodecName::Pcmu, 8000);
    let jpeg = CodecInfo::new(CodecName::Mjpeg, 90000);
    let descs = [
        (&h264, 96, Direction::SendOnly),
        (&h265, 97, Direction::SendOnly),
        (&aac, 98, Direction::SendOnly),
        (&opus, 99, Direction::SendOnly),
        (&pcmu, 0, Direction::RecvOnly),
        (&jpeg, 26, Direction::SendOnly),
    ];
    let controls: Vec<String> = (0..descs.len()).map(|i| format!("trackID={i}")).collect();
    let medias: Vec<MediaDescription> = descs
        .iter()
        .zip(&controls)
        .map(
            |(&(codec, payload_type, direction), control)| MediaDescription {
                codec,
                payload_type,
                control,
                direction,
            },
        )
        .collect();
    let text = write_session("camrouter", &medias).unwrap();
    assert!(text.contains("a=rtpmap:99 opus/48000/2\r\n"));
    assert!(text.contains(
        "a=fmtp:98 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\n"
    ));
    assert!(text.contains("profile-level-id=64001E"));
    let s = Session::parse(&text).unwrap();
    assert_eq!(
        codecs(&s),
        ["H264", "H265", "MPEG4-GENERIC", "OPUS", "PCMU", "JPEG"]
    );
    assert_eq!(info(&s.medias[0].formats[0]), &h264);
    assert_eq!(info(&s.medias[1].formats[0]), &h265);
    let a = info(&s.medias[2].formats[0]);
    assert_eq!((a.clock_rate, a.channels), (48000, 2));
    assert_eq!(s.medias[4].direction, Direction::RecvOnly);
    assert_eq!(controls_of(&s), controls);
    assert!(write_session(
        "x",
        &[MediaDescription {
            codec: &CodecInfo::new(CodecName::PcmS16le, 8000),
            payload_type: 96,
            control: "a",
            direction: Direction::SendOnly,
        }]
    )
    .is_err());
}

fn controls_of(s: &Session) -> Vec<String> {
    s.medias
        .iter()
        .map(|m| m.control.clone().unwrap())
        .collect()
}
