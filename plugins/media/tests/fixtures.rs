//! Runs `PipeDemuxer` over real ffmpeg output in `testdata/` (see
//! testdata/README.md for the commands), whole and in 7-byte chunks.

use camrouter_media::{CodecInfo, CodecName, Error, Frame, PipeDemuxer, PipeEvent};

struct Run {
    format: String,
    tracks: Vec<CodecInfo>,
    frames: Vec<Frame>,
    errors: Vec<Error>,
    dropped_before_keyframe: u64,
}

fn run(data: &[u8], chunk: usize) -> Run {
    let mut d = PipeDemuxer::new();
    let mut events = Vec::new();
    for c in data.chunks(chunk) {
        d.push(c);
        while let Some(ev) = d.poll() {
            events.push(ev);
        }
    }
    d.finish();
    while let Some(ev) = d.poll() {
        events.push(ev);
    }
    let mut r = Run {
        format: d.format_name().to_string(),
        tracks: vec![],
        frames: vec![],
        errors: vec![],
        dropped_before_keyframe: d.dropped_before_keyframe(),
    };
    for ev in events {
        match ev {
            Ok(PipeEvent::Tracks(t)) => {
                assert!(r.tracks.is_empty(), "Tracks emitted twice");
                assert!(r.frames.is_empty(), "frame before Tracks");
                r.tracks = t;
            }
            Ok(PipeEvent::Frame(f)) => r.frames.push(f),
            Ok(other) => panic!("no fixture is raw video: {other:?}"),
            Err(e) => r.errors.push(e),
        }
    }
    r
}

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Run whole and chunked; both must agree exactly.
fn run_both(name: &str) -> Run {
    let data = load(name);
    let whole = run(&data, data.len().max(1));
    let chunked = run(&data, 7);
    assert_eq!(whole.tracks, chunked.tracks, "{name}");
    assert_eq!(whole.frames, chunked.frames, "{name}");
    assert!(whole.errors.is_empty(), "{name}: {:?}", whole.errors);
    assert!(chunked.errors.is_empty(), "{name}: {:?}", chunked.errors);
    whole
}

fn count(r: &Run, track: usize) -> (usize, usize) {
    let f: Vec<_> = r.frames.iter().filter(|f| f.track == track).collect();
    (f.len(), f.iter().filter(|f| f.keyframe).count())
}

fn check_video(
    name: &str,
    codec: CodecName,
    wh: (u32, u32),
    profile: &str,
    level: &str,
    frames: (usize, usize),
) {
    let r = run_both(name);
    assert_eq!(r.tracks.len(), 1, "{name}");
    let t = &r.tracks[0];
    assert_eq!(t.name, codec, "{name}");
    assert_eq!((t.width, t.height), wh, "{name}");
    assert_eq!(t.profile, profile, "{name}");
    assert_eq!(t.level, level, "{name}");
    assert_eq!(t.clock_rate, 90000);
    assert_eq!(count(&r, 0), frames, "{name}");
    assert_eq!(r.dropped_before_keyframe, 0);
    assert!(r.frames[0].keyframe);
    assert!(r.frames.iter().all(|f| f.pts.is_none()));
    if codec != CodecName::Mjpeg {
        assert!(!t.extradata.is_empty());
        // Every frame is valid length-prefixed data.
        for f in &r.frames {
            assert!(camrouter_media::annexb::avcc_units(&f.data).all(|n| n.is_ok()));
        }
    }
}

#[test]
fn h264_640x360_high() {
    check_video(
        "h264_640x360.h264",
        CodecName::H264,
        (640, 360),
        "High",
        "3.0",
        (10, 2),
    );
    assert_eq!(run_both("h264_640x360.h264").format, "h264");
}

#[test]
fn h264_1080p_cropped() {
    check_video(
        "h264_1920x1080.h264",
        CodecName::H264,
        (1920, 1080),
        "High",
        "4.0",
        (3, 1),
    );
}

#[test]
fn hevc_1080p_main() {
    check_video(
        "hevc_1920x1080.hevc",
        CodecName::H265,
        (1920, 1080),
        "Main",
        "4.0",
        (3, 1),
    );
    assert_eq!(run_both("hevc_1920x1080.hevc").format, "hevc");
}

#[test]
fn hevc_320x240() {
    check_video(
        "hevc_320x240.hevc",
        CodecName::H265,
        (320, 240),
        "Main",
        "2.0",
        (10, 2),
    );
}

#[test]
fn mjpeg_320x240() {
    check_video(
        "mjpeg_320x240.mjpeg",
        CodecName::Mjpeg,
        (320, 240),
        "",
        "",
        (5, 5),
    );
    let r = run_both("mjpeg_320x240.mjpeg");
    assert_eq!(r.format, "mjpeg");
    for f in &r.frames {
        assert!(f.data.starts_with(&[0xFF, 0xD8]) && f.data.ends_with(&[0xFF, 0xD9]));
    }
}

#[test]
fn mpegts_h264_aac() {
    let r = run_both("ts_h264_aac.ts");
    assert_eq!(r.format, "mpegts");
    assert_eq!(r.tracks.len(), 2);
    let (v, a) = (&r.tracks[0], &r.tracks[1]);
    assert_eq!((v.name, v.width, v.height), (CodecName::H264, 320, 240));
    assert_eq!(v.profile, "High");
    assert_eq!(
        (a.name, a.clock_rate, a.channels),
        (CodecName::Aac, 48000, 1)
    );
    assert_eq!(a.extradata, vec![0x11, 0x88]); // AAC LC, 48 kHz, mono
    assert_eq!(count(&r, 0), (10, 2));
    assert_eq!(count(&r, 1), (20, 20));
    assert!(r.frames.iter().all(|f| f.pts.is_some()));
    // Audio timestamps advance by 1024 samples per frame.
    let apts: Vec<i64> = r
        .frames
        .iter()
        .filter(|f| f.track == 1)
        .filter_map(|f| f.pts)
        .collect();
    for w in apts.windows(2) {
        assert!((w[1] - w[0] - 1024).abs() <= 1, "{apts:?}");
    }
}

#[test]
fn adts_44100_stereo() {
    let r = run_both("aac_44100_stereo.aac");
    assert_eq!(r.format, "adts");
    let t = &r.tracks[0];
    assert_eq!(
        (t.name, t.clock_rate, t.channels),
        (CodecName::Aac, 44100, 2)
    );
    assert_eq!(t.extradata, vec![0x12, 0x10]);
    assert_eq!(count(&r, 0), (23, 23));
}

fn check_wav(name: &str, codec: CodecName, rate: u32, frames: usize, block: usize) {
    let r = run_both(name);
    assert_eq!(r.format, "wav");
    let t = &r.tracks[0];
    assert_eq!(
        (t.name, t.clock_rate, t.channels),
        (codec, rate, 1),
        "{name}"
    );
    assert_eq!(count(&r, 0).0, frames, "{name}");
    assert!(r.frames.iter().all(|f| f.data.len() == block), "{name}");
}

#[test]
fn wav_formats() {
    check_wav("pcm_s16le_16k.wav", CodecName::PcmS16le, 16000, 25, 640);
    check_wav("alaw_8k.wav", CodecName::Pcma, 8000, 25, 160);
    // Written to a pipe: RIFF and data sizes are 0xFFFFFFFF.
    check_wav("mulaw_8k_pipe.wav", CodecName::Pcmu, 8000, 25, 160);
}

#[test]
fn video_before_keyframe_is_dropped() {
    // Cut the stream right after the first keyframe's data begins, so the
    // demuxer joins mid-GOP.
    let data = load("h264_640x360.h264");
    let starts: Vec<usize> = data
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1, 0x41] || *w == [0, 0, 1, 0x01])
        .map(|(i, _)| i)
        .collect();
    // Keep SPS/PPS at the front so the track can be described.
    let head_end = data.windows(4).position(|w| w == [0, 0, 1, 0x06]).unwrap();
    let mut joined = data[..head_end].to_vec();
    joined.extend_from_slice(&data[starts[1]..]);
    let r = run(&joined, 7);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.dropped_before_keyframe > 0);
    assert!(r.frames[0].keyframe);
    assert_eq!(r.tracks[0].width, 640);
}

#[test]
fn garbage_and_truncation() {
    // Random bytes: a clear error, no panic.
    let mut x: u64 = 0x1234_5678;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    for chunk in [1, 7, 100_000] {
        let r = run(&random, chunk);
        assert!(
            matches!(r.errors.as_slice(), [Error::UnknownFormat { .. }]),
            "{:?}",
            r.errors
        );
        assert!(r.frames.is_empty());
    }
    // Long run of zeros: waits up to the limit, then gives up.
    let r = run(&vec![0u8; 70_000], 1000);
    assert!(matches!(r.errors.as_slice(), [Error::UnknownFormat { .. }]));
    // Empty input.
    let r = run(&[], 1);
    assert!(matches!(r.errors.as_slice(), [Error::UnknownFormat { .. }]));
    // A 0-length SPS and other broken NALs.
    let r = run(
        &[
            0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x80,
        ],
        3,
    );
    assert!(r
        .errors
        .iter()
        .any(|e| !matches!(e, Error::UnknownFormat { .. })));
    assert!(r.tracks.is_empty());
    // Truncated headers of every fixture, and every fixture with flipped bytes.
    for name in [
        "h264_640x360.h264",
        "hevc_320x240.hevc",
        "mjpeg_320x240.mjpeg",
        "ts_h264_aac.ts",
        "aac_44100_stereo.aac",
        "pcm_s16le_16k.wav",
        "mulaw_8k_pipe.wav",
    ] {
        let data = load(name);
        for len in [1, 2, 3, 5, 8, 13, 30, 60, 100, 200, 400] {
            let _ = run(&data[..len.min(data.len())], 3);
        }
        let mut corrupt = data.clone();
        for i in (0..corrupt.len()).step_by(97) {
            corrupt[i] = corrupt[i].wrapping_mul(31).wrapping_add(7);
        }
        let _ = run(&corrupt, 7);
        // Random tail after a valid head.
        let mut tail = data[..data.len().min(500)].to_vec();
        tail.extend_from_slice(&random[..20_000]);
        let _ = run(&tail, 11);
    }
}
