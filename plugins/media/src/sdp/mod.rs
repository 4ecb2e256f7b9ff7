//! SDP (RFC 4566) as RTSP cameras send it, and as our server writes it.
//!
//! The parser is lenient: `\n` or `\r\n` line endings, missing `c=`/`t=`,
//! unknown lines and attributes are ignored, static payload types work
//! without `a=rtpmap` (RFC 3551 6). Each format gets a go2rtc-style codec
//! name and, where the fmtp allows, a [`CodecInfo`] (size from the SPS,
//! AAC sample rate and channels from the config).

mod codecs;
mod write;

pub use write::{write_session, MediaDescription};

use crate::codec::CodecInfo;
use crate::error::{Error, Result};

/// `m=` media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaType {
    /// `video`.
    Video,
    /// `audio`.
    Audio,
    /// `application` (ONVIF metadata etc.).
    Application,
    /// Anything else, as written.
    Other(String),
}

impl MediaType {
    /// The SDP token.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Application => "application",
            MediaType::Other(s) => s,
        }
    }
}

/// Media direction attribute (RFC 4566 6) exactly as written. Cameras
/// use the client's point of view: Dahua/Amcrest/Hikvision mark the media
/// they send `a=recvonly` (the client receives) and the ONVIF audio
/// backchannel `a=sendonly` (the client sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(attr: &str) -> Option<Direction> {
        Some(match attr {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
}

/// One payload format of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpFormat {
    /// RTP payload type.
    pub payload_type: u8,
    /// Upper-case encoding name as go2rtc spells it: H264, H265, JPEG,
    /// MPEG4-GENERIC, MP4A-LATM, OPUS, PCMA, PCMU, L16, G722, MPA, ...
    /// Empty for an unknown dynamic payload type without rtpmap.
    pub codec: String,
    /// RTP clock rate (0 if unknown).
    pub clock_rate: u32,
    /// Audio channels from rtpmap (1 when omitted for audio, 0 for video).
    pub channels: u16,
    /// The `a=fmtp` parameters, as written (empty if none).
    pub fmtp: String,
    /// Track description when the codec is one this crate knows.
    pub info: Option<CodecInfo>,
}

impl SdpFormat {
    /// Value of an fmtp parameter (case-insensitive key).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        fmtp_param(&self.fmtp, key)
    }
}

/// Value of `key` in an fmtp parameter list `k=v; k2=v2` (keys are
/// case-insensitive, spaces around `;` tolerated).
pub fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// Media type.
    pub kind: MediaType,
    /// Port from the m= line (usually 0 in RTSP).
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub protocol: String,
    /// Direction (media-level attribute, else the session-level one).
    pub direction: Direction,
    /// `a=control` value as written.
    pub control: Option<String>,
    /// Formats in m= line order.
    pub formats: Vec<SdpFormat>,
    /// `a=bundle-only` (RFC 8843 §6): with port 0 this section is offered
    /// inside the BUNDLE group, not refused (Firefox's audio with
    /// `max-bundle`).
    pub bundle_only: bool,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// `s=` line.
    pub name: String,
    /// Session-level `a=control`.
    pub control: Option<String>,
    /// Session-level direction (default for media without one).
    pub direction: Direction,
    /// Media sections in order.
    pub medias: Vec<SdpMedia>,
}

/// Static payload types (RFC 3551 Table 4 and 5): name, clock, channels.
fn static_payload(pt: u8) -> Option<(&'static str, u32, u16)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        14 => ("MPA", 90000, 0),
        18 => ("G729", 8000, 1),
        26 => ("JPEG", 90000, 0),
        32 => ("MPV", 90000, 0),
        33 => ("MP2T", 90000, 0),
        _ => return None,
    })
}

impl Session {
    /// Parse an SDP. Only a text without any `v=` or `m=` line is an
    /// error; malformed attribute lines are skipped.
    pub fn parse(text: &str) -> Result<Session> {
        let mut session = Session::default();
        let mut seen_sdp = false;
        let mut media_dirs: Vec<Option<Direction>> = Vec::new();
        let mut media_sizes: Vec<Vec<SizeHint>> = Vec::new();
        for raw in text.lines() {
            let line = raw.trim();
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match kind.trim() {
                "v" => seen_sdp = true,
                "s" if session.medias.is_empty() => session.name = value.trim().to_string(),
                "m" => {
                    seen_sdp = true;
                    session.medias.push(parse_m_line(value)?);
                    media_dirs.push(None);
                    media_sizes.push(Vec::new());
                }
                "a" => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n.trim(), Some(a.trim())),
                        None => (value.trim(), None),
                    };
                    let dir = Direction::parse(name);
                    match session.medias.last_mut() {
                        None => match (name, dir) {
                            ("control", _) => session.control = arg.map(str::to_string),
                            (_, Some(d)) => session.direction = d,
                            _ => {}
                        },
                        Some(media) => {
                            if let (Some(d), Some(slot)) = (dir, media_dirs.last_mut()) {
                                *slot = Some(d);
                            }
                            if name == "bundle-only" {
                                media.bundle_only = true;
                            }
                            if let (Some(arg), Some(sizes)) = (arg, media_sizes.last_mut()) {
                                media_attribute(media, name, arg, sizes);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !seen_sdp {
            return Err(Error::invalid("SDP", "no v= or m= line"));
        }
        for ((media, dir), sizes) in session.medias.iter_mut().zip(media_dirs).zip(media_sizes) {
            media.direction = dir.unwrap_or(session.direction);
            for f in &mut media.formats {
                if f.codec.is_empty() {
                    if let Some((name, rate, ch)) = static_payload(f.payload_type) {
                        f.codec = name.to_string();
                        f.clock_rate = rate;
                        f.channels = ch;
                    }
                }
                if f.channels == 0 && media.kind == MediaType::Audio {
                    f.channels = 1;
                }
                f.info = codecs::codec_info(f);
                let size = sizes
                    .iter()
                    .find(|s| s.0.is_none_or(|pt| pt == f.payload_type));
                if let (Some(info), Some(&(_, w, h))) = (&mut f.info, size) {
                    if info.width == 0 {
                        info.width = w;
                        info.height = h;
                    }
                }
            }
        }
        Ok(session)
    }

    /// Absolute control URL of a media, given the request/Content-Base URL
    /// (RFC 2326 C.1.1). An absolute media control is used as is; a
    /// relative one is appended to the session control (if absolute) or
    /// the base with a `/`, which is what cameras expect even though it is
    /// not RFC 3986 resolution. `*` or no control means the base itself.
    pub fn control_url(&self, base: &str, media: &SdpMedia) -> String {
        let base = match self.control.as_deref() {
            Some(c) if is_absolute(c) => c,
            _ => base,
        };
        match media.control.as_deref() {
            None | Some("") | Some("*") => base.to_string(),
            Some(c) if is_absolute(c) => c.to_string(),
            Some(c) => format!(
                "{}/{}",
                base.trim_end_matches('/'),
                c.trim_start_matches('/')
            ),
        }
    }
}

fn is_absolute(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    })
}

/// `m=<media> <port>[/<n>] <proto> <fmt> ...` (RFC 4566 5.14).
fn parse_m_line(value: &str) -> Result<SdpMedia> {
    let mut it = value.split_whitespace();
    let (Some(kind), Some(port), Some(protocol)) = (it.next(), it.next(), it.next()) else {
        return Err(Error::invalid("SDP m= line", value.to_string()));
    };
    let port = port
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let kind = match kind {
        "video" => MediaType::Video,
        "audio" => MediaType::Audio,
        "application" => MediaType::Application,
        other => MediaType::Other(other.to_string()),
    };
    let formats = it
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|&pt| pt < 128)
        .map(|payload_type| SdpFormat {
            payload_type,
            codec: String::new(),
            clock_rate: 0,
            channels: 0,
            fmtp: String::new(),
            info: None,
        })
        .collect();
    Ok(SdpMedia {
        kind,
        port,
        protocol: protocol.to_string(),
        direction: Direction::SendRecv,
        control: None,
        formats,
        bundle_only: false,
    })
}

fn format_mut<'m>(media: &'m mut SdpMedia, arg: &'_ str) -> Option<(&'m mut SdpFormat, String)> {
    let (pt, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
    let pt: u8 = pt.trim().parse().ok()?;
    let f = media.formats.iter_mut().find(|f| f.payload_type == pt)?;
    Some((f, rest.trim().to_string()))
}

/// Picture size from non-standard attributes, per payload type (`None` =
/// every format of the media).
type SizeHint = (Option<u8>, u32, u32);

fn parse_size(w: &str, h: &str) -> Option<(u32, u32)> {
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

fn media_attribute(media: &mut SdpMedia, name: &str, arg: &str, sizes: &mut Vec<SizeHint>) {
    match name {
        "framesize" => {
            // Common with JPEG: a=framesize:26 640-480.
            let (pt, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            if let (Ok(pt), Some((w, h))) = (pt.parse::<u8>(), rest.split_once('-')) {
                if let Some((w, h)) = parse_size(w, h) {
                    sizes.push((Some(pt), w, h));
                }
            }
        }
        "x-dimensions" => {
            // Axis style: a=x-dimensions:640,480.
            if let Some((w, h)) = arg.split_once(',').and_then(|(w, h)| parse_size(w, h)) {
                sizes.push((None, w, h));
            }
        }
        "control" => media.control = Some(arg.to_string()),
        "rtpmap" => {
            // <pt> <encoding>/<clock>[/<channels>] (RFC 4566 6).
            if let Some((f, rest)) = format_mut(media, arg) {
                let mut parts = rest.split('/');
                f.codec = parts.next().unwrap_or("").trim().to_ascii_uppercase();
                f.clock_rate = parts
                    .next()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0);
                f.channels = parts
                    .next()
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        "fmtp" => {
            if let Some((f, rest)) = format_mut(media, arg) {
                f.fmtp = rest;
            }
        }
        _ => {}
    }
}
