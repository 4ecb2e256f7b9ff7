//! A connection's writer. Frames are written straight from the producer's
//! thread with a non-blocking send when nothing is queued (no task wake-up,
//! one syscall per frame); only what the socket cannot take now is queued,
//! in order, for the connection's writer task. A client that falls behind by
//! more than `MAX_PENDING` frames loses frames until the next video keyframe,
//! counted; the producer never waits.
//!
//! On a session that plays video, audio frames may wait up to `coalesce`
//! (`rtsp.coalesce_ms`) and go out in the same write as the next video
//! frame. On loopback most of the server's CPU is the kernel's per-write TCP
//! cost, and with 48 kHz AAC there are about two audio frames per video
//! frame, so this cuts the writes per session by two thirds. A player cannot
//! show audio at time T in sync before it has the video for T, which comes in
//! that next write; the wait is bounded all the same, checked when the next
//! frame arrives.
//!
//! `push` runs once per frame per session, so what it touches is kept in one
//! place (the state behind the mutex, no further pointers to chase), and the
//! direct send is a plain `sendmsg` on the socket: going through tokio's
//! readiness bookkeeping costs another cache miss per session per frame.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::feed::{FrameSink, OutFrame};
use crate::proto::server::SetupTransport;

const MAX_PENDING: usize = 256;
/// Items per vectored write; Linux takes up to 1024 iovecs.
const MAX_IOV: usize = 64;
/// Held frames plus one that are written from a stack array.
const INLINE_IOV: usize = 16;
/// Tracks a session can play; an SDP has a handful.
pub const MAX_TRACKS: usize = 8;

enum Item {
    Frame(Arc<OutFrame>),
    Bytes(Vec<u8>),
}

impl Item {
    fn bytes(&self) -> &[u8] {
        match self {
            Item::Frame(f) => f.rtp.bytes(),
            Item::Bytes(b) => b,
        }
    }
}

/// `repr(C)`: the fields `push` reads come first, to share cache lines.
#[derive(Default)]
#[repr(C)]
struct State {
    closed: bool,
    /// Dropping until a video keyframe.
    dropping: bool,
    /// Set by PLAY.
    playing: bool,
    has_video: bool,
    /// Our track → transport.
    transports: [Option<SetupTransport>; MAX_TRACKS],
    pending: VecDeque<(Item, usize)>,
    /// Audio waiting for the next video frame's write.
    held: Vec<Item>,
    /// When the oldest held audio frame was made.
    held_since: Option<std::time::Instant>,
    udp: Option<(Arc<UdpSocket>, IpAddr)>,
}

/// `repr(C)`: the state and what `push` reads with it come first.
#[repr(C)]
pub struct ConnWriter {
    state: Mutex<State>,
    /// Longest an audio frame waits for a video frame; zero: never.
    coalesce: Duration,
    /// `wr`'s socket, valid as long as `wr` lives.
    fd: RawFd,
    wr: OwnedWriteHalf,
    wake: Notify,
    pub dropped: AtomicU64,
}

/// One non-blocking `sendmsg` of `bufs`: bytes taken, or the error
/// (`WouldBlock` when the socket buffer is full).
fn send_nb(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid ("no name, no control data");
    // IoSlice is ABI-compatible with iovec and outlives the call, and the
    // kernel only reads from it.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl ConnWriter {
    pub fn new(wr: OwnedWriteHalf, coalesce: Duration) -> Arc<ConnWriter> {
        let fd = AsRef::<tokio::net::TcpStream>::as_ref(&wr).as_raw_fd();
        Arc::new(ConnWriter {
            state: Mutex::default(),
            coalesce,
            fd,
            wr,
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A control message (an RTSP response), in order with the frames.
    pub fn send_bytes(&self, bytes: Vec<u8>) {
        let mut st = self.lock();
        self.write(&mut st, Item::Bytes(bytes));
    }

    pub fn start_play(
        &self,
        transports: HashMap<usize, SetupTransport>,
        has_video: bool,
        udp: Option<(Arc<UdpSocket>, IpAddr)>,
    ) {
        let mut st = self.lock();
        for (t, tr) in transports {
            match st.transports.get_mut(t) {
                Some(slot) => *slot = Some(tr),
                None => tracing::warn!("rtsp: track {t} not played: at most {MAX_TRACKS} tracks"),
            }
        }
        st.has_video = has_video;
        st.udp = udp;
        st.playing = true;
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Writes `item` after any held audio, in one syscall when the socket
    /// takes it all; what it does not take is queued, in order.
    fn write(&self, st: &mut std::sync::MutexGuard<'_, State>, item: Item) {
        if st.closed {
            st.held.clear();
            return;
        }
        if !st.pending.is_empty() {
            st.held_since = None;
            let held = std::mem::take(&mut st.held);
            st.pending.extend(held.into_iter().map(|i| (i, 0)));
            st.pending.push_back((item, 0));
            self.wake.notify_one();
            return;
        }
        let sent = if st.held.is_empty() {
            send_nb(self.fd, &[IoSlice::new(item.bytes())])
        } else if st.held.len() < INLINE_IOV {
            // On the stack: this runs per session per video frame.
            let mut slices = [IoSlice::new(&[]); INLINE_IOV];
            for (slot, i) in slices.iter_mut().zip(&st.held) {
                *slot = IoSlice::new(i.bytes());
            }
            slices[st.held.len()] = IoSlice::new(item.bytes());
            send_nb(self.fd, &slices[..=st.held.len()])
        } else {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(st.held.len() + 1);
            slices.extend(st.held.iter().map(|i| IoSlice::new(i.bytes())));
            slices.push(IoSlice::new(item.bytes()));
            send_nb(self.fd, &slices)
        };
        let mut written = match sent {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                st.closed = true;
                st.held.clear();
                self.wake.notify_one();
                return;
            }
        };
        st.held_since = None;
        // Drained, not taken: `held` keeps its capacity for the next frame.
        let State { held, pending, .. } = &mut **st;
        for item in held.drain(..).chain(std::iter::once(item)) {
            let len = item.bytes().len();
            if written >= len {
                written -= len;
            } else {
                pending.push_back((item, written));
                written = 0;
            }
        }
        if !st.pending.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The writer task: drains what the socket could not take at once.
    pub async fn run(self: Arc<Self>) {
        loop {
            let front = {
                let st = self.lock();
                if st.closed {
                    return;
                }
                !st.pending.is_empty()
            };
            if !front {
                self.wake.notified().await;
                continue;
            }
            if self.wr.writable().await.is_err() {
                self.close();
                return;
            }
            let mut st = self.lock();
            while !st.pending.is_empty() {
                let slices: Vec<IoSlice<'_>> = st
                    .pending
                    .iter()
                    .take(MAX_IOV)
                    .map(|(item, off)| IoSlice::new(&item.bytes()[*off..]))
                    .collect();
                // Through tokio, so that a full socket clears its readiness
                // and `writable()` above really waits.
                let mut n = match self.wr.try_write_vectored(&slices) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        st.closed = true;
                        return;
                    }
                };
                let all = n == slices.iter().map(|s| s.len()).sum::<usize>();
                drop(slices);
                while n > 0 {
                    let Some((item, off)) = st.pending.front_mut() else {
                        break;
                    };
                    let rest = item.bytes().len() - *off;
                    if n >= rest {
                        n -= rest;
                        st.pending.pop_front();
                    } else {
                        *off += n;
                        n = 0;
                    }
                }
                if !all {
                    break;
                }
            }
        }
    }
}

impl FrameSink for ConnWriter {
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self as *const ConnWriter as *const i8;
            // What `push` reads: the state and the fields after it.
            let hot = std::mem::offset_of!(ConnWriter, wr);
            for off in (0..hot).step_by(64) {
                // SAFETY: prefetching is only a hint; the addresses are
                // within a live object and are not dereferenced here.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            }
        }
    }

    fn push(&self, frame: &Arc<OutFrame>, is_video: bool) {
        let mut st = self.lock();
        if !st.playing {
            return;
        }
        if st.dropping {
            if st.has_video && !(is_video && frame.keyframe) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            st.dropping = false;
        }
        if st.pending.len() >= MAX_PENDING {
            st.dropping = true;
            st.held.clear();
            st.held_since = None;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match st.transports.get(frame.track).copied().flatten() {
            Some(SetupTransport::Tcp { rtp_channel, .. }) => {
                let item = if rtp_channel as usize == frame.track * 2 {
                    Item::Frame(frame.clone())
                } else {
                    // A client that chose its own channel ids: patch a copy.
                    let mut b = frame.rtp.bytes().to_vec();
                    for r in frame.rtp.ranges() {
                        if r.start >= 3 {
                            b[r.start - 3] = rtp_channel;
                        }
                    }
                    Item::Bytes(b)
                };
                if is_video || !st.has_video || self.coalesce.is_zero() || !st.pending.is_empty() {
                    return self.write(&mut st, item);
                }
                match st.held_since {
                    Some(t) if frame.at.saturating_duration_since(t) >= self.coalesce => {
                        self.write(&mut st, item)
                    }
                    Some(_) => st.held.push(item),
                    None => {
                        st.held_since = Some(frame.at);
                        st.held.push(item);
                    }
                }
            }
            Some(SetupTransport::Udp { rtp_port, .. }) => {
                if let Some((sock, ip)) = &st.udp {
                    let to = SocketAddr::new(*ip, rtp_port);
                    // UDP is lossy anyway: a full socket buffer drops.
                    for p in frame.rtp.iter() {
                        let _ = sock.try_send_to(p, to);
                    }
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
    use camrouter_media::{CodecInfo, CodecName};
    use std::time::Instant;
    use tokio::net::{TcpListener, TcpStream};

    /// A PCMU frame of `fill` bytes on `track`, made at `at`: PCMU goes out
    /// whole, so the bytes on the wire are easy to find.
    fn frame(track: usize, fill: u8, keyframe: bool, at: Instant) -> Arc<OutFrame> {
        let info = CodecInfo::new(CodecName::Pcmu, 8000);
        let mut p = Packetizer::new(&info, 0, 1, 1200).expect("pcmu packetizer");
        let mut rtp = RtpPackets::new(Framing::Interleaved((track * 2) as u8));
        p.packetize(&[fill; 160], 0, &mut rtp).expect("packetize");
        Arc::new(OutFrame {
            track,
            keyframe,
            at,
            rtp,
        })
    }

    async fn pair(coalesce_ms: u64) -> (Arc<ConnWriter>, std::net::TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        let (_rd, wr) = s.into_split();
        std::mem::forget(_rd);
        let w = ConnWriter::new(wr, Duration::from_millis(coalesce_ms));
        let mut tr = HashMap::new();
        tr.insert(
            0,
            SetupTransport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1,
            },
        );
        tr.insert(
            1,
            SetupTransport::Tcp {
                rtp_channel: 2,
                rtcp_channel: 3,
            },
        );
        w.start_play(tr, true, None);
        let c = c.into_std().expect("std stream");
        c.set_nonblocking(true).expect("nonblocking");
        (w, c)
    }

    /// What the client can read right now, without waiting: on loopback a
    /// send has reached the peer's socket when the syscall returns.
    fn readable_now(mut c: &std::net::TcpStream) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        out
    }

    /// The fill byte of each interleaved frame in `b`, in order.
    fn fills(b: &[u8]) -> Vec<(u8, u8)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 4 <= b.len() {
            assert_eq!(b[i], b'$', "interleaved framing at {i}");
            let ch = b[i + 1];
            let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
            out.push((ch, b[i + 4 + len - 1]));
            i += 4 + len;
        }
        assert_eq!(i, b.len(), "whole frames only");
        out
    }

    #[tokio::test]
    async fn audio_waits_for_the_next_video_frame_and_keeps_order() {
        let (w, c) = pair(50).await;
        let t = Instant::now();
        w.push(&frame(1, 0xA1, false, t), false);
        w.push(&frame(1, 0xA2, false, t), false);
        assert!(readable_now(&c).is_empty(), "audio is held");
        w.push(&frame(0, 0xB1, true, t), true);
        let got = fills(&readable_now(&c));
        assert_eq!(got, vec![(2, 0xA1), (2, 0xA2), (0, 0xB1)]);
    }

    #[tokio::test]
    async fn held_audio_goes_out_with_the_next_audio_after_the_budget() {
        let (w, c) = pair(50).await;
        let t = Instant::now();
        w.push(&frame(1, 0xA1, false, t), false);
        w.push(&frame(1, 0xA2, false, t + Duration::from_millis(20)), false);
        assert!(readable_now(&c).is_empty());
        // No video for 60 ms: the budget is spent, both go with this one.
        w.push(&frame(1, 0xA3, false, t + Duration::from_millis(60)), false);
        let got = fills(&readable_now(&c));
        assert_eq!(got, vec![(2, 0xA1), (2, 0xA2), (2, 0xA3)]);
    }

    #[tokio::test]
    async fn zero_budget_and_audio_only_sessions_write_at_once() {
        let (w, c) = pair(0).await;
        w.push(&frame(1, 0xA1, false, Instant::now()), false);
        assert_eq!(fills(&readable_now(&c)), vec![(2, 0xA1)]);

        let (w, c) = pair(50).await;
        let mut tr = HashMap::new();
        tr.insert(
            1,
            SetupTransport::Tcp {
                rtp_channel: 2,
                rtcp_channel: 3,
            },
        );
        w.start_play(tr, false, None);
        w.push(&frame(1, 0xA1, false, Instant::now()), false);
        assert_eq!(fills(&readable_now(&c)), vec![(2, 0xA1)]);
    }

    #[tokio::test]
    async fn a_response_flushes_held_audio_first() {
        let (w, c) = pair(50).await;
        w.push(&frame(1, 0xA1, false, Instant::now()), false);
        w.send_bytes(b"RTSP/1.0 200 OK\r\n\r\n".to_vec());
        let got = readable_now(&c);
        let (frames, resp) = got.split_at(got.len() - 19);
        assert_eq!(fills(frames), vec![(2, 0xA1)]);
        assert_eq!(resp, b"RTSP/1.0 200 OK\r\n\r\n");
    }
}
