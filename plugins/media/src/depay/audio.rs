//! One frame per RTP packet: Opus (RFC 7587 4.2), G.711 / L16 / G.722
//! (RFC 3551 4.5). The payload is passed through as is.

use std::collections::VecDeque;

use super::RtpFrame;
use crate::error::Result;
use crate::rtp::{RtpPacket, SeqStatus, SeqTracker};

/// Queue depth bound: frames not popped beyond this are dropped (oldest first).
const MAX_QUEUE: usize = 256;

/// Pass-through depacketizer for single-frame-per-packet audio codecs.
#[derive(Debug, Clone, Default)]
pub struct PassthroughDepacketizer {
    seq: SeqTracker,
    lost: u64,
    discontinuity: bool,
    out: VecDeque<RtpFrame>,
}

impl PassthroughDepacketizer {
    /// New depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.lost
    }

    /// Next frame.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.out.pop_front()
    }

    /// Feed one packet; empty payloads are ignored.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self.seq.check(pkt.sequence) {
            SeqStatus::Stale => return Ok(()),
            SeqStatus::Gap(n) => {
                self.lost += u64::from(n);
                self.discontinuity = true;
            }
            SeqStatus::InOrder => {}
        }
        if pkt.payload.is_empty() {
            return Ok(());
        }
        if self.out.len() >= MAX_QUEUE {
            self.out.pop_front();
        }
        self.out.push_back(RtpFrame {
            data: pkt.payload.to_vec(),
            timestamp: pkt.timestamp,
            keyframe: true,
            discontinuity: std::mem::take(&mut self.discontinuity),
        });
        Ok(())
    }
}
