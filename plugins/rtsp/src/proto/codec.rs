//! The RTSP-over-TCP stream decoder: requests, responses and `$` interleaved binary frames
//! (RFC 2326 10.12) mixed on one connection, in any chunking.
//!
//! ```
//! use camrouter_rtsp::proto::{Decoder, Item};
//! let mut dec = Decoder::new();
//! dec.push(b"$\x00\x00\x02hiRTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
//! assert!(matches!(dec.poll(), Some(Ok(Item::Interleaved { channel: 0, .. }))));
//! assert!(matches!(dec.poll(), Some(Ok(Item::Response(_)))));
//! assert!(dec.poll().is_none());
//! ```
//!
//! Interleaved frames are accepted in any state (cameras send RTCP before the `PLAY`
//! response). After bytes that start neither a message nor a frame, the decoder reports one
//! [`DecodeError::Garbage`] per skipped run and resumes at the next `RTSP/1.x`, known method
//! name followed by a space, or plausible `$` frame (an RTP/RTCP version-2 payload).
//! Every error carries the byte offset (from the start of the stream) where it happened.
//!
//! Memory: the decoder holds at most one message head (≤ [`Limits::max_header`]), one body
//! (≤ [`Limits::max_body`]) or one interleaved frame (≤ 65535 + 4), plus whatever was pushed
//! and not yet polled: call [`Decoder::poll`] until it returns `None` after each push.

use super::message::{find_head_end, parse_head, Message, ParseError, Request, Response};

/// Size limits for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted message head (start line and headers). Default 64 KiB.
    pub max_header: usize,
    /// Longest accepted body (`Content-Length`). Default 4 MiB.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 64 * 1024,
            max_body: 4 * 1024 * 1024,
        }
    }
}

/// One decoded unit of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Request(Request),
    Response(Response),
    /// A `$` frame: `channel` and the payload (normally one RTP or RTCP packet).
    Interleaved {
        channel: u8,
        data: Vec<u8>,
    },
}

/// A decoding problem. None is fatal: the decoder skips the offending bytes and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("garbage at byte {offset}: skipped {len} bytes")]
    Garbage { offset: u64, len: usize },
    #[error("message head at byte {offset} longer than {limit} bytes")]
    HeaderTooLarge { offset: u64, limit: usize },
    #[error("body of {len} bytes at byte {offset} exceeds the {limit} byte limit; skipped")]
    BodyTooLarge {
        offset: u64,
        len: usize,
        limit: usize,
    },
    #[error("malformed message at byte {offset}: {source}")]
    Malformed { offset: u64, source: ParseError },
    #[error("stream ended inside a message or frame at byte {offset} ({len} bytes left)")]
    Truncated { offset: u64, len: usize },
}

impl DecodeError {
    /// The stream offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            DecodeError::Garbage { offset, .. }
            | DecodeError::HeaderTooLarge { offset, .. }
            | DecodeError::BodyTooLarge { offset, .. }
            | DecodeError::Malformed { offset, .. }
            | DecodeError::Truncated { offset, .. } => *offset,
        }
    }
}

/// Returned by [`encode_interleaved`] for a payload over 65535 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interleaved payload of {0} bytes exceeds 65535")]
pub struct FrameTooLarge(pub usize);

/// Appends `$`, `channel`, the 16-bit length and `payload` to `out`.
pub fn encode_interleaved(
    channel: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameTooLarge> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameTooLarge(payload.len()))?;
    out.reserve(4 + payload.len());
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The longest sync token: `SET_PARAMETER ` / `GET_PARAMETER `.
const MAX_TOKEN: usize = 14;

#[derive(Debug, PartialEq, Eq)]
enum Sync {
    /// A message or frame starts here.
    Yes,
    /// Too few bytes to tell.
    Maybe,
    No,
}

fn token_sync(data: &[u8], token: &[u8]) -> Sync {
    if data.len() >= token.len() {
        if data.starts_with(token) {
            Sync::Yes
        } else {
            Sync::No
        }
    } else if token.starts_with(data) {
        Sync::Maybe
    } else {
        Sync::No
    }
}

/// Whether a message (response or known-method request) starts at `data`.
fn message_sync(data: &[u8]) -> Sync {
    let mut maybe = false;
    let tokens = super::message::Method::KNOWN;
    for t in std::iter::once(&b"RTSP/"[..]).chain(tokens.iter().map(|m| m.as_str().as_bytes())) {
        let s = if t == b"RTSP/" {
            token_sync(data, t)
        } else {
            // method followed by a space
            match token_sync(data, t) {
                Sync::Yes => match data.get(t.len()) {
                    Some(b' ') => Sync::Yes,
                    Some(_) => Sync::No,
                    None => Sync::Maybe,
                },
                s => s,
            }
        };
        match s {
            Sync::Yes => return Sync::Yes,
            Sync::Maybe => maybe = true,
            Sync::No => {}
        }
    }
    if maybe {
        Sync::Maybe
    } else {
        Sync::No
    }
}

/// During resync, a `$` is only trusted when its payload looks like RTP/RTCP version 2.
fn frame_sync(data: &[u8]) -> Sync {
    match data {
        [] => Sync::No,
        [b'$', ..] if data.len() < 5 => Sync::Maybe,
        [b'$', _, l0, l1, first, ..] => {
            let len = u16::from_be_bytes([*l0, *l1]);
            if len >= 4 && first & 0xC0 == 0x80 {
                Sync::Yes
            } else {
                Sync::No
            }
        }
        _ => Sync::No,
    }
}

/// Whether a complete first line looks like an RTSP start line; binary junk that happens
/// to begin with `PLAY ` is rejected here rather than swallowing 64 KiB looking for a head.
fn plausible_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().any(|&b| b < 0x20 && b != b'\t') {
        return false;
    }
    if line.starts_with(b"RTSP/") {
        return line.len() >= 12;
    }
    // Request: ends with " RTSP/x.y" (possibly followed by stray spaces).
    let trimmed = line.trim_ascii_end();
    trimmed.len() > 9 && trimmed[trimmed.len() - 9..].starts_with(b" RTSP/")
}

/// The incremental decoder. See the [module docs](self).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Consumed prefix of `buf`.
    pos: usize,
    /// Stream offset of `buf[pos]`.
    offset: u64,
    limits: Limits,
    /// Bytes after `pos` already scanned for the end of the head.
    head_scan: usize,
    /// Bytes after `pos` already scanned for the end of the start line.
    line_scan: usize,
    /// A parsed head whose body has not fully arrived: (head, head length, body length).
    pending: Option<(super::message::Head, usize, usize)>,
    /// Bytes still to drop (the body of an oversized message).
    discard: usize,
    /// Resynchronizing after garbage: `$` frames must look plausible, only known methods.
    in_garbage: bool,
    /// The current run of skipped bytes, not yet reported: (offset, length).
    garbage: Option<(u64, usize)>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            offset: 0,
            limits,
            head_scan: 0,
            line_scan: 0,
            pending: None,
            discard: 0,
            in_garbage: false,
            garbage: None,
        }
    }

    /// Appends received bytes. Call [`poll`](Self::poll) until `None` afterwards.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.discard > 0 && self.pos == self.buf.len() {
            let n = self.discard.min(data.len());
            self.discard -= n;
            self.offset += n as u64;
            data = &data[n..];
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Stream offset of the next undecoded byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// At end of stream, after `poll` returned `None`: reports a garbage run still waiting
    /// for a sync point, or an incomplete message / frame. Resets the decoder.
    pub fn finish(&mut self) -> Vec<DecodeError> {
        let mut out: Vec<DecodeError> = self.take_garbage().into_iter().collect();
        let left = self.buffered() + self.discard;
        if left > 0 || self.pending.is_some() {
            out.push(DecodeError::Truncated {
                offset: self.offset,
                len: left,
            });
        }
        *self = Decoder::with_limits(self.limits);
        out
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
        self.head_scan = 0;
        self.line_scan = 0;
    }

    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= 4096 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The next item or error, or `None` when more input is needed.
    pub fn poll(&mut self) -> Option<Result<Item, DecodeError>> {
        let r = self.poll_inner();
        if r.is_none() {
            self.compact();
        }
        r
    }

    fn poll_inner(&mut self) -> Option<Result<Item, DecodeError>> {
        loop {
            if self.discard > 0 {
                let n = self.discard.min(self.buffered());
                self.discard -= n;
                self.consume(n);
                if self.discard > 0 {
                    return None;
                }
            }
            let data = &self.buf[self.pos..];
            if let Some((_, head_len, body_len)) = &self.pending {
                let total = head_len + body_len;
                if data.len() < total {
                    return None;
                }
                let body = data[*head_len..total].to_vec();
                let (head, _, _) = self.pending.take()?;
                self.consume(total);
                self.in_garbage = false;
                return Some(Ok(match head.into_message(body) {
                    Message::Request(r) => Item::Request(r),
                    Message::Response(r) => Item::Response(r),
                }));
            }
            let Some(&first) = data.first() else {
                return self.wait();
            };
            match first {
                b'$' if self.in_garbage => match frame_sync(data) {
                    Sync::Yes => {}
                    Sync::Maybe => return self.wait(),
                    Sync::No => {
                        self.skip_garbage();
                        continue;
                    }
                },
                b'\r' | b'\n' | b' ' | b'\t' | 0 if self.in_garbage => {
                    self.skip_garbage();
                    continue;
                }
                b'\r' | b'\n' | b' ' | b'\t' | 0 => {
                    // Stray line ends between messages (off-by-two Content-Length, CRLF
                    // keepalives) and padding are skipped silently.
                    let n = data
                        .iter()
                        .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
                        .unwrap_or(data.len());
                    self.consume(n);
                    continue;
                }
                _ => {}
            }
            if first == b'$' {
                if let Some(e) = self.take_garbage() {
                    return Some(Err(e));
                }
                let data = &self.buf[self.pos..];
                if data.len() < 4 {
                    return None;
                }
                let len = u16::from_be_bytes([data[2], data[3]]) as usize;
                if data.len() < 4 + len {
                    return None;
                }
                let channel = data[1];
                let payload = data[4..4 + len].to_vec();
                self.consume(4 + len);
                self.in_garbage = false;
                return Some(Ok(Item::Interleaved {
                    channel,
                    data: payload,
                }));
            }
            let sync = match message_sync(data) {
                // An extension method at a message boundary: let the start line decide.
                Sync::No if !self.in_garbage && first.is_ascii_uppercase() => Sync::Yes,
                s => s,
            };
            match sync {
                Sync::Maybe => return self.wait(),
                Sync::No => {
                    self.skip_garbage();
                    continue;
                }
                Sync::Yes => {}
            }
            // Check the start line as soon as it is complete.
            // (`line_scan` remembers how far we looked, so 1-byte pushes stay linear.)
            let limit = data.len().min(self.limits.max_header);
            let from = self.line_scan.min(limit);
            let line_end = data[from..limit]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| from + i);
            if line_end.is_none() {
                self.line_scan = limit;
            }
            match line_end {
                Some(i) if !plausible_start_line(&data[..i]) => {
                    self.skip_garbage();
                    continue;
                }
                None if data.len() < self.limits.max_header => return self.wait(),
                _ => {}
            }
            if let Some(e) = self.take_garbage() {
                return Some(Err(e));
            }
            let data = &self.buf[self.pos..];
            let from = self.head_scan.saturating_sub(3);
            let end = match find_head_end(data, from) {
                Some(end) if end <= self.limits.max_header => end,
                Some(_) => return Some(Err(self.header_too_large())),
                None if data.len() > self.limits.max_header => {
                    return Some(Err(self.header_too_large()))
                }
                None => {
                    self.head_scan = data.len();
                    return None;
                }
            };
            let offset = self.offset;
            let head = match parse_head(&data[..end]) {
                Ok(h) => h,
                Err(source) => {
                    self.consume(end);
                    return Some(Err(DecodeError::Malformed { offset, source }));
                }
            };
            let body_len = match head.headers().content_length() {
                Ok(n) => n.unwrap_or(0),
                Err(source) => {
                    self.consume(end);
                    return Some(Err(DecodeError::Malformed { offset, source }));
                }
            };
            if body_len > self.limits.max_body {
                self.consume(end);
                self.discard = body_len;
                return Some(Err(DecodeError::BodyTooLarge {
                    offset,
                    len: body_len,
                    limit: self.limits.max_body,
                }));
            }
            self.pending = Some((head, end, body_len));
        }
    }

    /// Out of data (or undecided): report a long garbage run now, else wait.
    fn wait(&mut self) -> Option<Result<Item, DecodeError>> {
        match self.garbage {
            Some((_, len)) if len >= GARBAGE_REPORT => self.take_garbage().map(Err),
            _ => None,
        }
    }

    fn take_garbage(&mut self) -> Option<DecodeError> {
        self.garbage
            .take()
            .map(|(offset, len)| DecodeError::Garbage { offset, len })
    }

    fn header_too_large(&mut self) -> DecodeError {
        let e = DecodeError::HeaderTooLarge {
            offset: self.offset,
            limit: self.limits.max_header,
        };
        // Drop the first byte; the resync scan finds whatever comes next.
        self.consume(1);
        self.in_garbage = true;
        e
    }

    /// Skips from the current position (which starts no message) to the next possible
    /// sync point, adding the bytes to the current garbage run. The run is reported as
    /// one error when something decodes (or when it grows past [`GARBAGE_REPORT`]), so
    /// the errors do not depend on how the input was chunked.
    fn skip_garbage(&mut self) {
        let data = &self.buf[self.pos..];
        let mut n = data.len();
        for i in 1..data.len() {
            let rest = &data[i..];
            let s = if rest[0] == b'$' {
                frame_sync(rest)
            } else if rest.len() < MAX_TOKEN || rest[0].is_ascii_uppercase() {
                message_sync(rest)
            } else {
                Sync::No
            };
            if s != Sync::No {
                n = i;
                break;
            }
        }
        match &mut self.garbage {
            Some((off, len)) if *off + *len as u64 == self.offset => *len += n,
            g => *g = Some((self.offset, n)),
        }
        self.consume(n);
        self.in_garbage = true;
    }
}

/// A garbage run this long is reported even before the stream resynchronizes.
const GARBAGE_REPORT: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Method;

    fn collect(dec: &mut Decoder) -> Vec<Result<Item, DecodeError>> {
        std::iter::from_fn(|| dec.poll()).collect()
    }

    fn decode_chunked(input: &[u8], chunk: usize) -> Vec<Result<Item, DecodeError>> {
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            dec.push(c);
            out.extend(collect(&mut dec));
        }
        out.extend(dec.finish().into_iter().map(Err));
        out
    }

    const MIXED: &[u8] = b"$\x01\x00\x04\x80\xc8\x00\x01RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 1234\r\nRTP-Info: url=rtsp://c/t1;seq=1\r\n\r\n$\x00\x00\x0c\x80\x60\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 6\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn mixed_any_chunking() {
        let whole = decode_chunked(MIXED, MIXED.len());
        assert_eq!(whole.len(), 5);
        assert!(whole.iter().all(|r| r.is_ok()));
        for chunk in [1, 2, 3, 5, 7, 13] {
            assert_eq!(decode_chunked(MIXED, chunk), whole, "chunk {chunk}");
        }
        match &whole[0] {
            Ok(Item::Interleaved { channel: 1, data }) => assert_eq!(data, b"\x80\xc8\x00\x01"),
            x => panic!("{x:?}"),
        }
        match &whole[3] {
            Ok(Item::Request(r)) => assert_eq!(r.method, Method::Options),
            x => panic!("{x:?}"),
        }
        match &whole[4] {
            Ok(Item::Response(r)) => assert_eq!(r.body, b"hello"),
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn resync_after_garbage() {
        let input = b"\xff\xfegarbage\x01RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nzz$\x00\x00\x01\x80";
        for chunk in [1, 4, 100] {
            let out = decode_chunked(input, chunk);
            let errs: usize = out
                .iter()
                .filter_map(|r| match r {
                    Err(DecodeError::Garbage { len, .. }) => Some(*len),
                    _ => None,
                })
                .sum();
            assert_eq!(errs, 17, "chunk {chunk}: {out:?}");
            let items: Vec<_> = out.into_iter().filter_map(Result::ok).collect();
            // The trailing `$` frame (payload len 1 < 4) is not trusted during resync.
            assert_eq!(items.len(), 1, "chunk {chunk}");
            assert!(matches!(&items[0], Item::Response(r) if r.cseq() == Some(1)));
        }
    }

    #[test]
    fn garbage_offsets() {
        let mut dec = Decoder::new();
        dec.push(b"RTSP/1.0 200 OK\r\n\r\nxx$\x00\x00\x04\x80\x00\x00\x00");
        assert!(matches!(dec.poll(), Some(Ok(Item::Response(_)))));
        assert_eq!(
            dec.poll(),
            Some(Err(DecodeError::Garbage { offset: 19, len: 2 }))
        );
        assert!(matches!(
            dec.poll(),
            Some(Ok(Item::Interleaved { channel: 0, .. }))
        ));
        assert_eq!(dec.poll(), None);
        assert_eq!(dec.offset(), 29);
    }

    #[test]
    fn binary_that_looks_like_a_method() {
        let mut dec = Decoder::new();
        dec.push(b"PLAY \x00\x01\x02\nRTSP/1.0 200 OK\r\n\r\n");
        assert!(matches!(
            dec.poll(),
            Some(Err(DecodeError::Garbage { offset: 0, .. }))
        ));
        assert!(matches!(dec.poll(), Some(Ok(Item::Response(_)))));
    }

    #[test]
    fn header_limit() {
        let limits = Limits {
            max_header: 100,
            max_body: 10,
        };
        let mut dec = Decoder::with_limits(limits);
        let mut big = b"RTSP/1.0 200 OK\r\n".to_vec();
        for _ in 0..20 {
            big.extend_from_slice(b"X-Pad: 0123456789\r\n");
        }
        dec.push(&big);
        assert!(matches!(
            dec.poll(),
            Some(Err(DecodeError::HeaderTooLarge { offset: 0, .. }))
        ));
        // the rest is garbage to skip; nothing else is produced and the buffer drains.
        while let Some(r) = dec.poll() {
            assert!(r.is_err());
        }
        assert!(dec.buffered() < MAX_TOKEN);
    }

    #[test]
    fn body_limit_discards_without_buffering() {
        let limits = Limits {
            max_header: 1000,
            max_body: 10,
        };
        let mut dec = Decoder::with_limits(limits);
        dec.push(b"RTSP/1.0 200 OK\r\nContent-Length: 100000\r\n\r\n");
        assert!(matches!(
            dec.poll(),
            Some(Err(DecodeError::BodyTooLarge { len: 100000, .. }))
        ));
        for _ in 0..100 {
            dec.push(&[b'a'; 1000]);
            assert_eq!(dec.poll(), None);
            assert_eq!(dec.buffered(), 0);
        }
        dec.push(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n");
        assert!(matches!(dec.poll(), Some(Ok(Item::Response(r))) if r.cseq() == Some(2)));
    }

    #[test]
    fn malformed_content_length_reports_offset() {
        let mut dec = Decoder::new();
        dec.push(b"$\x00\x00\x00RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n");
        assert!(matches!(dec.poll(), Some(Ok(Item::Interleaved { .. }))));
        assert!(matches!(
            dec.poll(),
            Some(Err(DecodeError::Malformed { offset: 4, .. }))
        ));
        assert_eq!(dec.poll(), None);
    }

    #[test]
    fn extension_method_request() {
        let mut dec = Decoder::new();
        dec.push(b"\r\nX_PING rtsp://h RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        match dec.poll() {
            Some(Ok(Item::Request(r))) => assert_eq!(r.method.as_str(), "X_PING"),
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn byte_at_a_time_is_linear() {
        // 64 KiB without a line end, pushed one byte at a time, must not rescan each time.
        let mut dec = Decoder::new();
        let start = std::time::Instant::now();
        dec.push(b"X_LONG ");
        for _ in 0..200_000 {
            dec.push(b"A");
            while dec.poll().is_some() {}
        }
        let mut big = b"RTSP/1.0 200 OK\r\nX: ".to_vec();
        big.resize(60_000, b'a');
        for b in &big {
            dec.push(std::slice::from_ref(b));
            while dec.poll().is_some() {}
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn encode_frame() {
        let mut out = Vec::new();
        encode_interleaved(3, b"abc", &mut out).unwrap();
        assert_eq!(out, b"$\x03\x00\x03abc");
        assert_eq!(
            encode_interleaved(0, &vec![0; 65536], &mut out),
            Err(FrameTooLarge(65536))
        );
        encode_interleaved(0, &vec![0; 65535], &mut out).unwrap();
        let mut dec = Decoder::new();
        dec.push(&out);
        assert!(matches!(
            dec.poll(),
            Some(Ok(Item::Interleaved { channel: 3, .. }))
        ));
        assert!(
            matches!(dec.poll(), Some(Ok(Item::Interleaved { data, .. })) if data.len() == 65535)
        );
    }
}
