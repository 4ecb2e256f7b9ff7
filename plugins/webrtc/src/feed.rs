//! One graph consumer per (stream, codecs the viewers accept), shared by
//! every WebRTC viewer of it: each frame is packetized once into RTP packets
//! whose payloads are reference counted, and the peer loop stamps each
//! viewer's sequence number, SSRC and payload type on a copy of the 12-byte
//! header before its own SRTP encryption. The feed keeps the packets since
//! the last video keyframe so that a new viewer starts at once from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::{CodecInfo, CodecName};
use camrouter_plugin_api::gop::Gop;
use camrouter_plugin_api::media::to_info;
use camrouter_plugin_api::sdk::{Consumer, Host};
use camrouter_plugin_api::{Direction, Media, MediaKind, Packet};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::offer::codec_name;
use crate::peer::TrackOut;
use crate::server::Command;
use crate::transcode::Transcoder;

/// `graph_track` of a track the feed's own consumer does not have (the
/// stream's transcoder makes it).
pub const TRANSCODED: u32 = u32::MAX;

/// How long a viewer waits for the stream's transcoder before it plays
/// without audio.
const TRANSCODER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest RTP packet: below the usual 1280-byte IPv6 minimum MTU once SRTP,
/// UDP and IP headers are added.
const MTU: usize = 1200;

/// One RTP packet of a shared frame: the peer loop writes its own header.
#[derive(Clone)]
pub struct OutPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// One packetized frame, shared by every viewer of the feed.
pub struct OutFrame {
    /// Increases by one per frame of the feed: a viewer that got the GOP up
    /// to `n` skips queued frames up to `n`.
    pub seq: u64,
    pub track: usize,
    pub packets: Vec<OutPacket>,
}

#[derive(Clone)]
pub enum FeedState {
    Pending,
    Ready,
    Failed(String),
}

pub struct Feed {
    pub id: u64,
    key: String,
    host: Host,
    pub consumer_id: AtomicU64,
    state: watch::Sender<FeedState>,
    tracks: Mutex<Arc<Vec<TrackOut>>>,
    mics: Mutex<Arc<Vec<MicIn>>>,
    inner: Mutex<Inner>,
    feeds: Weak<Feeds>,
    /// Audio codecs the viewers accept (go2rtc names), from the query.
    audio: Vec<&'static str>,
    /// Whether the transcoder was asked (once per feed; viewers wait on it).
    transcode_checked: tokio::sync::Mutex<bool>,
    /// The stream's transcoder, while this feed takes its audio.
    transcoder: Mutex<Option<Arc<Transcoder>>>,
}

#[derive(Default)]
struct Inner {
    packetizers: Vec<Option<Packetizer>>,
    /// Graph track → index in `tracks`.
    by_graph: Vec<Option<usize>>,
    gop: Gop<Arc<OutFrame>>,
    seq: u64,
    warned: bool,
}

/// All feeds, by stream and query.
pub struct Feeds {
    host: Host,
    map: Mutex<HashMap<String, Weak<Feed>>>,
    next_id: AtomicU64,
    me: Weak<Feeds>,
    /// Where frames go: the peer loop.
    to_server: mpsc::Sender<Command>,
    /// Frames the peer loop could not take (it was behind).
    pub dropped: AtomicU64,
    /// One transcoder per stream, shared by its feeds.
    transcoders: Arc<Mutex<Vec<Weak<Transcoder>>>>,
}

impl Feeds {
    pub fn new(host: Host, to_server: mpsc::Sender<Command>) -> Arc<Feeds> {
        Arc::new_cyclic(|me| Feeds {
            host,
            map: Mutex::default(),
            next_id: AtomicU64::new(1),
            me: me.clone(),
            to_server,
            dropped: AtomicU64::new(0),
            transcoders: Arc::default(),
        })
    }

    /// The feed for a stream and query, shared when a viewer has it already.
    pub fn get(&self, stream: &str, query: &str) -> Arc<Feed> {
        let key = format!("{stream}?{query}");
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get(&key).and_then(Weak::upgrade) {
            return f;
        }
        let feed = Arc::new(Feed {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            key: key.clone(),
            host: self.host.clone(),
            consumer_id: AtomicU64::new(0),
            state: watch::Sender::new(FeedState::Pending),
            tracks: Mutex::default(),
            mics: Mutex::default(),
            inner: Mutex::default(),
            feeds: self.me.clone(),
            audio: accepted_audio(query),
            transcode_checked: tokio::sync::Mutex::new(false),
            transcoder: Mutex::default(),
        });
        map.insert(key, Arc::downgrade(&feed));
        drop(map);
        let consumer = FeedConsumer {
            feed: Arc::downgrade(&feed),
            feeds: self.me.clone(),
            ended: AtomicBool::new(false),
        };
        let info = json!({"format_name": "webrtc", "protocol": "udp"});
        let id = self.host.add_consumer(stream, query, info, consumer);
        feed.consumer_id.store(id, Ordering::Relaxed);
        feed
    }
}

impl Feed {
    /// Waits for negotiation: the tracks, or why there are none.
    pub async fn ready(self: &Arc<Self>) -> Result<Arc<Vec<TrackOut>>, String> {
        let mut rx = self.state.subscribe();
        loop {
            let s = rx.borrow_and_update().clone();
            match s {
                FeedState::Ready => break,
                FeedState::Failed(e) => return Err(e),
                FeedState::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err("webrtc: feed gone".into());
            }
        }
        self.transcoded_audio().await;
        Ok(self.tracks())
    }

    /// A feed whose stream has no audio the viewers take (AAC, PCM) gets
    /// it from the stream's transcoder, once, before its first viewer is
    /// answered (so every answer of the feed offers the same tracks).
    async fn transcoded_audio(self: &Arc<Self>) {
        let mut checked = self.transcode_checked.lock().await;
        if *checked || self.audio.is_empty() || self.tracks().iter().any(|t| !t.video) {
            *checked = true;
            return;
        }
        let Some(feeds) = self.feeds.upgrade() else {
            return;
        };
        let tc = Transcoder::get(&feeds.transcoders, &self.host, self.stream());
        let out = match tokio::time::timeout(TRANSCODER_WAIT, tc.ready()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                tracing::debug!(stream = %self.stream(), "webrtc: no audio to transcode: {e}");
                *checked = true;
                return;
            }
            // Asked again by the next viewer.
            Err(_) => return,
        };
        *checked = true;
        if !self.audio.contains(&out.codec) {
            return;
        }
        let Ok(p) = Packetizer::new(&out.info, 0, 0, MTU) else {
            return;
        };
        let mut tracks: Vec<TrackOut> = self.tracks().as_ref().clone();
        let idx = tracks.len();
        tracks.push(TrackOut {
            video: false,
            codec: out.codec,
            fmtp: String::new(),
            graph_track: TRANSCODED,
        });
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            while inner.packetizers.len() < idx {
                inner.packetizers.push(None);
            }
            inner.packetizers.push(Some(p));
        }
        *self.tracks.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(tracks);
        tc.subscribe(Arc::downgrade(self), idx);
        *self.transcoder.lock().unwrap_or_else(|e| e.into_inner()) = Some(tc);
    }

    /// One encoded frame from the transcoder (its thread) for track `idx`.
    pub fn send_transcoded(&self, idx: usize, payload: &[u8], timestamp: u32) {
        if let Some(feeds) = self.feeds.upgrade() {
            self.send(&feeds, idx, payload, timestamp, false);
        }
    }

    pub fn tracks(&self) -> Arc<Vec<TrackOut>> {
        self.tracks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The stream's backchannel tracks a viewer's microphone may feed.
    pub fn mics(&self) -> Arc<Vec<MicIn>> {
        self.mics.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The frames since the last keyframe and the last frame's number: a
    /// viewer starts with these, then takes queued frames after that number.
    pub fn gop(&self) -> (Vec<Arc<OutFrame>>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.gop.frames().to_vec(), inner.seq)
    }

    pub fn stream(&self) -> &str {
        self.key
            .split_once('?')
            .map(|(s, _)| s)
            .unwrap_or(&self.key)
    }
}

impl Feed {
    /// Packetizes one frame of track `idx` once and hands it to the peer
    /// loop for every viewer.
    fn send(&self, feeds: &Feeds, idx: usize, payload: &[u8], pts: u32, keyframe: bool) {
        let frame = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut rtp = RtpPackets::new(Framing::Datagram);
            let Some(Some(p)) = inner.packetizers.get_mut(idx) else {
                return;
            };
            if let Err(e) = p.packetize(payload, pts, &mut rtp) {
                if !inner.warned {
                    inner.warned = true;
                    tracing::warn!(stream = %self.stream(), "webrtc: frame not sent: {e}");
                }
                return;
            }
            if rtp.is_empty() {
                return;
            }
            // One allocation for the frame; each packet's payload is a view.
            let all = Bytes::copy_from_slice(rtp.bytes());
            let packets = rtp
                .ranges()
                .iter()
                .map(|r| OutPacket {
                    marker: all[r.start + 1] & 0x80 != 0,
                    timestamp: u32::from_be_bytes([
                        all[r.start + 4],
                        all[r.start + 5],
                        all[r.start + 6],
                        all[r.start + 7],
                    ]),
                    payload: all.slice(r.start + 12..r.end),
                })
                .collect();
            inner.seq += 1;
            let frame = Arc::new(OutFrame {
                seq: inner.seq,
                track: idx,
                packets,
            });
            let video = self.tracks().get(idx).is_some_and(|t| t.video);
            let len = rtp.bytes().len();
            inner.gop.push(frame.clone(), len, video && keyframe);
            frame
        };
        let cmd = Command::Frame {
            feed: self.id,
            frame,
        };
        if feeds.to_server.try_send(cmd).is_err() {
            feeds.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The audio codecs a feed's query names (`audio=opus,pcma,pcmu`), as go2rtc
/// names.
fn accepted_audio(query: &str) -> Vec<&'static str> {
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("audio="))
        .flat_map(|v| v.split(','))
        .filter_map(|c| {
            crate::offer::AUDIO
                .iter()
                .copied()
                .find(|a| a.eq_ignore_ascii_case(c))
        })
        .collect()
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

/// The camera's H.264 profile from its SPS (4-byte length-prefixed NAL
/// units in `extradata`).
fn h264_fmtp(info: &CodecInfo) -> String {
    let mut rest = info.extradata.as_slice();
    while rest.len() > 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len) else {
            break;
        };
        if nal.len() >= 4 && nal[0] & 0x1F == 7 {
            return format!(
                "packetization-mode=1;profile-level-id={:02x}{:02x}{:02x}",
                nal[1], nal[2], nal[3]
            );
        }
        rest = &rest[4 + len..];
    }
    "packetization-mode=1".into()
}

/// A backchannel track of the stream (`microphone` in the query): audio a
/// viewer sends goes there.
pub struct MicIn {
    /// go2rtc name: OPUS, PCMA, PCMU.
    pub codec: &'static str,
    pub graph_track: u32,
}

struct FeedConsumer {
    feed: Weak<Feed>,
    feeds: Weak<Feeds>,
    ended: AtomicBool,
}

impl Consumer for FeedConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let Some(feed) = self.feed.upgrade() else {
            return;
        };
        let mut tracks = Vec::new();
        let mut mics = Vec::new();
        let mut inner = feed.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, m) in medias.into_iter().enumerate() {
            inner.by_graph.push(None);
            // SendOnly is what the consumer receives (go2rtc's side); the
            // other direction is the camera's speaker.
            if m.direction != Direction::SendOnly {
                let codec = m
                    .codecs
                    .first()
                    .and_then(to_info)
                    .and_then(|c| codec_name(c.name));
                if let (MediaKind::Audio, Some(codec)) = (m.kind, codec) {
                    mics.push(MicIn {
                        codec,
                        graph_track: i as u32,
                    });
                }
                continue;
            }
            let Some(info) = m.codecs.first().and_then(to_info) else {
                continue;
            };
            let Some(codec) = codec_name(info.name) else {
                continue;
            };
            // SSRC, sequence and timestamp base are each peer's to set.
            let Ok(p) = Packetizer::new(&info, 0, 0, MTU) else {
                continue;
            };
            inner.by_graph[i] = Some(tracks.len());
            inner.packetizers.push(Some(p));
            tracks.push(TrackOut {
                video: m.kind == MediaKind::Video,
                codec,
                fmtp: if info.name == CodecName::H264 {
                    h264_fmtp(&info)
                } else {
                    String::new()
                },
                graph_track: i as u32,
            });
        }
        drop(inner);
        if tracks.is_empty() {
            feed.state.send_replace(FeedState::Failed(
                "webrtc: the stream has no track WebRTC can carry (H264, H265, AV1, OPUS, PCMA, PCMU)"
                    .into(),
            ));
            return;
        }
        *feed.tracks.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(tracks);
        *feed.mics.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(mics);
        feed.state.send_replace(FeedState::Ready);
    }

    fn failed(&self, error: String) {
        if let Some(feed) = self.feed.upgrade() {
            feed.state.send_replace(FeedState::Failed(error));
        }
    }

    fn packet(&self, track: u32, packet: &Packet) {
        let (Some(feed), Some(feeds)) = (self.feed.upgrade(), self.feeds.upgrade()) else {
            return;
        };
        let idx = {
            let inner = feed.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.by_graph.get(track as usize).copied().flatten()
        };
        if let Some(idx) = idx {
            feed.send(
                &feeds,
                idx,
                &packet.payload,
                packet.pts as u32,
                packet.is_keyframe(),
            );
        }
    }

    fn closed(&self, reason: String) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        if let (Some(feed), Some(feeds)) = (self.feed.upgrade(), self.feeds.upgrade()) {
            feed.state.send_replace(FeedState::Failed(reason));
            let _ = feeds.to_server.try_send(Command::FeedEnded(feed.id));
        }
    }
}
