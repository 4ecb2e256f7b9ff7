#![no_main]
//! Huffman re-encoding of arbitrary JPEGs: never a panic; whatever comes
//! out is a fixed point (it decodes with the standard tables to the same
//! symbols, which re-encode to the same bytes), and the RTP/JPEG
//! packetizer, which calls the re-encoder, accepts or refuses cleanly.
use camrouter_media::jpeg_huffman::to_standard_huffman;
use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::rfc2435::parse_jpeg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if to_standard_huffman(data, &mut out).is_ok() {
        let mut again = Vec::new();
        to_standard_huffman(&out, &mut again).expect("re-encoded JPEG must re-encode");
        assert_eq!(again, out, "re-encoding is not a fixed point");
        // What an RTP/JPEG receiver reads back from it: no DHT but ours.
        if let Ok(p) = parse_jpeg(&out) {
            assert!(p.scan.len() < out.len());
        }
    }
    let info = camrouter_media::mjpeg::codec_info(0, 0);
    let mut pay = Packetizer::new(&info, 26, 1, 1400).unwrap();
    let mut rtp = RtpPackets::new(Framing::Datagram);
    let _ = pay.packetize(data, 0, &mut rtp);
});
