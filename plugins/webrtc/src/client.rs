//! `webrtc:` client sources, as go2rtc's: camrouter pulls a stream from a
//! WebRTC server and is a producer with the tracks the remote sends.
//!
//! - `webrtc:http(s)://…`: WHEP (POST the offer as `application/sdp`; 201 +
//!   `Location`, `DELETE` on it when the source stops); an `application/json`
//!   answer (`{"type":"answer","sdp"}`) is read too, and a server that refuses
//!   the SDP body (400/415) gets go2rtc's JSON `{"type":"offer","sdp"}`.
//! - `webrtc:ws(s)://…`: go2rtc's `/api/ws` (`webrtc/offer` → `webrtc/answer`,
//!   `webrtc/candidate` both ways).
//! - `#format=kinesis` (ws, `#client_id=`), `#format=wyze` (http: the
//!   bridge's JSON names the Kinesis channel), `#format=openipc` (ws; the
//!   camera offers and we answer), `#format=switchbot` (Kinesis with
//!   SwitchBot's payload fields), `#format=creality` (base64 JSON over HTTP),
//!   `#format=milestone` (token, session offer, PATCHed answer).
//! - `#ice_servers=[{"urls":…,"username":…,"credential":…}]` (JSON, as
//!   go2rtc): this peer's TURN server for a relay candidate of ours, before
//!   `webrtc.ice_servers`' (a Wyze bridge's `servers` likewise).
//!
//! The peer itself lives in the loop (`server::dial`), on the shared socket.
//! A failure before the peer takes over is reported here; after that the
//! peer's removal reports it. The host retries a source that closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use camrouter_plugin_api::sdk::{Source, SourceEvents};
use camrouter_plugin_api::Packet;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::config::IceServer;
use crate::server::dial::{Accept, Answered, Dial};
use crate::server::{Command, KEYFRAME_REQUEST_INTERVAL};
use crate::turn::TurnServer;

/// Dial, signaling and the answer.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// The signaling a URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Whep,
    Go2rtcWs,
    Kinesis {
        client_id: String,
    },
    Wyze,
    OpenIpc,
    /// Kinesis with SwitchBot's offer payload (`resolution`, `play_type`),
    /// video only.
    SwitchBot {
        client_id: String,
        resolution: Option<u8>,
        play_type: i64,
    },
    /// Creality printers: base64 JSON over HTTP, video only.
    Creality,
    /// Milestone XProtect: token, then a session whose offer we answer.
    Milestone {
        username: String,
        password: String,
        camera_id: String,
        stream_id: String,
        playback_time: String,
        skip_gaps: bool,
        /// As given (go2rtc sends it as a number, 0 left out).
        speed: String,
    },
}

/// A parsed `webrtc:` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrl {
    /// The signaling URL (`http(s)://` or `ws(s)://`), without `#params`.
    pub url: String,
    pub format: Format,
    /// `#ice_servers=` (go2rtc's JSON list).
    pub ice_servers: Vec<IceServer>,
}

impl ClientUrl {
    pub fn parse(source: &str) -> Result<ClientUrl, String> {
        let rest = source.strip_prefix("webrtc:").unwrap_or(source);
        let (url, params) = rest.split_once('#').unwrap_or((rest, ""));
        let param = |key: &str| {
            params
                .split('#')
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        let ws = match scheme {
            "ws" | "wss" => true,
            "http" | "https" => false,
            _ => return Err(format!("webrtc: bad url (unsupported scheme): {url}")),
        };
        let format = match (param("format").as_deref(), ws) {
            (None | Some(""), true) => Format::Go2rtcWs,
            (None | Some(""), false) => Format::Whep,
            (Some("kinesis"), true) => Format::Kinesis {
                client_id: param("client_id").unwrap_or_default(),
            },
            (Some("openipc"), true) => Format::OpenIpc,
            (Some("wyze"), false) => Format::Wyze,
            (Some("switchbot"), true) => Format::SwitchBot {
                client_id: param("client_id").unwrap_or_default(),
                resolution: match param("resolution").as_deref() {
                    Some("hd") => Some(0),
                    Some("sd") => Some(1),
                    Some("auto") => Some(2),
                    _ => None,
                },
                play_type: param("play_type").and_then(|p| p.parse().ok()).unwrap_or(0),
            },
            (Some("creality"), false) => Format::Creality,
            (Some("milestone"), false) => Format::Milestone {
                username: param("username").unwrap_or_default(),
                password: param("password").unwrap_or_default(),
                camera_id: param("cameraId").unwrap_or_default(),
                stream_id: param("streamId").unwrap_or_default(),
                playback_time: param("playbackTime").unwrap_or_default(),
                skip_gaps: param("skipGaps").is_some(),
                speed: param("speed").unwrap_or_default(),
            },
            (Some(f), _) => {
                let scheme = if ws { "ws(s)" } else { "http(s)" };
                return Err(format!(
                    "webrtc: #format={f} over {scheme} is not supported"
                ));
            }
        };
        let ice_servers = match param("ice_servers") {
            None => Vec::new(),
            Some(s) => {
                // Raw JSON as go2rtc takes it, or percent-encoded.
                let v: Value = serde_json::from_str(&s)
                    .or_else(|_| {
                        serde_json::from_str(&camrouter_plugin_api::url::percent_decode(&s))
                    })
                    .map_err(|e| format!("webrtc: #ice_servers: not a JSON list: {e}"))?;
                IceServer::list_from_json(&v).map_err(|e| {
                    format!(
                        "webrtc: #ice_servers: {}",
                        e.replace("webrtc.ice_servers", "list")
                    )
                })?
            }
        };
        Ok(ClientUrl {
            url: url.to_string(),
            format,
            ice_servers,
        })
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            Format::Whep => "webrtc/whep",
            Format::Go2rtcWs => "webrtc",
            Format::Kinesis { .. } => "webrtc/kinesis",
            Format::Wyze => "webrtc/wyze",
            Format::OpenIpc => "webrtc/openipc",
            Format::SwitchBot { .. } => "webrtc/switchbot",
            Format::Creality => "webrtc/creality",
            Format::Milestone { .. } => "webrtc/milestone",
        }
    }
}

/// The graph's handle: stopping ends the peer (and the WHEP session).
pub struct ClientSource {
    stop: Arc<Notify>,
    /// The current peer (0: none yet), for keyframe requests.
    peer: Arc<AtomicU64>,
    to_server: mpsc::Sender<Command>,
    last_pli: Mutex<Option<Instant>>,
}

impl Source for ClientSource {
    fn stop(&self) {
        self.stop.notify_one();
    }

    /// Talk-back (the only track we send): to the camera, dropped when the
    /// loop is busy rather than delaying the graph.
    fn send(&self, _track: u32, packet: &Packet) {
        let peer = self.peer.load(Ordering::Relaxed);
        if peer == 0 {
            return;
        }
        let _ = self.to_server.try_send(Command::Talk {
            peer,
            payload: packet.payload.clone(),
            timestamp: packet.pts as u32,
        });
    }

    /// A viewer lost video: PLI to the remote, at most every
    /// `KEYFRAME_REQUEST_INTERVAL` whatever the number of viewers.
    fn request_keyframe(&self, _track: u32) {
        let peer = self.peer.load(Ordering::Relaxed);
        if peer == 0 {
            return;
        }
        let now = Instant::now();
        let mut last = self.last_pli.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL) {
            return;
        }
        *last = Some(now);
        let _ = self.to_server.try_send(Command::Pli(peer));
    }
}

/// `ice_servers`: the config's (`webrtc.ice_servers`), after the URL's own.
pub fn open(
    source: &str,
    events: SourceEvents,
    to_server: mpsc::Sender<Command>,
    runtime: &tokio::runtime::Handle,
    ice_servers: Vec<IceServer>,
) -> Result<ClientSource, String> {
    let url = ClientUrl::parse(source)?;
    let stop = Arc::new(Notify::new());
    let s = stop.clone();
    let shared_peer = Arc::new(AtomicU64::new(0));
    let handle = ClientSource {
        stop,
        peer: shared_peer.clone(),
        to_server: to_server.clone(),
        last_pli: Mutex::new(None),
    };
    runtime.spawn(async move {
        events.info(json!({
            "format_name": url.format_name(),
            "protocol": if url.url.starts_with("ws") { "ws" } else { "http" },
            "url": url.url,
        }));
        let mut session = Session {
            to_server,
            shared_peer,
            peer: None,
            location: None,
            ended: None,
            turn: None,
            stun: None,
            config_ice: ice_servers,
        };
        let setup = tokio::time::timeout(SETUP_TIMEOUT, session.start(&url, &events));
        let result = tokio::select! {
            r = setup => r.unwrap_or_else(|_| Err("webrtc: signaling timeout".into())),
            _ = s.notified() => {
                session.close().await;
                return;
            }
        };
        if let Err(e) = result {
            tracing::debug!(url = %url.url, "webrtc: client: {e}");
            session.close().await;
            events.closed(&e);
            return;
        }
        // The peer reports its own end from now on; a stop ends it.
        let ended = session.ended.take();
        tokio::select! {
            _ = s.notified() => session.close().await,
            why = async { ended?.await.ok() } => {
                tracing::debug!(url = %url.url, "webrtc: client peer ended: {why:?}");
                session.peer = None;
                session.close().await;
            }
        }
    });
    Ok(handle)
}

/// One connection attempt.
struct Session {
    to_server: mpsc::Sender<Command>,
    /// The peer, as the graph's handle sees it.
    shared_peer: Arc<AtomicU64>,
    peer: Option<u64>,
    /// The WHEP session's URL, deleted on close.
    location: Option<String>,
    ended: Option<oneshot::Receiver<String>>,
    /// Where our relay candidate is allocated, if anywhere.
    turn: Option<TurnServer>,
    /// The `#ice_servers` STUN server (server-reflexive candidate).
    stun: Option<SocketAddr>,
    config_ice: Vec<IceServer>,
}

impl Session {
    async fn start(&mut self, url: &ClientUrl, events: &SourceEvents) -> Result<(), String> {
        self.turn = crate::turn::pick(&url.ice_servers, &self.config_ice).await;
        self.stun = crate::turn::pick_stun(&url.ice_servers).await;
        match &url.format {
            Format::Whep => {
                let offer = self.offer(events).await?;
                let answer = self.whep(&url.url, &offer).await?;
                self.answer(answer).await
            }
            Format::Go2rtcWs => {
                let offer = self.offer(events).await?;
                let mut ws = ws_connect(&url.url).await?;
                let msg = json!({"type": "webrtc/offer", "value": offer});
                ws_send(&mut ws, &msg).await?;
                let mut early = Vec::new();
                let answer = loop {
                    let m = ws_recv(&mut ws).await?;
                    match m.get("type").and_then(Value::as_str) {
                        Some("webrtc/answer") => break str_field(&m, "value")?,
                        Some("webrtc/candidate") => early.push(str_field(&m, "value")?),
                        Some("error") => {
                            return Err(format!(
                                "webrtc: {}: {}",
                                url.url,
                                m.get("value").and_then(Value::as_str).unwrap_or("error")
                            ))
                        }
                        _ => {}
                    }
                };
                self.answer(answer).await?;
                self.candidates(early).await;
                self.trickle(ws, |m| {
                    (m.get("type").and_then(Value::as_str) == Some("webrtc/candidate"))
                        .then(|| m.get("value").and_then(Value::as_str).map(str::to_string))
                        .flatten()
                });
                Ok(())
            }
            Format::Kinesis { client_id } => self.kinesis(&url.url, client_id, events, None).await,
            Format::SwitchBot {
                client_id,
                resolution,
                play_type,
            } => {
                // go2rtc leaves `resolution` at 0 (hd) when not given.
                let extra = json!({"resolution": resolution.unwrap_or(0), "play_type": play_type});
                self.kinesis(&url.url, client_id, events, Some(extra)).await
            }
            Format::Creality => {
                let offer = self.offer_video_only(events, true).await?;
                let answer = self.creality(&url.url, &offer).await?;
                self.answer(answer).await
            }
            Format::Milestone { .. } => self.milestone(&url.url, &url.format, events).await,
            Format::Wyze => {
                let (status, _, body) = http(&url.url, "GET", None, Vec::new()).await?;
                if status != 200 {
                    return Err(format!("webrtc: wyze: {} answered {status}", url.url));
                }
                let v: Value = serde_json::from_slice(&body)
                    .map_err(|e| format!("webrtc: wyze: invalid JSON: {e}"))?;
                let result = v.get("result").and_then(Value::as_str).unwrap_or_default();
                if result != "ok" {
                    return Err(format!("webrtc: wyze: wrong result: {result}"));
                }
                let signaling = str_field(&v, "signalingUrl")?;
                let client_id = v
                    .get("ClientId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                // The bridge hands out the camera's STUN/TURN servers, as
                // go2rtc uses them; the URL's own go first.
                if let Some(servers) = v
                    .get("servers")
                    .and_then(|s| IceServer::list_from_json(s).ok())
                    .filter(|s| !s.is_empty())
                {
                    let first: Vec<IceServer> =
                        url.ice_servers.iter().cloned().chain(servers).collect();
                    self.turn = crate::turn::pick(&first, &self.config_ice).await;
                    self.stun = crate::turn::pick_stun(&first).await;
                }
                self.kinesis(&signaling, &client_id, events, None).await
            }
            Format::OpenIpc => self.openipc(&url.url, events).await,
        }
    }

    /// Our offer to receive; the peer exists in the loop from here on.
    async fn offer(&mut self, events: &SourceEvents) -> Result<String, String> {
        self.offer_video_only(events, false).await
    }

    async fn offer_video_only(
        &mut self,
        events: &SourceEvents,
        video_only: bool,
    ) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        let dial = Dial {
            events: events.clone(),
            video_only,
            ended: ended_tx,
            turn: self.turn.clone(),
            stun: self.stun,
            reply,
        };
        self.to_server
            .send(Command::Dial(Box::new(dial)))
            .await
            .map_err(|_| "webrtc: server stopped")?;
        let (id, sdp) = rx.await.map_err(|_| "webrtc: server stopped")??;
        self.peer = Some(id);
        self.shared_peer.store(id, Ordering::Relaxed);
        self.ended = Some(ended_rx);
        Ok(sdp)
    }

    /// The remote offered (OpenIPC, Milestone): our answer and candidates;
    /// the peer exists in the loop from here on.
    async fn accept(
        &mut self,
        events: &SourceEvents,
        offer: String,
    ) -> Result<(String, Vec<String>), String> {
        let (reply, rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        let accept = Accept {
            events: events.clone(),
            ended: ended_tx,
            offer,
            turn: self.turn.clone(),
            stun: self.stun,
            reply,
        };
        self.to_server
            .send(Command::Accept(Box::new(accept)))
            .await
            .map_err(|_| "webrtc: server stopped")?;
        let (id, answer, ours) = rx.await.map_err(|_| "webrtc: server stopped")??;
        self.peer = Some(id);
        self.shared_peer.store(id, Ordering::Relaxed);
        self.ended = Some(ended_rx);
        Ok((answer, ours))
    }

    async fn answer(&mut self, sdp: String) -> Result<(), String> {
        let peer = self.peer.ok_or("webrtc: no peer")?;
        let (reply, rx) = oneshot::channel();
        let a = Answered { peer, sdp, reply };
        self.to_server
            .send(Command::Answered(Box::new(a)))
            .await
            .map_err(|_| "webrtc: server stopped")?;
        rx.await.map_err(|_| "webrtc: server stopped")?
    }

    async fn candidates(&self, list: Vec<String>) {
        let Some(peer) = self.peer else { return };
        for candidate in list {
            let _ = self
                .to_server
                .send(Command::Candidate { peer, candidate })
                .await;
        }
    }

    /// Reads the signaling socket on (in the background) for the remote's
    /// late candidates, until it closes or the peer ends.
    fn trickle(
        &self,
        mut ws: Ws,
        candidate: impl Fn(&Value) -> Option<String> + Send + Sync + 'static,
    ) {
        let (Some(peer), to_server) = (self.peer, self.to_server.clone()) else {
            return;
        };
        tokio::spawn(async move {
            // A remote that keeps the socket open forever does not keep
            // this task: the candidates come within the first seconds.
            let read = async {
                while let Ok(m) = ws_recv(&mut ws).await {
                    if let Some(c) = candidate(&m) {
                        if to_server
                            .send(Command::Candidate { peer, candidate: c })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
            let _ = ws.close(None).await;
        });
    }

    /// WHEP; a JSON answer or a server that wants JSON is go2rtc's form.
    async fn whep(&mut self, url: &str, offer: &str) -> Result<String, String> {
        let (mut status, mut headers, mut body) = http(
            url,
            "POST",
            Some("application/sdp"),
            offer.as_bytes().to_vec(),
        )
        .await?;
        if status == 400 || status == 415 {
            let json = json!({"type": "offer", "sdp": offer}).to_string();
            (status, headers, body) =
                http(url, "POST", Some("application/json"), json.into_bytes()).await?;
        }
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(200).collect();
            return Err(format!("webrtc: {url} answered {status}: {}", text.trim()));
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if let Some(location) = header("location") {
            self.location = Some(resolve(url, &location));
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let is_json = header("content-type")
            .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
            || text.trim_start().starts_with('{');
        if is_json {
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("webrtc: {url}: invalid JSON answer: {e}"))?;
            return str_field(&v, "sdp");
        }
        Ok(text)
    }

    /// Amazon Kinesis Video Streams signaling (and Wyze's bridge, which
    /// hands out a Kinesis channel): JSON with base64 JSON payloads.
    /// `extra` (SwitchBot's fields) joins the offer payload and makes the
    /// offer video only.
    async fn kinesis(
        &mut self,
        url: &str,
        client_id: &str,
        events: &SourceEvents,
        extra: Option<Value>,
    ) -> Result<(), String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut ws = ws_connect(url).await?;
        let offer = self.offer_video_only(events, extra.is_some()).await?;
        let mut payload = json!({"type": "offer", "sdp": offer});
        if let (Some(Value::Object(extra)), Some(p)) = (extra, payload.as_object_mut()) {
            p.extend(extra);
        }
        let payload = payload.to_string();
        let msg = json!({
            "action": "SDP_OFFER",
            "recipientClientId": client_id,
            "messagePayload": b64.encode(payload),
        });
        ws_send(&mut ws, &msg).await?;
        let decode = move |m: &Value| -> Option<Value> {
            let p = m.get("messagePayload")?.as_str()?;
            serde_json::from_slice(&b64.decode(p).ok()?).ok()
        };
        let mut early = Vec::new();
        let answer = loop {
            let m = ws_recv(&mut ws).await?;
            match m.get("messageType").and_then(Value::as_str) {
                Some("SDP_ANSWER") => {
                    let p = decode(&m).ok_or("webrtc: kinesis: bad SDP_ANSWER payload")?;
                    break str_field(&p, "sdp")?;
                }
                Some("ICE_CANDIDATE") => {
                    if let Some(c) = decode(&m).and_then(|p| str_field(&p, "candidate").ok()) {
                        early.push(c);
                    }
                }
                _ => {}
            }
        };
        self.answer(answer).await?;
        self.candidates(early).await;
        self.trickle(ws, move |m| {
            if m.get("messageType").and_then(Value::as_str) != Some("ICE_CANDIDATE") {
                return None;
            }
            decode(m).and_then(|p| str_field(&p, "candidate").ok())
        });
        Ok(())
    }

    /// OpenIPC's majestic: the camera offers (in a message it calls
    /// `webrtc_answer`), we answer with `{"req":"answer"}`; candidates are
    /// `webrtc_candidate` in and `candidate` out.
    async fn openipc(&mut self, url: &str, events: &SourceEvents) -> Result<(), String> {
        let mut ws = ws_connect(url).await?;
        let mut early = Vec::new();
        let offer = loop {
            let m = ws_recv(&mut ws).await?;
            match m.get("reply").and_then(Value::as_str) {
                Some("webrtc_answer") => {
                    let data = m.get("data").ok_or("webrtc: openipc: no data")?;
                    break str_field(data, "sdp")?;
                }
                Some("webrtc_candidate") => {
                    if let Some(c) = m.get("data").and_then(|d| str_field(d, "candidate").ok()) {
                        early.push(c);
                    }
                }
                _ => {}
            }
        };
        let (answer, ours) = self.accept(events, offer).await?;
        ws_send(&mut ws, &json!({"req": "answer", "data": answer})).await?;
        for c in ours {
            ws_send(&mut ws, &json!({"req": "candidate", "data": c})).await?;
        }
        self.candidates(early).await;
        self.trickle(ws, |m| {
            if m.get("reply").and_then(Value::as_str) != Some("webrtc_candidate") {
                return None;
            }
            m.get("data").and_then(|d| str_field(d, "candidate").ok())
        });
        Ok(())
    }

    /// Creality printers: the offer as base64 of go2rtc's JSON, the answer
    /// likewise; the answer's first video format is one the printer lists
    /// but does not send (go2rtc drops it, and an `x-google` fmtp with it).
    async fn creality(&mut self, url: &str, offer: &str) -> Result<String, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = b64.encode(json!({"type": "offer", "sdp": offer}).to_string());
        let (status, _, body) = http(url, "POST", Some("plain/text"), body.into_bytes()).await?;
        if !(200..300).contains(&status) {
            return Err(format!("webrtc: creality: {url} answered {status}"));
        }
        let text = String::from_utf8_lossy(&body);
        let json = b64
            .decode(text.trim())
            .map_err(|e| format!("webrtc: creality: invalid base64 answer: {e}"))?;
        let v: Value = serde_json::from_slice(&json)
            .map_err(|e| format!("webrtc: creality: invalid JSON answer: {e}"))?;
        Ok(creality_fix(&str_field(&v, "sdp")?))
    }

    /// Milestone XProtect: an OAuth token (password grant), a WebRTC session
    /// whose offer we answer with a PATCH.
    async fn milestone(
        &mut self,
        url: &str,
        format: &Format,
        events: &SourceEvents,
    ) -> Result<(), String> {
        let Format::Milestone {
            username,
            password,
            camera_id,
            stream_id,
            playback_time,
            skip_gaps,
            speed,
        } = format
        else {
            return Err("webrtc: milestone: wrong format".into());
        };
        let base = url.trim_end_matches('/');
        let form = format!(
            "client_id=GrantValidatorClient&grant_type=password&username={}&password={}",
            form_encode(username),
            form_encode(password)
        );
        let (status, _, body) = http(
            &format!("{base}/IDP/connect/token"),
            "POST",
            Some("application/x-www-form-urlencoded"),
            form.into_bytes(),
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "webrtc: milestone: authentication failed: answered {status}"
            ));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("webrtc: milestone: invalid token JSON: {e}"))?;
        let token = str_field(&v, "access_token")?;
        let mut request = json!({"cameraId": camera_id});
        if !stream_id.is_empty() {
            request["streamId"] = json!(stream_id);
        }
        let mut node = serde_json::Map::new();
        if !playback_time.is_empty() {
            node.insert("playbackTime".into(), json!(playback_time));
        }
        if *skip_gaps {
            node.insert("skipGaps".into(), json!(true));
        }
        if let Some(speed) = speed.parse::<f64>().ok().filter(|s| *s != 0.0) {
            node.insert("speed".into(), json!(speed));
        }
        request["playbackTimeNode"] = Value::Object(node);
        let (status, _, body) = http_with(
            &format!("{base}/REST/v1/WebRTC/Session"),
            "POST",
            Some("application/json"),
            Some(&token),
            request.to_string().into_bytes(),
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "webrtc: milestone: create session: answered {status}"
            ));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("webrtc: milestone: invalid session JSON: {e}"))?;
        let session = str_field(&v, "sessionId")?;
        let offer: Value = serde_json::from_str(&str_field(&v, "offerSDP")?)
            .map_err(|e| format!("webrtc: milestone: invalid offerSDP: {e}"))?;
        let offer = str_field(&offer, "sdp")?;
        let (answer, _) = self.accept(events, offer).await?;
        let answer = json!({"type": "answer", "sdp": answer}).to_string();
        let (status, _, _) = http_with(
            &format!("{base}/REST/v1/WebRTC/Session/{session}"),
            "PATCH",
            Some("application/json"),
            Some(&token),
            json!({"answerSDP": answer}).to_string().into_bytes(),
        )
        .await?;
        if status != 200 {
            return Err(format!(
                "webrtc: milestone: patch session: answered {status}"
            ));
        }
        Ok(())
    }

    /// Ends the peer and the WHEP session, if any.
    async fn close(&mut self) {
        self.shared_peer.store(0, Ordering::Relaxed);
        if let Some(peer) = self.peer.take() {
            let _ = self.to_server.send(Command::Close(peer)).await;
        }
        if let Some(location) = self.location.take() {
            let delete = http(&location, "DELETE", None, Vec::new());
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), delete).await {
                tracing::debug!("webrtc: DELETE {location}: {e}");
            }
        }
    }
}

/// Creality's answer as go2rtc reads it: the first m= section's first
/// format dropped with its rtpmap/fmtp lines, and `x-google` fmtp lines.
fn creality_fix(sdp: &str) -> String {
    let mut out = String::new();
    let mut section = 0;
    let mut skip: Option<String> = None;
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            section += 1;
            if section == 1 {
                let mut tokens: Vec<&str> = line.split(' ').collect();
                if tokens.len() > 4 {
                    skip = Some(tokens.remove(3).to_string());
                    out.push_str(&tokens.join(" "));
                    out.push_str("\r\n");
                    continue;
                }
            }
        }
        if section == 1 {
            if let Some(value) = line
                .strip_prefix("a=rtpmap:")
                .or_else(|| line.strip_prefix("a=fmtp:"))
            {
                let first = skip
                    .as_deref()
                    .is_some_and(|s| value.split(' ').next() == Some(s));
                if first || value.contains("x-google") {
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// `application/x-www-form-urlencoded` value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn str_field(v: &Value, key: &str) -> Result<String, String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("webrtc: signaling message without {key}"))
}

/// A WHEP `Location` against the URL it came from.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = &rest[authority_end..];
    let path = path.split('?').next().unwrap_or_default();
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{origin}{dir}{location}")
}

/// Host, port, TLS and the request target of an `http(s)`/`ws(s)` URL.
struct Target {
    host: String,
    port: u16,
    tls: bool,
    authority: String,
    path: String,
    basic: Option<String>,
}

fn target(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("webrtc: bad url: {url}"))?;
    let tls = matches!(scheme, "https" | "wss");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (userinfo, authority) = match rest[..end].rsplit_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, &rest[..end]),
    };
    let path = match &rest[end..] {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(p) => (h, p),
            Err(_) => (authority, if tls { 443 } else { 80 }),
        },
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let host = host.trim_matches(|c| c == '[' || c == ']').to_string();
    if host.is_empty() {
        return Err(format!("webrtc: bad url (no host): {url}"));
    }
    let basic = userinfo.map(|u| {
        let decoded = camrouter_plugin_api::url::percent_decode(u);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(decoded)
        )
    });
    Ok(Target {
        host,
        port,
        tls,
        authority: authority.to_string(),
        path,
        basic,
    })
}

async fn dial(t: &Target) -> Result<Box<dyn Io>, String> {
    let addr = format!("{}:{}", t.host, t.port);
    let tcp = tokio::time::timeout(
        SETUP_TIMEOUT,
        tokio::net::TcpStream::connect((t.host.as_str(), t.port)),
    )
    .await
    .map_err(|_| format!("webrtc: dial {addr}: timeout"))?
    .map_err(|e| format!("webrtc: dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if t.tls {
        let tls = camrouter_plugin_api::tls::connect(tcp, &t.host, false)
            .await
            .map_err(|e| format!("webrtc: {e}"))?;
        return Ok(Box::new(tls));
    }
    Ok(Box::new(tcp))
}

/// One HTTP/1.1 request: status, headers, body.
async fn http(
    url: &str,
    method: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    http_with(url, method, content_type, None, body).await
}

/// [`http`] with a bearer token.
async fn http_with(
    url: &str,
    method: &str,
    content_type: Option<&str>,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let t = target(url)?;
    let io = dial(&t).await?;
    let fail = |e: &dyn std::fmt::Display| format!("webrtc: {method} {}: {e}", t.authority);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| fail(&e))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(&t.path)
        .header("Host", &t.authority)
        .header("User-Agent", "camrouter");
    if let Some(c) = content_type {
        req = req.header("Content-Type", c);
    }
    if let Some(token) = bearer {
        req = req.header("Authorization", format!("Bearer {token}"));
    } else if let Some(b) = &t.basic {
        req = req.header("Authorization", b);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(&e))?;
    let res = sender.send_request(req).await.map_err(|e| fail(&e))?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    // Signaling answers are small; a body past this is not one.
    let limited = http_body_util::Limited::new(res.into_body(), 1 << 20);
    let body = limited
        .collect()
        .await
        .map_err(|e| fail(&e))?
        .to_bytes()
        .to_vec();
    Ok((status, headers, body))
}

async fn ws_connect(url: &str) -> Result<Ws, String> {
    let t = target(url)?;
    let io = dial(&t).await?;
    // The request without credentials in it; they go as Basic auth.
    let (scheme, _) = url.split_once("://").unwrap_or(("ws", ""));
    let clean = format!("{scheme}://{}{}", t.authority, t.path);
    let mut req = clean
        .into_client_request()
        .map_err(|e| format!("webrtc: ws {}: {e}", t.authority))?;
    if let Some(b) = &t.basic {
        let v = HeaderValue::from_str(b).map_err(|e| format!("webrtc: ws auth: {e}"))?;
        req.headers_mut().insert("Authorization", v);
    }
    let (ws, _) = tokio_tungstenite::client_async(req, io)
        .await
        .map_err(|e| format!("webrtc: ws {}: {e}", t.authority))?;
    Ok(ws)
}

async fn ws_send(ws: &mut Ws, v: &Value) -> Result<(), String> {
    ws.send(Message::text(v.to_string()))
        .await
        .map_err(|e| format!("webrtc: ws send: {e}"))
}

/// The next JSON message; text that is not JSON is skipped.
async fn ws_recv(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if let Ok(v) = serde_json::from_str(t.as_str()) {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Binary(b))) => {
                if let Ok(v) = serde_json::from_slice(&b) {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err("webrtc: signaling socket closed".into())
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("webrtc: ws: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_signaling() {
        let u = ClientUrl::parse("webrtc:http://h:1984/api/webrtc?src=cam").unwrap();
        assert_eq!(u.format, Format::Whep);
        assert_eq!(u.url, "http://h:1984/api/webrtc?src=cam");
        let u = ClientUrl::parse("webrtc:ws://h/api/ws?src=cam").unwrap();
        assert_eq!(u.format, Format::Go2rtcWs);
        let u = ClientUrl::parse("webrtc:wss://k/?X=1#format=kinesis#client_id=abc").unwrap();
        assert_eq!(
            u.format,
            Format::Kinesis {
                client_id: "abc".into()
            }
        );
        assert_eq!(u.url, "wss://k/?X=1");
        assert_eq!(
            ClientUrl::parse("webrtc:http://h/x#format=wyze")
                .unwrap()
                .format,
            Format::Wyze
        );
        assert_eq!(
            ClientUrl::parse("webrtc:ws://h/#format=openipc")
                .unwrap()
                .format,
            Format::OpenIpc
        );
        assert!(ClientUrl::parse("webrtc:ftp://h/").is_err());
        assert!(ClientUrl::parse("webrtc:ws://h/#format=wyze").is_err());
    }

    #[test]
    fn ice_servers_param() {
        let u = ClientUrl::parse(
            r#"webrtc:wss://k/#format=kinesis#client_id=a#ice_servers=[{"urls":["stun:s:3478","turn:t:3478?transport=udp"],"username":"u","credential":"p=q"},{"urls":"stun:x"}]"#,
        )
        .unwrap();
        assert_eq!(u.ice_servers.len(), 2);
        assert_eq!(u.ice_servers[0].urls[1], "turn:t:3478?transport=udp");
        assert_eq!(
            (
                u.ice_servers[0].username.as_str(),
                u.ice_servers[0].credential.as_str()
            ),
            ("u", "p=q")
        );
        assert_eq!(u.ice_servers[1].urls, vec!["stun:x".to_string()]);
        assert_eq!(
            u.format,
            Format::Kinesis {
                client_id: "a".into()
            }
        );
        let enc = ClientUrl::parse(
            "webrtc:http://h/whep#ice_servers=%5B%7B%22urls%22%3A%22turn%3At%22%2C%22username%22%3A%22u%22%7D%5D",
        )
        .unwrap();
        assert_eq!(enc.ice_servers[0].urls, vec!["turn:t".to_string()]);
        assert!(ClientUrl::parse("webrtc:http://h/whep")
            .unwrap()
            .ice_servers
            .is_empty());
        let bad = ClientUrl::parse("webrtc:http://h/#ice_servers={nope").unwrap_err();
        assert!(bad.contains("#ice_servers"), "{bad}");
        let bad = ClientUrl::parse(r#"webrtc:http://h/#ice_servers=[{"urls":5}]"#).unwrap_err();
        assert!(bad.contains("#ice_servers"), "{bad}");
    }

    #[test]
    fn vendor_params() {
        let u = ClientUrl::parse(
            "webrtc:wss://x/#format=switchbot#client_id=c#resolution=auto#play_type=2",
        )
        .unwrap();
        assert_eq!(
            u.format,
            Format::SwitchBot {
                client_id: "c".into(),
                resolution: Some(2),
                play_type: 2
            }
        );
        let u = ClientUrl::parse(
            "webrtc:https://m/api#format=milestone#username=u#password=p w#cameraId=c#skipGaps",
        )
        .unwrap();
        let Format::Milestone {
            username,
            password,
            camera_id,
            skip_gaps,
            ..
        } = u.format
        else {
            panic!("{u:?}")
        };
        assert_eq!((username.as_str(), password.as_str()), ("u", "p w"));
        assert_eq!((camera_id.as_str(), skip_gaps), ("c", true));
        assert_eq!(form_encode("p w&x"), "p+w%26x");
    }

    #[test]
    fn creality_answer_loses_its_first_video_format() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\n\
a=fmtp:96 x-google-max-bitrate=1\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 packetization-mode=1\r\na=fmtp:102 x-google-start-bitrate=1\r\n";
        let fixed = creality_fix(sdp);
        assert_eq!(
            fixed,
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 packetization-mode=1\r\n"
        );
    }

    #[test]
    fn location_resolves_against_the_post_url() {
        let base = "http://h:1984/api/webrtc?src=cam";
        assert_eq!(
            resolve(base, "webrtc?id=3"),
            "http://h:1984/api/webrtc?id=3"
        );
        assert_eq!(resolve(base, "/whep/7"), "http://h:1984/whep/7");
        assert_eq!(resolve(base, "http://o/x"), "http://o/x");
    }

    #[test]
    fn targets() {
        let t = target("https://u:p%40@[::1]:8443/a?b").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8443, true));
        assert_eq!(t.path, "/a?b");
        assert_eq!(t.authority, "[::1]:8443");
        assert!(t.basic.is_some());
        let t = target("ws://h?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("h", 80, "/?x=1")
        );
    }
}
