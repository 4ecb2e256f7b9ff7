//! A light WebRTC viewer for `--webrtc`: webrtc-rs's sans-IO core with its
//! own UDP socket, a real ICE/DTLS/SRTP session that decrypts every packet
//! but decodes nothing. Signaling is WHEP (`POST /api/webrtc?src=bench`).
//! With `--first`, [`first_frame`] times a new viewer's start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::BytesMut;
use camrouter_media::{CodecName, Depacketizer, RtpPacket};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::marshal::Marshal;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// `--video-only`: viewers offer no audio m-line, so the server sends what
/// go2rtc sends a viewer of an AAC camera (video only) and the two load
/// figures compare like with like.
pub static VIDEO_ONLY: AtomicBool = AtomicBool::new(false);

/// One HTTP/1.1 exchange on a fresh connection: the status line and
/// headers, and the body.
async fn http(api: u16, req: String) -> anyhow::Result<(String, String)> {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", api)).await?;
    tcp.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no answer"))?;
    Ok((head.to_string(), body.to_string()))
}

/// WHEP: the offer in; the answer and the session's `Location` out.
async fn whep(api: u16, offer: &str) -> anyhow::Result<(String, String)> {
    let req = format!(
        "POST /api/webrtc?src=bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{offer}",
        offer.len()
    );
    let (head, body) = http(api, req).await?;
    if !head.starts_with("HTTP/1.1 201") {
        bail!("whep: {head}");
    }
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .ok_or_else(|| anyhow!("whep: no Location"))?;
    Ok((body, location))
}

/// What a session reports to the caller of [`Session::run`].
enum Event<'a> {
    /// ICE found a pair (STUN checks answered).
    IceConnected,
    /// DTLS done: SRTP keys are set.
    Connected,
    Rtp(&'a rtp::Packet),
}

/// A viewer's socket and peer connection, offer made (candidates included:
/// the timing starts where a browser that gathered first would POST).
struct Session {
    socket: UdpSocket,
    local: SocketAddr,
    pc: RTCPeerConnection,
}

impl Session {
    async fn new() -> anyhow::Result<Session> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let local = socket.local_addr()?;
        let mut media = MediaEngine::default();
        media.register_default_codecs()?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media)
            .build(Instant::now())?;
        let kinds: &[RtpCodecKind] = if VIDEO_ONLY.load(Ordering::Relaxed) {
            &[RtpCodecKind::Video]
        } else {
            &[RtpCodecKind::Video, RtpCodecKind::Audio]
        };
        for &kind in kinds {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )?;
        }
        let offer = pc.create_offer(None)?;
        pc.set_local_description(Instant::now(), offer)?;
        let cand = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        pc.add_local_candidate(RTCIceCandidate::from(&cand).to_json()?)?;
        Ok(Session { socket, local, pc })
    }

    fn offer(&self) -> anyhow::Result<String> {
        self.pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| anyhow!("no offer"))
    }

    /// Takes the server's answer.
    fn answer(&mut self, sdp: String) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp)?)?;
        Ok(())
    }

    /// Moves datagrams and timers until `on` says stop (false).
    async fn run(&mut self, mut on: impl FnMut(Event) -> bool) -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        loop {
            while let Some(msg) = self.pc.poll_write() {
                let _ = self
                    .socket
                    .send_to(&msg.message, msg.transport.peer_addr)
                    .await;
            }
            while let Some(ev) = self.pc.poll_event() {
                let e = match ev {
                    RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                        RTCIceConnectionState::Connected,
                    ) => Event::IceConnected,
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                        RTCPeerConnectionState::Connected,
                    ) => Event::Connected,
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                        s @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed),
                    ) => bail!("connection {s}"),
                    _ => continue,
                };
                if !on(e) {
                    return Ok(());
                }
            }
            while let Some(msg) = self.pc.poll_read() {
                if let RTCMessage::RtpPacket(_, p) = &msg.message {
                    if !on(Event::Rtp(p)) {
                        return Ok(());
                    }
                }
            }
            let deadline = self
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    let _ = self.pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: from,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&buf[..n]),
                    });
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
            }
        }
    }
}

/// One viewer until the process ends; RTP payload bytes go to `bytes`.
pub async fn viewer(api: u16, bytes: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut s = Session::new().await?;
    let (answer, _) = whep(api, &s.offer()?).await?;
    s.answer(answer)?;
    s.run(|e| {
        if let Event::Rtp(p) = e {
            bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
        }
        true
    })
    .await
}

/// A new viewer's start, in milliseconds from the offer's POST.
pub struct FirstFrame {
    /// The WHEP answer arrived.
    pub answer: f64,
    /// ICE connected (our checks answered).
    pub ice: f64,
    /// DTLS connected (SRTP keys set).
    pub connected: f64,
    /// The first video RTP packet decrypted.
    pub first_rtp: f64,
    /// The last packet of the first whole IDR access unit with its SPS and
    /// PPS: a decoder has everything for a picture.
    pub keyframe: f64,
}

/// The answer's H.264 payload types.
fn h264_payload_types(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| {
            let (pt, codec) = l.split_once(' ')?;
            codec
                .to_ascii_uppercase()
                .starts_with("H264/")
                .then(|| pt.parse().ok())?
        })
        .collect()
}

/// Whether an access unit (4-byte length-prefixed NAL units) has an SPS,
/// a PPS and an IDR slice.
fn decodable(au: &[u8]) -> bool {
    let mut seen = [false; 3];
    let mut rest = au;
    while rest.len() > 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len) else {
            break;
        };
        match nal.first().map(|b| b & 0x1F) {
            Some(7) => seen[0] = true,
            Some(8) => seen[1] = true,
            Some(5) => seen[2] = true,
            _ => {}
        }
        rest = &rest[4 + len..];
    }
    seen == [true; 3]
}

/// A new WHEP viewer with the stream running: times its start up to the
/// first decodable keyframe, then ends the session (DELETE).
pub async fn first_frame(api: u16) -> anyhow::Result<FirstFrame> {
    let mut s = Session::new().await?;
    let offer = s.offer()?;
    let t0 = Instant::now();
    let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
    let (answer, location) = whep(api, &offer).await?;
    let t_answer = ms(Instant::now());
    let video = h264_payload_types(&answer);
    s.answer(answer)?;
    let mut depay = Depacketizer::H26x(camrouter_media::depay::H26xDepacketizer::new(
        CodecName::H264,
    )?);
    let (mut ice, mut connected, mut first_rtp, mut keyframe) = (None, None, None, None);
    let run = s.run(|e| {
        let now = ms(Instant::now());
        match e {
            Event::IceConnected => ice = ice.or(Some(now)),
            Event::Connected => connected = connected.or(Some(now)),
            Event::Rtp(p) if video.contains(&p.header.payload_type) => {
                first_rtp = first_rtp.or(Some(now));
                let Ok(raw) = p.marshal() else {
                    return true;
                };
                let Ok(pkt) = RtpPacket::parse(&raw) else {
                    return true;
                };
                if depay.push(&pkt).is_err() {
                    return true;
                }
                while let Some(f) = depay.pop() {
                    if f.keyframe && decodable(&f.data) {
                        keyframe = Some(now);
                        return false;
                    }
                }
            }
            Event::Rtp(_) => {}
        }
        true
    });
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| anyhow!("no keyframe within 10 s"))??;
    let path = format!("/api/{}", location.trim_start_matches('/'));
    let path = path.replacen("/api/api/", "/api/", 1);
    http(
        api,
        format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
    .await?;
    let need = |v: Option<f64>, what: &str| v.ok_or_else(|| anyhow!("no {what} event"));
    Ok(FirstFrame {
        answer: t_answer,
        ice: need(ice, "ICE connected")?,
        connected: need(connected, "connected")?,
        first_rtp: need(first_rtp, "RTP")?,
        keyframe: need(keyframe, "keyframe")?,
    })
}
