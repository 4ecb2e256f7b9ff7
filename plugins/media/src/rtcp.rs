//! RTCP (RFC 3550 6): compound packet parsing (SR and RR in detail, the
//! rest by type), and building SR / RR / SDES CNAME for our own reports.

use crate::error::{Error, Result};

/// RTCP packet types (RFC 3550 12.1, RFC 4585 6.1).
pub mod packet_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Transport-layer feedback (NACK).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (PLI, FIR).
    pub const PSFB: u8 = 206;
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// Source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; clamped when written).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR (LSR).
    pub last_sr: u32,
    /// Delay since the last SR in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

/// A sender report (RFC 3550 6.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits).
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to `ntp_timestamp`.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's payload octet count.
    pub octet_count: u32,
    /// Reception report blocks.
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// The LSR value a receiver echoes back (middle 32 bits of the NTP time).
    pub fn lsr(&self) -> u32 {
        (self.ntp_timestamp >> 16) as u32
    }
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport(SenderReport),
    /// Receiver report: reporter SSRC and blocks.
    ReceiverReport {
        /// Reporter's SSRC.
        ssrc: u32,
        /// Report blocks.
        reports: Vec<ReportBlock>,
    },
    /// Goodbye with the SSRCs leaving.
    Bye(Vec<u32>),
    /// Anything else (SDES, APP, feedback, ...), unparsed.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count / format field.
        count: u8,
        /// Body after the 4-byte common header (padding removed).
        body: &'a [u8],
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    let s = b
        .get(at..at + 4)
        .ok_or(Error::Truncated("RTCP packet body"))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_blocks(body: &[u8], at: usize, count: u8) -> Result<Vec<ReportBlock>> {
    let mut out = Vec::with_capacity(usize::from(count));
    for i in 0..usize::from(count) {
        let o = at + i * 24;
        let lost = be32(body, o + 4)?;
        // cumulative lost is a 24-bit two's complement number.
        let cum = ((lost & 0x00FF_FFFF) << 8) as i32 >> 8;
        out.push(ReportBlock {
            ssrc: be32(body, o)?,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost: cum,
            highest_seq: be32(body, o + 8)?,
            jitter: be32(body, o + 12)?,
            last_sr: be32(body, o + 16)?,
            delay_since_last_sr: be32(body, o + 20)?,
        });
    }
    Ok(out)
}

/// Parse a compound RTCP packet (RFC 3550 6.1). Every sub-packet must be
/// version 2 and fit; the first error stops parsing.
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket<'_>>> {
    let mut out = Vec::new();
    let mut rest = data;
    if rest.is_empty() {
        return Err(Error::Truncated("RTCP packet"));
    }
    while !rest.is_empty() {
        let (head, after) = rest
            .split_first_chunk::<4>()
            .ok_or(Error::Truncated("RTCP header"))?;
        if head[0] >> 6 != 2 {
            return Err(Error::invalid("RTCP header", "version is not 2"));
        }
        let count = head[0] & 0x1F;
        let pt = head[1];
        // Length in 32-bit words minus one, header included.
        let len = usize::from(u16::from_be_bytes([head[2], head[3]])) * 4;
        let (mut body, after) = after
            .split_at_checked(len)
            .ok_or(Error::Truncated("RTCP packet"))?;
        rest = after;
        if head[0] & 0x20 != 0 {
            let &pad = body.last().ok_or(Error::Truncated("RTCP padding"))?;
            if pad == 0 || usize::from(pad) > body.len() {
                return Err(Error::invalid("RTCP padding", "bad padding count"));
            }
            body = &body[..body.len() - usize::from(pad)];
        }
        out.push(match pt {
            packet_type::SR => {
                let ntp = (u64::from(be32(body, 4)?) << 32) | u64::from(be32(body, 8)?);
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: be32(body, 0)?,
                    ntp_timestamp: ntp,
                    rtp_timestamp: be32(body, 12)?,
                    packet_count: be32(body, 16)?,
                    octet_count: be32(body, 20)?,
                    reports: parse_blocks(body, 24, count)?,
                })
            }
            packet_type::RR => RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0)?,
                reports: parse_blocks(body, 4, count)?,
            },
            packet_type::BYE => {
                let mut ssrcs = Vec::new();
                for i in 0..usize::from(count) {
                    ssrcs.push(be32(body, i * 4)?);
                }
                RtcpPacket::Bye(ssrcs)
            }
            _ => RtcpPacket::Other {
                packet_type: pt,
                count,
                body,
            },
        });
    }
    Ok(out)
}

fn header(out: &mut Vec<u8>, count: u8, pt: u8, body_words: usize) {
    out.push(0x80 | (count & 0x1F));
    out.push(pt);
    let len = u16::try_from(body_words).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let cum = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | cum).to_be_bytes());
        out.extend_from_slice(&b.highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

/// Append a receiver report (RFC 3550 6.4.2); at most 31 blocks are written.
pub fn write_receiver_report(out: &mut Vec<u8>, ssrc: u32, blocks: &[ReportBlock]) {
    let blocks = blocks.get(..blocks.len().min(31)).unwrap_or(&[]);
    header(
        out,
        blocks.len() as u8,
        packet_type::RR,
        1 + 6 * blocks.len(),
    );
    out.extend_from_slice(&ssrc.to_be_bytes());
    write_blocks(out, blocks);
}

/// Append a sender report (RFC 3550 6.4.1); at most 31 blocks are written.
pub fn write_sender_report(out: &mut Vec<u8>, sr: &SenderReport) {
    let blocks = sr.reports.get(..sr.reports.len().min(31)).unwrap_or(&[]);
    header(
        out,
        blocks.len() as u8,
        packet_type::SR,
        6 + 6 * blocks.len(),
    );
    out.extend_from_slice(&sr.ssrc.to_be_bytes());
    out.extend_from_slice(&sr.ntp_timestamp.to_be_bytes());
    out.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&sr.packet_count.to_be_bytes());
    out.extend_from_slice(&sr.octet_count.to_be_bytes());
    write_blocks(out, blocks);
}

/// Append an SDES packet with one CNAME item (RFC 3550 6.5.1), which every
/// compound packet must carry (6.1). The CNAME is cut to 255 bytes.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let name = cname.as_bytes();
    let name = name.get(..name.len().min(255)).unwrap_or(&[]);
    // ssrc(4) + type(1) + len(1) + name + at least one null, padded to 4.
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    header(out, 1, packet_type::SDES, padded / 4);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + padded - (4 + 2 + name.len()), 0);
}

/// Convert a duration since the Unix epoch to a 64-bit NTP timestamp
/// (seconds since 1900, RFC 3550 4).
pub fn ntp_from_unix(since_unix_epoch: std::time::Duration) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let secs = since_unix_epoch.as_secs().wrapping_add(UNIX_TO_NTP);
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Reception statistics for one source, to fill a receiver report block
/// (RFC 3550 6.4.1, A.3 loss, A.8 jitter). Sans-IO: the caller passes
/// arrival times (RTP clock units for jitter, a monotonic `Duration` for
/// the SR delay).
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    ssrc: u32,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<u32>,
    /// Jitter scaled by 16 (A.8 integer form).
    jitter16: u64,
    last_sr: u32,
    last_sr_at: Option<std::time::Duration>,
}

impl ReceiverStats {
    /// Count one RTP packet. `arrival` is the arrival time converted to the
    /// stream's RTP clock (any origin; only differences matter).
    pub fn on_rtp(&mut self, seq: u16, rtp_timestamp: u32, ssrc: u32, arrival: u32) {
        if !self.started || ssrc != self.ssrc {
            *self = ReceiverStats {
                ssrc,
                started: true,
                base_seq: u32::from(seq),
                max_seq: seq,
                ..Default::default()
            };
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta != 0 && delta < 0x8000 {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        }
        self.received = self.received.wrapping_add(1);
        // A.8: J += (|D| - J) / 16, kept as 16 * J.
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            let j = self.jitter16;
            self.jitter16 = (j + d).saturating_sub((j + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Remember a sender report from this source for LSR/DLSR.
    pub fn on_sender_report(&mut self, sr: &SenderReport, now: std::time::Duration) {
        self.last_sr = sr.lsr();
        self.last_sr_at = Some(now);
    }

    /// Build the report block for the next RR (None before any packet).
    pub fn report_block(&mut self, now: std::time::Duration) -> Option<ReportBlock> {
        if !self.started {
            return None;
        }
        let extended = self.cycles.wrapping_add(u32::from(self.max_seq));
        let expected = extended.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let dlsr = self.last_sr_at.map_or(0, |at| {
            let d = now.saturating_sub(at);
            ((d.as_micros() << 16) / 1_000_000).min(u128::from(u32::MAX)) as u32
        });
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: extended,
            jitter: u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX),
            last_sr: self.last_sr,
            delay_since_last_sr: dlsr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sr_roundtrip_in_compound() {
        let sr = SenderReport {
            ssrc: 0x1111,
            ntp_timestamp: 0xE000_0001_8000_0000,
            rtp_timestamp: 90000,
            packet_count: 5,
            octet_count: 5000,
            reports: vec![ReportBlock {
                ssrc: 9,
                fraction_lost: 12,
                cumulative_lost: -3,
                highest_seq: 70000,
                jitter: 4,
                last_sr: 5,
                delay_since_last_sr: 6,
            }],
        };
        let mut buf = Vec::new();
        write_sender_report(&mut buf, &sr);
        write_sdes_cname(&mut buf, 0x1111, "camrouter");
        write_receiver_report(&mut buf, 0x2222, &[]);
        assert_eq!(buf.len() % 4, 0);
        let pkts = parse_compound(&buf).unwrap();
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts[0], RtcpPacket::SenderReport(sr.clone()));
        assert!(matches!(
            pkts[1],
            RtcpPacket::Other {
                packet_type: packet_type::SDES,
                count: 1,
                ..
            }
        ));
        assert_eq!(
            pkts[2],
            RtcpPacket::ReceiverReport {
                ssrc: 0x2222,
                reports: vec![]
            }
        );
        assert_eq!(sr.lsr(), 0x0001_8000);
    }

    #[test]
    fn bye_and_garbage() {
        let bye = [0x81, 203, 0, 1, 0, 0, 0, 7];
        assert_eq!(
            parse_compound(&bye).unwrap(),
            vec![RtcpPacket::Bye(vec![7])]
        );
        assert!(parse_compound(&[]).is_err());
        assert!(parse_compound(&[0x80, 200, 0, 6]).is_err());
        assert!(parse_compound(&[0x40, 200, 0, 0]).is_err());
        // SR claiming 1 report block but too short.
        let mut sr = Vec::new();
        write_sender_report(&mut sr, &SenderReport::default());
        sr[0] |= 1;
        assert!(parse_compound(&sr).is_err());
        for n in 0..sr.len() {
            let _ = parse_compound(&sr[..n]);
        }
    }

    #[test]
    fn ntp_conversion() {
        let t = ntp_from_unix(std::time::Duration::from_millis(1500));
        assert_eq!(t >> 32, 2_208_988_801);
        assert_eq!(t & 0xFFFF_FFFF, 0x8000_0000);
    }

    #[test]
    fn receiver_stats() {
        use std::time::Duration;
        let mut st = ReceiverStats::default();
        assert!(st.report_block(Duration::ZERO).is_none());
        // 65534, 65535, (0 lost), 1, 2: wraps, one lost; constant transit.
        for (i, seq) in [65534u16, 65535, 1, 2].into_iter().enumerate() {
            st.on_rtp(seq, i as u32 * 160, 5, 1000 + i as u32 * 160);
        }
        let sr = SenderReport {
            ntp_timestamp: 0x0000_1234_5678_0000,
            ..Default::default()
        };
        st.on_sender_report(&sr, Duration::from_secs(10));
        let b = st.report_block(Duration::from_millis(10_500)).unwrap();
        assert_eq!(b.ssrc, 5);
        assert_eq!(b.highest_seq, 65536 + 2);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.fraction_lost, 51); // 1/5 of 256
        assert_eq!(b.jitter, 0);
        assert_eq!(b.last_sr, 0x1234_5678);
        assert_eq!(b.delay_since_last_sr, 0x8000);
        // No new loss in the next interval.
        st.on_rtp(3, 640, 5, 1000 + 640 + 1600);
        let b = st.report_block(Duration::from_secs(11)).unwrap();
        assert_eq!(b.fraction_lost, 0);
        assert_eq!(b.jitter, 100);
    }
}
