//! `fetch()`: blocking HTTP with a per-evaluation cookie jar, redirects
//! followed here (so cookies set by a redirect are kept), and Basic auth from
//! the URL's `user:password@`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use ureq::http;

/// Whole-request timeout, redirects included (go2rtc's client has 5 s).
pub const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 10;
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// One request, as the script's options describe it.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Sent when `headers` has no Content-Type.
    pub content_type: Option<&'static str>,
}

/// What the script sees: `ok`, `status`, `text`, `headers`, `json()`.
#[derive(Debug, Clone)]
pub struct Response {
    pub ok: bool,
    pub status: String,
    pub text: String,
    pub headers: BTreeMap<String, String>,
}

struct Cookie {
    domain: String,
    host_only: bool,
    name: String,
    value: String,
}

/// The HTTP state of one evaluation: every fetch shares its cookies.
pub struct Session {
    agent: ureq::Agent,
    /// Without proxy: loopback hosts never use one (as in Go).
    direct: ureq::Agent,
    cookies: Mutex<Vec<Cookie>>,
}

/// A URL split into what fetch needs.
#[derive(Debug, PartialEq)]
struct Url {
    scheme: String,
    /// `user:password`, percent-decoded.
    userinfo: Option<(String, String)>,
    /// `host[:port]` as written.
    authority: String,
    /// Lowercase host without port or brackets.
    host: String,
    /// Path and query (`/` when empty), fragment removed.
    path: String,
}

impl Url {
    fn parse(raw: &str) -> Result<Url, String> {
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("not an absolute URL: {}", mask(raw)))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("unsupported protocol scheme {scheme:?}"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (mut authority, path) = rest.split_at(end);
        let mut userinfo = None;
        if let Some(at) = authority.rfind('@') {
            let info = &authority[..at];
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            userinfo = Some((dec(user), dec(pass)));
            authority = &authority[at + 1..];
        }
        if authority.is_empty() {
            return Err(format!("no host in URL {}", mask(raw)));
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or_default()
        }
        .to_ascii_lowercase();
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Ok(Url {
            scheme,
            userinfo,
            authority: authority.to_string(),
            host,
            path,
        })
    }

    /// The URL without userinfo: what goes on the wire and in messages.
    fn clean(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// Resolves a redirect's Location against this URL.
    fn join(&self, loc: &str) -> String {
        let has_scheme = loc.find(':').is_some_and(|c| {
            loc[..c]
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
                && c > 0
        });
        if has_scheme {
            loc.to_string()
        } else if loc.starts_with("//") {
            format!("{}:{loc}", self.scheme)
        } else if loc.starts_with('/') {
            format!("{}://{}{loc}", self.scheme, self.authority)
        } else {
            let path = self.path.split('?').next().unwrap_or("/");
            let base = if loc.starts_with('?') {
                path
            } else {
                &path[..path.rfind('/').map_or(0, |i| i + 1)]
            };
            format!("{}://{}{base}{loc}", self.scheme, self.authority)
        }
    }
}

pub use camrouter_plugin_api::secret::mask;

/// `application/x-www-form-urlencoded`, as Go's `url.Values.Encode`
/// (pairs in the given order; callers pass them sorted by key).
pub fn form_encode(pairs: &[(String, String)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        let config = || {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .allow_non_standard_methods(true)
                .timeout_global(Some(TIMEOUT))
        };
        Session {
            agent: ureq::Agent::new_with_config(config().build()),
            direct: ureq::Agent::new_with_config(config().proxy(None).build()),
            cookies: Mutex::new(Vec::new()),
        }
    }

    fn cookie_header(&self, host: &str) -> Option<String> {
        let jar = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<String> = jar
            .iter()
            .filter(|c| {
                host == c.domain || (!c.host_only && host.ends_with(&format!(".{}", c.domain)))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    }

    fn store_cookie(&self, host: &str, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() {
            return;
        }
        let mut domain = None;
        let mut delete = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "domain" => {
                    let d = v.trim().trim_start_matches('.').to_ascii_lowercase();
                    if !d.is_empty() {
                        domain = Some(d);
                    }
                }
                "max-age" => delete = v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
                _ => {}
            }
        }
        if let Some(d) = &domain {
            if host != d && !host.ends_with(&format!(".{d}")) {
                return; // a cookie for another site
            }
        }
        let host_only = domain.is_none();
        let domain = domain.unwrap_or_else(|| host.to_string());
        let mut jar = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
        jar.retain(|c| !(c.domain == domain && c.name == name));
        if !delete {
            jar.push(Cookie {
                domain,
                host_only,
                name: name.to_string(),
                value: value.to_string(),
            });
        }
    }

    /// Runs one request, following redirects. Errors name the URL without
    /// its password.
    pub fn fetch(&self, req: Request) -> Result<Response, String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut method = req.method.to_ascii_uppercase();
        if method.is_empty() {
            method = "GET".into();
        }
        let mut url = Url::parse(&req.url)?;
        let first_host = url.host.clone();
        let mut headers = req.headers;
        let mut body = req.body;
        let mut content_type = req.content_type;
        let has = |h: &[(String, String)], name: &str| {
            h.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has(&headers, "authorization") {
            if let Some((user, pass)) = &url.userinfo {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                headers.push(("Authorization".into(), format!("Basic {token}")));
            }
        }
        let mut hops = 0;
        loop {
            let clean = url.clean();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{method} {clean}: timeout"));
            }
            let mut b = http::Request::builder()
                .method(method.as_str())
                .uri(clean.as_str());
            for (k, v) in &headers {
                b = b.header(k.as_str(), v.as_str());
            }
            if let Some(ct) = content_type {
                if !has(&headers, "content-type") {
                    b = b.header("Content-Type", ct);
                }
            }
            if let Some(c) = self.cookie_header(&url.host) {
                b = b.header("Cookie", c);
            }
            let err = |e: &dyn std::fmt::Display| format!("{method} {clean}: {e}");
            let loopback = url.host == "localhost"
                || url
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            let agent = if loopback { &self.direct } else { &self.agent };
            let result = match &body {
                Some(data) => {
                    let r = b.body(data.clone()).map_err(|e| err(&e))?;
                    let r = agent
                        .configure_request(r)
                        .timeout_global(Some(left))
                        .build();
                    agent.run(r)
                }
                None => {
                    let r = b.body(()).map_err(|e| err(&e))?;
                    let r = agent
                        .configure_request(r)
                        .timeout_global(Some(left))
                        .build();
                    agent.run(r)
                }
            };
            let mut resp = result.map_err(|e| err(&e))?;
            for v in resp.headers().get_all(http::header::SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    self.store_cookie(&url.host, v);
                }
            }
            let status = resp.status();
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let (true, Some(loc)) = (status.is_redirection() && status != 304, location) {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(format!(
                        "{method} {clean}: stopped after {MAX_REDIRECTS} redirects"
                    ));
                }
                let next = Url::parse(&url.join(&loc))?;
                if matches!(status.as_u16(), 301..=303) && method != "GET" && method != "HEAD" {
                    method = "GET".into();
                    body = None;
                    content_type = None;
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                }
                if next.host != first_host {
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                }
                url = next;
                continue;
            }
            let bytes = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| err(&e))?;
            let mut hdrs = BTreeMap::new();
            for (k, v) in resp.headers() {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                hdrs.entry(k.as_str().to_string())
                    .and_modify(|old: &mut String| {
                        old.push_str(", ");
                        old.push_str(&v);
                    })
                    .or_insert(v);
            }
            return Ok(Response {
                ok: status.as_u16() < 400,
                status: format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or_default()
                )
                .trim_end()
                .to_string(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
                headers: hdrs,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_and_userinfo() {
        let u = Url::parse("http://admin:p%40ss@192.168.1.2:8080/cgi?x=1#frag").unwrap();
        assert_eq!(u.userinfo, Some(("admin".into(), "p@ss".into())));
        assert_eq!(u.authority, "192.168.1.2:8080");
        assert_eq!(u.host, "192.168.1.2");
        assert_eq!(u.clean(), "http://192.168.1.2:8080/cgi?x=1");
        assert_eq!(
            Url::parse("https://Example.org").unwrap().clean(),
            "https://Example.org/"
        );
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("nope").is_err());
        assert_eq!(mask("http://a:b@h/p"), "http://a:***@h/p");
    }

    #[test]
    fn redirect_locations() {
        let u = Url::parse("http://h:1/a/b?q=1").unwrap();
        assert_eq!(u.join("https://o/x"), "https://o/x");
        assert_eq!(u.join("//o/x"), "http://o/x");
        assert_eq!(u.join("/x"), "http://h:1/x");
        assert_eq!(u.join("c"), "http://h:1/a/c");
        assert_eq!(u.join("?z"), "http://h:1/a/b?z");
    }

    #[test]
    fn cookie_jar() {
        let s = Session::new();
        s.store_cookie("a.example.org", "sid=1; Path=/; HttpOnly");
        s.store_cookie("a.example.org", "wide=2; Domain=.example.org");
        s.store_cookie("a.example.org", "evil=3; Domain=other.org");
        assert_eq!(s.cookie_header("a.example.org").unwrap(), "sid=1; wide=2");
        assert_eq!(s.cookie_header("b.example.org").unwrap(), "wide=2");
        s.store_cookie("a.example.org", "sid=; Max-Age=0");
        assert_eq!(s.cookie_header("a.example.org").unwrap(), "wide=2");
        assert!(s.cookie_header("other.org").is_none());
    }

    #[test]
    fn form_encoding() {
        let p = [
            ("a b".to_string(), "x&y=z/é".to_string()),
            ("k".into(), "v".into()),
        ];
        assert_eq!(form_encode(&p), "a+b=x%26y%3Dz%2F%C3%A9&k=v");
    }
}
