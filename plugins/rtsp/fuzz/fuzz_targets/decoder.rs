//! The decoder must not panic, must give the same items and errors whatever the chunking,
//! and must not hold more than the limits allow.
#![no_main]
use camrouter_rtsp::proto::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_header: 512,
    max_body: 1024,
};

fn decode(data: &[u8], sizes: &[u8]) -> Vec<String> {
    let mut dec = Decoder::with_limits(LIMITS);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if sizes.is_empty() {
            rest.len()
        } else {
            (sizes[i % sizes.len()] as usize % 17 + 1).min(rest.len())
        };
        i += 1;
        dec.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(r) = dec.poll() {
            out.push(format!("{r:?}"));
        }
        // Nothing beyond one head + one body + one frame + the pushed chunk is held.
        assert!(dec.buffered() <= LIMITS.max_header + LIMITS.max_body + 65535 + 4 + 17);
    }
    out.extend(
        dec.finish()
            .into_iter()
            .map(|e| format!("{:?}", Err::<(), _>(e))),
    );
    out
}

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    let k = (input[0] as usize % 8).min(input.len() - 1);
    let (sizes, data) = input[1..].split_at(k);
    let whole = decode(data, &[]);
    let chunked = decode(data, sizes);
    assert_eq!(whole, chunked);
    let ones = decode(data, &[0]);
    assert_eq!(whole, ones);
});
