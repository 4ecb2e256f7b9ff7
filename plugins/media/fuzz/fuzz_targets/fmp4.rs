#![no_main]
//! The fMP4 writer over arbitrary codec infos and frames: it must refuse what
//! it cannot write with an error and never panic, and every box it writes
//! must have a size that matches its content, also after parameter sets
//! in band replace a track's description.
//!
//! Input: `ntracks` then per track `codec extradata_len extradata[len]
//! width_hi width_lo channels rate_sel`, then frames as `ctrl len_hi len_lo
//! data[len]` (ctrl: bits 0..1 track, bit 2 keyframe, bits 3..7 dts step;
//! a step of 31 goes backwards).
use camrouter_media::flac;
use camrouter_media::fmp4::{parameter_sets_from_frame, Fmp4Writer, Sample};
use camrouter_media::{CodecInfo, CodecName};
use libfuzzer_sys::fuzz_target;

const CODECS: [CodecName; 8] = [
    CodecName::H264,
    CodecName::H265,
    CodecName::Aac,
    CodecName::Opus,
    CodecName::Pcma,
    CodecName::Pcmu,
    CodecName::PcmS16le,
    CodecName::G722,
];
const RATES: [u32; 5] = [90000, 48000, 44100, 8000, 1];

/// Walks the boxes of `data` and checks that sizes add up exactly.
fn check_boxes(data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        assert!(rest.len() >= 8, "trailing bytes");
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(size >= 8 && size <= rest.len(), "bad box size");
        rest = &rest[size..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    let mut infos = Vec::new();
    for _ in 0..(n % 4) {
        let [codec, len, tail @ ..] = rest else {
            return;
        };
        let len = usize::from(*len).min(tail.len());
        let (extra, tail) = tail.split_at(len);
        let [wh, wl, ch, rate, tail @ ..] = tail else {
            return;
        };
        let name = CODECS[usize::from(*codec) % CODECS.len()];
        let mut info = CodecInfo::new(name, RATES[usize::from(*rate) % RATES.len()]);
        info.extradata = extra.to_vec();
        info.width = u32::from(u16::from_be_bytes([*wh, *wl]));
        info.height = info.width / 2;
        info.channels = u16::from(*ch);
        infos.push(info);
        rest = tail;
    }
    let mut writer = Fmp4Writer::new(&infos);
    if let Ok(w) = &mut writer {
        // Bits 2..7 of the count byte: rotation (some invalid) and aspect.
        let _ = w.set_rotation(u16::from((n >> 2) & 7) * 45);
        let _ = w.set_pixel_aspect(u32::from(n >> 5), 3);
        check_boxes(&w.init_segment());
        let _ = w.content_type();
    }
    let mut dts = [0i64; 4];
    while let [ctrl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let track = usize::from(ctrl & 3);
        let step = i64::from(ctrl >> 3);
        dts[track] += if step == 31 { -100_000 } else { step * 1000 };
        for name in [CodecName::H264, CodecName::H265] {
            if let Some(sets) = parameter_sets_from_frame(name, frame) {
                let mut info = CodecInfo::new(name, 90000);
                info.extradata = sets;
                if let Ok(w) = Fmp4Writer::new(&[info]) {
                    check_boxes(&w.init_segment());
                }
            }
        }
        if let Ok(w) = &mut writer {
            if w.update_parameter_sets(track, frame) {
                check_boxes(&w.init_segment());
            }
            let s = Sample {
                dts: dts[track],
                pts: dts[track] + i64::from(*hi),
                keyframe: ctrl & 4 != 0,
                arrival_us: u64::from(*lo) * 10_000,
                data: frame,
            };
            match w.fragment(track, &s) {
                Ok(f) => check_boxes(&f),
                // Only a missing track or a PCM frame FLAC cannot hold
                // (empty, too long) is refused.
                Err(_) => assert!(track >= infos.len() || flac::supports(infos[track].name)),
            }
        }
    }
});
