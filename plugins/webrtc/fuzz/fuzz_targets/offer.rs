#![no_main]
//! A viewer's offer, as hostile as it likes: our reading of it, then the
//! whole negotiation in webrtc-rs's core (SDP parsing, codec matching,
//! answer) against a stream with H.264 and PCMA, as the server does it.
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
    let setup = SETUP.get_or_init(FuzzSetup::new);
    let _ = peer::negotiate(1, &offer, &setup.tracks, &[], &setup.certificate, &setup.candidates);
});
