#![no_main]
use camrouter_media::h265;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sps) = h265::Sps::parse(data) {
        let _ = (sps.profile_name(), sps.level_string());
    }
    let _ = h265::first_slice_segment_in_pic(data);
});
