//! A hostile camera's H.264 through openh264, the scaler and the JPEG
//! encoder: an error or no picture is fine, a crash or a hang is not. The
//! input is Annex-B (start codes split it into NAL units, so the fuzzer can
//! build SPS/PPS/slice sequences); its first byte picks the output shape,
//! and one decoder sees every unit in turn, as a stream's transcoder does.
#![no_main]
use camrouter_mjpeg::decode::H264ToJpeg;
use camrouter_mjpeg::params::{Ascii, Output, Palette, Rotate, Shape};
use libfuzzer_sys::fuzz_target;

fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

fn split_start_codes(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            if i > start {
                parts.push(&data[start..i]);
            }
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < data.len() {
        parts.push(&data[start..]);
    }
    parts
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let shape = Shape {
        width: (pick & 1 != 0).then_some(1 + (pick as u32 >> 2)),
        height: (pick & 2 != 0).then_some(1 + (pick as u32 >> 3)),
        rotate: match pick >> 6 {
            0 => Rotate::None,
            1 => Rotate::Cw90,
            2 => Rotate::Cw180,
            _ => Rotate::Cw270,
        },
        // JPEG, and the other pictures the decoder renders (stream.y4m,
        // stream.ascii in colour).
        output: match rest.len() % 3 {
            0 => Output::Jpeg,
            1 => Output::Y4m,
            _ => Output::Ascii(Ascii {
                color: Palette::Xterm256,
                back: Palette::Ansi8,
                ..Ascii::default()
            }),
        },
    };
    let nals = split_start_codes(rest);
    // A snapshot: everything as one access unit.
    let mut snap = H264ToJpeg::snapshots();
    let _ = snap.decode(&[], &avcc(&nals), &shape, true);
    // A stream: one unit per NAL, the decoder kept across them.
    let mut stream = H264ToJpeg::stream();
    for nal in &nals {
        let _ = stream.decode(&[], &avcc(&[nal]), &shape, true);
    }
});
