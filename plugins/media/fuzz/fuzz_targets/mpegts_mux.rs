#![no_main]
//! The MPEG-TS muxer over arbitrary codec infos and frames: it refuses what it
//! cannot carry with an error and never panics, and what it writes reads back
//! through the crate's demuxer as the same frames: whole packets, no
//! continuity errors, one PES per frame with the frame's bytes (video as
//! Annex-B after the muxer's AUD, AAC after an ADTS header) and its 90 kHz
//! timestamps.
//!
//! Input: `ntracks` then per track `codec extradata_len extradata[len]
//! rate_sel`, then frames as `ctrl len_hi len_lo data[len]` (ctrl: bit 0
//! track, bit 1 keyframe, bits 2..7 dts step).
use camrouter_media::adts::AdtsSplitter;
use camrouter_media::annexb::avcc_units;
use camrouter_media::fmp4::Sample;
use camrouter_media::mpegts::{TsDemuxer, TsEvent, PACKET_SIZE};
use camrouter_media::mpegts_mux::TsMuxer;
use camrouter_media::{CodecInfo, CodecName};
use libfuzzer_sys::fuzz_target;

const CODECS: [CodecName; 4] = [CodecName::H264, CodecName::H265, CodecName::Aac, CodecName::Opus];
const RATES: [u32; 4] = [90000, 48000, 8000, 1];

fuzz_target!(|data: &[u8]| {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    let mut infos = Vec::new();
    for _ in 0..(n % 3) {
        let [codec, len, tail @ ..] = rest else {
            return;
        };
        let len = usize::from(*len).min(tail.len());
        let (extra, tail) = tail.split_at(len);
        let [rate, tail @ ..] = tail else {
            return;
        };
        let name = CODECS[usize::from(*codec) % CODECS.len()];
        let mut info = CodecInfo::new(name, RATES[usize::from(*rate) % RATES.len()]);
        info.extradata = extra.to_vec();
        infos.push(info);
        rest = tail;
    }
    let Ok(mut mux) = TsMuxer::new(&infos) else {
        return;
    };
    let mut ts = Vec::new();
    // Per frame written: (track, the bytes the demuxer must give back).
    let mut sent: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut dts = 0i64;
    while let [ctrl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let track = usize::from(ctrl & 1) % infos.len();
        dts += i64::from(ctrl >> 2);
        let sample = Sample {
            dts,
            pts: dts,
            keyframe: ctrl & 2 != 0,
            arrival_us: 0,
            data: frame,
        };
        let before = ts.len();
        if mux.write(track, &sample, &mut ts).is_err() {
            assert_eq!(ts.len(), before, "an error wrote bytes");
            continue;
        }
        sent.push((track, frame.to_vec()));
    }
    assert_eq!(ts.len() % PACKET_SIZE, 0);
    let mut d = TsDemuxer::new();
    d.push(&ts);
    d.finish();
    assert_eq!(d.continuity_errors(), 0);
    assert_eq!(d.resyncs(), 0);
    let mut got = Vec::new();
    while let Some(ev) = d.pop() {
        match ev.expect("the muxer's output parses") {
            TsEvent::Streams(s) => assert_eq!(s.len(), infos.len()),
            TsEvent::Pes(p) => got.push(p),
        }
    }
    assert_eq!(got.len(), sent.len());
    for (p, (track, frame)) in got.iter().zip(&sent) {
        assert_eq!(p.stream, *track);
        assert!(p.pts.is_some());
        match infos[*track].name {
            CodecName::Aac => {
                let mut s = AdtsSplitter::new();
                s.push(&p.data);
                assert_eq!(&s.pop().expect("one ADTS frame").data, frame);
            }
            _ => {
                // The frame's own NAL units come last, in order.
                let nals: Vec<&[u8]> = avcc_units(frame)
                    .map(|n| n.unwrap())
                    .filter(|n| !n.is_empty())
                    .collect();
                let mut tail = Vec::new();
                for nal in nals.iter().filter(|n| !is_aud(infos[*track].name, n)) {
                    tail.extend_from_slice(&[0, 0, 0, 1]);
                    tail.extend_from_slice(nal);
                }
                assert!(p.data.ends_with(&tail));
            }
        }
    }
});

fn is_aud(name: CodecName, nal: &[u8]) -> bool {
    match name {
        CodecName::H264 => nal[0] & 0x1F == 9,
        _ => (nal[0] >> 1) & 0x3F == 35,
    }
}
