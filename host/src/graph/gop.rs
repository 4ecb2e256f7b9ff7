//! GOP cache: the frames of a video track since its last keyframe, so a new
//! consumer starts at once from a keyframe instead of waiting up to a GOP.

use camrouter_plugin_api::Packet;

/// Caps keep a camera with a huge GOP (or none) from growing memory.
const MAX_BYTES: usize = 16 << 20;
const MAX_FRAMES: usize = 600;

#[derive(Default)]
pub struct GopCache {
    frames: Vec<Packet>,
    bytes: usize,
    /// Set when a cap was hit: nothing is cached until the next keyframe.
    overflow: bool,
}

impl GopCache {
    pub fn push(&mut self, packet: &Packet) {
        if packet.is_keyframe() {
            self.frames.clear();
            self.bytes = 0;
            self.overflow = false;
        } else if self.frames.is_empty() || self.overflow {
            return;
        }
        let len = packet.payload.len();
        if self.bytes + len > MAX_BYTES || self.frames.len() >= MAX_FRAMES {
            self.frames.clear();
            self.bytes = 0;
            self.overflow = true;
            return;
        }
        self.bytes += len;
        self.frames.push(packet.clone());
    }

    pub fn frames(&self) -> &[Packet] {
        &self.frames
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.overflow = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camrouter_plugin_api::{RArc, RVec, FLAG_KEYFRAME};

    fn pkt(key: bool, len: usize) -> Packet {
        Packet {
            track: 0,
            flags: if key { FLAG_KEYFRAME } else { 0 },
            pts: 0,
            dts: 0,
            received_at_us: 0,
            payload: RArc::new(RVec::from(vec![0u8; len])),
        }
    }

    #[test]
    fn starts_at_keyframe_and_resets() {
        let mut g = GopCache::default();
        g.push(&pkt(false, 10));
        assert!(
            g.frames().is_empty(),
            "delta frames before a keyframe are useless"
        );
        g.push(&pkt(true, 10));
        g.push(&pkt(false, 10));
        assert_eq!(g.frames().len(), 2);
        g.push(&pkt(true, 10));
        assert_eq!(g.frames().len(), 1);
    }

    #[test]
    fn overflow_drops_until_next_keyframe() {
        let mut g = GopCache::default();
        g.push(&pkt(true, 10));
        g.push(&pkt(false, MAX_BYTES));
        assert!(g.frames().is_empty());
        g.push(&pkt(false, 10));
        assert!(g.frames().is_empty());
        g.push(&pkt(true, 10));
        assert_eq!(g.frames().len(), 1);
    }
}
