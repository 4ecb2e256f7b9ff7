//! Query strings from any HTTP client: parsed or refused, never a panic.
#![no_main]
use camrouter_mjpeg::params::{go_duration, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = go_duration(s);
    let _ = Params::parse(s);
});
