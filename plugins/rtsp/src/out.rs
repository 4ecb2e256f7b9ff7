//! A connection's writer. Frames are written straight from the producer's
//! thread with a non-blocking `try_write` when nothing is queued (no task
//! wake-up, one syscall per frame); only what the socket cannot take now is
//! queued, in order, for the connection's writer task. A client that falls
//! behind by more than `MAX_PENDING` frames loses frames until the next
//! video keyframe, counted; the producer never waits.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::feed::{FrameSink, OutFrame};
use crate::proto::server::SetupTransport;

const MAX_PENDING: usize = 256;

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

#[derive(Default)]
struct State {
    pending: VecDeque<(Item, usize)>,
    /// Dropping until a video keyframe.
    dropping: bool,
    closed: bool,
    /// Set by PLAY: our track → transport, and whether video is played.
    play: Option<Arc<PlayMap>>,
}

struct PlayMap {
    /// Indexed by our track number.
    transports: Vec<Option<SetupTransport>>,
    has_video: bool,
    udp: Option<(Arc<UdpSocket>, std::net::IpAddr)>,
}

pub struct ConnWriter {
    wr: OwnedWriteHalf,
    state: Mutex<State>,
    wake: Notify,
    pub dropped: AtomicU64,
}

impl ConnWriter {
    pub fn new(wr: OwnedWriteHalf) -> Arc<ConnWriter> {
        Arc::new(ConnWriter {
            wr,
            state: Mutex::default(),
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
        self.enqueue_or_write(&mut st, Item::Bytes(bytes));
    }

    pub fn start_play(
        &self,
        transports: HashMap<usize, SetupTransport>,
        has_video: bool,
        udp: Option<(Arc<UdpSocket>, std::net::IpAddr)>,
    ) {
        let len = transports.keys().max().map(|m| m + 1).unwrap_or(0);
        let mut by_track = vec![None; len];
        for (t, tr) in transports {
            by_track[t] = Some(tr);
        }
        self.lock().play = Some(Arc::new(PlayMap {
            transports: by_track,
            has_video,
            udp,
        }));
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    fn enqueue_or_write(&self, st: &mut State, item: Item) {
        if st.closed {
            return;
        }
        if st.pending.is_empty() {
            match self.wr.try_write(item.bytes()) {
                Ok(n) if n == item.bytes().len() => return,
                Ok(n) => st.pending.push_back((item, n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => st.pending.push_back((item, 0)),
                Err(_) => {
                    st.closed = true;
                }
            }
        } else {
            st.pending.push_back((item, 0));
        }
        self.wake.notify_one();
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
            while let Some((item, off)) = st.pending.front_mut() {
                let rest = &item.bytes()[*off..];
                match self.wr.try_write(rest) {
                    Ok(n) if n == rest.len() => {
                        st.pending.pop_front();
                    }
                    Ok(n) => {
                        *off += n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        st.closed = true;
                        return;
                    }
                }
            }
        }
    }
}

impl FrameSink for ConnWriter {
    fn push(&self, frame: &Arc<OutFrame>, is_video: bool) {
        let mut st = self.lock();
        let Some(play) = st.play.clone() else { return };
        if st.dropping {
            if play.has_video && !(is_video && frame.keyframe) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            st.dropping = false;
        }
        if st.pending.len() >= MAX_PENDING {
            st.dropping = true;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match play.transports.get(frame.track).copied().flatten() {
            Some(SetupTransport::Tcp { rtp_channel, .. }) => {
                if rtp_channel as usize == frame.track * 2 {
                    self.enqueue_or_write(&mut st, Item::Frame(frame.clone()));
                } else {
                    // A client that chose its own channel ids: patch a copy.
                    let mut b = frame.rtp.bytes().to_vec();
                    for r in frame.rtp.ranges() {
                        if r.start >= 3 {
                            b[r.start - 3] = rtp_channel;
                        }
                    }
                    self.enqueue_or_write(&mut st, Item::Bytes(b));
                }
            }
            Some(SetupTransport::Udp { rtp_port, .. }) => {
                if let Some((sock, ip)) = &play.udp {
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
