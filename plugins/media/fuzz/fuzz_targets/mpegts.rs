#![no_main]
use camrouter_media::mpegts::{parse_pes_header, TsDemuxer, TsEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_pes_header(data);
    let mut d = TsDemuxer::new();
    for c in data.chunks(61) {
        d.push(c);
    }
    d.finish();
    let mut streams = 0;
    while let Some(ev) = d.pop() {
        match ev {
            Ok(TsEvent::Streams(s)) => streams = s.len(),
            Ok(TsEvent::Pes(p)) => assert!(p.stream < streams),
            Err(_) => {}
        }
    }
});
