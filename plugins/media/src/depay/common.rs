//! State every depacketizer shares: sequence tracking, the loss counter,
//! the pending discontinuity flag and the output queue.

use std::collections::VecDeque;

use super::RtpFrame;
use crate::rtp::{SeqStatus, SeqTracker};

/// Outcome of [`DepayState::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqCheck {
    /// Late or duplicate packet: ignore it.
    Stale,
    /// Packets were lost before this one (already counted, and the next
    /// frame is marked as a discontinuity); drop any partial frame.
    Gap,
    /// The expected next packet.
    InOrder,
}

/// Shared depacketizer state. `MAX_QUEUE` bounds the output queue: frames
/// not popped beyond it are dropped, oldest first.
#[derive(Debug, Clone, Default)]
pub(super) struct DepayState<const MAX_QUEUE: usize> {
    seq: SeqTracker,
    lost: u64,
    discontinuity: bool,
    out: VecDeque<RtpFrame>,
}

impl<const MAX_QUEUE: usize> DepayState<MAX_QUEUE> {
    /// Classify a packet's sequence number; a gap adds to the loss count
    /// and marks the next frame as a discontinuity.
    pub(super) fn check(&mut self, sequence: u16) -> SeqCheck {
        match self.seq.check(sequence) {
            SeqStatus::Stale => SeqCheck::Stale,
            SeqStatus::Gap(n) => {
                self.lost += u64::from(n);
                self.discontinuity = true;
                SeqCheck::Gap
            }
            SeqStatus::InOrder => SeqCheck::InOrder,
        }
    }

    /// Mark the next frame as a discontinuity (a frame was dropped).
    pub(super) fn set_discontinuity(&mut self) {
        self.discontinuity = true;
    }

    /// Queue a frame, taking the pending discontinuity flag.
    pub(super) fn emit(&mut self, data: Vec<u8>, timestamp: u32, keyframe: bool) {
        if self.out.len() >= MAX_QUEUE {
            self.out.pop_front();
        }
        self.out.push_back(RtpFrame {
            data,
            timestamp,
            keyframe,
            discontinuity: std::mem::take(&mut self.discontinuity),
        });
    }

    /// Packets counted as lost from sequence gaps.
    pub(super) fn lost_packets(&self) -> u64 {
        self.lost
    }

    /// Next queued frame.
    pub(super) fn pop(&mut self) -> Option<RtpFrame> {
        self.out.pop_front()
    }
}
