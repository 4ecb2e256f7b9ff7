//! Which browser contexts may use the API: the `Host` a request names (DNS
//! rebinding) and the `Origin` it comes from (cross-site requests).
//!
//! A page on any site can make a browser send requests to the API; the
//! browser marks them with `Origin` (and, in secure contexts,
//! `Sec-Fetch-Site`). A page that rebinds its own name to our address sends
//! same-origin requests, but with its name in `Host`. Clients that are not
//! browsers (curl, Home Assistant, Frigate) send neither header and are
//! decided by auth alone.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use serde_json::Value;

/// Paths that rewrite the config or stop the process: a foreign origin may
/// never use them, not even with `origin: "*"`, and their answers are never
/// readable cross-origin.
const ADMIN_PATHS: &[&str] = &["/api/config", "/api/restart", "/api/exit"];

pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PATHS.contains(&path)
}

/// How a connection reached the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Tcp,
    /// HTTPS: the certificate already binds the name, a rebound name fails
    /// the handshake.
    Tls,
    /// No browser reaches a unix socket except through a proxy, which names
    /// the host itself.
    Unix,
}

#[derive(Debug, Default)]
pub struct OriginPolicy {
    /// `origin: "*"`: any origin may use the media API (go2rtc's meaning).
    any_origin: bool,
    /// Origins listed in `api.origin`: trusted like our own.
    listed: Vec<String>,
    /// `api.allowed_hosts`, lower case; an entry starting with `.` also
    /// allows every subdomain; `*` turns the check off.
    allowed_hosts: Vec<String>,
    /// This machine's names (hostname, short name, `<short>.local`).
    machine: Vec<String>,
    /// Refusals already logged (bounded), so a page looping its attack does
    /// not flood the log.
    logged: Mutex<HashSet<String>>,
}

/// `api.origin` and `api.allowed_hosts` accept one string (`a, b` or `a b`
/// separates several) or a list.
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The host name (lower case, without brackets or a trailing dot) and the
/// port of a `Host` header value or an authority.
fn split_authority(authority: &str) -> (String, Option<&str>) {
    let a = authority.trim();
    let (name, port) = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((n, tail)) => (n, tail.strip_prefix(':')),
            None => (rest, None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
            _ => (a, None),
        }
    };
    (name.trim_end_matches('.').to_ascii_lowercase(), port)
}

fn machine_names() -> Vec<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Vec::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if full.is_empty() {
        return Vec::new();
    }
    let short = full.split('.').next().unwrap_or(&full).to_string();
    let mut v = vec![full.clone(), format!("{short}.local")];
    if short != full {
        v.push(short);
    }
    v
}

impl OriginPolicy {
    pub fn from_config(api: &Value) -> OriginPolicy {
        let origins = list(api.get("origin"));
        OriginPolicy {
            any_origin: origins.iter().any(|o| o == "*"),
            listed: origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| normalize_origin(o))
                .collect(),
            allowed_hosts: list(api.get("allowed_hosts"))
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            machine: machine_names(),
            logged: Mutex::default(),
        }
    }

    /// Whether the `Host` header names this server: an IP literal,
    /// `localhost`, one of the machine's names, a name no public DNS can
    /// answer (see [`local_only_name`]), or a name in `api.allowed_hosts`.
    /// A request without `Host` (HTTP/1.0) is no browser's.
    pub fn host_allowed(&self, via: Via, headers: &HeaderMap) -> bool {
        if via != Via::Tcp {
            return true;
        }
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let (name, _) = split_authority(host);
        name.parse::<IpAddr>().is_ok()
            || local_only_name(&name)
            || self.machine.contains(&name)
            || self.allowed_hosts.iter().any(|a| {
                a == "*"
                    || *a == name
                    || (a.starts_with('.') && (name.ends_with(a.as_str()) || name == a[1..]))
            })
    }

    fn listed(&self, origin: &str) -> bool {
        self.listed.contains(&normalize_origin(origin))
    }

    /// The `Origin` names the host the request was sent to (go2rtc's rule:
    /// the ports must match unless a proxy dropped the port from `Host`).
    fn own_origin(origin: &str, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let Some((_, authority)) = origin.split_once("://") else {
            return false;
        };
        let (origin_name, origin_port) = split_authority(authority);
        let (host_name, host_port) = split_authority(host);
        origin_name == host_name && (host_port.is_none() || origin_port == host_port)
    }

    /// Positive proof that a browser sent the request from our own pages.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            Some(o) => Self::own_origin(o, headers),
            None => fetch_site(headers) == Some("same-origin"),
        }
    }

    /// A browser sent this from a page of another origin that `api.origin`
    /// does not list (`*` aside).
    fn foreign(&self, headers: &HeaderMap) -> bool {
        let origin = headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("null"));
        match origin {
            Some(o) if self.listed(o) => false,
            Some(o) if !Self::own_origin(o, headers) => true,
            _ => fetch_site(headers) == Some("cross-site"),
        }
    }

    /// Whether a request must be refused: one that changes state (any method
    /// but GET/HEAD/OPTIONS, or a WebSocket upgrade) from a foreign origin.
    /// `origin: "*"` lets foreign pages use everything but the admin paths.
    pub fn refuse(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || headers.contains_key(header::UPGRADE);
        if !changes_state || !self.foreign(headers) {
            return false;
        }
        !self.any_origin || is_admin_path(path)
    }

    /// CORS headers for an answer: `*` for the media API with `origin: "*"`
    /// (never for the admin paths, whose answers hold secrets), the request's
    /// own origin when `api.origin` lists it.
    pub fn cors(&self, path: &str, origin: Option<&str>, resp: &mut HeaderMap) {
        let allow = match origin {
            Some(o) if self.listed(o) => {
                resp.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
                resp.append(header::VARY, HeaderValue::from_static("Origin"));
                HeaderValue::from_str(o).ok()
            }
            _ if self.any_origin && !is_admin_path(path) => Some(HeaderValue::from_static("*")),
            _ => None,
        };
        let Some(allow) = allow else { return };
        resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type"),
        );
    }

    /// Whether a CORS preflight is answered here (with `cors`).
    pub fn answers_preflight(&self, origin: Option<&str>) -> bool {
        self.any_origin || origin.is_some_and(|o| self.listed(o))
    }

    /// Logs a refusal once per distinct `what` (at most 64 of them).
    pub fn log_once(&self, what: String) {
        let Ok(mut seen) = self.logged.lock() else {
            return;
        };
        if seen.len() < 64 && seen.insert(what.clone()) {
            tracing::warn!(target: "api", "{what}");
        }
    }
}

/// A name a rebinding attacker cannot make a browser resolve, because public
/// DNS never answers for it: a single label (a docker container or service,
/// Home Assistant's add-on host names, `localhost`), or a name under a
/// special-use domain resolved only on the local network (`.localhost`,
/// `.local` for mDNS, `.home.arpa`, `.internal`). Reverse proxies such as
/// Frigate's pass these in `Host`; rebinding needs a domain the attacker owns.
fn local_only_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('.')
        || [".localhost", ".local", ".home.arpa", ".internal"]
            .iter()
            .any(|d| name.ends_with(d))
}

fn fetch_site(headers: &HeaderMap) -> Option<&str> {
    headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn host_names() {
        let p = OriginPolicy::from_config(
            &json!({"allowed_hosts": ["cams.example.com", ".home.arpa"]}),
        );
        let ok = |host: &str| p.host_allowed(Via::Tcp, &h(&[("host", host)]));
        for good in [
            "127.0.0.1:1984",
            "[::1]:1984",
            "192.168.1.5",
            "localhost:1984",
            "LOCALHOST.",
            "cam.localhost",
            "cams.example.com:443",
            "home.arpa",
            "nvr.home.arpa",
            "frigate:5000",
            "ccab4aaf-frigate",
            "nvr.local",
            "go2rtc.internal",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "evil.com:1984",
            "example.com",
            "localhost.evil.com",
            "home.arpa.evil",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(p.host_allowed(Via::Unix, &h(&[("host", "evil.com")])));
        assert!(p.host_allowed(Via::Tls, &h(&[("host", "evil.com")])));
        assert!(p.host_allowed(Via::Tcp, &HeaderMap::new()));
        let any = OriginPolicy::from_config(&json!({"allowed_hosts": "*"}));
        assert!(any.host_allowed(Via::Tcp, &h(&[("host", "evil.com")])));
    }

    #[test]
    fn foreign_origins_are_refused_on_writes() {
        let p = OriginPolicy::from_config(&json!({"origin": "https://ha.example.com"}));
        let post = |hs: &[(&str, &str)]| p.refuse(&Method::POST, "/api/config", &h(hs));
        assert!(post(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "http://evil.com")
        ]));
        assert!(post(&[("host", "127.0.0.1:1984"), ("origin", "null")]));
        assert!(post(&[
            ("host", "127.0.0.1:1984"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(post(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "http://127.0.0.1:8080")
        ]));
        assert!(!post(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "http://127.0.0.1:1984")
        ]));
        // A proxy that drops the port from Host.
        assert!(!post(&[
            ("host", "cams.lan"),
            ("origin", "https://cams.lan:8443")
        ]));
        assert!(!post(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "https://HA.example.com/")
        ]));
        assert!(!post(&[("host", "127.0.0.1:1984")]));
        let get = |hs: &[(&str, &str)]| p.refuse(&Method::GET, "/api/streams", &h(hs));
        assert!(!get(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "http://evil.com")
        ]));
        assert!(get(&[
            ("host", "127.0.0.1:1984"),
            ("origin", "http://evil.com"),
            ("upgrade", "websocket")
        ]));
    }

    #[test]
    fn any_origin_keeps_the_admin_paths() {
        let p = OriginPolicy::from_config(&json!({"origin": "*"}));
        let evil = h(&[("host", "127.0.0.1:1984"), ("origin", "http://evil.com")]);
        assert!(!p.refuse(&Method::PUT, "/api/streams", &evil));
        assert!(p.refuse(&Method::POST, "/api/config", &evil));
        assert!(p.refuse(&Method::POST, "/api/restart", &evil));
        let mut resp = HeaderMap::new();
        p.cors("/api/config", Some("http://evil.com"), &mut resp);
        assert!(resp.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        p.cors("/api/streams", Some("http://evil.com"), &mut resp);
        assert_eq!(resp[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
