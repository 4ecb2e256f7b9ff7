//! RTSP over WebSocket (`#transport=ws://…`, as some Axis and Dahua cameras
//! offer): the RTSP byte stream travels in binary WebSocket messages. This
//! adapter makes the socket look like a TCP stream to the client.
//!
//! `wss://` verifies the server's certificate like `rtsps://`; `wsx://` is TLS
//! without the check, the same `x` convention go2rtc uses (its WebSocket dial
//! turns `wsx://` into its no-verify `httpx://`).

use camrouter_plugin_api::secret::mask;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode, Uri};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::client::Io;
use crate::proto::auth::{
    basic_authorization, select_challenge, AuthError, Challenge, ClientAuth, Credentials,
};
use crate::proto::url::percent_decode;
use crate::random;

/// How the WebSocket connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `ws://`
    Plain,
    /// `wss://`: TLS, certificate verified against the webpki roots.
    Tls,
    /// `wsx://`: TLS, any certificate accepted.
    TlsNoVerify,
}

/// A parsed `#transport=ws://…` / `wss://…` / `wsx://…` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub security: Security,
    /// Without IPv6 brackets: what is dialled and what TLS checks.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// The request target (path and query), also the Digest `uri`.
    pub path: String,
    /// For the upgrade request only; the RTSP URL carries RTSP's own.
    pub credentials: Option<Credentials>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("rtsp: #transport={}: {why}", mask(url));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a ws://, wss:// or wsx:// URL"))?;
        let (security, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "ws" => (Security::Plain, 80),
            "wss" => (Security::Tls, 443),
            "wsx" => (Security::TlsNoVerify, 443),
            _ => return Err(bad("only ws://, wss:// and wsx:// are supported")),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            _ => path.to_string(),
        };
        // The last `@`: a password may hold an unescaped one.
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| bad("bad port"));
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, parse_port(p)?),
                None if after.is_empty() => (h, default_port),
                None => return Err(bad("bad host")),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, parse_port(p)?),
                None => (hostport, default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let credentials = userinfo.map(|ui| {
            let (u, p) = ui.split_once(':').unwrap_or((ui, ""));
            Credentials::new(percent_decode(u), percent_decode(p))
        });
        let t = Target {
            security,
            host: host.to_string(),
            port,
            authority: hostport.to_string(),
            path,
            credentials,
        };
        // Refuse at config time what the handshake would refuse later.
        t.request_url()
            .parse::<Uri>()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(t)
    }

    /// The URL without credentials, for the request line, `Host` and messages.
    pub fn uri(&self) -> String {
        let scheme = match self.security {
            Security::Plain => "ws",
            Security::Tls => "wss",
            Security::TlsNoVerify => "wsx",
        };
        format!("{scheme}://{}{}", self.authority, self.path)
    }

    /// What the handshake is given: it takes the path and `Host` from it;
    /// TLS, if any, is already set up by then.
    fn request_url(&self) -> String {
        let scheme = match self.security {
            Security::Plain => "ws",
            Security::Tls | Security::TlsNoVerify => "wss",
        };
        format!("{scheme}://{}{}", self.authority, self.path)
    }

    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why an upgrade answered 401 ends the attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeAuthError {
    #[error("401 Unauthorized: the server wants credentials (ws://user:pass@host/…)")]
    NoCredentials,
    #[error("401 Unauthorized: wrong user or password")]
    Rejected,
    #[error("401 Unauthorized: {0}")]
    Unsupported(AuthError),
}

/// Authorization for the upgrade: Basic up front when there are credentials
/// (as go2rtc's HTTP client does), then at most one Digest retry when the 401
/// asks for Digest. Sans-IO so the choice is testable without a server.
pub struct UpgradeAuth {
    creds: Option<Credentials>,
    cnonce: String,
    digest_sent: bool,
}

impl UpgradeAuth {
    pub fn new(creds: Option<Credentials>, cnonce: impl Into<String>) -> Self {
        UpgradeAuth {
            creds,
            cnonce: cnonce.into(),
            digest_sent: false,
        }
    }

    /// The `Authorization` value of the first attempt.
    pub fn first(&self) -> Option<String> {
        self.creds.as_ref().map(basic_authorization)
    }

    /// After a 401 with these `WWW-Authenticate` values: the `Authorization`
    /// for the next attempt on `uri` (the request target), or why there is none.
    pub fn on_unauthorized<'a>(
        &mut self,
        www_authenticate: impl IntoIterator<Item = &'a str>,
        uri: &str,
    ) -> Result<String, UpgradeAuthError> {
        let creds = self.creds.clone().ok_or(UpgradeAuthError::NoCredentials)?;
        if self.digest_sent {
            return Err(UpgradeAuthError::Rejected);
        }
        let values: Vec<&str> = www_authenticate.into_iter().collect();
        match select_challenge(values.iter().copied()) {
            Some(c @ Challenge::Digest(_)) => {
                let mut auth = ClientAuth::new(creds, c, self.cnonce.clone())
                    .map_err(UpgradeAuthError::Unsupported)?;
                self.digest_sent = true;
                Ok(auth.authorization("GET", uri))
            }
            // Basic was the first attempt already.
            Some(_) => Err(UpgradeAuthError::Rejected),
            None => Err(UpgradeAuthError::Unsupported(
                AuthError::NoSupportedChallenge(values.join(", ")),
            )),
        }
    }
}

pub struct WsIo {
    ws: WebSocketStream<Box<dyn Io>>,
    /// The rest of the last binary message not read yet.
    pending: Vec<u8>,
    offset: usize,
}

/// Connects to `target`, retrying the upgrade once with Digest when a 401
/// asks for it (go2rtc #415: cameras that want Digest on the WebSocket).
pub async fn connect(target: &Target, timeout: Duration) -> Result<WsIo, String> {
    let mut auth = UpgradeAuth::new(target.credentials.clone(), random::hex(8));
    let mut authorization = auth.first();
    loop {
        match handshake(target, authorization.as_deref(), timeout).await? {
            Ok(ws) => {
                return Ok(WsIo {
                    ws,
                    pending: Vec::new(),
                    offset: 0,
                })
            }
            Err(challenges) => {
                let next = auth
                    .on_unauthorized(challenges.iter().map(String::as_str), &target.path)
                    .map_err(|e| format!("rtsp: ws upgrade {}: {e}", target.uri()))?;
                authorization = Some(next);
            }
        }
    }
}

/// One dial and upgrade. `Ok(Err(challenges))` is a 401 with its
/// `WWW-Authenticate` values; every other failure is an error.
async fn handshake(
    target: &Target,
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<Result<WebSocketStream<Box<dyn Io>>, Vec<String>>, String> {
    let addr = target.host_port();
    let tcp = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| format!("rtsp: ws dial {addr}: timeout"))?
    .map_err(|e| format!("rtsp: ws dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match target.security {
        Security::Plain => Box::new(tcp),
        Security::Tls | Security::TlsNoVerify => {
            let insecure = target.security == Security::TlsNoVerify;
            let tls = camrouter_plugin_api::tls::connect(tcp, &target.host, insecure);
            let tls = tokio::time::timeout(timeout, tls)
                .await
                .map_err(|_| format!("rtsp: ws tls {addr}: timeout"))?
                .map_err(|e| format!("rtsp: {e} ({})", target.uri()))?;
            Box::new(tls)
        }
    };
    let mut req = target
        .request_url()
        .into_client_request()
        .map_err(|e| format!("rtsp: ws {}: {e}", target.uri()))?;
    // Axis cameras want the `binary` subprotocol.
    req.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("binary"),
    );
    if let Some(a) = authorization {
        let v = HeaderValue::from_str(a).map_err(|e| format!("rtsp: ws authorization: {e}"))?;
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
    let res = tokio::time::timeout(timeout, tokio_tungstenite::client_async(req, io))
        .await
        .map_err(|_| format!("rtsp: ws upgrade {}: timeout", target.uri()))?;
    match res {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(WsError::Http(r)) if r.status() == StatusCode::UNAUTHORIZED => Ok(Err(r
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect())),
        Err(WsError::Http(r)) => Err(format!(
            "rtsp: ws upgrade {}: server answered {}",
            target.uri(),
            r.status()
        )),
        Err(e) => Err(format!("rtsp: ws upgrade {}: {e}", target.uri())),
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.offset < self.pending.len() {
                let n = (self.pending.len() - self.offset).min(buf.remaining());
                let start = self.offset;
                buf.put_slice(&self.pending[start..start + n]);
                self.offset += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => {
                    self.pending = b.to_vec();
                    self.offset = 0;
                }
                Some(Ok(Message::Text(t))) => {
                    self.pending = t.as_bytes().to_vec();
                    self.offset = 0;
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(data.to_vec().into()))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::ServerAuth;

    fn creds(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials::new(u, p))
    }

    #[test]
    fn parses_schemes_ports_and_credentials() {
        let t = Target::parse("ws://u%40x:p:w@cam:8080/rtsp-over-websocket?ch=1").unwrap();
        assert_eq!(t.security, Security::Plain);
        assert_eq!((t.host.as_str(), t.port), ("cam", 8080));
        assert_eq!(t.path, "/rtsp-over-websocket?ch=1");
        assert_eq!(t.credentials, creds("u@x", "p:w"));
        assert_eq!(t.uri(), "ws://cam:8080/rtsp-over-websocket?ch=1");
        assert_eq!(t.request_url(), t.uri());

        let t = Target::parse("wss://cam.example/ws").unwrap();
        assert_eq!(
            (t.security, t.port, t.credentials.clone()),
            (Security::Tls, 443, None)
        );
        assert_eq!(t.request_url(), "wss://cam.example/ws");

        let t = Target::parse("WSX://a:b@[::1]:9443").unwrap();
        assert_eq!(t.security, Security::TlsNoVerify);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9443, "/")
        );
        assert_eq!(t.host_port(), "[::1]:9443");
        // No TLS-less scheme reaches the handshake for wsx.
        assert_eq!(t.request_url(), "wss://[::1]:9443/");
        assert_eq!(t.uri(), "wsx://[::1]:9443/", "credentials never shown");

        assert_eq!(Target::parse("ws://cam").unwrap().port, 80);
        assert_eq!(Target::parse("ws://cam?x=1").unwrap().path, "/?x=1");
        assert_eq!(
            Target::parse("ws://u@cam/").unwrap().credentials,
            creds("u", "")
        );
    }

    #[test]
    fn refuses_bad_targets_without_showing_the_password() {
        for bad in [
            "http://cam/ws",
            "ws:/cam",
            "ws://",
            "ws://u:p@/x",
            "ws://cam:99999/",
            "ws://cam:/",
            "ws://[::1/",
            "ws://[::1]x/",
            "ws://cam/a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let e = Target::parse("ws://user:secret@cam:x/").unwrap_err();
        assert!(!e.contains("secret") && e.contains("***@cam:x"), "{e}");
    }

    #[test]
    fn basic_first_then_digest_once() {
        let server = ServerAuth::new("cam", Credentials::new("admin", "s3cret"));
        let mut a = UpgradeAuth::new(creds("admin", "s3cret"), "0a1b2c3d");
        let basic = a.first().unwrap();
        assert_eq!(server.verify(Some(&basic), "GET", "/ws?ch=1", None), Ok(()));

        let challenge = server.digest_challenge("n0nce");
        let digest = a.on_unauthorized([challenge.as_str()], "/ws?ch=1").unwrap();
        assert!(
            digest.starts_with("Digest ") && digest.contains("uri=\"/ws?ch=1\""),
            "{digest}"
        );
        assert_eq!(
            server.verify(Some(&digest), "GET", "/ws?ch=1", Some("n0nce")),
            Ok(())
        );

        // A second 401 means the password is wrong: no loop.
        assert_eq!(
            a.on_unauthorized([challenge.as_str()], "/ws?ch=1"),
            Err(UpgradeAuthError::Rejected)
        );
    }

    #[test]
    fn digest_with_qop_and_several_challenges() {
        // What the e2e bridge and many cameras send: qop=auth, next to Basic.
        let server = ServerAuth::new("cam", Credentials::new("admin", "s3cret"));
        let mut a = UpgradeAuth::new(creds("admin", "s3cret"), "c0ffee");
        let digest = a
            .on_unauthorized(
                [
                    r#"Basic realm="cam""#,
                    r#"Digest realm="cam", nonce="abc", qop="auth""#,
                ],
                "/",
            )
            .unwrap();
        assert!(
            digest.contains("qop=auth") && digest.contains("nc=00000001"),
            "{digest}"
        );
        assert_eq!(
            server.verify(Some(&digest), "GET", "/", Some("abc")),
            Ok(())
        );
    }

    #[test]
    fn unauthorized_without_a_way_forward() {
        let mut none = UpgradeAuth::new(None, "x");
        assert_eq!(none.first(), None);
        assert_eq!(
            none.on_unauthorized([r#"Digest realm="r", nonce="n""#], "/"),
            Err(UpgradeAuthError::NoCredentials)
        );

        // Basic was already sent: a Basic challenge means wrong credentials.
        let mut a = UpgradeAuth::new(creds("u", "p"), "x");
        assert_eq!(
            a.on_unauthorized([r#"Basic realm="r""#], "/"),
            Err(UpgradeAuthError::Rejected)
        );

        let mut a = UpgradeAuth::new(creds("u", "p"), "x");
        let e = a.on_unauthorized(["Bearer realm=\"r\""], "/").unwrap_err();
        assert!(matches!(e, UpgradeAuthError::Unsupported(_)), "{e:?}");
        assert!(e.to_string().contains("Bearer"), "{e}");
        let e = a.on_unauthorized([], "/").unwrap_err();
        assert!(matches!(e, UpgradeAuthError::Unsupported(_)), "{e:?}");
    }
}
