#![no_main]
//! Whole pipeline; the first byte picks the chunk size so that chunk
//! boundaries land everywhere.
use camrouter_media::{PipeDemuxer, PipeEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut d = PipeDemuxer::new();
    let mut tracks = None;
    let mut raw = None;
    let mut check = |ev| {
        if let Ok(PipeEvent::Tracks(t)) = &ev {
            assert!(tracks.is_none(), "Tracks emitted twice");
            assert!(raw.is_none(), "Tracks and raw video");
            tracks = Some(t.len());
        }
        if let Ok(PipeEvent::RawVideo(f)) = &ev {
            assert!(raw.is_none() && tracks.is_none(), "RawVideo twice or after Tracks");
            raw = Some(f.picture_len());
        }
        if let Ok(PipeEvent::Picture(p)) = &ev {
            assert_eq!(Some(p.len()), raw, "picture before RawVideo or of another size");
        }
        if let Ok(PipeEvent::Frame(f)) = &ev {
            let n = tracks.expect("frame before Tracks");
            assert!(f.track < n, "frame for unknown track");
        }
    };
    for c in rest.chunks(chunk) {
        d.push(c);
        while let Some(ev) = d.poll() {
            check(ev);
        }
    }
    d.finish();
    while let Some(ev) = d.poll() {
        check(ev);
    }
    let _ = d.format_name();
});
