//! RTSP/1.0 requests and responses (RFC 2326 section 6 and 7).
//!
//! Parsing is lenient in the ways real cameras need (bare `\n` line ends, folded header
//! lines, whitespace around names and values, a missing reason phrase, non-UTF-8 bytes) and
//! strict where a mistake would desynchronize the stream (`Content-Length`).
//! Framing (where a message ends on a TCP stream) is the job of [`crate::proto::codec`].

use std::fmt;

/// The protocol version written in requests and responses.
pub const VERSION: &str = "RTSP/1.0";

/// An RTSP method. Unknown (extension) methods are kept as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Options,
    Describe,
    Announce,
    Setup,
    Play,
    Pause,
    Record,
    Teardown,
    GetParameter,
    SetParameter,
    /// Any other method token, as received.
    Other(String),
}

impl Method {
    /// The known methods, in the order a `Public` header usually lists them.
    pub const KNOWN: [Method; 10] = [
        Method::Options,
        Method::Describe,
        Method::Announce,
        Method::Setup,
        Method::Play,
        Method::Pause,
        Method::Record,
        Method::Teardown,
        Method::GetParameter,
        Method::SetParameter,
    ];

    /// The method token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Record => "RECORD",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Other(s) => s,
        }
    }

    /// Parses a method token. Known methods are matched case-sensitively (RFC 2326 15.1);
    /// anything else becomes [`Method::Other`].
    pub fn parse(s: &str) -> Method {
        Method::KNOWN
            .iter()
            .find(|m| m.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Method::Other(s.to_string()))
    }

    /// Whether `s` is one of the known method tokens.
    pub fn is_known(s: &str) -> bool {
        Method::KNOWN.iter().any(|m| m.as_str() == s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Message headers: an ordered list of (name, value) pairs. Lookup is case-insensitive,
/// repeated headers are kept in order, names keep the case they were given (some cameras
/// want exactly `CSeq`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a header, keeping any existing one with the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Replaces every header `name` with one `name: value` (at the position of the first).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if let Some(i) = self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            self.entries[i] = (name.clone(), value);
            let mut j = 0;
            self.entries.retain(|(n, _)| {
                j += 1;
                j - 1 <= i || !n.eq_ignore_ascii_case(&name)
            });
        } else {
            self.entries.push((name, value));
        }
    }

    /// Removes every header `name`; returns whether any was present.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before != self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `CSeq`, leniently: surrounding whitespace is ignored (`CSeq: 1 ` is common).
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq")?.trim().parse().ok()
    }

    /// The declared body length. `Ok(None)` when absent; an error when malformed, or when
    /// repeated with different values (a request-smuggling classic).
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut found: Option<usize> = None;
        for v in self.get_all("Content-Length") {
            let t = v.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadContentLength(truncate(t)));
            }
            let n: usize = t
                .parse()
                .map_err(|_| ParseError::BadContentLength(truncate(t)))?;
            match found {
                Some(prev) if prev != n => return Err(ParseError::ConflictingContentLength),
                _ => found = Some(n),
            }
        }
        Ok(found)
    }

    fn write(&self, out: &mut Vec<u8>, skip_content_length: bool) {
        for (n, v) in &self.entries {
            if skip_content_length && n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            write_header(out, n, v);
        }
    }
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // A CR or LF in a name or value would inject headers: replace them.
    out.extend(name.bytes().map(|b| match b {
        b'\r' | b'\n' | b':' => b'-',
        b => b,
    }));
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(|b| match b {
        b'\r' | b'\n' => b' ',
        b => b,
    }));
    out.extend_from_slice(b"\r\n");
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Why a message head could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message head")]
    Empty,
    #[error("malformed request line {0:?}")]
    BadRequestLine(String),
    #[error("malformed status line {0:?}")]
    BadStatusLine(String),
    #[error("unsupported protocol version {0:?}")]
    BadVersion(String),
    #[error("bad status code {0:?}")]
    BadStatusCode(String),
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("body is {actual} bytes but Content-Length says {declared}")]
    BodyLengthMismatch { declared: usize, actual: usize },
    #[error("incomplete message")]
    Incomplete,
}

/// An RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The request URI as sent (`rtsp://host/path`, or `*` for OPTIONS).
    pub uri: String,
    /// `RTSP/1.0` normally.
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Request {
            method,
            uri: uri.into(),
            version: VERSION.to_string(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Appends the wire form to `out`. `Content-Length` is written from the body (any
    /// `Content-Length` header is ignored); CR/LF inside header values are replaced.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend(
            self.uri
                .bytes()
                .map(|b| if b.is_ascii_whitespace() { b'+' } else { b }),
        );
        out.push(b' ');
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.headers.write(out, true);
        write_body(out, &self.body);
    }

    /// Parses one complete request (head and body). For a byte stream use the decoder.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        match parse_complete(bytes)? {
            Message::Request(r) => Ok(r),
            Message::Response(_) => Err(ParseError::BadRequestLine(first_line(bytes))),
        }
    }
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the standard reason phrase for `status`.
    pub fn new(status: u16) -> Self {
        Response {
            version: VERSION.to_string(),
            status,
            reason: reason_phrase(status).to_string(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Appends the wire form to `out` (see [`Request::write_to`]).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(format!(" {} ", self.status).as_bytes());
        out.extend(self.reason.bytes().map(|b| match b {
            b'\r' | b'\n' => b' ',
            b => b,
        }));
        out.extend_from_slice(b"\r\n");
        self.headers.write(out, true);
        write_body(out, &self.body);
    }

    /// Parses one complete response (head and body). For a byte stream use the decoder.
    pub fn parse(bytes: &[u8]) -> Result<Response, ParseError> {
        match parse_complete(bytes)? {
            Message::Response(r) => Ok(r),
            Message::Request(_) => Err(ParseError::BadStatusLine(first_line(bytes))),
        }
    }
}

/// What requests and responses share: builder-style headers and body, the
/// CSeq, and the wire form as a fresh buffer.
macro_rules! message_common {
    ($t:ty) => {
        impl $t {
            /// Builder-style header append.
            pub fn with_header(
                mut self,
                name: impl Into<String>,
                value: impl Into<String>,
            ) -> Self {
                self.headers.append(name, value);
                self
            }

            pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
                self.body = body.into();
                self
            }

            pub fn cseq(&self) -> Option<u32> {
                self.headers.cseq()
            }

            pub fn to_bytes(&self) -> Vec<u8> {
                let mut v = Vec::new();
                self.write_to(&mut v);
                v
            }
        }
    };
}

message_common!(Request);
message_common!(Response);

fn write_body(out: &mut Vec<u8>, body: &[u8]) {
    if !body.is_empty() {
        write_header(out, "Content-Length", &body.len().to_string());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The standard reason phrase for a status code (RFC 2326 7.1.1), or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        250 => "Low on Storage Space",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        305 => "Use Proxy",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        452 => "Conference Not Found",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        458 => "Parameter Is Read-Only",
        459 => "Aggregate operation not allowed",
        460 => "Only aggregate operation allowed",
        461 => "Unsupported transport",
        462 => "Destination unreachable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => "",
    }
}

/// A parsed request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    truncate(String::from_utf8_lossy(&bytes[..end]).trim_end())
}

/// Where the head ends: the index just past the empty line, or `None` if not there yet.
/// Accepts `\r\n\r\n`, `\n\n` and mixes. Scanning restarts at `from` (a previous result of
/// the scan over a prefix), so feeding one byte at a time stays linear.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + buf.get(i..)?.iter().position(|&b| b == b'\n')?;
        // The line after this newline is empty if it is "\n" or "\r\n".
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// A parsed message head, before the body is attached.
#[derive(Debug)]
pub(crate) enum Head {
    Request {
        method: Method,
        uri: String,
        version: String,
        headers: Headers,
    },
    Response {
        version: String,
        status: u16,
        reason: String,
        headers: Headers,
    },
}

impl Head {
    pub(crate) fn headers(&self) -> &Headers {
        match self {
            Head::Request { headers, .. } | Head::Response { headers, .. } => headers,
        }
    }

    pub(crate) fn into_message(self, body: Vec<u8>) -> Message {
        match self {
            Head::Request {
                method,
                uri,
                version,
                headers,
            } => Message::Request(Request {
                method,
                uri,
                version,
                headers,
                body,
            }),
            Head::Response {
                version,
                status,
                reason,
                headers,
            } => Message::Response(Response {
                version,
                status,
                reason,
                headers,
                body,
            }),
        }
    }
}

fn is_rtsp_version(v: &str) -> bool {
    v.len() == 8 && v.starts_with("RTSP/") && {
        let b = v.as_bytes();
        b[5].is_ascii_digit() && b[6] == b'.' && b[7].is_ascii_digit()
    }
}

/// Parses a message head (start line and headers, with or without the final empty line).
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, ParseError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    // Tolerate stray empty lines before the start line.
    let start = loop {
        match lines.next() {
            None => return Err(ParseError::Empty),
            Some(l) if l.trim().is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut headers = Headers::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: continue the previous value.
            if let Some((_, v)) = headers.entries.last_mut() {
                let cont = line.trim();
                if !cont.is_empty() {
                    if !v.is_empty() {
                        v.push(' ');
                    }
                    v.push_str(cont);
                }
            }
            continue;
        }
        // A line without a colon, or whose name is not a token (RFC 2326 §15: no
        // control characters or spaces), is ignored rather than failing the message.
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if !n.is_empty() && !n.contains(|c: char| c.is_control() || c.is_whitespace()) {
                headers.append(n, v.trim());
            }
        }
    }

    if start.starts_with("RTSP/") {
        let mut parts = start.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !is_rtsp_version(version) {
            return Err(ParseError::BadVersion(truncate(version)));
        }
        let code = parts.next().unwrap_or_default().trim();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode(truncate(code)));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::BadStatusCode(truncate(code)))?;
        if status < 100 {
            return Err(ParseError::BadStatusCode(truncate(code)));
        }
        let reason = parts.next().unwrap_or_default().trim().to_string();
        Ok(Head::Response {
            version: version.to_string(),
            status,
            reason,
            headers,
        })
    } else {
        let mut parts = start.split(' ').filter(|p| !p.is_empty());
        let (Some(method), Some(uri), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::BadRequestLine(truncate(start)));
        };
        if !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || uri.contains(char::is_control)
        {
            return Err(ParseError::BadRequestLine(truncate(start)));
        }
        if !is_rtsp_version(version) {
            return Err(ParseError::BadVersion(truncate(version)));
        }
        Ok(Head::Request {
            method: Method::parse(method),
            uri: uri.to_string(),
            version: version.to_string(),
            headers,
        })
    }
}

/// Parses a complete message. The body must be exactly `Content-Length` bytes.
pub fn parse_complete(bytes: &[u8]) -> Result<Message, ParseError> {
    let end = find_head_end(bytes, 0).ok_or(ParseError::Incomplete)?;
    let head = parse_head(&bytes[..end])?;
    let declared = head.headers().content_length()?.unwrap_or(0);
    let body = &bytes[end..];
    if body.len() != declared {
        return Err(ParseError::BodyLengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    Ok(head.into_message(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_request_with_folding_and_repeats() {
        let raw = b"DESCRIBE rtsp://cam/live RTSP/1.0\r\nCSeq: 2 \r\nX-Long: a\r\n  b\r\n\tc\r\nx-rep: 1\r\nX-Rep: 2\r\nAccept:application/sdp\r\n\r\n";
        let r = Request::parse(raw).unwrap();
        assert_eq!(r.method, Method::Describe);
        assert_eq!(r.uri, "rtsp://cam/live");
        assert_eq!(r.cseq(), Some(2));
        assert_eq!(r.headers.get("x-long"), Some("a b c"));
        assert_eq!(r.headers.get_all("X-REP").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(r.headers.get("accept"), Some("application/sdp"));
    }

    #[test]
    fn parse_response_lf_only_no_reason() {
        let raw = b"RTSP/1.0 200\nCSeq: 1\nContent-Length: 3\n\nabc";
        let r = Response::parse(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "");
        assert_eq!(r.body, b"abc");
    }

    #[test]
    fn unknown_method_roundtrip() {
        let mut req = Request::new(Method::parse("FOO_BAR"), "*");
        req.headers.append("CSeq", "7");
        let bytes = req.to_bytes();
        assert_eq!(bytes, b"FOO_BAR * RTSP/1.0\r\nCSeq: 7\r\n\r\n");
        assert_eq!(Request::parse(&bytes).unwrap(), req);
    }

    #[test]
    fn serialize_sets_content_length_and_strips_injection() {
        let req = Request::new(Method::Announce, "rtsp://h/x")
            .with_header("CSeq", "3")
            .with_header("Content-Length", "999")
            .with_header("X-Evil", "a\r\nInjected: yes")
            .with_body(b"v=0\r\n".to_vec());
        let bytes = req.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(!text.contains("999"));
        assert!(!text.contains("\r\nInjected"));
        let back = Request::parse(&bytes).unwrap();
        assert_eq!(back.body, b"v=0\r\n");
    }

    #[test]
    fn response_roundtrip() {
        let res = Response::new(454)
            .with_header("CSeq", "9")
            .with_body(b"x".to_vec());
        let b = res.to_bytes();
        assert!(b.starts_with(b"RTSP/1.0 454 Session Not Found\r\n"));
        let mut back = Response::parse(&b).unwrap();
        assert!(back.headers.remove("content-length"));
        assert_eq!(back, res);
    }

    #[test]
    fn content_length_errors() {
        assert_eq!(
            Response::parse(b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::BadContentLength("-1".into()))
        );
        assert_eq!(
            Response::parse(b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nx"),
            Err(ParseError::ConflictingContentLength)
        );
        assert!(Response::parse(
            b"RTSP/1.0 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"
        )
        .is_err());
    }

    #[test]
    fn bad_start_lines() {
        assert!(matches!(
            Response::parse(b"RTSP/1.0 2x0 OK\r\n\r\n"),
            Err(ParseError::BadStatusCode(_))
        ));
        assert!(matches!(
            Response::parse(b"RTSP/9 200 OK\r\n\r\n"),
            Err(ParseError::BadVersion(_))
        ));
        assert!(matches!(
            Request::parse(b"PLAY rtsp://x\r\n\r\n"),
            Err(ParseError::BadRequestLine(_))
        ));
        assert!(matches!(
            Request::parse(b"PLAY rtsp://x HTTP/1.1\r\n\r\n"),
            Err(ParseError::BadVersion(_))
        ));
        // RFC 2326 §15: no control characters in the URI or in header names.
        assert!(matches!(
            Request::parse(b"PLAY rtsp://x/a\x0cb RTSP/1.0\r\n\r\n"),
            Err(ParseError::BadRequestLine(_))
        ));
        let r = Request::parse(
            b"PLAY rtsp://x RTSP/1.0\r\nCSeq: 1\r\nSes\x0bsion: 5\r\nA B: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.headers.get("CSeq"), Some("1"));
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn headers_set_replaces_all() {
        let mut h = Headers::new();
        h.append("A", "1");
        h.append("B", "x");
        h.append("a", "2");
        h.set("A", "3");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("A", "3"), ("B", "x")]);
        h.set("C", "4");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn head_end_variants() {
        assert_eq!(find_head_end(b"a\r\n\r\nxyz", 0), Some(5));
        assert_eq!(find_head_end(b"a\n\nxyz", 0), Some(3));
        assert_eq!(find_head_end(b"a\r\n\nxyz", 0), Some(4));
        assert_eq!(find_head_end(b"a\r\nb\r\n", 0), None);
    }
}
