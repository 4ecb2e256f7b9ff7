//! `camrouter-bench`: one RTSP publisher (ffmpeg, `-c copy` of a 2 Mb/s
//! 720p H.264+AAC clip), N RTSP/TCP readers (lightweight, in this process),
//! and the server's CPU and memory read from /proc. Not a test: numbers on a
//! shared machine are noisy, so run it a few times.
//!
//! ```text
//! cargo build --release -p camrouter -p camrouter-plugin-rtsp -p camrouter-bench
//! target/release/camrouter-bench --readers 200 --seconds 20
//! ```
//!
//! HTTP viewers instead of RTSP ones (build `camrouter-plugin-mp4` too):
//! `--mse` (MSE over `/api/ws`, as go2rtc's player) or `--http PATH`
//! (`/api/stream.mp4?src=bench`, `/api/stream.ts?src=bench`, ...). With
//! `--first N` no load is run: N times, with the stream running, the time
//! from connecting to the first MSE media fragment and to a whole
//! `frame.jpeg` (build `camrouter-plugin-mjpeg` too) is measured.
//! `--jpeg N --size 1920x1080`: N `frame.jpeg` requests (p50/p95) with the
//! stream running, then the server's RSS without and with one transcoding
//! `stream.mjpeg` client. `--interval-ms MS` spaces the requests (default
//! 150, within one GOP; 2500 is over the clip's 2 s GOP, so each request
//! finds a new keyframe, as Home Assistant's every ~10 s).
//! `--webrtc`: WebRTC viewers over WHEP (build `camrouter-plugin-webrtc`
//! too), each a real ICE/DTLS/SRTP session in this process (`webrtc.rs`);
//! `--video-only` leaves audio out of their offers.
//! `--webrtc --first N`: N new viewers, one after the other, with the
//! stream running (first alone, then beside a viewer already playing):
//! the time from the offer's POST to the answer, ICE, DTLS and the first
//! whole IDR access unit. `--browser` adds the same in headless Chromium
//! (`tests/browser/webrtc-first.html` through `visit.mjs`; node and the
//! playwright-core of `tests/browser/node_modules`): to the first frame's
//! arrival, decode and presentation (`requestVideoFrameCallback`).
//! `--rtmp`: RTMP players (build `camrouter-plugin-rtmp` too), each the
//! plugin's sans-IO handshake and client session up to `NetStream.Play.Start`,
//! then bytes counted.

mod webrtc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use camrouter_rtsp::proto::client::{Client, ClientConfig, ClientEvent, MediaSetup};
use camrouter_rtsp::proto::url::join_control;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    readers: usize,
    seconds: u64,
    server: PathBuf,
    /// Extra server command (e.g. a go2rtc binary) to compare: `{config}` is
    /// replaced with the config file path.
    server_cmd: Option<String>,
    /// AAC sample rate of the clip: 48000 gives ~47 audio frames/s, a
    /// camera's 16000 ~16/s (each frame is one write per reader).
    audio_rate: u32,
    /// What the readers are.
    viewer: Viewer,
    /// Instant-start samples instead of a load run.
    first: Option<usize>,
    /// `frame.jpeg` latency samples and the memory of one transcode
    /// instead of a load run.
    jpeg: Option<usize>,
    /// The clip's picture size, `WxH`.
    size: (u32, u32),
    /// Pause between `--jpeg` requests.
    interval_ms: u64,
    /// `--webrtc --first`: Chromium joins too.
    browser: bool,
}

#[derive(Clone)]
enum Viewer {
    Rtsp,
    /// MSE over `/api/ws`.
    Mse,
    /// A GET of this path, body counted.
    Http(String),
    /// WebRTC over WHEP, RTP payload counted.
    WebRtc,
    /// RTMP play, bytes counted after `NetStream.Play.Start`.
    Rtmp,
}

fn parse_args() -> anyhow::Result<Args> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut a = Args {
        readers: 200,
        seconds: 20,
        server: exe_dir.join("camrouter"),
        server_cmd: None,
        audio_rate: 48000,
        viewer: Viewer::Rtsp,
        first: None,
        jpeg: None,
        size: (1280, 720),
        interval_ms: 150,
        browser: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| anyhow!("{k} needs a value"));
        match k.as_str() {
            "--readers" => a.readers = v()?.parse()?,
            "--seconds" => a.seconds = v()?.parse()?,
            "--server" => a.server = PathBuf::from(v()?),
            "--server-cmd" => a.server_cmd = Some(v()?),
            "--audio-rate" => a.audio_rate = v()?.parse()?,
            "--mse" => a.viewer = Viewer::Mse,
            "--webrtc" => a.viewer = Viewer::WebRtc,
            "--video-only" => webrtc::VIDEO_ONLY.store(true, std::sync::atomic::Ordering::Relaxed),
            "--rtmp" => a.viewer = Viewer::Rtmp,
            "--http" => a.viewer = Viewer::Http(v()?),
            "--first" => a.first = Some(v()?.parse()?),
            "--jpeg" => a.jpeg = Some(v()?.parse()?),
            "--interval-ms" => a.interval_ms = v()?.parse()?,
            "--browser" => a.browser = true,
            "--size" => {
                let s = v()?;
                let (w, h) = s
                    .split_once('x')
                    .ok_or_else(|| anyhow!("--size WxH, not {s}"))?;
                a.size = (w.parse()?, h.parse()?);
            }
            _ => bail!("usage: camrouter-bench [--readers N] [--seconds S] [--audio-rate HZ] [--size WxH] [--mse | --http PATH | --webrtc [--video-only] | --rtmp] [--first N [--browser] | --jpeg N [--interval-ms MS]] [--server PATH] [--server-cmd 'go2rtc -c {{config}}']"),
        }
    }
    Ok(a)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Kills the child when dropped (by PID: only processes we started).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn make_clip(dir: &Path, audio_rate: u32, (w, h): (u32, u32)) -> anyhow::Result<PathBuf> {
    let clip = dir.join("clip.mp4");
    // 2 Mb/s at 720p, the same bits per pixel at other sizes.
    let kbps = (u64::from(w) * u64::from(h) * 2000 / (1280 * 720)).max(200);
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={w}x{h}:rate=25"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={audio_rate}"))
        .args(["-t", "30"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v"])
        .arg(format!("{}k", kbps * 95 / 100))
        .arg("-maxrate")
        .arg(format!("{kbps}k"))
        .arg("-bufsize")
        .arg(format!("{kbps}k"))
        .args(["-g", "50", "-c:a", "aac", "-b:a", "96k"])
        .arg(&clip)
        .status()
        .context("ffmpeg (needed to make the clip)")?;
    if !st.success() {
        bail!("ffmpeg failed to make the clip");
    }
    Ok(clip)
}

/// utime+stime in clock ticks, and RSS/HWM in KiB, of a process.
fn proc_stats(pid: u32) -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((ticks, kib("VmRSS:"), kib("VmHWM:")))
}

fn clock_ticks() -> f64 {
    // SAFETY-free: sysconf via getconf would need a process; 100 is Linux's
    // USER_HZ on every mainstream architecture.
    100.0
}

/// A reader: RTSP handshake with the sans-IO client, then count bytes.
async fn reader(url: String, bytes: Arc<AtomicU64>) -> anyhow::Result<()> {
    let addr = url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
    let mut c = Client::new(ClientConfig::play(url.clone()))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut playing = false;
    loop {
        while let Some(out) = c.poll_transmit() {
            tcp.write_all(&out).await?;
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                ClientEvent::Described { sdp, base_url, .. } => {
                    let text = String::from_utf8_lossy(&sdp).into_owned();
                    let controls: Vec<MediaSetup> = text
                        .lines()
                        .filter_map(|l| l.trim().strip_prefix("a=control:"))
                        .filter(|c| *c != "*")
                        .map(|c| MediaSetup::tcp(join_control(&base_url, c)))
                        .collect();
                    c.setup(controls)?;
                }
                ClientEvent::Playing { .. } => playing = true,
                _ => {}
            }
        }
        while let Some(out) = c.poll_transmit() {
            tcp.write_all(&out).await?;
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            bail!("server closed");
        }
        if playing {
            // From here on only media flows: count it, parse nothing.
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            loop {
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    bail!("server closed");
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        c.feed(&buf[..n])?;
    }
}

/// An RTMP player: handshake, connect, createStream, play; from
/// `NetStream.Play.Start` on, the bytes are counted and not parsed (no
/// acknowledgements: our server does not wait for them).
async fn rtmp_player(url: String, bytes: Arc<AtomicU64>) -> anyhow::Result<()> {
    use camrouter_rtmp::client::{ClientEvent, ClientSession, RtmpUrl};
    let u = RtmpUrl::parse(&url).map_err(|e| anyhow!(e))?;
    let mut tcp = tokio::net::TcpStream::connect(u.addr()).await?;
    tcp.write_all(&camrouter_rtmp::handshake::client_hello())
        .await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut hs = Vec::new();
    let rest = loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        hs.extend_from_slice(&buf[..n]);
        if let Some((c2, rest)) = camrouter_rtmp::handshake::client_reply(&hs)? {
            tcp.write_all(&c2).await?;
            break rest;
        }
    };
    let mut session = ClientSession::new(&u);
    let mut events = session.push(&rest)?;
    loop {
        let mut started = false;
        for e in events {
            match e {
                ClientEvent::StreamCreated => session.play(&u.stream),
                ClientEvent::Refused(why) => bail!("refused: {why}"),
                ClientEvent::Started => started = true,
                ClientEvent::Media(_) => {}
            }
        }
        let out = std::mem::take(&mut session.out);
        tcp.write_all(&out).await?;
        if started {
            loop {
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    bail!("server closed");
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            bail!("server closed");
        }
        events = session.push(&buf[..n])?;
    }
}

/// What go2rtc's player offers for MSE (any `avc1`/`mp4a` is matched).
const MSE_CODECS: &str =
    r#"{"type":"mse","value":"avc1.640029,avc1.64002A,avc1.640033,mp4a.40.2,mp4a.40.5,flac,opus"}"#;

/// An MSE viewer: `/api/ws`, the `mse` request, then binary messages.
/// Calls `on_binary` with each message's size; stops when it says so.
async fn mse(api: u16, mut on_binary: impl FnMut(usize) -> bool) -> anyhow::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", api)).await?;
    let url = format!("ws://127.0.0.1:{api}/api/ws?src=bench");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    ws.send(Message::text(MSE_CODECS)).await?;
    while let Some(m) = ws.next().await {
        match m? {
            Message::Binary(b) if !on_binary(b.len()) => return Ok(()),
            Message::Text(t) if t.contains("error") => bail!("mse: {t}"),
            _ => {}
        }
    }
    bail!("server closed")
}

/// A GET of `path`; the answer's bytes (head and body) are counted until
/// the server closes.
async fn http_get(api: u16, path: &str, bytes: &AtomicU64) -> anyhow::Result<()> {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", api)).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Instant start: `n` times, the time to the first MSE media fragment (the
/// message after the init segment) and to a whole `frame.jpeg`.
async fn first_samples(api: u16, n: usize) -> anyhow::Result<()> {
    let mut mse_ms = Vec::new();
    let mut jpeg_ms = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut seen = 0;
        mse(api, |_| {
            seen += 1;
            seen < 2
        })
        .await?;
        mse_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let got = AtomicU64::new(0);
        http_get(api, "/api/frame.jpeg?src=bench", &got).await?;
        jpeg_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if got.load(Ordering::Relaxed) < 1000 {
            bail!(
                "frame.jpeg: a short answer ({} bytes)",
                got.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (name, v) in [
        ("first MSE fragment", &mut mse_ms),
        ("frame.jpeg", &mut jpeg_ms),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:<20} median {:.1} ms, min {:.1}, max {:.1} ({} samples)",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1],
            v.len()
        );
    }
    Ok(())
}

/// `tests/browser/webrtc-first.html`, served by the server under test.
const FIRST_PAGE: &str = include_str!("../../tests/browser/webrtc-first.html");

/// Median, p95 (nearest rank) and range of samples in ms.
fn summary(name: &str, v: &mut [f64]) {
    if v.is_empty() {
        println!("{name:<28} no samples");
        return;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: usize| v[(v.len() * p).div_ceil(100).max(1) - 1];
    println!(
        "{name:<28} median {:6.1} ms, p95 {:6.1}, min {:6.1}, max {:6.1} ({} samples)",
        rank(50),
        rank(95),
        v[0],
        v[v.len() - 1],
        v.len()
    );
}

/// A pause of 250–750 ms, so the joins fall at different points of the
/// GOP (no need for a good generator).
fn spread() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(250 + u64::from(nanos % 500))
}

/// Instant start over WebRTC: `n` new viewers with the stream running,
/// first with no other WebRTC viewer (the feed is made for each), then
/// beside one that plays throughout (the feed exists); with `browser`,
/// the same in headless Chromium.
async fn webrtc_first_samples(api: u16, n: usize, browser: bool) -> anyhow::Result<()> {
    let mut background = None;
    for phase in ["alone", "beside a viewer"] {
        if phase != "alone" {
            let bytes: Arc<AtomicU64> = Arc::default();
            let b = bytes.clone();
            background = Some(tokio::spawn(webrtc::viewer(api, b)));
            while bytes.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        println!("-- {n} WHEP viewers joining one after the other, {phase} (ms from the POST)");
        let mut cols: [Vec<f64>; 5] = Default::default();
        for _ in 0..n {
            let f = webrtc::first_frame(api).await?;
            for (c, v) in
                cols.iter_mut()
                    .zip([f.answer, f.ice, f.connected, f.first_rtp, f.keyframe])
            {
                c.push(v);
            }
            tokio::time::sleep(spread()).await;
        }
        for (name, c) in [
            "answer",
            "ICE connected",
            "DTLS connected",
            "first video RTP",
            "whole IDR (SPS+PPS+IDR)",
        ]
        .iter()
        .zip(cols.iter_mut())
        {
            summary(name, c);
        }
        if browser {
            chromium_first(api, n, phase)?;
        }
    }
    if let Some(b) = background {
        b.abort();
    }
    Ok(())
}

/// The Chromium page's samples, summarised.
fn chromium_first(api: u16, n: usize, phase: &str) -> anyhow::Result<()> {
    let visit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/visit.mjs");
    let out = Command::new("node")
        .arg(&visit)
        .arg(format!(
            "http://127.0.0.1:{api}/webrtc-first.html?src=bench&n={n}"
        ))
        .env("VISIT_TIMEOUT_MS", (30_000 + n * 12_000).to_string())
        .output()
        .context("node (tests/browser/visit.mjs)")?;
    if !out.status.success() {
        bail!("chromium: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!("-- {n} Chromium viewers joining one after the other, {phase} (ms from the POST)");
    if let Some(e) = v["errors"].as_array().filter(|e| !e.is_empty()) {
        println!("errors: {e:?}");
    }
    let samples = v["samples"].as_array().cloned().unwrap_or_default();
    for (key, name) in [
        ("answer", "answer"),
        ("ice", "ICE connected"),
        ("connected", "DTLS connected"),
        ("received", "first frame received"),
        ("decoded", "first frame decoded"),
        ("presented", "first frame presented"),
    ] {
        let mut c: Vec<f64> = samples.iter().filter_map(|s| s[key].as_f64()).collect();
        summary(name, &mut c);
    }
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rss(pid: u32) -> anyhow::Result<u64> {
    Ok(proc_stats(pid).ok_or_else(|| anyhow!("server exited"))?.1)
}

/// `frame.jpeg` with the stream running, `n` times (p50/p95 of the time to
/// the whole answer), then the server's memory: before any snapshot, after
/// them (the stream's snapshot decoder is kept), and with one `stream.mjpeg`
/// client (one transcoder: its own decoder and encoder) against after it
/// left. RSS, so allocator slack counts too: a figure, not an exact size.
async fn jpeg_samples(api: u16, pid: u32, n: usize, interval_ms: u64) -> anyhow::Result<()> {
    let before = rss(pid)?;
    let mut ms = Vec::new();
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let got = AtomicU64::new(0);
        http_get(api, "/api/frame.jpeg?src=bench", &got).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        size = got.load(Ordering::Relaxed);
        if size < 1000 {
            bail!("frame.jpeg: a short answer ({size} bytes)");
        }
        // Spread the requests: within one GOP most find the keyframe an
        // earlier one decoded; over a GOP apart each finds a new one.
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
    let after_snapshots = rss(pid)?;
    ms.sort_by(f64::total_cmp);
    let pct = |p: usize| ms[(ms.len() * p / 100).min(ms.len() - 1)];
    println!(
        "frame.jpeg         p50 {:.1} ms, p95 {:.1} ms, min {:.1}, max {:.1} ({n} samples {interval_ms} ms apart, ~{} kB each)",
        pct(50),
        pct(95),
        ms[0],
        ms[ms.len() - 1],
        size / 1000
    );
    // One transcoding stream: a stream.mjpeg client reading for 5 s.
    let frames = Arc::new(AtomicU64::new(0));
    let reader = {
        let frames = frames.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                http_get(api, "/api/stream.mjpeg?src=bench", &frames),
            )
            .await;
        })
    };
    let mut peak = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss(pid)?);
    }
    let _ = reader.await;
    // The transcoder leaves the graph when its last client is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(pid)?;
    let mjpeg_mbps = frames.load(Ordering::Relaxed) as f64 * 8.0 / 5.0 / 1e6;
    println!(
        "server RSS         {:.1} MB before any snapshot",
        mb(before)
    );
    println!(
        "                   {:.1} MB after the snapshots (+{:.1}: the stream's snapshot decoder)",
        mb(after_snapshots),
        mb(after_snapshots.saturating_sub(before))
    );
    println!(
        "                   {:.1} MB peak with one stream.mjpeg client ({mjpeg_mbps:.1} Mb/s), {:.1} MB after it left: one transcode +{:.1} MB",
        mb(peak),
        mb(after),
        mb(peak.saturating_sub(after_snapshots))
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("camrouter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip = make_clip(&dir, args.audio_rate, args.size)?;
    let (api, rtsp, webrtc_port) = (free_port()?, free_port()?, free_port()?);
    let rtmp = free_port()?;
    let config = dir.join("camrouter.yaml");
    // The Chromium page is served by the server itself (same origin as
    // /api/webrtc).
    let www = dir.join("www");
    let static_dir = if args.browser {
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("webrtc-first.html"), FIRST_PAGE)?;
        format!("\n  static_dir: {}", www.display())
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "streams:\n  bench:\napi:\n  listen: 127.0.0.1:{api}{static_dir}\nrtsp:\n  listen: 127.0.0.1:{rtsp}\nlog:\n  level: warn\nwebrtc:\n  listen: 127.0.0.1:{webrtc_port}\nrtmp:\n  listen: 127.0.0.1:{rtmp}\napp:\n  modules: [api, rtsp, mp4, mjpeg, hls, webrtc, rtmp]\n"
        ),
    )?;
    let server = match &args.server_cmd {
        Some(cmd) => {
            let cmd = cmd.replace("{config}", &config.display().to_string());
            let mut parts = cmd.split_whitespace();
            let bin = parts.next().ok_or_else(|| anyhow!("empty --server-cmd"))?;
            Command::new(bin)
                .args(parts)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .spawn()?
        }
        None => Command::new(&args.server)
            .args(["-c", &config.display().to_string()])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", args.server.display()))?,
    };
    let server = Proc(server);
    let pid = server.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("rtsp://127.0.0.1:{rtsp}/bench");
    let _publisher = Proc(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(&clip)
            .args(["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", &url])
            .spawn()?,
    );
    std::thread::sleep(Duration::from_secs(3));
    let idle = proc_stats(pid).ok_or_else(|| anyhow!("server exited"))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    if let Some(n) = args.jpeg {
        rt.block_on(jpeg_samples(api, pid, n.max(1), args.interval_ms))?;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    if let (Some(n), Viewer::WebRtc) = (args.first, &args.viewer) {
        rt.block_on(webrtc_first_samples(api, n.max(1), args.browser))?;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    if let Some(n) = args.first {
        rt.block_on(first_samples(api, n.max(1)))?;
        let (_, rss, hwm) = proc_stats(pid).ok_or_else(|| anyhow!("server exited"))?;
        println!(
            "server RSS         {:.1} MB (VmHWM {:.1} MB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let counters: Vec<Arc<AtomicU64>> = (0..args.readers).map(|_| Arc::default()).collect();
    for c in &counters {
        let (u, c, viewer) = (url.clone(), c.clone(), args.viewer.clone());
        rt.spawn(async move {
            let r = match viewer {
                Viewer::Rtsp => reader(u, c).await,
                Viewer::Mse => {
                    mse(api, |n| {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                        true
                    })
                    .await
                }
                Viewer::Http(path) => http_get(api, &path, &c).await,
                Viewer::WebRtc => webrtc::viewer(api, c).await,
                Viewer::Rtmp => rtmp_player(format!("rtmp://127.0.0.1:{rtmp}/bench"), c).await,
            };
            if let Err(e) = r {
                eprintln!("reader: {e:#}");
            }
        });
    }
    // Warm up: every reader connected and past its first GOP.
    std::thread::sleep(Duration::from_secs(3));
    let (t0, b0) = (
        Instant::now(),
        counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect::<Vec<_>>(),
    );
    let (cpu0, _, _) = proc_stats(pid).ok_or_else(|| anyhow!("server exited"))?;
    let mut peak_rss = 0;
    while t0.elapsed() < Duration::from_secs(args.seconds) {
        std::thread::sleep(Duration::from_millis(500));
        if let Some((_, rss, _)) = proc_stats(pid) {
            peak_rss = peak_rss.max(rss);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, _, hwm) = proc_stats(pid).ok_or_else(|| anyhow!("server exited"))?;
    let got: Vec<u64> = counters
        .iter()
        .zip(&b0)
        .map(|(c, b)| c.load(Ordering::Relaxed) - b)
        .collect();
    let total: u64 = got.iter().sum();
    let mean = total as f64 / got.len().max(1) as f64;
    let min = got.iter().copied().min().unwrap_or(0) as f64;
    let cores = (cpu1 - cpu0) as f64 / clock_ticks() / wall;
    let kind = match &args.viewer {
        Viewer::Rtsp => "RTSP/TCP".to_string(),
        Viewer::Mse => "MSE over /api/ws".to_string(),
        Viewer::Http(p) => format!("GET {p}"),
        Viewer::WebRtc => "WebRTC (WHEP), one UDP port".to_string(),
        Viewer::Rtmp => "RTMP play".to_string(),
    };
    println!("readers            {} ({kind})", args.readers);
    println!("audio              AAC {} Hz", args.audio_rate);
    println!("window             {wall:.1} s");
    println!("server CPU         {cores:.3} cores");
    println!("server RSS idle    {:.1} MB", idle.1 as f64 / 1024.0);
    println!(
        "server RSS peak    {:.1} MB (VmHWM {:.1} MB)",
        peak_rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "out                {:.1} Mb/s",
        total as f64 * 8.0 / wall / 1e6
    );
    println!("per reader         {:.2} Mb/s", mean * 8.0 / wall / 1e6);
    println!(
        "slowest reader     {:.1}% of the mean",
        if mean > 0.0 { min / mean * 100.0 } else { 0.0 }
    );
    rt.shutdown_timeout(Duration::from_millis(200));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
