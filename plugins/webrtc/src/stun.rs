//! `stun:PORT` candidates: the public address a STUN server (the `stun:`
//! urls of `webrtc.ice_servers`) sees us at, asked from a throwaway socket
//! as go2rtc does, and advertised with PORT (a port forwarded to ours).
//! Asked at start and every [`REFRESH`]; answers use the last known one.
//! The `name:port` candidates are resolved in the same rounds.

use std::net::{IpAddr, SocketAddr};

use crate::config::Cand;
use std::sync::Mutex;
use std::time::Duration;

use rtc::stun::message::{Getter, Message, TransactionId, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// go2rtc caches the public address for five minutes.
pub const REFRESH: Duration = Duration::from_secs(300);
/// How long one server gets (retransmitted at 0.5, 1 and 2 s).
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an answer may wait for the first STUN round at start.
pub const FIRST_ROUND: Duration = Duration::from_secs(4);

/// The last public address and the local address it was asked from.
pub struct Public {
    addr: Mutex<Option<(IpAddr, IpAddr)>>,
    /// The `name:port` candidates as last resolved, by entry.
    names: Mutex<Vec<Option<Cand>>>,
    /// `true` once the first round ended, answered or not.
    asked: watch::Sender<bool>,
}

impl Default for Public {
    fn default() -> Public {
        Public {
            addr: Mutex::new(None),
            names: Mutex::new(Vec::new()),
            asked: watch::Sender::new(false),
        }
    }
}

impl Public {
    pub fn get(&self) -> Option<(IpAddr, IpAddr)> {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn names(&self) -> Vec<Cand> {
        self.lock_names().iter().flatten().copied().collect()
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, Vec<Option<Cand>>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// No STUN round will run: answers need not wait.
    pub fn done(&self) {
        self.asked.send_replace(true);
    }

    /// Waits (at most [`FIRST_ROUND`]) until the first round is over, so
    /// the first viewers after start get the `stun:` candidate too.
    pub async fn first_round(&self) {
        let mut rx = self.asked.subscribe();
        let _ = tokio::time::timeout(FIRST_ROUND, rx.wait_for(|asked| *asked)).await;
    }

    /// Resolves `names` and asks `servers` in turn (when there are
    /// `stun:` candidates), now and every [`REFRESH`].
    pub async fn run(
        self: std::sync::Arc<Self>,
        servers: Vec<String>,
        stun: bool,
        names: Vec<(String, bool)>,
    ) {
        loop {
            let mut resolved = Vec::with_capacity(names.len());
            for (i, (name, tcp)) in names.iter().enumerate() {
                let found = match tokio::net::lookup_host(name.as_str()).await {
                    Ok(mut a) => a.next(),
                    Err(_) => None,
                };
                resolved.push(match found {
                    Some(addr) => Some(Cand {
                        addr,
                        tcp: *tcp,
                        base: None,
                        relay: false,
                    }),
                    // The last address stays, as for STUN.
                    None => {
                        tracing::warn!("webrtc: candidate {name}: does not resolve");
                        self.lock_names().get(i).copied().flatten()
                    }
                });
            }
            *self.lock_names() = resolved;
            if !stun {
                self.asked.send_replace(true);
                tokio::time::sleep(REFRESH).await;
                continue;
            }
            let mut found = None;
            for s in &servers {
                match ask(s).await {
                    Ok(a) => {
                        found = Some(a);
                        break;
                    }
                    Err(e) => tracing::warn!("webrtc: stun {s}: {e}"),
                }
            }
            match found {
                Some((public, local)) => {
                    if self.get().map(|p| p.0) != Some(public) {
                        tracing::info!(%public, "[webrtc] public address from STUN");
                    }
                    *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some((public, local));
                }
                // The last known address stays: an outage of the STUN
                // server says nothing about ours.
                None => tracing::warn!("webrtc: no STUN server answered; stun: candidates wait"),
            }
            self.asked.send_replace(true);
            tokio::time::sleep(REFRESH).await;
        }
    }
}

/// One Binding request to `server` (`host:port`): the public address in its
/// answer and the local address we sent from.
pub async fn ask(server: &str) -> Result<(IpAddr, IpAddr), String> {
    let to: SocketAddr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let any: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any).await.map_err(|e| e.to_string())?;
    sock.connect(to).await.map_err(|e| e.to_string())?;
    let local = sock.local_addr().map_err(|e| e.to_string())?.ip();
    let mut req = Message::new();
    req.build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId::new())])
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let mut wait = Duration::from_millis(500);
    let mut buf = [0u8; 1500];
    loop {
        sock.send(&req.raw).await.map_err(|e| e.to_string())?;
        let until = (tokio::time::Instant::now() + wait).min(deadline);
        while let Ok(r) = tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
            let n = r.map_err(|e| e.to_string())?;
            if let Some(ip) = mapped(&buf[..n], &req.transaction_id) {
                return Ok((ip, local));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("no answer".into());
        }
        wait *= 2;
    }
}

/// The XOR-MAPPED-ADDRESS of a Binding success answering `tid`; anything
/// else (a stray or forged datagram) is `None`.
pub fn mapped(datagram: &[u8], tid: &TransactionId) -> Option<IpAddr> {
    mapped_addr(datagram, tid).map(|a| a.ip())
}

/// [`mapped`] with the port.
pub fn mapped_addr(datagram: &[u8], tid: &TransactionId) -> Option<SocketAddr> {
    let mut m = Message {
        raw: datagram.to_vec(),
        ..Message::default()
    };
    m.decode().ok()?;
    if m.typ != BINDING_SUCCESS || m.transaction_id != *tid {
        return None;
    }
    let mut x = XorMappedAddress::default();
    x.get_from(&m).ok()?;
    Some(SocketAddr::new(x.ip, x.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_address_of_the_right_answer_only() {
        let tid = TransactionId::new();
        let mut ok = Message::new();
        ok.build(&[
            Box::new(BINDING_SUCCESS),
            Box::new(tid),
            Box::new(XorMappedAddress {
                ip: "203.0.113.9".parse().unwrap(),
                port: 4444,
            }),
        ])
        .unwrap();
        assert_eq!(mapped(&ok.raw, &tid), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(
            mapped(&ok.raw, &TransactionId::new()),
            None,
            "other transaction"
        );
        for cut in 0..ok.raw.len() {
            assert_eq!(mapped(&ok.raw[..cut], &tid), None);
        }
        let mut req = Message::new();
        req.build(&[Box::new(BINDING_REQUEST), Box::new(tid)])
            .unwrap();
        assert_eq!(mapped(&req.raw, &tid), None, "a request is no answer");
    }

    #[tokio::test]
    async fn names_are_resolved_in_the_background_rounds() {
        let p = std::sync::Arc::new(Public::default());
        let names = vec![
            ("localhost:30000".to_string(), false),
            ("no-such-host.invalid:30001".to_string(), true),
        ];
        tokio::spawn(p.clone().run(Vec::new(), false, names));
        p.first_round().await;
        let got = p.names();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].addr.ip().is_loopback() && got[0].addr.port() == 30000);
        assert!(!got[0].tcp && got[0].base.is_none());
    }

    #[tokio::test]
    async fn asks_a_local_stun_responder() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let mut req = Message {
                raw: buf[..n].to_vec(),
                ..Message::default()
            };
            req.decode().unwrap();
            let mut resp = Message::new();
            resp.build(&[
                Box::new(BINDING_SUCCESS),
                Box::new(req.transaction_id),
                Box::new(XorMappedAddress {
                    ip: "198.51.100.4".parse().unwrap(),
                    port: from.port(),
                }),
            ])
            .unwrap();
            server.send_to(&resp.raw, from).unwrap();
        });
        let (public, local) = ask(&addr.to_string()).await.unwrap();
        assert_eq!(public.to_string(), "198.51.100.4");
        assert_eq!(local.to_string(), "127.0.0.1");
    }
}
