#![no_main]
//! RTP and RTCP parsing of arbitrary datagrams; RTP header rewrite check.
use camrouter_media::rtcp::parse_compound;
use camrouter_media::{RtpHeader, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.payload.len() + 12 <= data.len());
        let mut v = Vec::new();
        RtpHeader {
            marker: p.marker,
            payload_type: p.payload_type,
            sequence: p.sequence,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
        }
        .write(&mut v);
        v.extend_from_slice(p.payload);
        let q = RtpPacket::parse(&v).unwrap();
        assert_eq!(
            (q.sequence, q.timestamp, q.payload),
            (p.sequence, p.timestamp, p.payload)
        );
    }
    let _ = parse_compound(data);
});
