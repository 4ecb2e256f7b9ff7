//! GET with what cameras need: Basic/Digest answers to a 401, bounded
//! redirects, extra headers, timeouts, and a kept-alive connection for
//! snapshot polling.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use camrouter_plugin_api::auth::ClientAuth;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, HOST, LOCATION, USER_AGENT, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::target::{Options, Target};

/// Go's http.Client stops after 10 redirects; so do we.
pub const MAX_REDIRECTS: usize = 10;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TCP (and TLS for `https`/`httpx`) to the target, within `timeout`.
pub async fn dial(target: &Target, timeout: Duration) -> Result<(Box<dyn Io>, SocketAddr), String> {
    let addr = &target.authority;
    let tcp = tokio::time::timeout(
        timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| format!("dial {addr}: timeout"))?
    .map_err(|e| format!("dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(|e| format!("dial {addr}: {e}"))?;
    if !target.scheme.tls() {
        return Ok((Box::new(tcp), peer));
    }
    let insecure = target.scheme == crate::target::Scheme::Httpx;
    let tls = camrouter_plugin_api::tls::connect(tcp, &target.host, insecure);
    let tls = tokio::time::timeout(timeout, tls)
        .await
        .map_err(|_| format!("{addr}: tls: timeout"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok((Box::new(tls), peer))
}

/// A response whose body is still to be read.
pub struct Response {
    pub headers: HeaderMap,
    pub body: Incoming,
    pub remote_addr: SocketAddr,
    /// After redirects: where the body comes from.
    pub target: Target,
}

impl Response {
    /// The media type of `Content-Type`, lower case, without parameters.
    pub fn content_type(&self) -> String {
        self.headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// The next piece of the body; `None` at its end. A silence longer than
    /// `timeout` is an error.
    pub async fn chunk(&mut self, timeout: Duration) -> Result<Option<Bytes>, String> {
        loop {
            let frame = tokio::time::timeout(timeout, self.body.frame())
                .await
                .map_err(|_| format!("no data for {:.1}s", timeout.as_secs_f32()))?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

struct Connection {
    /// Scheme, host and port it was dialled for.
    key: (crate::target::Scheme, String, u16),
    sender: SendRequest<Empty<Bytes>>,
    remote_addr: SocketAddr,
}

/// GETs one source's URL, again and again for a snapshot camera.
pub struct Client {
    headers: Vec<(String, String)>,
    timeout: Duration,
    auth: Option<ClientAuth>,
    conn: Option<Connection>,
}

impl Client {
    pub fn new(opts: &Options) -> Client {
        Client {
            headers: opts.headers.clone(),
            timeout: opts.timeout,
            auth: None,
            conn: None,
        }
    }

    async fn connection(&mut self, target: &Target) -> Result<(), String> {
        let key = (target.scheme, target.host.clone(), target.port);
        if let Some(c) = &mut self.conn {
            if c.key == key && c.sender.ready().await.is_ok() {
                return Ok(());
            }
        }
        self.conn = None;
        let (io, remote_addr) = dial(target, self.timeout).await?;
        let (sender, conn) = tokio::time::timeout(
            self.timeout,
            hyper::client::conn::http1::handshake(TokioIo::new(io)),
        )
        .await
        .map_err(|_| "handshake: timeout".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
        // Ends when the server closes or when the sender and every body
        // of this connection are dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.conn = Some(Connection {
            key,
            sender,
            remote_addr,
        });
        Ok(())
    }

    /// GET `target`, answering one 401 with its credentials and following
    /// redirects. Errors carry the status (`401 Unauthorized`), which the
    /// host reads to tell lasting failures from passing ones.
    pub async fn get(&mut self, target: &Target) -> Result<Response, String> {
        let mut target = target.clone();
        let mut redirects = 0;
        let mut challenged = false;
        loop {
            self.connection(&target).await?;
            let own_auth = self
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            let mut req = Request::get(target.path.as_str())
                .header(HOST, target.authority.as_str())
                .header(USER_AGENT, concat!("camrouter/", env!("CARGO_PKG_VERSION")));
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if let (Some(auth), false) = (&mut self.auth, own_auth) {
                let value = auth.authorization("GET", &target.path);
                let value =
                    HeaderValue::from_str(&value).map_err(|_| "bad credentials".to_string())?;
                req = req.header(AUTHORIZATION, value);
            }
            let req = req
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let Some(conn) = &mut self.conn else {
                return Err("no connection".into());
            };
            let remote_addr = conn.remote_addr;
            let res = tokio::time::timeout(self.timeout, conn.sender.send_request(req))
                .await
                .map_err(|_| format!("no answer for {:.1}s", self.timeout.as_secs_f32()))?
                .map_err(|e| format!("request: {e}"));
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            };
            let status = res.status();
            if status == StatusCode::UNAUTHORIZED && !challenged && !own_auth {
                if let Some(creds) = target.credentials.clone() {
                    challenged = true;
                    let values: Vec<String> = res
                        .headers()
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok().map(str::to_string))
                        .collect();
                    self.auth = Some(
                        ClientAuth::from_www_authenticate(
                            creds,
                            values.iter().map(String::as_str),
                            random_hex(8),
                        )
                        .map_err(|e| format!("401 Unauthorized: {e}"))?,
                    );
                    // The 401's body is not wanted; a fresh connection is
                    // simpler than reading it out.
                    self.conn = None;
                    continue;
                }
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(format!("too many redirects (over {MAX_REDIRECTS})"));
                }
                let location = res
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{status}: redirect without Location"))?
                    .to_string();
                let next = target.redirect(&location)?;
                if next.host != target.host || next.port != target.port {
                    self.auth = None;
                }
                target = next;
                challenged = false;
                self.conn = None;
                continue;
            }
            if !status.is_success() {
                self.conn = None;
                return Err(status.to_string());
            }
            let (parts, body) = res.into_parts();
            return Ok(Response {
                headers: parts.headers,
                body,
                remote_addr,
                target,
            });
        }
    }
}

/// A client nonce for Digest's `qop=auth`.
fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
