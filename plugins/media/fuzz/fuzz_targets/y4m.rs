#![no_main]
//! Hostile bytes to `Y4mDemuxer` in chunks whose size the first byte picks:
//! the format once and before any picture, every picture exactly the
//! format's size, silence after an error.
use camrouter_media::y4m::{Y4mDemuxer, Y4mEvent, MAX_PIXELS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut d = Y4mDemuxer::new();
    let mut len = None;
    let mut failed = false;
    let mut check = |d: &mut Y4mDemuxer| {
        while let Some(ev) = d.poll() {
            assert!(!failed, "event after an error");
            match ev {
                Ok(Y4mEvent::Format(f)) => {
                    assert!(len.is_none(), "format twice");
                    assert!(u64::from(f.width) * u64::from(f.height) <= MAX_PIXELS);
                    assert!(f.frame_duration(90_000) >= 1);
                    len = Some(f.picture_len());
                }
                Ok(Y4mEvent::Picture(p)) => {
                    assert_eq!(Some(p.len()), len, "picture before format or of another size")
                }
                Err(_) => failed = true,
            }
        }
    };
    for c in rest.chunks(chunk) {
        d.push(c);
        check(&mut d);
    }
    d.finish();
    check(&mut d);
});
