#![no_main]
//! ICE-TCP's RFC 4571 framing of what a stranger writes to the `listen`
//! port: the frames are the same however the stream is cut into reads
//! (the first byte picks the cuts), what is left is at most one partial
//! frame, and framing the frames again reads back to the same frames.
use bytes::BytesMut;
use camrouter_webrtc::fuzz::{frame, frames};
use libfuzzer_sys::fuzz_target;

fn leftover_is_partial(buf: &[u8]) {
    if buf.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        assert!(buf.len() < 2 + len, "a whole frame was left behind");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, stream)) = data.split_first() else {
        return;
    };
    let mut whole = BytesMut::from(stream);
    let all = frames(&mut whole);
    leftover_is_partial(&whole);
    assert!(all.iter().all(|f| !f.is_empty()));

    // The same stream in reads of 1..=16 bytes, sizes from `cuts`.
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut seed = u32::from(cuts) | 0x100;
    let mut at = 0;
    while at < stream.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (1 + (seed % 16) as usize).min(stream.len() - at);
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        got.extend(frames(&mut buf));
        leftover_is_partial(&buf);
    }
    assert_eq!(got, all);
    assert_eq!(buf, whole);

    let mut again = BytesMut::new();
    for f in &all {
        again.extend_from_slice(&frame(f).expect("a frame we read fits in one"));
    }
    let back = frames(&mut again);
    assert_eq!(back, all);
    assert!(again.is_empty());
});
