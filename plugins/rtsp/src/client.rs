//! The RTSP client source (`rtsp://`, `rtsps://`, `rtspx://`): one upstream
//! session per producer, depacketized into canonical frames; the camera's
//! ONVIF backchannel becomes a `sendonly` media.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use camrouter_media::depay::Depacketizer;
use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::rtp::RtpPacket;
use camrouter_media::sdp::{Direction as SdpDirection, MediaType, Session};
use camrouter_plugin_api::sdk::{Source, SourceEvents};
use camrouter_plugin_api::{Media, Packet, RArc, RVec, FLAG_DISCONTINUITY, FLAG_KEYFRAME};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::convert::{sdp_media, to_info};
use crate::proto::client::{Client, ClientConfig, ClientError, ClientEvent, MediaSetup};
use crate::proto::message::Method;
use crate::proto::url::{join_control, RtspUrl};
use crate::random;
use crate::ws::Security;

const BACKCHANNEL_QUEUE: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub url: String,
    /// `#timeout=N`: seconds for connecting and for silence before giving up.
    pub timeout: Duration,
    /// `#media=video|audio`: only medias of that kind.
    pub media: Option<String>,
    /// `#backchannel=0` turns the ONVIF backchannel off.
    pub backchannel: bool,
    /// `#transport=udp`: RTP over UDP instead of TCP interleaved.
    pub udp: bool,
    /// `#transport=ws://…` (or `wss://`, `wsx://`): RTSP over WebSocket.
    pub ws: Option<crate::ws::Target>,
}

impl Options {
    pub fn parse(url: &str) -> Result<Options, String> {
        let mut parts = url.split('#');
        let base = parts.next().unwrap_or("").to_string();
        let mut o = Options {
            url: base,
            timeout: Duration::from_secs(5),
            media: None,
            backchannel: true,
            udp: false,
            ws: None,
        };
        for p in parts.filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k {
                "timeout" => {
                    let s: u64 = v.parse().map_err(|_| format!("rtsp: bad #timeout: {v}"))?;
                    o.timeout = Duration::from_secs(s.clamp(1, 3600));
                }
                "media" => o.media = Some(v.to_string()),
                "backchannel" => o.backchannel = v != "0",
                "transport" if v.eq_ignore_ascii_case("udp") => o.udp = true,
                "transport" if v.eq_ignore_ascii_case("tcp") => o.udp = false,
                // Any URL here is a WebSocket; the parser names the schemes
                // it takes when it is something else.
                "transport" if v.contains("://") => o.ws = Some(crate::ws::Target::parse(v)?),
                "transport" => {
                    return Err(format!("rtsp: #transport={v} is not supported"));
                }
                _ => {}
            }
        }
        RtspUrl::parse(&o.url).map_err(|e| format!("rtsp: {e}"))?;
        Ok(o)
    }
}

pub struct RtspSource {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    backchannel: mpsc::Sender<(u32, Packet)>,
}

impl Source for RtspSource {
    fn send(&self, track: u32, packet: &Packet) {
        let _ = self.backchannel.try_send((track, packet.clone()));
    }
    fn stop(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}

pub fn start(opts: Options, events: SourceEvents, rt: &tokio::runtime::Handle) -> RtspSource {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (bc_tx, bc_rx) = mpsc::channel(BACKCHANNEL_QUEUE);
    rt.spawn(async move {
        let mut stop_rx = stop_rx;
        let mut bc_rx = bc_rx;
        let mut backchannel = opts.backchannel;
        let reason = loop {
            match run(&opts, backchannel, &events, &mut stop_rx, &mut bc_rx).await {
                Ok(()) => return,
                // Cameras without ONVIF backchannel refuse the `Require`
                // (551, or 400/501 from stricter ones): ask again without it,
                // as go2rtc does.
                Err(Failure::DescribeRefused(e)) if backchannel => {
                    tracing::debug!("rtsp: {e}; retrying without backchannel");
                    backchannel = false;
                }
                Err(Failure::DescribeRefused(e)) | Err(Failure::Other(e)) => break e,
            }
        };
        events.closed(&reason);
    });
    RtspSource {
        stop: Mutex::new(Some(stop_tx)),
        backchannel: bc_tx,
    }
}

/// A timestamp extender: RTP's 32-bit clock as a monotonic i64.
#[derive(Default, Clone, Copy)]
struct Unwrap {
    last: Option<u32>,
    high: i64,
}

impl Unwrap {
    fn extend(&mut self, ts: u32) -> i64 {
        if let Some(last) = self.last {
            let diff = ts.wrapping_sub(last) as i32;
            if diff > 0 && ts < last {
                self.high += 1 << 32;
            } else if diff < 0 && ts > last {
                self.high -= 1 << 32;
            }
        }
        self.last = Some(ts);
        self.high + ts as i64
    }
}

struct Track {
    depay: Option<Depacketizer>,
    unwrap: Unwrap,
    /// For a backchannel media: the packetizer and its interleaved channel.
    pay: Option<(Packetizer, u8)>,
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn connect(url: &RtspUrl, opts: &Options) -> Result<Box<dyn Io>, String> {
    let timeout = opts.timeout;
    if let Some(ws) = &opts.ws {
        return Ok(Box::new(crate::ws::connect(ws, timeout).await?));
    }
    let addr = url.host_port();
    let host = url.host.trim_matches(|c| c == '[' || c == ']').to_string();
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("rtsp: dial {addr}: timeout"))?
        .map_err(|e| format!("rtsp: dial {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if url.is_tls() {
        return camrouter_plugin_api::tls::connect(tcp, &host, url.scheme == "rtspx")
            .await
            .map(|t| Box::new(t) as Box<dyn Io>)
            .map_err(|e| format!("rtsp: {e}"));
    }
    Ok(Box::new(tcp))
}

enum Failure {
    DescribeRefused(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Other(s.to_string())
    }
}

fn client_error(e: ClientError) -> Failure {
    match &e {
        ClientError::Status {
            method: Method::Describe,
            status,
            ..
        } if *status != 401 && *status != 404 => Failure::DescribeRefused(format!("rtsp: {e}")),
        _ => Failure::Other(format!("rtsp: {e}")),
    }
}

/// One RTP packet of media `idx` (from TCP or UDP) → frames to the host.
fn on_rtp(tracks: &mut [Track], idx: usize, data: &[u8], started: Instant, events: &SourceEvents) {
    let Some(t) = tracks.get_mut(idx) else { return };
    let Some(depay) = t.depay.as_mut() else {
        return;
    };
    let Ok(pkt) = RtpPacket::parse(data) else {
        return;
    };
    if depay.push(&pkt).is_err() {
        return;
    }
    let now = started.elapsed().as_micros() as u64;
    while let Some(f) = depay.pop() {
        let mut flags = if f.keyframe { FLAG_KEYFRAME } else { 0 };
        if f.discontinuity {
            flags |= FLAG_DISCONTINUITY;
        }
        let pts = t.unwrap.extend(f.timestamp);
        events.packet(&Packet {
            track: idx as u32,
            flags,
            pts,
            dts: pts,
            received_at_us: now,
            payload: RArc::new(RVec::from(f.data)),
        });
    }
}

/// Aborts the UDP receive tasks when a session ends, however it ends.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn run(
    opts: &Options,
    backchannel: bool,
    events: &SourceEvents,
    stop_rx: &mut oneshot::Receiver<()>,
    bc_rx: &mut mpsc::Receiver<(u32, Packet)>,
) -> Result<(), Failure> {
    let url = RtspUrl::parse(&opts.url).map_err(|e| format!("rtsp: {e}"))?;
    let mut io = connect(&url, opts).await?;
    let mut cfg = ClientConfig::play(opts.url.clone());
    cfg.backchannel = backchannel;
    cfg.cnonce = random::hex(8);
    let mut client = Client::new(cfg).map_err(|e| format!("rtsp: {e}"))?;
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    events.info(json!({
        "format_name": "rtsp",
        "protocol": match &opts.ws {
            Some(t) if t.security == Security::Plain => "rtsp+ws",
            Some(_) => "rtsp+wss",
            None if opts.udp => "rtsp+udp",
            None => "rtsp+tcp",
        },
        "remote_addr": opts.ws.as_ref().map_or_else(|| url.host_port(), |t| t.host_port()),
    }));
    // UDP: one task per media socket forwards datagrams here.
    let (udp_tx, mut udp_rx) = mpsc::channel::<(usize, Vec<u8>)>(1024);
    let mut udp_tasks = AbortOnDrop(Vec::new());
    let mut tracks: Vec<Track> = Vec::new();
    let mut medias: Vec<Media> = Vec::new();
    let mut playing = false;
    let mut last_data = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(bytes) = client.poll_transmit() {
            io.write_all(&bytes)
                .await
                .map_err(|e| format!("rtsp: write: {e}"))?;
            // A no-op on TCP; over WebSocket it sends the message.
            io.flush().await.map_err(|e| format!("rtsp: write: {e}"))?;
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                ClientEvent::Described { sdp, base_url, .. } => {
                    let text = String::from_utf8_lossy(&sdp);
                    let session =
                        Session::parse(&text).map_err(|e| format!("rtsp: bad SDP: {e}"))?;
                    if let Some(c) = &session.control {
                        client.set_aggregate_control(c.clone());
                    }
                    let mut setups = Vec::new();
                    for m in &session.medias {
                        let kind = match m.kind {
                            MediaType::Video => "video",
                            MediaType::Audio => "audio",
                            _ => continue,
                        };
                        if opts.media.as_deref().is_some_and(|want| want != kind) {
                            continue;
                        }
                        let is_backchannel = m.direction == SdpDirection::SendOnly;
                        if is_backchannel && !backchannel {
                            continue;
                        }
                        let Some(media) = sdp_media(m, 0) else {
                            continue;
                        };
                        let Some(format) = m.formats.first() else {
                            continue;
                        };
                        let control = m.control.clone().unwrap_or_default();
                        let mut track = Track {
                            depay: None,
                            unwrap: Unwrap::default(),
                            pay: None,
                        };
                        if is_backchannel {
                            let info = media.codecs.first().and_then(to_info);
                            let Some(info) = info else { continue };
                            let Ok(p) = Packetizer::new(
                                &info,
                                format.payload_type,
                                crate::feed::rand_u32(),
                                1200,
                            ) else {
                                continue;
                            };
                            // The channel is set once SETUP answers.
                            track.pay = Some((p, 0));
                        } else {
                            match Depacketizer::for_format(format) {
                                Ok(d) => track.depay = Some(d),
                                Err(e) => {
                                    tracing::debug!(codec = %format.codec, "rtsp: media skipped: {e}");
                                    continue;
                                }
                            }
                        }
                        let control_url = join_control(&base_url, &control);
                        if opts.udp && !is_backchannel {
                            let index = tracks.len();
                            let rtp = tokio::net::UdpSocket::bind("0.0.0.0:0")
                                .await
                                .map_err(|e| format!("rtsp: udp: {e}"))?;
                            let rtcp = tokio::net::UdpSocket::bind("0.0.0.0:0")
                                .await
                                .map_err(|e| format!("rtsp: udp: {e}"))?;
                            let (p1, p2) = (
                                rtp.local_addr().map_err(|e| e.to_string())?.port(),
                                rtcp.local_addr().map_err(|e| e.to_string())?.port(),
                            );
                            let tx = udp_tx.clone();
                            udp_tasks.0.push(tokio::spawn(async move {
                                // RTCP from the camera is not needed: keep the
                                // socket open so the port stays ours.
                                let _rtcp = rtcp;
                                let mut b = vec![0u8; 65536];
                                while let Ok(n) = rtp.recv(&mut b).await {
                                    if tx.send((index, b[..n].to_vec())).await.is_err() {
                                        break;
                                    }
                                }
                            }));
                            setups.push(MediaSetup::udp(control_url, p1, p2));
                        } else {
                            setups.push(MediaSetup::tcp(control_url));
                        }
                        tracks.push(track);
                        medias.push(media);
                    }
                    if setups.is_empty() {
                        return Err("rtsp: no supported media in the camera's SDP".into());
                    }
                    client.setup(setups).map_err(|e| format!("rtsp: {e}"))?;
                }
                ClientEvent::SetupDone(info) => {
                    if let Some(Track {
                        pay: Some((_, ch)), ..
                    }) = tracks.get_mut(info.index)
                    {
                        *ch = info.rtp_channel.unwrap_or((info.index * 2) as u8);
                    }
                }
                ClientEvent::Playing { .. } => {
                    playing = true;
                    last_data = Instant::now();
                    events.medias(medias.clone());
                    client.handle_timeout(now_ms());
                }
                ClientEvent::Interleaved { channel, data } => {
                    last_data = Instant::now();
                    if let Some((idx, false)) = client.media_for_channel(channel) {
                        on_rtp(&mut tracks, idx, &data, started, events);
                    }
                }
                ClientEvent::Redirect { location } => {
                    return Err(format!("rtsp: redirected to {location} (not followed)").into());
                }
                ClientEvent::DecodeError(e) => tracing::debug!("rtsp: {e}"),
                ClientEvent::KeepaliveFailed { method, status, .. } => {
                    tracing::debug!("rtsp: keepalive {method} answered {status}");
                }
                ClientEvent::Closed => return Ok(()),
                _ => {}
            }
        }
        while let Some(bytes) = client.poll_transmit() {
            io.write_all(&bytes)
                .await
                .map_err(|e| format!("rtsp: write: {e}"))?;
            // A no-op on TCP; over WebSocket it sends the message.
            io.flush().await.map_err(|e| format!("rtsp: write: {e}"))?;
        }
        // Cameras may pause a second or two; twice the timeout of silence
        // means the camera is gone.
        let silence = opts.timeout * 2;
        let deadline = last_data + silence;
        let keepalive = client
            .next_timeout()
            .map(|t| started + Duration::from_millis(t))
            .unwrap_or(deadline);
        tokio::select! {
            _ = &mut *stop_rx => {
                client.teardown();
                while let Some(bytes) = client.poll_transmit() {
                    let _ = tokio::time::timeout(Duration::from_millis(200), async {
                        io.write_all(&bytes).await?;
                        io.flush().await
                    })
                    .await;
                }
                return Ok(());
            }
            n = io.read(&mut buf) => {
                let n = n.map_err(|e| format!("rtsp: read: {e}"))?;
                if n == 0 {
                    return Err("rtsp: camera closed the connection".into());
                }
                if !playing {
                    last_data = Instant::now();
                }
                client.feed(&buf[..n]).map_err(client_error)?;
            }
            _ = tokio::time::sleep_until(keepalive.min(deadline).into()) => {
                if Instant::now() >= deadline {
                    return Err(format!("rtsp: no data for {}s", silence.as_secs()).into());
                }
                client.handle_timeout(now_ms());
            }
            Some((idx, data)) = udp_rx.recv() => {
                last_data = Instant::now();
                on_rtp(&mut tracks, idx, &data, started, events);
            }
            Some((track, pkt)) = bc_rx.recv() => {
                if let Some(Track { pay: Some((p, ch)), .. }) = tracks.get_mut(track as usize) {
                    let mut bc_buf = RtpPackets::new(Framing::Interleaved(*ch));
                    if p.packetize(&pkt.payload, pkt.pts as u32, &mut bc_buf).is_ok() {
                        io.write_all(bc_buf.bytes()).await.map_err(|e| format!("rtsp: write: {e}"))?;
                        io.flush().await.map_err(|e| format!("rtsp: write: {e}"))?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::Credentials;

    #[test]
    fn params() {
        let o = Options::parse("rtsp://u:p@cam/s#timeout=10#media=video#backchannel=0").unwrap();
        assert_eq!(o.url, "rtsp://u:p@cam/s");
        assert_eq!(o.timeout, Duration::from_secs(10));
        assert_eq!(o.media.as_deref(), Some("video"));
        assert!(!o.backchannel);
        assert!(Options::parse("rtsp://cam/s#timeout=x").is_err());
    }

    #[test]
    fn ws_transport() {
        let o = Options::parse("rtsp://cam/s#transport=wss://u:p@h:8443/ws#timeout=3").unwrap();
        let t = o.ws.unwrap();
        assert_eq!((t.security, t.port), (Security::Tls, 8443));
        assert_eq!(t.credentials, Some(Credentials::new("u", "p")));
        assert!(!o.udp);
        let o = Options::parse("rtsp://cam/s#transport=wsx://h/ws").unwrap();
        assert_eq!(o.ws.unwrap().security, Security::TlsNoVerify);
        assert!(Options::parse("rtsp://cam/s#transport=ws://h/ws")
            .unwrap()
            .ws
            .is_some());
        let e = Options::parse("rtsp://cam/s#transport=http://h/ws").unwrap_err();
        assert!(e.contains("ws://, wss:// and wsx://"), "{e}");
        assert!(Options::parse("rtsp://cam/s#transport=quic").is_err());
    }

    #[test]
    fn timestamps_unwrap() {
        let mut u = Unwrap::default();
        assert_eq!(u.extend(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.extend(5), (1i64 << 32) + 5);
        assert_eq!(
            u.extend(u32::MAX - 1),
            (u32::MAX - 1) as i64,
            "reordered back over the wrap"
        );
    }
}
