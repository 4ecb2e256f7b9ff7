#![no_main]
use camrouter_media::wav::{WavEvent, WavParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = WavParser::new();
    for c in data.chunks(17) {
        p.push(c);
    }
    p.finish();
    let mut align = None;
    while let Some(ev) = p.pop() {
        match ev {
            Ok(WavEvent::Format(f)) => align = Some(usize::from(f.block_align)),
            Ok(WavEvent::Samples(s)) => {
                let a = align.expect("samples before format");
                assert_eq!(s.len() % a, 0);
            }
            Err(_) => {}
        }
    }
});
