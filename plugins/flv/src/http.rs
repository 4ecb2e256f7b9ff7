//! `GET /api/stream.flv?src=`: one muxed consumer per client (plugin-api's
//! `muxed`, as `stream.mp4` and `stream.ts`), starting at the cached keyframe;
//! a slow reader skips to the next keyframe.

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::muxed::{Display, Format, Output, Session};
use camrouter_plugin_api::sdk::{InitContext, Responder};
use camrouter_plugin_api::url::query_pairs;
use serde_json::json;

pub fn handle(ctx: &InitContext, req: HttpRequest, responder: Responder) {
    if req.method.as_str() != "GET" && req.method.as_str() != "HEAD" {
        return responder.text(405, "flv: GET reads a stream, POST publishes one");
    }
    let pairs = query_pairs(req.query.as_str());
    let src = pairs
        .iter()
        .find(|(k, _)| k == "src")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if src.is_empty() || !ctx.host.stream_exists(src) {
        return responder.text(404, "stream not found");
    }
    let info = json!({
        "format_name": "flv",
        "protocol": "http",
        "remote_addr": req.remote_addr.as_str(),
        "user_agent": req.header("user-agent").unwrap_or_default(),
    });
    let output = Output::Body {
        responder: Some(responder),
        sink: None,
        headers: Vec::new(),
    };
    Session::start(
        ctx,
        src,
        "video=h264,h265,av1&audio=aac,pcma,pcmu",
        info,
        Format::Flv,
        output,
        Display::default(),
    );
}
