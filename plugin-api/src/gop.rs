//! The frames since the last video keyframe, so that a new consumer starts
//! at once from a keyframe instead of waiting up to a GOP. The host keeps one
//! per video track (of packets); the RTSP server one per feed (of packetized
//! frames, audio included).

/// Caps keep a camera with a huge GOP (or none) from growing memory.
pub const GOP_MAX_BYTES: usize = 16 << 20;
pub const GOP_MAX_FRAMES: usize = 600;

#[derive(Debug)]
pub struct Gop<T> {
    frames: Vec<T>,
    bytes: usize,
}

impl<T> Default for Gop<T> {
    fn default() -> Self {
        Gop {
            frames: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> Gop<T> {
    /// A keyframe starts a new GOP; any other frame joins a started one.
    /// Past a cap the GOP is dropped, and nothing is kept until the next
    /// keyframe.
    pub fn push(&mut self, frame: T, len: usize, keyframe: bool) {
        if keyframe {
            self.clear();
        } else if self.frames.is_empty() {
            return;
        }
        if self.bytes + len > GOP_MAX_BYTES || self.frames.len() >= GOP_MAX_FRAMES {
            self.clear();
            return;
        }
        self.bytes += len;
        self.frames.push(frame);
    }

    pub fn frames(&self) -> &[T] {
        &self.frames
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_a_keyframe_and_restarts_at_the_next() {
        let mut g = Gop::default();
        g.push(1, 10, false);
        assert!(
            g.frames().is_empty(),
            "frames before a keyframe are useless"
        );
        g.push(2, 10, true);
        g.push(3, 10, false);
        assert_eq!(g.frames(), &[2, 3]);
        g.push(4, 10, true);
        assert_eq!(g.frames(), &[4]);
    }

    #[test]
    fn past_a_cap_nothing_is_kept_until_the_next_keyframe() {
        let mut g = Gop::default();
        g.push(1, 10, true);
        g.push(2, GOP_MAX_BYTES, false);
        assert!(g.frames().is_empty());
        g.push(3, 10, false);
        assert!(g.frames().is_empty());
        g.push(4, 10, true);
        assert_eq!(g.frames(), &[4]);

        let mut g = Gop::default();
        g.push(0, 1, true);
        for i in 1..GOP_MAX_FRAMES {
            g.push(i, 1, false);
        }
        assert_eq!(g.frames().len(), GOP_MAX_FRAMES);
        g.push(GOP_MAX_FRAMES, 1, false);
        assert!(g.frames().is_empty());
    }
}
