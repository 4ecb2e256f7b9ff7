//! `rtmp://`, `rtmps://` and `rtmpx://` sources: play from a remote RTMP
//! server. The host retries a source that closes, as for any other.

use std::sync::Arc;
use std::time::Duration;

use camrouter_plugin_api::sdk::{Source, SourceEvents};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::client::{ClientEvent, ClientSession, RtmpUrl};
use crate::handshake;
use crate::ingest::Ingest;

/// Dial, handshake and commands until play starts.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A server silent this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct RtmpSource(Arc<Notify>);

impl Source for RtmpSource {
    fn stop(&self) {
        self.0.notify_one();
    }
}

pub fn open(
    url: &str,
    events: SourceEvents,
    rt: &tokio::runtime::Handle,
) -> Result<RtmpSource, String> {
    let parsed = RtmpUrl::parse(url)?;
    let stop = Arc::new(Notify::new());
    let s = stop.clone();
    rt.spawn(async move {
        let reason = tokio::select! {
            r = run(&parsed, &events) => match r {
                Ok(()) => "rtmp: EOF".to_string(),
                Err(e) => format!("rtmp: {e}"),
            },
            _ = s.notified() => return,
        };
        events.closed(&reason);
    });
    Ok(RtmpSource(stop))
}

/// TCP, or TLS for `rtmps`/`rtmpx`.
pub async fn dial(url: &RtmpUrl) -> Result<Box<dyn Io>, String> {
    let addr = url.addr();
    let tcp = tokio::time::timeout(SETUP_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("dial {addr}: timeout"))?
        .map_err(|e| format!("dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if url.tls {
        let host = url.host.trim_matches(|c| c == '[' || c == ']');
        let tls = camrouter_plugin_api::tls::connect(tcp, host, url.insecure)
            .await
            .map_err(|e| {
                // go2rtc skips the check for an IP address; we check every
                // rtmps:// certificate and leave skipping to rtmpx://.
                if e.contains("certificate") {
                    format!("{e} (rtmpx:// skips the certificate check, for a self-signed server)")
                } else {
                    e
                }
            })?;
        return Ok(Box::new(tls));
    }
    Ok(Box::new(tcp))
}

/// Connects and runs the command flow up to `Started`; `publish` picks the
/// direction. Returns the connection, the session and bytes read past the
/// start.
pub async fn start(
    url: &RtmpUrl,
    publish: bool,
) -> Result<(Box<dyn Io>, ClientSession, Vec<ClientEvent>), String> {
    let setup = async {
        let mut io = dial(url).await?;
        io.write_all(&handshake::client_hello())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut hs = Vec::new();
        let rest = loop {
            let n = io.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            hs.extend_from_slice(&buf[..n]);
            if let Some((c2, rest)) = handshake::client_reply(&hs).map_err(|e| e.to_string())? {
                io.write_all(&c2).await.map_err(|e| e.to_string())?;
                break rest;
            }
        };
        let mut session = ClientSession::new(url);
        let mut events = session.push(&rest).map_err(|e| e.to_string())?;
        loop {
            let mut later = Vec::new();
            let mut batch = events.into_iter();
            while let Some(e) = batch.next() {
                match e {
                    ClientEvent::StreamCreated if publish => session.publish(&url.stream),
                    ClientEvent::StreamCreated => session.play(&url.stream),
                    ClientEvent::Refused(why) => return Err(why),
                    ClientEvent::Started => {
                        let out = std::mem::take(&mut session.out);
                        io.write_all(&out).await.map_err(|e| e.to_string())?;
                        // What came in the same read after the status (a
                        // server that sends its cached sequence headers and
                        // GOP at once, as node-media-server) is media too.
                        later.extend(batch);
                        return Ok((io, session, later));
                    }
                    e => later.push(e),
                }
            }
            let out = std::mem::take(&mut session.out);
            if !out.is_empty() {
                io.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            let n = io.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before the stream started".to_string());
            }
            // Media before the status (some servers) is kept for after it.
            events = later;
            events.extend(session.push(&buf[..n]).map_err(|e| e.to_string())?);
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| format!("{}: no answer within 10 s", url.tc_url))?
}

async fn run(url: &RtmpUrl, events: &SourceEvents) -> Result<(), String> {
    let (mut io, mut session, early) = start(url, false).await?;
    events.info(json!({"format_name": "rtmp", "protocol": "rtmp", "url": url.tc_url}));
    let mut ingest = Ingest::new(events.clone());
    for e in early {
        if let ClientEvent::Media(m) = e {
            ingest.message(&m)?;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(IDLE_TIMEOUT, io.read(&mut buf))
            .await
            .map_err(|_| "no data for 15 s".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        for e in session.push(&buf[..n]).map_err(|e| e.to_string())? {
            match e {
                ClientEvent::Media(m) => ingest.message(&m)?,
                ClientEvent::Refused(why) => return Err(why),
                _ => {}
            }
        }
        if !session.out.is_empty() {
            let out = std::mem::take(&mut session.out);
            io.write_all(&out).await.map_err(|e| e.to_string())?;
        }
    }
}
