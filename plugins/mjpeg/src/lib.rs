//! MJPEG for camrouter: `GET /api/frame.jpeg` (one JPEG), `GET
//! /api/stream.mjpeg` (multipart/x-mixed-replace) and `{"type":"mjpeg"}` on
//! `/api/ws` (binary JPEG messages). JPEG sources pass as they are; H.264
//! cameras are decoded in-process (openh264), H.265 snapshots through ffmpeg.
//! See README.md for URLs and params.

pub mod decode;
mod hevc;
pub mod params;
mod snapshot;
mod stream;
mod transcode;
mod viewer;

use std::sync::Arc;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, WsSender};

pub struct Mjpeg {
    state: Arc<State>,
}

/// What every request handler shares.
pub(crate) struct State {
    pub host: camrouter_plugin_api::Host,
    pub runtime: tokio::runtime::Handle,
    pub snapshots: snapshot::Snapshots,
    pub transcoders: transcode::Transcoders,
    pub ws: stream::WsViewers,
}

impl Plugin for Mjpeg {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Mjpeg {
            state: Arc::new(State {
                host: ctx.host,
                runtime: ctx.runtime,
                snapshots: snapshot::Snapshots::default(),
                transcoders: transcode::Transcoders::default(),
                ws: stream::WsViewers::default(),
            }),
        })
    }

    fn routes(&self) -> Vec<String> {
        vec![
            "/api/frame.jpeg".into(),
            "/api/stream.mjpeg".into(),
            "/api/stream.y4m".into(),
            "/api/stream.ascii".into(),
        ]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        if request.method.as_str() != "GET" && request.method.as_str() != "HEAD" {
            return responder.text(405, "method not allowed");
        }
        match request.path.as_str() {
            "/api/frame.jpeg" => snapshot::handle(&self.state, request, responder),
            "/api/stream.mjpeg" => {
                stream::handle_http(&self.state, request, responder, params::Output::Jpeg)
            }
            "/api/stream.y4m" => {
                stream::handle_http(&self.state, request, responder, params::Output::Y4m)
            }
            "/api/stream.ascii" => stream::handle_http(
                &self.state,
                request,
                responder,
                params::Output::Ascii(params::Ascii::default()),
            ),
            _ => responder.text(404, "404 page not found"),
        }
    }

    fn ws_types(&self) -> Vec<String> {
        vec!["mjpeg".into()]
    }

    fn ws_message(&self, conn: u64, message: &str, sender: WsSender) {
        stream::handle_ws(&self.state, conn, message, sender)
    }

    fn ws_closed(&self, conn: u64) {
        self.state.ws.close(&self.state, conn)
    }
}

/// The `remote_addr` and `user_agent` go2rtc lists for an HTTP client.
pub(crate) fn client_info(request: &HttpRequest, format_name: &str) -> serde_json::Value {
    let user_agent = request
        .headers
        .iter()
        .find(|h| h.0.as_str().eq_ignore_ascii_case("user-agent"))
        .map(|h| h.1.as_str())
        .unwrap_or("");
    serde_json::json!({
        "format_name": format_name,
        "protocol": "http",
        "remote_addr": request.remote_addr.as_str(),
        "user_agent": user_agent,
    })
}

camrouter_plugin_api::declare_plugin!("mjpeg", Mjpeg);
