#![no_main]
//! The single-socket demultiplexer and its STUN reading: datagrams from a
//! handful of addresses, some of them well-formed Binding requests naming
//! known ufrags. Routing must never panic, and a peer's table stays capped.
use std::net::SocketAddr;

use camrouter_webrtc::demux::{self, Demux, MAX_ADDRS_PER_PEER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = demux::stun_username(data);
    let _ = demux::classify(data);
    let mut d = Demux::default();
    d.add_peer(1, "abcd");
    d.add_peer(2, "efgh");
    // Each chunk: one byte of port, the rest a datagram.
    for chunk in data.split(|b| *b == 0xFF) {
        let Some((port, dgram)) = chunk.split_first() else {
            continue;
        };
        let from = SocketAddr::from(([127, 0, 0, 1], 10_000 + u16::from(*port)));
        if let Some(p) = d.route(from, dgram) {
            assert!(p == 1 || p == 2);
        }
        if *port % 7 == 0 {
            d.learn(2, from);
        }
    }
    assert!(d.addresses() <= 2 * MAX_ADDRS_PER_PEER);
    d.remove_peer(1);
    d.remove_peer(2);
    assert_eq!(d.addresses(), 0);
});
