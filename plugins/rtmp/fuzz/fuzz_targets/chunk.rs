//! The chunk reader on arbitrary bytes, split where the input says: never a
//! panic, and a reassembled message never exceeds the limit.
#![no_main]
use camrouter_rtmp::chunk::{ChunkReader, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut r = ChunkReader::new();
    for piece in rest.chunks(step) {
        r.push(piece);
        loop {
            match r.poll() {
                Ok(Some(m)) => assert!(m.payload.len() <= MAX_MESSAGE),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
