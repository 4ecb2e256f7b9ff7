//! Header parsers must not panic; a parsed Transport must survive writing and re-parsing.
#![no_main]
use camrouter_rtsp::proto::transport::{
    parse_public, parse_rtp_info, parse_transports, write_rtp_info, Range, SessionHeader, Transport,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(ts) = parse_transports(&s) {
        for t in ts {
            let written = t.to_string();
            let back = Transport::parse(&written).expect("re-parse");
            assert_eq!(back, t, "{written}");
        }
    }
    if let Ok(h) = SessionHeader::parse(&s) {
        let back = SessionHeader::parse(&h.to_string()).expect("session re-parse");
        assert_eq!(back, h);
    }
    let infos = parse_rtp_info(&s);
    let _ = parse_rtp_info(&write_rtp_info(&infos));
    if let Ok(r) = Range::parse(&s) {
        let _ = Range::parse(&r.to_string());
    }
    let _ = parse_public(&s);
});
