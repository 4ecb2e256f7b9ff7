//! A source URL taken apart: where to connect, what to ask for, with which
//! credentials, headers and timeout.

use std::time::Duration;

use camrouter_plugin_api::auth::Credentials;
use camrouter_plugin_api::cmd::split_params;
use camrouter_plugin_api::url::percent_decode;

/// How long a dial, a response head or a silence in the body may last.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    /// TLS, certificate verified against the Mozilla roots.
    Https,
    /// TLS without any certificate check (go2rtc's `httpx`, for cameras
    /// with self-signed certificates).
    Httpx,
    /// Raw bytes from a TCP connection, no HTTP.
    Tcp,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "httpx" => Some(Scheme::Httpx),
            "tcp" => Some(Scheme::Tcp),
            _ => None,
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https | Scheme::Httpx => Some(443),
            Scheme::Tcp => None,
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Httpx)
    }
}

/// One request target: a URL without its `#params`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host name or address, without IPv6 brackets (for dialling and SNI).
    pub host: String,
    pub port: u16,
    /// The `Host` header: as written in the URL, default port left out.
    pub authority: String,
    /// Path and query as sent in the request line (`/` when empty).
    pub path: String,
    pub credentials: Option<Credentials>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of debug output.
        write!(f, "{:?}://{}{}", self.scheme, self.authority, self.path)
    }
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("http: bad url (no scheme): {url}"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| format!("http: unsupported scheme: {scheme}"))?;
        // The authority ends at the first '/' or '?', as in Go's url.Parse:
        // a '/' in a password must be escaped (%2F).
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let at = rest[..end].rfind('@');
        let (userinfo, hostpart_and_path) = match at {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let end = hostpart_and_path
            .find(['/', '?'])
            .unwrap_or(hostpart_and_path.len());
        let authority = &hostpart_and_path[..end];
        let path = &hostpart_and_path[end..];
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("http: bad url (host): {}", authority))?;
        let port = match port {
            Some(p) => p,
            None => scheme
                .default_port()
                .ok_or_else(|| format!("http: bad url (tcp:// needs a port): {authority}"))?,
        };
        if host.is_empty() {
            return Err("http: bad url (no host)".into());
        }
        let credentials = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            Credentials::new(percent_decode(user), percent_decode(pass))
        });
        Ok(Target {
            scheme,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            path,
            credentials,
        })
    }

    /// The target of a redirect. Credentials go along only to the same
    /// host and port (as browsers and Go's client do), unless the new URL
    /// carries its own.
    pub fn redirect(&self, location: &str) -> Result<Target, String> {
        let mut next = if location.contains("://") {
            Target::parse(location)?
        } else if let Some(rest) = location.strip_prefix("//") {
            let scheme = match self.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::Httpx => "httpx",
                Scheme::Tcp => "tcp",
            };
            Target::parse(&format!("{scheme}://{rest}"))?
        } else {
            let path = if location.starts_with('/') {
                location.to_string()
            } else {
                let base = self.path.split('?').next().unwrap_or("/");
                let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
                format!("{}{location}", if dir.is_empty() { "/" } else { dir })
            };
            Target {
                path,
                ..self.clone()
            }
        };
        // An https page sending us to http is followed: cameras do that on
        // their own LAN. A self-signed `httpx` stays unverified.
        if self.scheme == Scheme::Httpx && next.scheme == Scheme::Https {
            next.scheme = Scheme::Httpx;
        }
        if next.credentials.is_none() && next.host == self.host && next.port == self.port {
            next.credentials = self.credentials.clone();
        }
        Ok(next)
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// A source URL: the target and its `#params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub target: Target,
    /// `#header=Name: value`, repeatable, in order.
    pub headers: Vec<(String, String)>,
    /// `#timeout=S`: dial, response head and body silence.
    pub timeout: Duration,
}

impl Options {
    pub fn parse(url: &str) -> Result<Options, String> {
        let (url, params) = split_params(url);
        let target = Target::parse(url)?;
        let mut o = Options {
            target,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        };
        for (k, v) in params {
            match k.as_str() {
                "header" => {
                    let (name, value) = v
                        .split_once(':')
                        .ok_or_else(|| format!("http: bad #header (no ':'): {v}"))?;
                    let name = name.trim();
                    if name.is_empty() || !name.bytes().all(is_token_byte) {
                        return Err(format!("http: bad #header name: {name:?}"));
                    }
                    let value = value.trim();
                    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                        return Err(format!("http: bad #header value for {name}"));
                    }
                    o.headers.push((name.to_string(), value.to_string()));
                }
                "timeout" => {
                    o.timeout = v
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| format!("http: bad #timeout: {v}"))?;
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// RFC 9110 5.6.2 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://admin:p%40ss@192.168.1.10:8080/cgi?x=1").unwrap();
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!((t.host.as_str(), t.port), ("192.168.1.10", 8080));
        assert_eq!(t.authority, "192.168.1.10:8080");
        assert_eq!(t.path, "/cgi?x=1");
        let c = t.credentials.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss")
        );

        let t = Target::parse("https://cam.example").unwrap();
        assert_eq!((t.port, t.path.as_str()), (443, "/"));
        assert!(t.credentials.is_none());

        let t = Target::parse("http://[::1]:81?snap").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 81, "/?snap")
        );

        let t = Target::parse("http://u:a%2Fb@h/snap.jpg").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("h", "/snap.jpg"));
        assert_eq!(t.credentials.unwrap().password, "a/b");
        // A '@' in the path is not userinfo.
        let t = Target::parse("http://h/p@x").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("h", "/p@x"));

        assert_eq!(Target::parse("tcp://127.0.0.1:9000").unwrap().port, 9000);
        assert!(Target::parse("tcp://127.0.0.1").is_err());
        assert!(Target::parse("http://h:99999/").is_err());
        assert!(Target::parse("ftp://h/").is_err());
        assert!(Target::parse("http:///x").is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let t = Target::parse("http://admin:secret@h/x").unwrap();
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn follows_redirects() {
        let t = Target::parse("http://u:p@h:81/a/b.cgi?x").unwrap();
        let r = t.redirect("c.jpg").unwrap();
        assert_eq!(
            (r.authority.as_str(), r.path.as_str()),
            ("h:81", "/a/c.jpg")
        );
        assert!(r.credentials.is_some());
        let r = t.redirect("/d").unwrap();
        assert_eq!(r.path, "/d");
        let r = t.redirect("http://other/e").unwrap();
        assert!(r.credentials.is_none(), "credentials leak to another host");
        let r = t.redirect("//h:81/f").unwrap();
        assert!(r.credentials.is_some());
        assert_eq!(r.path, "/f");
    }

    #[test]
    fn parses_params() {
        let o =
            Options::parse("http://h/x#header=Authorization: Bearer abc#header=X-A:1#timeout=2.5")
                .unwrap();
        assert_eq!(
            o.headers,
            vec![
                ("Authorization".into(), "Bearer abc".into()),
                ("X-A".into(), "1".into())
            ]
        );
        assert_eq!(o.timeout, Duration::from_millis(2500));
        assert_eq!(o.target.path, "/x");
        assert!(Options::parse("http://h/#header=nocolon").is_err());
        assert!(Options::parse("http://h/#header=Bad Name: x").is_err());
        assert!(Options::parse("http://h/#timeout=abc").is_err());
        assert!(Options::parse("http://h/#timeout=0").is_err());
    }
}
