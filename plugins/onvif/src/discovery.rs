//! WS-Discovery (ONVIF Core spec §7.3): a Probe datagram to the multicast
//! group (or the configured addresses), then the ProbeMatches that arrive
//! within the window. The message code is sans IO; `discover` owns the socket.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use camrouter_plugin_api::url::query_decode;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::address::DEVICE_PATH;
use crate::xml;

pub const MULTICAST: &str = "239.255.255.250:3702";
/// How long answers are collected: devices answer within a random delay of
/// up to 500 ms (APP_MAX_DELAY, WS-Discovery §3.1.3), some slower.
pub const WINDOW: Duration = Duration::from_secs(2);

/// A Probe for every device type: printers answer too, and are dropped by
/// [`matches`] for not being ONVIF (some cameras ignore a typed Probe).
pub fn probe(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="utf-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
            r#" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing""#,
            r#" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">"#,
            "<s:Header><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>",
            "<a:MessageID>urn:uuid:{}</a:MessageID>",
            "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>",
            "<s:Body><d:Probe><d:Types/><d:Scopes/></d:Probe></s:Body></s:Envelope>"
        ),
        message_id
    )
}

/// A random version 4 UUID.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One ONVIF device from a ProbeMatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its device service, `http://host:port/path`.
    pub xaddr: String,
    /// `urn:uuid:…`, to list a device once when it answers on several
    /// interfaces or to several probes.
    pub endpoint: String,
    pub name: String,
    pub hardware: String,
}

/// The ONVIF devices in one ProbeMatches datagram from `from`.
pub fn matches(datagram: &[u8], from: IpAddr) -> Vec<Found> {
    let Ok(doc) = xml::parse(datagram) else {
        return Vec::new();
    };
    let mut list = Vec::new();
    doc.find_all("ProbeMatch", &mut list);
    list.into_iter()
        .filter_map(|m| {
            let types = m.find_value("Types").unwrap_or("");
            let scopes = m.find_value("Scopes").unwrap_or("");
            let xaddrs = m.find_value("XAddrs").unwrap_or("");
            if !(types.contains("NetworkVideoTransmitter")
                || scopes.contains("onvif://")
                || xaddrs.contains("/onvif/"))
            {
                return None;
            }
            let xaddr = pick_xaddr(xaddrs, from)?;
            let endpoint = m
                .find("EndpointReference")
                .and_then(|e| e.find_value("Address"))
                .unwrap_or(&xaddr)
                .to_string();
            Some(Found {
                endpoint,
                name: scope(scopes, "onvif://www.onvif.org/name/"),
                hardware: scope(scopes, "onvif://www.onvif.org/hardware/"),
                xaddr,
            })
        })
        .collect()
}

/// Of the space-separated XAddrs, the HTTP one we can reach best: on the
/// address the answer came from, else IPv4, else any. `0.0.0.0` (firmware
/// that reports its bind address) becomes the sender's address.
fn pick_xaddr(xaddrs: &str, from: IpAddr) -> Option<String> {
    let from_s = match from {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let mut best: Option<(u8, String)> = None;
    for x in xaddrs.split_ascii_whitespace() {
        let Some(rest) = x.strip_prefix("http://") else {
            continue;
        };
        let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = if hostport.starts_with('[') {
            hostport.split_inclusive(']').next().unwrap_or(hostport)
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        let port = &hostport[host.len()..];
        let (host, rank) = if host == "0.0.0.0" {
            (from_s.as_str(), 3)
        } else if host == from_s {
            (host, 3)
        } else if host.starts_with('[') || host.starts_with("169.254.") {
            (host, 1)
        } else {
            (host, 2)
        };
        let url = format!("http://{host}{port}{path}");
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, url));
        }
    }
    best.map(|(_, u)| u)
}

fn scope(scopes: &str, prefix: &str) -> String {
    scopes
        .split_ascii_whitespace()
        .find_map(|s| s.strip_prefix(prefix))
        .map(query_decode)
        .unwrap_or_default()
}

/// go2rtc's `/api/onvif` item for a found device: `onvif://user:pass@host:port`
/// (the device path only when it is not the standard one), the credentials a
/// placeholder for the user to replace.
pub fn source(found: &Found) -> Option<Value> {
    let rest = found.xaddr.strip_prefix("http://")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path == DEVICE_PATH || path == "/" {
        ""
    } else {
        path
    };
    let info = format!("{} {}", found.name, found.hardware);
    Some(json!({
        "name": hostport,
        "info": info.trim(),
        "url": format!("onvif://user:pass@{hostport}{path}"),
    }))
}

/// Sends one Probe to each target and collects the ONVIF devices that
/// answer within `window`, each once, in order of their address.
pub async fn discover(targets: &[SocketAddr], window: Duration) -> Result<Vec<Found>, String> {
    // A socket on every interface, so unicast answers from the LAN reach
    // it; a probe aimed only at loopback (tests) stays on loopback.
    let bind: SocketAddr = if targets.iter().all(|t| t.ip().is_loopback()) {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|e| format!("onvif: discovery: {e}"))?;
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("onvif: discovery: bind: {e}"))?;
    let msg = probe(&uuid());
    let mut sent = 0;
    let mut last_err = None;
    for t in targets {
        match sock.send_to(msg.as_bytes(), t).await {
            Ok(_) => sent += 1,
            Err(e) => {
                tracing::debug!(target = %t, "onvif: discovery: probe: {e}");
                last_err = Some(format!("onvif: discovery: probe to {t}: {e}"));
            }
        }
    }
    if sent == 0 {
        return Err(last_err.unwrap_or_else(|| "onvif: discovery: no target".into()));
    }
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + window;
    let mut buf = vec![0u8; 65_536];
    let mut errors = 0;
    loop {
        let r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
        let Ok(r) = r else { break };
        let (n, from) = match r {
            Ok(x) => x,
            // An ICMP error from one target; a socket that only fails
            // would spin until the deadline.
            Err(_) if errors < 16 => {
                errors += 1;
                continue;
            }
            Err(e) => return Err(format!("onvif: discovery: {e}")),
        };
        for f in matches(&buf[..n], from.ip()) {
            found.entry(f.endpoint.clone()).or_insert(f);
        }
    }
    let mut list: Vec<Found> = found.into_values().collect();
    list.sort_by(|a, b| a.xaddr.cmp(&b.xaddr));
    Ok(list)
}

#[cfg(test)]
mod tests;
