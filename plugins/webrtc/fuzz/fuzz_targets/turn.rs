#![no_main]
//! What a TURN server (and a `webrtc:` source's STUN server) sends to our
//! shared socket: answers to Allocate (401 with realm and nonce, then the
//! signed one), Refresh, CreatePermission and ChannelBind, Data
//! indications and ChannelData, with our own requests, time and peers in
//! between. The input is records `op len(2) payload`; an answer takes the
//! transaction ID of a request we sent (chosen by its first byte), so the
//! fuzzer reaches an allocation without guessing 96 random bits. Never a
//! panic; relayed data only reaches a peer of ours; no deadline is left in
//! the past after the timeouts ran (the peer loop would spin on it).
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camrouter_webrtc::fuzz::{Relays, TurnServer};
use libfuzzer_sys::fuzz_target;

const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

fn server(password: &str) -> TurnServer {
    TurnServer {
        url: "turn:127.0.0.1:3478".into(),
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], 3478))],
        username: "u".into(),
        credential: password.into(),
    }
}

struct World {
    relays: Relays,
    now: Instant,
    turn: SocketAddr,
    stun: SocketAddr,
    /// Requests we sent and not yet answered: (to, transaction ID).
    pending: Vec<(SocketAddr, [u8; 12])>,
    live: HashSet<u64>,
    attached: HashSet<(SocketAddr, u64)>,
    next_peer: u64,
}

impl World {
    /// Collects what the relays sent and attaches peers to a new relay.
    fn settle(&mut self) {
        while let Some((to, d)) = self.relays.poll_transmit() {
            assert!(to == self.turn || to == self.stun, "sent to {to}");
            let request =
                d.len() >= 20 && d[4..8] == COOKIE && d[0] & 0x01 == 0 && d[1] & 0x10 == 0;
            if request {
                let mut tid = [0u8; 12];
                tid.copy_from_slice(&d[8..20]);
                if self.pending.len() >= 32 {
                    self.pending.remove(0);
                }
                self.pending.push((to, tid));
            }
        }
        while self.relays.poll_event().is_some() {}
        if let Some(c) = self.relays.ready(self.turn) {
            assert!(c.relay && !c.tcp);
            for p in self.live.clone() {
                if self.attached.insert((c.addr, p)) {
                    self.relays.attach(c.addr, p, &format!("peer{p}"));
                }
            }
        }
    }

    fn delivered(&self, got: Vec<camrouter_webrtc::fuzz::Relayed>) {
        for r in got {
            assert!(
                r.peer < self.next_peer,
                "relayed to unknown peer {}",
                r.peer
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut w = World {
        relays: Relays::new(SocketAddr::from(([127, 0, 0, 1], 8555))),
        now,
        turn: SocketAddr::from(([127, 0, 0, 1], 3478)),
        stun: SocketAddr::from(([127, 0, 0, 1], 3479)),
        pending: Vec::new(),
        live: HashSet::from([1, 2]),
        attached: HashSet::new(),
        next_peer: 3,
    };
    let _ = w.relays.want_reflexive(now, w.stun);
    let _ = w.relays.want(now, &server("pass"), 1);
    let _ = w.relays.want(now, &server("pass"), 2);
    w.settle();

    let mut rest = data;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let end = (3 + len).min(rest.len());
        let p = &rest[3..end];
        rest = &rest[end..];
        match op % 6 {
            // Anything at all from the TURN server: indications, ChannelData.
            0 => {
                let got = w.relays.handle(w.now, w.turn, p);
                w.delivered(got);
            }
            // An answer to one of our requests: the fuzzer's type and
            // attributes, our transaction ID, a consistent length.
            1 => {
                if w.pending.is_empty() {
                    continue;
                }
                let i = usize::from(p.first().copied().unwrap_or(0)) % w.pending.len();
                let (from, tid) = w.pending.remove(i);
                let mut m = p.get(1..).unwrap_or(&[]).to_vec();
                m.resize(m.len().max(20), 0);
                let Ok(body) = u16::try_from(m.len() - 20) else {
                    continue;
                };
                m[2..4].copy_from_slice(&body.to_be_bytes());
                m[4..8].copy_from_slice(&COOKIE);
                m[8..20].copy_from_slice(&tid);
                let got = w.relays.handle(w.now, from, &m);
                w.delivered(got);
            }
            // A peer sends through the relay (permission, channel bind).
            2 => {
                let (Some(&a), Some(&b)) = (p.first(), p.get(1)) else {
                    continue;
                };
                let Some(c) = w.relays.ready(w.turn) else {
                    continue;
                };
                let peer = u64::from(a % 4) + 1;
                let to = SocketAddr::from(([192, 0, 2, b % 4 + 1], 40_000));
                let data = &p[2..];
                if let Some(n) = w.relays.send(w.now, peer, c.addr, to, data) {
                    assert_eq!(n, data.len());
                }
            }
            // Time passes: to the next deadline, or by the payload's ms.
            3 => {
                let step = match p {
                    [] => w
                        .relays
                        .poll_timeout()
                        .map_or(Duration::ZERO, |d| d.saturating_duration_since(w.now)),
                    _ => {
                        let mut b = [0u8; 4];
                        let n = p.len().min(3);
                        b[4 - n..].copy_from_slice(&p[..n]);
                        Duration::from_millis(u64::from(u32::from_be_bytes(b)))
                    }
                };
                w.now += step;
                w.relays.handle_timeout(w.now);
                if let Some(d) = w.relays.poll_timeout() {
                    assert!(d > w.now, "deadline {:?} in the past", w.now - d);
                }
            }
            // A peer leaves, and a new one wants a relay (maybe with other
            // credentials, as short-lived TURN REST ones are).
            4 => {
                let gone = u64::from(p.first().copied().unwrap_or(0) % 4) + 1;
                w.relays.release(w.now, gone);
                w.live.remove(&gone);
                if p.get(1).is_some_and(|b| b & 1 == 1) && w.next_peer < 64 {
                    let id = w.next_peer;
                    w.next_peer += 1;
                    w.live.insert(id);
                    let pass = if p.get(2).is_some_and(|b| b & 1 == 1) {
                        "other"
                    } else {
                        "pass"
                    };
                    let _ = w.relays.want(w.now, &server(pass), id);
                }
            }
            // A `webrtc:` source asks the STUN server (again).
            _ => {
                let _ = w.relays.want_reflexive(w.now, w.stun);
                let _ = w.relays.reflexive(w.stun);
            }
        }
        w.settle();
    }
});
