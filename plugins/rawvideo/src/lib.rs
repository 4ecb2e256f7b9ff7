//! Raw pictures (a Y4M source) encoded to H.264, once
//! per source, so that every output, the GOP cache and instant start work
//! as for a camera: streams carry compressed video only.
//!
//! [`RawVideoEncoder`] runs Cisco's openh264 encoder on a thread of its own
//! (encoding takes milliseconds per picture, too long for a runtime
//! thread) behind a small bounded queue: when encoding falls behind, new
//! pictures are dropped ([`Pushed::Dropped`]), so memory stays at a few
//! pictures. The thread ends with its `RawVideoEncoder` (the source): only a
//! running source encodes.
//!
//! Times: a picture's pts follows the header's frame rate, from the arrival
//! of the first one; a source slower than its declared rate (pts more than
//! [`MAX_LAG`] behind the clock) is caught up with a gap, and a source faster
//! than real time (a file) is paced by its reader with
//! [`RawVideoEncoder::ahead`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camrouter_media::annexb::nal_units;
use camrouter_media::codec::CodecInfo;
use camrouter_media::h264;
use camrouter_media::y4m::Y4mFormat;
use openh264::encoder::{
    Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use camrouter_plugin_api::abi::{Packet, FLAG_KEYFRAME};
use camrouter_plugin_api::sdk::SourceEvents;
use camrouter_plugin_api::{RArc, RVec};

/// Keyframe interval, in seconds of pictures.
pub const GOP_SECONDS: u32 = 2;
/// Queued pictures are capped at this many bytes (and 2..=8 pictures).
pub const QUEUE_BYTES: usize = 32 << 20;
/// How far pts may fall behind the clock before it jumps forward.
pub const MAX_LAG: Duration = Duration::from_secs(1);
/// How far pts may run ahead of the clock before the reader is paced (at
/// most: see [`RawVideoEncoder::ahead`]).
pub const MAX_LEAD: Duration = Duration::from_millis(500);
const CLOCK: u32 = 90_000;

/// What the encoder thread hands out.
#[derive(Debug)]
pub enum Encoded {
    /// The track, once, before its first packet (SPS/PPS as extradata).
    Described(CodecInfo),
    /// One access unit (4-byte length-prefixed NAL units; SPS/PPS before
    /// every IDR), in a 90 kHz clock.
    Packet(Packet),
}

/// What [`RawVideoEncoder::push`] did with a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pushed {
    Queued,
    /// The encoder is behind: the picture was dropped. `first`: the first
    /// drop of this source, the one worth a log line.
    Dropped {
        first: bool,
    },
}

struct Shared {
    /// Set when the owner is gone: queued pictures are not encoded.
    stop: AtomicBool,
    keyframe: AtomicBool,
    failed: Mutex<Option<String>>,
}

/// One source's encoder. Dropping it stops the thread after the picture it
/// is encoding.
pub struct RawVideoEncoder {
    tx: SyncSender<(Vec<u8>, i64, u64)>,
    shared: Arc<Shared>,
    picture_len: usize,
    frame_duration: i64,
    /// How far (90 kHz) pts may run ahead of the clock: [`MAX_LEAD`], less
    /// when the queue is short.
    lead: i64,
    started: Instant,
    last_pts: Option<i64>,
    dropped: u64,
}

impl RawVideoEncoder {
    /// Encoder for a source: the track goes to `events.medias` and each
    /// access unit to `events.packet`, from the encoder's thread.
    /// `started`: the source's time origin (its other packets' `received`).
    pub fn for_source(
        format: &Y4mFormat,
        started: Instant,
        events: SourceEvents,
    ) -> Result<Self, String> {
        Self::start(format, started, move |e| match e {
            Encoded::Described(info) => {
                events.medias(vec![camrouter_plugin_api::media::to_media(&info)])
            }
            Encoded::Packet(p) => events.packet(&p),
        })
    }

    /// Encoder handing its output to `out` (on its thread).
    pub fn start(
        format: &Y4mFormat,
        started: Instant,
        out: impl FnMut(Encoded) + Send + 'static,
    ) -> Result<Self, String> {
        let picture_len = format.picture_len();
        let capacity = (QUEUE_BYTES / picture_len.max(1)).clamp(2, 8);
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            keyframe: AtomicBool::new(false),
            failed: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        let thread_format = format.clone();
        std::thread::Builder::new()
            .name("y4m-h264".into())
            .spawn(move || {
                if let Err(e) = encode_loop(&thread_format, &rx, &thread_shared, out) {
                    if let Ok(mut f) = thread_shared.failed.lock() {
                        *f = Some(e);
                    }
                }
            })
            .map_err(|e| format!("y4m: encoder thread: {e}"))?;
        let frame_duration = format.frame_duration(CLOCK) as i64;
        // A paced reader hands over its lead at once (the pictures of one
        // read, or the first ones while the encoder starts): the queue
        // must hold them all, with room for one more.
        let lead = to_clock(MAX_LEAD).min(frame_duration * (capacity as i64 - 2));
        Ok(RawVideoEncoder {
            tx,
            shared,
            picture_len,
            frame_duration,
            lead,
            started,
            last_pts: None,
            dropped: 0,
        })
    }

    /// Queues one picture (of the format's size) for encoding. `Err`: the
    /// encoder failed, and why; the source should end with it.
    pub fn push(&mut self, picture: Vec<u8>) -> Result<Pushed, String> {
        if let Some(e) = self.shared.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(e);
        }
        if picture.len() != self.picture_len {
            return Err(format!(
                "y4m: picture of {} bytes, the format says {}",
                picture.len(),
                self.picture_len
            ));
        }
        let received = self.started.elapsed();
        let now = to_clock(received);
        let pts = match self.last_pts {
            None => now,
            Some(last) => (last + self.frame_duration).max(now - to_clock(MAX_LAG)),
        };
        self.last_pts = Some(pts);
        match self
            .tx
            .try_send((picture, pts, received.as_micros() as u64))
        {
            Ok(()) => Ok(Pushed::Queued),
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                Ok(Pushed::Dropped {
                    first: self.dropped == 1,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(self
                .shared
                .failed
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_else(|| "y4m: encoder gone".into())),
        }
    }

    /// Pictures dropped because the encoder was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// How long the reader should wait before pushing the next picture:
    /// the pictures arrive faster than their frame rate (a file, not a
    /// camera) and the last one's time is more than [`MAX_LEAD`] (or what
    /// the queue holds, if less) ahead of the clock. A reader that waits
    /// this long after each picture never overruns the queue.
    pub fn ahead(&self) -> Option<Duration> {
        let ahead = self.last_pts? - self.lead - to_clock(self.started.elapsed());
        (ahead > 0).then(|| Duration::from_micros(ahead as u64 * 1_000_000 / u64::from(CLOCK)))
    }

    /// The next picture is encoded as an IDR (a viewer lost video).
    pub fn request_keyframe(&self) {
        self.shared.keyframe.store(true, Ordering::Relaxed);
    }
}

impl Drop for RawVideoEncoder {
    fn drop(&mut self) {
        // The sender's drop ends the thread's `recv` once the queue is
        // empty; this makes it skip what is still queued.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn to_clock(d: Duration) -> i64 {
    (d.as_micros() * u128::from(CLOCK) / 1_000_000) as i64
}

/// Encoder settings for a format: a keyframe every [`GOP_SECONDS`], every
/// picture kept, a fixed quantiser (openh264's base QP, 26). openh264's rate
/// control works only with picture skipping, which would drop pictures a
/// source has; raw video comes from a local tool or a lab, where bit rate
/// matters less than a picture for every frame.
fn config(format: &Y4mFormat) -> EncoderConfig {
    let fps = format.rate_num as f32 / format.rate_den.max(1) as f32;
    let gop = (fps * GOP_SECONDS as f32).round().max(1.0) as u32;
    EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Off)
        .max_frame_rate(FrameRate::from_hz(fps))
        .skip_frames(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(gop))
        .num_threads(1)
}

fn encode_loop(
    format: &Y4mFormat,
    rx: &Receiver<(Vec<u8>, i64, u64)>,
    shared: &Shared,
    mut out: impl FnMut(Encoded),
) -> Result<(), String> {
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config(format))
        .map_err(|e| format!("y4m: h264 encoder: {e}"))?;
    let mut annexb = Vec::new();
    let mut described = false;
    while let Ok((picture, pts, received_at_us)) = rx.recv() {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        // Before the first picture the encoder is not initialised yet, and
        // that picture is an IDR anyway.
        if described && shared.keyframe.swap(false, Ordering::Relaxed) {
            encoder.force_intra_frame();
        }
        let planes = Planes::new(format, &picture);
        let bitstream = encoder.encode(&planes).map_err(|e| {
            format!(
                "y4m: h264 encoder ({}x{}): {e}",
                format.width, format.height
            )
        })?;
        let keyframe = match bitstream.frame_type() {
            FrameType::IDR => true,
            FrameType::I | FrameType::P | FrameType::IPMixed => false,
            FrameType::Skip | FrameType::Invalid => continue,
        };
        annexb.clear();
        bitstream.write_vec(&mut annexb);
        let mut au = Vec::with_capacity(annexb.len() + 16);
        let (mut sps, mut pps) = (None, None);
        for nal in nal_units(&annexb) {
            match nal[0] & 0x1f {
                7 => sps = Some(nal),
                8 => pps = Some(nal),
                _ => {}
            }
            camrouter_media::annexb::push_length_prefixed(&mut au, nal);
        }
        if !described {
            let Some(sps) = sps else {
                return Err("y4m: h264 encoder: first picture without SPS".into());
            };
            let info = h264::codec_info(sps, pps).map_err(|e| format!("y4m: h264 encoder: {e}"))?;
            out(Encoded::Described(info));
            described = true;
        }
        out(Encoded::Packet(Packet {
            track: 0,
            flags: if keyframe { FLAG_KEYFRAME } else { 0 },
            pts,
            dts: pts,
            received_at_us,
            payload: RArc::new(RVec::from(au)),
        }));
    }
    Ok(())
}

/// A Y4M picture as the encoder reads it. Odd sizes lose their last column
/// or row: 4:2:0 H.264 crops in steps of two pixels.
struct Planes<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    chroma: (usize, usize),
}

impl<'a> Planes<'a> {
    fn new(format: &Y4mFormat, data: &'a [u8]) -> Self {
        Planes {
            data,
            width: format.width as usize,
            height: format.height as usize,
            chroma: format.chroma_size(),
        }
    }

    fn luma_len(&self) -> usize {
        self.width * self.height
    }
}

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.width & !1, self.height & !1)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.chroma.0, self.chroma.0)
    }

    fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    fn u(&self) -> &[u8] {
        let start = self.luma_len();
        &self.data[start..start + self.chroma.0 * self.chroma.1]
    }

    fn v(&self) -> &[u8] {
        &self.data[self.luma_len() + self.chroma.0 * self.chroma.1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::decoder::Decoder;
    use std::sync::mpsc::channel;

    fn format(width: u32, height: u32) -> Y4mFormat {
        Y4mFormat {
            width,
            height,
            rate_num: 15,
            rate_den: 1,
            chroma: "420jpeg".into(),
        }
    }

    /// A moving gradient, so that P-frames carry something.
    fn picture(f: &Y4mFormat, n: usize) -> Vec<u8> {
        let mut p = vec![128; f.picture_len()];
        let w = f.width as usize;
        for (i, px) in p[..w * f.height as usize].iter_mut().enumerate() {
            *px = ((i % w + i / w + n * 3) % 220 + 16) as u8;
        }
        p
    }

    /// Encodes `count` pictures one at a time (none dropped); calls
    /// `before(encoder, n)` ahead of each push.
    fn encode(
        f: &Y4mFormat,
        count: usize,
        mut before: impl FnMut(&RawVideoEncoder, usize),
    ) -> (CodecInfo, Vec<Packet>) {
        let (tx, rx) = channel();
        let mut enc = RawVideoEncoder::start(f, Instant::now(), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        let mut info = None;
        let mut packets = Vec::new();
        for n in 0..count {
            before(&enc, n);
            assert_eq!(enc.push(picture(f, n)).unwrap(), Pushed::Queued);
            loop {
                match rx.recv().unwrap() {
                    Encoded::Described(i) => info = Some(i),
                    Encoded::Packet(p) => {
                        packets.push(p);
                        break;
                    }
                }
            }
        }
        (info.expect("described"), packets)
    }

    #[test]
    fn encodes_decodable_h264_with_a_keyframe_every_two_seconds() {
        let f = format(64, 48);
        let (info, got) = encode(&f, 35, |_, _| {});
        assert_eq!((info.width, info.height, info.clock_rate), (64, 48, 90_000));
        assert!(!info.extradata.is_empty());
        let keys: Vec<usize> = (0..got.len()).filter(|&i| got[i].is_keyframe()).collect();
        assert_eq!(keys, vec![0, 30], "GOP of 2 s at 15 fps");
        // pts follow the frame rate (pictures pushed faster than 15/s).
        for w in got.windows(2) {
            assert_eq!(w[1].pts - w[0].pts, 6000);
        }
        let mut dec = Decoder::new().unwrap();
        let mut decoded = 0;
        for p in &got {
            let mut annexb = Vec::new();
            for nal in camrouter_media::annexb::avcc_units(&p.payload) {
                annexb.extend_from_slice(&[0, 0, 0, 1]);
                annexb.extend_from_slice(nal.unwrap());
            }
            if let Some(yuv) = dec.decode(&annexb).unwrap() {
                assert_eq!(yuv.dimensions(), (64, 48));
                decoded += 1;
            }
        }
        assert!(decoded >= 34, "{decoded}");
    }

    #[test]
    fn odd_sizes_lose_a_column_and_a_row() {
        let (info, packets) = encode(&format(33, 17), 3, |_, _| {});
        assert_eq!((info.width, info.height), (32, 16));
        assert_eq!(packets.len(), 3);
    }

    #[test]
    fn keyframe_on_request() {
        let (_, packets) = encode(&format(32, 32), 6, |enc, n| {
            if n == 4 {
                enc.request_keyframe();
            }
        });
        let keys: Vec<bool> = packets.iter().map(Packet::is_keyframe).collect();
        assert_eq!(keys, [true, false, false, false, true, false]);
    }

    #[test]
    fn a_full_queue_drops_pictures_and_says_so_once() {
        let f = format(1920, 1080);
        // The sink blocks until the test lets it go: the queue fills.
        let (gate_tx, gate_rx) = channel::<()>();
        let mut enc = RawVideoEncoder::start(&f, Instant::now(), move |_| {
            let _ = gate_rx.recv();
        })
        .unwrap();
        let mut dropped = Vec::new();
        for n in 0..20 {
            if let Pushed::Dropped { first } = enc.push(picture(&f, n)).unwrap() {
                dropped.push(first);
            }
        }
        // 20 pushed; at most the queue (8) and the one being encoded got in.
        assert!(dropped.len() >= 11, "{dropped:?}");
        assert_eq!(dropped.iter().filter(|&&f| f).count(), 1);
        assert!(dropped[0]);
        assert_eq!(enc.dropped(), dropped.len() as u64);
        drop(gate_tx);
    }

    #[test]
    fn a_picture_of_the_wrong_size_is_an_error() {
        let f = format(32, 32);
        let mut enc = RawVideoEncoder::start(&f, Instant::now(), |_| {}).unwrap();
        assert!(enc.push(vec![0; 10]).unwrap_err().contains("10 bytes"));
    }

    #[test]
    fn too_large_for_the_encoder_is_a_clear_error() {
        // 8 Mpixels, but wider than 3840.
        let f = format(7680, 1080);
        let mut enc = RawVideoEncoder::start(&f, Instant::now(), |_| {}).unwrap();
        let _ = enc.push(vec![0; f.picture_len()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let e = loop {
            match enc.push(vec![0; f.picture_len()]) {
                Err(e) => break e,
                Ok(_) if Instant::now() < deadline => std::thread::yield_now(),
                Ok(_) => panic!("no error"),
            }
        };
        assert!(e.contains("7680x1080") && e.contains("3840"), "{e}");
    }

    #[test]
    fn a_file_is_paced_and_a_slow_source_catches_up() {
        let f = format(16, 16);
        let started = Instant::now() - Duration::from_secs(10);
        let mut enc = RawVideoEncoder::start(&f, started, |_| {}).unwrap();
        let _ = enc.push(picture(&f, 0)).unwrap();
        assert_eq!(enc.ahead(), None);
        let first = enc.last_pts.unwrap();
        // 30 pictures at once: 2 s of video, 1.6 s beyond the allowed lead
        // (six pictures: the queue holds eight).
        for n in 1..=30 {
            let _ = enc.push(picture(&f, n));
        }
        assert_eq!(enc.last_pts.unwrap() - first, 30 * 6000);
        let wait = enc.ahead().unwrap();
        assert!(wait > Duration::from_millis(1500) && wait <= Duration::from_millis(1600));
        // 4K pictures: a queue of two, so no lead at all.
        let big = RawVideoEncoder::start(&format(3840, 2160), started, |_| {}).unwrap();
        assert_eq!(big.lead, 0);
        // A source that stalls 5 s: pts jumps to 1 s behind the clock.
        enc.last_pts = Some(first - 5 * 90_000);
        let _ = enc.push(picture(&f, 31));
        let behind = to_clock(enc.started.elapsed()) - enc.last_pts.unwrap();
        assert!((90_000..90_000 + 9_000).contains(&behind), "{behind}");
    }
}
