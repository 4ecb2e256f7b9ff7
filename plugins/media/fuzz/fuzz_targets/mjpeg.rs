#![no_main]
use camrouter_media::mjpeg::MjpegSplitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = MjpegSplitter::new();
    for c in data.chunks(5) {
        s.push(c);
    }
    s.finish();
    while let Some(img) = s.pop() {
        assert!(img.data.starts_with(&[0xFF, 0xD8]) && img.data.ends_with(&[0xFF, 0xD9]));
    }
});
