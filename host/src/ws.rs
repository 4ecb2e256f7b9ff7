//! `/api/ws`: one WebSocket per client; each JSON message `{type, value}` is
//! routed by its `type` to the plugin that registered it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RStr, RString, RVec};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use camrouter_plugin_api::abi::{SendStatus, WsSender, WsSenderBox};
use tokio::sync::mpsc;

use crate::app::App;

static CONN_IDS: AtomicU64 = AtomicU64::new(1);
const WS_QUEUE: usize = 256;

/// Incoming messages are JSON (SDP offers, candidates) or talk-back audio.
const MAX_MESSAGE: usize = 1 << 20;

/// Who is on the other end, passed to plugins with each message
/// (`remote_addr`, `user_agent`) for their consumer records.
pub struct Peer {
    pub remote_addr: String,
    pub user_agent: String,
}

pub fn upgrade(app: Arc<App>, up: WebSocketUpgrade, query: String, peer: Peer) -> Response {
    // The library's default reserves a 128 KiB read buffer per connection;
    // an idle client should cost a few KB (go2rtc reads with 4 KiB too).
    // Reads larger than this are still taken, in several steps.
    up.read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run(app, socket, query, peer))
}

struct HostWsSender(mpsc::Sender<Message>);

impl WsSender for HostWsSender {
    fn send_text(&self, text: RString) -> SendStatus {
        let mut text = text.into_string();
        if is_error(&text) {
            // A plugin's error may quote a source URL or ffmpeg's stderr.
            text = camrouter_plugin_api::secret::mask(&text);
        }
        status(self.0.try_send(Message::Text(text.into())))
    }
    fn send_binary(&self, data: RVec<u8>) -> SendStatus {
        status(self.0.try_send(Message::Binary(data.into_vec().into())))
    }
}

fn status<T>(r: Result<(), mpsc::error::TrySendError<T>>) -> SendStatus {
    match r {
        Ok(()) => SendStatus::Ok,
        Err(mpsc::error::TrySendError::Full(_)) => SendStatus::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => SendStatus::Closed,
    }
}

async fn run(app: Arc<App>, mut socket: WebSocket, query: String, peer: Peer) {
    let conn = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(WS_QUEUE);
    let sender = RArc::new(HostWsSender(tx.clone()));
    let mut used: HashSet<usize> = HashSet::new();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(m) = out else { break };
                if socket.send(m).await.is_err() { break }
            }
            inc = socket.recv() => {
                let Some(Ok(msg)) = inc else { break };
                let Message::Text(text) = msg else { continue };
                let parsed: serde_json::Value = match serde_json::from_str(text.as_str()) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = tx.try_send(error_msg(&format!("ws: bad message: {e}")));
                        continue;
                    }
                };
                if !parsed.is_object() {
                    // Indexing a non-object below would panic the connection's task.
                    let _ = tx.try_send(error_msg("ws: bad message: not a JSON object"));
                    continue;
                }
                let ty = parsed.get("type").and_then(|t| t.as_str()).unwrap_or("");
                // The stream name from the URL travels with the message.
                let mut routed = parsed.clone();
                if routed.get("src").is_none() {
                    routed["query"] = serde_json::Value::String(query.clone());
                }
                routed["remote_addr"] = serde_json::Value::String(peer.remote_addr.clone());
                routed["user_agent"] = serde_json::Value::String(peer.user_agent.clone());
                match app.registry.ws_handler(ty) {
                    Some(i) => {
                        used.insert(i);
                        let s = WsSenderBox::from_ptr(sender.clone(), TD_Opaque);
                        app.registry.plugins[i].object.ws_message(conn, RStr::from_str(&routed.to_string()), s);
                    }
                    None => {
                        let _ = tx.try_send(error_msg(&format!("ws: unsupported type: {ty}")));
                    }
                }
            }
        }
    }
    for i in used {
        app.registry.plugins[i].object.ws_closed(conn);
    }
}

/// `{"type":"error",…}`, without parsing every message.
fn is_error(text: &str) -> bool {
    text.contains("\"error\"")
        && serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("error"))
}

fn error_msg(text: &str) -> Message {
    Message::Text(
        serde_json::json!({"type": "error", "value": camrouter_plugin_api::secret::mask(text)})
            .to_string()
            .into(),
    )
}
