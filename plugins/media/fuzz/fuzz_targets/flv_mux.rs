#![no_main]
//! FLV muxer: arbitrary frames of an H.264 + AAC (or G.711) stream go in;
//! what comes out must demux back to the same frames and timestamps.
use camrouter_media::codec::{CodecInfo, CodecName};
use camrouter_media::flv::{FlvDemuxer, FlvEvent, FlvMuxer};
use camrouter_media::h264;
use libfuzzer_sys::fuzz_target;

const SPS: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let video = h264::codec_info(&SPS, Some(&PPS)).unwrap();
    let audio = if mode & 1 == 0 {
        let mut a = CodecInfo::new(CodecName::Aac, 16_000);
        a.channels = 1;
        a.extradata = vec![0x14, 0x08];
        a
    } else {
        let mut a = CodecInfo::new(CodecName::Pcma, 8000);
        a.channels = 1;
        a
    };
    let m = FlvMuxer::new(&[video, audio]).unwrap();
    let mut file = m.header();
    let mut sent = Vec::new();
    let mut dts: u32 = 0;
    // Each frame: track(1) step(1) cts(1) len(1) then len bytes.
    while let [track, step, cts, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let track = usize::from(track & 1);
        dts = dts.wrapping_add(u32::from(*step));
        let cts = i32::from(*cts as i8);
        let frame = if track == 0 {
            // One NAL unit, length-prefixed, never empty.
            let mut f = (n as u32 + 1).to_be_bytes().to_vec();
            f.push(0x41);
            f.extend_from_slice(payload);
            f
        } else {
            payload.to_vec()
        };
        if let Some(tag) = m.frame(track, dts, cts, false, &frame) {
            file.extend_from_slice(&tag);
            sent.push((track == 0, i64::from(dts), frame));
        }
    }
    let mut d = FlvDemuxer::new();
    d.push(&file);
    let mut got = Vec::new();
    while let Some(ev) = d.poll() {
        if let FlvEvent::Frame { video, dts_ms, data, .. } = ev.expect("own output demuxes") {
            got.push((video, dts_ms, data));
        }
    }
    assert!(!d.failed());
    assert_eq!(got, sent);
});
