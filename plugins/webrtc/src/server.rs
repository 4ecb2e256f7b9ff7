//! The peer loop: one task owns the UDP socket, the ICE-TCP connections'
//! write ends and every peer connection (webrtc-rs's sans-IO `rtc` core,
//! which does no IO and reads no clock). Datagrams and TCP frames are
//! routed by [`Demux`]; frames come from the feeds as shared
//! packets and each peer stamps and encrypts its own copy. A peer that sends
//! nothing (no STUN consent check, no RTCP) for [`SILENCE`] is reaped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use camrouter_media::rtp::RtpPacket;
use camrouter_media::Depacketizer;
use camrouter_plugin_api::media::to_media;
use camrouter_plugin_api::sdk::{Client, Host, Source, SourceEvents};
use camrouter_plugin_api::{Packet, RArc, RVec, FLAG_DISCONTINUITY, FLAG_KEYFRAME};
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp;
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::marshal::Marshal;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::batch::{Outbox, MAX_QUEUED};
use crate::config::{Cand, Plan};
use crate::demux::Demux;
use crate::feed::{Feed, OutFrame};
use crate::offer::{Offer, Offered};
use crate::peer::{negotiate, negotiate_ingest, Negotiated, PeerTrack, TrackOut};
use crate::pktinfo::PktInfo;
use crate::stun::Public;
use crate::turn::{self, Relays, TurnServer};

#[path = "dial.rs"]
pub mod dial;

/// A connected peer that sent nothing for this long is gone (browsers check
/// consent every ~5 s, RFC 7675; receivers also send RTCP every second).
pub const SILENCE: Duration = Duration::from_secs(7);
/// A viewer's keyframe requests go upstream at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// A peer that never connects is dropped after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Command {
    Frame {
        feed: u64,
        frame: Arc<OutFrame>,
    },
    FeedEnded(u64),
    Offer(Box<NewPeer>),
    Publish(Box<NewPublisher>),
    Candidate {
        peer: u64,
        candidate: String,
    },
    Close(u64),
    /// An ICE-TCP connection from `from` to our `local`; `tx` takes
    /// the frames (RFC 4571 payloads) to write to it.
    TcpOpen {
        from: SocketAddr,
        local: SocketAddr,
        tx: mpsc::Sender<Bytes>,
    },
    /// One RFC 4571 frame read from `from`'s connection.
    TcpFrame {
        from: SocketAddr,
        data: Bytes,
    },
    TcpClosed {
        from: SocketAddr,
    },
    /// `webrtc:` client sources (dial.rs).
    Dial(Box<dial::Dial>),
    Answered(Box<dial::Answered>),
    Accept(Box<dial::Accept>),
    /// Ask a client source's remote for a keyframe.
    Pli(u64),
    /// Talk-back audio for a client source's remote (dial.rs).
    Talk {
        peer: u64,
        payload: RArc<RVec<u8>>,
        timestamp: u32,
    },
}

/// A negotiated viewer waiting for its peer connection.
pub struct NewPeer {
    pub offer: Offer,
    pub feed: Arc<Feed>,
    pub tracks: Arc<Vec<TrackOut>>,
    /// `format_name`, `protocol`, `remote_addr`, `user_agent`.
    pub info: Value,
    /// Where to allocate a relay candidate for this peer (turn.rs).
    pub turn: Option<TurnServer>,
    pub reply: oneshot::Sender<Result<Answer, String>>,
}

/// A publisher (WHIP) of `stream`.
pub struct NewPublisher {
    pub offer: Offer,
    pub formats: Vec<Offered>,
    pub stream: String,
    /// `format_name`, `protocol`, `remote_addr`, `user_agent`.
    pub info: Value,
    pub turn: Option<TurnServer>,
    pub reply: oneshot::Sender<Result<Answer, String>>,
}

/// An offer whose answer waits (at most [`turn::WAIT`]) for a TURN
/// allocation and a STUN answer, to carry our relay and server-reflexive
/// candidates.
struct Waiting {
    id: u64,
    /// The TURN server whose allocation is being made, the STUN server
    /// being asked: `None` once decided.
    turn: Option<SocketAddr>,
    stun: Option<SocketAddr>,
    relay: Option<Cand>,
    /// Our address as the STUN server saw it.
    reflexive: Option<SocketAddr>,
    until: Instant,
    offer: Answering,
}

/// A viewer's or a publisher's offer, or a client source's wish to offer
/// or answer, until it is answered.
enum Answering {
    Viewer(Box<NewPeer>),
    Publisher(Box<NewPublisher>),
    Dial(Box<dial::Dial>),
    Accept(Box<dial::Accept>),
}

pub struct Answer {
    pub id: u64,
    pub sdp: String,
    /// Our candidates as `candidate:…` lines, for trickle signalings.
    pub candidates: Vec<String>,
}

/// Counters the API can read.
#[derive(Default)]
pub struct Stats {
    pub peers: AtomicU64,
    /// Datagrams from an address no peer has, that are not a STUN request
    /// naming a peer.
    pub unknown_datagrams: AtomicU64,
    /// Datagrams a peer's connection refused (bad DTLS, SRTP, STUN).
    pub rejected_datagrams: AtomicU64,
    /// ICE-TCP connections closed for what they sent (a first frame that
    /// names no peer, a frame never completed, too many connections).
    pub dropped_tcp: AtomicU64,
}

/// Everything the loop needs besides the socket.
pub struct Setup {
    pub host: Host,
    /// Our candidates, bar the `stun:` ones until STUN answered.
    pub plan: Plan,
    pub public: Arc<Public>,
    pub certificate: RTCCertificate,
    pub stats: Arc<Stats>,
}

/// What a publisher's peer feeds: the stream's producer, one depacketizer
/// per payload type it sends.
struct Ingest {
    events: SourceEvents,
    by_pt: HashMap<u8, (u32, Depacketizer)>,
    started: Instant,
    /// RTP timestamps extended to 64 bits, per track.
    unwrap: HashMap<u32, (u32, i64)>,
    /// The remote's video SSRC, for keyframe requests (PLI) to it.
    video_ssrc: Option<u32>,
}

/// A viewer's microphone: its audio goes to the feed consumer's
/// backchannel track.
struct Mic {
    host: Host,
    consumer: u64,
    payload_type: u8,
    graph_track: u32,
    depay: Depacketizer,
}

struct Peer {
    pc: RTCPeerConnection,
    mic: Option<Mic>,
    /// A viewer's feed; `None` for a publisher.
    feed: Option<Arc<Feed>>,
    ingest: Option<Ingest>,
    /// By feed track index.
    tracks: Vec<Option<PeerTrack>>,
    /// Frames are sent once connected, the GOP first.
    playing: bool,
    /// Frames queued up to this number were in the GOP it got.
    after: u64,
    created: Instant,
    last_heard: Instant,
    connected: bool,
    deadline: Option<Instant>,
    client: Option<Client>,
    /// The ice-ufrag of our answer: the demultiplexer's key.
    ufrag: String,
    /// A client source's: told why the peer ended.
    ended: Option<oneshot::Sender<String>>,
    /// A client source's producer until the remote's answer names its tracks.
    pending_source: Option<SourceEvents>,
    /// A viewer's video track in the graph (its consumer's), which its
    /// keyframe requests (PLI/FIR) are for, and when it last asked.
    video_track: Option<u32>,
    last_keyframe_request: Option<Instant>,
}

/// An ICE-TCP connection: our address on it and its writer.
struct TcpConn {
    local: SocketAddr,
    tx: mpsc::Sender<Bytes>,
}

/// At most this many ICE-TCP connections at once (each is a task and a
/// socket; browsers open one or two per peer).
pub const MAX_TCP: usize = 512;

pub struct Loop {
    socket: Option<UdpSocket>,
    /// For sources that end their own peer.
    to_self: mpsc::Sender<Command>,
    udp_port: u16,
    tcp_port: u16,
    setup: Setup,
    /// The candidates answers carry now (the plan with STUN's answer).
    cands: Vec<Cand>,
    peers: HashMap<u64, Peer>,
    demux: Demux,
    /// Peers by their ICE-TCP connections' remote addresses.
    tcp_demux: Demux,
    tcp: HashMap<SocketAddr, TcpConn>,
    next_id: u64,
    /// The drop counters as last logged, and when.
    reported: ([u64; 3], Instant),
    /// Our TURN allocations (their traffic shares the socket).
    relays: Relays,
    /// Which of our addresses datagrams arrive on and leave from.
    pktinfo: PktInfo,
    /// UDP datagrams of this turn, sent together at its end.
    outbox: Outbox,
    waiting: Vec<Waiting>,
}

/// A datagram from the UDP socket and the local address it came to, or
/// never when UDP is off.
async fn recv(
    socket: &Option<UdpSocket>,
    pktinfo: &mut PktInfo,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    match socket {
        Some(s) => pktinfo.recv(s, buf).await,
        None => std::future::pending().await,
    }
}

impl Loop {
    pub fn new(
        socket: Option<UdpSocket>,
        tcp_port: u16,
        setup: Setup,
        to_self: mpsc::Sender<Command>,
    ) -> std::io::Result<Loop> {
        let local = match &socket {
            Some(s) => s.local_addr()?,
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let udp_port = local.port();
        let pktinfo = socket.as_ref().map(PktInfo::enable).unwrap_or_default();
        let mut lp = Loop {
            socket,
            to_self,
            udp_port,
            tcp_port,
            setup,
            cands: Vec::new(),
            peers: HashMap::new(),
            demux: Demux::default(),
            tcp_demux: Demux::default(),
            tcp: HashMap::new(),
            next_id: 1,
            reported: ([0; 3], Instant::now()),
            relays: Relays::new(local),
            pktinfo,
            outbox: Outbox::default(),
            waiting: Vec::new(),
        };
        lp.refresh_candidates();
        Ok(lp)
    }

    /// Takes in STUN's latest answer.
    fn refresh_candidates(&mut self) {
        self.cands = self.setup.plan.current(
            self.setup.public.get(),
            &self.setup.public.names(),
            self.udp_port,
            self.tcp_port,
        );
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self
                .peers
                .values()
                .filter_map(|p| p.deadline)
                .chain(self.relays.poll_timeout())
                .chain(self.waiting.iter().map(|w| w.until))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = recv(&self.socket, &mut self.pktinfo, &mut buf) => match r {
                    Ok((n, from, to)) => self.datagram(from, &buf[..n], None, to),
                    // ICMP port unreachable from a vanished peer surfaces here
                    // on Linux: not our socket's fault.
                    Err(e) => tracing::trace!("webrtc: recv: {e}"),
                },
                cmd = rx.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(next.into()) => self.timeouts(),
                _ = tick.tick() => {
                    self.refresh_candidates();
                    self.reap();
                    self.report_drops();
                }
            }
            self.send_queued();
        }
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for id in ids {
            self.remove(id, "server stopped");
        }
        self.send_queued();
    }

    /// Sends the turn's UDP datagrams (batch.rs) and counts them to their
    /// viewers.
    fn send_queued(&mut self) {
        let peers = &self.peers;
        self.outbox.send(self.socket.as_ref(), |id, bytes, n| {
            if let Some(c) = peers.get(&id).and_then(|p| p.client.as_ref()) {
                c.sent(bytes, n);
            }
        });
    }

    /// A UDP datagram (`to`: the local address it came to, if known), or
    /// (`tcp` = our address on its connection) an ICE-TCP frame.
    fn datagram(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        tcp: Option<SocketAddr>,
        to: Option<IpAddr>,
    ) {
        if tcp.is_none() && self.relays.is_server(from) {
            self.turn_datagram(from, data);
            return;
        }
        let demux = if tcp.is_some() {
            &mut self.tcp_demux
        } else {
            &mut self.demux
        };
        let Some(id) = demux.route(from, data) else {
            self.setup
                .stats
                .unknown_datagrams
                .fetch_add(1, Ordering::Relaxed);
            if tcp.is_some() {
                // A connection's first frame names its peer; one that does
                // not is someone else's, or garbage.
                self.setup.stats.dropped_tcp.fetch_add(1, Ordering::Relaxed);
                self.tcp.remove(&from);
            }
            return;
        };
        let (local, protocol) = match tcp {
            Some(on) => (self.local_for(from, Some(on), true), TransportProtocol::TCP),
            None => {
                let on = to.map(|ip| SocketAddr::new(ip, self.udp_port));
                (self.local_for(from, on, false), TransportProtocol::UDP)
            }
        };
        self.deliver(id, from, local, protocol, data);
    }

    /// What a TURN server sent us: its answers go to our TURN clients, and
    /// what it relayed to a peer is that peer's, as from the remote's
    /// address to our relayed one.
    fn turn_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let now = Instant::now();
        // As for a peer's datagrams: a panic on hostile input (a forged
        // source address reaches this too) drops it, not the loop.
        let relayed = catch_unwind(AssertUnwindSafe(|| self.relays.handle(now, from, data)))
            .unwrap_or_else(|_| {
                tracing::warn!(%from, "webrtc: the TURN client panicked on a datagram; dropped");
                Vec::new()
            });
        for r in relayed {
            self.deliver(r.peer, r.from, r.relayed, TransportProtocol::UDP, &r.data);
        }
        send_turn(&mut self.relays, &self.socket);
        self.decided();
    }

    /// A datagram (or ICE-TCP frame) for peer `id`, that arrived from
    /// `from` on our `local` address.
    fn deliver(
        &mut self,
        id: u64,
        from: SocketAddr,
        local: SocketAddr,
        protocol: TransportProtocol,
        data: &[u8],
    ) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.last_heard = Instant::now();
        let msg = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                ecn: None,
                transport_protocol: protocol,
            },
            message: BytesMut::from(data),
        };
        // A panic in the stack on a hostile datagram ends that peer, not
        // the loop every peer shares.
        match catch_unwind(AssertUnwindSafe(|| peer.pc.handle_read(msg))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.setup
                    .stats
                    .rejected_datagrams
                    .fetch_add(1, Ordering::Relaxed);
                tracing::trace!(peer = id, %from, "webrtc: datagram refused: {e}");
            }
            Err(_) => {
                self.remove(id, "the WebRTC stack panicked on a datagram");
                return;
            }
        }
        self.flush(id);
    }

    /// The local candidate a datagram from `from` was sent to, as the ICE
    /// agent matches datagrams to candidates by address: the address it
    /// arrived on (`on`: a TCP connection's, or a UDP datagram's packet
    /// info) when that is one of ours; else (no packet info, or a port
    /// mapping changed it) the likeliest of ours (a `stun:` candidate by
    /// its base).
    fn local_for(&self, from: SocketAddr, on: Option<SocketAddr>, tcp: bool) -> SocketAddr {
        let bases: Vec<SocketAddr> = self
            .cands
            .iter()
            .filter(|c| c.tcp == tcp)
            .map(|c| {
                if tcp {
                    c.addr
                } else {
                    c.base.unwrap_or(c.addr)
                }
            })
            .collect();
        if let Some(on) = on.filter(|a| bases.contains(a)) {
            return on;
        }
        bases
            .iter()
            .find(|a| {
                a.ip().is_loopback() == from.ip().is_loopback() && a.is_ipv4() == from.is_ipv4()
            })
            .or_else(|| bases.iter().find(|a| a.is_ipv4() == from.is_ipv4()))
            .or(bases.first())
            .copied()
            .or(on.filter(|_| tcp))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.udp_port)))
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Frame { feed, frame } => {
                let ids: Vec<u64> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| {
                        p.playing
                            && p.feed.as_ref().is_some_and(|f| f.id == feed)
                            && frame.seq > p.after
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    if let Some(p) = self.peers.get_mut(&id) {
                        send_frame(p, &frame);
                    }
                    self.flush(id);
                }
            }
            Command::FeedEnded(feed) => {
                let ids: Vec<u64> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.feed.as_ref().is_some_and(|f| f.id == feed))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.remove(id, "stream ended");
                }
            }
            Command::Offer(new) => {
                let id = self.next_id;
                self.next_id += 1;
                self.refresh_candidates();
                self.offered(id, Answering::Viewer(new));
            }
            Command::Publish(new) => {
                self.refresh_candidates();
                let id = self.next_id;
                self.next_id += 1;
                self.offered(id, Answering::Publisher(new));
            }
            Command::Candidate { peer, candidate } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let init = RTCIceCandidateInit {
                        candidate,
                        ..Default::default()
                    };
                    if let Err(e) = p.pc.add_remote_candidate(init) {
                        tracing::debug!(peer, "webrtc: remote candidate refused: {e}");
                    }
                    self.flush(peer);
                }
            }
            Command::Close(id) => self.remove(id, "closed by the client"),
            Command::TcpOpen { from, local, tx } => {
                if self.tcp.len() >= MAX_TCP {
                    self.setup.stats.dropped_tcp.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, "webrtc: too many ICE-TCP connections, refused");
                    return;
                }
                self.tcp.insert(from, TcpConn { local, tx });
            }
            Command::TcpFrame { from, data } => {
                if let Some(local) = self.tcp.get(&from).map(|c| c.local) {
                    self.datagram(from, &data, Some(local), None);
                }
            }
            Command::TcpClosed { from } => {
                self.tcp.remove(&from);
            }
            Command::Dial(d) => {
                let id = self.next_id;
                self.next_id += 1;
                self.refresh_candidates();
                self.offered(id, Answering::Dial(d));
            }
            Command::Answered(a) => self.answered(*a),
            Command::Accept(a) => {
                let id = self.next_id;
                self.next_id += 1;
                self.refresh_candidates();
                self.offered(id, Answering::Accept(a));
            }
            Command::Pli(id) => self.send_pli(id),
            Command::Talk {
                peer,
                payload,
                timestamp,
            } => self.talk(peer, &payload, timestamp),
        }
    }

    /// An offer (or a source's wish to offer or answer): answered now, or
    /// once its TURN allocation and STUN answer are decided.
    fn offered(&mut self, id: u64, offer: Answering) {
        let (turn, stun) = match &offer {
            Answering::Viewer(v) => (v.turn.clone(), None),
            Answering::Publisher(p) => (p.turn.clone(), None),
            Answering::Dial(d) => (d.turn.clone(), d.stun),
            Answering::Accept(a) => (a.turn.clone(), a.stun),
        };
        let now = Instant::now();
        let mut pending_turn = None;
        let mut relay = None;
        match turn.map(|t| self.relays.want(now, &t, id)) {
            Some(turn::Status::Pending(server)) => pending_turn = Some(server),
            Some(turn::Status::Ready(c)) => relay = Some(c),
            Some(turn::Status::Failed) | None => {}
        }
        let mut w = Waiting {
            id,
            turn: pending_turn,
            stun: None,
            relay,
            reflexive: None,
            until: now + turn::WAIT,
            offer,
        };
        if let Some(server) = stun {
            match self.relays.want_reflexive(now, server) {
                Ok(found) => w.reflexive = found,
                Err(asking) => w.stun = Some(asking),
            }
        }
        send_turn(&mut self.relays, &self.socket);
        if w.turn.is_some() || w.stun.is_some() {
            self.waiting.push(w);
        } else {
            self.answer(w);
        }
    }

    /// Negotiates a waiting or new offer, with our relay and
    /// server-reflexive candidates if any.
    fn answer(&mut self, w: Waiting) {
        let Waiting {
            id,
            relay,
            reflexive,
            offer,
            ..
        } = w;
        let result = match offer {
            Answering::Viewer(new) => {
                let NewPeer {
                    offer,
                    feed,
                    tracks,
                    info,
                    reply,
                    ..
                } = *new;
                let result = self.add_peer(id, &offer, feed, &tracks, info, relay);
                let ok = result.is_ok();
                let _ = reply.send(result);
                ok
            }
            Answering::Publisher(new) => {
                let NewPublisher {
                    offer,
                    formats,
                    stream,
                    info,
                    reply,
                    ..
                } = *new;
                let result = self.add_publisher(id, &offer, &formats, &stream, info, relay);
                let ok = result.is_ok();
                let _ = reply.send(result);
                ok
            }
            Answering::Dial(d) => self.dial(id, *d, relay, reflexive),
            Answering::Accept(a) => self.accept(id, *a, relay, reflexive),
        };
        if !result {
            self.relays.release(Instant::now(), id);
            send_turn(&mut self.relays, &self.socket);
        }
        self.flush(id);
    }

    /// Answers the offers whose TURN allocation and STUN answer were
    /// decided (or failed), or that waited long enough.
    fn decided(&mut self) {
        let mut servers = Vec::new();
        while let Some(turn::Event::Decided(s)) = self.relays.poll_event() {
            servers.push(s);
        }
        if self.waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        for w in &mut self.waiting {
            if let Some(t) = w.turn.filter(|t| servers.contains(t) || w.until <= now) {
                w.relay = self.relays.ready(t);
                w.turn = None;
            }
            if let Some(s) = w.stun.filter(|s| servers.contains(s) || w.until <= now) {
                w.reflexive = self.relays.reflexive(s);
                w.stun = None;
            }
        }
        let (go, stay): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.turn.is_none() && w.stun.is_none());
        self.waiting = stay;
        for w in go {
            self.answer(w);
        }
    }

    /// Our candidates for a new peer: the plan's, then its server-reflexive
    /// one (unless it is one of them: no NAT), then its relay.
    fn candidates_with(&self, relay: Option<Cand>, reflexive: Option<SocketAddr>) -> Vec<Cand> {
        let mut c = self.cands.clone();
        if let Some(mapped) = reflexive.filter(|m| !c.iter().any(|x| !x.tcp && x.addr == *m)) {
            c.push(Cand {
                addr: mapped,
                tcp: false,
                base: Some(self.local_for(mapped, None, false)),
                relay: false,
            });
        }
        c.extend(relay);
        c
    }

    fn add_peer(
        &mut self,
        id: u64,
        offer: &Offer,
        feed: Arc<Feed>,
        tracks: &[TrackOut],
        info: Value,
        relay: Option<Cand>,
    ) -> Result<Answer, String> {
        let now = Instant::now();
        let cands = self.candidates_with(relay, None);
        let n = catch_unwind(AssertUnwindSafe(|| {
            negotiate(
                id,
                offer,
                tracks,
                &feed.mics(),
                &self.setup.certificate,
                &cands,
            )
        }))
        .unwrap_or_else(|_| Err("webrtc: bad offer (the WebRTC stack panicked on it)".into()))?;
        let Negotiated {
            pc,
            tracks: peer_tracks,
            ufrag,
            sdp,
            candidates,
            mic,
        } = n;
        let consumer = feed.consumer_id.load(Ordering::Relaxed);
        let mic = mic.and_then(|(f, graph_track)| {
            Some(Mic {
                host: self.setup.host.clone(),
                consumer,
                payload_type: f.payload_type,
                graph_track,
                depay: Depacketizer::for_format(&f.format).ok()?,
            })
        });
        let mut client_info = info;
        if let Some(o) = client_info.as_object_mut() {
            let playing: Vec<u32> = peer_tracks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.is_some())
                .filter_map(|(i, _)| tracks.get(i).map(|t| t.graph_track))
                .filter(|g| *g != crate::feed::TRANSCODED)
                .collect();
            o.insert("tracks".into(), playing.into());
        }
        let client = self.setup.host.add_client(consumer, client_info);
        let video_track = tracks
            .iter()
            .zip(&peer_tracks)
            .find(|(t, p)| t.video && p.is_some())
            .map(|(t, _)| t.graph_track);
        self.demux.add_peer(id, &ufrag);
        self.tcp_demux.add_peer(id, &ufrag);
        if let Some(r) = relay {
            self.relays.attach(r.addr, id, &ufrag);
        }
        self.peers.insert(
            id,
            Peer {
                pc,
                mic,
                feed: Some(feed),
                ingest: None,
                tracks: peer_tracks,
                playing: false,
                after: 0,
                created: now,
                last_heard: now,
                connected: false,
                deadline: None,
                client: Some(client),
                ufrag,
                ended: None,
                pending_source: None,
                video_track,
                last_keyframe_request: None,
            },
        );
        self.setup
            .stats
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        Ok(Answer {
            id,
            sdp,
            candidates,
        })
    }

    fn add_publisher(
        &mut self,
        id: u64,
        offer: &Offer,
        formats: &[Offered],
        stream: &str,
        info: Value,
        relay: Option<Cand>,
    ) -> Result<Answer, String> {
        let now = Instant::now();
        let cands = self.candidates_with(relay, None);
        let n = catch_unwind(AssertUnwindSafe(|| {
            negotiate_ingest(offer, formats, &self.setup.certificate, &cands)
        }))
        .unwrap_or_else(|_| Err("webrtc: bad offer (the WebRTC stack panicked on it)".into()))?;
        let mut medias = Vec::new();
        let mut by_pt = HashMap::new();
        for f in formats {
            let (Some(info), Ok(depay)) = (&f.format.info, Depacketizer::for_format(&f.format))
            else {
                continue;
            };
            by_pt.insert(f.payload_type, (medias.len() as u32, depay));
            medias.push(to_media(info));
        }
        let source = Publisher {
            to_server: self.to_self.clone(),
            peer: id,
        };
        let events = self.setup.host.add_producer(stream, info, source)?;
        events.medias(medias);
        self.demux.add_peer(id, &n.ufrag);
        self.tcp_demux.add_peer(id, &n.ufrag);
        if let Some(r) = relay {
            self.relays.attach(r.addr, id, &n.ufrag);
        }
        self.peers.insert(
            id,
            Peer {
                pc: n.pc,
                mic: None,
                feed: None,
                ingest: Some(Ingest {
                    events,
                    by_pt,
                    started: now,
                    unwrap: HashMap::new(),
                    video_ssrc: None,
                }),
                tracks: Vec::new(),
                playing: false,
                after: 0,
                created: now,
                last_heard: now,
                connected: false,
                deadline: None,
                client: None,
                ufrag: n.ufrag,
                ended: None,
                pending_source: None,
                video_track: None,
                last_keyframe_request: None,
            },
        );
        Ok(Answer {
            id,
            sdp: n.sdp,
            candidates: n.candidates,
        })
    }

    /// Sends what the peer's connection queued, then acts on its events.
    fn flush(&mut self, id: u64) {
        let mut ended = None;
        let mut start = false;
        let mut ice_connected = false;
        {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            let (mut bytes, mut packets) = (0usize, 0usize);
            while let Some(msg) = peer.pc.poll_write() {
                let to = msg.transport.peer_addr;
                // A full socket buffer or connection queue drops the
                // datagram: RTP is loss tolerant and NACK recovers video.
                let sent = if msg.transport.transport_protocol == TransportProtocol::TCP {
                    self.tcp_demux.learn(id, to);
                    let n = msg.message.len();
                    self.tcp
                        .get(&to)
                        .and_then(|c| c.tx.try_send(msg.message.freeze()).ok())
                        .map(|_| n)
                } else if self.relays.is_relayed(msg.transport.local_addr) {
                    let relayed = msg.transport.local_addr;
                    self.relays.send(msg.now, id, relayed, to, &msg.message)
                } else {
                    // Sent (and counted) at the end of the turn.
                    self.demux.learn(id, to);
                    let src = self.pktinfo.source(to, msg.transport.local_addr);
                    self.outbox.push(id, to, src, msg.message);
                    None
                };
                if let Some(n) = sent {
                    bytes += n;
                    packets += 1;
                }
            }
            send_turn(&mut self.relays, &self.socket);
            if let Some(c) = &peer.client {
                if packets > 0 {
                    c.sent(bytes, packets);
                }
            }
            while let Some(ev) = peer.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    RTCIceConnectionState::Connected,
                ) = ev
                {
                    ice_connected = true;
                }
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                    match s {
                        RTCPeerConnectionState::Connected if !peer.connected => {
                            peer.connected = true;
                            start = true;
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            ended = Some(format!("connection {s}"));
                        }
                        _ => {}
                    }
                }
            }
            let mut keyframe_request = false;
            while let Some(msg) = peer.pc.poll_read() {
                if let (RTCMessage::RtpPacket(_, packet), Some(ingest)) =
                    (&msg.message, peer.ingest.as_mut())
                {
                    ingest.rtp(packet);
                    continue;
                }
                if let (RTCMessage::RtpPacket(_, packet), Some(mic)) =
                    (&msg.message, peer.mic.as_mut())
                {
                    mic.rtp(packet);
                    continue;
                }
                if let RTCMessage::RtcpPacket(_, packets) = msg.message {
                    for p in packets {
                        let any = p.as_any();
                        if any.is::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                            || any.is::<rtcp::payload_feedbacks::full_intra_request::FullIntraRequest>()
                        {
                            keyframe_request = true;
                        }
                    }
                }
            }
            if keyframe_request {
                request_keyframe(&self.setup.host, id, peer);
            }
            peer.deadline = peer.pc.poll_timeout();
        }
        if self.outbox.len() >= MAX_QUEUED {
            self.send_queued();
        }
        if ice_connected {
            self.start_dtls(id);
        }
        if start {
            self.start_playing(id);
        }
        if let Some(reason) = ended {
            self.remove(id, &reason);
        }
    }

    /// ICE chose a pair. When we are the DTLS client (the answer's
    /// `a=setup:active`, every viewer's case) rtc 0.21.1 makes the
    /// ClientHello then but hands it out only at the connection's next
    /// timeout, which is ICE's next check, up to 200 ms later: every
    /// viewer's first picture waited for it. A timeout now sends it at once.
    fn start_dtls(&mut self, id: u64) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match catch_unwind(AssertUnwindSafe(|| peer.pc.handle_timeout(Instant::now()))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::trace!(peer = id, "webrtc: timeout: {e}"),
            Err(_) => {
                self.remove(id, "the WebRTC stack panicked on a timer");
                return;
            }
        }
        self.flush(id);
    }

    /// The viewer is connected: the cached GOP first, then live frames.
    fn start_playing(&mut self, id: u64) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(feed) = peer.feed.clone() else {
            tracing::debug!(peer = id, "webrtc: publisher connected");
            return;
        };
        let (gop, last) = feed.gop();
        for f in &gop {
            send_frame(peer, f);
        }
        peer.after = last;
        peer.playing = true;
        tracing::debug!(peer = id, stream = %feed.stream(), frames = gop.len(), "webrtc: viewer connected");
        self.flush(id);
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        self.relays.handle_timeout(now);
        send_turn(&mut self.relays, &self.socket);
        self.decided();
        let due: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.peers.get_mut(&id) {
                // Push the deadline on so a refused timeout cannot spin.
                p.deadline = None;
                match catch_unwind(AssertUnwindSafe(|| p.pc.handle_timeout(now))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::trace!(peer = id, "webrtc: timeout: {e}"),
                    Err(_) => {
                        self.remove(id, "the WebRTC stack panicked on a timer");
                        continue;
                    }
                }
            }
            self.flush(id);
        }
    }

    /// Logs the drop counters when they moved, at most every 10 s, so
    /// hostile or stray traffic shows without a line per datagram.
    fn report_drops(&mut self) {
        let s = &self.setup.stats;
        let now = [
            s.unknown_datagrams.load(Ordering::Relaxed),
            s.rejected_datagrams.load(Ordering::Relaxed),
            s.dropped_tcp.load(Ordering::Relaxed),
        ];
        if now == self.reported.0 || self.reported.1.elapsed() < Duration::from_secs(10) {
            return;
        }
        tracing::debug!(
            unknown = now[0],
            refused = now[1],
            tcp_closed = now[2],
            "webrtc: dropped so far (datagrams from no peer, refused by a peer, ICE-TCP connections closed)"
        );
        self.reported = (now, Instant::now());
    }

    fn reap(&mut self) {
        let now = Instant::now();
        let gone: Vec<(u64, &'static str)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                if p.connected && now.duration_since(p.last_heard) > SILENCE {
                    Some((*id, "silent (no consent check or RTCP)"))
                } else if !p.connected && now.duration_since(p.created) > CONNECT_TIMEOUT {
                    Some((*id, "never connected"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in gone {
            self.remove(id, why);
        }
    }

    fn remove(&mut self, id: u64, why: &str) {
        if !self.peers.contains_key(&id) {
            return;
        }
        // What the turn queued for it leaves (and is counted) first.
        self.send_queued();
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        let _ = peer.pc.close();
        while let Some(msg) = peer.pc.poll_write() {
            let to = msg.transport.peer_addr;
            if msg.transport.transport_protocol == TransportProtocol::TCP {
                if let Some(c) = self.tcp.get(&to) {
                    let _ = c.tx.try_send(msg.message.freeze());
                }
            } else if self.relays.is_relayed(msg.transport.local_addr) {
                let relayed = msg.transport.local_addr;
                self.relays.send(msg.now, id, relayed, to, &msg.message);
            } else {
                let src = self.pktinfo.source(to, msg.transport.local_addr);
                self.outbox.push(id, to, src, msg.message);
            }
        }
        self.demux.remove_peer(id);
        // Its TURN allocation goes with its last peer.
        self.relays.release(Instant::now(), id);
        send_turn(&mut self.relays, &self.socket);
        // Its ICE-TCP connections close with it (their writers see the
        // channel end).
        for a in self.tcp_demux.remove_peer(id) {
            self.tcp.remove(&a);
        }
        tracing::debug!(peer = id, ufrag = %peer.ufrag, "webrtc: peer removed: {why}");
        if let Some(ingest) = &peer.ingest {
            // A `webrtc:` source's peer (it has an `ended`) is no publisher.
            let who = if peer.ended.is_some() {
                "peer"
            } else {
                "publisher"
            };
            ingest.events.closed(&format!("webrtc: {who} {why}"));
        }
        if let Some(ended) = peer.ended.take() {
            let _ = ended.send(why.to_string());
        }
        // The client record, then (with the last viewer) the feed's graph
        // consumer, leave with the peer.
        drop(peer);
        self.setup
            .stats
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
    }
}

/// Sends what our TURN clients queued (to their servers).
fn send_turn(relays: &mut Relays, socket: &Option<UdpSocket>) {
    while let Some((to, d)) = relays.poll_transmit() {
        if let Some(s) = socket {
            let _ = s.try_send_to(&d, to);
        }
    }
}

/// A viewer's PLI/FIR goes to the stream's producers (a `webrtc:` source
/// passes it on as PLI), at most every [`KEYFRAME_REQUEST_INTERVAL`]: a
/// viewer may ask once per lost packet.
fn request_keyframe(host: &Host, id: u64, peer: &mut Peer) {
    let (Some(feed), Some(track)) = (&peer.feed, peer.video_track) else {
        return;
    };
    let now = Instant::now();
    if peer
        .last_keyframe_request
        .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
    {
        return;
    }
    peer.last_keyframe_request = Some(now);
    tracing::trace!(peer = id, "webrtc: keyframe request");
    host.request_keyframe(feed.consumer_id.load(Ordering::Relaxed), track);
}

fn send_frame(peer: &mut Peer, frame: &OutFrame) {
    let Some(Some(t)) = peer.tracks.get_mut(frame.track) else {
        return;
    };
    let now = Instant::now();
    for p in &frame.packets {
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: p.marker,
                payload_type: t.payload_type,
                sequence_number: t.sequence,
                timestamp: p.timestamp.wrapping_add(t.timestamp_offset),
                ssrc: t.ssrc,
                ..Default::default()
            },
            payload: p.payload.clone(),
        };
        t.sequence = t.sequence.wrapping_add(1);
        if let Some(mut s) = peer.pc.rtp_sender(t.sender) {
            if let Err(e) = s.write_rtp(now, packet) {
                tracing::trace!("webrtc: write_rtp: {e}");
            }
        }
    }
}

impl Ingest {
    /// One decrypted RTP packet of the publisher → frames to the stream.
    fn rtp(&mut self, packet: &rtp::Packet) {
        let Some((track, depay)) = self.by_pt.get_mut(&packet.header.payload_type) else {
            return;
        };
        let Ok(raw) = packet.marshal() else {
            return;
        };
        let Ok(pkt) = RtpPacket::parse(&raw) else {
            return;
        };
        if matches!(depay, Depacketizer::H26x(_)) {
            self.video_ssrc = Some(packet.header.ssrc);
        }
        if depay.push(&pkt).is_err() {
            return;
        }
        let now = self.started.elapsed().as_micros() as u64;
        while let Some(f) = depay.pop() {
            let mut flags = if f.keyframe { FLAG_KEYFRAME } else { 0 };
            if f.discontinuity {
                flags |= FLAG_DISCONTINUITY;
            }
            // 32-bit RTP time → a 64-bit timeline that does not wrap.
            let (last, ext) = self
                .unwrap
                .entry(*track)
                .or_insert((f.timestamp, i64::from(f.timestamp)));
            *ext += i64::from(f.timestamp.wrapping_sub(*last) as i32);
            *last = f.timestamp;
            self.events.packet(&Packet {
                track: *track,
                flags,
                pts: *ext,
                dts: *ext,
                received_at_us: now,
                payload: RArc::new(RVec::from(f.data)),
            });
        }
    }
}

impl Mic {
    /// One decrypted RTP packet of the viewer's microphone → the camera.
    fn rtp(&mut self, packet: &rtp::Packet) {
        if packet.header.payload_type != self.payload_type {
            return;
        }
        let Ok(raw) = packet.marshal() else {
            return;
        };
        let Ok(pkt) = RtpPacket::parse(&raw) else {
            return;
        };
        if self.depay.push(&pkt).is_err() {
            return;
        }
        while let Some(f) = self.depay.pop() {
            self.host.consumer_send(
                self.consumer,
                self.graph_track,
                &Packet {
                    track: self.graph_track,
                    flags: FLAG_KEYFRAME,
                    pts: i64::from(f.timestamp),
                    dts: i64::from(f.timestamp),
                    received_at_us: 0,
                    payload: RArc::new(RVec::from(f.data)),
                },
            );
        }
    }
}

/// The graph's handle on a publisher: stopping it ends the peer.
struct Publisher {
    to_server: mpsc::Sender<Command>,
    peer: u64,
}

impl Source for Publisher {
    fn stop(&self) {
        let _ = self.to_server.try_send(Command::Close(self.peer));
    }
}
