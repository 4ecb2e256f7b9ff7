//! What a viewer's offer accepts, read before the peer connection exists: the
//! graph query for its feed, and per feed track the payload type and fmtp
//! the answer must use. H.264 is matched on packetization-mode 1 and the
//! camera's profile (RFC 6184 §8.2.2: the answer takes the offer's
//! profile-level-id; with level-asymmetry-allowed any level decodes).

use camrouter_media::sdp::{Direction, MediaType, SdpFormat, Session};
use camrouter_media::CodecName;
use thiserror::Error;

/// Codecs we send to a viewer.
pub const VIDEO: &[&str] = &["H264", "H265", "AV1"];
pub const AUDIO: &[&str] = &["OPUS", "PCMA", "PCMU"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("webrtc: malformed offer SDP: {0}")]
    Malformed(String),
    #[error(
        "webrtc: the offer has no media this server can send (H264, H265, AV1, OPUS, PCMA, PCMU)"
    )]
    NothingToSend,
    #[error("webrtc: the offer has no media this server can receive (H264, OPUS, PCMA, PCMU)")]
    NothingToReceive,
}

/// One offered payload format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub payload_type: u8,
    pub codec: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
    /// As parsed, for the depacketizer (WHIP).
    pub format: SdpFormat,
}

/// One `m=` section as we read it.
#[derive(Debug, Clone)]
pub struct OfferedMedia {
    pub video: bool,
    /// The viewer receives on it (`recvonly` or `sendrecv`).
    pub receives: bool,
    /// The viewer sends on it (`sendonly` or `sendrecv`): WHIP.
    pub sends: bool,
    pub formats: Vec<Offered>,
}

#[derive(Debug, Clone)]
pub struct Offer {
    pub sdp: String,
    pub medias: Vec<OfferedMedia>,
}

impl Offer {
    pub fn parse(sdp: &str) -> Result<Offer, OfferError> {
        if !sdp.trim_start().starts_with("v=") {
            return Err(OfferError::Malformed("it does not start with v=".into()));
        }
        let s = Session::parse(sdp).map_err(|e| OfferError::Malformed(e.to_string()))?;
        let mut medias = Vec::new();
        for m in &s.medias {
            let video = match m.kind {
                MediaType::Video => true,
                MediaType::Audio => false,
                _ => continue,
            };
            if m.port == 0 && !m.bundle_only {
                continue;
            }
            medias.push(OfferedMedia {
                video,
                receives: matches!(m.direction, Direction::RecvOnly | Direction::SendRecv),
                sends: matches!(m.direction, Direction::SendOnly | Direction::SendRecv),
                formats: m.formats.iter().map(offered).collect(),
            });
        }
        if medias.is_empty() {
            return Err(OfferError::Malformed("no audio or video m= line".into()));
        }
        Ok(Offer {
            sdp: sdp.to_string(),
            medias,
        })
    }

    /// The graph query for a viewer: the codecs it can receive.
    pub fn viewer_query(&self) -> Result<String, OfferError> {
        let mut parts = Vec::new();
        for (video, list) in [(true, VIDEO), (false, AUDIO)] {
            let names: Vec<&str> = list
                .iter()
                .copied()
                .filter(|c| {
                    self.medias.iter().any(|m| {
                        m.video == video
                            && m.receives
                            && m.formats.iter().any(|f| usable(f, video) && f.codec == *c)
                    })
                })
                .collect();
            if !names.is_empty() {
                let kind = if video { "video" } else { "audio" };
                parts.push(format!("{kind}={}", names.join(",").to_ascii_lowercase()));
            }
        }
        if parts.is_empty() {
            return Err(OfferError::NothingToSend);
        }
        // A viewer that sends audio (two-way audio) talks to the stream's
        // backchannel in a codec it can send.
        let mic: Vec<&str> = AUDIO
            .iter()
            .copied()
            .filter(|c| self.sends_audio(c).is_some())
            .collect();
        if !mic.is_empty() {
            parts.push(format!("microphone={}", mic.join(",").to_ascii_lowercase()));
        }
        Ok(parts.join("&"))
    }

    /// The offered format of `codec` (go2rtc name) in an audio section the
    /// viewer sends on: its microphone.
    pub fn sends_audio(&self, codec: &str) -> Option<Offered> {
        self.medias
            .iter()
            .filter(|m| !m.video && m.sends)
            .flat_map(|m| m.formats.iter())
            .find(|f| f.codec == codec && usable(f, false) && f.format.info.is_some())
            .cloned()
    }

    /// What a publisher (WHIP) sends that we take: per m= section it sends
    /// on, the first format we can depacketize, in the order of the offer.
    pub fn ingest_formats(&self) -> Result<Vec<Offered>, OfferError> {
        let list: Vec<Offered> = self
            .medias
            .iter()
            .filter(|m| m.sends)
            .filter_map(|m| {
                m.formats
                    .iter()
                    .find(|f| usable(f, m.video) && f.format.info.is_some())
                    .cloned()
            })
            .collect();
        if list.is_empty() {
            return Err(OfferError::NothingToReceive);
        }
        Ok(list)
    }

    /// In a camera's answer to our offer: the format it takes talk-back
    /// audio in (the first usable one of an audio section it receives on).
    pub fn talk_format(&self) -> Option<Offered> {
        self.medias
            .iter()
            .filter(|m| !m.video && m.receives)
            .find_map(|m| {
                m.formats
                    .iter()
                    .find(|f| usable(f, false) && f.format.info.is_some())
                    .cloned()
            })
    }

    /// The offered format to answer for a track of `codec` (go2rtc name)
    /// with the camera's fmtp, and which m= section (by kind order) it is in.
    pub fn choose(&self, video: bool, codec: &str, camera_fmtp: &str) -> Option<Offered> {
        let candidates: Vec<&Offered> = self
            .medias
            .iter()
            .filter(|m| m.video == video && m.receives)
            .flat_map(|m| m.formats.iter())
            .filter(|f| f.codec == codec && usable(f, video))
            .collect();
        if codec != "H264" {
            return candidates.first().map(|f| (*f).clone());
        }
        let want = profile_of(camera_fmtp);
        candidates
            .iter()
            .max_by_key(|f| {
                let p = profile_of(&f.fmtp);
                let exact = want.is_some() && p == want;
                let same_idc = want.is_some() && p.map(|x| x.0) == want.map(|x| x.0);
                (exact, same_idc, p.is_none_or(|x| x.0 == 0x42))
            })
            .map(|f| (*f).clone())
    }
}

fn offered(f: &SdpFormat) -> Offered {
    Offered {
        payload_type: f.payload_type,
        codec: f.codec.clone(),
        clock_rate: f.clock_rate,
        channels: f.channels,
        fmtp: f.fmtp.clone(),
        format: f.clone(),
    }
}

/// Formats we can send as offered: H.264 in packetization-mode 1 (FU-A;
/// mode 0 cannot carry a frame larger than one packet), H.265 (RFC 7798
/// has one packetization: single NAL units and FUs, what we send; Safari
/// and GStreamer offer it) and AV1 (the answer keeps the offer's profile
/// and level parameters, which only say what the viewer decodes), audio at
/// the rates WebRTC uses.
fn usable(f: &Offered, video: bool) -> bool {
    if video {
        (f.codec == "H264"
            && camrouter_media::sdp::fmtp_param(&f.fmtp, "packetization-mode") == Some("1"))
            || f.codec == "H265"
            || f.codec == "AV1"
    } else {
        match f.codec.as_str() {
            "OPUS" => f.clock_rate == 48000,
            "PCMA" | "PCMU" => f.clock_rate == 8000,
            _ => false,
        }
    }
}

/// (profile_idc, constraint flags) of an H.264 fmtp's profile-level-id.
fn profile_of(fmtp: &str) -> Option<(u8, u8)> {
    let id = camrouter_media::sdp::fmtp_param(fmtp, "profile-level-id")?;
    if id.len() != 6 {
        return None;
    }
    let idc = u8::from_str_radix(&id[0..2], 16).ok()?;
    let flags = u8::from_str_radix(&id[2..4], 16).ok()?;
    Some((idc, flags))
}

/// go2rtc's codec name for a track from the graph.
pub fn codec_name(name: CodecName) -> Option<&'static str> {
    Some(match name {
        CodecName::H264 => "H264",
        CodecName::H265 => "H265",
        CodecName::Av1 => "AV1",
        CodecName::Opus => "OPUS",
        CodecName::Pcma => "PCMA",
        CodecName::Pcmu => "PCMU",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 106 112\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640032\r\n\
a=rtpmap:112 H264/90000\r\na=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";

    #[test]
    fn query_lists_what_the_viewer_receives() {
        let o = Offer::parse(CHROME).unwrap();
        assert_eq!(o.viewer_query().unwrap(), "video=h264&audio=opus,pcma,pcmu");
    }

    #[test]
    fn av1_is_offered_and_answered_with_the_offer_s_parameters() {
        let with_av1 = CHROME
            .replace("SAVPF 96 102 106 112\r\n", "SAVPF 96 102 106 112 45\r\n")
            .replace(
                "m=audio",
                "a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\nm=audio",
            );
        let o = Offer::parse(&with_av1).unwrap();
        assert_eq!(
            o.viewer_query().unwrap(),
            "video=h264,av1&audio=opus,pcma,pcmu"
        );
        let f = o.choose(true, "AV1", "").unwrap();
        assert_eq!(
            (f.payload_type, f.fmtp.as_str()),
            (45, "level-idx=5;profile=0;tier=0")
        );
        assert_eq!(codec_name(CodecName::Av1), Some("AV1"));
    }

    #[test]
    fn a_bundle_only_section_with_port_0_is_offered_and_a_plain_port_0_refused() {
        // Firefox with max-bundle: the audio section rides the video's transport.
        let firefox = CHROME.replace(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8\r\nc=IN IP4 0.0.0.0\r\n",
            "m=audio 0 UDP/TLS/RTP/SAVPF 111 9 0 8\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\n",
        );
        assert_ne!(firefox, CHROME);
        let o = Offer::parse(&firefox).unwrap();
        assert_eq!(o.viewer_query().unwrap(), "video=h264&audio=opus,pcma,pcmu");
        let refused = firefox.replace("a=bundle-only\r\n", "");
        let o = Offer::parse(&refused).unwrap();
        assert_eq!(o.viewer_query().unwrap(), "video=h264");
    }

    #[test]
    fn a_sending_audio_section_asks_for_the_microphone() {
        let two_way = CHROME.replace("a=mid:1\r\na=recvonly", "a=mid:1\r\na=sendrecv");
        let o = Offer::parse(&two_way).unwrap();
        assert_eq!(
            o.viewer_query().unwrap(),
            "video=h264&audio=opus,pcma,pcmu&microphone=opus,pcma,pcmu"
        );
        assert_eq!(o.sends_audio("PCMU").unwrap().payload_type, 0);
        assert!(Offer::parse(CHROME).unwrap().sends_audio("PCMU").is_none());
    }

    #[test]
    fn h264_matches_the_camera_profile_in_packetization_mode_1() {
        let o = Offer::parse(CHROME).unwrap();
        let high = o
            .choose(true, "H264", "packetization-mode=1;profile-level-id=640028")
            .unwrap();
        assert_eq!(high.payload_type, 112, "High, mode 1 (106 is mode 0)");
        let base = o
            .choose(true, "H264", "packetization-mode=1;profile-level-id=42e01e")
            .unwrap();
        assert_eq!(base.payload_type, 102);
        assert_eq!(o.choose(false, "PCMA", "").unwrap().payload_type, 8);
    }

    #[test]
    fn bad_offers_are_typed_errors() {
        assert!(matches!(
            Offer::parse("hello"),
            Err(OfferError::Malformed(_))
        ));
        assert!(matches!(
            Offer::parse("v=0\r\ns=-\r\n"),
            Err(OfferError::Malformed(_))
        ));
        let vp8_only =
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(
            Offer::parse(vp8_only).unwrap().viewer_query(),
            Err(OfferError::NothingToSend)
        );
    }
}
