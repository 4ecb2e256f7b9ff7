//! RTMP: a sans-IO core ([`handshake`], [`chunk`], [`amf`], [`session`])
//! and the server on `rtmp.listen` (default `:1935`): publish into a stream,
//! play a stream, many players of a stream sharing one muxing ([`feed`]).
//! See README.md for URLs and config keys.

pub mod amf;
pub mod chunk;
pub mod client;
mod feed;
pub mod handshake;
mod ingest;
mod publish;
mod server;
pub mod session;
mod source;

use std::sync::Arc;

use camrouter_plugin_api::sdk::{
    Host, InitContext, Plugin, PublishEvents, Publisher, SourceEvents,
};

/// Why a connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("handshake: {0}")]
    Handshake(&'static str),
    #[error("chunk stream: {0}")]
    Chunk(&'static str),
    #[error("AMF0: {0}")]
    Amf(&'static str),
    #[error("command: {0}")]
    Command(&'static str),
}

/// The `rtmp:` config section.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    /// Publishing needs these when set (see README.md).
    pub username: String,
    pub password: String,
}

impl Config {
    fn from_json(v: &serde_json::Value) -> Config {
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Config {
            listen: match v.get("listen") {
                Some(serde_json::Value::String(l)) => l.clone(),
                _ => ":1935".into(),
            },
            username: s("username"),
            password: s("password"),
        }
    }
}

fn bind_addr(listen: &str) -> String {
    if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    }
}

pub struct Rtmp {
    _server: Option<Arc<server::Server>>,
    host: Host,
    runtime: tokio::runtime::Handle,
}

impl Plugin for Rtmp {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let config = Config::from_json(&ctx.config);
        if config.listen.is_empty() {
            return Ok(Rtmp {
                _server: None,
                host: ctx.host.clone(),
                runtime: ctx.runtime.clone(),
            });
        }
        let std_listener = std::net::TcpListener::bind(bind_addr(&config.listen))
            .map_err(|e| format!("rtmp: listen {}: {e}", config.listen))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let _guard = ctx.runtime.enter();
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        tracing::info!(addr = %config.listen, "listen");
        let server = Arc::new(server::Server::new(
            ctx.host.clone(),
            ctx.runtime.clone(),
            config,
        ));
        ctx.runtime
            .spawn(server::accept_loop(server.clone(), listener));
        Ok(Rtmp {
            _server: Some(server),
            host: ctx.host.clone(),
            runtime: ctx.runtime.clone(),
        })
    }

    fn schemes(&self) -> Vec<String> {
        ["rtmp", "rtmps", "rtmpx"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn open_source(
        &self,
        url: &str,
        events: SourceEvents,
    ) -> Result<Box<dyn camrouter_plugin_api::sdk::Source>, String> {
        Ok(Box::new(source::open(url, events, &self.runtime)?))
    }

    fn publish(
        &self,
        stream: &str,
        url: &str,
        events: PublishEvents,
    ) -> Result<Box<dyn Publisher>, String> {
        Ok(Box::new(publish::start(
            &self.host,
            &self.runtime,
            stream,
            url,
            events,
        )?))
    }

    fn config_keys(&self) -> Vec<String> {
        ["listen", "username", "password"]
            .into_iter()
            .map(String::from)
            .collect()
    }
}

camrouter_plugin_api::declare_plugin!("rtmp", Rtmp);
