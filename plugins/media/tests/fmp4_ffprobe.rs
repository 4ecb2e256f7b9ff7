//! Writes fMP4 from the real ffmpeg output in `testdata/` and lets ffprobe
//! read it back: codec, size, frame count and that every frame decodes.
//! Skipped (with a note) where ffprobe is not installed.

use std::process::Command;

use camrouter_media::fmp4::{Fmp4Writer, Sample};
use camrouter_media::{CodecInfo, Frame, PipeDemuxer, PipeEvent};

fn demux(name: &str) -> (Vec<CodecInfo>, Vec<Frame>) {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut d = PipeDemuxer::new();
    d.push(&data);
    d.finish();
    let (mut tracks, mut frames) = (Vec::new(), Vec::new());
    while let Some(ev) = d.poll() {
        match ev.unwrap() {
            PipeEvent::Tracks(t) => tracks = t,
            PipeEvent::Frame(f) => frames.push(f),
            other => panic!("{path}: {other:?}"),
        }
    }
    (tracks, frames)
}

/// The fMP4 bytes: init, then one fragment per frame. Elementary streams
/// have no timestamps: 25 fps is assumed.
fn mux(tracks: &[CodecInfo], frames: &[Frame]) -> Vec<u8> {
    let mut w = Fmp4Writer::new(tracks).unwrap();
    let mut out = w.init_segment();
    let mut count = vec![0i64; tracks.len()];
    for f in frames {
        let ts = f
            .pts
            .unwrap_or(count[f.track] * i64::from(tracks[f.track].clock_rate) / 25);
        count[f.track] += 1;
        let s = Sample {
            dts: ts,
            pts: ts,
            keyframe: f.keyframe,
            arrival_us: 0,
            data: &f.data,
        };
        w.write_fragment(f.track, &s, &mut out).unwrap();
    }
    out
}

/// `ffprobe -count_frames` per stream: (codec, width, height, frames).
fn probe(data: &[u8], tag: &str) -> Option<Vec<(String, u64, u64, u64)>> {
    let path =
        std::env::temp_dir().join(format!("camrouter-fmp4-{}-{tag}.mp4", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_frames")
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ffprobe not run ({e}): skipped");
            return None;
        }
    };
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let n = |s: &str| s.parse::<u64>().unwrap_or(0);
                // Audio streams have no width/height columns.
                match f.as_slice() {
                    [c, w, h, n_] => (c.to_string(), n(w), n(h), n(n_)),
                    [c, n_] => (c.to_string(), 0, 0, n(n_)),
                    _ => panic!("ffprobe line {l}"),
                }
            })
            .collect(),
    )
}

#[test]
fn h264_and_aac_from_mpegts() {
    let (tracks, frames) = demux("ts_h264_aac.ts");
    let Some(streams) = probe(&mux(&tracks, &frames), "ts") else {
        return;
    };
    assert_eq!(
        streams,
        [
            ("h264".to_string(), 320, 240, 10),
            ("aac".to_string(), 0, 0, 20)
        ]
    );
}

#[test]
fn h265_elementary() {
    let (tracks, frames) = demux("hevc_320x240.hevc");
    let Some(streams) = probe(&mux(&tracks, &frames), "hevc") else {
        return;
    };
    assert_eq!(streams, [("hevc".to_string(), 320, 240, 10)]);
}

#[test]
fn h264_1080p_elementary() {
    let (tracks, frames) = demux("h264_1920x1080.h264");
    let Some(streams) = probe(&mux(&tracks, &frames), "h264") else {
        return;
    };
    assert_eq!(streams, [("h264".to_string(), 1920, 1080, 3)]);
}

#[test]
fn aac_alone() {
    let (tracks, frames) = demux("aac_44100_stereo.aac");
    let Some(streams) = probe(&mux(&tracks, &frames), "aac") else {
        return;
    };
    assert_eq!(streams, [("aac".to_string(), 0, 0, 23)]);
}

#[test]
fn g711_and_pcm_as_flac() {
    for (file, tag) in [
        ("alaw_8k.wav", "alaw"),
        ("mulaw_8k_pipe.wav", "mulaw"),
        ("pcm_s16le_16k.wav", "s16le"),
    ] {
        let (tracks, frames) = demux(file);
        let Some(streams) = probe(&mux(&tracks, &frames), tag) else {
            return;
        };
        assert_eq!(streams, [("flac".to_string(), 0, 0, 25)], "{file}");
    }
}

/// The FLAC samples decode to exactly the PCM that went in.
#[test]
fn flac_is_lossless() {
    let (tracks, frames) = demux("pcm_s16le_16k.wav");
    let path = std::env::temp_dir().join(format!("camrouter-flac-{}.mp4", std::process::id()));
    std::fs::write(&path, mux(&tracks, &frames)).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "s16le", "-"])
        .output();
    let _ = std::fs::remove_file(&path);
    let Ok(out) = out else {
        eprintln!("ffmpeg not run: skipped");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let input: Vec<u8> = frames.iter().flat_map(|f| f.data.clone()).collect();
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input);
}

/// `rotate` and `scale`: ffprobe sees the display matrix and the aspect.
#[test]
fn rotation_and_pixel_aspect() {
    let (tracks, frames) = demux("h264_640x360.h264");
    for (deg, want) in [(90u16, "-90"), (180, "-180"), (270, "90")] {
        let mut w = Fmp4Writer::new(&tracks).unwrap();
        w.set_rotation(deg).unwrap();
        w.set_pixel_aspect(4, 3).unwrap();
        let mut out = w.init_segment();
        for (i, f) in frames.iter().enumerate() {
            let ts = i as i64 * 3600;
            let s = Sample {
                dts: ts,
                pts: ts,
                keyframe: f.keyframe,
                arrival_us: 0,
                data: &f.data,
            };
            w.write_fragment(0, &s, &mut out).unwrap();
        }
        let path =
            std::env::temp_dir().join(format!("camrouter-rot-{}-{deg}.mp4", std::process::id()));
        std::fs::write(&path, &out).unwrap();
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .arg("stream=sample_aspect_ratio:stream_side_data=rotation")
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let Ok(probe) = probe else {
            eprintln!("ffprobe not run: skipped");
            return;
        };
        let text = String::from_utf8_lossy(&probe.stdout).replace('\n', ",");
        // ffmpeg states the counter-clockwise angle that undoes the matrix.
        assert!(text.starts_with(&format!("4:3,{want},")), "{deg}: {text}");
    }
    let mut w = Fmp4Writer::new(&tracks).unwrap();
    assert!(w.set_rotation(45).is_err());
    assert!(w.set_pixel_aspect(0, 1).is_err());
}

/// AV1 from libsvtav1's fragmented MP4, through the FLV muxer and demuxer
/// (Enhanced RTMP `av01`) and back into fMP4: ffmpeg decodes every frame.
#[test]
fn av1_through_flv_and_fmp4() {
    use camrouter_media::flv::{FlvDemuxer, FlvEvent, FlvMuxer};
    let (tracks, frames) = demux("av1_320x240_frag.mp4");
    assert_eq!(frames.len(), 10);
    assert_eq!(
        frames.iter().filter(|f| f.keyframe).count(),
        2,
        "-g 5: two keyframes"
    );
    let m = FlvMuxer::new(&tracks).unwrap();
    let mut flv = m.header();
    for (i, f) in frames.iter().enumerate() {
        flv.extend(m.frame(0, i as u32 * 100, 0, f.keyframe, &f.data).unwrap());
    }
    let mut d = FlvDemuxer::new();
    d.push(&flv);
    let (mut info, mut back) = (None, Vec::new());
    while let Some(ev) = d.poll() {
        match ev.unwrap() {
            FlvEvent::Config { info: i, .. } => info = Some(i),
            FlvEvent::Frame {
                keyframe,
                dts_ms,
                data,
                ..
            } => back.push(Frame {
                track: 0,
                keyframe,
                pts: Some(dts_ms * 90),
                dts: Some(dts_ms * 90),
                data,
            }),
            FlvEvent::Header { .. } => {}
        }
    }
    let info = info.unwrap();
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(info.extradata, tracks[0].extradata);
    let same: Vec<_> = back.iter().map(|f| (&f.data, f.keyframe)).collect();
    let orig: Vec<_> = frames.iter().map(|f| (&f.data, f.keyframe)).collect();
    assert_eq!(same, orig);
    let w = Fmp4Writer::new(std::slice::from_ref(&info)).unwrap();
    assert_eq!(w.mime_codecs(), "av01.0.00M.08");
    let Some(streams) = probe(&mux(&[info], &back), "av1") else {
        return;
    };
    assert_eq!(streams, [("av1".to_string(), 320, 240, 10)]);
}
