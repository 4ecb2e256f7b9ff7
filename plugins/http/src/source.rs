//! One running `http(s)://` or `tcp://` source: fetch, pick the format,
//! demux, feed the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camrouter_media::detect::Format;
use camrouter_media::pipe::{PipeDemuxer, PipeEvent};
use camrouter_media::Error as MediaError;
use camrouter_plugin_api::media::{frame_packet, to_media};
use camrouter_plugin_api::sdk::{Source, SourceEvents};
use camrouter_rawvideo::{Pushed, RawVideoEncoder};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::client::{dial, Client, Response};
use crate::target::{Options, Scheme};

/// A snapshot URL is asked at most this often (go2rtc asks again as soon as
/// an answer is in, which a fast camera turns into a busy loop).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
/// Demuxer errors in a row (no frame between them) before the source is
/// given up as garbage; single errors in a long stream are survived.
const MAX_ERRORS_IN_A_ROW: u32 = 50;
/// Bytes that keep coming without ever describing a track (TS without a
/// PMT, a stream of padding) end the source after this long, as `exec:`'s
/// default `#starttimeout`; silence is `#timeout`'s job.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct HttpSource {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    /// A consumer asked for a keyframe: only a Y4M source, which we
    /// encode ourselves, can give one on demand.
    keyframe: Arc<AtomicBool>,
}

impl Source for HttpSource {
    fn stop(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }

    fn request_keyframe(&self, _track: u32) {
        self.keyframe.store(true, Ordering::Relaxed);
    }
}

pub fn start(opts: Options, events: SourceEvents, rt: &tokio::runtime::Handle) -> HttpSource {
    let (stop_tx, stop_rx) = oneshot::channel();
    let keyframe = Arc::new(AtomicBool::new(false));
    let wanted = keyframe.clone();
    rt.spawn(async move {
        let what = if opts.target.scheme == Scheme::Tcp {
            "tcp"
        } else {
            "http"
        };
        let reason = tokio::select! {
            _ = stop_rx => return,
            r = run(&opts, &events, wanted) => r,
        };
        tracing::debug!(target = ?opts.target, "{what}: {reason}");
        events.closed(&format!("{what}: {reason}"));
    });
    HttpSource {
        stop: Mutex::new(Some(stop_tx)),
        keyframe,
    }
}

/// Runs until the source fails or ends; returns why.
async fn run(opts: &Options, events: &SourceEvents, keyframe: Arc<AtomicBool>) -> String {
    if opts.target.scheme == Scheme::Tcp {
        return run_tcp(opts, events, keyframe).await;
    }
    let mut client = Client::new(opts);
    let res = match client.get(&opts.target).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    events.info(json!({
        "protocol": if res.target.scheme.tls() { "https" } else { "http" },
        "remote_addr": res.remote_addr.to_string(),
    }));
    let ct = res.content_type();
    let ext = res
        .target
        .path
        .split('?')
        .next()
        .and_then(|p| p.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mut feed = Feed::new(events.clone());
    feed.keyframe = keyframe;
    if ct == "image/jpeg" {
        return run_snapshots(opts, client, res, feed).await;
    }
    if ct == "application/vnd.apple.mpegurl" || ct == "application/x-mpegurl" || ext == "m3u8" {
        return crate::hls::run(&mut client, res, &mut feed, opts.timeout).await;
    }
    if ct.starts_with("multipart/") {
        feed.demux = PipeDemuxer::with_format(Format::Mjpeg);
    }
    match read_body(res, &mut feed, opts.timeout).await {
        Err(e) => e,
        Ok(()) => feed.eof(),
    }
}

/// Streams one body into the feed until it ends (`Ok`) or fails.
async fn read_body(mut res: Response, feed: &mut Feed, timeout: Duration) -> Result<(), String> {
    feed.paced = true;
    while let Some(data) = res.chunk(timeout).await? {
        feed.push(&data)?;
        feed.pace().await?;
    }
    feed.finish()?;
    feed.pace().await
}

/// A camera's JPEG snapshot URL as an MJPEG stream: asked again after each
/// answer. Each answer is one (or, from a camera that keeps the connection
/// busy, several) JPEG images.
async fn run_snapshots(
    opts: &Options,
    mut client: Client,
    mut res: Response,
    mut feed: Feed,
) -> String {
    let target = res.target.clone();
    loop {
        let asked = Instant::now();
        feed.demux = PipeDemuxer::with_format(Format::Mjpeg);
        let frames_before = feed.frames;
        if let Err(e) = read_body(res, &mut feed, opts.timeout).await {
            return e;
        }
        if feed.frames == frames_before {
            return "snapshot: the answer holds no complete JPEG image (invalid image)".into();
        }
        tokio::time::sleep_until((asked + SNAPSHOT_INTERVAL).into()).await;
        res = match client.get(&target).await {
            Ok(r) => r,
            Err(e) => return format!("snapshot: {e}"),
        };
        if res.content_type() != "image/jpeg" {
            return format!(
                "snapshot: Content-Type changed to {:?} (unsupported)",
                res.content_type()
            );
        }
    }
}

async fn run_tcp(opts: &Options, events: &SourceEvents, keyframe: Arc<AtomicBool>) -> String {
    let (mut io, remote_addr) = match dial(&opts.target, opts.timeout).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    events.info(json!({"protocol": "tcp", "remote_addr": remote_addr.to_string()}));
    let mut feed = Feed::new(events.clone());
    feed.keyframe = keyframe;
    feed.paced = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(opts.timeout, io.read(&mut buf)).await {
            Err(_) => return format!("no data for {:.1}s", opts.timeout.as_secs_f32()),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            let end = match feed.finish() {
                Ok(()) => feed.pace().await,
                e => e,
            };
            return end.err().unwrap_or_else(|| feed.eof());
        }
        if let Err(e) = feed.push(&buf[..n]) {
            return e;
        }
        if let Err(e) = feed.pace().await {
            return e;
        }
    }
}

/// Bytes in, the host's medias and packets out.
pub(crate) struct Feed {
    events: SourceEvents,
    demux: PipeDemuxer,
    started: Instant,
    clocks: Vec<u32>,
    described: bool,
    frames: u64,
    errors_in_a_row: u32,
    /// Y4M: raw pictures are encoded to H.264 here.
    raw: Option<RawVideoEncoder>,
    /// The reader calls [`Feed::pace`] after each push: pictures that
    /// arrive ahead of their frame rate wait in the demuxer until then.
    /// Otherwise (ingest, whose body is pushed to us) the encoder drops
    /// what it cannot take.
    paced: bool,
    /// Set by `Source::request_keyframe`; only `raw` can act on it.
    keyframe: Arc<AtomicBool>,
}

impl Feed {
    pub(crate) fn new(events: SourceEvents) -> Feed {
        Feed::with_demux(events, PipeDemuxer::new())
    }

    pub(crate) fn with_demux(events: SourceEvents, demux: PipeDemuxer) -> Feed {
        Feed {
            events,
            demux,
            started: Instant::now(),
            clocks: Vec::new(),
            described: false,
            frames: 0,
            errors_in_a_row: 0,
            raw: None,
            paced: false,
            keyframe: Arc::default(),
        }
    }

    /// Hands the pictures the last push left in the demuxer to the
    /// encoder at their frame rate: a Y4M file arrives faster than that,
    /// and plays in real time instead of overrunning the encoder.
    pub(crate) async fn pace(&mut self) -> Result<(), String> {
        while let Some(wait) = self.raw.as_ref().and_then(RawVideoEncoder::ahead) {
            tokio::time::sleep(wait).await;
            self.drain()?;
        }
        Ok(())
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.demux.push(bytes);
        self.drain()?;
        if !self.described && self.started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "no media after {} s ({})",
                START_TIMEOUT.as_secs(),
                self.demux.format_name()
            ));
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> Result<(), String> {
        self.demux.finish();
        self.drain()
    }

    /// Why the source ended when its bytes simply stopped.
    pub(crate) fn eof(&self) -> String {
        if self.described {
            "EOF".into()
        } else {
            format!("EOF before any media ({})", self.demux.format_name())
        }
    }

    fn drain(&mut self) -> Result<(), String> {
        while let Some(ev) = self.demux.poll() {
            match ev {
                Ok(PipeEvent::Tracks(tracks)) => {
                    // A snapshot camera's later answers describe the same
                    // track again; the host takes medias once per connection.
                    if self.described {
                        continue;
                    }
                    self.described = true;
                    self.clocks = tracks.iter().map(|t| t.clock_rate.max(1)).collect();
                    self.events
                        .info(json!({"format_name": self.demux.format_name()}));
                    self.events.medias(tracks.iter().map(to_media).collect());
                }
                Ok(PipeEvent::Frame(f)) => {
                    self.frames += 1;
                    self.errors_in_a_row = 0;
                    let clock = self.clocks.get(f.track).copied().unwrap_or(90_000);
                    self.events
                        .packet(&frame_packet(f, clock, self.started.elapsed()));
                }
                Ok(PipeEvent::RawVideo(format)) => {
                    // The encoder describes the track once it has the SPS.
                    self.described = true;
                    self.events
                        .info(json!({"format_name": self.demux.format_name()}));
                    self.raw = Some(RawVideoEncoder::for_source(
                        &format,
                        self.started,
                        self.events.clone(),
                    )?);
                }
                Ok(PipeEvent::Picture(picture)) => {
                    self.frames += 1;
                    self.errors_in_a_row = 0;
                    let Some(raw) = self.raw.as_mut() else {
                        continue;
                    };
                    if self.keyframe.swap(false, Ordering::Relaxed) {
                        raw.request_keyframe();
                    }
                    if raw.push(picture)? == (Pushed::Dropped { first: true }) {
                        tracing::warn!(
                            "yuv4mpegpipe: the H.264 encoder falls behind the pictures; dropping some"
                        );
                    }
                    if self.paced && raw.ahead().is_some() {
                        // The rest waits in the demuxer for `pace`.
                        return Ok(());
                    }
                }
                Err(e) => {
                    if matches!(e, MediaError::UnknownFormat { .. }) {
                        // "unsupported" makes the host back off: the same URL
                        // will answer the same bytes.
                        return Err(format!("unsupported format: {e}"));
                    }
                    // FLV and MP4 leave out a track of a codec they cannot
                    // carry and go on; elsewhere an unsupported stream is
                    // the end.
                    let fatal = self.demux.failed()
                        || matches!(e, MediaError::Unsupported { .. })
                            && !matches!(self.demux.format_name(), "flv" | "mp4")
                        || !self.described && self.demux.format_name() == "wav";
                    self.errors_in_a_row += 1;
                    if fatal || self.errors_in_a_row > MAX_ERRORS_IN_A_ROW {
                        return Err(format!("{}: {e}", self.demux.format_name()));
                    }
                    if self.errors_in_a_row == 1 {
                        tracing::warn!("{}: {e}", self.demux.format_name());
                    }
                }
            }
        }
        Ok(())
    }
}
