//! Serving the API on TCP, TLS and the unix socket, with bounds a client
//! cannot talk its way around: 5 s to send a request's headers (and the same
//! for the next request on a kept-alive connection), caps on connections
//! that have not sent a request yet (`camrouter_plugin_api::conn`), TLS
//! handshakes under the same caps, and accept errors that back off.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use camrouter_plugin_api::conn::{
    AcceptErrors, AcceptFailure, PendingConns, FIRST_REQUEST_TIMEOUT,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;

use crate::api::RemoteAddr;
use crate::origin::Via;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One listening socket of the API.
pub enum Listener {
    Tcp(TcpListener),
    Tls(TcpListener, TlsAcceptor),
    Unix(UnixListener),
}

/// Accepts connections until the process ends.
pub async fn run(listener: Listener, router: Router) {
    let pending = PendingConns::for_fd_limit();
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) | Listener::Tls(l, _) => {
                l.accept().await.map(|(s, a)| Accepted::Tcp(s, a))
            }
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                match errors.failed(&e) {
                    AcceptFailure::Retry => {}
                    AcceptFailure::Wait { delay, log } => {
                        if let Some(line) = log {
                            tracing::warn!(target: "api", "{line}");
                        }
                        // Out of descriptors: an idle client's is the one to give back.
                        pending.evict_oldest();
                        tokio::time::sleep(delay).await;
                    }
                }
                continue;
            }
        };
        if let Some(line) = errors.ok() {
            tracing::info!(target: "api", "{line}");
        }
        let router = router.clone();
        let pending = pending.clone();
        match (conn, &listener) {
            (Accepted::Tcp(tcp, addr), Listener::Tls(_, acceptor)) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let slot = pending.admit(Some(addr.ip()));
                    let tls = tokio::select! {
                        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
                        _ = slot.evicted() => return,
                    };
                    match tls {
                        Ok(Ok(tls)) => serve(tls, remote(addr, Via::Tls), slot, router).await,
                        Ok(Err(e)) => {
                            tracing::debug!(target: "api", remote = %addr, "tls handshake: {e}")
                        }
                        Err(_) => {
                            tracing::debug!(target: "api", remote = %addr, "tls handshake timeout")
                        }
                    }
                });
            }
            (Accepted::Tcp(tcp, addr), _) => {
                tokio::spawn(async move {
                    let slot = pending.admit(Some(addr.ip()));
                    serve(tcp, remote(addr, Via::Tcp), slot, router).await
                });
            }
            (Accepted::Unix(unix), _) => {
                tokio::spawn(async move {
                    let slot = pending.admit(None::<IpAddr>);
                    serve(unix, RemoteAddr("@".into(), Via::Unix), slot, router).await
                });
            }
        }
    }
}

/// The connection's place among the pending ones, in each of its requests.
#[derive(Clone)]
pub struct Slot(pub Arc<camrouter_plugin_api::conn::Pending>);

enum Accepted {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

fn remote(addr: SocketAddr, via: Via) -> RemoteAddr {
    RemoteAddr(addr.to_string(), via)
}

async fn serve<I>(
    io: I,
    remote: RemoteAddr,
    slot: camrouter_plugin_api::conn::Pending,
    router: Router,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot = Arc::new(slot);
    let first = slot.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Released by `api::dispatch` once a request passes auth: a 401 (or
        // a refusal before auth, a preflight) proves nothing, and a client
        // repeating them within the keep-alive timeout must stay capped.
        req.extensions_mut().insert(Slot(first.clone()));
        req.extensions_mut().insert(ConnectInfo(remote.clone()));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Also the idle time allowed between requests on a kept-alive connection.
        .header_read_timeout(FIRST_REQUEST_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::trace!(target: "api", "connection: {e}");
            }
        }
        _ = slot.evicted() => {}
    }
}
