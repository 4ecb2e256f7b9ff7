#![no_main]
//! H.264 and H.265 depacketization of arbitrary packet sequences; output
//! access units must be well-formed length-prefixed NAL units.
use camrouter_media::annexb::avcc_units;
use camrouter_media::depay::H26xDepacketizer;
use camrouter_media::{CodecName, RtpPacket};
use libfuzzer_sys::fuzz_target;

#[path = "common/records.rs"]
mod records;

fuzz_target!(|data: &[u8]| {
    let packets = records::packets(data);
    for codec in [CodecName::H264, CodecName::H265] {
        let mut d = H26xDepacketizer::new(codec).unwrap();
        for p in &packets {
            let _ = d.push(&RtpPacket::parse(p).unwrap());
            while let Some(f) = d.pop() {
                assert!(!f.data.is_empty());
                assert!(avcc_units(&f.data).all(|n| n.is_ok_and(|n| !n.is_empty())));
            }
        }
    }
});
