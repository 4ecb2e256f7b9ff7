#![no_main]
//! The assembler must give identical output for any chunking.
use camrouter_media::au::{AuAssembler, VideoCodec};
use libfuzzer_sys::fuzz_target;

fn run(codec: VideoCodec, data: &[u8], chunk: usize) -> Vec<(Vec<u8>, bool)> {
    let mut a = AuAssembler::new(codec);
    for c in data.chunks(chunk) {
        a.push(c);
    }
    a.flush();
    std::iter::from_fn(|| a.pop()).map(|au| (au.data, au.keyframe)).collect()
}

fuzz_target!(|data: &[u8]| {
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        let whole = run(codec, data, data.len().max(1));
        assert_eq!(whole, run(codec, data, 1));
        assert_eq!(whole, run(codec, data, 7));
    }
});
