//! ONVIF's SOAP messages, sans IO: the requests we send (with a WS-Security
//! UsernameToken) and what we read from the answers. Pure functions over
//! bytes, so each camera quirk is a unit test (`testdata/`).

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use thiserror::Error;

use crate::xml::{self, Element, XmlError};

pub const NS_MEDIA: &str = "http://www.onvif.org/ver10/media/wsdl";

/// Why a device did not give us what we asked for. The words "unauthorized"
/// and "not found" put a failure on the host's list of lasting ones
/// (retried slowly).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SoapError {
    /// ONVIF's `ter:NotAuthorized` fault or an HTTP 401: the words match the
    /// host's list of lasting failures (retried slowly).
    #[error("onvif: unauthorized: wrong user or password ({0})")]
    Unauthorized(String),
    #[error("onvif: SOAP fault: {0}")]
    Fault(String),
    #[error("onvif: bad answer: {0}")]
    Xml(#[from] XmlError),
    #[error("onvif: media service not found (neither GetCapabilities nor GetServices names one)")]
    NoMediaService,
    #[error("onvif: media profiles not found (GetProfiles lists none)")]
    NoProfiles,
    #[error("onvif: profile {0:?} not found (profiles: {1})")]
    NoSuchProfile(String, String),
    #[error("onvif: the answer to {0} has no Uri")]
    NoUri(&'static str),
}

/// The `<s:Envelope>` around `body`, with a UsernameToken when `user` is set.
/// `nonce` are random bytes and `created` the UTC time (RFC 3339) the digest
/// is made of; both are the caller's, so this stays deterministic.
pub fn envelope(body: &str, user: Option<(&str, &str)>, nonce: &[u8], created: &str) -> String {
    let mut s = String::with_capacity(1024 + body.len());
    s.push_str(concat!(
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope""#,
        r#" xmlns:tt="http://www.onvif.org/ver10/schema""#,
        r#" xmlns:tds="http://www.onvif.org/ver10/device/wsdl""#,
        r#" xmlns:trt="http://www.onvif.org/ver10/media/wsdl">"#,
    ));
    if let Some((name, password)) = user {
        let b64 = base64::engine::general_purpose::STANDARD;
        s.push_str(concat!(
            r#"<s:Header><wsse:Security s:mustUnderstand="1""#,
            r#" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd""#,
            r#" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>",
        ));
        s.push_str(&xml::escape(name));
        s.push_str(concat!(
            "</wsse:Username>",
            r#"<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">"#,
        ));
        s.push_str(&password_digest(nonce, created, password));
        s.push_str(concat!(
            "</wsse:Password>",
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">"#,
        ));
        s.push_str(&b64.encode(nonce));
        s.push_str("</wsse:Nonce><wsu:Created>");
        s.push_str(created);
        s.push_str("</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>");
    }
    s.push_str("<s:Body>");
    s.push_str(body);
    s.push_str("</s:Body></s:Envelope>");
    s
}

/// WS-Security UsernameToken Profile 1.0 §3.1: Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// UTC time as RFC 3339 with milliseconds (`2026-12-02T07:45:01.123Z`).
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

pub const GET_CAPABILITIES: &str =
    "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>";
pub const GET_SERVICES: &str =
    "<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>";
pub const GET_DEVICE_INFORMATION: &str = "<tds:GetDeviceInformation/>";
pub const GET_SYSTEM_DATE_AND_TIME: &str = "<tds:GetSystemDateAndTime/>";
pub const GET_PROFILES: &str = "<trt:GetProfiles/>";
pub const GET_SERVICE_CAPABILITIES: &str = "<trt:GetServiceCapabilities/>";

pub fn get_stream_uri(token: &str) -> String {
    format!(
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>\
         <tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>\
         <trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
        xml::escape(token)
    )
}

pub fn get_snapshot_uri(token: &str) -> String {
    format!(
        "<trt:GetSnapshotUri><trt:ProfileToken>{}</trt:ProfileToken></trt:GetSnapshotUri>",
        xml::escape(token)
    )
}

/// Reads an answer: the document, or the SOAP fault it carries.
pub fn read(body: &[u8]) -> Result<Element, SoapError> {
    let doc = xml::parse(body)?;
    if let Some(fault) = doc.find("Fault") {
        return Err(fault_error(fault));
    }
    Ok(doc)
}

/// SOAP 1.2 faults: `Code/Value`, `Code/Subcode/Value` (ONVIF puts
/// `ter:NotAuthorized` there) and `Reason/Text`; SOAP 1.1's `faultcode` and
/// `faultstring` from older firmware.
fn fault_error(fault: &Element) -> SoapError {
    let mut codes = Vec::new();
    let mut values = Vec::new();
    fault.find_all("Value", &mut values);
    for v in values {
        codes.push(v.value().to_string());
    }
    if let Some(c) = fault.find_value("faultcode") {
        codes.push(c.to_string());
    }
    let reason = fault
        .find_value("Text")
        .or_else(|| fault.find_value("faultstring"))
        .unwrap_or("")
        .to_string();
    let code = codes
        .iter()
        .rev()
        .find(|c| !c.is_empty())
        .cloned()
        .unwrap_or_default();
    let local = code.rsplit_once(':').map_or(code.as_str(), |(_, l)| l);
    let text = match (local.is_empty(), reason.is_empty()) {
        (false, false) => format!("{local}: {reason}"),
        (false, true) => local.to_string(),
        _ => reason.clone(),
    };
    let lower = format!("{code} {reason}").to_ascii_lowercase();
    // Hikvision answers `ter:NotAuthorized`, Dahua a `Sender not
    // authorized` text, some firmware only `FailedAuthentication`.
    if lower.contains("notauthorized")
        || lower.contains("not authorized")
        || lower.contains("failedauthentication")
    {
        return SoapError::Unauthorized(text);
    }
    SoapError::Fault(text)
}

/// The media service's address from a GetCapabilitiesResponse.
pub fn media_xaddr_from_capabilities(doc: &Element) -> Option<String> {
    let caps = doc.find("Capabilities")?;
    let media = caps.find("Media")?;
    media.child("XAddr").map(|x| x.value().to_string())
}

/// The media (ver10) service's address from a GetServicesResponse.
pub fn media_xaddr_from_services(doc: &Element) -> Option<String> {
    let mut services = Vec::new();
    doc.find_all("Service", &mut services);
    services
        .into_iter()
        .find(|s| s.find_value("Namespace") == Some(NS_MEDIA))
        .and_then(|s| s.find_value("XAddr"))
        .map(str::to_string)
}

/// One media profile of a GetProfilesResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub token: String,
    pub name: String,
    /// Of the profile's video encoder, when it has one (`H264`, `JPEG`, ...).
    pub encoding: String,
    pub width: u32,
    pub height: u32,
}

impl Profile {
    /// `H264 1920x1080`, or what part of it is known.
    pub fn describe(&self) -> String {
        let mut s = self.encoding.clone();
        if self.width > 0 && self.height > 0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!("{}x{}", self.width, self.height));
        }
        s
    }
}

pub fn profiles(doc: &Element) -> Vec<Profile> {
    let mut found = Vec::new();
    doc.find_all("Profiles", &mut found);
    found
        .into_iter()
        .filter_map(|p| {
            let token = p.attr("token")?.trim().to_string();
            if token.is_empty() {
                return None;
            }
            let venc = p.child("VideoEncoderConfiguration");
            let res = venc.and_then(|v| v.child("Resolution"));
            let num = |n: &str| {
                res.and_then(|r| r.find_value(n))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some(Profile {
                token,
                name: p
                    .child("Name")
                    .map(|n| n.value().to_string())
                    .unwrap_or_default(),
                encoding: venc
                    .and_then(|v| v.child("Encoding"))
                    .map(|e| e.value().to_string())
                    .unwrap_or_default(),
                width: num("Width"),
                height: num("Height"),
            })
        })
        .collect()
}

/// The profile `subtype` names: a token first, then (as go2rtc) a number as
/// the index; empty means the first profile.
pub fn pick_profile<'a>(profiles: &'a [Profile], subtype: &str) -> Result<&'a Profile, SoapError> {
    if profiles.is_empty() {
        return Err(SoapError::NoProfiles);
    }
    if subtype.is_empty() {
        return Ok(&profiles[0]);
    }
    if let Some(p) = profiles.iter().find(|p| p.token == subtype) {
        return Ok(p);
    }
    if let Some(p) = subtype.parse::<usize>().ok().and_then(|i| profiles.get(i)) {
        return Ok(p);
    }
    let names: Vec<&str> = profiles.iter().map(|p| p.token.as_str()).collect();
    Err(SoapError::NoSuchProfile(
        subtype.to_string(),
        names.join(", "),
    ))
}

/// The `Uri` of a GetStreamUri/GetSnapshotUri answer.
pub fn media_uri(doc: &Element, what: &'static str) -> Result<String, SoapError> {
    doc.find("MediaUri")
        .and_then(|m| m.find_value("Uri"))
        .or_else(|| doc.find_value("Uri"))
        .map(str::to_string)
        .ok_or(SoapError::NoUri(what))
}

/// The device's clock from a GetSystemDateAndTimeResponse, in seconds since
/// the Unix epoch: `UTCDateTime`'s `Date` and `Time`.
pub fn device_clock(doc: &Element) -> Option<u64> {
    let utc = doc.find("UTCDateTime")?;
    let num = |parent: &str, name: &str| -> Option<i64> {
        utc.child(parent)?.find_value(name)?.parse().ok()
    };
    let (y, mo, d) = (
        num("Date", "Year")?,
        num("Date", "Month")?,
        num("Date", "Day")?,
    );
    let (h, mi, s) = (
        num("Time", "Hour")?,
        num("Time", "Minute")?,
        num("Time", "Second")?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs).ok()
}

/// Howard Hinnant's days-from-civil: days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a media GetServiceCapabilitiesResponse has `SnapshotUri="true"`.
pub fn snapshot_capable(doc: &Element) -> bool {
    doc.find("Capabilities")
        .and_then(|c| c.attr("SnapshotUri"))
        .is_some_and(|v| v.trim() == "true" || v.trim() == "1")
}

/// `Manufacturer Model` from a GetDeviceInformationResponse.
pub fn device_name(doc: &Element) -> String {
    let parts: Vec<&str> = ["Manufacturer", "Model"]
        .iter()
        .filter_map(|n| doc.find_value(n))
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests;
