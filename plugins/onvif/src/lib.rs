//! ONVIF: `onvif://` sources (the profile's RTSP stream, or its snapshot)
//! and `GET /api/onvif` (WS-Discovery of cameras, a device's profiles), in
//! go2rtc's shapes. See README.md.

mod address;
mod api;
mod client;
pub mod discovery;
pub mod soap;
mod source;
pub mod xml;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents};

pub use address::OnvifUrl;

pub struct Onvif {
    ctx: InitContext,
    /// `onvif.discovery`: where probes go (`host:port`, resolved per probe).
    discovery: Vec<String>,
}

/// `onvif.discovery` as a list of `host:port` (one string is a list of one).
fn discovery_targets(config: &serde_json::Value) -> Result<Vec<String>, String> {
    let v = config.get("discovery");
    let list: Vec<String> = match v {
        None | Some(serde_json::Value::Null) => return Ok(vec![discovery::MULTICAST.into()]),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("onvif.discovery: not a host:port: {x}"))
            })
            .collect::<Result<_, _>>()?,
        Some(x) => return Err(format!("onvif.discovery: a list of host:port, not {x}")),
    };
    for t in &list {
        match t.rsplit_once(':').map(|(_, p)| p.parse::<u16>()) {
            Some(Ok(_)) => {}
            _ => return Err(format!("onvif.discovery: {t:?} is not host:port")),
        }
    }
    Ok(list)
}

impl Plugin for Onvif {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let discovery = discovery_targets(&ctx.config)?;
        Ok(Onvif { ctx, discovery })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["onvif".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(source::open(url, events, &self.ctx.runtime)?))
    }

    fn routes(&self) -> Vec<String> {
        vec![api::PATH.into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        api::handle(
            request,
            responder,
            self.discovery.clone(),
            &self.ctx.runtime,
        )
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["discovery".into(), "worker_threads".into()]
    }
}

camrouter_plugin_api::declare_plugin!("onvif", Onvif);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn discovery_config() {
        assert_eq!(
            discovery_targets(&json!(null)).unwrap(),
            vec![discovery::MULTICAST]
        );
        assert_eq!(
            discovery_targets(&json!({"discovery": "127.0.0.1:3702"})).unwrap(),
            vec!["127.0.0.1:3702"]
        );
        assert_eq!(
            discovery_targets(&json!({"discovery": ["239.255.255.250:3702", "cam.lan:3702"]}))
                .unwrap()
                .len(),
            2
        );
        assert!(discovery_targets(&json!({"discovery": ["cam.lan"]})).is_err());
        assert!(discovery_targets(&json!({"discovery": 5})).is_err());
    }
}
