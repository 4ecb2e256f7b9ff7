//! MP4 outputs, as go2rtc's `mp4` module: progressive fMP4
//! (`/api/stream.mp4`), one keyframe (`/api/frame.mp4`) and MSE over
//! `/api/ws` (`{"type":"mse"}`). The container is camrouter-media's
//! [`fmp4`](camrouter_media::fmp4) writer. See README.md.

mod http;
mod mse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, WsSender};

pub struct Mp4 {
    ctx: InitContext,
    /// MSE sessions by `/api/ws` connection.
    mse: Mutex<HashMap<u64, Arc<camrouter_plugin_api::muxed::Session>>>,
}

impl Plugin for Mp4 {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Mp4 {
            ctx,
            mse: Mutex::default(),
        })
    }

    fn routes(&self) -> Vec<String> {
        vec!["/api/stream.mp4".into(), "/api/frame.mp4".into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        http::handle(&self.ctx, request, responder)
    }

    fn ws_types(&self) -> Vec<String> {
        vec!["mse".into()]
    }

    fn ws_message(&self, conn: u64, message: &str, sender: WsSender) {
        let session = mse::handle(&self.ctx, message, sender);
        let old = {
            let mut map = self.mse.lock().unwrap_or_else(|e| e.into_inner());
            match session {
                Some(s) => map.insert(conn, s),
                None => None,
            }
        };
        // A second `mse` request on the same socket replaces the first.
        if let Some(old) = old {
            old.leave();
        }
    }

    fn ws_closed(&self, conn: u64) {
        let s = self
            .mse
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        if let Some(s) = s {
            s.leave();
        }
    }

    fn shutdown(&self) {
        let all: Vec<_> = self
            .mse
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in all {
            s.leave();
        }
    }
}

camrouter_plugin_api::declare_plugin!("mp4", Mp4);
