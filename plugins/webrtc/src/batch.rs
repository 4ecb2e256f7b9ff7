//! The UDP datagrams of one turn of the peer loop, sent together: a frame
//! for every viewer (or a GOP for a new one) queues hundreds of encrypted
//! packets, and they go out in a few `sendmmsg(2)` calls instead of one
//! `sendto(2)` each. The datagrams are the peers' own (each encrypted its
//! copy); only the system calls are shared. Order is kept: a peer's
//! datagrams leave in the order its connection queued them.
//!
//! As with single sends, a datagram the socket cannot take now (buffer
//! full) is dropped, not queued: RTP is loss tolerant and NACK recovers
//! video.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::pktinfo::{set_source, to_sockaddr, Control};

/// Past this many queued datagrams the loop sends before going on, which
/// bounds what a turn holds (a keyframe for 200 viewers is ~10,000).
pub const MAX_QUEUED: usize = 1024;

/// One `sendmmsg` call carries at most this many (the kernel's UIO_MAXIOV).
const PER_CALL: usize = 1024;

struct Datagram {
    peer: u64,
    to: SocketAddr,
    /// The source address to name (pktinfo.rs), or the kernel's choice.
    src: Option<IpAddr>,
    data: BytesMut,
}

/// Datagrams waiting for the end of the turn.
#[derive(Default)]
pub struct Outbox {
    queued: Vec<Datagram>,
}

impl Outbox {
    pub fn push(&mut self, peer: u64, to: SocketAddr, src: Option<IpAddr>, data: BytesMut) {
        self.queued.push(Datagram {
            peer,
            to,
            src,
            data,
        });
    }

    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Sends everything queued (dropping what the socket refuses) and
    /// reports, per run of one peer's datagrams that left, `sent(peer,
    /// bytes, datagrams)`.
    pub fn send(&mut self, socket: Option<&UdpSocket>, mut sent: impl FnMut(u64, usize, usize)) {
        let Some(socket) = socket else {
            self.queued.clear();
            return;
        };
        let mut ok = vec![false; self.queued.len()];
        let mut at = 0;
        while at < self.queued.len() {
            let end = (at + PER_CALL).min(self.queued.len());
            match send_some(socket, &self.queued[at..end]) {
                Ok(n) => {
                    ok[at..at + n].iter_mut().for_each(|o| *o = true);
                    at += n.max(1);
                }
                // Buffer full: the rest of the turn is dropped, as a single
                // send would have been.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An error belongs to the first datagram not sent (an
                // unreachable address, say): skip it, send the rest.
                Err(e) => {
                    tracing::trace!(to = %self.queued[at].to, "webrtc: send: {e}");
                    at += 1;
                }
            }
        }
        let mut run: Option<(u64, usize, usize)> = None;
        for (d, ok) in self.queued.iter().zip(ok) {
            if !ok {
                continue;
            }
            match &mut run {
                Some((peer, bytes, n)) if *peer == d.peer => {
                    *bytes += d.data.len();
                    *n += 1;
                }
                _ => {
                    if let Some((peer, bytes, n)) = run.take() {
                        sent(peer, bytes, n);
                    }
                    run = Some((d.peer, d.data.len(), 1));
                }
            }
        }
        if let Some((peer, bytes, n)) = run {
            sent(peer, bytes, n);
        }
        self.queued.clear();
    }
}

/// How many of `batch` (from the first) the kernel took; an error is the
/// first datagram's.
fn send_some(socket: &UdpSocket, batch: &[Datagram]) -> io::Result<usize> {
    let mut addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        batch.iter().map(|d| to_sockaddr(d.to)).collect();
    let mut iovs: Vec<libc::iovec> = batch
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.data.as_ptr() as *mut libc::c_void,
            iov_len: d.data.len(),
        })
        .collect();
    // Made at its full length before any pointer into it is taken.
    let mut controls: Vec<Control> = if batch.iter().any(|d| d.src.is_some()) {
        vec![[0; 8]; batch.len()]
    } else {
        Vec::new()
    };
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(batch.len());
    for (i, ((name, namelen), iov)) in addrs.iter_mut().zip(iovs.iter_mut()).enumerate() {
        // SAFETY: mmsghdr is plain data (integers and raw pointers, some
        // libcs add private padding fields), for which all zeros is a
        // valid value: no control data, no flags.
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        m.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = *namelen;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        if let (Some(src), Some(control)) = (batch[i].src, controls.get_mut(i)) {
            m.msg_hdr.msg_control = control.as_mut_ptr().cast();
            // SAFETY: msg_control is this message's own Control, which
            // lives until the call below returns.
            unsafe { set_source(&mut m.msg_hdr, src) };
        }
        msgs.push(m);
    }
    let fd = socket.as_raw_fd();
    socket.try_io(Interest::WRITABLE, || {
        // SAFETY: every pointer in `msgs` (names, iovecs, control buffers
        // and the datagrams the iovecs point at) borrows from `addrs`,
        // `iovs`, `controls` and `batch`, which outlive the call and are
        // not moved or changed during it; the kernel only reads them (and
        // writes each `msg_len`, inside `msgs`). `msgs.len()` ≤ PER_CALL
        // fits the count argument.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as _, 0) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams of several peers to two receivers arrive whole and in
    /// order, and the sent counts add up per peer run.
    #[tokio::test]
    async fn sends_in_order_and_counts() {
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut out = Outbox::default();
        // Few enough for the receivers' default buffers.
        for i in 0..90u32 {
            let (peer, to) = if i % 3 == 0 { (1, aa) } else { (2, ba) };
            let mut d = BytesMut::from(&i.to_be_bytes()[..]);
            d.resize(100 + (i as usize % 50), 0xAB);
            out.push(peer, to, None, d);
        }
        let mut counts = std::collections::HashMap::<u64, (usize, usize)>::new();
        // Sends are attempted once the reactor saw the socket writable.
        tx.writable().await.unwrap();
        out.send(Some(&tx), |peer, bytes, n| {
            let c = counts.entry(peer).or_default();
            c.0 += bytes;
            c.1 += n;
        });
        assert_eq!(out.len(), 0);
        assert_eq!(counts[&1].1, 30);
        assert_eq!(counts[&2].1, 60);
        let mut buf = [0u8; 2048];
        for (sock, pick) in [(&a, 0u32), (&b, 1)] {
            let want: Vec<u32> = (0..90).filter(|i| (i % 3 != 0) as u32 == pick).collect();
            for i in want {
                let n = sock.recv(&mut buf).await.unwrap();
                assert_eq!(n, 100 + (i as usize % 50));
                assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), i);
            }
        }
    }

    /// A datagram that names its source leaves from it (a socket on every
    /// address; 127.0.0.2 is not what the kernel would pick for a peer on
    /// 127.0.0.1), in the same call as one that does not.
    #[tokio::test]
    async fn named_source() {
        let tx = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let mut out = Outbox::default();
        out.push(
            1,
            to,
            Some(IpAddr::from([127, 0, 0, 2])),
            BytesMut::from(&b"a"[..]),
        );
        out.push(1, to, None, BytesMut::from(&b"b"[..]));
        // Sends are attempted once the reactor saw the socket writable.
        tx.writable().await.unwrap();
        out.send(Some(&tx), |_, _, _| {});
        let mut buf = [0u8; 16];
        let (_, from) = rx.recv_from(&mut buf).await.unwrap();
        assert_eq!((buf[0], from.ip()), (b'a', IpAddr::from([127, 0, 0, 2])));
        let (_, from) = rx.recv_from(&mut buf).await.unwrap();
        assert_eq!((buf[0], from.ip()), (b'b', IpAddr::from([127, 0, 0, 1])));
    }

    /// An IPv6 destination goes out with its own address form.
    #[tokio::test]
    async fn ipv6() {
        let Ok(tx) = UdpSocket::bind("[::1]:0").await else {
            return; // no IPv6 loopback here
        };
        let rx = UdpSocket::bind("[::1]:0").await.unwrap();
        let mut out = Outbox::default();
        out.push(
            7,
            rx.local_addr().unwrap(),
            None,
            BytesMut::from(&b"hello"[..]),
        );
        let mut sent = 0;
        // Sends are attempted once the reactor saw the socket writable.
        tx.writable().await.unwrap();
        out.send(Some(&tx), |_, _, n| sent += n);
        assert_eq!(sent, 1);
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
    }
}
