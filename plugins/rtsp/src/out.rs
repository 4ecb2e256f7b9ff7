//! A connection's writer. Frames are written straight from the producer's
//! thread with a non-blocking send when nothing is queued (no task wake-up,
//! one syscall per frame); only what the socket cannot take now is queued,
//! in order, for the connection's writer task. A client that falls behind by
//! more than `MAX_PENDING` frames loses frames until the next video keyframe,
//! counted; the producer never waits.
//!
//! On a session that plays video over TCP, an audio frame may wait for the
//! next video frame and go out in the same write. On loopback most of the
//! server's CPU is the kernel's per-write TCP cost, and with 48 kHz AAC there
//! are about two audio frames per video frame, so this cuts the writes per
//! session by two thirds. The feed allows it (`OutFrame::hold`) only while
//! video arrives at least every `coalesce` (`rtsp.coalesce_ms`, 50 ms: 20 fps
//! and up), so audio is late by at most one video frame interval. If video
//! then stops, the next audio frame after `coalesce` takes the held ones out
//! with it (the feed no longer allows holding either); a stream that stops
//! altogether keeps its last few held audio frames until it resumes.
//!
//! `push` runs once per frame per session, so what it touches is kept in one
//! place (the state behind the mutex, no further pointers to chase), and the
//! direct send is a plain `sendmsg` on the socket: going through tokio's
//! readiness bookkeeping costs another cache miss per session per frame.

use camrouter_plugin_api::abi::ClientCounters;
use camrouter_plugin_api::RArc;
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
/// A client whose socket takes nothing for this long is disconnected (it
/// stopped reading but did not close).
const STALLED: Duration = Duration::from_secs(15);
/// Items per vectored write; Linux takes up to 1024 iovecs.
const MAX_IOV: usize = 64;
/// Held frames plus one that are written from a stack array.
const INLINE_IOV: usize = 16;
/// Tracks kept in the session's state itself; more go to `more_transports`.
const INLINE_TRACKS: usize = 8;

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
    /// Plays a video track (on any transport): drops wait for a keyframe.
    has_video: bool,
    /// Plays a video track over TCP: audio may wait for its writes.
    tcp_video: bool,
    /// Our track → transport.
    transports: [Option<SetupTransport>; INLINE_TRACKS],
    pending: VecDeque<(Item, usize)>,
    /// Audio waiting for the next video frame's write.
    held: Vec<Item>,
    /// When the oldest held audio frame was made.
    held_since: Option<std::time::Instant>,
    udp: Option<(Arc<UdpSocket>, IpAddr)>,
    /// Transports of tracks from `INLINE_TRACKS` on (rare).
    more_transports: Vec<Option<SetupTransport>>,
    /// The session's client record in the host (`/api/streams`, metrics).
    counters: Option<RArc<ClientCounters>>,
}

impl State {
    #[inline]
    fn count_drop(&self) {
        if let Some(c) = &self.counters {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn count_sent(&self, frame: &OutFrame) {
        if let Some(c) = &self.counters {
            c.bytes
                .fetch_add(frame.rtp.bytes().len() as u64, Ordering::Relaxed);
            c.packets
                .fetch_add(frame.rtp.ranges().len() as u64, Ordering::Relaxed);
        }
    }

    fn transport(&self, track: usize) -> Option<SetupTransport> {
        match self.transports.get(track) {
            Some(t) => *t,
            None => self
                .more_transports
                .get(track - INLINE_TRACKS)
                .copied()
                .flatten(),
        }
    }
}

/// `repr(C)`: the state and what `push` reads with it come first, from the
/// start of a cache line.
#[repr(C, align(64))]
pub struct ConnWriter {
    state: Mutex<State>,
    /// Longest an audio frame waits for a video frame; zero: never.
    coalesce: Duration,
    /// `wr`'s socket, valid as long as `wr` lives.
    fd: RawFd,
    wr: OwnedWriteHalf,
    wake: Notify,
    /// Signalled once when the writer has ended: the connection ends too.
    pub gone: Notify,
    pub dropped: AtomicU64,
}

/// One non-blocking `sendmsg` of `bufs`: bytes taken, or the error
/// (`WouldBlock` when the socket buffer is full).
fn send_nb(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let [one] = bufs {
        // SAFETY: a valid buffer of `one.len()` bytes; the kernel only reads.
        let n = unsafe {
            libc::send(
                fd,
                one.as_ptr() as *const libc::c_void,
                one.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        // `send` skips `sendmsg`'s copying in of a header and an iovec.
        return if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
    }
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
            gone: Notify::new(),
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

    /// Starts playing `transports` (our track → transport); `is_video`
    /// tells which of our tracks are video.
    pub fn start_play(
        &self,
        transports: HashMap<usize, SetupTransport>,
        is_video: impl Fn(usize) -> bool,
        udp: Option<(Arc<UdpSocket>, IpAddr)>,
    ) {
        let mut st = self.lock();
        st.transports = [None; INLINE_TRACKS];
        st.more_transports.clear();
        st.has_video = false;
        st.tcp_video = false;
        for (t, tr) in transports {
            if is_video(t) {
                st.has_video = true;
                st.tcp_video |= matches!(tr, SetupTransport::Tcp { .. });
            }
            if t < INLINE_TRACKS {
                st.transports[t] = Some(tr);
            } else {
                let i = t - INLINE_TRACKS;
                if st.more_transports.len() <= i {
                    st.more_transports.resize(i + 1, None);
                }
                st.more_transports[i] = Some(tr);
            }
        }
        st.udp = udp;
        st.playing = true;
    }

    /// Where this session counts what it sends and drops.
    pub fn set_counters(&self, counters: Option<RArc<ClientCounters>>) {
        self.lock().counters = counters;
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
    /// When it ends (closed, a write error, or a client that stopped
    /// reading), the writer is closed and `gone` tells the connection.
    pub async fn run(self: Arc<Self>) {
        self.drain_until_done().await;
        {
            let mut st = self.lock();
            st.closed = true;
            st.held.clear();
            st.pending.clear();
        }
        self.gone.notify_one();
    }

    async fn drain_until_done(&self) {
        loop {
            let (front, closed) = {
                let st = self.lock();
                (!st.pending.is_empty(), st.closed)
            };
            if closed {
                // Best effort for what is queued (a TEARDOWN reply): only
                // what the socket takes now.
                if front {
                    let _ = self.drain_now();
                }
                return;
            }
            if !front {
                self.wake.notified().await;
                continue;
            }
            match tokio::time::timeout(STALLED, self.wr.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!(
                        "rtsp: client read nothing for {} s: closing",
                        STALLED.as_secs()
                    );
                    return;
                }
            }
            if self.drain_now().is_err() {
                return;
            }
        }
    }

    /// Writes what is queued until the socket is full or the queue empty.
    fn drain_now(&self) -> io::Result<()> {
        let mut st = self.lock();
        while !st.pending.is_empty() {
            let slices: Vec<IoSlice<'_>> = st
                .pending
                .iter()
                .take(MAX_IOV)
                .map(|(item, off)| IoSlice::new(&item.bytes()[*off..]))
                .collect();
            // Through tokio, so that a full socket clears its readiness
            // and `writable()` really waits.
            let mut n = match self.wr.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            let all = n == slices.iter().map(|s| s.len()).sum::<usize>();
            let count = slices.len();
            drop(slices);
            // Pops what was written, empty items included (an empty
            // item left at the front would be retried forever).
            for _ in 0..count {
                let Some((item, off)) = st.pending.front_mut() else {
                    break;
                };
                let rest = item.bytes().len() - *off;
                if n >= rest {
                    n -= rest;
                    st.pending.pop_front();
                } else {
                    *off += n;
                    break;
                }
            }
            if !all {
                break;
            }
        }
        Ok(())
    }
}

impl FrameSink for ConnWriter {
    fn end(&self) {
        self.close();
    }

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
                st.count_drop();
                return;
            }
            st.dropping = false;
        }
        if st.pending.len() >= MAX_PENDING {
            st.dropping = true;
            st.held.clear();
            st.held_since = None;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            st.count_drop();
            return;
        }
        match st.transport(frame.track) {
            Some(SetupTransport::Tcp { rtp_channel, .. }) => {
                st.count_sent(frame);
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
                if is_video
                    || !frame.hold
                    || !st.tcp_video
                    || self.coalesce.is_zero()
                    || !st.pending.is_empty()
                    || st.closed
                {
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
                st.count_sent(frame);
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
        frame_hold(track, fill, keyframe, at, true)
    }

    fn frame_hold(
        track: usize,
        fill: u8,
        keyframe: bool,
        at: Instant,
        hold: bool,
    ) -> Arc<OutFrame> {
        let info = CodecInfo::new(CodecName::Pcmu, 8000);
        let mut p = Packetizer::new(&info, 0, 1, 1200).expect("pcmu packetizer");
        let mut rtp = RtpPackets::new(Framing::Interleaved((track * 2) as u8));
        p.packetize(&[fill; 160], 0, &mut rtp).expect("packetize");
        Arc::new(OutFrame {
            track,
            keyframe,
            at,
            hold,
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
        w.start_play(tr, |t| t == 0, None);
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
        w.start_play(tr, |_| false, None);
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

    #[tokio::test]
    async fn audio_goes_at_once_when_the_feed_does_not_allow_holding() {
        let (w, c) = pair(50).await;
        w.push(&frame_hold(1, 0xA1, false, Instant::now(), false), false);
        assert_eq!(fills(&readable_now(&c)), vec![(2, 0xA1)]);
    }

    #[tokio::test]
    async fn tracks_past_the_inline_ones_are_played() {
        let (w, c) = pair(50).await;
        let mut tr = HashMap::new();
        tr.insert(
            9,
            SetupTransport::Tcp {
                rtp_channel: 18,
                rtcp_channel: 19,
            },
        );
        w.start_play(tr, |_| false, None);
        w.push(&frame(9, 0xC1, false, Instant::now()), false);
        assert_eq!(fills(&readable_now(&c)), vec![(18, 0xC1)]);
    }

    /// A client that does not read: the socket fills, the rest is queued
    /// and the writer task sends it, in order and byte for byte, as the
    /// client catches up; an empty item in the queue does not stall it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_socket_queues_in_order_and_the_writer_task_drains_it() {
        let (w, c) = pair(50).await;
        let small: libc::c_int = 4096;
        // SAFETY: setsockopt with a valid fd and an int option value.
        let rc = unsafe {
            libc::setsockopt(
                w.fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                &small as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        tokio::spawn(w.clone().run());
        let t = Instant::now();
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        w.send_bytes(big.clone());
        expected.extend_from_slice(&big);
        w.send_bytes(Vec::new());
        let frames = [
            frame(1, 0xA1, false, t),
            frame(0, 0xB1, true, t),
            frame(1, 0xA2, false, t),
        ];
        for f in &frames {
            w.push(f, f.track == 0);
            expected.extend_from_slice(f.rtp.bytes());
        }
        w.send_bytes(b"RTSP/1.0 200 OK\r\n\r\n".to_vec());
        expected.extend_from_slice(b"RTSP/1.0 200 OK\r\n\r\n");
        w.send_bytes(Vec::new());
        assert!(!w.lock().pending.is_empty(), "the socket did not fill up");

        let got = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut c = c;
            c.set_nonblocking(false).expect("blocking");
            c.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let mut got = vec![0u8; expected.len()];
            c.read_exact(&mut got).expect("everything arrives");
            (got, expected)
        })
        .await
        .expect("reader");
        assert!(got.0 == got.1, "bytes differ from what was sent, in order");
        assert!(w.lock().pending.is_empty());
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A client that stopped reading (but keeps its socket open) is
    /// disconnected after `STALLED`, and the connection is told (`gone`).
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_disconnected() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let _c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        let (rd, wr) = s.into_split();
        let w = ConnWriter::new(wr, Duration::ZERO);
        w.send_bytes(vec![7u8; 16 << 20]);
        assert!(!w.lock().pending.is_empty(), "the socket did not fill up");
        let task = tokio::spawn(w.clone().run());
        // Paused time moves on to the stall timer once everything waits.
        tokio::time::timeout(STALLED * 2, w.gone.notified())
            .await
            .expect("the writer gave up on the client");
        task.await.expect("writer task");
        assert!(w.lock().closed);
        drop(rd);
    }
}
