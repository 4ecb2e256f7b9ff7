#![no_main]
use camrouter_media::adts::{write_adts_header, AdtsHeader, AdtsSplitter, AudioSpecificConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = AdtsHeader::parse(data) {
        let _ = h.codec_info();
    }
    if let Ok(asc) = AudioSpecificConfig::parse(data) {
        let hdr = write_adts_header(&asc, data.len() % 9000);
        if let Ok(hdr) = hdr {
            let back = AdtsHeader::parse(&hdr).expect("own header parses");
            assert_eq!(back.audio_specific_config(), asc);
        }
    }
    let mut s = AdtsSplitter::new();
    for c in data.chunks(13) {
        s.push(c);
    }
    s.finish();
    while s.pop().is_some() {}
});
