#![no_main]
//! Fragmented MP4 demuxer on hostile bytes; the first byte picks the chunk
//! size so that chunk boundaries land everywhere. Tracks come once, before
//! any frame; frames name a track that exists; video frames are well-formed
//! length-prefixed NAL units (AV1: sized OBUs); a failed demuxer stays silent; the buffer
//! never grows past the largest box the demuxer reads.
use camrouter_media::annexb::avcc_units;
use camrouter_media::av1;
use camrouter_media::fmp4_demux::{Fmp4Demuxer, Fmp4Event, MAX_MDAT};
use camrouter_media::{CodecName, MediaKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut d = Fmp4Demuxer::new();
    let mut kinds: Option<Vec<(MediaKind, CodecName)>> = None;
    for c in rest.chunks(chunk) {
        let was_failed = d.failed();
        d.push(c);
        while let Some(ev) = d.poll() {
            assert!(!was_failed, "events after failure");
            match ev {
                Ok(Fmp4Event::Tracks(t)) => {
                    assert!(kinds.is_none(), "tracks twice");
                    assert!(!t.is_empty());
                    kinds = Some(t.iter().map(|i| (i.kind(), i.name)).collect());
                }
                Ok(Fmp4Event::Frame { track, data, .. }) => {
                    let kinds = kinds.as_ref().expect("frame before tracks");
                    let kind = kinds.get(track).expect("frame of an unknown track");
                    assert!(data.len() as u64 <= MAX_MDAT * 2);
                    if kind.1 == CodecName::Av1 {
                        assert!(av1::obus(&data).all(|o| o.is_ok_and(|o| o.header[0] & 2 != 0)));
                    } else if kind.0 == MediaKind::Video {
                        assert!(avcc_units(&data).all(|n| n.is_ok()));
                    }
                }
                Err(_) => {}
            }
        }
    }
});
