//! Header parsers and writers: `Transport` (RFC 2326 12.39), `Session` (12.37),
//! `RTP-Info` (12.33), `Range` (12.29) and `Public` (12.28).
//!
//! Camera quirks handled: `ssrc` in hex with or without leading zeros, in decimal, with a
//! leading space (Hikvision) or empty; `interleaved=N` without the second channel;
//! `RTP/AVP;…;interleaved=0-1` (UDP profile with interleaved channels, Escam);
//! `mode="PLAY"` quoted, any case; `Session: id; timeout = 60`; commas inside `RTP-Info`
//! URLs.

use super::message::Method;
use std::fmt;

/// A header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty {0} header")]
    Empty(&'static str),
    #[error("bad transport spec {0:?}")]
    BadProtocol(String),
    #[error("bad {param} value {value:?} in Transport")]
    BadParam { param: &'static str, value: String },
    #[error("bad Session header {0:?}")]
    BadSession(String),
    #[error("bad Range header {0:?}")]
    BadRange(String),
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The lower transport of a `Transport` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTransport {
    Udp,
    Tcp,
}

/// Delivery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Unicast,
    Multicast,
}

/// One transport spec (one comma-separated alternative of a `Transport` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// `RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, … (upper-cased).
    pub profile: String,
    pub lower: LowerTransport,
    pub delivery: Option<Delivery>,
    /// `interleaved=a-b`; a single number gives `(a, None)`.
    pub interleaved: Option<(u8, Option<u8>)>,
    pub client_port: Option<(u16, Option<u16>)>,
    pub server_port: Option<(u16, Option<u16>)>,
    /// Multicast `port=`.
    pub port: Option<(u16, Option<u16>)>,
    /// `ssrc=`, when it could be read (see [`parse_ssrc`]).
    pub ssrc: Option<u32>,
    /// `mode=`, unquoted and upper-cased (`PLAY`, `RECORD`).
    pub mode: Option<String>,
    pub destination: Option<String>,
    pub source: Option<String>,
    pub ttl: Option<u8>,
    /// Other parameters, in order, as (name, value).
    pub other: Vec<(String, Option<String>)>,
}

impl Transport {
    /// A new spec with no parameters.
    pub fn new(lower: LowerTransport) -> Self {
        Transport {
            profile: "RTP/AVP".into(),
            lower,
            delivery: Some(Delivery::Unicast),
            interleaved: None,
            client_port: None,
            server_port: None,
            port: None,
            ssrc: None,
            mode: None,
            destination: None,
            source: None,
            ttl: None,
            other: Vec::new(),
        }
    }

    /// `RTP/AVP/TCP;unicast;interleaved=rtp-(rtp+1)`.
    pub fn tcp_interleaved(rtp_channel: u8) -> Self {
        let mut t = Transport::new(LowerTransport::Tcp);
        t.interleaved = Some((rtp_channel, rtp_channel.checked_add(1)));
        t
    }

    /// `RTP/AVP;unicast;client_port=rtp-rtcp`.
    pub fn udp_client_ports(rtp: u16, rtcp: u16) -> Self {
        let mut t = Transport::new(LowerTransport::Udp);
        t.client_port = Some((rtp, Some(rtcp)));
        t
    }

    /// Whether data flows over the RTSP connection: TCP, or interleaved channels given
    /// with a UDP profile and no client ports (a known camera bug).
    pub fn is_interleaved(&self) -> bool {
        self.lower == LowerTransport::Tcp
            || (self.interleaved.is_some() && self.client_port.is_none())
    }

    /// The RTP and RTCP interleaved channels (RTCP defaults to RTP + 1).
    pub fn channels(&self) -> Option<(u8, Option<u8>)> {
        self.interleaved
            .map(|(a, b)| (a, b.or_else(|| a.checked_add(1))))
    }

    /// Whether `mode=record` was given.
    pub fn is_record(&self) -> bool {
        self.mode.as_deref() == Some("RECORD")
    }

    /// Parses one transport spec. Control characters anywhere in it are refused (RFC 2326
    /// §15: tokens and quoted strings exclude CTLs), so what [`Display`](fmt::Display)
    /// writes parses back to the same value.
    pub fn parse(spec: &str) -> Result<Transport, HeaderError> {
        if spec.contains(|c: char| c.is_control() && c != '\t') {
            return Err(HeaderError::BadProtocol(clip(spec)));
        }
        let mut parts = spec.split(';');
        let proto = parts.next().unwrap_or_default().trim();
        if proto.is_empty() {
            return Err(HeaderError::Empty("Transport"));
        }
        let upper = proto.to_ascii_uppercase();
        let (profile, lower) = match upper.rsplit_once('/') {
            Some((p, "UDP")) => (p, LowerTransport::Udp),
            Some((p, "TCP")) => (p, LowerTransport::Tcp),
            _ => (upper.as_str(), LowerTransport::Udp),
        };
        let Some(profile) = PROFILES.iter().find(|p| **p == profile) else {
            return Err(HeaderError::BadProtocol(clip(proto)));
        };
        let mut t = Transport::new(lower);
        t.profile = profile.to_string();
        t.delivery = None;
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '"') {
                return Err(HeaderError::BadParam {
                    param: "name",
                    value: clip(part),
                });
            }
            let lname = name.to_ascii_lowercase();
            match (lname.as_str(), value) {
                ("unicast", None) => t.delivery = Some(Delivery::Unicast),
                ("multicast", None) => t.delivery = Some(Delivery::Multicast),
                ("interleaved", Some(v)) => {
                    t.interleaved = Some(parse_pair(v).ok_or(HeaderError::BadParam {
                        param: "interleaved",
                        value: clip(v),
                    })?)
                }
                ("client_port", Some(v)) => {
                    t.client_port = Some(parse_pair(v).ok_or(HeaderError::BadParam {
                        param: "client_port",
                        value: clip(v),
                    })?)
                }
                // Server ports are informational for us: a bad one is dropped, not fatal.
                ("server_port", Some(v)) => t.server_port = parse_pair(v),
                ("port", Some(v)) => t.port = parse_pair(v),
                ("ssrc", Some(v)) => t.ssrc = parse_ssrc(v),
                ("ssrc", None) => {}
                // A token or a quoted string; quotes anywhere are dropped so that
                // `mode="  "d66` cannot keep one and read back differently.
                ("mode", Some(v)) => t.mode = Some(v.replace('"', "").trim().to_ascii_uppercase()),
                ("destination", v) => t.destination = v.map(str::to_string),
                ("source", v) => t.source = v.map(str::to_string),
                ("ttl", Some(v)) => t.ttl = v.parse().ok(),
                _ => t.other.push((name.to_string(), value.map(str::to_string))),
            }
        }
        Ok(t)
    }
}

/// The transport profiles we know (RFC 3550 AVP, RFC 3711 SAVP, RFC 4585 AVPF, RFC 5124
/// SAVPF), each with an optional `/UDP` or `/TCP` lower transport. Anything else is not
/// a transport we could carry, and an unknown token would not round-trip.
const PROFILES: &[&str] = &["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF"];

/// `a-b` or `a` (surrounding spaces tolerated).
fn parse_pair<T: std::str::FromStr>(v: &str) -> Option<(T, Option<T>)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, Some(b.trim().parse().ok()?))),
        None => Some((v.trim().parse().ok()?, None)),
    }
}

/// Reads an SSRC. RFC 2326 says 8 hex digits, but cameras send fewer digits (leading zeros
/// dropped), a leading space, a `0x` prefix, or a decimal number. Rules: with hex letters
/// or up to 8 digits it is hex; 9-10 decimal digits that fit a `u32` are decimal; anything
/// else is `None`.
pub fn parse_ssrc(v: &str) -> Option<u32> {
    let v = v.trim().trim_matches('"');
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if v.len() <= 8 {
        return u32::from_str_radix(v, 16).ok();
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok();
    }
    // Over-long hex: accept leading zeros only.
    let t = v.trim_start_matches('0');
    if t.len() <= 8 {
        u32::from_str_radix(if t.is_empty() { "0" } else { t }, 16).ok()
    } else {
        None
    }
}

fn write_pair<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    p: &(T, Option<T>),
) -> fmt::Result {
    match &p.1 {
        Some(b) => write!(f, ";{name}={}-{b}", p.0),
        None => write!(f, ";{name}={}", p.0),
    }
}

impl fmt::Display for Transport {
    /// The header value, `RTP/AVP/TCP;unicast;interleaved=0-1` style. SSRC is 8 hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.profile)?;
        if self.lower == LowerTransport::Tcp {
            f.write_str("/TCP")?;
        }
        match self.delivery {
            Some(Delivery::Unicast) => f.write_str(";unicast")?,
            Some(Delivery::Multicast) => f.write_str(";multicast")?,
            None => {}
        }
        if let Some(d) = &self.destination {
            write!(f, ";destination={d}")?;
        }
        if let Some(s) = &self.source {
            write!(f, ";source={s}")?;
        }
        if let Some(p) = &self.interleaved {
            write_pair(f, "interleaved", p)?;
        }
        if let Some(p) = &self.client_port {
            write_pair(f, "client_port", p)?;
        }
        if let Some(p) = &self.server_port {
            write_pair(f, "server_port", p)?;
        }
        if let Some(p) = &self.port {
            write_pair(f, "port", p)?;
        }
        if let Some(t) = self.ttl {
            write!(f, ";ttl={t}")?;
        }
        if let Some(s) = self.ssrc {
            write!(f, ";ssrc={s:08X}")?;
        }
        if let Some(m) = &self.mode {
            write!(f, ";mode={m}")?;
        }
        for (n, v) in &self.other {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Parses a `Transport` header value: comma-separated alternatives, in preference order.
/// Alternatives that fail to parse are skipped; an error only when none parses.
pub fn parse_transports(value: &str) -> Result<Vec<Transport>, HeaderError> {
    let mut out = Vec::new();
    let mut first_err = None;
    for spec in value.split(',') {
        if spec.trim().is_empty() {
            continue;
        }
        match Transport::parse(spec) {
            Ok(t) => out.push(t),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if out.is_empty() {
        return Err(first_err.unwrap_or(HeaderError::Empty("Transport")));
    }
    Ok(out)
}

/// Writes alternatives as one header value.
pub fn write_transports(ts: &[Transport]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A `Session` header: `id[;timeout=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    pub id: String,
    /// Seconds; `None` when absent, unparseable or 0 (use [`DEFAULT_SESSION_TIMEOUT`]).
    pub timeout: Option<u32>,
}

/// RFC 2326's default session timeout, seconds.
pub const DEFAULT_SESSION_TIMEOUT: u32 = 60;

impl SessionHeader {
    pub fn parse(value: &str) -> Result<SessionHeader, HeaderError> {
        let mut parts = value.split(';');
        let id = parts.next().unwrap_or_default().trim();
        if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(HeaderError::BadSession(clip(value)));
        }
        let mut timeout = None;
        for p in parts {
            if let Some((n, v)) = p.split_once('=') {
                if n.trim().eq_ignore_ascii_case("timeout") {
                    timeout = v.trim().trim_matches('"').parse().ok().filter(|&t| t > 0);
                }
            }
        }
        Ok(SessionHeader {
            id: id.to_string(),
            timeout,
        })
    }

    /// The timeout or the default, in seconds.
    pub fn timeout_or_default(&self) -> u32 {
        self.timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT)
    }
}

impl fmt::Display for SessionHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if let Some(t) = self.timeout {
            write!(f, ";timeout={t}")?;
        }
        Ok(())
    }
}

/// One stream of an `RTP-Info` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpInfo {
    pub url: String,
    pub seq: Option<u16>,
    pub rtptime: Option<u32>,
    pub ssrc: Option<u32>,
}

/// Parses `RTP-Info`. Entries are split at commas followed by `url=`, so commas inside
/// URLs survive. Bad `seq`/`rtptime` values are dropped (some cameras send garbage there).
pub fn parse_rtp_info(value: &str) -> Vec<RtpInfo> {
    let mut entries: Vec<String> = Vec::new();
    for piece in value.split(',') {
        let starts = piece.trim_start().to_ascii_lowercase().starts_with("url=");
        match entries.last_mut() {
            Some(last) if !starts => {
                last.push(',');
                last.push_str(piece);
            }
            _ => entries.push(piece.to_string()),
        }
    }
    entries
        .iter()
        .filter_map(|e| {
            let mut info = RtpInfo::default();
            let mut have_url = false;
            for p in e.split(';') {
                let Some((n, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim();
                match n.trim().to_ascii_lowercase().as_str() {
                    "url" => {
                        info.url = v.trim_matches('"').to_string();
                        have_url = true;
                    }
                    "seq" => info.seq = v.parse().ok(),
                    "rtptime" => info.rtptime = v.parse().ok(),
                    "ssrc" => info.ssrc = parse_ssrc(v),
                    _ => {}
                }
            }
            have_url.then_some(info)
        })
        .collect()
}

/// Writes an `RTP-Info` value.
pub fn write_rtp_info(infos: &[RtpInfo]) -> String {
    infos
        .iter()
        .map(|i| {
            let mut s = format!("url={}", i.url);
            if let Some(q) = i.seq {
                s.push_str(&format!(";seq={q}"));
            }
            if let Some(t) = i.rtptime {
                s.push_str(&format!(";rtptime={t}"));
            }
            if let Some(x) = i.ssrc {
                s.push_str(&format!(";ssrc={x:08X}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A normal play time point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NptTime {
    Now,
    Seconds(f64),
}

impl NptTime {
    fn parse(s: &str) -> Option<NptTime> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("now") {
            return Some(NptTime::Now);
        }
        // npt-hhmmss: h:mm:ss(.frac), or seconds(.frac)
        let secs = if s.contains(':') {
            let mut it = s.split(':');
            let h: f64 = it.next()?.parse().ok()?;
            let m: f64 = it.next()?.parse().ok()?;
            let sec: f64 = it.next()?.parse().ok()?;
            if it.next().is_some() {
                return None;
            }
            h * 3600.0 + m * 60.0 + sec
        } else {
            if !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return None;
            }
            s.parse().ok()?
        };
        (secs.is_finite() && secs >= 0.0).then_some(NptTime::Seconds(secs))
    }
}

impl fmt::Display for NptTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NptTime::Now => f.write_str("now"),
            NptTime::Seconds(s) => write!(f, "{s:.3}"),
        }
    }
}

/// A `Range` header.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Npt {
        start: Option<NptTime>,
        end: Option<NptTime>,
    },
    /// `clock=` or `smpte…=`: kept as the raw value.
    Other(String),
}

impl Range {
    /// `npt=0.000-`, the usual PLAY / RECORD range.
    pub fn from_start() -> Range {
        Range::Npt {
            start: Some(NptTime::Seconds(0.0)),
            end: None,
        }
    }

    pub fn parse(value: &str) -> Result<Range, HeaderError> {
        let v = value.split(';').next().unwrap_or_default().trim();
        let bad = || HeaderError::BadRange(clip(value));
        let Some((unit, spec)) = v.split_once('=') else {
            return Err(bad());
        };
        if !unit.trim().eq_ignore_ascii_case("npt") {
            return Ok(Range::Other(v.to_string()));
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let parse = |s: &str| -> Result<Option<NptTime>, HeaderError> {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                NptTime::parse(s).map(Some).ok_or_else(bad)
            }
        };
        Ok(Range::Npt {
            start: parse(a)?,
            end: parse(b)?,
        })
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::Npt { start, end } => {
                f.write_str("npt=")?;
                if let Some(s) = start {
                    write!(f, "{s}")?;
                }
                f.write_str("-")?;
                if let Some(e) = end {
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Range::Other(s) => f.write_str(s),
        }
    }
}

/// Parses a `Public` header (`OPTIONS, DESCRIBE, …`). Unknown methods are kept.
pub fn parse_public(value: &str) -> Vec<Method> {
    value
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(Method::parse)
        .collect()
}

/// Writes a `Public` value.
pub fn write_public(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_interleaved() {
        let t = Transport::parse("RTP/AVP/TCP;unicast;interleaved=0-1").unwrap();
        assert_eq!(t.lower, LowerTransport::Tcp);
        assert_eq!(t.interleaved, Some((0, Some(1))));
        assert_eq!(t.to_string(), "RTP/AVP/TCP;unicast;interleaved=0-1");
        assert_eq!(
            Transport::tcp_interleaved(2).to_string(),
            "RTP/AVP/TCP;unicast;interleaved=2-3"
        );
        // interleaved=N alone (go2rtc notes this form).
        let t = Transport::parse(
            "RTP/AVP/TCP;unicast;destination=1.2.3.4;source=5.6.7.8;interleaved=4",
        )
        .unwrap();
        assert_eq!(t.channels(), Some((4, Some(5))));
        assert_eq!(t.destination.as_deref(), Some("1.2.3.4"));
    }

    #[test]
    fn udp_with_ports_and_ssrc_forms() {
        let t = Transport::parse(
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=7CB694B4",
        )
        .unwrap();
        assert_eq!(t.lower, LowerTransport::Udp);
        assert_eq!(t.client_port, Some((5000, Some(5001))));
        assert_eq!(t.server_port, Some((6970, Some(6971))));
        assert_eq!(t.ssrc, Some(0x7CB6_94B4));
        for (s, v) in [
            ("ssrc= d6d6627", Some(0x0d6d_6627)), // Hikvision: leading space, 7 digits
            ("ssrc=30a98ee7", Some(0x30a9_8ee7)),
            ("ssrc=0x1234", Some(0x1234)),
            ("ssrc=3735928559", Some(3_735_928_559)), // decimal, 10 digits
            ("ssrc=", None),
            ("ssrc", None),
            ("ssrc=xyz", None),
            ("ssrc=99999999999", None),
        ] {
            let t = Transport::parse(&format!("RTP/AVP/UDP;unicast;{s}")).unwrap();
            assert_eq!(t.ssrc, v, "{s}");
        }
    }

    #[test]
    fn mode_and_alternatives() {
        let ts = parse_transports(r#"RTP/AVP/TCP;unicast;interleaved=0-1;mode="PLAY", RTP/AVP;unicast;client_port=5000-5001;mode=record"#).unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].mode.as_deref(), Some("PLAY"));
        assert!(ts[1].is_record());
        assert!(!ts[1].is_interleaved());
        // A bad alternative is skipped.
        let ts = parse_transports("FOO, RTP/AVP/TCP;interleaved=0-1").unwrap();
        assert_eq!(ts.len(), 1);
        assert!(parse_transports("").is_err());
        assert!(parse_transports("RTP/AVP/TCP;interleaved=300-301").is_err());
        assert!(parse_transports("RTP/AVP/SCTP").is_err());
    }

    #[test]
    fn control_characters_and_unknown_profiles_are_refused() {
        // The transport_header fuzz target's minimized crash (issue #13): the form feed
        // stayed in the profile, and writing and re-parsing gave another value.
        let crash = "RTP/AV\x0c/UDP;un01;s+H010;ssrc=37,3";
        assert!(Transport::parse(crash).is_err());
        assert!(parse_transports(crash).is_err());
        let fixture =
            include_bytes!("../../fuzz/corpus/transport_header/seed-crash-ctl-in-profile");
        assert!(parse_transports(&String::from_utf8_lossy(fixture)).is_err());
        // The second crash, found by a 10-minute run: a quote left after trimming `mode`.
        let fixture = include_bytes!("../../fuzz/corpus/transport_header/seed-crash-mode-quote");
        for t in parse_transports(&String::from_utf8_lossy(fixture)).unwrap() {
            assert_eq!(t.mode.as_deref(), Some("D66"));
            assert_eq!(Transport::parse(&t.to_string()).unwrap(), t);
        }
        for bad in [
            "RTP/AVP;unicast;client_port=5000-5001\x01",
            "RTP/AVP;x\x7f=1",
            "RTP/AVP;\x00",
            "RTP/AVP;a b=1",
            "RTP/AVP;=1",
            "RTP/FOO",
            "RAW/RAW/UDP",
            "RTP",
            "RTP/AVP/TCP/X",
        ] {
            assert!(Transport::parse(bad).is_err(), "{bad:?}");
        }
        for (good, profile, lower) in [
            ("rtp/avp", "RTP/AVP", LowerTransport::Udp),
            ("RTP/AVP/UDP;unicast", "RTP/AVP", LowerTransport::Udp),
            ("RTP/SAVP;unicast", "RTP/SAVP", LowerTransport::Udp),
            (
                "RTP/AVPF/TCP;interleaved=0-1",
                "RTP/AVPF",
                LowerTransport::Tcp,
            ),
            ("RTP/SAVPF/TCP", "RTP/SAVPF", LowerTransport::Tcp),
        ] {
            let t = Transport::parse(good).unwrap();
            assert_eq!((t.profile.as_str(), t.lower), (profile, lower), "{good}");
            assert_eq!(Transport::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn escam_udp_profile_with_interleaved() {
        let t = Transport::parse(
            "RTP/AVP;unicast;destination=192.168.1.111;source=192.168.1.222;interleaved=0-1",
        )
        .unwrap();
        assert!(t.is_interleaved());
    }

    #[test]
    fn session() {
        let s = SessionHeader::parse("9a90de54; timeout=60").unwrap();
        assert_eq!((s.id.as_str(), s.timeout), ("9a90de54", Some(60)));
        assert_eq!(
            SessionHeader::parse("F8F8E425")
                .unwrap()
                .timeout_or_default(),
            60
        );
        assert_eq!(SessionHeader::parse("x;timeout=0").unwrap().timeout, None);
        assert_eq!(
            SessionHeader::parse("x;Timeout = 30").unwrap().timeout,
            Some(30)
        );
        assert!(SessionHeader::parse(" ;timeout=5").is_err());
        assert_eq!(
            SessionHeader::parse("abc;timeout=10").unwrap().to_string(),
            "abc;timeout=10"
        );
    }

    #[test]
    fn rtp_info() {
        let v = parse_rtp_info("url=trackID=1;seq=16852;rtptime=1070938629;ssrc=dcc4a0d8,url=rtsp://h/a?x=1,2/trackID=2;seq=39409;rtptime=3075976528");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].url, "trackID=1");
        assert_eq!(v[0].seq, Some(16852));
        assert_eq!(v[0].ssrc, Some(0xdcc4_a0d8));
        assert_eq!(v[1].url, "rtsp://h/a?x=1,2/trackID=2");
        assert_eq!(v[1].rtptime, Some(3_075_976_528));
        let w = write_rtp_info(&v);
        assert_eq!(parse_rtp_info(&w), v);
        assert!(parse_rtp_info("seq=1").is_empty());
    }

    #[test]
    fn range() {
        assert_eq!(Range::parse("npt=0.000-").unwrap(), Range::from_start());
        assert_eq!(Range::from_start().to_string(), "npt=0.000-");
        assert_eq!(
            Range::parse("npt=now-").unwrap(),
            Range::Npt {
                start: Some(NptTime::Now),
                end: None
            }
        );
        assert_eq!(
            Range::parse("npt=0:01:02.5-120").unwrap(),
            Range::Npt {
                start: Some(NptTime::Seconds(62.5)),
                end: Some(NptTime::Seconds(120.0))
            }
        );
        assert!(matches!(
            Range::parse("clock=19961108T142300Z-").unwrap(),
            Range::Other(_)
        ));
        assert!(Range::parse("npt=abc-").is_err());
        assert!(Range::parse("npt").is_err());
    }

    #[test]
    fn public() {
        let m =
            parse_public("OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, X-FOO");
        assert!(m.contains(&Method::GetParameter));
        assert!(m.contains(&Method::Other("X-FOO".into())));
        assert_eq!(
            write_public(&[Method::Options, Method::Play]),
            "OPTIONS, PLAY"
        );
    }
}
