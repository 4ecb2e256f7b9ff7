//! One graph consumer per (stream, query), shared by every RTSP session that
//! plays it: each frame is packetized once, into a buffer already framed for
//! TCP interleaving, and the same `Arc` goes to every session (DESIGN.md §4).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::CodecInfo;
use camrouter_plugin_api::gop::Gop;
use camrouter_plugin_api::sdk::{Consumer, Host};
use camrouter_plugin_api::{Direction, Media, MediaKind, Packet};
use serde_json::json;
use tokio::sync::watch;

use crate::convert::to_info;

/// One packetized frame, shared by all sessions.
pub struct OutFrame {
    pub track: usize,
    pub keyframe: bool,
    /// When it was packetized: the clock for holding audio (see `out.rs`).
    pub at: Instant,
    /// Audio that may wait for the next video frame's write: video is
    /// flowing at least every `coalesce`.
    pub hold: bool,
    /// Interleaved with channel `2 * track`.
    pub rtp: RtpPackets,
}

/// A negotiated track as the server describes it in its SDP.
pub struct TrackOut {
    pub media: Media,
    pub info: CodecInfo,
    pub payload_type: u8,
    packetizer: Mutex<Packetizer>,
    /// Set after the first packetization error, so it is logged once.
    warned: AtomicBool,
}

#[derive(Default)]
pub struct Tracks {
    pub list: Vec<TrackOut>,
    /// Graph (consumer) track index → index in `list`.
    by_graph: Vec<Option<usize>>,
    /// Microphone tracks (`?microphone`): audio a client may send, routed to
    /// the producer's backchannel. SDP tracks after `list`.
    pub mics: Vec<MicTrack>,
}

impl Tracks {
    /// The graph (consumer) track index of `list[i]`.
    pub fn graph_index(&self, i: usize) -> Option<u32> {
        self.by_graph
            .iter()
            .position(|l| *l == Some(i))
            .map(|g| g as u32)
    }
}

/// A track our RTSP clients send on (go2rtc: a `sendonly` media in our SDP).
pub struct MicTrack {
    /// The graph's consumer track index, for `consumer_send`.
    pub graph_track: u32,
    pub info: CodecInfo,
    pub payload_type: u8,
}

#[derive(Clone)]
pub enum FeedState {
    Pending,
    Ready,
    Failed(String),
}

pub struct Feed {
    key: String,
    host: Host,
    pub consumer_id: AtomicU64,
    state: watch::Sender<FeedState>,
    tracks: Mutex<Arc<Tracks>>,
    fanout: Mutex<Fanout>,
    feeds: Weak<Feeds>,
}

#[derive(Default)]
struct Fanout {
    sessions: Vec<Arc<dyn FrameSink>>,
    /// Video since the last keyframe, and the audio in between, so that a
    /// new session starts in sync.
    gop: Gop<Arc<OutFrame>>,
    /// The last video frame, and the smoothed interval between them.
    video_last: Option<Instant>,
    video_interval: Duration,
}

/// Where a feed delivers frames: one per playing session. `push` runs on the
/// producer's thread and must never block.
pub trait FrameSink: Send + Sync {
    fn push(&self, frame: &Arc<OutFrame>, is_video: bool);

    /// A hint that `push` comes soon: the fan-out calls it one session
    /// ahead, so that the session's state is in cache by then (each push
    /// is separated by a syscall that evicts it).
    fn prefetch(&self) {}

    /// The feed has ended (its stream is gone): close the session.
    fn end(&self) {}
}

/// All feeds of the server, by stream and query.
pub struct Feeds {
    host: Host,
    map: Mutex<HashMap<String, Weak<Feed>>>,
    me: Weak<Feeds>,
    mtu: usize,
    coalesce: Duration,
}

fn payload_type(info: &CodecInfo, index: usize) -> u8 {
    use camrouter_media::CodecName::*;
    match (info.name, info.clock_rate) {
        (Pcmu, 8000) => 0,
        (Pcma, 8000) => 8,
        (Mjpeg, _) => 26,
        _ => 96 + index as u8,
    }
}

impl Feeds {
    pub fn new(host: Host, mtu: usize, coalesce: Duration) -> Arc<Feeds> {
        Arc::new_cyclic(|me| Feeds {
            host,
            map: Mutex::default(),
            me: me.clone(),
            mtu,
            coalesce,
        })
    }

    /// The feed for a stream and query, shared when another session has it.
    pub fn get(&self, stream: &str, query: &str, remote: &str) -> Arc<Feed> {
        let key = format!("{stream}?{query}");
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get(&key).and_then(Weak::upgrade) {
            return f;
        }
        let feed = Arc::new(Feed {
            key: key.clone(),
            host: self.host.clone(),
            consumer_id: AtomicU64::new(0),
            state: watch::Sender::new(FeedState::Pending),
            tracks: Mutex::new(Arc::default()),
            fanout: Mutex::default(),
            feeds: self.me.clone(),
        });
        map.insert(key, Arc::downgrade(&feed));
        drop(map);
        let consumer = FeedConsumer {
            feed: Arc::downgrade(&feed),
            mtu: self.mtu,
            coalesce: self.coalesce,
        };
        let info = json!({"format_name": "rtsp", "protocol": "rtsp+tcp", "remote_addr": remote});
        let id = self.host.add_consumer(stream, query, info, consumer);
        feed.consumer_id.store(id, Ordering::Relaxed);
        feed
    }
}

impl Feed {
    /// Waits for negotiation; the tracks, or why there are none.
    pub async fn ready(&self) -> Result<Arc<Tracks>, String> {
        let mut rx = self.state.subscribe();
        loop {
            let s = rx.borrow_and_update().clone();
            match s {
                FeedState::Ready => return Ok(self.tracks()),
                FeedState::Failed(e) => return Err(e),
                FeedState::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err("feed gone".into());
            }
        }
    }

    pub fn tracks(&self) -> Arc<Tracks> {
        self.tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts delivering to a session: the cached GOP first, then live frames,
    /// with no gap and no duplicate (both under the fan-out lock).
    pub fn subscribe(&self, queue: &Arc<dyn FrameSink>) {
        let tracks = self.tracks();
        let mut f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
        for frame in f.gop.frames() {
            let video = tracks
                .list
                .get(frame.track)
                .is_some_and(|t| t.media.kind == MediaKind::Video);
            queue.push(frame, video);
        }
        f.sessions.push(queue.clone());
    }

    pub fn unsubscribe(&self, queue: &Arc<dyn FrameSink>) {
        let mut f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
        let target = Arc::as_ptr(queue) as *const ();
        f.sessions.retain(|s| Arc::as_ptr(s) as *const () != target);
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.host
            .remove_consumer(self.consumer_id.load(Ordering::Relaxed));
        if let Some(feeds) = self.feeds.upgrade() {
            let mut map = feeds.map.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&self.key);
            }
        }
    }
}

struct FeedConsumer {
    feed: Weak<Feed>,
    mtu: usize,
    coalesce: Duration,
}

impl Consumer for FeedConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let Some(feed) = self.feed.upgrade() else {
            return;
        };
        let mut tracks = Vec::new();
        let mut mics = Vec::new();
        for (i, m) in medias.into_iter().enumerate() {
            if m.direction != Direction::SendOnly {
                // A microphone track: the client sends, the camera plays.
                if let Some(info) = m.codecs.first().and_then(to_info) {
                    let payload_type = payload_type(&info, i);
                    mics.push(MicTrack {
                        graph_track: i as u32,
                        info,
                        payload_type,
                    });
                }
                continue;
            }
            let Some(info) = m.codecs.first().and_then(to_info) else {
                tracing::debug!(codec = %m.codecs.first().map(|c| c.name.to_string()).unwrap_or_default(), "rtsp: codec not supported by the server, skipped");
                continue;
            };
            let pt = payload_type(&info, i);
            let ssrc = rand_u32();
            match Packetizer::new(&info, pt, ssrc, self.mtu) {
                Ok(p) => tracks.push((
                    i,
                    TrackOut {
                        media: m,
                        info,
                        payload_type: pt,
                        packetizer: Mutex::new(p),
                        warned: AtomicBool::new(false),
                    },
                )),
                Err(e) => tracing::debug!("rtsp: track {i} skipped: {e}"),
            }
        }
        if tracks.is_empty() {
            feed.state.send_replace(FeedState::Failed(
                "no codec the RTSP server can send".into(),
            ));
            return;
        }
        let max = tracks.iter().map(|(i, _)| *i).max().unwrap_or(0);
        let mut by_graph = vec![None; max + 1];
        for (n, (i, _)) in tracks.iter().enumerate() {
            by_graph[*i] = Some(n);
        }
        *feed.tracks.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(Tracks {
            list: tracks.into_iter().map(|(_, t)| t).collect(),
            by_graph,
            mics,
        });
        feed.state.send_replace(FeedState::Ready);
    }

    fn failed(&self, error: String) {
        if let Some(feed) = self.feed.upgrade() {
            feed.state.send_replace(FeedState::Failed(error));
        }
    }

    fn packet(&self, track: u32, packet: &Packet) {
        let Some(feed) = self.feed.upgrade() else {
            return;
        };
        let tracks = feed.tracks();
        let Some(idx) = tracks.by_graph.get(track as usize).copied().flatten() else {
            return;
        };
        let Some(t) = tracks.list.get(idx) else {
            return;
        };
        let mut rtp = RtpPackets::new(Framing::Interleaved((idx * 2) as u8));
        {
            let mut p = t.packetizer.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = p.packetize(&packet.payload, packet.pts as u32, &mut rtp) {
                if !t.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(stream = %feed.key, "rtsp: cannot send {} over RTP: {e}", t.info.name.go2rtc_name());
                }
                return;
            }
        }
        if rtp.is_empty() {
            return;
        }
        let video = t.media.kind == MediaKind::Video;
        let at = Instant::now();
        let mut f = feed.fanout.lock().unwrap_or_else(|e| e.into_inner());
        let hold = if video {
            if let Some(last) = f.video_last {
                let delta = at
                    .saturating_duration_since(last)
                    .min(Duration::from_secs(1));
                f.video_interval = if f.video_interval.is_zero() {
                    delta
                } else {
                    (f.video_interval * 7 + delta) / 8
                };
            }
            f.video_last = Some(at);
            false
        } else {
            !self.coalesce.is_zero()
                && !f.video_interval.is_zero()
                && f.video_interval <= self.coalesce
                && f.video_last
                    .is_some_and(|l| at.saturating_duration_since(l) <= self.coalesce)
        };
        let frame = Arc::new(OutFrame {
            track: idx,
            keyframe: packet.is_keyframe(),
            at,
            hold,
            rtp,
        });
        let len = frame.rtp.bytes().len();
        f.gop.push(frame.clone(), len, video && frame.keyframe);
        if let Some(first) = f.sessions.first() {
            first.prefetch();
        }
        for (i, s) in f.sessions.iter().enumerate() {
            if let Some(next) = f.sessions.get(i + 1) {
                next.prefetch();
            }
            s.push(&frame, video);
        }
    }

    fn closed(&self, reason: String) {
        if let Some(feed) = self.feed.upgrade() {
            feed.state.send_replace(FeedState::Failed(reason));
            // Their clients are disconnected, so that they reconnect to
            // whatever the stream is now, rather than wait on silence.
            let sessions = std::mem::take(
                &mut feed
                    .fanout
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sessions,
            );
            for s in sessions {
                s.end();
            }
        }
    }
}

pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::random::fill(&mut b);
    u32::from_be_bytes(b)
}
