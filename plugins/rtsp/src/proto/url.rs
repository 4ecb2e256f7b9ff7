//! RTSP URLs: credentials, default ports, request URIs, and joining SDP `a=control`
//! attributes against the presentation base.
//!
//! Joining follows what live555, ffmpeg, go2rtc and retina do rather than RFC 3986: a
//! relative control is *appended* to the base with one `/` between them (Dahua's base
//! `rtsp://h/cam/realmonitor?channel=1&subtype=0/` + `trackID=0` must stay under the query).

use super::auth::Credentials;

/// Percent-decodes userinfo and paths (`+` stays `+`); shared with the host and
/// the other plugins, and pure like the rest of this module.
pub use camrouter_plugin_api::url::percent_decode;

/// URL errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not an RTSP URL: {0:?}")]
    BadScheme(String),
    #[error("missing host in {0:?}")]
    MissingHost(String),
    #[error("bad port in {0:?}")]
    BadPort(String),
    #[error("invalid characters in URL {0:?}")]
    Invalid(String),
}

/// An RTSP URL split into parts.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    /// Lower-cased scheme: `rtsp`, `rtsps` or `rtspx` (TLS without verification, go2rtc).
    pub scheme: String,
    /// Percent-decoded user name, if the URL had userinfo.
    pub username: Option<String>,
    /// Percent-decoded password.
    pub password: Option<String>,
    /// Host as written; IPv6 literals keep their brackets.
    pub host: String,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// Path, query and fragment as written (may be empty).
    pub path: String,
}

impl std::fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("RtspUrl")
            .field("url", &self.request_uri())
            .field("username", &self.username)
            .finish()
    }
}

fn clip(s: &str) -> String {
    // Avoid echoing credentials in errors.
    let s = strip_credentials(s);
    s.chars().take(128).collect()
}

/// Whether `s` starts with `scheme://`.
pub fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => {
            let sch = &s[..i];
            sch.as_bytes()[0].is_ascii_alphabetic()
                && sch
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        _ => false,
    }
}

impl RtspUrl {
    pub fn parse(url: &str) -> Result<RtspUrl, UrlError> {
        let url = url.trim();
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(UrlError::Invalid(clip(url)));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::BadScheme(clip(url)))?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "rtsp" | "rtsps" | "rtspx") {
            return Err(UrlError::BadScheme(clip(url)));
        }
        // Authority ends at the first '/' or '?'; userinfo is split at the last '@' in it
        // (passwords with a raw '@' happen in configs).
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
                None => (Some(percent_decode(ui)), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let close = v6
                .find(']')
                .ok_or_else(|| UrlError::MissingHost(clip(url)))?;
            let host = &hostport[..close + 2];
            let after = &v6[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => p,
                None if after.is_empty() => "",
                None => return Err(UrlError::BadPort(clip(url))),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (hostport, ""),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(UrlError::MissingHost(clip(url)));
        }
        let port = if port.is_empty() {
            None
        } else {
            Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| UrlError::BadPort(clip(url)))?,
            )
        };
        Ok(RtspUrl {
            scheme,
            username,
            password,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// 554 for `rtsp`, 322 for `rtsps`/`rtspx`.
    pub fn default_port(&self) -> u16 {
        if self.scheme == "rtsp" {
            554
        } else {
            322
        }
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.default_port())
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme != "rtsp"
    }

    /// `host:port` to connect to (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port_or_default())
    }

    /// The credentials from the userinfo (user with an empty password if none given).
    pub fn credentials(&self) -> Option<Credentials> {
        let u = self.username.as_ref()?;
        Some(Credentials::new(
            u.clone(),
            self.password.clone().unwrap_or_default(),
        ))
    }

    /// The URL without credentials, as sent in requests. An explicit port is kept even if
    /// it is the default (servers compare URIs textually).
    pub fn request_uri(&self) -> String {
        let mut s = format!("{}://{}", self.scheme, self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s.push_str(&self.path);
        s
    }
}

/// Removes `user:pass@` from a URL string (any scheme); other strings are returned as is.
pub fn strip_credentials(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[i + 3..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..i + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Joins an SDP `a=control` value against the base URL (see the module docs):
/// absolute controls replace the base, `*` and empty give the base, others are appended
/// with exactly one `/` between.
pub fn join_control(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if has_scheme(control) {
        return control.to_string();
    }
    match (base.ends_with('/'), control.starts_with('/')) {
        (true, true) => format!("{base}{}", &control[1..]),
        (false, false) => format!("{base}/{control}"),
        _ => format!("{base}{control}"),
    }
}

/// The base URL for a DESCRIBE reply (RFC 2326 C.1.1): `Content-Base`, else
/// `Content-Location`, else the request URL. A scheme-less value (`192.168.1.2/live/`,
/// seen on Anjvision) gets the request's scheme; a path-only value (`/live/`) gets the
/// request's scheme and authority. Credentials are stripped.
pub fn base_url(
    content_base: Option<&str>,
    content_location: Option<&str>,
    request_url: &str,
) -> String {
    let request_url = strip_credentials(request_url);
    let value = content_base
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .or(content_location.map(str::trim).filter(|v| !v.is_empty()));
    let Some(v) = value else {
        return request_url;
    };
    if has_scheme(v) {
        return strip_credentials(v);
    }
    let (scheme, rest) = request_url
        .split_once("://")
        .unwrap_or(("rtsp", request_url.as_str()));
    if v.starts_with('/') {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        format!("{scheme}://{}{v}", &rest[..end])
    } else {
        strip_credentials(&format!("{scheme}://{v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_with_credentials() {
        let u = RtspUrl::parse(
            "rtsp://admin:p%40ss%3Aw@rd@192.168.1.10/Streaming/Channels/101?transportmode=unicast",
        )
        .unwrap();
        assert_eq!(u.username.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w@rd"));
        assert_eq!(u.host, "192.168.1.10");
        assert_eq!(u.port_or_default(), 554);
        assert_eq!(
            u.request_uri(),
            "rtsp://192.168.1.10/Streaming/Channels/101?transportmode=unicast"
        );
        assert_eq!(u.credentials().unwrap().password, "p@ss:w@rd");
        assert!(!format!("{u:?}").contains("rd@"));
    }

    #[test]
    fn ports_and_schemes() {
        let u = RtspUrl::parse("rtsps://cam:8322/x").unwrap();
        assert_eq!(
            (u.port, u.default_port(), u.is_tls()),
            (Some(8322), 322, true)
        );
        assert_eq!(
            RtspUrl::parse("RTSPS://cam").unwrap().port_or_default(),
            322
        );
        let u = RtspUrl::parse("rtsp://[fe80::1]:8554/live").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[fe80::1]", Some(8554)));
        assert_eq!(u.host_port(), "[fe80::1]:8554");
        assert_eq!(
            RtspUrl::parse("rtsp://[::1]").unwrap().port_or_default(),
            554
        );
        assert_eq!(
            RtspUrl::parse("rtsp://h:554/a").unwrap().request_uri(),
            "rtsp://h:554/a"
        );
        assert_eq!(RtspUrl::parse("rtsp://h:/a").unwrap().port, None);
        assert!(matches!(
            RtspUrl::parse("http://h/"),
            Err(UrlError::BadScheme(_))
        ));
        assert!(matches!(
            RtspUrl::parse("rtsp://h:99999/"),
            Err(UrlError::BadPort(_))
        ));
        assert!(matches!(
            RtspUrl::parse("rtsp://user@/"),
            Err(UrlError::MissingHost(_))
        ));
        assert!(matches!(
            RtspUrl::parse("rtsp://h/a b"),
            Err(UrlError::Invalid(_))
        ));
        assert!(RtspUrl::parse("rtsp://[::1/").is_err());
        assert!(RtspUrl::parse("rtsp://[::1]x/").is_err());
        // No password: user only.
        let u = RtspUrl::parse("rtsp://user@h").unwrap();
        assert_eq!(u.credentials().unwrap().password, "");
    }

    #[test]
    fn strip() {
        assert_eq!(strip_credentials("rtsp://u:p@h/x@y"), "rtsp://h/x@y");
        assert_eq!(strip_credentials("rtsp://h/x"), "rtsp://h/x");
        assert_eq!(strip_credentials("trackID=1"), "trackID=1");
    }

    #[test]
    fn join() {
        let b = "rtsp://h/live";
        assert_eq!(join_control(b, "trackID=1"), "rtsp://h/live/trackID=1");
        assert_eq!(
            join_control("rtsp://h/live/", "trackID=1"),
            "rtsp://h/live/trackID=1"
        );
        assert_eq!(
            join_control("rtsp://h/live/", "/trackID=1"),
            "rtsp://h/live/trackID=1"
        );
        assert_eq!(join_control(b, "/trackID=1"), "rtsp://h/live/trackID=1");
        assert_eq!(join_control(b, "*"), b);
        assert_eq!(join_control(b, ""), b);
        assert_eq!(
            join_control(b, "rtsp://10.0.0.2:554/axis-media/media.amp/trackID=1"),
            "rtsp://10.0.0.2:554/axis-media/media.amp/trackID=1"
        );
        assert_eq!(
            join_control("rtsp://h/cam/realmonitor?channel=1&subtype=0/", "trackID=0"),
            "rtsp://h/cam/realmonitor?channel=1&subtype=0/trackID=0"
        );
    }

    #[test]
    fn base_selection() {
        let req = "rtsp://u:p@h:554/live";
        assert_eq!(base_url(None, None, req), "rtsp://h:554/live");
        assert_eq!(
            base_url(Some("rtsp://h/b/"), Some("rtsp://h/c/"), req),
            "rtsp://h/b/"
        );
        assert_eq!(base_url(None, Some("rtsp://h/c/"), req), "rtsp://h/c/");
        assert_eq!(base_url(Some("  "), None, req), "rtsp://h:554/live");
        assert_eq!(
            base_url(Some("192.168.1.2/live/"), None, req),
            "rtsp://192.168.1.2/live/"
        );
        assert_eq!(base_url(Some("/other/"), None, req), "rtsp://h:554/other/");
        assert_eq!(base_url(Some("rtsp://x:y@h/b/"), None, req), "rtsp://h/b/");
    }
}
