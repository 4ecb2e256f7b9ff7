//! MPEG-TS and HLS outputs, as go2rtc's `mpegts` and `hls` modules:
//! `/api/stream.ts`, `/api/stream.aac` (ADTS), `/api/stream.m3u8` and the
//! session files under `/api/hls/`. The containers are camrouter-media's
//! [`mpegts_mux`](camrouter_media::mpegts_mux) and
//! [`fmp4`](camrouter_media::fmp4) writers. See README.md.

mod hls;

use std::sync::Arc;
use std::time::Duration;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, WsSender};
use camrouter_plugin_api::url::query_pairs;
use serde_json::json;

use crate::hls::{Route, Sessions};
use camrouter_plugin_api::muxed::{Display, Format, Output, Session};

pub struct Hls {
    ctx: InitContext,
    sessions: Arc<Sessions>,
}

impl Plugin for Hls {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let sessions = Arc::new(Sessions::default());
        let weak = Arc::downgrade(&sessions);
        ctx.runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(s) => s.sweep(),
                    None => return,
                }
            }
        });
        Ok(Hls { ctx, sessions })
    }

    fn routes(&self) -> Vec<String> {
        [
            "/api/stream.ts",
            "/api/stream.aac",
            "/api/stream.m3u8",
            "/api/hls/playlist.m3u8",
            "/api/hls/segment.ts",
            "/api/hls/init.mp4",
            "/api/hls/segment.m4s",
        ]
        .map(String::from)
        .to_vec()
    }

    fn http(&self, req: HttpRequest, responder: Responder) {
        if req.method.as_str() != "GET" && req.method.as_str() != "HEAD" {
            return responder.text(405, "hls: only GET is supported here (no ingest)");
        }
        let route = match req.path.as_str() {
            "/api/stream.ts" => return stream(&self.ctx, &req, responder, Format::Ts),
            "/api/stream.aac" => return stream(&self.ctx, &req, responder, Format::Adts),
            "/api/stream.m3u8" => return hls::start(&self.ctx, &self.sessions, &req, responder),
            "/api/hls/playlist.m3u8" => Route::Playlist,
            "/api/hls/segment.ts" => Route::SegmentTs,
            "/api/hls/init.mp4" => Route::Init,
            "/api/hls/segment.m4s" => Route::SegmentM4s,
            _ => return responder.text(404, "not found"),
        };
        hls::serve(&self.ctx, &self.sessions, route, &req, responder)
    }

    fn ws_types(&self) -> Vec<String> {
        vec!["hls".into()]
    }

    fn ws_message(&self, _conn: u64, message: &str, sender: WsSender) {
        hls::ws(&self.ctx, &self.sessions, message, sender)
    }

    fn shutdown(&self) {
        self.sessions.shutdown();
    }
}

/// `GET /api/stream.ts?src=` and `GET /api/stream.aac?src=`: one consumer
/// per request (the SDK's `muxed` session, as `stream.mp4`), streamed until
/// the client goes away.
fn stream(ctx: &InitContext, req: &HttpRequest, responder: Responder, format: Format) {
    let pairs = query_pairs(req.query.as_str());
    let src = pairs
        .iter()
        .find(|(k, _)| k == "src")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if src.is_empty() || !ctx.host.stream_exists(src) {
        return responder.text(404, "stream not found");
    }
    let (query, format_name) = match format {
        Format::Adts => ("audio=aac", "adts"),
        _ => ("video=h264,h265&audio=aac", "mpegts"),
    };
    let info = json!({
        "format_name": format_name,
        "protocol": "http",
        "remote_addr": req.remote_addr.as_str(),
        "user_agent": user_agent(req),
    });
    Session::start(
        ctx,
        src,
        query,
        info,
        format,
        Output::Body {
            responder: Some(responder),
            sink: None,
            headers: Vec::new(),
        },
        Display::default(),
    );
}

fn user_agent(req: &HttpRequest) -> String {
    req.headers
        .iter()
        .find(|h| h.0.as_str().eq_ignore_ascii_case("user-agent"))
        .map(|h| h.1.to_string())
        .unwrap_or_default()
}

camrouter_plugin_api::declare_plugin!("hls", Hls);
