#![no_main]
use camrouter_media::h264;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sps) = h264::Sps::parse(data) {
        let _ = (sps.profile_name(), sps.level_string(), sps.profile_level_id());
    }
    let _ = h264::first_mb_in_slice(data);
});
