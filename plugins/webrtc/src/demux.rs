//! One UDP socket for every peer: which peer a datagram belongs to. A peer's
//! first datagram is a STUN Binding request whose USERNAME starts with the
//! ICE ufrag we gave that peer in its answer (RFC 8445 §7.2.2:
//! `<our ufrag>:<their ufrag>`); after that its address identifies it. We
//! also learn the addresses we send to (our own connectivity checks), since
//! the replies to those carry no USERNAME. Pure and sans-IO, so it is unit
//! tested and fuzzed byte for byte.

use std::collections::HashMap;
use std::net::SocketAddr;

/// STUN header length and magic cookie (RFC 5389 §6).
const STUN_HEADER: usize = 20;
const MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTR_USERNAME: u16 = 0x0006;

/// At most this many addresses per peer: a peer's offer names the
/// candidates we check, and a forged STUN request names a ufrag; neither may
/// grow the table without bound.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// What the first byte says a datagram is (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Other,
}

pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Other,
    }
}

/// The USERNAME of a well-formed STUN message, or `None`.
pub fn stun_username(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.len() < STUN_HEADER || datagram[0] & 0xC0 != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
    if cookie != MAGIC_COOKIE || len % 4 != 0 || STUN_HEADER + len != datagram.len() {
        return None;
    }
    let mut attrs = &datagram[STUN_HEADER..];
    while attrs.len() >= 4 {
        let typ = u16::from_be_bytes([attrs[0], attrs[1]]);
        let alen = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + alen)?;
        if typ == ATTR_USERNAME {
            return Some(value);
        }
        let padded = 4 + alen.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

/// Our ufrag from a Binding request's USERNAME (`ours:theirs`).
pub fn local_ufrag(username: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(username).ok()?;
    let (ours, _) = s.split_once(':')?;
    (!ours.is_empty()).then_some(ours)
}

/// Routes datagrams to peers.
#[derive(Debug, Default)]
pub struct Demux {
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
    addrs_of: HashMap<u64, Vec<SocketAddr>>,
}

impl Demux {
    pub fn add_peer(&mut self, peer: u64, ufrag: &str) {
        self.by_ufrag.insert(ufrag.to_string(), peer);
        self.addrs_of.entry(peer).or_default();
    }

    /// Forgets `peer`; the addresses it had.
    pub fn remove_peer(&mut self, peer: u64) -> Vec<SocketAddr> {
        self.by_ufrag.retain(|_, p| *p != peer);
        let addrs = self.addrs_of.remove(&peer).unwrap_or_default();
        for a in &addrs {
            self.by_addr.remove(a);
        }
        addrs
    }

    /// The peer a datagram from `from` belongs to, learning the address
    /// from a STUN request that names a peer's ufrag.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<u64> {
        if let Some(p) = self.by_addr.get(&from) {
            return Some(*p);
        }
        if classify(datagram) != Kind::Stun {
            return None;
        }
        let ufrag = local_ufrag(stun_username(datagram)?)?;
        let peer = *self.by_ufrag.get(ufrag)?;
        self.learn(peer, from);
        Some(peer)
    }

    /// Records that `peer` talks with `addr` (we send it our checks).
    pub fn learn(&mut self, peer: u64, addr: SocketAddr) {
        if self.by_addr.contains_key(&addr) {
            return;
        }
        let Some(list) = self.addrs_of.get_mut(&peer) else {
            return;
        };
        if list.len() >= MAX_ADDRS_PER_PEER {
            return;
        }
        list.push(addr);
        self.by_addr.insert(addr, peer);
    }

    /// The peer `addr` belongs to.
    pub fn owner(&self, addr: SocketAddr) -> Option<u64> {
        self.by_addr.get(&addr).copied()
    }

    pub fn peers(&self) -> usize {
        self.addrs_of.len()
    }

    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        // A PRIORITY attribute after it, as browsers send.
        attrs.extend_from_slice(&[0x00, 0x24, 0, 4, 1, 2, 3, 4]);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn first_stun_request_names_the_peer_then_the_address_does() {
        let mut d = Demux::default();
        d.add_peer(1, "abcd");
        d.add_peer(2, "efgh");
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert_eq!(d.route(a, &[0x80, 0, 0, 0]), None, "RTP from a stranger");
        assert_eq!(d.route(a, &binding("efgh:remote")), Some(2));
        assert_eq!(d.route(a, &[0x80, 0, 0, 0]), Some(2));
        assert_eq!(d.route(b, &binding("nope:remote")), None);
        assert_eq!(d.route(b, &binding("abcd:x")), Some(1));
        d.remove_peer(2);
        assert_eq!(d.route(a, &[0x80]), None);
        assert_eq!(d.route(b, &[0x80]), Some(1));
    }

    #[test]
    fn malformed_stun_is_no_username() {
        let good = binding("abcd:x");
        assert_eq!(stun_username(&good), Some(&b"abcd:x"[..]));
        for cut in 0..good.len() {
            assert_eq!(stun_username(&good[..cut]), None, "cut at {cut}");
        }
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 1;
        assert_eq!(stun_username(&bad_cookie), None);
        let mut long_attr = good.clone();
        long_attr[22] = 0xFF; // USERNAME length past the end
        assert_eq!(stun_username(&long_attr), None);
        assert_eq!(local_ufrag(b":x"), None);
        assert_eq!(local_ufrag(b"abc"), None);
    }

    #[test]
    fn addresses_per_peer_are_capped() {
        let mut d = Demux::default();
        d.add_peer(1, "abcd");
        for port in 0..100u16 {
            let a = SocketAddr::from(([127, 0, 0, 1], 6000 + port));
            d.route(a, &binding("abcd:x"));
        }
        assert_eq!(d.addresses(), MAX_ADDRS_PER_PEER);
        d.remove_peer(1);
        assert_eq!(d.addresses(), 0);
        assert_eq!(d.peers(), 0);
    }
}
