//! WebRTC, as go2rtc's `webrtc` module: viewers over WebRTC with go2rtc's
//! signalings (`/api/webrtc`, WHEP, `/api/ws`), every peer on one UDP port
//! (`webrtc.listen`, default `:8555`). The protocol is webrtc-rs's sans-IO
//! `rtc` core; the socket, the demultiplexer in front of it and the clock
//! are ours (DESIGN.md §11). See README.md.

mod batch;
mod client;
mod config;
pub mod demux;
mod feed;
mod keyframe;
pub mod offer;
pub mod peer;
mod pktinfo;
mod server;
mod signal;
mod stun;
mod tcp;
mod transcode;
mod turn;

/// The parsers of network input that live in private modules, for the fuzz
/// targets (fuzz/); not an API.
#[doc(hidden)]
pub mod fuzz {
    pub use crate::tcp::{frame, frames};
    pub use crate::turn::{Relayed, Relays, TurnServer};
}

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents, WsSender};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::server::Command;
use crate::signal::Signaling;

/// Frames and commands waiting for the peer loop; past this a feed drops
/// frames (the loop is behind) rather than grow memory.
const QUEUE: usize = 4096;

/// A `/api/ws` connection's peer, and the candidates that came before it.
#[derive(Default)]
struct WsPeer {
    peer: Option<u64>,
    pending: Vec<String>,
}

pub struct WebRtc {
    signaling: Option<Arc<Signaling>>,
    ws: Arc<Mutex<HashMap<u64, WsPeer>>>,
}

impl Plugin for WebRtc {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let cfg = config::Config::from_json(&ctx.config)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        // A port in use is the user's to fix; the rest of the server runs
        // on (go2rtc does the same).
        let (udp, tcp) = match config::bind(&cfg) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("webrtc: listen {}: {e}", cfg.listen);
                return Ok(WebRtc {
                    signaling: None,
                    ws: Arc::default(),
                });
            }
        };
        let _guard = ctx.runtime.enter();
        let udp = udp
            .map(tokio::net::UdpSocket::from_std)
            .transpose()
            .map_err(|e| e.to_string())?;
        let tcp = tcp
            .map(tokio::net::TcpListener::from_std)
            .transpose()
            .map_err(|e| e.to_string())?;
        let udp_local = udp.as_ref().and_then(|s| s.local_addr().ok());
        let tcp_local = tcp.as_ref().and_then(|s| s.local_addr().ok());
        if let Some(a) = udp_local {
            tracing::info!(addr = %a, "[webrtc] listen udp");
        }
        if let Some(a) = tcp_local {
            tracing::info!(addr = %a, "[webrtc] listen tcp");
        }
        let plan = config::plan(&cfg, udp_local, tcp_local, &config::interfaces());
        for c in &plan.fixed {
            tracing::debug!(addr = %c.addr, tcp = c.tcp, "[webrtc] candidate");
        }
        let public = Arc::new(stun::Public::default());
        let servers = config::IceServer::stun_servers(&cfg.ice_servers);
        let stun = !plan.stun.is_empty() && !servers.is_empty();
        if !plan.stun.is_empty() && servers.is_empty() {
            tracing::warn!("webrtc: stun: candidates need a stun: url in webrtc.ice_servers");
        }
        if stun || !plan.names.is_empty() {
            ctx.runtime
                .spawn(public.clone().run(servers, stun, plan.names.clone()));
        } else {
            public.done();
        }
        let stats: Arc<server::Stats> = Arc::default();
        let setup = server::Setup {
            host: ctx.host.clone(),
            plan,
            public: public.clone(),
            certificate: config::certificate()?,
            stats: stats.clone(),
        };
        let tcp_port = tcp_local.map_or(0, |a| a.port());
        let lp = server::Loop::new(udp, tcp_port, setup, tx.clone()).map_err(|e| e.to_string())?;
        ctx.runtime.spawn(lp.run(rx));
        if let Some(l) = tcp {
            ctx.runtime.spawn(tcp::accept(l, tx.clone(), stats));
        }
        let feeds = feed::Feeds::new(ctx.host.clone(), tx.clone());
        Ok(WebRtc {
            signaling: Some(Arc::new(Signaling {
                feeds,
                to_server: tx,
                runtime: ctx.runtime.clone(),
                host: ctx.host.clone(),
                public,
                ice_servers: cfg.ice_servers.clone(),
            })),
            ws: Arc::default(),
        })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["webrtc".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let s = self
            .signaling
            .as_ref()
            .ok_or("webrtc: not listening (see the log)")?;
        let source = client::open(
            url,
            events,
            s.to_server.clone(),
            &s.runtime,
            s.ice_servers.clone(),
        )?;
        Ok(Box::new(source))
    }

    fn routes(&self) -> Vec<String> {
        vec!["/api/webrtc".into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        match &self.signaling {
            Some(s) => s.http(request, responder),
            None => responder.text(503, "webrtc: not listening (see the log)"),
        }
    }

    fn ws_types(&self) -> Vec<String> {
        vec![
            "webrtc".into(),
            "webrtc/offer".into(),
            "webrtc/candidate".into(),
        ]
    }

    fn ws_message(&self, conn: u64, message: &str, sender: WsSender) {
        let Some(s) = &self.signaling else {
            sender
                .send_json(&serde_json::json!({"type": "error", "value": "webrtc: not listening"}));
            return;
        };
        let msg: Value = serde_json::from_str(message).unwrap_or(Value::Null);
        if msg.get("type").and_then(Value::as_str) == Some("webrtc/candidate") {
            let candidate = msg
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut map = self.ws.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(conn).or_default();
            match entry.peer {
                Some(peer) => {
                    let _ = s.to_server.try_send(Command::Candidate { peer, candidate });
                }
                // Trickled before the answer: kept (a few) until it exists.
                None if entry.pending.len() < 32 => entry.pending.push(candidate),
                None => {}
            }
            return;
        }
        // A new offer on the socket replaces its peer.
        let old = {
            let mut map = self.ws.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(conn, WsPeer::default()).and_then(|w| w.peer)
        };
        if let Some(old) = old {
            let _ = s.to_server.try_send(Command::Close(old));
        }
        let ws = self.ws.clone();
        let to_server = s.to_server.clone();
        s.ws(message, sender, move |peer| {
            let mut map = ws.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = map.get_mut(&conn) else {
                return;
            };
            entry.peer = Some(peer);
            for candidate in entry.pending.drain(..) {
                let _ = to_server.try_send(Command::Candidate { peer, candidate });
            }
        });
    }

    fn ws_closed(&self, conn: u64) {
        // As in go2rtc, the peer outlives its signaling socket (Home
        // Assistant may close it once the answer is in); a viewer that goes
        // away is reaped when its consent checks stop.
        self.ws
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
    }

    fn config_keys(&self) -> Vec<String> {
        config::KEYS.iter().map(|s| s.to_string()).collect()
    }
}

camrouter_plugin_api::declare_plugin!("webrtc", WebRtc);
