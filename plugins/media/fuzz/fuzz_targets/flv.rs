#![no_main]
//! FLV demuxer on hostile bytes; the first byte picks the chunk size so that
//! chunk boundaries land everywhere. Frames come only after their track's
//! description, video frames are well-formed length-prefixed NAL units (AV1:
//! sized OBUs, a keyframe led by its sequence header), and a failed demuxer
//! stays silent.
use camrouter_media::annexb::avcc_units;
use camrouter_media::av1;
use camrouter_media::CodecName;
use camrouter_media::flv::{FlvDemuxer, FlvEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut d = FlvDemuxer::new();
    let mut configured = [false; 2];
    let mut video_codec = None;
    for c in rest.chunks(chunk) {
        let was_failed = d.failed();
        d.push(c);
        while let Some(ev) = d.poll() {
            assert!(!was_failed, "events after failure");
            match ev {
                Ok(FlvEvent::Config { video, info }) => {
                    configured[usize::from(!video)] = true;
                    if video {
                        video_codec = Some(info.name);
                    }
                }
                Ok(FlvEvent::Frame {
                    video,
                    data,
                    keyframe,
                    ..
                }) => {
                    assert!(configured[usize::from(!video)], "frame before its config");
                    if video && video_codec == Some(CodecName::Av1) {
                        assert!(av1::obus(&data).all(|o| o.is_ok_and(|o| o.header[0] & 2 != 0)));
                        if keyframe {
                            assert!(av1::find_sequence_header(&data).is_some());
                        }
                    } else if video {
                        assert!(avcc_units(&data).all(|n| n.is_ok()));
                    }
                }
                _ => {}
            }
        }
    }
});
