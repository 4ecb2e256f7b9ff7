//! MSE over `/api/ws`: the browser sends `{"type":"mse","value":"<codecs it
//! can play>"}` on a socket opened as `/api/ws?src=NAME`; we answer
//! `{"type":"mse","value":"video/mp4; codecs=\"…\""}`, then the init segment
//! and fragments as binary messages (go2rtc's `video-rtc.js` protocol).

use std::sync::Arc;

use camrouter_plugin_api::sdk::{InitContext, WsSender};
use serde_json::{json, Value};

use camrouter_plugin_api::muxed::query;
use camrouter_plugin_api::muxed::{Display, Format, Output, Session};

fn error(sender: &WsSender, text: &str) {
    sender.send_json(&json!({"type": "error", "value": text}));
}

pub fn handle(ctx: &InitContext, message: &str, sender: WsSender) -> Option<Arc<Session>> {
    let Ok(msg) = serde_json::from_str::<Value>(message) else {
        error(&sender, "mse: bad message");
        return None;
    };
    let str_of = |k: &str| msg.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let src = query::ws_src(&msg);
    if src.is_empty() || !ctx.host.stream_exists(&src) {
        error(&sender, "stream not found");
        return None;
    }
    // Frigate's `&video=all&audio=all` are accepted and, as in go2rtc, the
    // browser's codec list decides.
    let q = match query::from_mse_codecs(str_of("value")) {
        Ok(q) => q,
        Err(e) => {
            error(&sender, &e);
            return None;
        }
    };
    let info = json!({
        "format_name": "mse/fmp4",
        "protocol": "ws",
        "remote_addr": str_of("remote_addr"),
        "user_agent": str_of("user_agent"),
    });
    Some(Session::start(
        ctx,
        &src,
        &q,
        info,
        Format::Fmp4,
        Output::Ws(sender),
        Display::default(),
    ))
}
