//! The Add page's lists, in go2rtc's shape (`{"sources": [{name, info,
//! url}]}`): `/api/ffmpeg/hardware`, every hardware encoder this platform
//! may have with the outcome of a one-second test encode, and
//! `/api/ffmpeg/devices`, the V4L2 cameras and ALSA cards of this machine.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A test encode that has not ended by then counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// `(engine, codec, ffmpeg encoder)` worth trying on this platform.
fn candidates() -> &'static [(&'static str, &'static str, &'static str)] {
    if cfg!(any(target_arch = "arm", target_arch = "aarch64")) {
        &[
            ("v4l2m2m", "h264", "h264_v4l2m2m"),
            ("v4l2m2m", "h265", "hevc_v4l2m2m"),
        ]
    } else {
        &[
            ("vaapi", "h264", "h264_vaapi"),
            ("vaapi", "h265", "hevc_vaapi"),
            ("vaapi", "mjpeg", "mjpeg_vaapi"),
            ("cuda", "h264", "h264_nvenc"),
            ("cuda", "h265", "hevc_nvenc"),
        ]
    }
}

fn probe_args(engine: &str, encoder: &str) -> Vec<String> {
    let mut a: Vec<String> = match engine {
        "vaapi" => vec!["-init_hw_device", "vaapi"],
        "cuda" => vec!["-init_hw_device", "cuda"],
        _ => vec![],
    }
    .into_iter()
    .map(String::from)
    .collect();
    a.extend(["-f", "lavfi", "-i", "testsrc2", "-t", "1"].map(String::from));
    if engine == "vaapi" {
        a.extend(["-vf", "format=nv12,hwupload"].map(String::from));
    }
    a.extend(["-c", encoder, "-f", "null", "-"].map(String::from));
    a
}

/// "OK", or why the test encode failed (ffmpeg's last error line).
fn outcome(bin: &str, args: &[String]) -> String {
    let child = Command::new(bin)
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return format!("{bin}: {e}"),
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    match status {
        Some(s) if s.success() => "OK".into(),
        Some(_) => err
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("failed")
            .chars()
            .take(200)
            .collect(),
        None => format!("no answer in {} s", PROBE_TIMEOUT.as_secs()),
    }
}

pub fn hardware(bin: &str) -> Value {
    let sources: Vec<Value> = candidates()
        .iter()
        .map(|(engine, codec, encoder)| {
            json!({
                "name": format!("{} {}", engine.to_uppercase(), codec.to_uppercase()),
                "info": outcome(bin, &probe_args(engine, encoder)),
                "url": format!("ffmpeg:...#video={codec}#hardware={engine}"),
            })
        })
        .collect();
    json!({ "sources": sources })
}

pub fn devices() -> Value {
    let mut sources = Vec::new();
    // V4L2: /dev/videoN, named as the driver names it.
    let mut videos: Vec<u32> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("video")?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    videos.sort_unstable();
    for n in videos {
        let name = std::fs::read_to_string(format!("/sys/class/video4linux/video{n}/name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("video{n}"));
        sources.push(json!({
            "name": name,
            "info": format!("/dev/video{n}"),
            "url": format!("ffmpeg:device?video={n}#video=h264"),
        }));
    }
    // ALSA: " 0 [PCH            ]: HDA-Intel - HDA Intel PCH"
    if let Ok(cards) = std::fs::read_to_string("/proc/asound/cards") {
        for line in cards.lines() {
            let Some((head, desc)) = line.split_once("]: ") else {
                continue;
            };
            let Ok(n) = head.trim().split(' ').next().unwrap_or("").parse::<u32>() else {
                continue;
            };
            sources.push(json!({
                "name": desc.trim(),
                "info": format!("ALSA hw:{n}"),
                "url": format!("ffmpeg:device?audio=hw:{n}#audio=opus"),
            }));
        }
    }
    json!({ "sources": sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vaapi_probe_uploads_frames_and_others_do_not() {
        let a = probe_args("vaapi", "h264_vaapi").join(" ");
        assert_eq!(
            a,
            "-init_hw_device vaapi -f lavfi -i testsrc2 -t 1 -vf format=nv12,hwupload -c h264_vaapi -f null -"
        );
        let c = probe_args("cuda", "hevc_nvenc").join(" ");
        assert_eq!(
            c,
            "-init_hw_device cuda -f lavfi -i testsrc2 -t 1 -c hevc_nvenc -f null -"
        );
    }

    #[test]
    fn a_missing_binary_is_named_not_a_crash() {
        let o = outcome("/nonexistent/ffmpeg", &[]);
        assert!(o.starts_with("/nonexistent/ffmpeg: "), "{o}");
    }
}
