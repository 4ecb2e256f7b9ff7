//! RTSP for camrouter: the client source (`rtsp://`, `rtsps://`, `rtspx://`),
//! the server (`rtsp.listen`, default `:8554`) with shared packetization, and
//! ingest (ANNOUNCE/RECORD). The protocol itself is sans-IO in [`proto`].
//! See README.md for URL formats, `#params` and config keys.

mod client;
mod convert;
mod feed;
mod out;
pub mod proto;
mod random;
mod server;
mod ws;

use std::sync::Arc;

use camrouter_plugin_api::sdk::{InitContext, Plugin, Source, SourceEvents};

/// The `rtsp:` config section.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub username: String,
    pub password: String,
    /// Filters for a client URL without any (go2rtc: `video&audio`).
    pub default_query: String,
    /// Require auth from loopback clients too (go2rtc exempts them).
    pub local_auth: bool,
    /// Largest RTP packet we send.
    pub pkt_size: usize,
    /// Longest an audio frame waits to share the next video frame's write
    /// (see `out.rs`); 0 writes every frame at once.
    pub coalesce_ms: u64,
}

impl Config {
    fn from_json(v: &serde_json::Value) -> Config {
        let s = |k: &str, d: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or(d).to_string();
        Config {
            listen: match v.get("listen") {
                Some(serde_json::Value::String(l)) => l.clone(),
                _ => ":8554".into(),
            },
            username: s("username", ""),
            password: s("password", ""),
            default_query: s("default_query", "video&audio"),
            local_auth: v
                .get("local_auth")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            pkt_size: v
                .get("pkt_size")
                .and_then(|x| x.as_u64())
                .map(|n| n.clamp(300, 65000) as usize)
                .unwrap_or(1200),
            coalesce_ms: v
                .get("coalesce_ms")
                .and_then(|x| x.as_u64())
                .map(|n| n.min(1000))
                .unwrap_or(50),
        }
    }
}

pub struct Rtsp {
    ctx: InitContext,
}

fn bind_addr(listen: &str) -> String {
    if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    }
}

impl Plugin for Rtsp {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let config = Config::from_json(&ctx.config);
        if !config.listen.is_empty() {
            let std_listener = std::net::TcpListener::bind(bind_addr(&config.listen))
                .map_err(|e| format!("rtsp: listen {}: {e}", config.listen))?;
            std_listener
                .set_nonblocking(true)
                .map_err(|e| e.to_string())?;
            let port = std_listener.local_addr().map_err(|e| e.to_string())?.port();
            let _guard = ctx.runtime.enter();
            let listener =
                tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
            tracing::info!(addr = %config.listen, "listen");
            ctx.host
                .set_fact("rtsp.internal_url", &format!("rtsp://127.0.0.1:{port}"));
            let server = Arc::new(server::Server {
                host: ctx.host.clone(),
                feeds: feed::Feeds::new(
                    ctx.host.clone(),
                    config.pkt_size,
                    std::time::Duration::from_millis(config.coalesce_ms),
                ),
                config,
                started: std::time::Instant::now(),
            });
            ctx.runtime.spawn(server::accept_loop(server, listener));
        }
        Ok(Rtsp { ctx })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["rtsp".into(), "rtsps".into(), "rtspx".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let opts = client::Options::parse(url)?;
        Ok(Box::new(client::start(opts, events, &self.ctx.runtime)))
    }

    fn config_keys(&self) -> Vec<String> {
        [
            "listen",
            "username",
            "password",
            "default_query",
            "local_auth",
            "pkt_size",
            "coalesce_ms",
            "worker_threads",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

camrouter_plugin_api::declare_plugin!("rtsp", Rtsp);
