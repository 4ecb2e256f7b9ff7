#![no_main]
//! RTP/JPEG depacketization; every image produced must parse back as a
//! JPEG with the packetizer's parser, and re-packetize.
use camrouter_media::depay::JpegDepacketizer;
use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::rfc2435::parse_jpeg;
use camrouter_media::RtpPacket;
use libfuzzer_sys::fuzz_target;

#[path = "common/records.rs"]
mod records;

fuzz_target!(|data: &[u8]| {
    let mut d = JpegDepacketizer::new();
    let info = camrouter_media::mjpeg::codec_info(0, 0);
    let mut pay = Packetizer::new(&info, 26, 1, 1400).unwrap();
    for p in &records::packets(data) {
        let _ = d.push(&RtpPacket::parse(p).unwrap());
        while let Some(f) = d.pop() {
            let parsed = parse_jpeg(&f.data).expect("rebuilt JPEG must parse");
            assert!(parsed.standard_huffman);
            let mut out = RtpPackets::new(Framing::Datagram);
            pay.packetize(&f.data, 0, &mut out)
                .expect("rebuilt JPEG must packetize");
        }
    }
});
