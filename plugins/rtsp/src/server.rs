//! The RTSP server (`rtsp.listen`, default `:8554`): plays streams to
//! clients (TCP interleaved or UDP) and takes publishers (ANNOUNCE/RECORD).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use camrouter_media::depay::Depacketizer;
use camrouter_media::rtp::RtpPacket;
use camrouter_media::sdp::{write_session, Direction as SdpDirection, MediaDescription, Session};
use camrouter_plugin_api::conn::{
    AcceptErrors, AcceptFailure, Pending, PendingConns, FIRST_REQUEST_TIMEOUT,
};
use camrouter_plugin_api::sdk::{Client, Host, Source, SourceEvents};
use camrouter_plugin_api::{Direction, Media, MediaKind, Packet, RArc, RVec, FLAG_KEYFRAME};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;

use crate::convert::sdp_media;
use crate::feed::{Feed, Feeds, FrameSink};
use crate::out::ConnWriter;
use crate::proto::auth::{Credentials, ServerAuth};
use crate::proto::codec::{Decoder, Item};
use crate::proto::message::{Method, Request, Response};
use crate::proto::server::{generate_session_id, Responder, SetupTransport};
use crate::random;
use crate::Config;

const SERVER_NAME: &str = "camrouter";
const SESSION_TIMEOUT: u32 = 60;
/// A connection that neither plays nor records is closed after this long
/// without a request (the session timeout we announce).
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(SESSION_TIMEOUT as u64);

pub struct Server {
    pub host: Host,
    pub config: Config,
    pub feeds: Arc<Feeds>,
    pub started: std::time::Instant,
}

pub async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    let pending = PendingConns::for_fd_limit();
    let mut errors = AcceptErrors::default();
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                if let Some(line) = errors.ok() {
                    tracing::info!("rtsp: {line}");
                }
                let _ = tcp.set_nodelay(true);
                let s = server.clone();
                let slot = pending.admit(Some(peer.ip()));
                tokio::spawn(async move {
                    if let Err(e) = serve(s, tcp, peer, slot).await {
                        tracing::debug!(remote = %peer, "rtsp: {e}");
                    }
                });
            }
            Err(e) => match errors.failed(&e) {
                AcceptFailure::Retry => {}
                AcceptFailure::Wait { delay, log } => {
                    if let Some(line) = log {
                        tracing::warn!("rtsp: {line}");
                    }
                    // Out of descriptors: an idle client's is the one to give back.
                    pending.evict_oldest();
                    tokio::time::sleep(delay).await;
                }
            },
        }
    }
}

/// The stream name and query of a request URL: `rtsp://h:8554/cam?video`
/// → (`cam`, `video`). A SETUP URL's `/trackID=N` is stripped by the caller.
pub fn stream_of(uri: &str) -> (String, String) {
    let rest = match uri.find("://") {
        Some(i) => &uri[i + 3..],
        None => uri,
    };
    let path = match rest.find('/') {
        Some(i) => &rest[i + 1..],
        None => "",
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let name = path.trim_end_matches('/');
    (crate::proto::url::percent_decode(name), query.to_string())
}

/// `.../trackID=N` → N (also `track=N`, `streamid=N`: what clients echo back
/// is our own control, but be lenient).
fn track_of(uri: &str) -> Option<usize> {
    let last = uri.trim_end_matches('/').rsplit('/').next()?;
    let (_, n) = last.split_once('=')?;
    n.parse().ok()
}

/// Per-connection state.
struct Conn {
    server: Arc<Server>,
    peer: SocketAddr,
    responder: Responder,
    nonce: Option<String>,
    writer: Arc<ConnWriter>,
    play: Option<Play>,
    record: Option<Record>,
    closing: Arc<Notify>,
}

struct Play {
    feed: Arc<Feed>,
    /// Our track index → how the client receives it.
    transports: HashMap<usize, SetupTransport>,
    playing: bool,
    udp: Option<Arc<UdpSocket>>,
    /// Interleaved channel → (graph track, depacketizer) of a microphone track.
    mics: HashMap<u8, (u32, Depacketizer)>,
    /// This session as its own consumer in `/api/streams` and metrics,
    /// though it shares the feed's graph consumer; removed when dropped.
    client: Client,
}

struct Record {
    events: SourceEvents,
    medias: Vec<Media>,
    depays: Vec<Option<Depacketizer>>,
    /// Interleaved channel → media index.
    channels: HashMap<u8, usize>,
    started: bool,
}

/// An ingest producer: stopping it closes the publisher's connection.
struct Publisher(Arc<Notify>);

impl Source for Publisher {
    fn stop(&self) {
        self.0.notify_one();
    }
}

async fn serve(
    server: Arc<Server>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Pending,
) -> std::io::Result<()> {
    let (mut rd, wr) = tcp.into_split();
    let writer = ConnWriter::new(
        wr,
        std::time::Duration::from_millis(server.config.coalesce_ms),
    );
    tokio::spawn(writer.clone().run());
    let closing = Arc::new(Notify::new());
    let mut conn = Conn {
        server,
        peer,
        responder: Responder::new(SERVER_NAME),
        nonce: None,
        writer: writer.clone(),
        play: None,
        record: None,
        closing: closing.clone(),
    };
    let mut decoder = Decoder::new();
    // Small until the client plays or records: idle connections are cheap.
    let mut buf = vec![0u8; 4 * 1024];
    let mut deadline = tokio::time::Instant::now() + FIRST_REQUEST_TIMEOUT;
    let mut pending = true;
    let result = 'conn: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => r,
            _ = closing.notified() => break Ok(()),
            _ = writer.gone.notified() => break Ok(()),
            _ = slot.evicted() => break Ok(()),
            _ = tokio::time::sleep_until(deadline), if pending || (conn.play.is_none() && conn.record.is_none()) => {
                tracing::debug!(remote = %peer, authenticated = !pending, "rtsp: closing an idle connection");
                break Ok(());
            }
        };
        let n = match n {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        decoder.push(&buf[..n]);
        while let Some(item) = decoder.poll() {
            match item {
                Ok(Item::Request(req)) => {
                    deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                    let teardown = req.method == Method::Teardown;
                    let options = req.method == Method::Options;
                    let resp = conn.handle(req).await;
                    // OPTIONS needs no credentials and a 401 proves none: a
                    // client repeating them would otherwise hold connections
                    // outside the caps for ever. Until it passes auth it
                    // stays pending (capped, oldest closed first).
                    if pending && !options && resp.0.status != 401 {
                        pending = false;
                        slot.release();
                    }
                    // PLAY's reply goes out before its first frame: the
                    // writer keeps order.
                    writer.send_bytes(resp.0.to_bytes());
                    if let Some(start) = resp.1 {
                        start(&mut conn);
                    }
                    if (conn.play.is_some() || conn.record.is_some()) && buf.len() < 64 * 1024 {
                        // A fresh zeroed allocation, not `resize`: the
                        // allocator hands out zero pages without touching
                        // them, and a player never sends enough to fill
                        // them (resize wrote 60 KB per reader: +11 MB RSS at
                        // 200 readers). Nothing is kept in `buf` between reads.
                        buf = vec![0u8; 64 * 1024];
                    }
                    if teardown {
                        break 'conn Ok(());
                    }
                }
                Ok(Item::Interleaved { channel, data }) => conn.on_interleaved(channel, &data),
                Ok(Item::Response(_)) => {}
                Err(e) if pending => {
                    // Not an RTSP client. A browser sends an HTTP POST to
                    // this port when any page asks; skipping its head as
                    // garbage would act on the RTSP requests in its body.
                    tracing::debug!(remote = %peer, "rtsp: {e}; closing: not an RTSP client");
                    break 'conn Ok(());
                }
                Err(e) => tracing::debug!(remote = %peer, "rtsp: {e}"),
            }
        }
    };
    conn.close();
    result
}

/// Work to do after a response is queued (PLAY starts frames after its reply).
type After = Box<dyn FnOnce(&mut Conn) + Send>;

impl Conn {
    fn is_local(&self) -> bool {
        self.peer.ip().is_loopback()
    }

    /// `None` when the request may go on; else the 401 to answer.
    fn check_auth(&mut self, req: &Request) -> Option<Response> {
        let cfg = &self.server.config;
        if cfg.username.is_empty() || (self.is_local() && !cfg.local_auth) {
            return None;
        }
        let auth = ServerAuth::new(
            "camrouter",
            Credentials::new(cfg.username.clone(), cfg.password.clone()),
        );
        let ok = auth
            .verify(
                req.headers.get("Authorization"),
                req.method.as_str(),
                &req.uri,
                self.nonce.as_deref(),
            )
            .is_ok();
        if ok {
            return None;
        }
        let nonce = self.nonce.get_or_insert_with(|| random::hex(16)).clone();
        Some(
            self.responder
                .unauthorized(req, &auth.challenges(Some(&nonce))),
        )
    }

    async fn handle(&mut self, req: Request) -> (Response, Option<After>) {
        if let Err(e) = self.responder.validate(&req) {
            return (self.responder.error(&req, &e), None);
        }
        if req.method == Method::Options {
            return (self.responder.options(&req), None);
        }
        if let Some(r) = self.check_auth(&req) {
            return (r, None);
        }
        if let Err(e) = self.responder.check_session(&req) {
            return (self.responder.error(&req, &e), None);
        }
        match req.method {
            Method::Describe => (self.describe(&req).await, None),
            Method::Announce => (self.announce(&req), None),
            Method::Setup => (self.setup(&req).await, None),
            Method::Play => self.play(&req),
            Method::Record => (self.start_record(&req), None),
            Method::Teardown | Method::GetParameter | Method::SetParameter | Method::Pause => {
                (self.responder.respond(&req, 200), None)
            }
            _ => (self.responder.respond(&req, 501), None),
        }
    }

    async fn describe(&mut self, req: &Request) -> Response {
        let (name, query) = stream_of(&req.uri);
        let host = &self.server.host;
        if !host.stream_exists(&name) {
            return self.responder.respond(req, 404);
        }
        let query = if query.is_empty() {
            self.server.config.default_query.clone()
        } else {
            query
        };
        let feed = self.server.feeds.get(&name, &query, &self.peer.to_string());
        let tracks = match feed.ready().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(stream = %name, remote = %self.peer, "rtsp: {e}");
                return self.responder.respond(req, 404);
            }
        };
        let total = tracks.list.len() + tracks.mics.len();
        let controls: Vec<String> = (0..total).map(|i| format!("trackID={i}")).collect();
        // Directions as ONVIF cameras (and go2rtc) write them, from the
        // client's side: what it receives is `recvonly`, what it may send
        // (a microphone for the camera's speaker) `sendonly`.
        let mut descs: Vec<MediaDescription> = tracks
            .list
            .iter()
            .zip(&controls)
            .map(|(t, c)| MediaDescription {
                codec: &t.info,
                payload_type: t.payload_type,
                control: c,
                direction: SdpDirection::RecvOnly,
            })
            .collect();
        for (m, c) in tracks.mics.iter().zip(&controls[tracks.list.len()..]) {
            descs.push(MediaDescription {
                codec: &m.info,
                payload_type: m.payload_type,
                control: c,
                direction: SdpDirection::SendOnly,
            });
        }
        let sdp = match write_session(SERVER_NAME, &descs) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %name, "rtsp: sdp: {e}");
                return self.responder.respond(req, 500);
            }
        };
        let client = self.server.host.add_client(
            feed.consumer_id.load(std::sync::atomic::Ordering::Relaxed),
            json!({
                "format_name": "rtsp",
                "protocol": "rtsp+tcp",
                "remote_addr": self.peer.to_string(),
                "user_agent": req.headers.get("User-Agent").unwrap_or(""),
            }),
        );
        self.play = Some(Play {
            client,
            feed,
            transports: HashMap::new(),
            playing: false,
            udp: None,
            mics: HashMap::new(),
        });
        let base = format!(
            "{}/",
            req.uri
                .split('?')
                .next()
                .unwrap_or(&req.uri)
                .trim_end_matches('/')
        );
        self.responder
            .respond(req, 200)
            .with_header("Content-Base", base)
            .with_header("Content-Type", "application/sdp")
            .with_body(sdp.into_bytes())
    }

    fn ensure_session(&mut self) {
        if self.responder.session.is_none() {
            let mut b = [0u8; 8];
            random::fill(&mut b);
            let id = generate_session_id(&b).unwrap_or_else(|_| random::hex(8));
            self.responder.ensure_session(id, SESSION_TIMEOUT);
        }
    }

    async fn setup(&mut self, req: &Request) -> Response {
        let track = track_of(&req.uri).unwrap_or(0);
        if let Some(rec) = &mut self.record {
            let next = (track * 2) as u8;
            let (t, reply) = match self.responder.parse_setup(req, next) {
                Ok(x) => x,
                Err(e) => return self.responder.error(req, &e),
            };
            match t {
                SetupTransport::Tcp { rtp_channel, .. } => {
                    rec.channels.insert(rtp_channel, track);
                }
                SetupTransport::Udp { .. } => {
                    return self.responder.respond(req, 461);
                }
            }
            self.ensure_session();
            return self
                .responder
                .respond(req, 200)
                .with_header("Transport", reply.to_string());
        }
        let Some(play) = &mut self.play else {
            return self.responder.respond(req, 455);
        };
        let tracks = play.feed.tracks();
        if let Some(mic) = track
            .checked_sub(tracks.list.len())
            .and_then(|i| tracks.mics.get(i))
        {
            let (t, reply) = match self.responder.parse_setup(req, (track * 2) as u8) {
                Ok(x) => x,
                Err(e) => return self.responder.error(req, &e),
            };
            let SetupTransport::Tcp { rtp_channel, .. } = t else {
                return self.responder.respond(req, 461);
            };
            let depay = codec_format(&mic.info, mic.payload_type)
                .and_then(|f| Depacketizer::for_format(&f).ok());
            let Some(depay) = depay else {
                return self.responder.respond(req, 415);
            };
            play.mics.insert(rtp_channel, (mic.graph_track, depay));
            self.ensure_session();
            return self
                .responder
                .respond(req, 200)
                .with_header("Transport", reply.to_string());
        }
        if track >= tracks.list.len() {
            return self.responder.respond(req, 404);
        }
        let (t, mut reply) = match self.responder.parse_setup(req, (track * 2) as u8) {
            Ok(x) => x,
            Err(e) => return self.responder.error(req, &e),
        };
        if let SetupTransport::Udp { .. } = t {
            if play.udp.is_none() {
                match UdpSocket::bind("0.0.0.0:0").await {
                    Ok(s) => play.udp = Some(Arc::new(s)),
                    Err(_) => return self.responder.respond(req, 500),
                }
            }
            if let Some(port) = play
                .udp
                .as_ref()
                .and_then(|u| u.local_addr().ok())
                .map(|a| a.port())
            {
                reply.server_port = Some((port, Some(port)));
            }
        }
        play.transports.insert(track, t);
        self.ensure_session();
        self.responder
            .respond(req, 200)
            .with_header("Transport", reply.to_string())
    }

    fn play(&mut self, req: &Request) -> (Response, Option<After>) {
        let Some(play) = &mut self.play else {
            return (self.responder.respond(req, 455), None);
        };
        if (play.transports.is_empty() && play.mics.is_empty()) || play.playing {
            return (self.responder.respond(req, 455), None);
        }
        play.playing = true;
        let tracks = play.feed.tracks();
        let mut played: Vec<u32> = play
            .transports
            .keys()
            .filter_map(|&i| tracks.graph_index(i))
            .chain(play.mics.values().map(|(g, _)| *g))
            .collect();
        played.sort_unstable();
        let udp = play
            .transports
            .values()
            .any(|t| matches!(t, SetupTransport::Udp { .. }));
        play.client.update(json!({
            "tracks": played,
            "protocol": if udp { "rtsp+udp" } else { "rtsp+tcp" },
        }));
        self.writer
            .set_counters(Some(play.client.counters().clone()));
        let start: After = Box::new(|conn: &mut Conn| {
            let Some(play) = &conn.play else { return };
            let tracks = play.feed.tracks();
            conn.writer.start_play(
                play.transports.clone(),
                |i| {
                    tracks
                        .list
                        .get(i)
                        .is_some_and(|t| t.media.kind == MediaKind::Video)
                },
                play.udp.clone().map(|u| (u, conn.peer.ip())),
            );
            let sink: Arc<dyn FrameSink> = conn.writer.clone();
            play.feed.subscribe(&sink);
        });
        (self.responder.respond(req, 200), Some(start))
    }

    fn announce(&mut self, req: &Request) -> Response {
        let (name, _) = stream_of(&req.uri);
        let host = self.server.host.clone();
        if !host.stream_exists(&name) {
            // go2rtc: publishing needs the stream in the config (it may have no sources).
            return self.responder.respond(req, 404);
        }
        let sdp = String::from_utf8_lossy(&req.body).into_owned();
        let session = match Session::parse(&sdp) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %name, remote = %self.peer, "rtsp: bad ANNOUNCE SDP: {e}");
                return self.responder.respond(req, 400);
            }
        };
        let mut medias = Vec::new();
        let mut depays = Vec::new();
        for m in &session.medias {
            let Some(mut media) = sdp_media(m, 0) else {
                continue;
            };
            // A publisher only sends.
            media.direction = Direction::RecvOnly;
            let depay = m
                .formats
                .first()
                .and_then(|f| Depacketizer::for_format(f).ok());
            medias.push(media);
            depays.push(depay);
        }
        let info = json!({
            "format_name": "rtsp",
            "protocol": "rtsp+tcp",
            "remote_addr": self.peer.to_string(),
            "url": req.uri.clone(),
            "user_agent": req.headers.get("User-Agent").unwrap_or(""),
        });
        let events = match host.add_producer(&name, info, Publisher(self.closing.clone())) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(stream = %name, "rtsp: publish: {e}");
                return self.responder.respond(req, 404);
            }
        };
        tracing::debug!(stream = %name, remote = %self.peer, "rtsp: publisher announced");
        self.record = Some(Record {
            events,
            medias,
            depays,
            channels: HashMap::new(),
            started: false,
        });
        self.responder.respond(req, 200)
    }

    fn start_record(&mut self, req: &Request) -> Response {
        let Some(rec) = &mut self.record else {
            return self.responder.respond(req, 455);
        };
        if !rec.started {
            rec.started = true;
            rec.events.medias(rec.medias.clone());
        }
        self.responder.respond(req, 200)
    }

    fn on_interleaved(&mut self, channel: u8, data: &[u8]) {
        if let Some(play) = &mut self.play {
            // A client talking to the camera: its microphone track.
            if let Some((graph_track, depay)) = play.mics.get_mut(&channel) {
                let Ok(pkt) = RtpPacket::parse(data) else {
                    return;
                };
                if depay.push(&pkt).is_err() {
                    return;
                }
                let id = play
                    .feed
                    .consumer_id
                    .load(std::sync::atomic::Ordering::Relaxed);
                while let Some(f) = depay.pop() {
                    self.server.host.consumer_send(
                        id,
                        *graph_track,
                        &Packet {
                            track: *graph_track,
                            flags: FLAG_KEYFRAME,
                            pts: f.timestamp as i64,
                            dts: f.timestamp as i64,
                            received_at_us: 0,
                            payload: RArc::new(RVec::from(f.data)),
                        },
                    );
                }
            }
            return;
        }
        let Some(rec) = &mut self.record else { return };
        let Some(&idx) = rec.channels.get(&channel) else {
            return;
        };
        let Some(Some(depay)) = rec.depays.get_mut(idx) else {
            return;
        };
        let Ok(pkt) = RtpPacket::parse(data) else {
            return;
        };
        if depay.push(&pkt).is_err() {
            return;
        }
        let now = self.server.started.elapsed().as_micros() as u64;
        while let Some(f) = depay.pop() {
            let mut flags = if f.keyframe { FLAG_KEYFRAME } else { 0 };
            if f.discontinuity {
                flags |= camrouter_plugin_api::FLAG_DISCONTINUITY;
            }
            rec.events.packet(&Packet {
                track: idx as u32,
                flags,
                pts: f.timestamp as i64,
                dts: f.timestamp as i64,
                received_at_us: now,
                payload: RArc::new(RVec::from(f.data)),
            });
        }
    }

    fn close(&mut self) {
        if let Some(play) = self.play.take() {
            if play.playing {
                let sink: Arc<dyn FrameSink> = self.writer.clone();
                play.feed.unsubscribe(&sink);
            }
        }
        self.writer.close();
        if let Some(rec) = self.record.take() {
            rec.events.closed("publisher disconnected");
        }
    }
}

/// An SDP format for one of our own tracks, to pick its depacketizer.
fn codec_format(
    info: &camrouter_media::CodecInfo,
    payload_type: u8,
) -> Option<camrouter_media::sdp::SdpFormat> {
    Some(camrouter_media::sdp::SdpFormat {
        payload_type,
        codec: info.name.go2rtc_name().to_string(),
        clock_rate: info.clock_rate,
        channels: info.channels.max(1),
        fmtp: String::new(),
        info: Some(info.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_from_urls() {
        assert_eq!(
            stream_of("rtsp://127.0.0.1:8554/cam"),
            ("cam".into(), "".into())
        );
        assert_eq!(
            stream_of("rtsp://h:8554/cam/?video=h264&audio"),
            ("cam".into(), "video=h264&audio".into())
        );
        assert_eq!(stream_of("rtsp://h/my%20cam"), ("my cam".into(), "".into()));
        assert_eq!(track_of("rtsp://h:8554/cam/trackID=1"), Some(1));
        assert_eq!(track_of("rtsp://h:8554/cam"), None);
    }
}
