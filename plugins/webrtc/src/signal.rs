//! Signaling, in go2rtc's shapes: `POST /api/webrtc?src=` with JSON
//! (`{"type":"offer","sdp"}` → `{"type":"answer","sdp"}`), WHEP
//! (`application/sdp` → `201 Created` + `Location`, `DELETE` on it ends the
//! peer) or a raw SDP body; `/api/ws` messages `webrtc/offer` (value: the
//! SDP) → `webrtc/answer`, Home Assistant's `webrtc` (value: `{"type":
//! "offer","sdp","ice_servers"}`) → `webrtc` with `{"type":"answer","sdp"}`,
//! and `webrtc/candidate` both ways.

use std::sync::Arc;
use std::time::Duration;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Responder, WsSender};
use camrouter_plugin_api::url::query_pairs;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::config::IceServer;
use crate::feed::Feeds;
use crate::offer::Offer;
use crate::server::{Answer, Command, NewPeer, NewPublisher};

/// How long a viewer waits for its stream's first producer to negotiate.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(15);

/// What signaling needs; shared by HTTP and WebSocket.
pub struct Signaling {
    pub feeds: Arc<Feeds>,
    pub to_server: mpsc::Sender<Command>,
    pub runtime: tokio::runtime::Handle,
    pub host: camrouter_plugin_api::sdk::Host,
    /// `stun:` candidates: the first answers wait for STUN's first round.
    pub public: Arc<crate::stun::Public>,
    /// `webrtc.ice_servers`: their first `turn:` url with credentials is
    /// where our relay candidate is allocated, after the viewer's own.
    pub ice_servers: Vec<IceServer>,
}

/// An HTTP-style failure: status and text.
pub type Failure = (u16, String);

impl Signaling {
    /// Offer → answer for a viewer of `stream`; `ice_servers`: the ones
    /// its offer came with (Home Assistant's).
    pub async fn view(
        &self,
        stream: &str,
        sdp: &str,
        info: Value,
        ice_servers: &[IceServer],
    ) -> Result<Answer, Failure> {
        let offer = Offer::parse(sdp).map_err(|e| (400, e.to_string()))?;
        let query = offer.viewer_query().map_err(|e| (400, e.to_string()))?;
        if stream.is_empty() || !self.host.stream_exists(stream) {
            return Err((404, "stream not found".into()));
        }
        let feed = self.feeds.get(stream, &query);
        self.public.first_round().await;
        let tracks = match tokio::time::timeout(NEGOTIATE_TIMEOUT, feed.ready()).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                let status = if e.contains("not found") { 404 } else { 500 };
                return Err((status, e));
            }
            Err(_) => return Err((504, "webrtc: the stream did not start in time".into())),
        };
        let turn = crate::turn::pick(ice_servers, &self.ice_servers).await;
        let (reply, answer) = oneshot::channel();
        let new = NewPeer {
            offer,
            feed,
            tracks,
            info,
            turn,
            reply,
        };
        self.to_server
            .send(Command::Offer(Box::new(new)))
            .await
            .map_err(|_| (503, "webrtc: server stopped".to_string()))?;
        match answer.await {
            Ok(Ok(a)) => Ok(a),
            // The offer passed our reading but not the WebRTC stack's.
            Ok(Err(e)) if e.contains("bad offer") => Err((400, e)),
            Ok(Err(e)) => Err((500, e)),
            Err(_) => Err((503, "webrtc: server stopped".into())),
        }
    }

    /// Offer → answer for a publisher (WHIP) of `stream`.
    pub async fn publish(&self, stream: &str, sdp: &str, info: Value) -> Result<Answer, Failure> {
        let offer = Offer::parse(sdp).map_err(|e| (400, e.to_string()))?;
        let formats = offer.ingest_formats().map_err(|e| (400, e.to_string()))?;
        if stream.is_empty() || !self.host.stream_exists(stream) {
            return Err((404, "stream not found".into()));
        }
        self.public.first_round().await;
        let turn = crate::turn::pick(&[], &self.ice_servers).await;
        let (reply, answer) = oneshot::channel();
        let new = NewPublisher {
            offer,
            formats,
            stream: stream.to_string(),
            info,
            turn,
            reply,
        };
        self.to_server
            .send(Command::Publish(Box::new(new)))
            .await
            .map_err(|_| (503, "webrtc: server stopped".to_string()))?;
        match answer.await {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) if e.contains("bad offer") => Err((400, e)),
            Ok(Err(e)) if e.contains("not found") => Err((404, e)),
            Ok(Err(e)) => Err((500, e)),
            Err(_) => Err((503, "webrtc: server stopped".into())),
        }
    }

    pub fn http(self: &Arc<Self>, req: HttpRequest, responder: Responder) {
        let query = query_pairs(req.query.as_str());
        let get = |k: &str| {
            query
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.0.as_str().eq_ignore_ascii_case(name))
                .map(|h| h.1.to_string())
                .unwrap_or_default()
        };
        match req.method.as_str() {
            "OPTIONS" => responder.respond_with(204, &[], Vec::new()),
            "DELETE" => match get("id").and_then(|id| id.parse::<u64>().ok()) {
                Some(id) => {
                    let _ = self.to_server.try_send(Command::Close(id));
                    responder.respond_with(200, &[], Vec::new())
                }
                None => responder.text(
                    400,
                    "webrtc: DELETE needs ?id= (the Location of the session)",
                ),
            },
            "POST" => {
                let (stream, publish) = match (get("src"), get("dst")) {
                    (Some(src), _) => (src, false),
                    (None, Some(dst)) => (dst, true),
                    (None, None) => {
                        return responder.text(400, "webrtc: POST needs ?src= or ?dst=")
                    }
                };
                let content_type = header("content-type");
                let media_type = content_type
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let body = String::from_utf8_lossy(&req.body).into_owned();
                let (sdp, format) = if media_type == "application/json" {
                    let v: Value = match serde_json::from_str(&body) {
                        Ok(v) => v,
                        Err(e) => return responder.text(400, &format!("webrtc: bad JSON: {e}")),
                    };
                    let sdp = v.get("sdp").and_then(Value::as_str).unwrap_or_default();
                    (sdp.to_string(), "webrtc/json")
                } else if media_type == "application/sdp" {
                    (
                        body,
                        if publish {
                            "webrtc/whip"
                        } else {
                            "webrtc/whep"
                        },
                    )
                } else {
                    (body, "webrtc/post")
                };
                let info = json!({
                    "format_name": format,
                    "protocol": "http",
                    "remote_addr": req.remote_addr.as_str(),
                    "user_agent": header("user-agent"),
                });
                let me = self.clone();
                self.runtime.spawn(async move {
                    let result = if publish {
                        me.publish(&stream, &sdp, info).await
                    } else {
                        me.view(&stream, &sdp, info, &[]).await
                    };
                    match result {
                        Err((status, text)) => responder.text(status, &text),
                        Ok(a) => match format {
                            "webrtc/json" => {
                                responder.json(200, &json!({"type": "answer", "sdp": a.sdp}))
                            }
                            "webrtc/whep" | "webrtc/whip" => {
                                let location = format!("webrtc?id={}", a.id);
                                responder.respond_with(
                                    201,
                                    &[("Content-Type", "application/sdp"), ("Location", &location)],
                                    a.sdp.into_bytes(),
                                )
                            }
                            _ => responder.respond(200, "application/sdp", a.sdp.into_bytes()),
                        },
                    }
                });
            }
            // WHEP/WHIP trickle (RFC 9725 §4.3.1): an SDP fragment whose
            // `a=candidate:` lines are the client's late candidates.
            "PATCH" => match get("id").and_then(|id| id.parse::<u64>().ok()) {
                Some(peer) => {
                    let body = String::from_utf8_lossy(&req.body);
                    for line in body.lines() {
                        if let Some(c) = line.trim().strip_prefix("a=") {
                            if c.starts_with("candidate:") {
                                let cmd = Command::Candidate {
                                    peer,
                                    candidate: c.to_string(),
                                };
                                let _ = self.to_server.try_send(cmd);
                            }
                        }
                    }
                    responder.respond_with(204, &[], Vec::new())
                }
                None => responder.text(
                    400,
                    "webrtc: PATCH needs ?id= (the Location of the session)",
                ),
            },
            _ => responder.text(405, "webrtc: method not allowed"),
        }
    }

    /// One `/api/ws` message. Returns the peer it started, if any.
    pub fn ws(
        self: &Arc<Self>,
        message: &str,
        sender: WsSender,
        started: impl FnOnce(u64) + Send + 'static,
    ) {
        let Ok(msg) = serde_json::from_str::<Value>(message) else {
            sender.send_json(&json!({"type": "error", "value": "webrtc: bad message"}));
            return;
        };
        let str_of = |k: &str| {
            msg.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let typ = str_of("type");
        let src = match msg.get("src").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => query_pairs(&str_of("query"))
                .into_iter()
                .find(|(k, _)| k == "src")
                .map(|(_, v)| v)
                .unwrap_or_default(),
        };
        let (sdp, v2) = match typ.as_str() {
            "webrtc/offer" => (str_of("value"), false),
            _ => (
                msg.get("value")
                    .and_then(|v| v.get("sdp"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                true,
            ),
        };
        // Home Assistant's STUN/TURN servers; a malformed list is no reason
        // to refuse the offer.
        let ice_servers = msg
            .get("value")
            .and_then(|v| v.get("ice_servers"))
            .filter(|v| !v.is_null())
            .map(IceServer::list_from_json)
            .and_then(Result::ok)
            .unwrap_or_default();
        let info = json!({
            "format_name": "webrtc",
            "protocol": "ws",
            "remote_addr": str_of("remote_addr"),
            "user_agent": str_of("user_agent"),
        });
        let me = self.clone();
        self.runtime.spawn(async move {
            match me.view(&src, &sdp, info, &ice_servers).await {
                Err((_, text)) => {
                    sender.send_json(&json!({"type": "error", "value": text}));
                }
                Ok(a) => {
                    started(a.id);
                    if v2 {
                        sender.send_json(
                            &json!({"type": "webrtc", "value": {"type": "answer", "sdp": a.sdp}}),
                        );
                    } else {
                        sender.send_json(&json!({"type": "webrtc/answer", "value": a.sdp}));
                    }
                    // Our candidates are in the answer; trickled too, for
                    // clients that only take them as messages.
                    for c in a.candidates {
                        sender.send_json(&json!({"type": "webrtc/candidate", "value": c}));
                    }
                }
            }
        });
    }
}
