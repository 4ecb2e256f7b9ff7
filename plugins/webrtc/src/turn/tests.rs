use super::*;

use rtc::stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::{ErrorCode, ErrorCodeAttribute};
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    Getter, Message, MessageType, BINDING_REQUEST, CLASS_ERROR_RESPONSE, CLASS_INDICATION,
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_REFRESH, METHOD_SEND,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;
use rtc::turn::proto::data::Data;
use rtc::turn::proto::lifetime::Lifetime;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::relayaddr::RelayedAddress;

/// RFC 5769 §2.4: a request with long-term authentication. USERNAME
/// "マトリックス", password "TheMatrIX" (after SASLprep), realm
/// "example.org": the key our allocations sign with (MD5 of
/// `username:realm:password`) must verify its MESSAGE-INTEGRITY.
const RFC5769_LONG_TERM: [u8; 116] = [
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0,
    0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83,
    0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00, 0x15, 0x00, 0x1c,
    0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34,
    0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73, 0x41, 0x00, 0x14, 0x00, 0x0b,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x08, 0x00, 0x14,
    0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2,
    0x8c, 0xa8, 0x96, 0x66,
];

fn crypto() -> Arc<dyn RTCCryptoProvider> {
    rtc::crypto::default_provider().unwrap()
}

fn decode(raw: &[u8]) -> Message {
    let mut m = Message::new();
    m.raw = raw.to_vec();
    m.decode().unwrap();
    m
}

#[test]
fn long_term_key_verifies_the_rfc5769_vector() {
    let c = crypto();
    let key = MessageIntegrity::long_term_integrity_key(
        "マトリックス".into(),
        "example.org".into(),
        "TheMatrIX".into(),
        c.crypto(),
    )
    .unwrap();
    let mut m = decode(&RFC5769_LONG_TERM);
    let user = TextAttribute::get_from_as(&m, ATTR_USERNAME).unwrap();
    assert_eq!(user.text, "マトリックス");
    let nonce = TextAttribute::get_from_as(&m, ATTR_NONCE).unwrap();
    assert_eq!(nonce.text, "f//499k954d6OL34oL9FSTvy64sA");
    MessageIntegrity::check(&mut m, &key, c.crypto()).unwrap();
    // Another password, or one byte of the nonce changed, does not.
    let wrong = MessageIntegrity::long_term_integrity_key(
        "マトリックス".into(),
        "example.org".into(),
        "TheMatrix".into(),
        c.crypto(),
    )
    .unwrap();
    assert!(MessageIntegrity::check(&mut decode(&RFC5769_LONG_TERM), &wrong, c.crypto()).is_err());
    let mut tampered = RFC5769_LONG_TERM;
    tampered[50] ^= 1;
    assert!(MessageIntegrity::check(&mut decode(&tampered), &key, c.crypto()).is_err());
}

/// A TURN server in a few lines: long-term credentials (user "u", realm
/// "camrouter"), one allocation, every request's MESSAGE-INTEGRITY checked.
struct Fake {
    addr: SocketAddr,
    relayed: SocketAddr,
    key: Vec<u8>,
    crypto: Arc<dyn RTCCryptoProvider>,
    allocated: bool,
    /// LIFETIME of each Refresh.
    refreshes: Vec<u64>,
    permitted: Vec<SocketAddr>,
    /// (peer, data) of Send indications.
    sent: Vec<(SocketAddr, Vec<u8>)>,
    unauthorized: usize,
    /// Answer Refresh with 437 (the allocation was lost).
    lost: bool,
}

impl Fake {
    fn new(password: &str) -> Fake {
        let crypto = crypto();
        let key = MessageIntegrity::long_term_integrity_key(
            "u".into(),
            "camrouter".into(),
            password.into(),
            crypto.crypto(),
        )
        .unwrap();
        Fake {
            addr: "127.0.0.1:3478".parse().unwrap(),
            relayed: "127.0.0.1:50000".parse().unwrap(),
            key,
            crypto,
            allocated: false,
            refreshes: Vec::new(),
            permitted: Vec::new(),
            sent: Vec::new(),
            unauthorized: 0,
            lost: false,
        }
    }

    fn answer(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
        let mut m = decode(raw);
        if m.typ.class == CLASS_INDICATION {
            if m.typ.method == METHOD_SEND {
                let mut peer = PeerAddress::default();
                peer.get_from(&m).unwrap();
                let mut data = Data::default();
                data.get_from(&m).unwrap();
                self.sent
                    .push((SocketAddr::new(peer.ip, peer.port), data.0));
            }
            return None;
        }
        assert_eq!(m.typ.class, CLASS_REQUEST);
        let authed = m.contains(ATTR_MESSAGE_INTEGRITY)
            && MessageIntegrity::check(&mut m, &self.key, self.crypto.crypto()).is_ok();
        let mut r = Message::new();
        if !authed {
            self.unauthorized += 1;
            r.build(&[
                Box::new(m.transaction_id),
                Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
                Box::new(ErrorCodeAttribute {
                    code: ErrorCode(401),
                    reason: b"Unauthorized".to_vec(),
                }),
                Box::new(TextAttribute::new(ATTR_REALM, "camrouter".into())),
                Box::new(TextAttribute::new(ATTR_NONCE, "abcdef0123456789".into())),
            ])
            .unwrap();
            return Some(r.raw);
        }
        let ok = MessageType::new(m.typ.method, CLASS_SUCCESS_RESPONSE);
        let integrity = MessageIntegrity::new_raw_integrity_with_provider(
            self.key.clone(),
            self.crypto.crypto(),
        );
        match m.typ.method {
            METHOD_ALLOCATE => {
                self.allocated = true;
                r.build(&[
                    Box::new(m.transaction_id),
                    Box::new(ok),
                    Box::new(RelayedAddress {
                        ip: self.relayed.ip(),
                        port: self.relayed.port(),
                    }),
                    Box::new(XorMappedAddress {
                        ip: "127.0.0.1".parse().unwrap(),
                        port: 8555,
                    }),
                    Box::new(Lifetime(Duration::from_secs(600))),
                    Box::new(integrity),
                ])
                .unwrap();
            }
            METHOD_REFRESH if self.lost => {
                r.build(&[
                    Box::new(m.transaction_id),
                    Box::new(MessageType::new(METHOD_REFRESH, CLASS_ERROR_RESPONSE)),
                    Box::new(ErrorCodeAttribute {
                        code: ErrorCode(437),
                        reason: b"Allocation Mismatch".to_vec(),
                    }),
                ])
                .unwrap();
            }
            METHOD_REFRESH => {
                let mut l = Lifetime::default();
                l.get_from(&m).unwrap();
                self.refreshes.push(l.0.as_secs());
                if l.0.is_zero() {
                    self.allocated = false;
                }
                r.build(&[
                    Box::new(m.transaction_id),
                    Box::new(ok),
                    Box::new(l),
                    Box::new(integrity),
                ])
                .unwrap();
            }
            METHOD_CREATE_PERMISSION => {
                let mut peer = PeerAddress::default();
                peer.get_from(&m).unwrap();
                self.permitted.push(SocketAddr::new(peer.ip, peer.port));
                r.build(&[
                    Box::new(m.transaction_id),
                    Box::new(ok),
                    Box::new(integrity),
                ])
                .unwrap();
            }
            METHOD_CHANNEL_BIND => {
                r.build(&[
                    Box::new(m.transaction_id),
                    Box::new(ok),
                    Box::new(integrity),
                ])
                .unwrap();
            }
            other => panic!("unexpected request {other}"),
        }
        Some(r.raw)
    }

    /// Answers everything `relays` has to send; what they relayed to peers.
    fn run(&mut self, relays: &mut Relays, now: Instant) -> Vec<Relayed> {
        let mut got = Vec::new();
        while let Some((to, d)) = relays.poll_transmit() {
            assert_eq!(to, self.addr);
            if let Some(resp) = self.answer(&d) {
                got.extend(relays.handle(now, self.addr, &resp));
            }
        }
        got
    }

    fn data_indication(&self, from: SocketAddr, data: &[u8]) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_DATA, CLASS_INDICATION)),
            Box::new(PeerAddress {
                ip: from.ip(),
                port: from.port(),
            }),
            Box::new(Data(data.to_vec())),
        ])
        .unwrap();
        m.raw
    }
}

fn server(password: &str, port: u16) -> TurnServer {
    TurnServer {
        url: format!("turn:127.0.0.1:{port}"),
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        username: "u".into(),
        credential: password.into(),
    }
}

fn binding(username: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.build(&[
        Box::new(TransactionId::new()),
        Box::new(BINDING_REQUEST),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
    ])
    .unwrap();
    m.raw
}

#[test]
fn allocates_relays_both_ways_and_releases_with_the_last_peer() {
    let now = Instant::now();
    let mut fake = Fake::new("pass");
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    let s = server("pass", 3478);
    assert_eq!(relays.want(now, &s, 7), Status::Pending(fake.addr));
    // First Allocate has no credentials: 401 with realm and nonce, then
    // the signed one succeeds.
    fake.run(&mut relays, now);
    assert_eq!(fake.unauthorized, 1);
    assert!(fake.allocated);
    assert_eq!(relays.poll_event(), Some(Event::Decided(fake.addr)));
    let cand = relays.ready(fake.addr).expect("allocated");
    assert_eq!(
        (cand.addr, cand.relay, cand.tcp),
        (fake.relayed, true, false)
    );
    assert!(relays.is_relayed(fake.relayed) && relays.is_server(fake.addr));
    // A second peer shares the allocation.
    assert_eq!(relays.want(now, &s, 8), Status::Ready(cand));
    assert!(relays.poll_transmit().is_none(), "no second Allocate");
    relays.attach(fake.relayed, 7, "ufragA");
    relays.attach(fake.relayed, 8, "ufragB");

    // Out: no permission yet, so dropped and a permission asked for.
    let remote: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    assert_eq!(relays.send(now, 7, fake.relayed, remote, b"check"), None);
    fake.run(&mut relays, now);
    assert_eq!(fake.permitted, vec![remote]);
    assert_eq!(relays.send(now, 7, fake.relayed, remote, b"check"), Some(5));
    fake.run(&mut relays, now);
    assert_eq!(fake.sent, vec![(remote, b"check".to_vec())]);

    // In: the remote's answer (address learnt from our send) goes to
    // peer 7; another remote's first check names peer 8 by its ufrag.
    let ind = fake.data_indication(remote, b"\x80reply");
    let got = relays.handle(now, fake.addr, &ind);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].peer, got[0].relayed, got[0].from),
        (7, fake.relayed, remote)
    );
    assert_eq!(&got[0].data[..], b"\x80reply");
    let other: SocketAddr = "192.0.2.2:40000".parse().unwrap();
    let got = relays.handle(
        now,
        fake.addr,
        &fake.data_indication(other, &binding("ufragB:x")),
    );
    assert_eq!(got.iter().map(|r| r.peer).collect::<Vec<_>>(), vec![8]);
    let stranger: SocketAddr = "192.0.2.3:40000".parse().unwrap();
    let got = relays.handle(now, fake.addr, &fake.data_indication(stranger, b"\x80x"));
    assert!(got.is_empty(), "a stranger's RTP reaches no peer");
    // Garbage from the server is refused, not a panic.
    for cut in 0..ind.len() {
        let _ = relays.handle(now, fake.addr, &ind[..cut]);
    }

    // The first peer leaving keeps it; the last releases it (LIFETIME 0).
    relays.release(now, 7);
    fake.run(&mut relays, now);
    assert!(fake.refreshes.is_empty());
    relays.release(now, 8);
    assert!(!relays.is_relayed(fake.relayed));
    fake.run(&mut relays, now);
    assert_eq!(fake.refreshes, vec![0]);
    assert!(!fake.allocated);
    relays.handle_timeout(now);
    assert_eq!(relays.allocations(), 0);
    assert!(!relays.is_server(fake.addr), "released and forgotten");
}

#[test]
fn refreshes_before_expiry() {
    let now = Instant::now();
    let mut fake = Fake::new("pass");
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    relays.want(now, &server("pass", 3478), 1);
    fake.run(&mut relays, now);
    assert!(relays.ready(fake.addr).is_some());
    let due = relays.poll_timeout().expect("a refresh is scheduled");
    assert!(due <= now + REFRESH_CAP, "{:?}", due - now);
    // Walk the clock a lifetime on: refreshed all along, never expired.
    let mut t = now;
    while t < now + Duration::from_secs(600) {
        t = relays
            .poll_timeout()
            .unwrap()
            .max(t + Duration::from_millis(1));
        relays.handle_timeout(t);
        fake.run(&mut relays, t);
    }
    assert!(fake.refreshes.len() >= 9, "{:?}", fake.refreshes);
    assert!(
        fake.refreshes.iter().all(|l| *l == 600),
        "{:?}",
        fake.refreshes
    );
    assert!(relays.is_relayed(fake.relayed));
}

#[test]
fn wrong_credentials_fail_once_and_are_not_retried_at_once() {
    let now = Instant::now();
    let mut fake = Fake::new("right");
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    assert!(matches!(
        relays.want(now, &server("wrong", 3478), 1),
        Status::Pending(_)
    ));
    fake.run(&mut relays, now);
    assert_eq!(
        fake.unauthorized, 2,
        "anonymous, then signed with the wrong key"
    );
    assert!(!fake.allocated);
    assert_eq!(relays.poll_event(), Some(Event::Decided(fake.addr)));
    assert_eq!(relays.ready(fake.addr), None);
    assert_eq!(relays.allocations(), 0);
    // The next viewer is answered at once, without asking again...
    assert_eq!(relays.want(now, &server("wrong", 3478), 2), Status::Failed);
    assert!(relays.poll_transmit().is_none());
    // ...until the server is worth asking again.
    let later = now + FAILED_FOR;
    assert!(matches!(
        relays.want(later, &server("right", 3478), 3),
        Status::Pending(_)
    ));
    fake.run(&mut relays, later);
    assert!(fake.allocated);
}

#[test]
fn allocations_are_bounded() {
    let now = Instant::now();
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    for i in 0..MAX_ALLOCATIONS as u16 {
        assert!(matches!(
            relays.want(now, &server("p", 4000 + i), 1),
            Status::Pending(_)
        ));
    }
    assert_eq!(relays.want(now, &server("p", 5000), 1), Status::Failed);
    assert_eq!(relays.allocations(), MAX_ALLOCATIONS);
    // An IPv6-only server for an IPv4 socket is no relay either.
    let v6 = TurnServer {
        addrs: vec!["[::1]:3478".parse().unwrap()],
        ..server("p", 1)
    };
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    assert_eq!(relays.want(now, &v6, 1), Status::Failed);
}

#[test]
fn turn_urls() {
    assert_eq!(
        udp_host_port("turn:1.2.3.4").as_deref(),
        Some("1.2.3.4:3478")
    );
    assert_eq!(
        udp_host_port("turn:turn.example.com:3479?transport=udp").as_deref(),
        Some("turn.example.com:3479")
    );
    assert_eq!(
        udp_host_port("turn:[::1]:5000").as_deref(),
        Some("[::1]:5000")
    );
    assert_eq!(udp_host_port("turn:[::1]").as_deref(), Some("[::1]:3478"));
    assert_eq!(udp_host_port("turn:h:80?transport=tcp"), None);
    assert_eq!(udp_host_port("turns:h:443"), None);
    assert_eq!(udp_host_port("stun:h"), None);
    assert_eq!(udp_host_port("turn:"), None);
}

#[test]
fn stun_server_tells_our_mapped_address_from_the_shared_socket() {
    let now = Instant::now();
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    let stun: SocketAddr = "192.0.2.9:3478".parse().unwrap();
    assert_eq!(relays.want_reflexive(now, stun), Err(stun));
    let (to, req) = relays.poll_transmit().expect("a Binding request");
    assert_eq!(to, stun);
    assert!(relays.is_server(stun));
    let req = decode(&req);
    let answer = |tid: TransactionId| {
        let mut m = Message::new();
        m.build(&[
            Box::new(rtc::stun::message::BINDING_SUCCESS),
            Box::new(tid),
            Box::new(XorMappedAddress {
                ip: "203.0.113.7".parse().unwrap(),
                port: 30555,
            }),
        ])
        .unwrap();
        m.raw
    };
    // Another transaction's answer, and a cut one, are not ours.
    assert!(relays
        .handle(now, stun, &answer(TransactionId::new()))
        .is_empty());
    let good = answer(req.transaction_id);
    for cut in 0..good.len() {
        let _ = relays.handle(now, stun, &good[..cut]);
    }
    assert_eq!(relays.reflexive(stun), None);
    assert!(relays.poll_event().is_none());
    relays.handle(now, stun, &good);
    assert_eq!(relays.poll_event(), Some(Event::Decided(stun)));
    let mapped: SocketAddr = "203.0.113.7:30555".parse().unwrap();
    assert_eq!(relays.reflexive(stun), Some(mapped));
    // Remembered: the next peer asks nothing.
    assert_eq!(relays.want_reflexive(now, stun), Ok(Some(mapped)));
    assert!(relays.poll_transmit().is_none());
    assert!(!relays.is_server(stun), "its datagrams are nobody's now");
}

#[test]
fn silent_stun_server_is_retried_then_given_up() {
    let now = Instant::now();
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    let stun: SocketAddr = "192.0.2.9:3478".parse().unwrap();
    assert_eq!(relays.want_reflexive(now, stun), Err(stun));
    let mut sent = 0;
    while let Some(t) = relays.poll_timeout() {
        while relays.poll_transmit().is_some() {
            sent += 1;
        }
        if relays.poll_event().is_some() {
            break;
        }
        assert!(t <= now + WAIT, "{:?}", t - now);
        relays.handle_timeout(t);
    }
    assert_eq!(sent, 3, "at 0, 0.5 and 1.5 s");
    assert_eq!(relays.reflexive(stun), None);
    assert_eq!(
        relays.want_reflexive(now + WAIT, stun),
        Ok(None),
        "not asked again at once"
    );
    // An IPv6 server for an IPv4 socket is not asked.
    assert_eq!(
        relays.want_reflexive(now, "[::1]:3478".parse().unwrap()),
        Ok(None)
    );
}

#[test]
fn a_lost_allocation_is_not_handed_out() {
    let now = Instant::now();
    let mut fake = Fake::new("pass");
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    relays.want(now, &server("pass", 3478), 1);
    fake.run(&mut relays, now);
    assert!(relays.ready(fake.addr).is_some());
    assert_eq!(relays.poll_event(), Some(Event::Decided(fake.addr)));
    // The server forgot it (restarted): its Refresh answer is 437.
    fake.lost = true;
    let t = relays.poll_timeout().unwrap();
    relays.handle_timeout(t);
    fake.run(&mut relays, t);
    assert_eq!(relays.ready(fake.addr), None);
    assert!(!relays.is_relayed(fake.relayed));
    assert_eq!(relays.want(t, &server("pass", 3478), 2), Status::Failed);
    // A garbage flood from the server's address is no panic either.
    let mut x: u32 = 1;
    for n in 0..5000usize {
        let len = n % 120;
        let d: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut d = d;
        if len > 20 && n % 2 == 0 {
            // A STUN-looking header, so the parser goes further.
            d[0] = (n % 4) as u8;
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        let _ = relays.handle(t, fake.addr, &d);
    }
}

#[test]
fn permissions_are_bounded_per_peer_and_freed_when_it_leaves() {
    let now = Instant::now();
    let mut fake = Fake::new("pass");
    let mut relays = Relays::new("0.0.0.0:8555".parse().unwrap());
    let s = server("pass", 3478);
    relays.want(now, &s, 1);
    fake.run(&mut relays, now);
    relays.want(now, &s, 2);
    relays.attach(fake.relayed, 1, "one");
    relays.attach(fake.relayed, 2, "two");
    let addr = |i: u16| SocketAddr::from(([192, 0, 2, 1], 40000 + i));
    // A peer's checks to 20 addresses: permissions for its first 8 only.
    for i in 0..20 {
        relays.send(now, 1, fake.relayed, addr(i), b"x");
    }
    fake.run(&mut relays, now);
    assert_eq!(fake.permitted, (0..8).map(addr).collect::<Vec<_>>());
    // It leaves; the other peer's addresses are asked for as they come.
    relays.release(now, 1);
    fake.permitted.clear();
    relays.send(now, 2, fake.relayed, addr(100), b"x");
    fake.run(&mut relays, now);
    assert_eq!(fake.permitted, vec![addr(100)]);
}
