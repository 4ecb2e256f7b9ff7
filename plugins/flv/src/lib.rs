//! FLV output, as go2rtc: `GET /api/stream.flv?src=` (H.264 or H.265 video,
//! AAC or G.711 audio), one graph consumer per client from the cached GOP.
//! The container is camrouter-media's [`flv`](camrouter_media::flv) muxer.
//! Ingest by `POST /api/stream.flv` belongs to the `http` module. See README.md.

mod http;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder};

pub struct Flv {
    ctx: InitContext,
}

impl Plugin for Flv {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Flv { ctx })
    }

    fn routes(&self) -> Vec<String> {
        vec!["/api/stream.flv".into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        http::handle(&self.ctx, request, responder)
    }
}

camrouter_plugin_api::declare_plugin!("flv", Flv);
