//! SDP writer for our RTSP server (RFC 4566 5, RFC 2326 C.1).

use std::fmt::Write as _;

use super::Direction;
use crate::adts::SAMPLE_RATES;
use crate::annexb::avcc_units;
use crate::b64;
use crate::codec::{CodecInfo, CodecName, MediaKind};
use crate::error::{Error, Result};
use crate::{h264, h265};

/// One media section to describe.
#[derive(Debug, Clone, Copy)]
pub struct MediaDescription<'a> {
    /// Codec; H.264/H.265 extradata gives `sprop-*`, AAC extradata `config`.
    pub codec: &'a CodecInfo,
    /// RTP payload type (e.g. 96 for dynamic, 0/8 for G.711, 26 for JPEG).
    pub payload_type: u8,
    /// `a=control` value, e.g. `trackID=0`.
    pub control: &'a str,
    /// Direction from our side (`RecvOnly` for a backchannel we accept).
    pub direction: Direction,
}

fn upper_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

/// rtpmap encoding and fmtp (empty if none) for a codec.
fn rtpmap_fmtp(c: &CodecInfo) -> Result<(String, String)> {
    let ch = c.channels.max(1);
    let with_ch = |name: &str| {
        if ch > 1 {
            format!("{name}/{}/{ch}", c.clock_rate)
        } else {
            format!("{name}/{}", c.clock_rate)
        }
    };
    let nals = || avcc_units(&c.extradata).map_while(|n| n.ok());
    Ok(match c.name {
        CodecName::H264 => {
            // RFC 6184 8.1.
            let mut fmtp = String::from("packetization-mode=1");
            let sets: Vec<String> = nals()
                .filter(|n| {
                    matches!(
                        h264::nal_type_of(n),
                        h264::nal_type::SPS | h264::nal_type::PPS
                    )
                })
                .map(b64::encode)
                .collect();
            if !sets.is_empty() {
                let _ = write!(fmtp, ";sprop-parameter-sets={}", sets.join(","));
            }
            if let Some(sps) = nals().find(|n| h264::nal_type_of(n) == h264::nal_type::SPS) {
                if let Some(pli) = sps.get(1..4) {
                    let _ = write!(fmtp, ";profile-level-id={}", upper_hex(pli));
                }
            }
            ("H264/90000".into(), fmtp)
        }
        CodecName::H265 => {
            // RFC 7798 7.1.
            let mut parts = Vec::new();
            for (key, t) in [
                ("sprop-vps", h265::nal_type::VPS),
                ("sprop-sps", h265::nal_type::SPS),
                ("sprop-pps", h265::nal_type::PPS),
            ] {
                if let Some(n) = nals().find(|n| h265::nal_type_of(n) == t) {
                    parts.push(format!("{key}={}", b64::encode(n)));
                }
            }
            ("H265/90000".into(), parts.join(";"))
        }
        CodecName::Mjpeg => ("JPEG/90000".into(), String::new()),
        CodecName::Aac => {
            // RFC 3640 3.3.6 AAC-hbr, matching our packetizer.
            let config = if c.extradata.is_empty() {
                let index = SAMPLE_RATES
                    .iter()
                    .position(|&r| r == c.clock_rate)
                    .unwrap_or(15) as u16;
                // AAC-LC, 5 + 4 + 4 bits, then 3 zero GASpecificConfig bits.
                let v = (2u16 << 11) | ((index & 0x0F) << 7) | ((ch & 0x0F) << 3);
                v.to_be_bytes().to_vec()
            } else {
                c.extradata.clone()
            };
            (
                with_ch("MPEG4-GENERIC"),
                format!(
                    "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}",
                    upper_hex(&config)
                ),
            )
        }
        // RFC 7587 7: always 48000/2.
        CodecName::Opus => ("opus/48000/2".into(), String::new()),
        CodecName::Pcma => (with_ch("PCMA"), String::new()),
        CodecName::Pcmu => (with_ch("PCMU"), String::new()),
        CodecName::PcmS16be => (format!("L16/{}/{ch}", c.clock_rate), String::new()),
        CodecName::G722 => ("G722/8000".into(), String::new()),
        CodecName::PcmS16le => {
            return Err(Error::unsupported("SDP writer", "little-endian PCM"));
        }
        CodecName::Av1 => return Err(Error::unsupported("SDP writer", "AV1")),
    })
}

/// Build a session description for an RTSP DESCRIBE answer (or ANNOUNCE).
/// Lines end in CRLF; ports are 0 and addresses 0.0.0.0 as usual for RTSP.
pub fn write_session(session_name: &str, medias: &[MediaDescription]) -> Result<String> {
    let mut s = String::new();
    let name = if session_name.trim().is_empty() {
        "-"
    } else {
        session_name.trim()
    };
    let _ = write!(
        s,
        "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns={name}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    );
    for m in medias {
        let kind = match m.codec.kind() {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        };
        let pt = m.payload_type & 0x7F;
        let (rtpmap, fmtp) = rtpmap_fmtp(m.codec)?;
        let _ = write!(s, "m={kind} 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\n");
        if !fmtp.is_empty() {
            let _ = write!(s, "a=fmtp:{pt} {fmtp}\r\n");
        }
        let _ = write!(
            s,
            "a=control:{}\r\na={}\r\n",
            m.control,
            m.direction.as_str()
        );
    }
    Ok(s)
}
