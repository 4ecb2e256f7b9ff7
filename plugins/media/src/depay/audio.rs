//! One frame per RTP packet: Opus (RFC 7587 4.2), G.711 / L16 / G.722
//! (RFC 3551 4.5). The payload is passed through as is.

use super::common::{DepayState, SeqCheck};
use super::RtpFrame;
use crate::error::Result;
use crate::rtp::RtpPacket;

/// Queue depth bound: frames not popped beyond this are dropped (oldest first).
const MAX_QUEUE: usize = 256;

/// Pass-through depacketizer for single-frame-per-packet audio codecs.
#[derive(Debug, Clone, Default)]
pub struct PassthroughDepacketizer {
    state: DepayState<MAX_QUEUE>,
}

impl PassthroughDepacketizer {
    /// New depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.state.lost_packets()
    }

    /// Next frame.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.state.pop()
    }

    /// Feed one packet; empty payloads are ignored.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        if self.state.check(pkt.sequence) == SeqCheck::Stale || pkt.payload.is_empty() {
            return Ok(());
        }
        self.state.emit(pkt.payload.to_vec(), pkt.timestamp, true);
        Ok(())
    }
}
