//! `api.tls_listen`: HTTPS for the API with `tls_cert`/`tls_key` given as PEM
//! text or as file paths. Handshakes run concurrently, so one slow client does
//! not hold up the others.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM text when it looks like PEM, else a path to read.
fn pem_bytes(value: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    std::fs::read(value).with_context(|| format!("api: {what} {value}"))
}

pub fn server_config(cert: &str, key: &str) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_pem = pem_bytes(cert, "tls_cert")?;
    let key_pem = pem_bytes(key, "tls_key")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("api: tls_cert: {e}"))?;
    if certs.is_empty() {
        return Err(anyhow!("api: tls_cert: no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| anyhow!("api: tls_key: {e}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("api: tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("api: tls: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A listener of finished TLS connections, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, addr)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(target: "api", remote = %addr, "tls handshake: {e}")
                        }
                        Err(_) => {
                            tracing::debug!(target: "api", remote = %addr, "tls handshake timeout")
                        }
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
