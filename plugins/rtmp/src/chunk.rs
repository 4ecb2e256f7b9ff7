//! RTMP chunk streams (Adobe RTMP spec §5.3): a sans-IO reader that
//! reassembles messages from interleaved chunks, and a writer that splits
//! them. Set Chunk Size and Abort are applied by the reader itself since they
//! change how the following bytes parse; every other message is handed out.
//!
//! Memory is bounded: a message may not exceed [`MAX_MESSAGE`], at most
//! [`MAX_CHUNK_STREAMS`] chunk streams may exist, and the bytes of messages
//! in progress across all of them never exceed [`MAX_PENDING`].

use crate::Error;

/// Largest message accepted (a 4K keyframe fits comfortably).
pub const MAX_MESSAGE: usize = 8 << 20;
/// Largest chunk size a peer may set.
pub const MAX_CHUNK_SIZE: usize = 1 << 24;
/// Distinct chunk stream ids a peer may use.
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Bytes of partially received messages, all chunk streams together.
pub const MAX_PENDING: usize = 16 << 20;
/// Bytes held for unfinished input by all readers of the process together
/// (RTMP server connections, sources, publishers): partial messages and
/// received bytes not yet parsed (an incomplete chunk, up to the chunk size
/// a peer set). Without it 2048 connections at 16 MiB each could hold 32 GiB.
pub const MAX_PENDING_TOTAL: usize = 256 << 20;

/// A byte budget shared by chunk readers (see [`MAX_PENDING_TOTAL`]).
#[derive(Debug)]
pub struct Budget {
    used: std::sync::atomic::AtomicUsize,
    cap: usize,
}

impl Budget {
    pub const fn new(cap: usize) -> Budget {
        Budget {
            used: std::sync::atomic::AtomicUsize::new(0),
            cap,
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn reserve(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur + n > self.cap {
                return false;
            }
            match self.used.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The process's budget, which readers use unless given another.
pub static GLOBAL_BUDGET: Budget = Budget::new(MAX_PENDING_TOTAL);

/// Message type ids (§5.4, §7.1).
pub mod msg {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub type_id: u8,
    /// Milliseconds, as the peer counts (wraps at 2^32).
    pub timestamp: u32,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    /// The last delta (fmt 1/2/3 headers add it).
    delta: u32,
    /// The last header carried an extended timestamp: fmt 3 chunks repeat it.
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The message being reassembled.
    partial: Vec<u8>,
    /// A header was ever seen on this chunk stream.
    known: bool,
}

/// Sans-IO chunk reader: [`push`](Self::push) bytes, then call
/// [`poll`](Self::poll) until it returns `Ok(None)`.
#[derive(Debug)]
pub struct ChunkReader {
    buf: Vec<u8>,
    pos: usize,
    chunk_size: usize,
    streams: Vec<ChunkStream>,
    pending: usize,
    failed: bool,
    /// Bytes consumed in total (for acknowledgements).
    pub received: u64,
    budget: &'static Budget,
    /// What this reader holds of `budget`.
    reserved: usize,
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkReader {
    pub fn new() -> Self {
        Self::with_budget(&GLOBAL_BUDGET)
    }

    /// A reader counting what it holds against `budget`.
    pub fn with_budget(budget: &'static Budget) -> Self {
        ChunkReader {
            budget,
            reserved: 0,
            buf: Vec::new(),
            pos: 0,
            chunk_size: 128,
            streams: Vec::new(),
            pending: 0,
            failed: false,
            received: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Brings this reader's share of the budget to what it holds now.
    fn account(&mut self) -> Result<(), Error> {
        let held = self.pending + (self.buf.len() - self.pos);
        if held > self.reserved {
            if !self.budget.reserve(held - self.reserved) {
                return self.fail("the server's memory for unfinished RTMP messages is used up");
            }
        } else {
            self.budget.release(self.reserved - held);
        }
        self.reserved = held;
        Ok(())
    }

    /// The next complete message; `Ok(None)` when more bytes are needed. An
    /// error is final: the connection must be dropped.
    pub fn poll(&mut self) -> Result<Option<Message>, Error> {
        if self.failed {
            return Err(Error::Chunk("stream already failed"));
        }
        self.account()?;
        loop {
            match self.chunk() {
                Ok(Some(Some(m))) => match m.type_id {
                    msg::SET_CHUNK_SIZE => {
                        let Some(size) = be32(&m.payload) else {
                            return self.fail("short set chunk size");
                        };
                        let size = size & 0x7FFF_FFFF;
                        if size == 0 || size as usize > MAX_CHUNK_SIZE {
                            return self.fail("chunk size out of range");
                        }
                        self.chunk_size = size as usize;
                    }
                    msg::ABORT => {
                        if let Some(id) = be32(&m.payload) {
                            if let Some(s) = self.streams.iter_mut().find(|s| s.csid == id) {
                                self.pending -= s.partial.len();
                                s.partial = Vec::new();
                            }
                        }
                    }
                    _ => return Ok(Some(m)),
                },
                Ok(Some(None)) => continue,
                Ok(None) => {
                    self.account()?;
                    return Ok(None);
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    fn fail<T>(&mut self, why: &'static str) -> Result<T, Error> {
        self.failed = true;
        Err(Error::Chunk(why))
    }

    /// Parses one chunk: `None` when incomplete, `Some(None)` for a chunk
    /// that did not finish its message.
    #[allow(clippy::option_option)]
    fn chunk(&mut self) -> Result<Option<Option<Message>>, Error> {
        let data = &self.buf[self.pos..];
        let Some(&b0) = data.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut at) = match b0 & 0x3F {
            0 => match data.get(1) {
                Some(&b) => (u32::from(b) + 64, 2),
                None => return Ok(None),
            },
            1 => match data.get(1..3) {
                Some(b) => (u32::from(b[1]) * 256 + u32::from(b[0]) + 64, 3),
                None => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = data.get(at..at + header_len) else {
            return Ok(None);
        };
        at += header_len;
        let idx = match self.streams.iter().position(|s| s.csid == csid) {
            Some(i) => i,
            None => {
                if fmt != 0 {
                    return Err(Error::Chunk(
                        "first chunk of a chunk stream without a full header",
                    ));
                }
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(Error::Chunk("too many chunk streams"));
                }
                self.streams.push(ChunkStream {
                    csid,
                    ..Default::default()
                });
                self.streams.len() - 1
            }
        };
        let s = &self.streams[idx];
        let starting = s.partial.is_empty();
        let ts_field = if fmt < 3 { be24(h) } else { 0 };
        let extended = if fmt < 3 {
            ts_field == 0xFF_FFFF
        } else {
            s.extended
        };
        let ext = if extended {
            let Some(b) = data.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let (length, type_id) = if fmt <= 1 {
            (be24(&h[3..]) as usize, h[6])
        } else {
            (s.length, s.type_id)
        };
        if fmt <= 1 && !starting {
            return Err(Error::Chunk("new message header inside a message"));
        }
        if length > MAX_MESSAGE {
            return Err(Error::Chunk("message larger than the limit"));
        }
        let have = s.partial.len();
        let take = (length - have).min(self.chunk_size);
        let Some(body) = data.get(at..at + take) else {
            return Ok(None);
        };
        // The chunk is complete: commit its header.
        let consumed = at + take;
        let s = &mut self.streams[idx];
        if starting {
            let field = ext.unwrap_or(ts_field);
            match fmt {
                0 => {
                    s.timestamp = field;
                    s.delta = 0;
                    s.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
                }
                1 | 2 => {
                    s.delta = field;
                    s.timestamp = s.timestamp.wrapping_add(field);
                }
                _ => {
                    if !s.known {
                        return Err(Error::Chunk("fmt 3 chunk without a previous header"));
                    }
                    s.timestamp = s.timestamp.wrapping_add(s.delta);
                }
            }
            s.length = length;
            s.type_id = type_id;
            s.extended = extended;
            s.known = true;
        }
        if self.pending + take > MAX_PENDING {
            return Err(Error::Chunk("too many bytes of unfinished messages"));
        }
        s.partial.extend_from_slice(body);
        self.pending += take;
        self.pos += consumed;
        self.received += consumed as u64;
        if s.partial.len() < s.length {
            return Ok(Some(None));
        }
        let payload = std::mem::take(&mut s.partial);
        self.pending -= payload.len();
        Ok(Some(Some(Message {
            type_id: s.type_id,
            timestamp: s.timestamp,
            stream_id: s.stream_id,
            payload,
        })))
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Splits messages into chunks of `chunk_size`, always with a full (fmt 0)
/// header first, so the output of one call stands on its own and can be
/// shared by every connection with the same chunk size.
pub fn write_message(
    out: &mut Vec<u8>,
    chunk_size: usize,
    csid: u8,
    type_id: u8,
    timestamp: u32,
    stream_id: u32,
    payload: &[u8],
) {
    debug_assert!((2..64).contains(&csid));
    let extended = timestamp >= 0xFF_FFFF;
    let field = if extended { 0xFF_FFFF } else { timestamp };
    out.reserve(payload.len() + 16 + payload.len() / chunk_size.max(1) * 5);
    out.push(csid);
    out.extend_from_slice(&field.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for c in chunks {
        out.push(0xC0 | csid);
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        out.extend_from_slice(c);
    }
}

/// Protocol control messages (chunk stream 2, message stream 0).
pub fn control(out: &mut Vec<u8>, type_id: u8, payload: &[u8]) {
    write_message(out, 128, 2, type_id, 0, 0, payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut ChunkReader) -> Vec<Message> {
        let mut v = Vec::new();
        while let Some(m) = r.poll().unwrap() {
            v.push(m);
        }
        v
    }

    #[test]
    fn writer_and_reader_agree_across_chunk_sizes_and_split_input() {
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        write_message(&mut out, 128, 6, msg::VIDEO, 40, 1, &big);
        // Raise the chunk size, then a message with an extended timestamp.
        control(&mut out, msg::SET_CHUNK_SIZE, &4096u32.to_be_bytes());
        write_message(&mut out, 4096, 4, msg::AUDIO, 0x0100_0000, 1, &big);
        let mut r = ChunkReader::new();
        let mut got = Vec::new();
        for b in out.chunks(7) {
            r.push(b);
            got.extend(read_all(&mut r));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, big);
        assert_eq!((got[0].timestamp, got[0].stream_id), (40, 1));
        assert_eq!(got[1].timestamp, 0x0100_0000);
        assert_eq!(got[1].type_id, msg::AUDIO);
        assert_eq!(r.received, out.len() as u64);
    }

    #[test]
    fn fmt1_to_3_headers_add_deltas() {
        // fmt 0 on csid 3: ts 100, len 2; then fmt 2 delta 33 (same length);
        // then fmt 3 (delta again).
        let mut b = vec![0x03, 0, 0, 100, 0, 0, 2, msg::AUDIO, 1, 0, 0, 0, 0xAA, 0xBB];
        b.extend_from_slice(&[0x83, 0, 0, 33, 1, 2]);
        b.extend_from_slice(&[0xC3, 3, 4]);
        let mut r = ChunkReader::new();
        r.push(&b);
        let m = read_all(&mut r);
        let ts: Vec<u32> = m.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 133, 166]);
        assert_eq!(m[2].payload, vec![3, 4]);
    }

    #[test]
    fn refuses_oversized_messages_and_headerless_streams() {
        let mut r = ChunkReader::new();
        r.push(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, msg::VIDEO, 0, 0, 0, 0]);
        assert!(r.poll().is_err());
        assert!(r.poll().is_err(), "failure is final");
        let mut r = ChunkReader::new();
        r.push(&[0x43, 0, 0, 0, 0, 0, 1, 9, 0]);
        assert!(r.poll().is_err());
        let mut r = ChunkReader::new();
        r.push(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(r.poll().is_err(), "chunk size 0");
    }

    #[test]
    fn caps_unfinished_bytes_across_chunk_streams() {
        let mut r = ChunkReader::new();
        let mut b = Vec::new();
        control(&mut b, msg::SET_CHUNK_SIZE, &(1u32 << 20).to_be_bytes());
        r.push(&b);
        let mut failed = false;
        for csid in 3..40u8 {
            let mut m = vec![csid, 0, 0, 0, 0x7F, 0xFF, 0xFF, msg::VIDEO, 0, 0, 0, 0];
            m.extend(std::iter::repeat_n(0u8, 1 << 20));
            r.push(&m);
            if r.poll().is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    /// Unfinished bytes of all readers together are capped, and a reader
    /// gives its share back when it goes.
    #[test]
    fn caps_unfinished_bytes_across_connections() {
        static SMALL: Budget = Budget::new(1 << 20);
        // 600 KiB of an 800 KiB message, in 64 KiB chunks.
        let partial = || {
            let mut b = Vec::new();
            control(&mut b, msg::SET_CHUNK_SIZE, &(64u32 << 10).to_be_bytes());
            let mut m = Vec::new();
            write_message(&mut m, 64 << 10, 6, msg::VIDEO, 0, 1, &vec![0u8; 800 << 10]);
            b.extend_from_slice(&m[..600 << 10]);
            b
        };
        let mut a = ChunkReader::with_budget(&SMALL);
        a.push(&partial());
        assert_eq!(a.poll().unwrap(), None);
        assert!(SMALL.used() >= 590 << 10, "{}", SMALL.used());
        let mut b = ChunkReader::with_budget(&SMALL);
        b.push(&partial());
        let e = b.poll().unwrap_err();
        assert!(e.to_string().contains("memory"), "{e}");
        drop(b);
        drop(a);
        assert_eq!(SMALL.used(), 0);
        // Room again: a whole message passes and leaves nothing held.
        let mut c = ChunkReader::with_budget(&SMALL);
        let mut all = Vec::new();
        control(&mut all, msg::SET_CHUNK_SIZE, &(64u32 << 10).to_be_bytes());
        write_message(
            &mut all,
            64 << 10,
            6,
            msg::VIDEO,
            0,
            1,
            &vec![0u8; 800 << 10],
        );
        c.push(&all);
        assert_eq!(c.poll().unwrap().map(|m| m.payload.len()), Some(800 << 10));
        assert_eq!(c.poll().unwrap(), None);
        assert_eq!(SMALL.used(), 0);
    }
}
