//! `onvif://user:pass@host[:port][/path][?subtype=NAME][&snapshot][#…]` and
//! the URL a device's answer turns into.

use camrouter_plugin_api::url::{percent_decode, query_pairs};

/// ONVIF's well-known device service path (Core spec §5.1.1).
pub const DEVICE_PATH: &str = "/onvif/device_service";
const MEDIA_PATH: &str = "/onvif/media_service";

/// Schemes a device's stream or snapshot URI may have. Anything else (a
/// hostile device answering `exec:…` or `ffmpeg:…`) is refused: the URI
/// is opened by the host without the checks a client's URL goes through.
const OPENABLE: &[&str] = &["rtsp", "rtsps", "http", "https"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnvifUrl {
    /// `user:pass` exactly as written (still percent-encoded), for the
    /// stream URL the device answers with.
    pub userinfo: Option<String>,
    pub user: String,
    pub password: String,
    /// `host:port` as written; `host` without brackets.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// The device service path (and query, minus ours).
    pub path: String,
    pub subtype: String,
    pub snapshot: bool,
    /// `#…` kept for the URL the device answers with (go2rtc does the same).
    pub fragment: String,
}

impl OnvifUrl {
    pub fn parse(url: &str) -> Result<OnvifUrl, String> {
        let rest = url
            .strip_prefix("onvif://")
            .ok_or_else(|| "onvif: bad url: must start with onvif://".to_string())?;
        let (rest, fragment) = match rest.find('#') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, String::new()),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err("onvif: bad url: no host".into());
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("onvif: bad url: whitespace".into());
        }
        let (user, password) = match userinfo {
            Some(u) => {
                let (n, p) = u.split_once(':').unwrap_or((u, ""));
                (percent_decode(n), percent_decode(p))
            }
            None => (String::new(), String::new()),
        };
        let mut subtype = String::new();
        let mut snapshot = false;
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "subtype" => subtype = v,
                "snapshot" => snapshot = true,
                _ => {}
            }
        }
        Ok(OnvifUrl {
            userinfo: userinfo.filter(|u| !u.is_empty()).map(str::to_string),
            user,
            password,
            authority: hostport.to_string(),
            host: host.to_string(),
            port,
            path: if path.is_empty() || path == "/" {
                DEVICE_PATH.to_string()
            } else {
                path.to_string()
            },
            subtype,
            snapshot,
            fragment,
        })
    }

    pub fn credentials(&self) -> Option<(&str, &str)> {
        (!self.user.is_empty()).then_some((self.user.as_str(), self.password.as_str()))
    }

    /// Without its subtype and snapshot (`/api/onvif?src=` lists the
    /// profiles of this).
    pub fn base(&self) -> String {
        let mut s = String::from("onvif://");
        if let Some(u) = &self.userinfo {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.authority);
        if self.path != DEVICE_PATH {
            s.push_str(&self.path);
        }
        s
    }

    /// The path (and query) of a service at `xaddr` on *this* device: cameras
    /// behind NAT or with several interfaces report addresses we cannot
    /// reach, so only the path of their XAddr is used, as go2rtc does.
    pub fn service_path(xaddr: &str) -> String {
        let x = xaddr.trim();
        let path = match x.find("://") {
            Some(i) => x[i + 3..].find('/').map_or("", |p| &x[i + 3 + p..]),
            None if x.starts_with('/') => x,
            None => "",
        };
        if path.is_empty() || path == "/" {
            MEDIA_PATH.to_string()
        } else {
            path.to_string()
        }
    }

    /// The URL to open for a device's stream (or snapshot) URI: only the
    /// schemes we relay, our credentials inserted when it has none, a
    /// `0.0.0.0` host (firmware that reports its bind address) replaced by
    /// the device's, and our `#…` appended.
    pub fn resolve(&self, uri: &str) -> Result<String, String> {
        let uri = uri.trim();
        let scheme = uri.split_once(':').map_or("", |(s, _)| s);
        let scheme_lc = scheme.to_ascii_lowercase();
        if !OPENABLE.contains(&scheme_lc.as_str()) {
            return Err(format!(
                "onvif: the device answered a URI of scheme {scheme:?}; only {} are opened",
                OPENABLE.join(", ")
            ));
        }
        let Some(rest) = uri[scheme.len() + 1..].strip_prefix("//") else {
            return Err(format!(
                "onvif: the device answered an unusable URI {uri:?}"
            ));
        };
        if uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
        {
            return Err(format!(
                "onvif: the device answered an unusable URI {uri:?}"
            ));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (theirs, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let device_host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let hostport = match hostport.strip_prefix("0.0.0.0") {
            Some(port) if port.is_empty() || port.starts_with(':') => {
                format!("{device_host}{port}")
            }
            _ if hostport.is_empty() => device_host,
            _ => hostport.to_string(),
        };
        let mut out = format!("{scheme_lc}://");
        match (theirs, &self.userinfo) {
            (Some(t), _) => {
                out.push_str(t);
                out.push('@');
            }
            (None, Some(ours)) => {
                out.push_str(ours);
                out.push('@');
            }
            (None, None) => {}
        }
        out.push_str(&hostport);
        out.push_str(tail);
        out.push_str(&self.fragment);
        Ok(out)
    }
}

/// `host[:port]` or `[v6][:port]`; port 80 when absent.
fn split_host_port(s: &str) -> Result<(&str, u16), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("onvif: bad url: host {s:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("onvif: bad url: port {p:?}"))?,
            None => 80,
        };
        return Ok((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((
            h,
            p.parse()
                .map_err(|_| format!("onvif: bad url: port {p:?}"))?,
        )),
        None => Ok((s, 80)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go2rtc_urls() {
        let u =
            OnvifUrl::parse("onvif://admin:p%40ss@192.168.1.10:8000?subtype=Profile_2").unwrap();
        assert_eq!((u.user.as_str(), u.password.as_str()), ("admin", "p@ss"));
        assert_eq!(u.userinfo.as_deref(), Some("admin:p%40ss"));
        assert_eq!((u.host.as_str(), u.port), ("192.168.1.10", 8000));
        assert_eq!(u.path, DEVICE_PATH);
        assert_eq!(u.subtype, "Profile_2");
        assert!(!u.snapshot);
        assert_eq!(u.base(), "onvif://admin:p%40ss@192.168.1.10:8000");

        let u = OnvifUrl::parse("onvif://[fe80::1]/onvif/device?subtype=1&snapshot#backchannel=0")
            .unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fe80::1", 80));
        assert_eq!(u.path, "/onvif/device");
        assert!(u.snapshot);
        assert_eq!(u.fragment, "#backchannel=0");
        assert!(u.credentials().is_none());

        assert!(OnvifUrl::parse("onvif://").is_err());
        assert!(OnvifUrl::parse("onvif://host:99999").is_err());
        assert!(OnvifUrl::parse("rtsp://host").is_err());
    }

    #[test]
    fn service_path_keeps_only_the_path() {
        assert_eq!(
            OnvifUrl::service_path("http://10.0.0.5/onvif/Media"),
            "/onvif/Media"
        );
        assert_eq!(
            OnvifUrl::service_path(" http://0.0.0.0:8080/onvif/media_service "),
            "/onvif/media_service"
        );
        assert_eq!(OnvifUrl::service_path("http://10.0.0.5"), MEDIA_PATH);
        assert_eq!(OnvifUrl::service_path(""), MEDIA_PATH);
    }

    #[test]
    fn resolve_inserts_credentials_and_refuses_other_schemes() {
        let u = OnvifUrl::parse("onvif://u:p%2F1@127.0.0.1:8080#media=video").unwrap();
        assert_eq!(
            u.resolve(" rtsp://127.0.0.1:554/Streaming/Channels/101?transportmode=unicast\n")
                .unwrap(),
            "rtsp://u:p%2F1@127.0.0.1:554/Streaming/Channels/101?transportmode=unicast#media=video"
        );
        // The device's own credentials win; 0.0.0.0 becomes the device.
        assert_eq!(
            u.resolve("rtsp://x:y@0.0.0.0:554/live").unwrap(),
            "rtsp://x:y@127.0.0.1:554/live#media=video"
        );
        assert_eq!(
            u.resolve("RTSP://0.0.0.0/live").unwrap(),
            "rtsp://u:p%2F1@127.0.0.1/live#media=video"
        );
        for bad in [
            "exec:touch /tmp/x",
            "ffmpeg:rtsp://x#raw=-y",
            "echo://x",
            "file:///etc/passwd",
            "rtsp://a b/c",
            "rtsp://a/b#exec",
        ] {
            assert!(u.resolve(bad).is_err(), "{bad}");
        }
    }
}
