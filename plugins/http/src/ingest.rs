//! Ingest by POST, as go2rtc: `/api/stream.ts?dst=`, `/api/stream.mjpeg?dst=`,
//! `/api/stream.flv?dst=` and `/api/stream?dst=` (format detected). The publisher is a producer of
//! the named stream while its body lasts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use camrouter_media::detect::Format;
use camrouter_media::pipe::PipeDemuxer;
use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Host, RequestBody, Responder, Source, SourceEvents};
use camrouter_plugin_api::url::query_pairs;
use serde_json::json;

use crate::source::Feed;

/// The ingest paths and the format each one forces (`None`: detected).
pub const ROUTES: [(&str, Option<Format>); 4] = [
    ("/api/stream.ts", Some(Format::MpegTs)),
    ("/api/stream.mjpeg", Some(Format::Mjpeg)),
    ("/api/stream.flv", Some(Format::Flv)),
    ("/api/stream", None),
];

/// What the graph's `stop` and the body share: the answer, given once.
struct Publisher {
    responder: Mutex<Option<Responder>>,
    stopped: AtomicBool,
}

impl Publisher {
    fn answer(&self, status: u16, text: &str) {
        if let Some(r) = self.responder.lock().ok().and_then(|mut r| r.take()) {
            r.text(status, text);
        }
    }
}

struct PublisherSource(Arc<Publisher>);

impl Source for PublisherSource {
    /// The stream was deleted or the publisher replaced: answering ends the
    /// request, and the host stops reading the body.
    fn stop(&self) {
        self.0.stopped.store(true, Ordering::Relaxed);
        self.0.answer(200, "");
    }
}

struct Body {
    publisher: Arc<Publisher>,
    events: SourceEvents,
    feed: Mutex<Feed>,
}

impl RequestBody for Body {
    fn data(&self, chunk: &[u8]) {
        if self.publisher.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut feed) = self.feed.lock() else {
            return;
        };
        if let Err(e) = feed.push(chunk) {
            self.publisher.stopped.store(true, Ordering::Relaxed);
            // Answer first: closing makes the graph stop this publisher,
            // which would answer 200.
            self.publisher.answer(400, &e);
            self.events.closed(&format!("http: ingest: {e}"));
        }
    }

    fn end(&self, error: Option<String>) {
        if self.publisher.stopped.swap(true, Ordering::Relaxed) {
            self.publisher.answer(200, "");
            return;
        }
        let reason = match (error, self.feed.lock()) {
            (Some(e), _) => e,
            (None, Ok(mut feed)) => match feed.finish() {
                Err(e) => e,
                Ok(()) => feed.eof(),
            },
            (None, Err(_)) => "EOF".into(),
        };
        self.publisher.answer(200, "");
        self.events.closed(&format!("http: ingest: {reason}"));
    }
}

/// Handles a POST on one of [`ROUTES`].
pub fn handle(host: &Host, request: HttpRequest, responder: Responder, format: Option<Format>) {
    let query = query_pairs(request.query.as_str());
    let dst = query
        .iter()
        .find(|(k, _)| k == "dst")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    // go2rtc answers an unknown (or missing) name with 404 and its text.
    if dst.is_empty() || !host.stream_exists(dst) {
        responder.text(404, "stream not found");
        return;
    }
    let user_agent = request.header("user-agent").unwrap_or_default().to_string();
    let publisher = Arc::new(Publisher {
        responder: Mutex::new(None),
        stopped: AtomicBool::new(false),
    });
    let info = json!({
        "format_name": format.map_or("unknown", Format::name),
        "protocol": "http",
        "remote_addr": request.remote_addr.as_str(),
        "user_agent": user_agent,
        "url": request.path.as_str(),
    });
    let events = match host.add_producer(dst, info, PublisherSource(publisher.clone())) {
        Ok(ev) => ev,
        Err(e) => {
            responder.text(404, &e);
            return;
        }
    };
    tracing::debug!(stream = dst, remote = %request.remote_addr, "http: publisher joined");
    let demux = format.map_or_else(PipeDemuxer::new, PipeDemuxer::with_format);
    responder.read_body(Body {
        publisher: publisher.clone(),
        events: events.clone(),
        feed: Mutex::new(Feed::with_demux(events, demux)),
    });
    if let Ok(mut r) = publisher.responder.lock() {
        *r = Some(responder);
    }
    // Stopped before the answer was stored: give it now.
    if publisher.stopped.load(Ordering::Relaxed) {
        publisher.answer(200, "");
    }
}
