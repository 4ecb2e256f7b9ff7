//! AAC depacketizers: mpeg4-generic (RFC 3640) and MP4A-LATM (RFC 6416).

use super::common::{DepayState, SeqCheck};
use super::{RtpFrame, MAX_FRAME_SIZE};
use crate::adts::SAMPLES_PER_FRAME;
use crate::bits::BitReader;
use crate::error::{Error, Result};
use crate::rtp::RtpPacket;
use crate::sdp::fmtp_param;

/// Frames not popped beyond this are dropped (oldest first).
const MAX_QUEUE: usize = 256;

/// AU header field sizes from the SDP fmtp (RFC 3640 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacHbrParams {
    /// sizeLength (13 for AAC-hbr, 6 for AAC-lbr).
    pub size_length: u8,
    /// indexLength.
    pub index_length: u8,
    /// indexDeltaLength.
    pub index_delta_length: u8,
    /// CTSDeltaLength (0 = absent).
    pub cts_delta_length: u8,
    /// DTSDeltaLength (0 = absent).
    pub dts_delta_length: u8,
    /// randomAccessIndication: a 1-bit RAP flag per AU header.
    pub random_access_indication: bool,
    /// streamStateIndication: bits of stream state per AU header.
    pub stream_state_indication: u8,
}

impl Default for AacHbrParams {
    /// AAC-hbr (RFC 3640 3.3.6): 13/3/3.
    fn default() -> Self {
        Self {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
            cts_delta_length: 0,
            dts_delta_length: 0,
            random_access_indication: false,
            stream_state_indication: 0,
        }
    }
}

impl AacHbrParams {
    /// Read from an fmtp string. Missing fields default to the mode's
    /// values (AAC-hbr 13/3/3, AAC-lbr 6/2/2); cameras often omit them.
    pub fn from_fmtp(fmtp: &str) -> Result<Self> {
        let lbr = fmtp_param(fmtp, "mode").is_some_and(|m| m.eq_ignore_ascii_case("AAC-lbr"));
        let mut p = Self::default();
        if lbr {
            p.size_length = 6;
            p.index_length = 2;
            p.index_delta_length = 2;
        }
        let num = |key: &str, default: u8| -> Result<u8> {
            match fmtp_param(fmtp, key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|&n| n <= 32)
                    .ok_or_else(|| Error::invalid("mpeg4-generic fmtp", format!("{key}={v}"))),
            }
        };
        p.size_length = num("sizelength", p.size_length)?;
        p.index_length = num("indexlength", p.index_length)?;
        p.index_delta_length = num("indexdeltalength", p.index_delta_length)?;
        p.cts_delta_length = num("ctsdeltalength", 0)?;
        p.dts_delta_length = num("dtsdeltalength", 0)?;
        p.random_access_indication = num("randomaccessindication", 0)? != 0;
        p.stream_state_indication = num("streamstateindication", 0)?;
        if fmtp_param(fmtp, "auxiliarydatasizelength").is_some_and(|v| v.trim() != "0") {
            return Err(Error::unsupported(
                "mpeg4-generic fmtp",
                "auxiliary data section",
            ));
        }
        Ok(p)
    }
}

/// In-progress fragmented AU (RFC 3640 3.2.3).
#[derive(Debug, Clone)]
struct Fragment {
    data: Vec<u8>,
    size: usize,
    ts: u32,
}

/// mpeg4-generic depacketizer: several AUs per packet, or one AU
/// fragmented over several packets.
#[derive(Debug, Clone)]
pub struct AacHbrDepacketizer {
    params: AacHbrParams,
    state: DepayState<MAX_QUEUE>,
    frag: Option<Fragment>,
}

impl AacHbrDepacketizer {
    /// New depacketizer with the given AU header layout.
    pub fn new(params: AacHbrParams) -> Self {
        Self {
            params,
            state: DepayState::default(),
            frag: None,
        }
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.state.lost_packets()
    }

    /// Next AU.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.state.pop()
    }

    /// Feed one packet.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self.state.check(pkt.sequence) {
            SeqCheck::Stale => return Ok(()),
            SeqCheck::Gap => self.frag = None,
            SeqCheck::InOrder => {}
        }
        if pkt.payload.is_empty() {
            return Ok(());
        }
        let p = self.params;
        if p.size_length == 0 {
            // No AU headers at all (constantSize streams): one AU.
            self.state.emit(pkt.payload.to_vec(), pkt.timestamp, true);
            return Ok(());
        }
        // 3.2.1: AU-headers-length (16 bits, in bits), then the headers
        // padded to a byte boundary, then the AUs.
        let (len, rest) = pkt
            .payload
            .split_first_chunk::<2>()
            .ok_or(Error::Truncated("AU-headers-length"))?;
        let header_bits = usize::from(u16::from_be_bytes(*len));
        let (headers, mut data) = rest
            .split_at_checked(header_bits.div_ceil(8))
            .ok_or(Error::Truncated("AU headers"))?;
        let mut r = BitReader::new_raw(headers);
        let total = r.bits_left();
        let mut sizes = Vec::new();
        while total - r.bits_left() < header_bits {
            let first = sizes.is_empty();
            let size = r.u(u32::from(p.size_length))? as usize;
            r.u(u32::from(if first {
                p.index_length
            } else {
                p.index_delta_length
            }))?;
            // 3.2.1.1: optional CTS/DTS deltas, each behind a flag.
            if p.cts_delta_length > 0 && r.flag()? {
                r.u(u32::from(p.cts_delta_length))?;
            }
            if p.dts_delta_length > 0 && r.flag()? {
                r.u(u32::from(p.dts_delta_length))?;
            }
            if p.random_access_indication {
                r.flag()?;
            }
            r.u(u32::from(p.stream_state_indication))?;
            sizes.push(size);
            if sizes.len() > 1024 {
                return Err(Error::invalid("AU headers", "too many AUs"));
            }
        }
        if let [size] = sizes[..] {
            if size > data.len() || self.frag.as_ref().is_some_and(|f| f.ts == pkt.timestamp) {
                return self.fragment(size, data, pkt.timestamp);
            }
        }
        self.frag = None;
        let mut ts = pkt.timestamp;
        for size in sizes {
            let (au, after) = data
                .split_at_checked(size)
                .ok_or(Error::Truncated("AAC access unit"))?;
            self.state.emit(au.to_vec(), ts, true);
            data = after;
            ts = ts.wrapping_add(SAMPLES_PER_FRAME);
        }
        Ok(())
    }

    fn fragment(&mut self, size: usize, data: &[u8], ts: u32) -> Result<()> {
        if size > MAX_FRAME_SIZE {
            return Err(Error::invalid("AAC access unit", "too large"));
        }
        let frag = match &mut self.frag {
            Some(f) if f.ts == ts && f.size == size => f,
            _ => self.frag.insert(Fragment {
                data: Vec::with_capacity(size),
                size,
                ts,
            }),
        };
        let take = data.get(..size - frag.data.len().min(size)).unwrap_or(data);
        frag.data.extend_from_slice(take);
        if frag.data.len() >= frag.size {
            if let Some(f) = self.frag.take() {
                self.state.emit(f.data, f.ts, true);
            }
        }
        Ok(())
    }
}

/// MP4A-LATM depacketizer (RFC 6416 6.1, cpresent=0): the payload is one
/// or more (PayloadLengthInfo, PayloadMux) pairs, possibly fragmented over
/// packets with the marker on the last one. Only one program/layer
/// (numSubFrames = 0) is supported.
#[derive(Debug, Clone, Default)]
pub struct LatmDepacketizer {
    state: DepayState<MAX_QUEUE>,
    buf: Vec<u8>,
    buf_ts: u32,
}

impl LatmDepacketizer {
    /// New depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.state.lost_packets()
    }

    /// Next AU.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.state.pop()
    }

    /// Feed one packet.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self.state.check(pkt.sequence) {
            SeqCheck::Stale => return Ok(()),
            SeqCheck::Gap => self.buf.clear(),
            SeqCheck::InOrder => {}
        }
        let mut result = Ok(());
        if !self.buf.is_empty() && self.buf_ts != pkt.timestamp {
            // The sender did not set the marker: the buffer is complete.
            result = self.parse();
        }
        if self.buf.len() + pkt.payload.len() > MAX_FRAME_SIZE {
            self.buf.clear();
            self.state.set_discontinuity();
            return Err(Error::invalid("LATM", "audioMuxElement too large"));
        }
        self.buf.extend_from_slice(pkt.payload);
        self.buf_ts = pkt.timestamp;
        if pkt.marker {
            result = result.and(self.parse());
        }
        result
    }

    /// Split the buffered PayloadLengthInfo/PayloadMux pairs into AUs.
    fn parse(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let mut rest = &buf[..];
        let mut ts = self.buf_ts;
        while !rest.is_empty() {
            // 1.7.3 PayloadLengthInfo: bytes of 255 continue the length.
            let mut len = 0usize;
            loop {
                let (&b, after) = rest
                    .split_first()
                    .ok_or(Error::Truncated("LATM PayloadLengthInfo"))?;
                rest = after;
                len += usize::from(b);
                if b != 255 {
                    break;
                }
            }
            let (au, after) = rest
                .split_at_checked(len)
                .ok_or(Error::Truncated("LATM PayloadMux"))?;
            rest = after;
            self.state.emit(au.to_vec(), ts, true);
            ts = ts.wrapping_add(SAMPLES_PER_FRAME);
        }
        Ok(())
    }
}
