//! Our own TURN relays (RFC 8656), on the one UDP socket every peer shares.
//!
//! The protocol (Allocate with the 401 realm/nonce exchange and long-term
//! credentials, Refresh before expiry and with LIFETIME 0 to release,
//! CreatePermission, ChannelBind, Send/Data indications and ChannelData)
//! is webrtc-rs's sans-IO TURN client (`rtc::turn`); this module owns the
//! allocations around it: which server a peer uses, who shares an
//! allocation, the peers behind it, and when it goes.
//!
//! An allocation is identified by its 5-tuple (RFC 8656 §2.2), and ours all
//! leave from one socket, so a server holds at most one allocation of ours:
//! the peers that name the same server share it (one relayed address), and
//! datagrams relayed to it go to a peer through its own demultiplexer
//! (STUN USERNAME, then the remote's address), as direct ones do. The
//! allocation is released (Refresh, LIFETIME 0) when its last peer leaves.
//! Nothing here does IO: the loop feeds datagrams from the servers in and
//! sends what [`Relays::poll_transmit`] returns.
//!
//! The same goes for a `webrtc:` source's `stun:` server: a Binding request
//! from the shared socket finds our address as seen from outside (the NAT's
//! mapping of that socket), a server-reflexive candidate of that peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::crypto::RTCCryptoProvider;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as StackError;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::stun::message::{is_stun_message, Message, TransactionId, BINDING_REQUEST};
use rtc::turn::client::{Client, ClientConfig, Event as TurnEvent};

use crate::config::{Cand, IceServer};
use crate::demux::Demux;

/// At most this many allocations at once (one per TURN server): servers
/// come from the config and from viewers' offers (Home Assistant's
/// `ice_servers`), and each costs the server a relayed port.
pub const MAX_ALLOCATIONS: usize = 4;
/// At most this many remote addresses an allocation asks permissions for
/// at once (its peers' candidates, at most 8 a peer as in the
/// demultiplexer; a peer's go when it leaves).
pub const MAX_PERMISSIONS: usize = 64;
/// How long an answer waits for its allocation before going without it.
pub const WAIT: Duration = Duration::from_secs(3);
/// A server that refused us (credentials) or did not answer is not asked
/// again for this long; answers go without a relay meanwhile.
const FAILED_FOR: Duration = Duration::from_secs(30);
/// A released allocation is kept this long for the server's answer.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Refreshes at most this far apart (default: half the lifetime), so a
/// refresh lost to a stale nonce (438, which the client only records) is
/// retried long before the allocation expires.
const REFRESH_CAP: Duration = Duration::from_secs(60);
/// A permission not granted yet is asked again after this.
const PERMISSION_RETRY: Duration = Duration::from_secs(1);
/// A STUN server's answer (our mapped address) is reused this long.
const REFLEXIVE_FOR: Duration = Duration::from_secs(60);
/// At most this many STUN servers asked or remembered at once.
const MAX_REFLEXIVE: usize = 8;

/// One TURN server to allocate on: a `turn:` url with credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// For logs (no credentials in it).
    pub url: String,
    pub addrs: Vec<SocketAddr>,
    pub username: String,
    pub credential: String,
}

/// `host:port` of a `turn:` url over UDP; `None` for `turns:` (TLS) and
/// `?transport=tcp`, which need a stream to the server, not our socket.
pub fn udp_host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("turn:")?;
    let (hp, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query
        .split('&')
        .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"))
    {
        return None;
    }
    if hp.is_empty() {
        return None;
    }
    let has_port = match hp.rsplit_once(':') {
        Some((h, p)) => p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    Some(if has_port {
        hp.to_string()
    } else {
        format!("{hp}:3478")
    })
}

/// The first usable TURN server: the viewer's own list (Home Assistant's
/// `ice_servers`) before the config's, resolved (a name that does not
/// resolve in 2 s is skipped).
pub async fn pick(first: &[IceServer], then: &[IceServer]) -> Option<TurnServer> {
    for s in first.iter().chain(then) {
        if s.username.is_empty() {
            continue;
        }
        for url in &s.urls {
            let Some(hp) = udp_host_port(url) else {
                if url.starts_with("turn") {
                    tracing::debug!(%url, "webrtc: TURN over TLS/TCP is not used for our relay");
                }
                continue;
            };
            let found =
                tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host(hp)).await;
            match found {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if !addrs.is_empty() {
                        return Some(TurnServer {
                            url: url.split('?').next().unwrap_or(url).to_string(),
                            addrs,
                            username: s.username.clone(),
                            credential: s.credential.clone(),
                        });
                    }
                }
                _ => tracing::warn!(%url, "webrtc: TURN server does not resolve"),
            }
        }
    }
    None
}

/// `host:port` of the first `stun:` url (UDP; `stuns:` is TLS), resolved.
pub async fn pick_stun(list: &[IceServer]) -> Option<SocketAddr> {
    for hp in IceServer::stun_servers(list) {
        let found =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host(hp.clone())).await;
        match found {
            Ok(Ok(mut addrs)) => {
                if let Some(a) = addrs.next() {
                    return Some(a);
                }
            }
            _ => tracing::warn!(server = %hp, "webrtc: STUN server does not resolve"),
        }
    }
    None
}

/// What [`Relays::want`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The relay candidate to advertise.
    Ready(Cand),
    /// Being allocated: an [`Event`] tells when it is decided.
    Pending(SocketAddr),
    /// No relay from this server (refused, unreachable, too many).
    Failed,
}

/// An allocation was decided: answers waiting on its server go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Decided(SocketAddr),
}

/// Data a peer sent to our relayed address, unwrapped.
pub struct Relayed {
    pub peer: u64,
    /// Our relayed address: the local address of the peer's relay candidate.
    pub relayed: SocketAddr,
    /// The peer's address as the TURN server sees it.
    pub from: SocketAddr,
    pub data: BytesMut,
}

struct Alloc {
    server: SocketAddr,
    url: String,
    username: String,
    credential: String,
    client: Client,
    relayed: Option<SocketAddr>,
    users: HashSet<u64>,
    demux: Demux,
    /// Remote addresses we asked a permission for, and when.
    asked: HashMap<SocketAddr, Instant>,
    failed_at: Option<Instant>,
    closing_since: Option<Instant>,
}

impl Alloc {
    fn live(&self) -> bool {
        self.closing_since.is_none() && self.failed_at.is_none()
    }
}

/// A Binding request to a STUN server, and its answer.
struct Reflexive {
    server: SocketAddr,
    tid: TransactionId,
    raw: Vec<u8>,
    asked: Instant,
    next: Instant,
    /// Decided: our mapped address, or `None` (no answer).
    found: Option<Option<SocketAddr>>,
    /// When decided.
    at: Instant,
}

/// Every allocation of ours, with the TURN client of each.
pub struct Relays {
    local: SocketAddr,
    crypto: Option<Arc<dyn RTCCryptoProvider>>,
    allocs: Vec<Alloc>,
    reflexive: Vec<Reflexive>,
    events: VecDeque<Event>,
    out: VecDeque<(SocketAddr, BytesMut)>,
}

impl Relays {
    /// `local`: the UDP socket's address.
    pub fn new(local: SocketAddr) -> Relays {
        let crypto = match rtc::crypto::default_provider() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("webrtc: crypto for TURN: {e}; no relays");
                None
            }
        };
        Relays {
            local,
            crypto,
            allocs: Vec::new(),
            reflexive: Vec::new(),
            events: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// An allocation on `server` for `peer`: the one we have, or a new one.
    pub fn want(&mut self, now: Instant, server: &TurnServer, peer: u64) -> Status {
        let Some(addr) = server
            .addrs
            .iter()
            .find(|a| a.is_ipv4() == self.local.is_ipv4())
            .copied()
        else {
            tracing::warn!(url = %server.url, "webrtc: TURN server has no address of our socket's family");
            return Status::Failed;
        };
        // A failed one is forgotten after a while, and asked again.
        self.allocs.retain(|a| {
            !(a.server == addr
                && a.failed_at
                    .is_some_and(|t| now.duration_since(t) >= FAILED_FOR))
        });
        if let Some(a) = self
            .allocs
            .iter_mut()
            .find(|a| a.server == addr && a.closing_since.is_none())
        {
            if a.failed_at.is_some() {
                return Status::Failed;
            }
            a.users.insert(peer);
            if a.username != server.username || a.credential != server.credential {
                // Short-lived credentials (a TURN REST API's, as Home
                // Assistant Cloud hands out) sign what comes next; the
                // allocation is the same (it is the 5-tuple's).
                a.username.clone_from(&server.username);
                a.credential.clone_from(&server.credential);
                if a.client
                    .update_credentials(a.username.clone(), a.credential.clone())
                    .is_ok()
                {
                    let _ = a.client.refresh_allocations(now);
                }
                drain(&mut a.client, &mut self.out);
            }
            return match a.relayed {
                Some(r) => Status::Ready(relay_cand(r)),
                None => Status::Pending(addr),
            };
        }
        if self.allocs.iter().filter(|a| a.live()).count() >= MAX_ALLOCATIONS {
            tracing::warn!(url = %server.url, max = MAX_ALLOCATIONS, "webrtc: TURN: too many allocations, answering without a relay");
            return Status::Failed;
        }
        let Some(crypto) = self.crypto.clone() else {
            return Status::Failed;
        };
        let config = ClientConfig {
            stun_serv_addr: String::new(),
            turn_serv_addr: addr.to_string(),
            local_addr: self.local,
            transport_protocol: TransportProtocol::UDP,
            username: server.username.clone(),
            password: server.credential.clone(),
            realm: String::new(),
            software: String::new(),
            rto_in_ms: 0,
            allocation_refresh_interval_cap: Some(REFRESH_CAP),
        };
        let mut client = match Client::new(config, crypto) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(url = %server.url, "webrtc: TURN client: {e}");
                return Status::Failed;
            }
        };
        if let Err(e) = client.allocate(now) {
            tracing::warn!(url = %server.url, "webrtc: TURN allocate: {e}");
            return Status::Failed;
        }
        drain(&mut client, &mut self.out);
        tracing::debug!(url = %server.url, "webrtc: TURN allocating");
        self.allocs.push(Alloc {
            server: addr,
            url: server.url.clone(),
            username: server.username.clone(),
            credential: server.credential.clone(),
            client,
            relayed: None,
            users: HashSet::from([peer]),
            demux: Demux::default(),
            asked: HashMap::new(),
            failed_at: None,
            closing_since: None,
        });
        Status::Pending(addr)
    }

    /// Our address as STUN server `server` sees the shared socket: `Ok`
    /// with the mapped address (or `None`: it did not answer), or `Err`
    /// while asking (an [`Event`] tells when it is decided).
    pub fn want_reflexive(
        &mut self,
        now: Instant,
        server: SocketAddr,
    ) -> Result<Option<SocketAddr>, SocketAddr> {
        if server.is_ipv4() != self.local.is_ipv4() {
            return Ok(None);
        }
        self.reflexive
            .retain(|r| r.found.is_none() || now.duration_since(r.at) < REFLEXIVE_FOR);
        if let Some(r) = self.reflexive.iter().find(|r| r.server == server) {
            return r.found.ok_or(server);
        }
        if self.reflexive.len() >= MAX_REFLEXIVE {
            return Ok(None);
        }
        let tid = TransactionId::new();
        let mut m = Message::new();
        if m.build(&[Box::new(BINDING_REQUEST), Box::new(tid)])
            .is_err()
        {
            return Ok(None);
        }
        self.out.push_back((server, BytesMut::from(&m.raw[..])));
        self.reflexive.push(Reflexive {
            server,
            tid,
            raw: m.raw,
            asked: now,
            next: now + Duration::from_millis(500),
            found: None,
            at: now,
        });
        Err(server)
    }

    /// The mapped address STUN server `server` answered, if it did.
    pub fn reflexive(&self, server: SocketAddr) -> Option<SocketAddr> {
        self.reflexive
            .iter()
            .find(|r| r.server == server)
            .and_then(|r| r.found.flatten())
    }

    /// The relay candidate of the live allocation on `server`, if allocated.
    pub fn ready(&self, server: SocketAddr) -> Option<Cand> {
        self.allocs
            .iter()
            .find(|a| a.server == server && a.live())
            .and_then(|a| a.relayed)
            .map(relay_cand)
    }

    /// `peer` (with ufrag `ufrag`) takes datagrams relayed to `relayed`.
    pub fn attach(&mut self, relayed: SocketAddr, peer: u64, ufrag: &str) {
        if let Some(a) = self.by_relayed(relayed) {
            a.demux.add_peer(peer, ufrag);
        }
    }

    /// `peer` is gone: an allocation it was the last user of is released.
    pub fn release(&mut self, now: Instant, peer: u64) {
        for a in &mut self.allocs {
            if !a.users.remove(&peer) {
                continue;
            }
            // Its addresses no longer count against the permission bound
            // (the server's permissions for them just expire).
            for addr in a.demux.remove_peer(peer) {
                a.asked.remove(&addr);
            }
            if a.users.is_empty() && a.live() {
                if let Some(r) = a.relayed {
                    close(a, r, now, &mut self.out);
                }
                // One still allocating is released when it answers.
            }
        }
    }

    /// Is `from` one of our TURN servers, or a STUN server we ask?
    pub fn is_server(&self, from: SocketAddr) -> bool {
        self.allocs.iter().any(|a| a.server == from)
            || self
                .reflexive
                .iter()
                .any(|r| r.server == from && r.found.is_none())
    }

    /// Is `local` the relayed address of a live allocation?
    pub fn is_relayed(&self, local: SocketAddr) -> bool {
        self.allocs
            .iter()
            .any(|a| a.live() && a.relayed == Some(local))
    }

    /// A datagram from a TURN server (see [`Relays::is_server`]): what it
    /// relayed to a peer of ours, if anything.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Vec<Relayed> {
        // A response goes to the client waiting for it (a released
        // allocation's and a new one's may share the server); anything
        // else to the live allocation.
        let tid = (is_stun_message(data) && data.len() >= 20).then(|| {
            let mut t = TransactionId::default();
            t.0.copy_from_slice(&data[8..20]);
            t
        });
        if let Some(r) = self
            .reflexive
            .iter_mut()
            .find(|r| r.server == from && r.found.is_none() && tid == Some(r.tid))
        {
            if let Some(addr) = crate::stun::mapped_addr(data, &r.tid) {
                tracing::debug!(%from, mapped = %addr, "webrtc: STUN answered for a source's peer");
                r.found = Some(Some(addr));
                r.at = now;
                self.events.push_back(Event::Decided(from));
            }
            return Vec::new();
        }
        let i = self
            .allocs
            .iter()
            .position(|a| {
                a.server == from && tid.as_ref().is_some_and(|t| a.client.has_transaction(t))
            })
            .or_else(|| {
                self.allocs
                    .iter()
                    .position(|a| a.server == from && a.closing_since.is_none())
            });
        let Some(i) = i else {
            return Vec::new();
        };
        let a = &mut self.allocs[i];
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = a.client.handle_read(msg) {
            // An error answer the client does not turn into an event is a
            // refused Refresh (437 after the server lost it, 401 when the
            // credentials changed): the allocation is gone, and new peers
            // must not be given it.
            let e = e.to_string();
            if e.contains("(error ") && a.live() && a.relayed.is_some() {
                tracing::warn!(url = %a.url, "webrtc: TURN server refused to refresh our allocation: {e}; new peers go without it");
                fail(a, now, &mut self.events);
            } else {
                tracing::trace!(server = %from, "webrtc: TURN datagram refused: {e}");
            }
        }
        let mut got = Vec::new();
        self.pump(i, now, &mut got);
        self.forget_released(now);
        got
    }

    /// Sends `data` from our relayed address `relayed` to `to` for `peer`.
    /// Until the server permits `to`, the datagram is dropped (ICE
    /// retransmits its checks) and a permission asked for.
    pub fn send(
        &mut self,
        now: Instant,
        peer: u64,
        relayed: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> Option<usize> {
        let a = self
            .allocs
            .iter_mut()
            .find(|a| a.live() && a.relayed == Some(relayed))?;
        // Replies to our checks carry no USERNAME: the address names the peer.
        a.demux.learn(peer, to);
        let result = a.client.relay(relayed).ok()?.send_to(now, data, to);
        let sent = match result {
            Ok(()) => Some(data.len()),
            Err(StackError::ErrNoPermission) => {
                let due = a
                    .asked
                    .get(&to)
                    .is_none_or(|t| now.duration_since(*t) >= PERMISSION_RETRY);
                // Only for an address the demultiplexer took as this
                // peer's (at most 8 a peer), so that its leaving frees them.
                let its = a.demux.owner(to) == Some(peer);
                if due && its && (a.asked.contains_key(&to) || a.asked.len() < MAX_PERMISSIONS) {
                    a.asked.insert(to, now);
                    if let Ok(mut r) = a.client.relay(relayed) {
                        let _ = r.create_permission(now, to);
                    }
                }
                None
            }
            Err(e) => {
                tracing::trace!(%to, "webrtc: TURN send: {e}");
                None
            }
        };
        drain(&mut a.client, &mut self.out);
        sent
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.allocs
            .iter_mut()
            .filter_map(|a| {
                let close = a.closing_since.map(|t| t + CLOSE_WAIT);
                match (a.client.poll_timeout(), close) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            })
            .chain(
                self.reflexive
                    .iter()
                    .filter(|r| r.found.is_none())
                    .map(|r| r.next),
            )
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Binding requests: again at 0.5, 1.5 s; given up at [`WAIT`].
        for r in &mut self.reflexive {
            if r.found.is_some() || r.next > now {
                continue;
            }
            if now.duration_since(r.asked) >= WAIT {
                tracing::warn!(server = %r.server, "webrtc: STUN server does not answer; no server-reflexive candidate");
                r.found = Some(None);
                r.at = now;
                self.events.push_back(Event::Decided(r.server));
                continue;
            }
            self.out.push_back((r.server, BytesMut::from(&r.raw[..])));
            r.next =
                (now + 2 * (r.next - r.asked).max(Duration::from_millis(500))).min(r.asked + WAIT);
        }
        for i in 0..self.allocs.len() {
            let _ = self.allocs[i].client.handle_timeout(now);
            let mut got = Vec::new();
            self.pump(i, now, &mut got);
        }
        self.forget_released(now);
    }

    /// Drops the allocations the server confirmed released (the TURN
    /// client forgets a relay on the LIFETIME 0 answer), or that waited
    /// [`CLOSE_WAIT`] for it (it expires on the server anyway), and failed
    /// ones after [`FAILED_FOR`].
    fn forget_released(&mut self, now: Instant) {
        self.allocs.retain_mut(|a| {
            // A failed one stays (so answers do not wait for it) until it
            // is worth asking again.
            if a.failed_at.is_some_and(|t| now.duration_since(t) >= FAILED_FOR) {
                return false;
            }
            let Some(since) = a.closing_since else {
                return true;
            };
            if a.relayed.is_none_or(|r| a.client.relay(r).is_err()) {
                tracing::debug!(url = %a.url, "webrtc: TURN allocation released");
                return false;
            }
            if now.duration_since(since) >= CLOSE_WAIT {
                tracing::debug!(url = %a.url, "webrtc: TURN server did not confirm the release; the allocation expires there");
                return false;
            }
            true
        });
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Number of allocations held or being made (not released ones).
    #[cfg(test)]
    pub fn allocations(&self) -> usize {
        self.allocs.iter().filter(|a| a.live()).count()
    }

    fn by_relayed(&mut self, relayed: SocketAddr) -> Option<&mut Alloc> {
        self.allocs
            .iter_mut()
            .find(|a| a.live() && a.relayed == Some(relayed))
    }

    /// The client's events and datagrams after it took input or time.
    fn pump(&mut self, i: usize, now: Instant, got: &mut Vec<Relayed>) {
        let a = &mut self.allocs[i];
        while let Some(ev) = a.client.poll_event() {
            match ev {
                TurnEvent::AllocateResponse(_, relayed) if a.relayed.is_none() && a.live() => {
                    tracing::info!(url = %a.url, %relayed, "[webrtc] TURN relay allocated");
                    a.relayed = Some(relayed);
                    self.events.push_back(Event::Decided(a.server));
                    if a.users.is_empty() {
                        close(a, relayed, now, &mut self.out);
                    }
                }
                TurnEvent::AllocateError(_, e) if a.live() => {
                    tracing::warn!(url = %a.url, username = %a.username, "webrtc: TURN server refused our allocation: {e} (check the username and credential in ice_servers); answering without a relay");
                    fail(a, now, &mut self.events);
                }
                TurnEvent::TransactionTimeout(_) if a.relayed.is_none() && a.live() => {
                    tracing::warn!(url = %a.url, "webrtc: TURN server does not answer; answering without a relay");
                    fail(a, now, &mut self.events);
                }
                TurnEvent::DataIndicationOrChannelData(_, from, data) => {
                    let Some(relayed) = a.relayed else { continue };
                    if let Some(peer) = a.demux.route(from, &data) {
                        got.push(Relayed {
                            peer,
                            relayed,
                            from,
                            data,
                        });
                    }
                }
                TurnEvent::CreatePermissionError(_, e) => {
                    tracing::debug!(url = %a.url, "webrtc: TURN permission refused: {e}");
                }
                _ => {}
            }
        }
        drain(&mut a.client, &mut self.out);
    }
}

fn relay_cand(relayed: SocketAddr) -> Cand {
    Cand {
        addr: relayed,
        tcp: false,
        base: None,
        relay: true,
    }
}

fn fail(a: &mut Alloc, now: Instant, events: &mut VecDeque<Event>) {
    a.failed_at = Some(now);
    a.users.clear();
    events.push_back(Event::Decided(a.server));
}

/// Releases the allocation: Refresh with LIFETIME 0.
fn close(
    a: &mut Alloc,
    relayed: SocketAddr,
    now: Instant,
    out: &mut VecDeque<(SocketAddr, BytesMut)>,
) {
    tracing::debug!(url = %a.url, %relayed, "webrtc: TURN allocation no longer used, releasing");
    if let Ok(mut r) = a.client.relay(relayed) {
        let _ = r.close(now);
    }
    a.closing_since = Some(now);
    drain(&mut a.client, out);
}

fn drain(client: &mut Client, out: &mut VecDeque<(SocketAddr, BytesMut)>) {
    while let Some(m) = client.poll_write() {
        out.push_back((m.transport.peer_addr, m.message));
    }
}

#[cfg(test)]
mod tests;
