//! H.265 snapshots through ffmpeg until a native decoder exists: the
//! keyframe as Annex-B on stdin, one JPEG on stdout.

use std::process::Stdio;
use std::time::Duration;

use camrouter_media::annexb::avcc_units;
use tokio::io::AsyncWriteExt;

use crate::params::{Rotate, Shape};

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn snapshot(extradata: &[u8], au: &[u8], shape: &Shape) -> Result<Vec<u8>, String> {
    let mut annexb = Vec::with_capacity(extradata.len() + au.len() + 32);
    for nal in avcc_units(extradata).chain(avcc_units(au)) {
        let nal = nal.map_err(|e| format!("mjpeg: h265: {e}"))?;
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "hevc",
        "-i",
        "-",
        "-frames:v",
        "1",
    ]);
    let filters = filters(shape);
    if !filters.is_empty() {
        cmd.args(["-vf", &filters]);
    }
    cmd.args(["-c:v", "mjpeg", "-f", "image2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("mjpeg: ffmpeg: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("mjpeg: ffmpeg stdin")?;
    let run = async move {
        // Written while ffmpeg reads: a large keyframe exceeds the pipe buffer.
        let write = async move {
            let _ = stdin.write_all(&annexb).await;
            drop(stdin);
        };
        let (_, out) = tokio::join!(write, child.wait_with_output());
        out
    };
    let out = tokio::time::timeout(TIMEOUT, run)
        .await
        .map_err(|_| "mjpeg: ffmpeg took too long for one frame".to_string())?
        .map_err(|e| format!("mjpeg: ffmpeg: {e}"))?;
    if !out.status.success() || out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("mjpeg: ffmpeg: {}", err.trim()));
    }
    Ok(out.stdout)
}

fn filters(shape: &Shape) -> String {
    let mut f = Vec::new();
    // The same bound as the in-process path: a page's `<img>` asking for
    // width=100000 must not make ffmpeg allocate a giant picture.
    let cap = |v: Option<u32>| v.map(|v| v.clamp(1, crate::decode::MAX_SIDE));
    match (cap(shape.width), cap(shape.height)) {
        (Some(w), Some(h)) => f.push(format!("scale={w}:{h}")),
        (Some(w), None) => f.push(format!("scale={w}:-1")),
        (None, Some(h)) => f.push(format!("scale=-1:{h}")),
        (None, None) => {}
    }
    match shape.rotate {
        Rotate::None => {}
        Rotate::Cw90 => f.push("transpose=1".into()),
        Rotate::Cw180 => f.push("transpose=1,transpose=1".into()),
        Rotate::Cw270 => f.push("transpose=2".into()),
    }
    f.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_rotation_filters() {
        let s = |width, height, rotate| Shape {
            width,
            height,
            rotate,
            ..Shape::default()
        };
        assert_eq!(filters(&s(None, None, Rotate::None)), "");
        assert_eq!(
            filters(&s(Some(320), None, Rotate::Cw90)),
            "scale=320:-1,transpose=1"
        );
        assert_eq!(
            filters(&s(None, Some(90), Rotate::Cw270)),
            "scale=-1:90,transpose=2"
        );
        assert_eq!(
            filters(&s(Some(100_000), Some(70_000), Rotate::None)),
            "scale=4096:4096"
        );
    }
}
