#![no_main]
//! mpeg4-generic (with assorted AU header layouts) and LATM.
use camrouter_media::depay::{AacHbrDepacketizer, AacHbrParams, LatmDepacketizer};
use camrouter_media::RtpPacket;
use libfuzzer_sys::fuzz_target;

#[path = "common/records.rs"]
mod records;

fuzz_target!(|data: &[u8]| {
    let Some((&layout, rest)) = data.split_first() else {
        return;
    };
    let packets = records::packets(rest);
    let params = AacHbrParams {
        size_length: [13, 6, 0, 16][usize::from(layout & 3)],
        index_length: (layout >> 2) & 3,
        index_delta_length: (layout >> 2) & 3,
        cts_delta_length: if layout & 0x10 != 0 { 5 } else { 0 },
        dts_delta_length: if layout & 0x20 != 0 { 3 } else { 0 },
        random_access_indication: layout & 0x40 != 0,
        stream_state_indication: if layout & 0x80 != 0 { 2 } else { 0 },
    };
    let mut hbr = AacHbrDepacketizer::new(params);
    let mut latm = LatmDepacketizer::new();
    for p in &packets {
        let p = RtpPacket::parse(p).unwrap();
        let _ = hbr.push(&p);
        let _ = latm.push(&p);
        while hbr.pop().is_some() {}
        while latm.pop().is_some() {}
    }
});
