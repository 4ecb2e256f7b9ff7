#![no_main]
//! A viewer's offer, as hostile as it likes: our reading of it, then the
//! whole negotiation in webrtc-rs's core (SDP parsing, codec matching,
//! answer) against a stream with H.264 (then H.265) and PCMA, as the server
//! does it.
use std::sync::OnceLock;

use camrouter_webrtc::offer::Offer;
use camrouter_webrtc::peer::{self, FuzzSetup};
use libfuzzer_sys::fuzz_target;

static SETUP: OnceLock<FuzzSetup> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = Offer::parse(&text) else {
        return;
    };
    if offer.viewer_query().is_err() {
        return;
    }
    // Read as a camera's answer too: the talk-back format of a webrtc: source.
    let _ = offer.talk_format();
    let setup = SETUP.get_or_init(FuzzSetup::new);
    let _ = peer::negotiate(1, &offer, &setup.tracks, &[], &setup.certificate, &setup.candidates);
    // The same offer against an H.265 camera.
    let mut h265 = setup.tracks.clone();
    h265[0].codec = "H265";
    h265[0].fmtp = String::new();
    let _ = peer::negotiate(2, &offer, &h265, &[], &setup.certificate, &setup.candidates);
});
