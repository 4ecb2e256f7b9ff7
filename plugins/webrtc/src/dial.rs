//! The peer loop's side of `webrtc:` client sources: camrouter as the
//! offering (ICE controlling) peer that receives (WHEP, go2rtc's ws,
//! Kinesis, Wyze), or as the answering peer of a camera that offers
//! (OpenIPC). Either way the peer is a producer whose RTP goes through the
//! WHIP ingest path ([`Ingest`]), on the same socket and demultiplexer as
//! every other peer. A child module of `server` so that the loop's own
//! types stay private.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use camrouter_media::Depacketizer;
use camrouter_plugin_api::media::to_media;
use camrouter_plugin_api::sdk::SourceEvents;
use camrouter_plugin_api::Direction;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::oneshot;

use super::{Ingest, Loop, Peer};
use crate::config::Cand;
use crate::offer::{Offer, Offered};
use crate::peer::{
    add_local_candidates, connection, negotiate_ingest, random_u32, register_receiving, PeerTrack,
};
use crate::turn::TurnServer;

/// A client source asks the loop for an offer (we receive video and audio).
pub struct Dial {
    pub events: SourceEvents,
    /// Offer video only (SwitchBot, Creality), as go2rtc does.
    pub video_only: bool,
    /// Told why when the peer ends, whatever ended it.
    pub ended: oneshot::Sender<String>,
    /// Where to allocate a relay candidate for this peer (turn.rs).
    pub turn: Option<TurnServer>,
    /// The STUN server that tells our server-reflexive address.
    pub stun: Option<SocketAddr>,
    /// The peer's id and our offer (with our candidates in it).
    pub reply: oneshot::Sender<Result<(u64, String), String>>,
}

/// The remote's answer to a [`Dial`] offer.
pub struct Answered {
    pub peer: u64,
    pub sdp: String,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// A camera that offers (OpenIPC): we answer and receive what it sends.
pub struct Accept {
    pub events: SourceEvents,
    pub ended: oneshot::Sender<String>,
    pub offer: String,
    pub turn: Option<TurnServer>,
    pub stun: Option<SocketAddr>,
    pub reply: oneshot::Sender<Result<Accepted, String>>,
}

/// The peer's id, our answer and our candidates (for trickle).
pub type Accepted = (u64, String, Vec<String>);

/// What we offer to receive, as go2rtc's client does: H.264 in
/// packetization mode 1 (baseline, constrained baseline and high, so that
/// the sender need not transcode), Opus, PCMU, PCMA.
const CODECS: &[(u8, &str, u32, u16, &str)] = &[
    (
        102,
        "video/H264",
        90000,
        0,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    ),
    (
        104,
        "video/H264",
        90000,
        0,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    ),
    (
        106,
        "video/H264",
        90000,
        0,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032",
    ),
    (111, "audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
    (0, "audio/PCMU", 8000, 0, ""),
    (8, "audio/PCMA", 8000, 0, ""),
];

/// Our offer to receive: the connection, its ufrag, the SDP with our host
/// candidates and end-of-candidates (no trickle needed), and, with audio,
/// the sender of our side of a `sendrecv` audio section: a camera that
/// answers it `sendrecv` or `recvonly` takes talk-back audio on it, as
/// browsers offer two-way audio.
pub fn offer_to_receive(
    certificate: &RTCCertificate,
    candidates: &[Cand],
    video_only: bool,
) -> Result<(RTCPeerConnection, String, String, Option<PeerTrack>), String> {
    let now = Instant::now();
    let mut media = MediaEngine::default();
    for (pt, mime, clock_rate, channels, fmtp) in CODECS {
        register_receiving(&mut media, mime, *clock_rate, *channels, fmtp, *pt)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(|e| format!("webrtc: interceptors: {e}"))?;
    let (mut pc, ufrag) = connection(media, registry, certificate, now)?;
    let kinds: &[RtpCodecKind] = if video_only {
        &[RtpCodecKind::Video]
    } else {
        &[RtpCodecKind::Video, RtpCodecKind::Audio]
    };
    let mut talk = None;
    for kind in kinds.iter().copied() {
        if kind == RtpCodecKind::Audio {
            talk = Some(add_talk_track(&mut pc)?);
            continue;
        }
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: Vec::new(),
            send_encodings: Vec::new(),
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .map_err(|e| format!("webrtc: transceiver: {e}"))?;
    }
    add_local_candidates(&mut pc, candidates)?;
    let offer = pc
        .create_offer(None)
        .map_err(|e| format!("webrtc: offer: {e}"))?;
    pc.set_local_description(now, offer)
        .map_err(|e| format!("webrtc: offer: {e}"))?;
    let sdp = pc
        .local_description()
        .map(|d| d.sdp)
        .ok_or("webrtc: no offer")?;
    Ok((pc, ufrag, sdp, talk))
}

/// Our audio track toward the camera (its section becomes `sendrecv`).
/// The payload type is learnt from the answer.
fn add_talk_track(pc: &mut RTCPeerConnection) -> Result<PeerTrack, String> {
    let ssrc = random_u32();
    let track = MediaStreamTrack::new(
        "camrouter".into(),
        "camrouter-talk".into(),
        "camrouter-talk".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            // No codec: one here would become the section's only format
            // (webrtc-rs turns it into the codec preferences), and the
            // camera could then not send G.711.
            codec: RTCRtpCodec::default(),
            ..Default::default()
        }],
    );
    let sender = pc
        .add_track(track)
        .map_err(|e| format!("webrtc: talk-back track: {e}"))?;
    Ok(PeerTrack {
        sender,
        ssrc,
        payload_type: 0,
        sequence: random_u32() as u16,
        timestamp_offset: random_u32(),
    })
}

/// The stream's tracks from what the remote sends (the first format we
/// depacketize of each m= section it sends on), and the ingest for them.
fn ingest_for(formats: &[Offered], talk: Option<&Offered>, events: SourceEvents) -> Ingest {
    let mut medias = Vec::new();
    let mut by_pt = HashMap::new();
    for f in formats {
        let (Some(info), Ok(depay)) = (&f.format.info, Depacketizer::for_format(&f.format)) else {
            continue;
        };
        by_pt.insert(f.payload_type, (medias.len() as u32, depay));
        medias.push(to_media(info));
    }
    // Talk-back: what the camera takes, as the stream's backchannel.
    if let Some(info) = talk.and_then(|f| f.format.info.as_ref()) {
        let mut m = to_media(info);
        m.direction = Direction::SendOnly;
        medias.push(m);
    }
    events.medias(medias);
    Ingest {
        events,
        by_pt,
        started: Instant::now(),
        unwrap: HashMap::new(),
        video_ssrc: None,
    }
}

fn new_peer(pc: RTCPeerConnection, ufrag: String, ended: oneshot::Sender<String>) -> Peer {
    let now = Instant::now();
    Peer {
        pc,
        mic: None,
        feed: None,
        ingest: None,
        tracks: Vec::new(),
        playing: false,
        after: 0,
        created: now,
        last_heard: now,
        connected: false,
        deadline: None,
        client: None,
        ufrag,
        ended: Some(ended),
        pending_source: None,
        video_track: None,
        last_keyframe_request: None,
    }
}

impl Loop {
    /// Our offer, with `relay` (our TURN candidate) among its candidates.
    pub(super) fn dial(
        &mut self,
        id: u64,
        d: Dial,
        relay: Option<Cand>,
        reflexive: Option<SocketAddr>,
    ) -> bool {
        let Dial {
            events,
            video_only,
            ended,
            reply,
            ..
        } = d;
        let cands = self.candidates_with(relay, reflexive);
        let made = catch_unwind(AssertUnwindSafe(|| {
            offer_to_receive(&self.setup.certificate, &cands, video_only)
        }))
        .unwrap_or_else(|_| Err("webrtc: the WebRTC stack panicked on our offer".into()));
        let (pc, ufrag, sdp, talk) = match made {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return false;
            }
        };
        self.demux.add_peer(id, &ufrag);
        self.tcp_demux.add_peer(id, &ufrag);
        if let Some(r) = relay {
            self.relays.attach(r.addr, id, &ufrag);
        }
        let mut peer = new_peer(pc, ufrag, ended);
        peer.pending_source = Some(events);
        // Kept aside until the answer says whether the camera takes audio.
        peer.tracks = vec![talk];
        self.peers.insert(id, peer);
        let _ = reply.send(Ok((id, sdp)));
        true
    }

    pub(super) fn answered(&mut self, a: Answered) {
        let Answered {
            peer: id,
            sdp,
            reply,
        } = a;
        let result = self.set_answer(id, &sdp);
        if let Err(e) = &result {
            self.remove(id, e);
        }
        let _ = reply.send(result);
        self.flush(id);
    }

    fn set_answer(&mut self, id: u64, sdp: &str) -> Result<(), String> {
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or("webrtc: the peer ended before the answer")?;
        let parsed = Offer::parse(sdp).map_err(|e| format!("webrtc: bad answer SDP: {e}"))?;
        // The answer's sections the remote sends on (sendonly or sendrecv).
        let formats = parsed
            .ingest_formats()
            .map_err(|_| "webrtc: the answer SDP sends no H264, OPUS, PCMA or PCMU")?;
        let desc = RTCSessionDescription::answer(sdp.to_string())
            .map_err(|e| format!("webrtc: bad answer SDP: {e}"))?;
        let now = Instant::now();
        catch_unwind(AssertUnwindSafe(|| {
            peer.pc.set_remote_description(now, desc)
        }))
        .map_err(|_| "webrtc: the WebRTC stack panicked on the answer SDP".to_string())?
        .map_err(|e| format!("webrtc: answer SDP refused: {e}"))?;
        let events = peer
            .pending_source
            .take()
            .ok_or("webrtc: answer for a peer that is not a client")?;
        // Talk-back when the camera receives audio in a format we offered
        // (the first it lists): the track learns its payload type.
        let talk = parsed.talk_format();
        match (peer.tracks.first_mut(), &talk) {
            (Some(Some(t)), Some(f)) => t.payload_type = f.payload_type,
            (Some(slot), _) => *slot = None,
            _ => {}
        }
        peer.ingest = Some(ingest_for(&formats, talk.as_ref(), events));
        Ok(())
    }

    /// Our answer to a camera's offer, with `relay` among its candidates.
    pub(super) fn accept(
        &mut self,
        id: u64,
        a: Accept,
        relay: Option<Cand>,
        reflexive: Option<SocketAddr>,
    ) -> bool {
        let Accept {
            events,
            ended,
            offer,
            reply,
            ..
        } = a;
        let cands = self.candidates_with(relay, reflexive);
        let made = (|| {
            let offer = Offer::parse(&offer).map_err(|e| format!("webrtc: bad offer SDP: {e}"))?;
            let formats = offer
                .ingest_formats()
                .map_err(|_| "webrtc: the camera's offer SDP sends no H264, OPUS, PCMA or PCMU")?;
            let n = catch_unwind(AssertUnwindSafe(|| {
                negotiate_ingest(&offer, &formats, &self.setup.certificate, &cands)
            }))
            .unwrap_or_else(|_| {
                Err("webrtc: bad offer SDP (the WebRTC stack panicked on it)".into())
            })?;
            Ok::<_, String>((n, formats))
        })();
        let (n, formats) = match made {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return false;
            }
        };
        self.demux.add_peer(id, &n.ufrag);
        self.tcp_demux.add_peer(id, &n.ufrag);
        if let Some(r) = relay {
            self.relays.attach(r.addr, id, &n.ufrag);
        }
        let mut peer = new_peer(n.pc, n.ufrag, ended);
        peer.ingest = Some(ingest_for(&formats, None, events));
        self.peers.insert(id, peer);
        let _ = reply.send(Ok((id, n.sdp, n.candidates)));
        true
    }
}

/// G.711 is cut into packets of at most this many samples (20 ms);
/// whatever a backchannel producer is handed (ffmpeg's WAV comes in 128 ms
/// blocks) then fits a datagram and plays at the camera's usual pace.
const G711_SAMPLES: usize = 160;

impl Loop {
    /// Talk-back audio for a client source's remote (a camera that takes
    /// audio): `payload` in the negotiated codec at RTP time `timestamp`.
    pub(super) fn talk(&mut self, id: u64, payload: &[u8], timestamp: u32) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !peer.connected {
            return;
        }
        let Some(Some(t)) = peer.tracks.first_mut() else {
            return;
        };
        // Static payload types 0 and 8 are what we offer G.711 as.
        let g711 = matches!(t.payload_type, 0 | 8);
        let chunk = if g711 {
            G711_SAMPLES
        } else {
            payload.len().max(1)
        };
        let now = Instant::now();
        for (i, part) in payload.chunks(chunk).enumerate() {
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: false,
                    payload_type: t.payload_type,
                    sequence_number: t.sequence,
                    timestamp: timestamp
                        .wrapping_add((i * chunk) as u32)
                        .wrapping_add(t.timestamp_offset),
                    ssrc: t.ssrc,
                    ..Default::default()
                },
                payload: bytes::Bytes::copy_from_slice(part),
            };
            t.sequence = t.sequence.wrapping_add(1);
            if let Some(mut s) = peer.pc.rtp_sender(t.sender) {
                if let Err(e) = s.write_rtp(now, packet) {
                    tracing::trace!(peer = id, "webrtc: talk-back: {e}");
                }
            }
        }
        self.flush(id);
    }

    /// A keyframe request for a client source's remote: PLI on its video.
    pub(super) fn send_pli(&mut self, id: u64) {
        tracing::trace!(peer = id, "webrtc: PLI to the remote");
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(media_ssrc) = peer.ingest.as_ref().and_then(|i| i.video_ssrc) else {
            return;
        };
        let Some(receiver) = peer.pc.get_receivers().next() else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Some(mut r) = peer.pc.rtp_receiver(receiver) {
            if let Err(e) = r.write_rtcp(Instant::now(), vec![Box::new(pli)]) {
                tracing::debug!(peer = id, "webrtc: PLI: {e}");
            }
        }
        self.flush(id);
    }
}
