//! `GET /api/stream.mjpeg` and `{"type":"mjpeg"}` on `/api/ws`. Each client
//! of a JPEG source is its own graph consumer and gets the source's
//! pictures as they are; a client of an H.264 source joins the stream's
//! shared transcoder for its size (`transcode.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Consumer, Responder, WsSender};
use camrouter_plugin_api::{Media, Packet};

use crate::params::{Output, Params, Shape};
use crate::viewer::{Pending, Viewer};
use crate::State;

/// A JPEG source first (as go2rtc), else H.264 to decode.
const STREAM_QUERY: &str = "video=jpeg,h264";

/// `stream.mjpeg` (`Output::Jpeg`), `stream.y4m` and `stream.ascii`.
pub fn handle_http(state: &Arc<State>, request: HttpRequest, responder: Responder, output: Output) {
    let mut params = match Params::parse(request.query.as_str()) {
        Ok(p) => p,
        Err(e) => return responder.text(400, &e),
    };
    if !state.host.stream_exists(&params.src) {
        return responder.text(404, "stream not found");
    }
    params.shape.output = match output {
        Output::Ascii(_) => Output::Ascii(params.ascii),
        o => o,
    };
    let format_name = match output {
        Output::Jpeg => "mjpeg",
        Output::Y4m => "yuv4mpegpipe",
        Output::Ascii(_) => "ascii",
    };
    let info = crate::client_info(&request, format_name);
    start(
        state,
        params.src,
        params.shape,
        info,
        Pending::Http(responder),
    );
}

/// What a WebSocket connection plays, to stop when it closes (a client
/// moved to a transcoder leaves it through its `Direct`).
type WsHandle = Arc<Direct>;

#[derive(Default)]
pub struct WsViewers(Mutex<HashMap<u64, Vec<WsHandle>>>);

impl WsViewers {
    pub fn close(&self, state: &Arc<State>, conn: u64) {
        let handles = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        for d in handles.into_iter().flatten() {
            d.stop(state);
        }
    }

    fn add(&self, conn: u64, h: WsHandle) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(conn)
            .or_default()
            .push(h);
    }
}

pub fn handle_ws(state: &Arc<State>, conn: u64, message: &str, sender: WsSender) {
    let msg: serde_json::Value = serde_json::from_str(message).unwrap_or_default();
    let query = msg.get("query").and_then(|q| q.as_str()).unwrap_or("");
    let mut params = match Params::parse(query) {
        Ok(p) => p,
        Err(e) => {
            Pending::Ws(sender).fail(&e);
            return;
        }
    };
    if let Some(src) = msg.get("src").and_then(|s| s.as_str()) {
        params.src = src.to_string();
    }
    if !state.host.stream_exists(&params.src) {
        Pending::Ws(sender).fail("stream not found");
        return;
    }
    let field = |k: &str| {
        msg.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let info = serde_json::json!({
        "format_name": "mjpeg",
        "protocol": "ws",
        "remote_addr": field("remote_addr"),
        "user_agent": field("user_agent"),
    });
    if let Some(h) = start(state, params.src, params.shape, info, Pending::Ws(sender)) {
        state.ws.add(conn, h);
    }
}

fn start(
    state: &Arc<State>,
    src: String,
    shape: Shape,
    info: serde_json::Value,
    pending: Pending,
) -> Option<WsHandle> {
    let ws = matches!(pending, Pending::Ws(_));
    let direct = Arc::new(Direct {
        state: Arc::downgrade(state),
        src,
        shape,
        info: info.clone(),
        id: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        pending: Mutex::new(Some(pending)),
        viewer: Mutex::new(None),
        moved: Mutex::new(None),
    });
    // y4m and ASCII come from decoded pictures only: a JPEG source (which
    // needs a JPEG decoder) is not asked for.
    let query = match shape.output {
        Output::Jpeg => STREAM_QUERY,
        _ => "video=h264",
    };
    let id = state
        .host
        .add_consumer(&direct.src, query, info, DirectConsumer(direct.clone()));
    direct.id.store(id, Ordering::Release);
    ws.then_some(direct)
}

/// One client as its own graph consumer.
pub struct Direct {
    state: Weak<State>,
    src: String,
    shape: Shape,
    info: serde_json::Value,
    id: AtomicU64,
    stopped: AtomicBool,
    pending: Mutex<Option<Pending>>,
    viewer: Mutex<Option<Viewer>>,
    /// Set when the client moved to a shared transcoder.
    moved: Mutex<Option<crate::transcode::Membership>>,
}

impl Direct {
    /// Removes the graph consumer (once), off the producer's thread: the
    /// graph may be calling us under its locks.
    fn stop(self: &Arc<Self>, state: &Arc<State>) {
        if let Some(m) = self.moved.lock().unwrap_or_else(|e| e.into_inner()).take() {
            m.leave();
        }
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let st = state.clone();
        state.runtime.spawn(async move {
            let id = me.wait_id().await;
            st.host.remove_consumer(id);
            me.viewer.lock().unwrap_or_else(|e| e.into_inner()).take();
        });
    }

    /// The consumer id, which `add_consumer` returns just after the graph
    /// may already have called us.
    async fn wait_id(&self) -> u64 {
        loop {
            let id = self.id.load(Ordering::Acquire);
            if id != 0 {
                return id;
            }
            tokio::task::yield_now().await;
        }
    }
}

struct DirectConsumer(Arc<Direct>);

impl Consumer for DirectConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let d = &self.0;
        let Some(state) = d.state.upgrade() else {
            return;
        };
        let Some(pending) = d.pending.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let codec = medias
            .first()
            .and_then(|m| m.codecs.first())
            .map(|c| c.name.to_string())
            .unwrap_or_default();
        if codec == "JPEG" {
            *d.viewer.lock().unwrap_or_else(|e| e.into_inner()) = Some(pending.start(Output::Jpeg));
            // Registered as a client for its dropped-frame count.
            let me = d.clone();
            state.runtime.spawn(async move {
                let id = me.wait_id().await;
                let Some(st) = me.state.upgrade() else { return };
                let client = st.host.add_client(id, me.info.clone());
                if let Some(v) = me.viewer.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    v.client = Some(client);
                }
            });
            return;
        }
        // H.264: this consumer gives way to the shared transcoder.
        let me = d.clone();
        let st = state.clone();
        state.runtime.spawn(async move {
            let id = me.wait_id().await;
            me.stopped.store(true, Ordering::Release);
            st.host.remove_consumer(id);
            let m = st
                .transcoders
                .join(&st, &me.src, me.shape, me.info.clone(), pending);
            *me.moved.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
        });
    }

    fn failed(&self, error: String) {
        if let Some(p) = self
            .0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.fail(&error);
        }
    }

    fn packet(&self, _track: u32, packet: &Packet) {
        let d = &self.0;
        let alive = match d.viewer.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(v) => v.send(&packet.payload),
            None => return,
        };
        if !alive {
            if let Some(st) = d.state.upgrade() {
                d.stop(&st);
            }
        }
    }

    fn closed(&self, reason: String) {
        if let Some(v) = self
            .0
            .viewer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            v.end(&reason);
        }
        if let Some(p) = self
            .0
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            p.fail(&reason);
        }
    }
}
