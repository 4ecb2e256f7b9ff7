//! RTP packetizers: canonical frames in, RTP packets out (sans-IO).
//!
//! Output shape: [`RtpPackets`] is one contiguous buffer holding every
//! packet of one or more frames back to back, plus the byte range of each
//! RTP packet inside it. With [`Framing::Interleaved`] each packet is
//! preceded by the 4-byte RTSP interleaved header (`$`, channel, length;
//! RFC 2326 10.12), so the whole buffer can go to a TCP socket in a single
//! write; with [`Framing::Datagram`] there is no prefix and each range is one
//! UDP datagram.
//!
//! ```
//! use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
//! use camrouter_media::{CodecInfo, CodecName};
//!
//! let info = CodecInfo::new(CodecName::Pcma, 8000);
//! let mut p = Packetizer::new(&info, 8, 0x1234, 1200).unwrap();
//! let mut out = RtpPackets::new(Framing::Interleaved(0));
//! p.packetize(&[0xD5; 160], 0, &mut out).unwrap();
//! assert_eq!(out.len(), 1);
//! assert_eq!(&out.bytes()[..2], &[b'$', 0]); // ready for the socket
//! assert_eq!(out.packet(0).unwrap().len(), 12 + 160); // the RTP packet
//! ```

mod h26x;

use std::ops::Range;

use crate::codec::{CodecInfo, CodecName};
use crate::error::{Error, Result};
use crate::jpeg_huffman::to_standard_huffman;
use crate::rfc2435::parse_jpeg;
use crate::rtp::{RtpHeader, HEADER_LEN};

/// Smallest accepted MTU (RTP header + JPEG headers with 16-bit tables).
pub const MIN_MTU: usize = 300;

/// How packets are laid out in [`RtpPackets::bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Packets back to back, no prefix (send each range as a datagram).
    Datagram,
    /// Each packet prefixed with `$`, the channel and a 16-bit length
    /// (RTSP interleaved, RFC 2326 10.12).
    Interleaved(u8),
}

/// Packets of one or more frames in one buffer. See the module docs.
#[derive(Debug, Clone)]
pub struct RtpPackets {
    data: Vec<u8>,
    ranges: Vec<Range<usize>>,
    framing: Framing,
}

impl RtpPackets {
    /// Empty buffer with the given framing.
    pub fn new(framing: Framing) -> Self {
        Self {
            data: Vec::new(),
            ranges: Vec::new(),
            framing,
        }
    }

    /// Remove all packets, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ranges.clear();
    }

    /// Everything to write (with interleaved prefixes if so framed).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Number of RTP packets.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are no packets.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Byte range of each RTP packet in [`bytes`](Self::bytes) (without
    /// the interleaved prefix).
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// The `i`-th RTP packet.
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        self.data.get(self.ranges.get(i)?.clone())
    }

    /// Iterate the RTP packets.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ranges
            .iter()
            .map(|r| self.data.get(r.clone()).unwrap_or(&[]))
    }

    /// Append one packet made of `parts` after the header.
    fn push(&mut self, header: &RtpHeader, parts: &[&[u8]]) {
        let len: usize = HEADER_LEN + parts.iter().map(|p| p.len()).sum::<usize>();
        if let Framing::Interleaved(ch) = self.framing {
            self.data.push(b'$');
            self.data.push(ch);
            let len = u16::try_from(len).unwrap_or(u16::MAX);
            self.data.extend_from_slice(&len.to_be_bytes());
        }
        let start = self.data.len();
        header.write(&mut self.data);
        for p in parts {
            self.data.extend_from_slice(p);
        }
        self.ranges.push(start..self.data.len());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    H265,
    Jpeg,
    Aac,
    /// One frame per packet, as is.
    Whole,
    /// Split at sample boundaries of this many bytes.
    L16(usize),
    /// AV1 RTP payload format (AOMedia, v1.0).
    Av1,
}

/// Per-track packetizer; keeps the sequence number.
#[derive(Debug, Clone)]
pub struct Packetizer {
    kind: Kind,
    payload_type: u8,
    ssrc: u32,
    max_payload: usize,
    sequence: u16,
    /// JPEG: send non-standard Huffman tables as they are.
    raw_jpeg: bool,
    /// JPEG: the re-encoded image, kept to reuse its allocation.
    jpeg_buf: Scratch,
}

/// A reusable buffer that does not print its contents in `Debug`.
#[derive(Clone, Default)]
struct Scratch(Vec<u8>);

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({} bytes)", self.0.capacity())
    }
}

impl Packetizer {
    /// New packetizer. `mtu` is the largest RTP packet (header included),
    /// at least [`MIN_MTU`] and at most 65535. The first sequence number
    /// is 0 unless [`set_sequence`](Self::set_sequence) is called (RFC 3550
    /// recommends a random start; pick one in the caller).
    pub fn new(codec: &CodecInfo, payload_type: u8, ssrc: u32, mtu: usize) -> Result<Self> {
        if !(MIN_MTU..=65535).contains(&mtu) {
            return Err(Error::invalid("packetizer", format!("MTU {mtu}")));
        }
        let kind = match codec.name {
            CodecName::H264 => Kind::H264,
            CodecName::H265 => Kind::H265,
            CodecName::Mjpeg => Kind::Jpeg,
            CodecName::Aac => Kind::Aac,
            CodecName::Opus | CodecName::Pcma | CodecName::Pcmu | CodecName::G722 => Kind::Whole,
            CodecName::PcmS16be => Kind::L16(2 * usize::from(codec.channels.max(1))),
            CodecName::PcmS16le => {
                return Err(Error::unsupported(
                    "packetizer",
                    "little-endian PCM (convert to L16 first)",
                ))
            }
            CodecName::Av1 => Kind::Av1,
        };
        Ok(Self {
            kind,
            payload_type: payload_type & 0x7F,
            ssrc,
            max_payload: mtu - HEADER_LEN,
            sequence: 0,
            raw_jpeg: false,
            jpeg_buf: Scratch::default(),
        })
    }

    /// Set the next sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.sequence = seq;
    }

    /// The sequence number the next packet will get.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// JPEG only: send images whose Huffman tables are not the standard
    /// ones as they are, like go2rtc (RFC 2435 cannot signal the tables, so
    /// receivers decode garbage). Off by default: such images are
    /// losslessly re-encoded with the standard tables
    /// ([`to_standard_huffman`]), which costs a Huffman decode and encode
    /// of the scan.
    pub fn allow_nonstandard_huffman(&mut self, allow: bool) {
        self.raw_jpeg = allow;
    }

    fn emit(&mut self, out: &mut RtpPackets, marker: bool, timestamp: u32, parts: &[&[u8]]) {
        let header = RtpHeader {
            marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        out.push(&header, parts);
    }

    /// Packetize one frame (canonical form, see the crate README) with the
    /// given RTP timestamp, appending its packets to `out`. The marker bit
    /// is set on the last packet of each video frame. On error nothing is
    /// appended.
    pub fn packetize(&mut self, frame: &[u8], timestamp: u32, out: &mut RtpPackets) -> Result<()> {
        match self.kind {
            Kind::H264 | Kind::H265 => self.packetize_h26x(frame, timestamp, out),
            Kind::Av1 => self.packetize_av1(frame, timestamp, out),
            Kind::Jpeg => self.packetize_jpeg(frame, timestamp, out),
            Kind::Aac => self.packetize_aac(frame, timestamp, out),
            Kind::Whole => {
                if frame.len() > self.max_payload {
                    return Err(Error::invalid("audio frame", "larger than the MTU"));
                }
                self.emit(out, false, timestamp, &[frame]);
                Ok(())
            }
            Kind::L16(sample) => {
                // RFC 3551 4.5.11: whole sample frames per packet.
                let chunk = (self.max_payload / sample).max(1) * sample;
                let mut ts = timestamp;
                for part in frame.chunks(chunk) {
                    self.emit(out, false, ts, &[part]);
                    ts = ts.wrapping_add((part.len() / sample) as u32);
                }
                Ok(())
            }
        }
    }

    /// AV1 RTP payload format (AOMedia v1.0, 4.4): an aggregation header
    /// (Z: the first element continues an OBU, Y: the last one goes on in
    /// the next packet, W = 0: every element has a `leb128` length, N: the
    /// first packet of a coded video sequence), then OBU elements without
    /// their size field; temporal delimiters, padding and tile lists are
    /// not sent (5.5). The marker ends the temporal unit.
    fn packetize_av1(&mut self, frame: &[u8], timestamp: u32, out: &mut RtpPackets) -> Result<()> {
        let mut elements = Vec::new();
        let mut new_sequence = false;
        for obu in crate::av1::obus(frame) {
            let obu = obu?;
            use crate::av1::obu_type as t;
            match obu.kind {
                t::TEMPORAL_DELIMITER | t::PADDING | t::TILE_LIST => continue,
                t::SEQUENCE_HEADER => new_sequence = crate::av1::is_keyframe(frame, false),
                _ => {}
            }
            let mut e = Vec::with_capacity(obu.header.len() + obu.payload.len());
            e.push(obu.header[0] & !0x02);
            e.extend_from_slice(&obu.header[1..]);
            e.extend_from_slice(obu.payload);
            elements.push(e);
        }
        if elements.is_empty() {
            return Err(Error::invalid("AV1 frame", "no OBU to send"));
        }
        let cap = self.max_payload;
        let mut packets: Vec<Vec<u8>> = Vec::new();
        let mut pkt = vec![0u8];
        for e in &elements {
            let mut rest = &e[..];
            loop {
                // Room for a length (at most 3 bytes below 2^21) and a byte.
                if cap.saturating_sub(pkt.len()) < 4 {
                    packets.push(std::mem::replace(&mut pkt, vec![0u8]));
                }
                let room = cap - pkt.len();
                let mut len_field = Vec::with_capacity(3);
                crate::av1::write_leb128(&mut len_field, rest.len().min(room) as u64);
                let take = rest.len().min(room - len_field.len());
                len_field.clear();
                crate::av1::write_leb128(&mut len_field, take as u64);
                pkt.extend_from_slice(&len_field);
                pkt.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if rest.is_empty() {
                    break;
                }
                // Y on this packet, Z on the next.
                pkt[0] |= 0x40;
                packets.push(std::mem::replace(&mut pkt, vec![0x80]));
            }
        }
        packets.push(pkt);
        if new_sequence {
            packets[0][0] |= 0x08;
        }
        let n = packets.len();
        for (i, p) in packets.iter().enumerate() {
            self.emit(out, i + 1 == n, timestamp, &[p]);
        }
        Ok(())
    }

    /// RFC 3640 3.3.6 AAC-hbr: one AU per packet with a 16-bit AU header
    /// (size 13 bits, index 3 bits); larger AUs are fragmented (3.2.3).
    fn packetize_aac(&mut self, frame: &[u8], timestamp: u32, out: &mut RtpPackets) -> Result<()> {
        if frame.is_empty() || frame.len() > 8191 {
            return Err(Error::invalid("AAC frame", "size must be 1..=8191"));
        }
        let au_header = ((frame.len() as u16) << 3).to_be_bytes();
        let head = [0, 16, au_header[0], au_header[1]];
        let chunk = self.max_payload - head.len();
        let n = frame.len().div_ceil(chunk);
        for (i, part) in frame.chunks(chunk).enumerate() {
            self.emit(out, i + 1 == n, timestamp, &[&head, part]);
        }
        Ok(())
    }

    /// RFC 2435: type 0/1 (+64 with restart markers), Q=255 with the
    /// tables in the first packet. Images with other Huffman tables are
    /// re-encoded with the standard ones first.
    fn packetize_jpeg(&mut self, frame: &[u8], timestamp: u32, out: &mut RtpPackets) -> Result<()> {
        let mut buf = std::mem::take(&mut self.jpeg_buf.0);
        let r = self.packetize_jpeg_with(frame, &mut buf, timestamp, out);
        self.jpeg_buf.0 = buf;
        r
    }

    fn packetize_jpeg_with(
        &mut self,
        frame: &[u8],
        buf: &mut Vec<u8>,
        timestamp: u32,
        out: &mut RtpPackets,
    ) -> Result<()> {
        let mut jpeg = parse_jpeg(frame)?;
        if !jpeg.standard_huffman && !self.raw_jpeg {
            to_standard_huffman(frame, buf)?;
            jpeg = parse_jpeg(buf)?;
            if !jpeg.standard_huffman {
                return Err(Error::unsupported(
                    "JPEG for RTP",
                    "scan components not in frame order",
                ));
            }
        }
        let p = &jpeg.params;
        if jpeg.scan.len() >= 1 << 24 {
            return Err(Error::invalid("JPEG for RTP", "scan larger than 16 MiB"));
        }
        let kind = if p.restart_interval != 0 {
            p.kind + 64
        } else {
            p.kind
        };
        let (w8, h8) = (p.width.div_ceil(8) as u8, p.height.div_ceil(8) as u8);
        // 3.1.7: F=L=1 and count 0x3FFF when packets don't align to intervals.
        let [ri1, ri0] = p.restart_interval.to_be_bytes();
        let restart = [ri1, ri0, 0xFF, 0xFF];
        let restart: &[u8] = if kind >= 64 { &restart } else { &[] };
        let qlen = u16::try_from(p.qtables.len()).unwrap_or(0).to_be_bytes();
        let qhead = [0, p.precision, qlen[0], qlen[1]];
        let mut offset = 0usize;
        let mut rest = jpeg.scan;
        loop {
            let first = offset == 0;
            let o = (offset as u32).to_be_bytes();
            let main = [0, o[1], o[2], o[3], kind, 255, w8, h8];
            let mut used = main.len() + restart.len();
            if first {
                used += qhead.len() + p.qtables.len();
            }
            let take = (self.max_payload - used).min(rest.len());
            let (part, after) = rest.split_at(take);
            let last = after.is_empty();
            if first {
                self.emit(
                    out,
                    last,
                    timestamp,
                    &[&main, restart, &qhead, &p.qtables, part],
                );
            } else {
                self.emit(out, last, timestamp, &[&main, restart, part]);
            }
            offset += take;
            rest = after;
            if last {
                return Ok(());
            }
        }
    }
}
