//! `http://`, `https://`, `httpx://` and `tcp://` sources: a camera's
//! MJPEG, snapshot or stream URL, a raw TCP feed; and ingest by POST
//! (`/api/stream.ts`, `/api/stream.mjpeg`, `/api/stream`). See README.md.

mod client;
mod hls;
mod ingest;
mod source;
mod target;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents};

pub struct Http {
    ctx: InitContext,
}

impl Plugin for Http {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Http { ctx })
    }

    fn schemes(&self) -> Vec<String> {
        ["http", "https", "httpx", "tcp"].map(String::from).to_vec()
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let opts = target::Options::parse(url)?;
        Ok(Box::new(source::start(opts, events, &self.ctx.runtime)))
    }

    fn routes(&self) -> Vec<String> {
        ingest::ROUTES
            .iter()
            .map(|(path, _)| format!("POST {path}"))
            .collect()
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        let format = ingest::ROUTES
            .iter()
            .find(|(path, _)| *path == request.path.as_str())
            .map(|(_, f)| *f);
        match format {
            Some(format) => ingest::handle(&self.ctx.host, request, responder, format),
            None => responder.text(404, "404 page not found"),
        }
    }
}

camrouter_plugin_api::declare_plugin!("http", Http);
