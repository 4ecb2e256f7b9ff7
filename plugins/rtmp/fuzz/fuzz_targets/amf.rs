//! AMF0 decoding on arbitrary bytes; what decodes re-encodes and decodes to
//! the same values.
#![no_main]
use camrouter_rtmp::amf::{decode_all, encode_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode_all(data) {
        let again = decode_all(&encode_all(&v)).expect("re-encoded AMF decodes");
        // NaN payloads compare unequal; compare the encodings instead.
        assert_eq!(encode_all(&again), encode_all(&v));
    }
});
