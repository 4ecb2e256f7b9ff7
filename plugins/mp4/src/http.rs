//! `GET /api/stream.mp4` and `GET /api/frame.mp4`, with go2rtc's params.

use std::time::Duration;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Responder};
use camrouter_plugin_api::url::query_pairs;
use serde_json::json;

use camrouter_plugin_api::muxed::query;
use camrouter_plugin_api::muxed::{Display, Format, Output, Session};

/// How long `frame.mp4` waits for a keyframe of an idle stream.
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

pub fn handle(ctx: &InitContext, req: HttpRequest, responder: Responder) {
    if req.method.as_str() != "GET" && req.method.as_str() != "HEAD" {
        return responder.text(405, "mp4: only GET is supported (no ingest yet)");
    }
    let pairs = query_pairs(req.query.as_str());
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let src = get("src").unwrap_or_default();
    if src.is_empty() || !ctx.host.stream_exists(src) {
        return responder.text(404, "stream not found");
    }
    let frame = req.path.as_str() == "/api/frame.mp4";
    let query = if frame {
        // One picture: video only.
        "video=h264,h265".to_string()
    } else {
        match query::from_params(&pairs) {
            Ok(q) => q,
            Err(e) => return responder.text(400, &e),
        }
    };
    let mut headers = Vec::new();
    if let Some(name) = get("filename").map(safe_filename).filter(|n| !n.is_empty()) {
        headers.push((
            "Content-Disposition".to_string(),
            format!("attachment; filename=\"{name}\""),
        ));
    }
    let user_agent = req.header("user-agent").unwrap_or_default().to_string();
    let info = json!({
        "format_name": "mp4",
        "protocol": "http",
        "remote_addr": req.remote_addr.as_str(),
        "user_agent": user_agent,
    });
    let output = if frame {
        Output::Frame {
            responder: Some(responder),
            headers,
        }
    } else {
        Output::Body {
            responder: Some(responder),
            sink: None,
            headers,
        }
    };
    // As go2rtc: other values are ignored.
    let display = Display {
        rotate: get("rotate")
            .and_then(|r| r.parse().ok())
            .filter(|r| matches!(r, 90 | 180 | 270))
            .unwrap_or(0),
        aspect: get("scale").and_then(|s| {
            let (h, v) = s.split_once(':')?;
            let (h, v) = (h.parse().ok()?, v.parse().ok()?);
            (h > 0 && v > 0).then_some((h, v))
        }),
    };
    let session = Session::start(ctx, src, &query, info, Format::Fmp4, output, display);
    let limit = if frame {
        Some(FRAME_TIMEOUT)
    } else {
        get("duration")
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|d| *d > 0)
            .map(Duration::from_secs)
    };
    if let Some(limit) = limit {
        let weak = std::sync::Arc::downgrade(&session);
        ctx.runtime.spawn(async move {
            tokio::time::sleep(limit).await;
            if let Some(s) = weak.upgrade() {
                s.leave();
            }
        });
    }
}

/// A file name for `Content-Disposition`: no quotes, backslashes or control
/// characters, which would end the header value or the parameter.
fn safe_filename(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filename_cannot_break_the_header() {
        assert_eq!(safe_filename("cam.mp4"), "cam.mp4");
        assert_eq!(
            safe_filename("a\"b\r\nSet-Cookie: x\\.mp4"),
            "abSet-Cookie: x.mp4"
        );
    }
}
