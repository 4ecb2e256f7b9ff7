//! One graph consumer per played stream, shared by all its RTMP players (as
//! the RTSP server's feed): each frame is muxed into an FLV tag body and
//! chunked once, and the same bytes go to every player. The feed keeps the
//! chunked sequence headers and the GOP since the last video keyframe, so a
//! player that joins later starts at a keyframe, without a gap and without a
//! duplicate (it joins under the lock the frames are appended under).

use std::sync::{Arc, Mutex};

use camrouter_media::flv::FlvMuxer;
use camrouter_media::CodecInfo;
use camrouter_plugin_api::abi::{Media, Packet};
use camrouter_plugin_api::media::to_info;
use camrouter_plugin_api::sdk::{Client, Consumer, Host};
use tokio::sync::mpsc;

use crate::amf::{self, Amf};
use crate::chunk::{self, msg};
use crate::session::{CSID_AUDIO, CSID_DATA, CSID_VIDEO, OUT_CHUNK_SIZE, STREAM_ID};

/// Chunked messages a player may have queued before it skips to the next
/// keyframe.
pub const PLAYER_QUEUE: usize = 512;
/// The cached GOP is dropped (and a joining player waits for the next
/// keyframe) past either bound.
const GOP_MAX_FRAMES: usize = 2000;
const GOP_MAX_BYTES: usize = 32 << 20;

/// How far B-frames may be reordered when the source gives no decode
/// times (x264's defaults need three frames; 200 ms covers them at 15 fps).
const REORDER_MS: i64 = 200;

pub type Bytes = Arc<Vec<u8>>;

struct Player {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    /// Skipping frames until the next video keyframe (its queue was full).
    waiting: bool,
    client: Arc<Client>,
}

#[derive(Default)]
struct State {
    consumer: u64,
    muxer: Option<FlvMuxer>,
    rates: Vec<i64>,
    /// Per track: carried as video.
    video: Vec<bool>,
    /// Per track: video whose FLV tags carry a composition offset (H.264,
    /// H.265); AV1's have none, so its tags are stamped with the
    /// presentation time.
    reorders: Vec<bool>,
    has_video: bool,
    has_audio: bool,
    /// `received_at_us` of the first frame: the feed's time 0.
    start_us: Option<u64>,
    /// Per track: its first dts and the feed time (ms) that maps to.
    origins: Vec<Option<(i64, i64)>>,
    last_dts: Vec<i64>,
    /// The chunked sequence headers.
    header: Vec<u8>,
    gop: Vec<Bytes>,
    gop_bytes: usize,
    gop_valid: bool,
    players: Vec<Player>,
    next_id: u64,
    /// Why the feed ended (the stream was removed, its source failed).
    ended: Option<String>,
}

pub struct Feed {
    pub stream: String,
    host: Host,
    /// The message stream id media goes out on: ours as a server, the one
    /// the target's createStream gave when we publish.
    stream_id: u32,
    /// Publishing to another server: what such targets take (H.264, H.265,
    /// AAC) is carried, anything else is left out (see `attached`).
    publishing: bool,
    state: Mutex<State>,
    /// `true` once the graph attached the consumer (or the feed ended):
    /// players register their client record after that, since the graph
    /// only knows the consumer from then on.
    ready: tokio::sync::watch::Sender<bool>,
}

/// The graph's view of a feed.
pub struct FeedConsumer(pub Arc<Feed>);

impl Feed {
    pub fn new(stream: &str, host: Host) -> Arc<Feed> {
        Feed::build(stream, host, STREAM_ID, false)
    }

    /// A feed for one publisher to another server, on the message stream
    /// the target gave.
    pub fn publisher(stream: &str, host: Host, stream_id: u32) -> Arc<Feed> {
        Feed::build(stream, host, stream_id, true)
    }

    fn build(stream: &str, host: Host, stream_id: u32, publishing: bool) -> Arc<Feed> {
        Arc::new(Feed {
            stream: stream.to_string(),
            host,
            stream_id,
            publishing,
            state: Mutex::new(State::default()),
            ready: tokio::sync::watch::channel(false).0,
        })
    }

    /// Waits until the graph attached the feed or it ended.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    pub fn set_consumer(&self, id: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.consumer = id;
        }
    }

    pub fn consumer(&self) -> u64 {
        self.state.lock().map(|s| s.consumer).unwrap_or(0)
    }

    /// Whether audio is carried (known once attached).
    pub fn has_audio(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.has_audio)
    }

    pub fn ended(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.ended.clone())
    }

    /// Adds a player: its queue starts with the headers and the cached GOP.
    pub fn subscribe(&self, client: Arc<Client>) -> Option<(u64, mpsc::Receiver<Bytes>)> {
        let mut s = self.state.lock().ok()?;
        if s.ended.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::channel(PLAYER_QUEUE + s.gop.len() + 1);
        let mut waiting = true;
        if s.muxer.is_some() {
            let _ = tx.try_send(Arc::new(s.header.clone()));
            if s.gop_valid || !s.has_video {
                for m in &s.gop {
                    let _ = tx.try_send(m.clone());
                }
                waiting = false;
            }
        }
        s.next_id += 1;
        let id = s.next_id;
        let waiting = waiting && s.has_video;
        s.players.push(Player {
            id,
            tx,
            waiting,
            client,
        });
        Some((id, rx))
    }

    /// Removes a player; `true` when it was the last one.
    pub fn unsubscribe(&self, id: u64) -> bool {
        match self.state.lock() {
            Ok(mut s) => {
                s.players.retain(|p| p.id != id);
                s.players.is_empty()
            }
            Err(_) => true,
        }
    }

    fn end(&self, reason: String) {
        if let Ok(mut s) = self.state.lock() {
            s.ended = Some(reason);
            // Dropping the senders ends each player's connection.
            s.players.clear();
        }
        self.ready.send_replace(true);
    }

    pub fn remove(&self) {
        let id = self.consumer();
        if id != 0 {
            self.host.remove_consumer(id);
        }
    }
}

impl State {
    /// (dts, composition offset) in ms on the feed's timeline.
    fn times(&mut self, track: usize, p: &Packet) -> (u32, i32) {
        let rate = self.rates.get(track).copied().unwrap_or(90_000).max(1);
        let start = *self.start_us.get_or_insert(p.received_at_us);
        let offset = (p.received_at_us.saturating_sub(start) / 1000) as i64;
        let (first, at) = match self.origins.get_mut(track) {
            Some(o) => *o.get_or_insert((p.dts, offset)),
            None => (p.dts, offset),
        };
        let real_dts = at + (p.dts - first) * 1000 / rate;
        let pts = real_dts + (p.pts - p.dts) * 1000 / rate;
        // Sources without decode times give dts = pts, which goes back at
        // each B-frame, and FLV readers want decode times in order and not
        // after the presentation time: video decode times then trail the
        // presentation times by a fixed reorder allowance.
        if !self.reorders.get(track).copied().unwrap_or(true)
            && self.video.get(track) == Some(&true)
        {
            let pts = pts.clamp(0, i64::from(u32::MAX));
            if let Some(last) = self.last_dts.get_mut(track) {
                *last = pts;
            }
            return (pts as u32, 0);
        }
        let video = self.video.get(track).copied().unwrap_or(false);
        let mut dts = if video && p.dts == p.pts {
            pts - REORDER_MS
        } else {
            real_dts
        };
        if let Some(last) = self.last_dts.get_mut(track) {
            dts = dts.max(*last).min(pts.max(*last));
            *last = dts;
        }
        (
            dts.clamp(0, i64::from(u32::MAX)) as u32,
            (pts - dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        )
    }
}

/// Stands for a track the FLV muxer should leave out (it carries no G.722).
const NOT_CARRIED: camrouter_media::CodecName = camrouter_media::CodecName::G722;

/// What RTMP targets (YouTube, Twitch, nginx-rtmp) take: H.264, and H.265
/// and AV1 as Enhanced RTMP (YouTube takes both), AAC audio. FLV could carry G.711 too, but the
/// platforms refuse it, so other codecs are left out with a log line
/// rather than sent to be refused later.
fn publishable(stream: &str, infos: Vec<CodecInfo>) -> Vec<CodecInfo> {
    use camrouter_media::CodecName as C;
    infos
        .into_iter()
        .map(|i| match i.name {
            C::H264 | C::H265 | C::Av1 | C::Aac => i,
            other => {
                tracing::warn!(
                    stream,
                    "publish: {} left out: RTMP targets take H.264/H.265/AV1 and AAC \
                     (transcode with a source such as ffmpeg:{stream}#audio=aac)",
                    other.ffmpeg_name()
                );
                CodecInfo::new(NOT_CARRIED, 8_000)
            }
        })
        .collect()
}

/// `onMetaData` (`@setDataFrame` first when publishing, as ffmpeg and OBS
/// send it): which kinds the stream has, so a server or player need not
/// wait for a track that never comes (ours waits up to 512 frames for one
/// announced by nothing), with Enhanced RTMP's FourCC as the video codec id
/// of H.265 and AV1.
fn metadata(infos: &[CodecInfo], muxer: &FlvMuxer, publishing: bool) -> Vec<u8> {
    use camrouter_media::CodecName as C;
    let mut props = Vec::new();
    for (i, info) in infos.iter().enumerate() {
        if !muxer.carries(i) {
            continue;
        }
        let id = match info.name {
            C::H264 => 7.0,
            C::H265 => f64::from(u32::from_be_bytes(*b"hvc1")),
            C::Av1 => f64::from(u32::from_be_bytes(*b"av01")),
            C::Aac => 10.0,
            C::Pcma => 7.0,
            C::Pcmu => 8.0,
            C::Opus => f64::from(u32::from_be_bytes(*b"Opus")),
            _ => continue,
        };
        if info.kind() == camrouter_media::MediaKind::Video {
            props.push(("videocodecid".to_string(), Amf::Number(id)));
            if info.width > 0 && info.height > 0 {
                props.push(("width".to_string(), Amf::Number(f64::from(info.width))));
                props.push(("height".to_string(), Amf::Number(f64::from(info.height))));
            }
        } else {
            props.push(("audiocodecid".to_string(), Amf::Number(id)));
        }
    }
    let mut values = Vec::with_capacity(3);
    if publishing {
        values.push(Amf::str("@setDataFrame"));
    }
    values.push(Amf::str("onMetaData"));
    values.push(Amf::EcmaArray(props));
    amf::encode_all(&values)
}

/// An FLV tag (header, body, PreviousTagSize) as one chunked RTMP message.
fn chunk_tag(out: &mut Vec<u8>, stream_id: u32, tag: &[u8]) {
    if tag.len() < 15 {
        return;
    }
    let type_id = tag[0];
    let ts = u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]);
    let body = &tag[11..tag.len() - 4];
    let csid = match type_id {
        msg::VIDEO => CSID_VIDEO,
        msg::AUDIO => CSID_AUDIO,
        _ => CSID_DATA,
    };
    chunk::write_message(out, OUT_CHUNK_SIZE, csid, type_id, ts, stream_id, body);
}

impl Consumer for FeedConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let infos: Vec<CodecInfo> = medias
            .iter()
            .map(|m| {
                m.codecs
                    .first()
                    .and_then(to_info)
                    .unwrap_or_else(|| CodecInfo::new(NOT_CARRIED, 8_000))
            })
            .collect();
        let infos = if self.0.publishing {
            publishable(&self.0.stream, infos)
        } else {
            infos
        };
        if self.0.publishing && infos.iter().all(|i| i.name == NOT_CARRIED) {
            return self.0.end(
                "rtmp: nothing to publish: the stream has no H.264/H.265/AV1 video or AAC audio"
                    .into(),
            );
        }
        let muxer = match FlvMuxer::new(&infos) {
            Ok(m) => m,
            Err(e) => return self.0.end(format!("rtmp: {e}")),
        };
        let Ok(mut s) = self.0.state.lock() else {
            return;
        };
        let mut header = Vec::new();
        let meta = metadata(&infos, &muxer, self.0.publishing);
        chunk::write_message(
            &mut header,
            OUT_CHUNK_SIZE,
            CSID_DATA,
            msg::DATA_AMF0,
            0,
            self.0.stream_id,
            &meta,
        );
        // The FLV header (13 bytes), then tags.
        let flv = muxer.header();
        let mut at = camrouter_media::flv::HEADER_LEN + 4;
        while at + 11 <= flv.len() {
            let len = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
            let end = (at + 11 + len + 4).min(flv.len());
            chunk_tag(&mut header, self.0.stream_id, &flv[at..end]);
            at = end;
        }
        s.video = infos
            .iter()
            .enumerate()
            .map(|(i, info)| muxer.carries(i) && info.kind() == camrouter_media::MediaKind::Video)
            .collect();
        s.has_video = s.video.contains(&true);
        s.reorders = infos
            .iter()
            .map(|i| i.name != camrouter_media::CodecName::Av1)
            .collect();
        s.has_audio = infos
            .iter()
            .enumerate()
            .any(|(i, info)| muxer.carries(i) && info.kind() == camrouter_media::MediaKind::Audio);
        s.rates = infos.iter().map(|i| i64::from(i.clock_rate)).collect();
        s.origins = vec![None; infos.len()];
        s.last_dts = vec![i64::MIN; infos.len()];
        s.muxer = Some(muxer);
        s.header = header.clone();
        let header = Arc::new(header);
        for p in &mut s.players {
            let _ = p.tx.try_send(header.clone());
        }
        drop(s);
        self.0.ready.send_replace(true);
    }

    fn failed(&self, error: String) {
        tracing::debug!(stream = %self.0.stream, "rtmp: {error}");
        self.0.end(error);
    }

    fn packet(&self, track: u32, packet: &Packet) {
        let Ok(mut s) = self.0.state.lock() else {
            return;
        };
        let track = track as usize;
        let Some(muxer) = s.muxer.as_ref() else {
            return;
        };
        if !muxer.carries(track) {
            return;
        }
        let is_video = s.video.get(track).copied().unwrap_or(false);
        let (dts, cts) = s.times(track, packet);
        let Some(muxer) = s.muxer.as_ref() else {
            return;
        };
        let Some(tag) = muxer.frame(track, dts, cts, packet.is_keyframe(), &packet.payload) else {
            return;
        };
        let mut out = Vec::with_capacity(tag.len() + tag.len() / OUT_CHUNK_SIZE + 16);
        chunk_tag(&mut out, self.0.stream_id, &tag);
        let bytes = Arc::new(out);
        let key = is_video && packet.is_keyframe();
        if key {
            s.gop.clear();
            s.gop_bytes = 0;
            s.gop_valid = true;
        }
        if s.gop_valid || !s.has_video {
            s.gop_bytes += bytes.len();
            s.gop.push(bytes.clone());
            if s.gop.len() > GOP_MAX_FRAMES || s.gop_bytes > GOP_MAX_BYTES {
                s.gop.clear();
                s.gop_bytes = 0;
                s.gop_valid = false;
            }
        }
        let has_video = s.has_video;
        for p in &mut s.players {
            if p.waiting {
                if !key {
                    continue;
                }
                p.waiting = false;
            }
            match p.tx.try_send(bytes.clone()) {
                Ok(()) => p.client.sent(bytes.len(), 1),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    p.client.dropped(1);
                    p.waiting = has_video;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    fn closed(&self, reason: String) {
        tracing::debug!(stream = %self.0.stream, "rtmp: feed closed: {reason}");
        self.0.end(reason);
    }
}
