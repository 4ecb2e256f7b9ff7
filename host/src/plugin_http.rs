//! Hands HTTP requests to the plugin that registered the path, with a
//! `Responder` that answers once, either whole or as a stream whose sink tells
//! the plugin when the client is slow (`Full`) or gone (`Closed`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RSlice, RString, RVec, Tuple2};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use camrouter_plugin_api::abi::{
    BodySink, BodySinkBox, Headers, HttpRequest, RequestBodyBox, Responder, ResponderBox,
    SendStatus,
};
use tokio::sync::{mpsc, oneshot};

use crate::app::App;

/// Chunks a streaming body may have in flight before the plugin sees `Full`.
const BODY_QUEUE: usize = 64;

pub async fn dispatch(
    app: &Arc<App>,
    path: &str,
    remote: &str,
    query: &str,
    req: Request,
) -> Response {
    let method = req.method().to_string();
    let Some((plugin, streaming)) = app.registry.route(&method, path) else {
        return crate::api::text(StatusCode::NOT_FOUND, "404 page not found");
    };
    let headers: Headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            Some(Tuple2(
                RString::from(k.as_str()),
                RString::from(v.to_str().ok()?),
            ))
        })
        .collect();
    let (body, unread) = if streaming {
        (Vec::new(), Some(req.into_body()))
    } else {
        match crate::api::read_body(req, 64 << 20).await {
            Ok(b) => (b.to_vec(), None),
            Err(resp) => return resp,
        }
    };
    let request = HttpRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: RVec::from(body),
        remote_addr: remote.into(),
    };
    let (tx, mut rx) = oneshot::channel();
    let (body_tx, body_rx) = oneshot::channel();
    let responder = ResponderBox::from_value(
        HostResponder {
            tx: Mutex::new(Some(tx)),
            body_tx: Mutex::new(unread.is_some().then_some(body_tx)),
        },
        TD_Opaque,
    );
    plugin.http(request, responder);
    if let Some(unread) = unread {
        tokio::select! {
            r = &mut rx => return answer(r),
            sink = body_rx => if let Ok(sink) = sink {
                if let Some(r) = feed_body(unread, sink, &mut rx).await {
                    return r;
                }
            },
        }
    }
    answer(rx.await)
}

fn answer(r: Result<Response, oneshot::error::RecvError>) -> Response {
    match r {
        Ok(r) => r,
        // The plugin dropped the responder without answering (or panicked).
        Err(_) => crate::api::text(StatusCode::INTERNAL_SERVER_ERROR, "plugin did not answer"),
    }
}

/// Streams a request body into the plugin's sink until it ends or the plugin
/// answers (then that answer is returned and the rest of the body is left).
async fn feed_body(
    mut body: Body,
    sink: RequestBodyBox,
    rx: &mut oneshot::Receiver<Response>,
) -> Option<Response> {
    use http_body::Body as _;
    // hyper drops this future when the client's connection goes away; the
    // plugin still hears the end of its body.
    let mut sink = EndOnDrop(Some(sink));
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = tokio::select! {
            biased;
            r = &mut *rx => {
                sink.0 = None;
                return Some(answer(r));
            }
            f = tokio::time::timeout(crate::api::BODY_IDLE_TIMEOUT, next) => f,
        };
        let error = match frame {
            Err(_) => format!(
                "request body: no data for {} s",
                crate::api::BODY_IDLE_TIMEOUT.as_secs()
            ),
            Ok(None) => {
                sink.end(None);
                return None;
            }
            Ok(Some(Err(e))) => format!("request body: {e}"),
            Ok(Some(Ok(frame))) => {
                if let (Ok(data), Some(s)) = (frame.into_data(), &sink.0) {
                    s.data(RSlice::from_slice(&data));
                }
                continue;
            }
        };
        sink.end(Some(error));
        return None;
    }
}

/// Calls `RequestBody::end` exactly once, also when dropped mid-body.
struct EndOnDrop(Option<RequestBodyBox>);

impl EndOnDrop {
    fn end(&mut self, error: Option<String>) {
        if let Some(s) = self.0.take() {
            s.end(error.map(RString::from).into());
        }
    }
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.end(Some("request body: connection closed".into()));
    }
}

struct HostResponder {
    tx: Mutex<Option<oneshot::Sender<Response>>>,
    /// Set for a streaming route until the plugin asks for the body.
    body_tx: Mutex<Option<oneshot::Sender<RequestBodyBox>>>,
}

fn build(status: u16, headers: Headers, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for Tuple2(k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v.as_str()),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

impl Responder for HostResponder {
    fn respond(&self, status: u16, headers: Headers, body: RVec<u8>) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(build(status, headers, Body::from(body.into_vec())));
        }
    }

    fn stream(&self, status: u16, headers: Headers) -> BodySinkBox {
        let (btx, brx) = mpsc::channel(BODY_QUEUE);
        if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(build(status, headers, Body::new(ChannelBody(brx))));
        }
        BodySinkBox::from_value(HostBodySink(Mutex::new(Some(btx))), TD_Opaque)
    }

    fn read_body(&self, body: RequestBodyBox) {
        if let Some(tx) = self.body_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(body);
        } else {
            // Not a streaming route, or asked twice: there is nothing to read.
            body.end(ROption::RSome(RString::from("no request body to stream")));
        }
    }
}

struct HostBodySink(Mutex<Option<mpsc::Sender<Bytes>>>);

impl BodySink for HostBodySink {
    fn try_send(&self, chunk: RVec<u8>) -> SendStatus {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else {
            return SendStatus::Closed;
        };
        match tx.try_send(Bytes::from(chunk.into_vec())) {
            Ok(()) => SendStatus::Ok,
            Err(mpsc::error::TrySendError::Full(_)) => SendStatus::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => SendStatus::Closed,
        }
    }
    fn finish(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A response body fed by a channel; dropping it (client gone) closes the
/// channel, which the plugin sees as `Closed` on its next send.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}
