//! One viewer's peer connection, negotiated from its offer: pure (no
//! socket, no host), so the fuzz target drives it with hostile SDP.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::ice::tcp_type::TcpType;

use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, CandidateServerReflexiveConfig,
    RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;

use crate::config::Cand;
use crate::feed::MicIn;
use crate::offer::{self, Offer, Offered};

/// A track viewers can receive.
#[derive(Clone)]
pub struct TrackOut {
    pub video: bool,
    /// go2rtc name: H264, OPUS, PCMA, PCMU.
    pub codec: &'static str,
    /// The camera's H.264 profile as an fmtp (`profile-level-id=…`), to pick
    /// the offered format that decodes it.
    pub fmtp: String,
    /// The graph's consumer track index.
    pub graph_track: u32,
}

/// Where one feed track goes in a peer: its sender and the header fields
/// this peer stamps on the shared packets.
pub struct PeerTrack {
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp_offset: u32,
}

pub struct Negotiated {
    pub pc: RTCPeerConnection,
    /// By feed track index.
    pub tracks: Vec<Option<PeerTrack>>,
    /// The ice-ufrag of our answer: the demultiplexer's key.
    pub ufrag: String,
    pub sdp: String,
    /// Our candidates as `candidate:…` lines, for trickle signalings.
    pub candidates: Vec<String>,
    /// The viewer's microphone: the offered format it sends in and the
    /// graph track (the stream's backchannel) it goes to.
    pub mic: Option<(Offered, u32)>,
}

pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_ne_bytes(b)
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut b = vec![0u8; len];
    let _ = getrandom::fill(&mut b);
    b.iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect()
}

fn mime_of(codec: &str) -> &'static str {
    match codec {
        "H264" => "video/H264",
        "H265" => "video/H265",
        "AV1" => "video/AV1",
        "OPUS" => "audio/opus",
        "PCMA" => "audio/PCMA",
        _ => "audio/PCMU",
    }
}

/// The peer connection for a viewer's offer, with one sending track per
/// kind the viewer can decode, and its answer.
pub fn negotiate(
    id: u64,
    offer: &Offer,
    tracks: &[TrackOut],
    mics: &[MicIn],
    certificate: &RTCCertificate,
    candidates: &[Cand],
) -> Result<Negotiated, String> {
    let now = Instant::now();
    let mut media = MediaEngine::default();
    // Two-way audio: the viewer sends in the answer's first audio format,
    // and webrtc-rs answers in the offer's order, so the backchannel's
    // codec is moved first in our copy of the offer.
    let mic = mics
        .iter()
        .find_map(|m| offer.sends_audio(m.codec).map(|f| (f, m.graph_track)));
    if let Some((f, _)) = &mic {
        let codec = RTCRtpCodec {
            mime_type: mime_of(&f.codec).into(),
            clock_rate: f.clock_rate,
            channels: if f.codec == "OPUS" { 2 } else { 0 },
            sdp_fmtp_line: f.fmtp.clone(),
            rtcp_feedback: Vec::new(),
        };
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: f.payload_type,
                },
                RtpCodecKind::Audio,
            )
            .map_err(|e| format!("webrtc: codec: {e}"))?;
    }
    // (feed track, codec as answered): one per kind, the first track of
    // each kind the viewer can decode.
    let mut chosen: Vec<(usize, RTCRtpCodec, u8, bool)> = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        if chosen.iter().any(|c| c.3 == t.video) {
            continue;
        }
        let Some(f) = offer.choose(t.video, t.codec, &t.fmtp) else {
            continue;
        };
        let feedback = if t.video {
            vec![
                RTCPFeedback {
                    typ: "nack".into(),
                    parameter: String::new(),
                },
                RTCPFeedback {
                    typ: "nack".into(),
                    parameter: "pli".into(),
                },
                RTCPFeedback {
                    typ: "ccm".into(),
                    parameter: "fir".into(),
                },
            ]
        } else {
            Vec::new()
        };
        let codec = RTCRtpCodec {
            mime_type: mime_of(t.codec).into(),
            clock_rate: f.clock_rate,
            channels: if t.codec == "OPUS" { 2 } else { 0 },
            sdp_fmtp_line: f.fmtp.clone(),
            rtcp_feedback: feedback,
        };
        let kind = if t.video {
            RtpCodecKind::Video
        } else {
            RtpCodecKind::Audio
        };
        if mic.as_ref().map(|(m, _)| m.payload_type) != Some(f.payload_type) {
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: codec.clone(),
                        payload_type: f.payload_type,
                    },
                    kind,
                )
                .map_err(|e| format!("webrtc: codec: {e}"))?;
        }
        chosen.push((i, codec, f.payload_type, t.video));
    }
    if chosen.is_empty() {
        return Err("webrtc: the viewer cannot decode any track of the stream".into());
    }
    // An offered kind the stream lacks still gets a codec, so that its
    // section is answered `inactive` rather than rejected with port 0,
    // which some clients (aiortc) refuse.
    for video in [true, false] {
        if chosen.iter().any(|c| c.3 == video) {
            continue;
        }
        for codec in if video { offer::VIDEO } else { offer::AUDIO } {
            if let Some(f) = offer.choose(video, codec, "") {
                let (kind, channels) = match (video, *codec) {
                    (true, _) => (RtpCodecKind::Video, 0),
                    (false, "OPUS") => (RtpCodecKind::Audio, 2),
                    (false, _) => (RtpCodecKind::Audio, 0),
                };
                let codec = RTCRtpCodec {
                    mime_type: mime_of(codec).into(),
                    clock_rate: f.clock_rate,
                    channels,
                    sdp_fmtp_line: f.fmtp.clone(),
                    rtcp_feedback: Vec::new(),
                };
                let params = RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: f.payload_type,
                };
                let _ = media.register_codec(params, kind);
            }
        }
    }
    let offer_sdp = match &mic {
        Some((f, _)) => audio_first(&offer.sdp, f.payload_type),
        None => offer.sdp.clone(),
    };
    let (mut pc, ufrag) = build(media, certificate, &offer_sdp, now)?;
    let mut peer_tracks: Vec<Option<PeerTrack>> = (0..tracks.len()).map(|_| None).collect();
    let label = format!("camrouter-{id}");
    for (i, codec, pt, video) in chosen {
        let ssrc = random_u32();
        let kind = if video {
            RtpCodecKind::Video
        } else {
            RtpCodecKind::Audio
        };
        let track = MediaStreamTrack::new(
            label.clone(),
            format!("{label}-{i}"),
            format!("{label}-{i}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let sender = pc
            .add_track(track)
            .map_err(|e| format!("webrtc: track: {e}"))?;
        peer_tracks[i] = Some(PeerTrack {
            sender,
            ssrc,
            payload_type: pt,
            sequence: random_u32() as u16,
            timestamp_offset: random_u32(),
        });
    }
    let (lines, sdp) = answer(&mut pc, candidates, now)?;
    Ok(Negotiated {
        pc,
        tracks: peer_tracks,
        ufrag,
        sdp,
        candidates: lines,
        mic,
    })
}

/// `sdp` with payload type `pt` moved first on each `m=audio` line that
/// lists it.
fn audio_first(sdp: &str, pt: u8) -> String {
    let pt = pt.to_string();
    sdp.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_end_matches(['\r', '\n']);
            let mut tokens: Vec<&str> = body.split(' ').collect();
            if !body.starts_with("m=audio ") || tokens.len() < 4 {
                return line.to_string();
            }
            let Some(i) = tokens.iter().skip(3).position(|t| *t == pt) else {
                return line.to_string();
            };
            let t = tokens.remove(3 + i);
            tokens.insert(3, t);
            format!("{}{}", tokens.join(" "), &line[body.len()..])
        })
        .collect()
}

/// The peer connection for `offer` with these codecs: our ICE credentials
/// (the ufrag is the demultiplexer's key), no mDNS, the shared certificate.
fn build(
    mut media: MediaEngine,
    certificate: &RTCCertificate,
    offer_sdp: &str,
    now: Instant,
) -> Result<(RTCPeerConnection, String), String> {
    // The FEC decoder's slot is free in the default chain; any slot before
    // the terminus would do.
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(|e| format!("webrtc: interceptors: {e}"))?
        .with(
            rtc::interceptor::Slot::FecDecoder,
            crate::keyframe::KeyframeRequests::default(),
        );
    let (mut pc, ufrag) = connection(media, registry, certificate, now)?;
    let desc = RTCSessionDescription::offer(offer_sdp.to_string())
        .map_err(|e| format!("webrtc: bad offer: {e}"))?;
    pc.set_remote_description(now, desc)
        .map_err(|e| format!("webrtc: bad offer: {e}"))?;
    Ok((pc, ufrag))
}

/// A peer connection with our ICE credentials (the ufrag, returned, is the
/// demultiplexer's key), no mDNS and the shared certificate: the answering
/// viewers' and the offering `webrtc:` sources' alike.
pub(crate) fn connection(
    media: MediaEngine,
    registry: Registry,
    certificate: &RTCCertificate,
    now: Instant,
) -> Result<(RTCPeerConnection, String), String> {
    let ufrag = random_token(16);
    let settings = SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.clone(), random_token(32))
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let config = RTCConfigurationBuilder::new()
        .with_certificates(vec![certificate.clone()])
        .build();
    let pc = RTCPeerConnectionBuilder::new()
        .with_configuration(config)
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(|e| format!("webrtc: peer connection: {e}"))?;
    Ok((pc, ufrag))
}

/// Adds our candidates and sets the answer: its candidate lines and SDP.
/// UDP host candidates, `stun:` ones as server reflexive (`raddr` our
/// base), TCP ones as passive hosts (RFC 6544; a public TCP address too,
/// as go2rtc, since `srflx` has no `tcptype`).
fn answer(
    pc: &mut RTCPeerConnection,
    candidates: &[Cand],
    now: Instant,
) -> Result<(Vec<String>, String), String> {
    let lines = add_local_candidates(pc, candidates)?;
    let answer = pc
        .create_answer(None)
        .map_err(|e| format!("webrtc: answer: {e}"))?;
    pc.set_local_description(now, answer)
        .map_err(|e| format!("webrtc: answer: {e}"))?;
    let sdp = pc
        .local_description()
        .map(|d| d.sdp)
        .ok_or("webrtc: no answer")?;
    Ok((lines, sdp))
}

/// Adds our candidates and end-of-candidates (an answer's, or a client
/// source's offer's); returns them as `candidate:…` lines.
pub fn add_local_candidates(
    pc: &mut RTCPeerConnection,
    candidates: &[Cand],
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for c in candidates {
        let base_config = CandidateConfig {
            network: if c.tcp { "tcp" } else { "udp" }.to_owned(),
            address: c.addr.ip().to_string(),
            port: c.addr.port(),
            component: 1,
            ..Default::default()
        };
        let cand = match (c.tcp, c.base) {
            // `raddr 0.0.0.0 rport 0`, as browsers write theirs: the ICE
            // agent also matches arriving datagrams by a candidate's
            // related address, and a relay's must match none of ours.
            _ if c.relay => CandidateRelayConfig {
                base_config,
                rel_addr: "0.0.0.0".into(),
                rel_port: 0,
                url: None,
            }
            .new_candidate_relay(),
            (false, Some(base)) => CandidateServerReflexiveConfig {
                base_config,
                rel_addr: base.ip().to_string(),
                rel_port: base.port(),
                url: None,
            }
            .new_candidate_server_reflexive(),
            (tcp, _) => CandidateHostConfig {
                base_config,
                tcp_type: if tcp {
                    TcpType::Passive
                } else {
                    TcpType::Unspecified
                },
            }
            .new_candidate_host(),
        };
        let c = c.addr;
        let cand = cand.map_err(|e| format!("webrtc: candidate {c}: {e}"))?;
        let init = RTCIceCandidate::from(&cand)
            .to_json()
            .map_err(|e| format!("webrtc: candidate {c}: {e}"))?;
        lines.push(init.candidate.clone());
        pc.add_local_candidate(init)
            .map_err(|e| format!("webrtc: candidate {c}: {e}"))?;
    }
    let _ = pc.add_local_candidate(RTCIceCandidateInit::default());
    Ok(lines)
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .iter()
        .map(|(t, p)| RTCPFeedback {
            typ: t.to_string(),
            parameter: p.to_string(),
        })
        .collect()
}

/// Registers a codec we receive, with NACK/PLI/FIR feedback for video: a
/// WHIP publisher's and a `webrtc:` source's remote send in these.
pub(crate) fn register_receiving(
    media: &mut MediaEngine,
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    payload_type: u8,
) -> Result<(), String> {
    let video = mime.starts_with("video/");
    let codec = RTCRtpCodec {
        mime_type: mime.to_string(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_string(),
        rtcp_feedback: if video { video_feedback() } else { Vec::new() },
    };
    let kind = if video {
        RtpCodecKind::Video
    } else {
        RtpCodecKind::Audio
    };
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec,
                payload_type,
            },
            kind,
        )
        .map_err(|e| format!("webrtc: codec: {e}"))
}

/// The peer connection of a publisher (WHIP): we receive `formats`.
pub fn negotiate_ingest(
    offer: &Offer,
    formats: &[Offered],
    certificate: &RTCCertificate,
    candidates: &[Cand],
) -> Result<Negotiated, String> {
    let now = Instant::now();
    let mut media = MediaEngine::default();
    for f in formats {
        let channels = if f.codec == "OPUS" { 2 } else { 0 };
        register_receiving(
            &mut media,
            mime_of(&f.codec),
            f.clock_rate,
            channels,
            &f.fmtp,
            f.payload_type,
        )?;
    }
    let (mut pc, ufrag) = build(media, certificate, &offer.sdp, now)?;
    let (lines, sdp) = answer(&mut pc, candidates, now)?;
    Ok(Negotiated {
        pc,
        tracks: Vec::new(),
        ufrag,
        sdp,
        candidates: lines,
        mic: None,
    })
}

/// A stream (H.264 + PCMA) and server identity for fuzzing [`negotiate`].
pub struct FuzzSetup {
    pub tracks: Vec<TrackOut>,
    pub certificate: RTCCertificate,
    pub candidates: Vec<Cand>,
}

impl FuzzSetup {
    #[allow(clippy::new_without_default)]
    pub fn new() -> FuzzSetup {
        FuzzSetup {
            tracks: vec![
                TrackOut {
                    video: true,
                    codec: "H264",
                    fmtp: "packetization-mode=1;profile-level-id=42e01f".into(),
                    graph_track: 0,
                },
                TrackOut {
                    video: false,
                    codec: "PCMA",
                    fmtp: String::new(),
                    graph_track: 1,
                },
            ],
            certificate: crate::config::certificate().expect("certificate"),
            candidates: vec![Cand {
                addr: SocketAddr::from(([127, 0, 0, 1], 8555)),
                tcp: false,
                base: None,
                relay: false,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backchannel_codec_heads_a_two_way_answer() {
        // The viewer prefers PCMA (the stream's audio) but the camera's
        // backchannel takes PCMU: the answer must list PCMU first, as the
        // viewer sends in the answer's first format.
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 8 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=msid:s t\r\na=ssrc:1 cname:x\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n";
        let offer = Offer::parse(offer).unwrap();
        let setup = FuzzSetup::new();
        let mics = [MicIn {
            codec: "PCMU",
            graph_track: 2,
        }];
        let n = negotiate(
            1,
            &offer,
            &setup.tracks,
            &mics,
            &setup.certificate,
            &setup.candidates,
        )
        .unwrap();
        let (f, track) = n.mic.expect("a microphone");
        assert_eq!((f.payload_type, track), (0, 2));
        let audio = n.sdp.lines().find(|l| l.starts_with("m=audio")).unwrap();
        assert!(audio.ends_with(" 0 8"), "{audio}");
        assert!(n.sdp.contains("a=sendrecv"), "{}", n.sdp);
        assert!(n.tracks[1].is_some(), "the stream's PCMA is still sent");
    }

    #[test]
    fn a_two_way_offer_without_backchannel_still_gets_the_streams_audio() {
        // Our own `webrtc:` client (and a browser with its microphone on)
        // offers audio sendrecv, Opus first; the stream's audio is PCMA and
        // it has no backchannel: the viewer must still receive PCMA.
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=msid:s t\r\na=ssrc:1 cname:x\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
        let offer = Offer::parse(offer).unwrap();
        let setup = FuzzSetup::new();
        let n = negotiate(
            1,
            &offer,
            &setup.tracks,
            &[],
            &setup.certificate,
            &setup.candidates,
        )
        .unwrap();
        let audio = &n.sdp[n.sdp.find("m=audio").unwrap()..];
        assert!(audio.lines().next().unwrap().ends_with(" 8"), "{audio}");
        assert!(
            audio.contains("a=sendrecv") || audio.contains("a=sendonly"),
            "{audio}"
        );
        assert!(n.tracks[1].is_some());
    }
}
