//! RTSP over WebSocket (`#transport=ws://…`, as some Axis and Dahua cameras
//! offer): the RTSP byte stream travels in binary WebSocket messages. This
//! adapter makes the socket look like a TCP stream to the client.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use base64::Engine as _;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::proto::url::percent_decode;

pub struct WsIo {
    ws: WebSocketStream<TcpStream>,
    /// The rest of the last binary message not read yet.
    pending: Vec<u8>,
    offset: usize,
}

/// Connects `ws://[user:pass@]host[:port]/path`; credentials go as Basic auth
/// on the upgrade request (the RTSP session has its own).
pub async fn connect(url: &str, timeout: std::time::Duration) -> Result<WsIo, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("rtsp: #transport: only ws:// is supported, got {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let addr = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("rtsp: ws dial {addr}: timeout"))?
        .map_err(|e| format!("rtsp: ws dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{hostport}{path}")
        .into_client_request()
        .map_err(|e| format!("rtsp: ws: {e}"))?;
    // Axis cameras want the `binary` subprotocol.
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    if let Some(ui) = userinfo {
        let (u, p) = ui.split_once(':').unwrap_or((ui, ""));
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            percent_decode(u),
            percent_decode(p)
        ));
        if let Ok(v) = HeaderValue::from_str(&format!("Basic {token}")) {
            req.headers_mut().insert("Authorization", v);
        }
    }
    let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::client_async(req, tcp))
        .await
        .map_err(|_| "rtsp: ws handshake: timeout".to_string())?
        .map_err(|e| format!("rtsp: ws handshake: {e}"))?;
    Ok(WsIo {
        ws,
        pending: Vec::new(),
        offset: 0,
    })
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
