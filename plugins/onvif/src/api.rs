//! `GET /api/onvif`: without `src`, the ONVIF devices WS-Discovery finds;
//! with `src=onvif://…`, that device's profiles as sources. Both in go2rtc's
//! `{"sources": [{name, info, url}]}`, which the Add page lists.

use std::net::SocketAddr;

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::Responder;
use camrouter_plugin_api::url::query_pairs;
use serde_json::{json, Value};

use crate::address::OnvifUrl;
use crate::client::Device;
use crate::discovery;

pub const PATH: &str = "/api/onvif";

pub fn handle(
    request: HttpRequest,
    responder: Responder,
    targets: Vec<String>,
    runtime: &tokio::runtime::Handle,
) {
    if request.method.as_str() != "GET" {
        return responder.text(405, "405 method not allowed");
    }
    let src = query_pairs(request.query.as_str())
        .into_iter()
        .find(|(k, _)| k == "src")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    runtime.spawn(async move {
        let answer = match src {
            None => discover(&targets).await,
            Some(src) => profiles(&src).await,
        };
        match answer {
            Ok(sources) => responder.json(200, &json!({ "sources": sources })),
            Err(e) => {
                tracing::warn!("{e}");
                responder.text(500, &e)
            }
        }
    });
}

async fn discover(targets: &[String]) -> Result<Vec<Value>, String> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for t in targets {
        match tokio::net::lookup_host(t.as_str()).await {
            Ok(a) => addrs.extend(a.filter(SocketAddr::is_ipv4)),
            Err(e) => tracing::warn!("onvif: discovery target {t}: {e}"),
        }
    }
    let found = discovery::discover(&addrs, discovery::WINDOW).await?;
    Ok(found.iter().filter_map(discovery::source).collect())
}

async fn profiles(src: &str) -> Result<Vec<Value>, String> {
    let url = OnvifUrl::parse(src)?;
    let device = Device::new(url.clone());
    let media = device.media_path().await?;
    let profiles = device.profiles(&media).await?;
    let name = device.name().await;
    let base = url.base();
    let mut sources: Vec<Value> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let info = [p.name.as_str(), p.describe().as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            json!({
                "name": format!("{name} stream{i}"),
                "info": info,
                "url": format!("{base}?subtype={}", query_escape(&p.token)),
            })
        })
        .collect();
    if device.has_snapshots(&media).await {
        sources.push(json!({
            "name": format!("{name} snapshot"),
            "url": format!("{base}?subtype={}&snapshot", query_escape(&profiles[0].token)),
        }));
    }
    Ok(sources)
}

/// Percent-encodes what a query value cannot hold as it is.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
