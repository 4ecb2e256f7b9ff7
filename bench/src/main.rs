//! `camrouter-bench`: one RTSP publisher (ffmpeg, `-c copy` of a 2 Mb/s
//! 720p H.264+AAC clip), N RTSP/TCP readers (lightweight, in this process),
//! and the server's CPU and memory read from /proc. Not a test: numbers on a
//! shared machine are noisy, so run it a few times.
//!
//! ```text
//! cargo build --release -p camrouter -p camrouter-plugin-rtsp -p camrouter-bench
//! target/release/camrouter-bench --readers 200 --seconds 20
//! ```

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
            _ => bail!("usage: camrouter-bench [--readers N] [--seconds S] [--audio-rate HZ] [--server PATH] [--server-cmd 'go2rtc -c {{config}}']"),
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

fn make_clip(dir: &Path, audio_rate: u32) -> anyhow::Result<PathBuf> {
    let clip = dir.join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
        ])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={audio_rate}"))
        .args(["-t", "30"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1900k", "-maxrate", "2000k",
        ])
        .args([
            "-bufsize", "2000k", "-g", "50", "-c:a", "aac", "-b:a", "96k",
        ])
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

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("camrouter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip = make_clip(&dir, args.audio_rate)?;
    let (api, rtsp) = (free_port()?, free_port()?);
    let config = dir.join("camrouter.yaml");
    std::fs::write(
        &config,
        format!(
            "streams:\n  bench:\napi:\n  listen: 127.0.0.1:{api}\nrtsp:\n  listen: 127.0.0.1:{rtsp}\nlog:\n  level: warn\napp:\n  modules: [api, rtsp]\n"
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
    let counters: Vec<Arc<AtomicU64>> = (0..args.readers).map(|_| Arc::default()).collect();
    for c in &counters {
        let (u, c) = (url.clone(), c.clone());
        rt.spawn(async move {
            if let Err(e) = reader(u, c).await {
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
    println!("readers            {}", args.readers);
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
