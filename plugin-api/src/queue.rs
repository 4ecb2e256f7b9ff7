//! The per-consumer queue every output plugin needs (DESIGN.md §4): the
//! producer's thread only enqueues; a full queue means a slow client, so
//! frames are dropped until the next video keyframe (a decoder cannot use
//! frames that follow a gap anyway) and counted. Memory stays bounded and
//! the producer is never blocked.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::abi::Packet;

/// The sending half, called from the producer's thread.
pub struct FrameQueue {
    tx: mpsc::Sender<(u32, Packet)>,
    /// Tracks that carry video; only their keyframes end a drop.
    video: Vec<bool>,
    dropping: AtomicBool,
    dropped: AtomicU64,
}

impl FrameQueue {
    /// `video[t]` says whether consumer track `t` is video. With no video
    /// track at all, dropping ends at the next frame that fits.
    pub fn new(capacity: usize, video: Vec<bool>) -> (FrameQueue, mpsc::Receiver<(u32, Packet)>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            FrameQueue {
                tx,
                video,
                dropping: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Enqueues a frame or drops it. Returns `false` once the reader is gone.
    pub fn push(&self, track: u32, packet: &Packet) -> bool {
        let has_video = self.video.iter().any(|v| *v);
        let is_video = self.video.get(track as usize).copied().unwrap_or(false);
        if self.dropping.load(Ordering::Relaxed) {
            let resumes = if has_video {
                is_video && packet.is_keyframe()
            } else {
                true
            };
            if !resumes {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return !self.tx.is_closed();
            }
        }
        match self.tx.try_send((track, packet.clone())) {
            Ok(()) => {
                self.dropping.store(false, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropping.store(true, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Frames dropped because the client was slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::FLAG_KEYFRAME;
    use abi_stable::std_types::{RArc, RVec};

    fn pkt(key: bool, n: u8) -> Packet {
        Packet {
            track: 0,
            flags: if key { FLAG_KEYFRAME } else { 0 },
            pts: 0,
            dts: 0,
            received_at_us: 0,
            payload: RArc::new(RVec::from(vec![n])),
        }
    }

    #[test]
    fn full_queue_drops_until_next_video_keyframe() {
        let (q, mut rx) = FrameQueue::new(2, vec![true, false]);
        assert!(q.push(0, &pkt(true, 1)));
        assert!(q.push(1, &pkt(false, 2)));
        assert!(q.push(0, &pkt(false, 3))); // full: dropped, dropping starts
        assert_eq!(q.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap().1.payload[0], 1);
        assert_eq!(rx.try_recv().unwrap().1.payload[0], 2);
        q.push(0, &pkt(false, 4)); // room again, but not a keyframe
        q.push(1, &pkt(false, 5)); // audio waits for the video keyframe too
        assert_eq!(q.dropped(), 3);
        q.push(0, &pkt(true, 6));
        q.push(1, &pkt(false, 7));
        let got: Vec<u8> =
            std::iter::from_fn(|| rx.try_recv().ok().map(|p| p.1.payload[0])).collect();
        assert_eq!(got, vec![6, 7]);
    }

    #[test]
    fn audio_only_resumes_when_room() {
        let (q, mut rx) = FrameQueue::new(1, vec![false]);
        q.push(0, &pkt(false, 1));
        q.push(0, &pkt(false, 2));
        assert_eq!(q.dropped(), 1);
        rx.try_recv().unwrap();
        q.push(0, &pkt(false, 3));
        assert_eq!(rx.try_recv().unwrap().1.payload[0], 3);
    }

    #[test]
    fn closed_reader_is_reported() {
        let (q, rx) = FrameQueue::new(1, vec![true]);
        drop(rx);
        assert!(!q.push(0, &pkt(true, 1)));
    }
}
