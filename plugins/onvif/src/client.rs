//! The device as a SOAP peer: one HTTP POST per call (ONVIF calls are a
//! handful per source start), WS-Security on every request, and HTTP
//! Digest/Basic on top when the device asks for it with a 401 (newer
//! Hikvision and Axis firmware do).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use camrouter_plugin_api::auth::{ClientAuth, Credentials};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::address::OnvifUrl;
use crate::soap::{self, Profile, SoapError};
use crate::xml::{Element, MAX_BYTES};

/// Per call: connect, send, and read the whole answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A device clock further off than this from ours is followed in the
/// UsernameToken's `Created` (cameras commonly allow 5 minutes or less).
const MAX_SKEW_MS: i64 = 30_000;

pub struct Device {
    pub url: OnvifUrl,
    timeout: Duration,
    /// The device's clock minus ours, once a refused token made us ask.
    skew_ms: AtomicI64,
    /// HTTP Digest/Basic state once the device asked for it: later calls
    /// send it at once instead of meeting a 401 each.
    http_auth: Mutex<Option<ClientAuth>>,
}

impl Device {
    pub fn new(url: OnvifUrl) -> Device {
        Device {
            url,
            timeout: CALL_TIMEOUT,
            skew_ms: AtomicI64::new(0),
            http_auth: Mutex::new(None),
        }
    }

    fn where_(&self, path: &str) -> String {
        format!("http://{}{}", self.url.authority, path)
    }

    /// POSTs `body` in an envelope to `path` on the device and reads the answer.
    pub async fn call(&self, path: &str, body: &str) -> Result<Element, String> {
        self.call_as(path, body, self.url.credentials()).await
    }

    async fn call_as(
        &self,
        path: &str,
        body: &str,
        user: Option<(&str, &str)>,
    ) -> Result<Element, String> {
        let at = self.where_(path);
        match tokio::time::timeout(self.timeout, self.exchange(path, body, user)).await {
            Ok(Ok(b)) => soap::read(&b).map_err(|e| format!("{e} (from {at})")),
            Ok(Err(e)) => Err(format!("{e} (from {at})")),
            Err(_) => Err(format!(
                "onvif: {at}: no answer within {}s",
                self.timeout.as_secs()
            )),
        }
    }

    async fn exchange(
        &self,
        path: &str,
        body: &str,
        user: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, String> {
        let mut http_auth: Option<ClientAuth> = match user {
            Some(_) => self.http_auth.lock().ok().and_then(|a| a.clone()),
            None => None,
        };
        for attempt in 0..2 {
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce).map_err(|e| format!("onvif: random: {e}"))?;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as i64;
            let at = now_ms.saturating_add(self.skew_ms.load(Ordering::Relaxed));
            let created = soap::rfc3339(Duration::from_millis(at.max(0) as u64));
            let envelope = soap::envelope(body, user, &nonce, &created);
            let (status, headers, answer) = self.post(path, envelope, http_auth.as_mut()).await?;
            if status == StatusCode::OK {
                if let (Some(a), Ok(mut kept)) = (http_auth, self.http_auth.lock()) {
                    *kept = Some(a);
                }
                return Ok(answer);
            }
            if status == StatusCode::UNAUTHORIZED {
                let challenges: Vec<String> = headers
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_string))
                    .collect();
                // Also when we sent one: its nonce may have gone stale.
                if attempt == 0 && !challenges.is_empty() {
                    if let Some((user, pass)) = user {
                        let mut cnonce = [0u8; 8];
                        let _ = getrandom::fill(&mut cnonce);
                        let cnonce: String = cnonce.iter().map(|b| format!("{b:02x}")).collect();
                        if let Ok(a) = ClientAuth::from_www_authenticate(
                            Credentials::new(user, pass),
                            challenges.iter().map(String::as_str),
                            cnonce,
                        ) {
                            http_auth = Some(a);
                            continue;
                        }
                    }
                }
                // A SOAP fault in the body says more than the status.
                if let Err(e @ SoapError::Unauthorized(_)) = soap::read(&answer) {
                    return Err(e.to_string());
                }
                return Err(SoapError::Unauthorized("HTTP 401".into()).to_string());
            }
            // ONVIF answers errors with a SOAP fault and 400 or 500.
            return Err(match soap::read(&answer) {
                Err(e @ (SoapError::Unauthorized(_) | SoapError::Fault(_))) => e.to_string(),
                _ => format!("onvif: HTTP {status}"),
            });
        }
        Err(SoapError::Unauthorized("HTTP 401 after authenticating".into()).to_string())
    }

    async fn post(
        &self,
        path: &str,
        envelope: String,
        auth: Option<&mut ClientAuth>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Vec<u8>), String> {
        let addr = &self.url.authority;
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| format!("onvif: {addr}: unreachable: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("onvif: {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::post(path)
            .header(HOST, addr.as_str())
            .header(USER_AGENT, concat!("camrouter/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_TYPE, "application/soap+xml; charset=utf-8");
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a.authorization("POST", path));
        }
        let req = req
            .body(Full::new(Bytes::from(envelope)))
            .map_err(|e| format!("onvif: request: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("onvif: {addr}: {e}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let mut body = res.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("onvif: {addr}: read: {e}"))?;
            if let Ok(data) = frame.into_data() {
                if out.len() + data.len() > MAX_BYTES {
                    return Err(format!(
                        "onvif: {addr}: answer larger than {MAX_BYTES} bytes"
                    ));
                }
                out.extend_from_slice(&data);
            }
        }
        Ok((status, headers, out))
    }

    /// After a refused UsernameToken: whether the device's clock is far
    /// enough from ours to explain it (cameras without NTP drift, or were
    /// never set). Then later tokens carry the device's time, as ONVIF's
    /// Core spec (§5.12.2.1) has clients do. GetSystemDateAndTime needs no
    /// credentials.
    async fn follow_device_clock(&self) -> bool {
        let asked = self
            .call_as(&self.url.path, soap::GET_SYSTEM_DATE_AND_TIME, None)
            .await;
        let Ok(doc) = asked else {
            return false;
        };
        let Some(device) = soap::device_clock(&doc) else {
            return false;
        };
        let ours = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        let skew = (device as i64).saturating_mul(1000).saturating_sub(ours);
        if skew.abs() <= MAX_SKEW_MS {
            return false;
        }
        tracing::info!(
            device = %self.url.authority,
            "onvif: the device's clock is {:+} s from ours; its time goes in the credentials",
            skew / 1000
        );
        self.skew_ms.store(skew, Ordering::Relaxed);
        true
    }

    /// The device service's GetCapabilities, again with the device's time
    /// when it refused our credentials and its clock is off.
    async fn capabilities(&self) -> Result<Element, String> {
        let r = self.call(&self.url.path, soap::GET_CAPABILITIES).await;
        match r {
            Err(e) if e.contains("unauthorized") && self.follow_device_clock().await => {
                self.call(&self.url.path, soap::GET_CAPABILITIES).await
            }
            r => r,
        }
    }

    /// The media service's path: from GetCapabilities, else GetServices
    /// (devices that implement only the newer call).
    pub async fn media_path(&self) -> Result<String, String> {
        let device = self.url.path.clone();
        let caps = self.capabilities().await;
        match &caps {
            Ok(doc) => {
                if let Some(x) = soap::media_xaddr_from_capabilities(doc) {
                    return Ok(OnvifUrl::service_path(&x));
                }
            }
            // Wrong credentials or no device at all: GetServices would
            // only say the same again.
            Err(e) if e.contains("unauthorized") || e.contains("unreachable") => {
                return Err(e.clone())
            }
            Err(_) => {}
        }
        match self.call(&device, soap::GET_SERVICES).await {
            Ok(doc) => soap::media_xaddr_from_services(&doc)
                .map(|x| OnvifUrl::service_path(&x))
                .ok_or_else(|| SoapError::NoMediaService.to_string()),
            // The first answer's error is the more telling one.
            Err(e) => Err(caps.err().unwrap_or(e)),
        }
    }

    pub async fn profiles(&self, media: &str) -> Result<Vec<Profile>, String> {
        let doc = self.call(media, soap::GET_PROFILES).await?;
        let p = soap::profiles(&doc);
        if p.is_empty() {
            return Err(SoapError::NoProfiles.to_string());
        }
        Ok(p)
    }

    /// The URL to open for the URL's profile: GetStreamUri (or
    /// GetSnapshotUri with `snapshot`), resolved against the device.
    pub async fn source_url(&self) -> Result<String, String> {
        let media = self.media_path().await?;
        let profiles = self.profiles(&media).await?;
        let profile =
            soap::pick_profile(&profiles, &self.url.subtype).map_err(|e| e.to_string())?;
        let (body, what) = if self.url.snapshot {
            (soap::get_snapshot_uri(&profile.token), "GetSnapshotUri")
        } else {
            (soap::get_stream_uri(&profile.token), "GetStreamUri")
        };
        let doc = self.call(&media, &body).await?;
        let uri = soap::media_uri(&doc, what).map_err(|e| e.to_string())?;
        self.url.resolve(&uri)
    }

    /// `Manufacturer Model`, or the address when the device does not say.
    pub async fn name(&self) -> String {
        match self
            .call(&self.url.path, soap::GET_DEVICE_INFORMATION)
            .await
        {
            Ok(doc) => {
                let n = soap::device_name(&doc);
                if n.is_empty() {
                    self.url.host.clone()
                } else {
                    n
                }
            }
            Err(_) => self.url.host.clone(),
        }
    }
}

impl Device {
    /// Whether the media service says it serves snapshots
    /// (GetServiceCapabilities' `SnapshotUri="true"`).
    pub async fn has_snapshots(&self, media: &str) -> bool {
        match self.call(media, soap::GET_SERVICE_CAPABILITIES).await {
            Ok(doc) => soap::snapshot_capable(&doc),
            Err(_) => false,
        }
    }
}
