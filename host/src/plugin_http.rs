//! Hands HTTP requests to the plugin that registered the path, with a
//! `Responder` that answers once, either whole or as a stream whose sink tells
//! the plugin when the client is slow (`Full`) or gone (`Closed`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RString, RVec, Tuple2};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use camrouter_plugin_api::abi::{
    BodySink, BodySinkBox, Headers, HttpRequest, Responder, ResponderBox, SendStatus,
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
    let Some(plugin) = app.registry.route(path) else {
        return crate::api::text(StatusCode::NOT_FOUND, "404 page not found");
    };
    let method = req.method().to_string();
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
    let body = match crate::api::read_body(req, 64 << 20).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = HttpRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body: RVec::from(body.to_vec()),
        remote_addr: remote.into(),
    };
    let (tx, rx) = oneshot::channel();
    let responder = ResponderBox::from_value(
        HostResponder {
            tx: Mutex::new(Some(tx)),
        },
        TD_Opaque,
    );
    plugin.http(request, responder);
    match rx.await {
        Ok(r) => r,
        // The plugin dropped the responder without answering (or panicked).
        Err(_) => crate::api::text(StatusCode::INTERNAL_SERVER_ERROR, "plugin did not answer"),
    }
}

struct HostResponder {
    tx: Mutex<Option<oneshot::Sender<Response>>>,
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
