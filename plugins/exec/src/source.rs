//! One running command: spawn, demux stdout, feed the host, kill cleanly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camrouter_media::pipe::{PipeDemuxer, PipeEvent};
use camrouter_plugin_api::cmd::{check_allowed, split_args, split_params};
use camrouter_plugin_api::media::{frame_packet, to_media};
use camrouter_plugin_api::sdk::{Consumer, Host, Source, SourceEvents};
use camrouter_plugin_api::{Codec, Direction, Media, MediaKind, Packet, RVec};
use camrouter_rawvideo::{Pushed, RawVideoEncoder};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

const STDERR_TAIL: usize = 4096;
const STDIN_QUEUE: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub args: Vec<String>,
    /// `{output}` in the command: it publishes to our RTSP server (the RTSP
    /// transport) instead of writing to stdout.
    pub output: bool,
    /// Signal for a graceful stop; SIGKILL when absent (go2rtc's default).
    pub kill_signal: Option<i32>,
    pub kill_timeout: Duration,
    pub start_timeout: Duration,
    /// `#backchannel=1`: stdin takes audio; stdout is not read.
    pub backchannel: Option<Codec>,
}

fn audio_codec(spec: &str) -> Result<Codec, String> {
    let (name, rate) = spec.split_once('/').unwrap_or((spec, ""));
    let (go2rtc, default_rate) = match name.to_ascii_lowercase().as_str() {
        "" | "s16le" | "pcml" => ("PCML", 16000),
        "s16be" | "pcm" | "l16" => ("L16", 16000),
        "alaw" | "pcma" => ("PCMA", 8000),
        "mulaw" | "pcmu" => ("PCMU", 8000),
        other => return Err(format!("exec: unsupported backchannel audio: {other}")),
    };
    let clock_rate = if rate.is_empty() {
        default_rate
    } else {
        rate.parse()
            .map_err(|_| format!("exec: bad sample rate: {rate}"))?
    };
    Ok(Codec {
        name: go2rtc.into(),
        clock_rate,
        channels: 1,
        ..Default::default()
    })
}

fn secs(v: &str, what: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("exec: bad #{what}: {v}"))
}

impl Options {
    pub fn parse(url: &str, config: &serde_json::Value) -> Result<Options, String> {
        let (cmd, params) = split_params(url);
        let args = split_args(cmd);
        let program = args.first().ok_or("exec: empty command")?;
        check_allowed("exec", config, program)?;
        let output = args.iter().any(|a| a.contains("{output}"));
        let mut o = Options {
            output,
            args: args.clone(),
            kill_signal: None,
            kill_timeout: Duration::ZERO,
            start_timeout: Duration::from_secs(30),
            backchannel: None,
        };
        let mut audio = String::new();
        let mut backchannel = false;
        for (k, v) in params {
            match k.as_str() {
                "killsignal" => {
                    let sig: i32 = v
                        .parse()
                        .map_err(|_| format!("exec: bad #killsignal: {v}"))?;
                    if !(1..=64).contains(&sig) {
                        return Err(format!("exec: bad #killsignal: {v}"));
                    }
                    o.kill_signal = Some(sig);
                }
                "killtimeout" => o.kill_timeout = secs(&v, "killtimeout")?,
                "starttimeout" => o.start_timeout = secs(&v, "starttimeout")?,
                "backchannel" => backchannel = v == "1" || v.is_empty(),
                "audio" => audio = v,
                _ => {}
            }
        }
        if backchannel {
            o.backchannel = Some(audio_codec(&audio)?);
        }
        Ok(o)
    }
}

pub struct ExecSource {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    /// A consumer asked for a keyframe: only Y4M on stdout, which we encode
    /// ourselves, can give one on demand.
    keyframe: Arc<AtomicBool>,
}

impl Source for ExecSource {
    fn send(&self, _track: u32, packet: &Packet) {
        if let Some(tx) = &self.stdin {
            // A slow consumer of our stdin loses audio, never blocks the graph.
            let _ = tx.try_send(packet.payload.to_vec());
        }
    }
    fn stop(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
    fn request_keyframe(&self, _track: u32) {
        self.keyframe.store(true, Ordering::Relaxed);
    }
}

pub fn start(
    opts: Options,
    events: SourceEvents,
    host: Host,
    rt: &tokio::runtime::Handle,
) -> ExecSource {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (stdin_tx, stdin_rx) = if opts.backchannel.is_some() {
        let (t, r) = mpsc::channel(STDIN_QUEUE);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let keyframe = Arc::new(AtomicBool::new(false));
    rt.spawn(run(opts, events, host, stop_rx, stdin_rx, keyframe.clone()));
    ExecSource {
        stop: Mutex::new(Some(stop_tx)),
        stdin: stdin_tx,
        keyframe,
    }
}

/// The name of the hidden stream a `{output}` command publishes into.
fn output_stream_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "exec-{:x}-{}-{}",
        t,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Forwards what the command publishes to our RTSP server (a hidden stream)
/// as this source's medias and packets.
struct Relay {
    events: SourceEvents,
    tx: mpsc::UnboundedSender<Result<(), String>>,
}

impl Consumer for Relay {
    fn attached(&self, medias: Vec<Media>) {
        let medias = medias
            .into_iter()
            .map(|m| Media {
                direction: Direction::RecvOnly,
                ..m
            })
            .collect();
        self.events.medias(medias);
        let _ = self.tx.send(Ok(()));
    }
    fn failed(&self, error: String) {
        let _ = self.tx.send(Err(error));
    }
    fn packet(&self, track: u32, packet: &Packet) {
        let mut p = packet.clone();
        p.track = track;
        self.events.packet(&p);
    }
    fn closed(&self, reason: String) {
        let _ = self.tx.send(Err(reason));
    }
}

async fn run(
    mut opts: Options,
    events: SourceEvents,
    host: Host,
    mut stop_rx: oneshot::Receiver<()>,
    stdin_rx: Option<mpsc::Receiver<Vec<u8>>>,
    keyframe: Arc<AtomicBool>,
) {
    let mut hidden_stream = None;
    if opts.output {
        let Some(base) = host.fact("rtsp.internal_url") else {
            events.closed("exec: rtsp module disabled");
            return;
        };
        let name = output_stream_name();
        host.add_stream(&name, Vec::new(), true);
        let url = format!("{base}/{name}");
        for a in opts.args.iter_mut() {
            *a = a.replace("{output}", &url);
        }
        hidden_stream = Some(name);
    }
    let mut cmd = tokio::process::Command::new(&opts.args[0]);
    cmd.args(&opts.args[1..])
        .stdin(if stdin_rx.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(if opts.backchannel.is_some() || opts.output {
            std::process::Stdio::null()
        } else {
            std::process::Stdio::piped()
        })
        .stderr(std::process::Stdio::piped())
        // Its own process group, so a stop reaches the command's children too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(name) = &hidden_stream {
                host.remove_stream(name);
            }
            events.closed(&format!("exec: {}: {e}", opts.args[0]));
            return;
        }
    };
    let pid = child.id().unwrap_or(0) as i32;
    tracing::debug!(pid, cmd = %opts.args.join(" "), "exec: started");
    events.info(json!({"format_name": "exec", "protocol": "pipe", "pid": pid}));

    let tail = Arc::new(Mutex::new(VecDeque::<u8>::new()));
    if let Some(stderr) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::trace!(pid, "stderr: {line}");
                if let Ok(mut t) = tail.lock() {
                    t.extend(line.as_bytes());
                    t.push_back(b'\n');
                    while t.len() > STDERR_TAIL {
                        t.pop_front();
                    }
                }
            }
        });
    }
    let stderr_tail = || -> String {
        tail.lock()
            .map(|t| {
                String::from_utf8_lossy(&t.iter().copied().collect::<Vec<_>>())
                    .trim()
                    .to_string()
            })
            .unwrap_or_default()
    };

    let reason: Option<String> = if let Some(codec) = &opts.backchannel {
        events.medias(vec![Media {
            kind: MediaKind::Audio,
            direction: Direction::SendOnly,
            codecs: RVec::from(vec![codec.clone()]),
        }]);
        events.info(json!({"format_name": "pcm"}));
        let mut stdin = child.stdin.take();
        let mut rx = stdin_rx;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break None,
                data = async { match rx.as_mut() { Some(r) => r.recv().await, None => None } } => {
                    let Some(data) = data else { break None };
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data).await.is_err() {
                            break Some(format!("exec: stdin closed\n{}", stderr_tail()));
                        }
                    }
                }
                st = child.wait() => break Some(format!("exec: exited ({})\n{}", st.map(|s| s.to_string()).unwrap_or_default(), stderr_tail())),
            }
        }
    } else if let Some(name) = &hidden_stream {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let relay = Relay {
            events: events.clone(),
            tx,
        };
        let info = json!({
            "format_name": "exec",
            "protocol": "rtsp",
            "wait_publisher_ms": opts.start_timeout.as_millis() as u64,
        });
        let id = host.add_consumer(name, "video=all&audio=all", info, relay);
        let reason = loop {
            tokio::select! {
                _ = &mut stop_rx => break None,
                r = rx.recv() => match r {
                    Some(Ok(())) => continue,
                    Some(Err(e)) => break Some(format!("exec/rtsp: {e}\n{}", stderr_tail())),
                    None => break Some("exec/rtsp: relay gone".to_string()),
                },
                st = child.wait() => break Some(format!(
                    "exec/rtsp: exited ({})\n{}",
                    st.map(|s| s.to_string()).unwrap_or_default(),
                    stderr_tail()
                )),
            }
        };
        host.remove_consumer(id);
        host.remove_stream(name);
        reason
    } else {
        let Some(mut stdout) = child.stdout.take() else {
            events.closed("exec: no stdout");
            return;
        };
        let mut demux = PipeDemuxer::new();
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let mut clocks: Vec<u32> = Vec::new();
        let mut described = false;
        // Y4M: the pictures are encoded to H.264 here.
        let mut raw: Option<RawVideoEncoder> = None;
        let deadline = tokio::time::sleep(opts.start_timeout);
        tokio::pin!(deadline);
        let mut eof = false;
        'outer: loop {
            tokio::select! {
                _ = &mut stop_rx => break None,
                _ = &mut deadline, if !described => {
                    break Some(format!("exec: start timeout ({}s without media)\n{}", opts.start_timeout.as_secs_f32(), stderr_tail()));
                }
                n = stdout.read(&mut buf), if !eof => {
                    match n {
                        Ok(0) | Err(_) => { demux.finish(); eof = true; }
                        Ok(n) => demux.push(&buf[..n]),
                    }
                    while let Some(ev) = demux.poll() {
                        match ev {
                            Ok(PipeEvent::Tracks(tracks)) => {
                                described = true;
                                clocks = tracks.iter().map(|t| t.clock_rate.max(1)).collect();
                                events.info(json!({"format_name": demux.format_name()}));
                                events.medias(tracks.iter().map(to_media).collect());
                            }
                            Ok(PipeEvent::Frame(f)) => {
                                let clock = clocks.get(f.track).copied().unwrap_or(90_000);
                                events.packet(&frame_packet(f, clock, started.elapsed()));
                            }
                            Ok(PipeEvent::RawVideo(format)) => {
                                // The encoder describes the track once it has the SPS.
                                described = true;
                                events.info(json!({"format_name": demux.format_name()}));
                                match RawVideoEncoder::for_source(&format, started, events.clone()) {
                                    Ok(r) => raw = Some(r),
                                    Err(e) => break 'outer Some(format!("exec/pipe: {e}")),
                                }
                            }
                            Ok(PipeEvent::Picture(picture)) => {
                                let Some(r) = raw.as_mut() else { continue };
                                if keyframe.swap(false, Ordering::Relaxed) {
                                    r.request_keyframe();
                                }
                                match r.push(picture) {
                                    Ok(Pushed::Dropped { first: true }) => tracing::warn!(
                                        pid,
                                        "yuv4mpegpipe: the H.264 encoder falls behind the pictures; dropping some"
                                    ),
                                    Ok(_) => {}
                                    Err(e) => break 'outer Some(format!("exec/pipe: {e}")),
                                }
                                // A Y4M file arriving faster than its frame
                                // rate plays in real time rather than
                                // overrunning the encoder.
                                if let Some(wait) = r.ahead() {
                                    tokio::select! {
                                        _ = &mut stop_rx => break 'outer None,
                                        _ = tokio::time::sleep(wait) => {}
                                    }
                                }
                            }
                            Err(e) => break 'outer Some(format!("exec/pipe: {e}\n{}", stderr_tail())),
                        }
                    }
                    if eof {
                        // Give the process a moment to write its last words to stderr.
                        let _ = tokio::time::timeout(Duration::from_millis(200), child.wait()).await;
                        break Some(format!("exec/pipe: EOF\n{}", stderr_tail()));
                    }
                }
            }
        }
    };
    terminate(&mut child, pid, &opts).await;
    tracing::debug!(pid, "exec: stopped");
    if let Some(r) = reason {
        events.closed(r.trim());
    }
}

/// Stops the process group: the configured signal first (with `#killtimeout`
/// to exit on its own), then SIGKILL; and always reaps, so no zombie is left.
async fn terminate(child: &mut tokio::process::Child, pid: i32, opts: &Options) {
    if let Ok(Some(_)) = child.try_wait() {
        kill_group(pid, libc::SIGKILL);
        return;
    }
    if let Some(sig) = opts.kill_signal {
        kill_group(pid, sig);
        if tokio::time::timeout(opts.kill_timeout, child.wait())
            .await
            .is_ok()
        {
            kill_group(pid, libc::SIGKILL);
            return;
        }
    }
    kill_group(pid, libc::SIGKILL);
    let _ = child.wait().await;
}

fn kill_group(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params() {
        let o = Options::parse(
            "ffmpeg -i x -f h264 -#killsignal=15#killtimeout=2.5#starttimeout=3",
            &serde_json::Value::Null,
        )
        .unwrap();
        assert_eq!(o.args.len(), 6);
        assert_eq!(o.kill_signal, Some(15));
        assert_eq!(o.kill_timeout, Duration::from_millis(2500));
        assert_eq!(o.start_timeout, Duration::from_secs(3));
        let b = Options::parse(
            "ffplay -i -#backchannel=1#audio=alaw",
            &serde_json::Value::Null,
        )
        .unwrap();
        assert_eq!(b.backchannel.unwrap().name.as_str(), "PCMA");
        assert!(Options::parse("x#killsignal=abc", &serde_json::Value::Null).is_err());
        assert!(Options::parse("", &serde_json::Value::Null).is_err());
        let allow = json!({"allow_paths": ["ffmpeg"]});
        assert!(Options::parse("sh -c x", &allow)
            .unwrap_err()
            .contains("allow_paths"));
    }
}
