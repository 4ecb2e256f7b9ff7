//! RTP fixed header (RFC 3550 5.1): parsing and writing, plus sequence
//! number bookkeeping shared by the depacketizers.

use crate::error::{Error, Result};

/// Size of the fixed RTP header without CSRCs or extension.
pub const HEADER_LEN: usize = 12;

/// Header extension (RFC 3550 5.3.1), skipped but exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtension<'a> {
    /// "defined by profile" 16-bit value (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension data (length x 4 bytes).
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// M bit: codec-defined, usually "last packet of a frame".
    pub marker: bool,
    /// PT (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp in the payload format's clock rate.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// CSRC list, raw (4 bytes per entry; see [`RtpPacket::csrc`]).
    pub csrcs: &'a [u8],
    /// Header extension if the X bit was set.
    pub extension: Option<RtpExtension<'a>>,
    /// Number of padding bytes removed from the end (including the count byte).
    pub padding: u8,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parse one RTP packet (RFC 3550 5.1). Rejects versions other than 2,
    /// truncated CSRC/extension, and invalid padding.
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>> {
        let fixed: &[u8; HEADER_LEN] = data
            .first_chunk::<HEADER_LEN>()
            .ok_or(Error::Truncated("RTP header"))?;
        if fixed[0] >> 6 != 2 {
            return Err(Error::invalid(
                "RTP header",
                format!("version {}", fixed[0] >> 6),
            ));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0F);
        let mut rest = &data[HEADER_LEN..];
        let (csrcs, after) = rest
            .split_at_checked(csrc_count * 4)
            .ok_or(Error::Truncated("RTP CSRC list"))?;
        rest = after;
        let mut extension = None;
        if has_extension {
            // 5.3.1: profile(16) length(16) in 32-bit words, then the data.
            let (head, after) = rest
                .split_first_chunk::<4>()
                .ok_or(Error::Truncated("RTP header extension"))?;
            let len = usize::from(u16::from_be_bytes([head[2], head[3]])) * 4;
            let (ext, after) = after
                .split_at_checked(len)
                .ok_or(Error::Truncated("RTP header extension"))?;
            extension = Some(RtpExtension {
                profile: u16::from_be_bytes([head[0], head[1]]),
                data: ext,
            });
            rest = after;
        }
        let mut padding = 0u8;
        if has_padding {
            // 5.1: the last octet counts the padding octets, itself included.
            let &count = rest.last().ok_or(Error::Truncated("RTP padding"))?;
            if count == 0 || usize::from(count) > rest.len() {
                return Err(Error::invalid("RTP padding", "bad padding count"));
            }
            padding = count;
            rest = &rest[..rest.len() - usize::from(count)];
        }
        Ok(RtpPacket {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            csrcs,
            extension,
            padding,
            payload: rest,
        })
    }

    /// Number of CSRC entries.
    pub fn csrc_count(&self) -> usize {
        self.csrcs.len() / 4
    }

    /// The `i`-th CSRC, if present.
    pub fn csrc(&self, i: usize) -> Option<u32> {
        let b = self.csrcs.get(i * 4..i * 4 + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The header fields a sender sets (no CSRCs, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// M bit.
    pub marker: bool,
    /// PT (only the low 7 bits are written).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Append the 12-byte fixed header (RFC 3550 5.1) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// How a packet's sequence number relates to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// The first packet, or exactly the next one (modulo 2^16).
    InOrder,
    /// Some packets were skipped (the count is a guess when the sender
    /// restarted its sequence).
    Gap(u16),
    /// Same number as the previous packet, or slightly behind it (late or
    /// reordered): the packet should be ignored.
    Stale,
}

/// Packets further behind than this are taken as a sender restart rather
/// than reordering (RFC 3550 A.1 MAX_MISORDER).
const MAX_MISORDER: u16 = 100;

/// Sequence number tracker: wrap-around safe (RFC 3550 A.1, simplified; no
/// reordering buffer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    last: Option<u16>,
}

impl SeqTracker {
    /// Classify `seq` and remember it unless it is stale.
    pub fn check(&mut self, seq: u16) -> SeqStatus {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return SeqStatus::InOrder;
        };
        let delta = seq.wrapping_sub(last);
        if delta == 0 || delta > u16::MAX - MAX_MISORDER {
            return SeqStatus::Stale;
        }
        self.last = Some(seq);
        if delta == 1 {
            SeqStatus::InOrder
        } else {
            SeqStatus::Gap(delta - 1)
        }
    }

    /// Forget the last sequence number (e.g. after a SSRC change).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write_roundtrip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 96,
            sequence: 0xFFFF,
            timestamp: 0x1234_5678,
            ssrc: 0xDEAD_BEEF,
        };
        let mut buf = Vec::new();
        h.write(&mut buf);
        buf.extend_from_slice(&[1, 2, 3]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 96);
        assert_eq!(p.sequence, 0xFFFF);
        assert_eq!(p.timestamp, 0x1234_5678);
        assert_eq!(p.ssrc, 0xDEAD_BEEF);
        assert_eq!(p.payload, &[1, 2, 3]);
        assert_eq!(p.csrc_count(), 0);
    }

    #[test]
    fn csrc_extension_padding() {
        let mut buf = vec![0xB2, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 11]); // 2 CSRCs
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // ext, 1 word
        buf.extend_from_slice(&[7, 8, 9]);
        buf.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.csrc(1), Some(11));
        assert_eq!(p.csrc(2), None);
        let ext = p.extension.unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[0x10, 0xAA, 0, 0]);
        assert_eq!(p.padding, 3);
        assert_eq!(p.payload, &[7, 8, 9]);
        assert!(!p.marker);
    }

    #[test]
    fn rejects_bad_packets() {
        assert!(RtpPacket::parse(&[]).is_err());
        assert!(RtpPacket::parse(&[0x80; 11]).is_err());
        let mut v1 = vec![0x40; 12];
        v1[0] = 0x40;
        assert!(RtpPacket::parse(&v1).is_err());
        // Padding count 0 and larger than the payload.
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(RtpPacket::parse(&p).is_err());
        p[12] = 5;
        assert!(RtpPacket::parse(&p).is_err());
        // CSRC count beyond the data; extension length beyond the data.
        assert!(RtpPacket::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(RtpPacket::parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]).is_err());
        // Padding that consumes the whole payload is fine.
        let p = RtpPacket::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).unwrap();
        assert!(p.payload.is_empty());
    }

    #[test]
    fn sequence_wraps() {
        let mut t = SeqTracker::default();
        assert_eq!(t.check(65534), SeqStatus::InOrder);
        assert_eq!(t.check(65535), SeqStatus::InOrder);
        assert_eq!(t.check(0), SeqStatus::InOrder);
        assert_eq!(t.check(0), SeqStatus::Stale);
        assert_eq!(t.check(65535), SeqStatus::Stale);
        assert_eq!(t.check(3), SeqStatus::Gap(2));
        // A big jump backwards is a restart, not reordering.
        assert_eq!(t.check(1000).clone(), SeqStatus::Gap(996));
        assert!(matches!(t.check(10), SeqStatus::Gap(_)));
    }
}
