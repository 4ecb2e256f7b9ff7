//! `api.tls_listen`: HTTPS for the API with `tls_cert`/`tls_key` given as PEM
//! text or as file paths. Handshakes run in each connection's own task
//! (`serve`), so one slow client does not hold up the others.

use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

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
