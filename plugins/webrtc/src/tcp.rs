//! ICE-TCP on the `listen` port (RFC 6544, passive candidates): each
//! connection carries STUN, DTLS and SRTP as RFC 4571 frames (a 16-bit
//! length, then the datagram). Frames go to the peer loop as if they were
//! datagrams; the loop answers through the connection's channel. The
//! framing is pure so it is unit tested with hostile input.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::server::{Command, Stats, MAX_TCP};

/// A connection must complete a frame this soon after opening, and the
/// loop closes it if that frame names no peer; a slow or silent opener
/// holds nothing for long.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// Frames waiting to be written to one connection.
const QUEUE: usize = 512;

/// Splits complete RFC 4571 frames off the front of `buf`. Empty frames
/// (allowed by the RFC) are skipped.
pub fn frames(buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    while buf.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if buf.len() < 2 + len {
            break;
        }
        buf.advance(2);
        let f = buf.split_to(len).freeze();
        if !f.is_empty() {
            out.push(f);
        }
    }
    out
}

/// `data` with its RFC 4571 length; `None` past 65535 bytes.
pub fn frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok()?;
    let mut v = Vec::with_capacity(2 + data.len());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(data);
    Some(v)
}

pub async fn accept(listener: TcpListener, to_server: mpsc::Sender<Command>, stats: Arc<Stats>) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::debug!("webrtc: tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_TCP {
            stats.dropped_tcp.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (to_server, stats, open) = (to_server.clone(), stats.clone(), open.clone());
        tokio::spawn(async move {
            connection(stream, from, local, &to_server, &stats).await;
            let _ = to_server.send(Command::TcpClosed { from }).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    from: SocketAddr,
    local: SocketAddr,
    to_server: &mpsc::Sender<Command>,
    stats: &Stats,
) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    if to_server
        .send(Command::TcpOpen { from, local, tx })
        .await
        .is_err()
    {
        return;
    }
    let mut buf = BytesMut::with_capacity(4096);
    let first = tokio::time::Instant::now() + FIRST_FRAME;
    let mut framed_once = false;
    loop {
        tokio::select! {
            r = stream.read_buf(&mut buf) => {
                match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                for data in frames(&mut buf) {
                    framed_once = true;
                    if to_server.send(Command::TcpFrame { from, data }).await.is_err() {
                        return;
                    }
                }
                // A partial frame is at most 65537 bytes; `buf` reserves
                // no more than that.
                if buf.capacity() - buf.len() < 2048 {
                    buf.reserve(4096);
                }
            }
            out = rx.recv() => {
                // `None`: the loop dropped us (unknown peer, peer gone).
                let Some(data) = out else { return };
                let Some(f) = frame(&data) else { continue };
                if stream.write_all(&f).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(first), if !framed_once => {
                stats.dropped_tcp.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, "webrtc: ICE-TCP connection sent no frame, closed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_cut() {
        let mut wire = Vec::new();
        for d in [&b"abc"[..], b"", &[7u8; 300][..], b"z"] {
            wire.extend_from_slice(&frame(d).unwrap());
        }
        // Fed in every split, the same frames come out.
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = frames(&mut buf);
            buf.extend_from_slice(&wire[cut..]);
            got.extend(frames(&mut buf));
            let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
            assert_eq!(lens, [3, 300, 1], "cut at {cut}");
            assert!(buf.is_empty());
        }
        assert!(frame(&vec![0u8; 65536]).is_none());
        assert_eq!(frame(&vec![0u8; 65535]).unwrap().len(), 65537);
    }

    #[test]
    fn garbage_makes_frames_or_waits_never_panics() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut buf = BytesMut::new();
            let n = (seed % 300) as usize;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                buf.extend_from_slice(&[seed as u8]);
            }
            let before = buf.len();
            let got = frames(&mut buf);
            let used: usize = got.iter().map(|f| f.len()).sum();
            assert!(used <= before);
            // What is left is at most one partial frame.
            if buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                assert!(buf.len() < 2 + len);
            }
        }
    }
}
