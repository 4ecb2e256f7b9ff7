//! Packetize real fixture frames, depacketize them again, and compare; plus
//! loss, wrap-around and camera-quirk scenarios built from the same frames.

use camrouter_media::depay::{
    AacHbrDepacketizer, AacHbrParams, H26xDepacketizer, JpegDepacketizer, LatmDepacketizer,
    PassthroughDepacketizer,
};
use camrouter_media::jpeg_huffman::to_standard_huffman;
use camrouter_media::mjpeg::MjpegSplitter;
use camrouter_media::pay::{Framing, Packetizer, RtpPackets};
use camrouter_media::rfc2435::parse_jpeg;
use camrouter_media::{
    CodecInfo, CodecName, Depacketizer, Error, Frame, PipeDemuxer, PipeEvent, RtpFrame, RtpHeader,
    RtpPacket,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn demux(name: &str) -> (CodecInfo, Vec<Frame>) {
    let mut d = PipeDemuxer::new();
    d.push(&load(name));
    d.finish();
    let (mut info, mut frames) = (None, Vec::new());
    while let Some(ev) = d.poll() {
        match ev.unwrap() {
            PipeEvent::Tracks(t) => info = Some(t[0].clone()),
            PipeEvent::Frame(f) => frames.push(f),
            other => panic!("{name}: {other:?}"),
        }
    }
    (info.unwrap(), frames)
}

/// Packetize all frames (timestamps `i * step`) into owned packets.
fn packetize(p: &mut Packetizer, frames: &[&[u8]], step: u32) -> Vec<Vec<u8>> {
    let mut out = RtpPackets::new(Framing::Datagram);
    for (i, f) in frames.iter().enumerate() {
        p.packetize(f, i as u32 * step, &mut out).unwrap();
    }
    out.iter().map(<[u8]>::to_vec).collect()
}

trait Depay {
    fn push(&mut self, p: &RtpPacket) -> Result<(), Error>;
    fn pop(&mut self) -> Option<RtpFrame>;
}
macro_rules! depay {
    ($($t:ty),*) => {$(
        impl Depay for $t {
            fn push(&mut self, p: &RtpPacket) -> Result<(), Error> { <$t>::push(self, p) }
            fn pop(&mut self) -> Option<RtpFrame> { <$t>::pop(self) }
        }
    )*};
}
depay!(
    H26xDepacketizer,
    JpegDepacketizer,
    AacHbrDepacketizer,
    LatmDepacketizer,
    PassthroughDepacketizer,
    Depacketizer
);

fn depacketize(d: &mut dyn Depay, packets: &[Vec<u8>]) -> Vec<RtpFrame> {
    let mut out = Vec::new();
    for p in packets {
        d.push(&RtpPacket::parse(p).unwrap()).unwrap();
        while let Some(f) = d.pop() {
            out.push(f);
        }
    }
    out
}

fn h26x_roundtrip(file: &str, codec: CodecName, mtu: usize) {
    let (info, frames) = demux(file);
    assert_eq!(info.name, codec);
    let data: Vec<&[u8]> = frames.iter().map(|f| &f.data[..]).collect();
    let mut p = Packetizer::new(&info, 96, 7, mtu).unwrap();
    p.set_sequence(65530); // wraps during the test
    let packets = packetize(&mut p, &data, 3600);
    assert!(
        packets.len() > frames.len() * 2,
        "{file}: expected fragmentation"
    );
    assert!(packets.iter().all(|p| p.len() <= mtu));
    let mut d = H26xDepacketizer::new(codec).unwrap();
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.len(), frames.len(), "{file}");
    for (i, (o, f)) in out.iter().zip(&frames).enumerate() {
        assert_eq!(o.data, f.data, "{file} frame {i}");
        assert_eq!(o.keyframe, f.keyframe, "{file} frame {i}");
        assert_eq!(o.timestamp, i as u32 * 3600);
        assert!(!o.discontinuity);
    }
    assert_eq!(d.lost_packets(), 0);
}

#[test]
fn h264_roundtrip() {
    h26x_roundtrip("h264_640x360.h264", CodecName::H264, 1200);
    h26x_roundtrip("h264_1920x1080.h264", CodecName::H264, 400);
}

#[test]
fn h265_roundtrip() {
    h26x_roundtrip("hevc_320x240.hevc", CodecName::H265, 1200);
    h26x_roundtrip("hevc_1920x1080.hevc", CodecName::H265, 500);
}

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    RtpHeader {
        marker,
        payload_type: 96,
        sequence: seq,
        timestamp: ts,
        ssrc: 1,
    }
    .write(&mut v);
    v.extend_from_slice(payload);
    v
}

fn h264_packets(mtu: usize) -> (Vec<Frame>, Vec<Vec<u8>>, Vec<usize>) {
    let (info, frames) = demux("h264_640x360.h264");
    let mut p = Packetizer::new(&info, 96, 7, mtu).unwrap();
    let mut packets = Vec::new();
    let mut firsts = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        firsts.push(packets.len());
        packets.extend(packetize(&mut p, &[&f.data], 0).into_iter().map(|mut pk| {
            pk[4..8].copy_from_slice(&(i as u32 * 3600).to_be_bytes());
            pk
        }));
    }
    (frames, packets, firsts)
}

#[test]
fn h264_loss_drops_only_the_damaged_access_unit() {
    let (frames, mut packets, firsts) = h264_packets(1000);
    // Lose a packet in the middle of frame 2 (an FU middle).
    let victim = firsts[2] + 1;
    assert!(victim < firsts[3]);
    packets.remove(victim);
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    let out = depacketize(&mut d, &packets);
    assert_eq!(d.lost_packets(), 1);
    assert_eq!(out.len(), frames.len() - 1);
    assert_eq!(out[1].data, frames[1].data);
    assert_eq!(out[2].data, frames[3].data);
    assert!(out[2].discontinuity);
    assert!(!out[1].discontinuity && !out[3].discontinuity);

    // Lose the marker packet of frame 4: the next packet starts a new
    // access unit (first_mb_in_slice = 0), so frame 5 survives.
    let (frames, mut packets, firsts) = h264_packets(1000);
    packets.remove(firsts[5] - 1);
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.len(), frames.len() - 1);
    assert_eq!(out[4].data, frames[5].data);
    assert!(out[4].discontinuity);
}

#[test]
fn h264_without_marker_bits() {
    let (frames, mut packets, _) = h264_packets(1200);
    for p in &mut packets {
        p[1] &= 0x7F;
    }
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    let out = depacketize(&mut d, &packets);
    // Each AU is emitted when the next timestamp arrives; the last waits.
    assert_eq!(out.len(), frames.len() - 1);
    for (o, f) in out.iter().zip(&frames) {
        assert_eq!(o.data, f.data);
    }
}

#[test]
fn h264_parameter_sets_from_sdp_and_stap_a() {
    let (info, frames) = demux("h264_640x360.h264");
    // Strip SPS/PPS from the first keyframe; the depacketizer puts them back.
    let idr_only: Vec<u8> = {
        let mut v = Vec::new();
        for nal in camrouter_media::annexb::avcc_units(&frames[0].data) {
            let nal = nal.unwrap();
            if !matches!(nal[0] & 0x1F, 7 | 8) {
                camrouter_media::annexb::push_length_prefixed(&mut v, nal);
            }
        }
        v
    };
    let mut p = Packetizer::new(&info, 96, 7, 1200).unwrap();
    let packets = packetize(&mut p, &[&idr_only], 0);
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    d.set_parameter_sets(&info.extradata);
    let out = depacketize(&mut d, &packets);
    assert_eq!(out[0].data, frames[0].data);
    assert!(out[0].keyframe);

    // STAP-A with SPS + PPS, then the IDR: same result.
    let mut sps_pps = camrouter_media::annexb::avcc_units(&info.extradata).map(Result::unwrap);
    let (sps, pps) = (sps_pps.next().unwrap(), sps_pps.next().unwrap());
    let mut stap = vec![24u8];
    for n in [sps, pps] {
        stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
        stap.extend_from_slice(n);
    }
    let mut all = vec![rtp(0, 0, false, &stap)];
    for (i, mut pk) in packets.into_iter().enumerate() {
        pk[2..4].copy_from_slice(&(i as u16 + 1).to_be_bytes());
        all.push(pk);
    }
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    let out = depacketize(&mut d, &all);
    assert_eq!(out[0].data, frames[0].data);
    assert_eq!(d.sps(), Some(sps));
}

#[test]
fn h264_garbage_never_panics() {
    let mut d = H26xDepacketizer::new(CodecName::H264).unwrap();
    let payloads: [&[u8]; 9] = [
        &[24, 0],
        &[24, 0, 9, 1],
        &[28],
        &[28, 0x45, 1],
        &[28, 0x85],
        &[25, 1, 2],
        &[0],
        &[24, 0, 0, 0, 0],
        &[],
    ];
    for (i, p) in payloads.iter().enumerate() {
        let _ = d.push(&RtpPacket::parse(&rtp(i as u16, i as u32, i % 2 == 0, p)).unwrap());
    }
    let mut d = H26xDepacketizer::new(CodecName::H265).unwrap();
    for (i, p) in [&[0x62u8][..], &[0x62, 1], &[0x60, 1, 0, 9], &[0x64, 1, 0]]
        .iter()
        .enumerate()
    {
        let _ = d.push(&RtpPacket::parse(&rtp(i as u16, 0, true, p)).unwrap());
    }
    assert!(H26xDepacketizer::new(CodecName::Aac).is_err());
}

#[test]
fn aac_roundtrip_and_multi_au_packets() {
    let (info, frames) = demux("aac_44100_stereo.aac");
    let data: Vec<&[u8]> = frames.iter().map(|f| &f.data[..]).collect();
    let mut p = Packetizer::new(&info, 97, 9, 1400).unwrap();
    let packets = packetize(&mut p, &data, 1024);
    assert_eq!(packets.len(), frames.len());
    let mut d = AacHbrDepacketizer::new(AacHbrParams::default());
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.len(), frames.len());
    for (i, (o, f)) in out.iter().zip(&frames).enumerate() {
        assert_eq!(o.data, f.data);
        assert_eq!(o.timestamp, i as u32 * 1024);
    }

    // Small MTU: large AUs are fragmented and reassembled.
    let big: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 1000 + i]).collect();
    let big: Vec<&[u8]> = big.iter().map(|b| &b[..]).collect();
    let mut p = Packetizer::new(&info, 97, 9, 300).unwrap();
    let packets = packetize(&mut p, &big, 1024);
    assert_eq!(packets.len(), 12);
    let mut d = AacHbrDepacketizer::new(AacHbrParams::default());
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.iter().map(|f| &f.data[..]).collect::<Vec<_>>(), big);
    // Losing a fragment drops that AU only.
    let mut lossy = packets.clone();
    lossy.remove(5);
    let out = depacketize(
        &mut AacHbrDepacketizer::new(AacHbrParams::default()),
        &lossy,
    );
    assert_eq!(out.len(), 2);
    assert!(out[1].discontinuity);
    assert_eq!(out[1].data, big[2]);

    // Three AUs in one packet (as cameras send at low bitrates).
    let mut payload = vec![0, 48];
    for f in &data[..3] {
        payload.extend_from_slice(&((f.len() as u16) << 3).to_be_bytes());
    }
    for f in &data[..3] {
        payload.extend_from_slice(f);
    }
    let mut d = AacHbrDepacketizer::new(AacHbrParams::default());
    let out = depacketize(&mut d, &[rtp(1, 5000, true, &payload)]);
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].data, data[2]);
    assert_eq!(out[2].timestamp, 5000 + 2048);
    // Truncated AU data is an error, not a panic.
    assert!(d
        .push(&RtpPacket::parse(&rtp(2, 0, true, &payload[..20])).unwrap())
        .is_err());
}

#[test]
fn latm_depacketize() {
    let au1 = vec![0x21; 300];
    let au2 = vec![0x22; 10];
    let mut payload = vec![255, 45];
    payload.extend_from_slice(&au1);
    payload.push(10);
    payload.extend_from_slice(&au2);
    // Fragmented over two packets, marker on the second.
    let packets = [
        rtp(10, 0, false, &payload[..100]),
        rtp(11, 0, true, &payload[100..]),
        rtp(12, 2048, true, &[2, 7, 7]),
    ];
    let mut d = LatmDepacketizer::new();
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].data, au1);
    assert_eq!(out[1].data, au2);
    assert_eq!(out[1].timestamp, 1024);
    assert_eq!(out[2].data, [7, 7]);
    assert!(d
        .push(&RtpPacket::parse(&rtp(13, 0, true, &[255, 255])).unwrap())
        .is_err());
}

fn jpeg_images(name: &str) -> Vec<Vec<u8>> {
    let mut s = MjpegSplitter::new();
    s.push(&load(name));
    s.finish();
    std::iter::from_fn(|| s.pop()).map(|i| i.data).collect()
}

#[test]
fn mjpeg_roundtrip() {
    for (file, standard) in [
        ("mjpeg_320x240_stdhuff.mjpeg", true),
        ("mjpeg_320x240.mjpeg", false),
    ] {
        let images = jpeg_images(file);
        assert!(images.len() >= 3);
        let info = camrouter_media::mjpeg::codec_info(320, 240);
        // Default: non-standard tables are re-encoded; with
        // allow_nonstandard_huffman the scan goes out as it is.
        for raw in [false, true] {
            let mut p = Packetizer::new(&info, 26, 3, 1000).unwrap();
            p.allow_nonstandard_huffman(raw);
            let refs: Vec<&[u8]> = images.iter().map(|i| &i[..]).collect();
            let packets = packetize(&mut p, &refs, 9000);
            let mut d = JpegDepacketizer::new();
            let out = depacketize(&mut d, &packets);
            assert_eq!(out.len(), images.len());
            for (o, img) in out.iter().zip(&images) {
                let (a, b) = (parse_jpeg(&o.data).unwrap(), parse_jpeg(img).unwrap());
                assert_eq!(b.standard_huffman, standard, "{file}");
                if standard || raw {
                    assert_eq!(a.scan, b.scan, "{file}");
                } else {
                    let mut std = Vec::new();
                    to_standard_huffman(img, &mut std).unwrap();
                    assert_eq!(a.scan, parse_jpeg(&std).unwrap().scan, "{file}");
                    assert_ne!(a.scan, b.scan, "{file}");
                }
                assert_eq!(a.params, b.params, "{file}");
                assert!(a.standard_huffman);
                assert_eq!(
                    camrouter_media::mjpeg::dimensions(&o.data),
                    Some((320, 240))
                );
                // Rebuilding is a fixed point.
                let again = depacketize(
                    &mut JpegDepacketizer::new(),
                    &packetize(&mut p, &[&o.data], 0),
                );
                assert_eq!(again[0].data, o.data);
            }
        }
    }
}

#[test]
fn jpeg_optimal_huffman_is_reencoded() {
    let info = camrouter_media::mjpeg::codec_info(320, 240);
    let mut p = Packetizer::new(&info, 26, 3, 1000).unwrap();
    // ffmpeg wrote the same coefficients with its default tables: what the
    // receiver rebuilds is exactly that scan.
    let opt = load("jpeg_opt_420.jpg");
    let out = depacketize(&mut JpegDepacketizer::new(), &packetize(&mut p, &[&opt], 0));
    let std = load("jpeg_std_420.jpg");
    let (a, b) = (parse_jpeg(&out[0].data).unwrap(), parse_jpeg(&std).unwrap());
    assert_eq!(a.scan, b.scan);
    assert_eq!(a.params, b.params);
    // Restart intervals survive (type 65).
    let rst = load("jpeg_opt_420_100x74_rst.jpg");
    let packets = packetize(&mut p, &[&rst], 0);
    assert_eq!(RtpPacket::parse(&packets[0]).unwrap().payload[4], 65);
    let out = depacketize(&mut JpegDepacketizer::new(), &packets);
    let a = parse_jpeg(&out[0].data).unwrap();
    let mut again = Vec::new();
    to_standard_huffman(&rst, &mut again).unwrap();
    assert_eq!(a.scan, parse_jpeg(&again).unwrap().scan);
    assert_eq!(a.params.restart_interval, 2);
    // What RFC 2435 has no type for is still refused, with a reason.
    let mut out = RtpPackets::new(Framing::Datagram);
    for f in ["jpeg_opt_422.jpg", "jpeg_opt_444.jpg", "jpeg_opt_gray.jpg"] {
        let e = p.packetize(&load(f), 0, &mut out).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{f}: {e}");
    }
    assert!(out.is_empty());
}

#[test]
fn jpeg_default_tables_and_loss() {
    // Q=80 type 1 image in two packets, tables from Q.
    let hdr = |off: u32| {
        let o = off.to_be_bytes();
        vec![0, o[1], o[2], o[3], 1, 80, 40, 30]
    };
    let mut p1 = hdr(0);
    p1.extend_from_slice(&[1, 2, 3]);
    let mut p2 = hdr(3);
    p2.extend_from_slice(&[4, 5]);
    let mut d = JpegDepacketizer::new();
    let out = depacketize(&mut d, &[rtp(1, 0, false, &p1), rtp(2, 0, true, &p2)]);
    assert_eq!(out.len(), 1);
    let parsed = parse_jpeg(&out[0].data).unwrap();
    assert_eq!(parsed.scan, &[1, 2, 3, 4, 5]);
    assert_eq!(
        parsed.params.qtables,
        camrouter_media::rfc2435::default_qtables(80)
    );
    // Losing the first packet drops the image.
    let out = depacketize(&mut d, &[rtp(4, 9, true, &p2), rtp(5, 18, false, &p1)]);
    assert!(out.is_empty());
    let out = depacketize(&mut d, &[rtp(6, 18, true, &p2)]);
    assert!(out[0].discontinuity);
    // Q=255 with a table length that is not whole tables: an error.
    let mut bad = vec![0, 0, 0, 0, 1, 255, 40, 30, 0, 0, 0, 10];
    bad.extend_from_slice(&[9; 20]);
    assert!(d
        .push(&RtpPacket::parse(&rtp(7, 27, true, &bad)).unwrap())
        .is_err());
    // Q=200 tables are cached and may be omitted from later images.
    let mut with = vec![0, 0, 0, 0, 0, 200, 40, 30, 0, 0, 0, 128];
    with.extend_from_slice(&[7; 128]);
    with.push(0xAB);
    let without = [0, 0, 0, 0, 0, 200, 40, 30, 0, 0, 0, 0, 0xCD];
    let out = depacketize(
        &mut d,
        &[rtp(8, 36, true, &with), rtp(9, 45, true, &without)],
    );
    assert_eq!(out.len(), 2);
    let a = parse_jpeg(&out[1].data).unwrap();
    assert_eq!(a.params.qtables, [7; 128]);
    assert_eq!(a.params.kind, 0);
    assert_eq!(a.scan, [0xCD]);
}

#[test]
fn pcm_and_opus() {
    let mut info = CodecInfo::new(CodecName::PcmS16be, 16000);
    info.channels = 2;
    let frame: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let mut p = Packetizer::new(&info, 10, 1, 1000).unwrap();
    let packets = packetize(&mut p, &[&frame], 0);
    assert_eq!(packets.len(), 5);
    let mut d = PassthroughDepacketizer::new();
    let out = depacketize(&mut d, &packets);
    assert_eq!(out.concat_data(), frame);
    // 988 payload bytes = 247 whole 4-byte sample frames.
    assert_eq!(out[1].timestamp, 247);

    for (name, rate) in [
        (CodecName::Pcma, 8000),
        (CodecName::Pcmu, 8000),
        (CodecName::Opus, 48000),
        (CodecName::G722, 8000),
    ] {
        let info = CodecInfo::new(name, rate);
        let mut p = Packetizer::new(&info, 0, 1, 1200).unwrap();
        let frames: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8; 160]).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let out = depacketize(
            &mut PassthroughDepacketizer::new(),
            &packetize(&mut p, &refs, 160),
        );
        assert_eq!(
            out.iter().map(|f| f.data.clone()).collect::<Vec<_>>(),
            frames
        );
        assert!(p
            .packetize(&[0; 2000], 0, &mut RtpPackets::new(Framing::Datagram))
            .is_err());
    }
}

trait Concat {
    fn concat_data(&self) -> Vec<u8>;
}
impl Concat for Vec<RtpFrame> {
    fn concat_data(&self) -> Vec<u8> {
        self.iter().flat_map(|f| f.data.clone()).collect()
    }
}

#[test]
fn interleaved_framing_is_one_write() {
    let (info, frames) = demux("h264_1920x1080.h264");
    let mut p = Packetizer::new(&info, 96, 7, 1400).unwrap();
    let mut out = RtpPackets::new(Framing::Interleaved(2));
    p.packetize(&frames[0].data, 0, &mut out).unwrap();
    // Walk the buffer as an RTSP reader would.
    let buf = out.bytes();
    let mut pos = 0;
    let mut n = 0;
    while pos < buf.len() {
        assert_eq!(&buf[pos..pos + 2], &[b'$', 2]);
        let len = usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]));
        assert_eq!(&buf[pos + 4..pos + 4 + len], out.packet(n).unwrap());
        pos += 4 + len;
        n += 1;
    }
    assert_eq!(n, out.len());
    let last = RtpPacket::parse(out.packet(n - 1).unwrap()).unwrap();
    assert!(last.marker);
    assert!(!RtpPacket::parse(out.packet(0).unwrap()).unwrap().marker);
}

#[test]
fn depacketizer_from_sdp() {
    let sdp = camrouter_media::Session::parse(&String::from_utf8(load("sdp/dahua.sdp")).unwrap())
        .unwrap();
    let video = &sdp.medias[0].formats[0];
    let mut d = Depacketizer::for_format(video).unwrap();
    // An IDR slice alone gets the SDP's SPS/PPS.
    let out = depacketize(&mut d, &[rtp(1, 0, true, &[0x65, 0x88, 0x80])]);
    assert_eq!(out.len(), 1);
    assert!(out[0].keyframe);
    assert_eq!(
        out[0].data.len(),
        video.info.as_ref().unwrap().extradata.len() + 4 + 3
    );
    let audio = &sdp.medias[1].formats[0];
    assert!(matches!(
        Depacketizer::for_format(audio).unwrap(),
        Depacketizer::AacHbr(_)
    ));
}

/// AV1 (AOMedia RTP payload format v1.0) from libsvtav1's frames at MTU 300:
/// reassembled by the spec's rules (aggregation header Z/Y/W/N, `leb128`
/// element lengths, size fields restored), each temporal unit comes back
/// exactly; the marker ends it and N marks the keyframes.
#[test]
fn av1_roundtrip() {
    use camrouter_media::av1;
    let (info, frames) = demux("av1_320x240_frag.mp4");
    assert_eq!(info.name, CodecName::Av1);
    let mut p = Packetizer::new(&info, 45, 7, 300).unwrap();
    for f in &frames {
        let mut out = RtpPackets::new(Framing::Datagram);
        p.packetize(&f.data, 0, &mut out).unwrap();
        let mut tu = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        for i in 0..out.len() {
            let pkt = RtpPacket::parse(out.packet(i).unwrap()).unwrap();
            assert!(pkt.payload.len() <= 300 - 12);
            assert_eq!(pkt.marker, i + 1 == out.len());
            let (agg, mut rest) = pkt.payload.split_first().unwrap();
            assert_eq!(agg & 0x30, 0, "W = 0");
            assert_eq!(
                agg & 0x08 != 0,
                i == 0 && f.keyframe,
                "N on a keyframe's first packet"
            );
            assert_eq!(agg & 0x80 != 0, !partial.is_empty(), "Z");
            let mut first = true;
            while !rest.is_empty() {
                let (len, n) = av1::read_leb128(rest).unwrap();
                let e = &rest[n..n + len as usize];
                rest = &rest[n + len as usize..];
                if !(first && agg & 0x80 != 0) {
                    assert!(partial.is_empty());
                }
                partial.extend_from_slice(e);
                first = false;
                let continues = rest.is_empty() && agg & 0x40 != 0;
                if !continues {
                    // An element: header without size field, then the payload.
                    let (h, body) = partial.split_at(1 + usize::from(partial[0] & 4 != 0));
                    assert_eq!(h[0] & 2, 0);
                    tu.push(h[0] | 2);
                    tu.extend_from_slice(&h[1..]);
                    av1::write_leb128(&mut tu, body.len() as u64);
                    tu.extend_from_slice(body);
                    partial.clear();
                }
            }
        }
        assert!(partial.is_empty());
        assert_eq!(tu, f.data);
    }
    // Broken OBUs are an error, not packets.
    let mut out = RtpPackets::new(Framing::Datagram);
    assert!(p.packetize(&[0x32, 0x09, 0x00], 0, &mut out).is_err());
    assert_eq!(out.len(), 0);
}
