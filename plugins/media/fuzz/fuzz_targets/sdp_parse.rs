#![no_main]
//! SDP parsing; anything parsed must survive control URL resolution and
//! depacketizer selection.
use camrouter_media::{Depacketizer, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = Session::parse(&text) {
        for m in &s.medias {
            let _ = s.control_url("rtsp://host/path", m);
            for f in &m.formats {
                let _ = Depacketizer::for_format(f);
            }
        }
    }
});
