//! What a device or a stranger on the LAN sends us: SOAP answers through
//! every reader, and WS-Discovery datagrams. An error or nothing, never a
//! panic or a hang; the tree never holds more text than the input.
#![no_main]
use camrouter_onvif::{discovery, soap, xml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = soap::read(data) {
        let _ = soap::media_xaddr_from_capabilities(&doc);
        let _ = soap::media_xaddr_from_services(&doc);
        let profiles = soap::profiles(&doc);
        let _ = soap::pick_profile(&profiles, "1");
        for p in &profiles {
            let _ = p.describe();
        }
        let _ = soap::media_uri(&doc, "GetStreamUri");
        let _ = soap::snapshot_capable(&doc);
        let _ = soap::device_name(&doc);
    }
    if let Ok(doc) = xml::parse(data) {
        fn text(e: &xml::Element) -> usize {
            e.text.len() + e.children.iter().map(text).sum::<usize>()
        }
        // Entities only shrink; lossy UTF-8 at most triples a byte.
        assert!(text(&doc) <= data.len() * 3);
    }
    let _ = discovery::matches(data, "192.0.2.1".parse().unwrap());
});
