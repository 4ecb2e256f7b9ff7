//! Audio WebRTC cannot carry, made into audio it can: a camera's AAC
//! becomes Opus (48 kHz), its PCM (L16 at any rate) becomes 8 kHz G.711
//! A-law. One *transcoder* per stream, shared by every feed of that stream
//! whose own query found no Opus/PCMA/PCMU: a graph consumer of its own
//! (`audio=aac,pcm,pcml`, listed as `webrtc/transcode` in `/api/streams`),
//! created with the first viewer that needs it and removed with the last
//! (the feeds hold it; it holds them weakly).
//!
//! The graph calls `packet` on the producer's thread, which must only
//! enqueue, so decoding, resampling and encoding run on the transcoder's
//! own thread; a full queue drops the frame (counted), which a listener
//! hears as a gap rather than the whole stream falling behind.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};

use camrouter_media::g711::s16_to_alaw;
use camrouter_media::resample::Resampler;
use camrouter_media::{CodecInfo, CodecName};
use camrouter_plugin_api::media::to_info;
use camrouter_plugin_api::sdk::{Consumer, Host};
use camrouter_plugin_api::{Direction, Media, MediaKind, Packet, RArc, RVec};
use serde_json::json;
use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};
use tokio::sync::watch;

use crate::feed::Feed;

/// What the transcoder's consumer asks the stream for.
pub const QUERY: &str = "audio=aac,pcm,pcml";

/// Source frames waiting for the transcoder's thread (an AAC frame is
/// 20-130 ms, so this is seconds of audio).
const QUEUE: usize = 64;

/// 20 ms, the usual WebRTC audio frame (RFC 7587 §4.2 for Opus).
const FRAME_MS: u32 = 20;

/// A gap or jump larger than this in the source's timestamps restarts the
/// output timeline (a camera or exec that restarted).
const GAP_MS: i64 = 500;

/// Opus bitrate: a camera microphone is speech and room noise.
const OPUS_BITRATE: i32 = 32_000;

/// What the transcoder sends, known once the graph attached it.
#[derive(Clone, Debug)]
pub struct Output {
    /// go2rtc name: OPUS or PCMA.
    pub codec: &'static str,
    pub info: CodecInfo,
}

#[derive(Clone)]
pub enum State {
    Pending,
    Ready(Output),
    Failed(String),
}

/// Feeds the transcoded frames go to, and which of their tracks.
#[derive(Default)]
struct Subscribers {
    list: Mutex<Vec<(Weak<Feed>, usize)>>,
}

pub struct Transcoder {
    stream: String,
    host: Host,
    consumer_id: AtomicU64,
    /// The consumer's track that is transcoded.
    track: AtomicU32,
    state: watch::Sender<State>,
    subscribers: Arc<Subscribers>,
    /// Set at `attached`; dropping it (with the transcoder) ends the thread.
    input: Mutex<Option<SyncSender<Job>>>,
    /// Source frames the thread could not take in time.
    pub dropped: AtomicU64,
    transcoders: Weak<Mutex<Vec<Weak<Transcoder>>>>,
}

struct Job {
    pts: i64,
    payload: RArc<RVec<u8>>,
}

impl Transcoder {
    /// The stream's transcoder, shared when a feed has it already.
    pub fn get(
        all: &Arc<Mutex<Vec<Weak<Transcoder>>>>,
        host: &Host,
        stream: &str,
    ) -> Arc<Transcoder> {
        let mut list = all.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        if let Some(t) = list
            .iter()
            .filter_map(Weak::upgrade)
            .find(|t| t.stream == stream)
        {
            return t;
        }
        let t = Arc::new(Transcoder {
            stream: stream.to_string(),
            host: host.clone(),
            consumer_id: AtomicU64::new(0),
            track: AtomicU32::new(u32::MAX),
            state: watch::Sender::new(State::Pending),
            subscribers: Arc::default(),
            input: Mutex::new(None),
            dropped: AtomicU64::new(0),
            transcoders: Arc::downgrade(all),
        });
        list.push(Arc::downgrade(&t));
        drop(list);
        let consumer = TranscodeConsumer {
            tc: Arc::downgrade(&t),
            ended: AtomicBool::new(false),
        };
        let info = json!({"format_name": "webrtc/transcode", "protocol": "pipe"});
        let id = host.add_consumer(stream, QUERY, info, consumer);
        t.consumer_id.store(id, Ordering::Relaxed);
        t
    }

    /// Waits until the graph attached (or refused) the consumer.
    pub async fn ready(&self) -> Result<Output, String> {
        let mut rx = self.state.subscribe();
        loop {
            let s = rx.borrow_and_update().clone();
            match s {
                State::Ready(o) => return Ok(o),
                State::Failed(e) => return Err(e),
                State::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err("webrtc: transcoder gone".into());
            }
        }
    }

    /// From now on, each encoded frame goes to `feed`'s track `track`.
    pub fn subscribe(&self, feed: Weak<Feed>, track: usize) {
        self.subscribers
            .list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((feed, track));
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.host
            .remove_consumer(self.consumer_id.load(Ordering::Relaxed));
        if let Some(all) = self.transcoders.upgrade() {
            all.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|w| w.strong_count() > 0);
        }
    }
}

struct TranscodeConsumer {
    tc: Weak<Transcoder>,
    ended: AtomicBool,
}

impl Consumer for TranscodeConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let Some(tc) = self.tc.upgrade() else {
            return;
        };
        let source = medias.iter().enumerate().find_map(|(i, m)| {
            let info = m.codecs.first().and_then(to_info)?;
            (m.kind == MediaKind::Audio && m.direction == Direction::SendOnly)
                .then_some((i as u32, info))
        });
        let Some((track, info)) = source else {
            tc.state
                .send_replace(State::Failed("webrtc: no AAC or PCM track".into()));
            return;
        };
        let pipeline = match Pipeline::new(&info) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(stream = %tc.stream, "webrtc: audio not transcoded: {e}");
                tc.state.send_replace(State::Failed(e));
                return;
            }
        };
        let output = pipeline.output();
        tracing::debug!(stream = %tc.stream, from = ?info.name, to = output.codec, "webrtc: transcoding audio");
        let (tx, rx) = sync_channel(QUEUE);
        let subscribers = tc.subscribers.clone();
        let stream = tc.stream.clone();
        let spawned = std::thread::Builder::new()
            .name("webrtc-transcode".into())
            .spawn(move || run(pipeline, rx, subscribers, stream));
        if let Err(e) = spawned {
            tc.state
                .send_replace(State::Failed(format!("webrtc: transcoder thread: {e}")));
            return;
        }
        *tc.input.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        tc.track.store(track, Ordering::Relaxed);
        tc.state.send_replace(State::Ready(output));
    }

    fn failed(&self, error: String) {
        if let Some(tc) = self.tc.upgrade() {
            tc.state.send_replace(State::Failed(error));
        }
    }

    fn packet(&self, track: u32, packet: &Packet) {
        let Some(tc) = self.tc.upgrade() else {
            return;
        };
        if track != tc.track.load(Ordering::Relaxed) {
            return;
        }
        let input = tc.input.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = input.as_ref() else {
            return;
        };
        let job = Job {
            pts: packet.pts,
            payload: packet.payload.clone(),
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(job) {
            tc.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn closed(&self, reason: String) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(tc) = self.tc.upgrade() {
            tc.state.send_replace(State::Failed(reason));
            tc.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

/// The transcoder's thread: until the transcoder (the sender) is gone.
fn run(mut p: Pipeline, rx: Receiver<Job>, subscribers: Arc<Subscribers>, stream: String) {
    let mut warned = false;
    let mut frames = Vec::new();
    while let Ok(job) = rx.recv() {
        frames.clear();
        // A decoder bug on a hostile frame loses that frame, not the audio.
        let r = catch_unwind(AssertUnwindSafe(|| {
            p.push(job.pts, &job.payload, &mut frames)
        }))
        .unwrap_or_else(|_| Err("the decoder panicked".into()));
        if let Err(e) = r {
            if !warned {
                warned = true;
                tracing::warn!(stream = %stream, "webrtc: audio frame not transcoded: {e}");
            }
            continue;
        }
        if frames.is_empty() {
            continue;
        }
        let feeds: Vec<(Arc<Feed>, usize)> = {
            let mut list = subscribers.list.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|(f, _)| f.strong_count() > 0);
            list.iter()
                .filter_map(|(f, i)| f.upgrade().map(|f| (f, *i)))
                .collect()
        };
        for (payload, ts) in &frames {
            for (feed, track) in &feeds {
                feed.send_transcoded(*track, payload, *ts);
            }
        }
    }
}

enum Decoder {
    Aac(Box<AacDecoder>),
    /// L16 (big-endian, RFC 3551) or little-endian PCM, interleaved.
    Pcm {
        big_endian: bool,
        channels: usize,
    },
}

enum Encoder {
    Opus(Box<opus::Encoder>),
    Pcma,
}

/// Decode → mono → resample → 20 ms frames → encode, with the output's
/// RTP timestamps following the source's.
pub struct Pipeline {
    decoder: Decoder,
    encoder: Encoder,
    resampler: Resampler,
    in_rate: u32,
    out_rate: u32,
    /// Samples per output frame.
    frame: usize,
    decoded: Vec<f32>,
    pending: Vec<f32>,
    /// Output timestamp of `pending[0]`.
    next_ts: Option<i64>,
    /// Source timestamp the next frame should have.
    expect_pts: Option<i64>,
    scratch: Vec<u8>,
}

impl Pipeline {
    pub fn new(info: &CodecInfo) -> Result<Pipeline, String> {
        let rate = info.clock_rate;
        if rate == 0 {
            return Err("webrtc: audio with no sample rate".into());
        }
        let (decoder, encoder, out_rate) = match info.name {
            CodecName::Aac => {
                if info.extradata.len() < 2 {
                    return Err("webrtc: AAC without AudioSpecificConfig".into());
                }
                let mut params = AudioCodecParameters::new();
                params
                    .for_codec(CODEC_ID_AAC)
                    .with_extra_data(info.extradata.clone().into_boxed_slice());
                let d = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
                    .map_err(|e| format!("webrtc: AAC decoder: {e} (only AAC-LC is decoded)"))?;
                let mut e =
                    opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Audio)
                        .map_err(|e| format!("webrtc: Opus encoder: {e}"))?;
                e.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))
                    .map_err(|e| format!("webrtc: Opus encoder: {e}"))?;
                (Decoder::Aac(Box::new(d)), Encoder::Opus(Box::new(e)), 48000)
            }
            CodecName::PcmS16be | CodecName::PcmS16le => (
                Decoder::Pcm {
                    big_endian: info.name == CodecName::PcmS16be,
                    channels: usize::from(info.channels.max(1)),
                },
                Encoder::Pcma,
                8000,
            ),
            other => return Err(format!("webrtc: {other:?} is not transcoded")),
        };
        let resampler = Resampler::new(rate, out_rate).ok_or("webrtc: bad sample rate")?;
        Ok(Pipeline {
            decoder,
            encoder,
            resampler,
            in_rate: rate,
            out_rate,
            frame: (out_rate * FRAME_MS / 1000) as usize,
            decoded: Vec::new(),
            pending: Vec::new(),
            next_ts: None,
            expect_pts: None,
            scratch: vec![0; 4000],
        })
    }

    pub fn output(&self) -> Output {
        match self.encoder {
            Encoder::Opus(_) => Output {
                codec: "OPUS",
                info: CodecInfo {
                    channels: 2,
                    ..CodecInfo::new(CodecName::Opus, 48000)
                },
            },
            Encoder::Pcma => Output {
                codec: "PCMA",
                info: CodecInfo {
                    channels: 1,
                    ..CodecInfo::new(CodecName::Pcma, 8000)
                },
            },
        }
    }

    /// One source frame in; the whole output frames it completes out, as
    /// (payload, RTP timestamp in the output's clock).
    pub fn push(
        &mut self,
        pts: i64,
        data: &[u8],
        out: &mut Vec<(Vec<u8>, u32)>,
    ) -> Result<(), String> {
        let gap = i64::from(self.in_rate) * GAP_MS / 1000;
        if self.expect_pts.is_some_and(|e| (pts - e).abs() > gap) {
            self.resampler.reset();
            self.pending.clear();
            self.next_ts = None;
        }
        self.decoded.clear();
        self.decode(data)?;
        self.expect_pts = Some(pts + self.decoded.len() as i64);
        if self.next_ts.is_none() {
            self.next_ts = Some(pts * i64::from(self.out_rate) / i64::from(self.in_rate));
        }
        self.resampler.process(&self.decoded, &mut self.pending);
        let mut start = 0;
        while self.pending.len() - start >= self.frame {
            let pcm = &self.pending[start..start + self.frame];
            let payload = match &mut self.encoder {
                Encoder::Opus(e) => {
                    let n = e
                        .encode_float(pcm, &mut self.scratch)
                        .map_err(|e| format!("Opus: {e}"))?;
                    self.scratch[..n].to_vec()
                }
                Encoder::Pcma => pcm.iter().map(|s| s16_to_alaw(to_s16(*s))).collect(),
            };
            let ts = self.next_ts.unwrap_or(0);
            out.push((payload, ts as u32));
            self.next_ts = Some(ts + self.frame as i64);
            start += self.frame;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Appends the frame's samples, mixed to mono, to `decoded`.
    fn decode(&mut self, data: &[u8]) -> Result<(), String> {
        match &mut self.decoder {
            Decoder::Aac(d) => {
                let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(1024), data);
                let buf = d.decode_ref(&packet).map_err(|e| format!("AAC: {e}"))?;
                let channels = buf.spec().channels().count().max(1);
                let mut all = Vec::with_capacity(buf.frames() * channels);
                buf.copy_to_vec_interleaved::<f32>(&mut all);
                mix(&all, channels, &mut self.decoded);
            }
            Decoder::Pcm {
                big_endian,
                channels,
            } => {
                let all: Vec<f32> = data
                    .chunks_exact(2)
                    .map(|b| {
                        let s = if *big_endian {
                            i16::from_be_bytes([b[0], b[1]])
                        } else {
                            i16::from_le_bytes([b[0], b[1]])
                        };
                        f32::from(s) / 32768.0
                    })
                    .collect();
                mix(&all, *channels, &mut self.decoded);
            }
        }
        Ok(())
    }
}

fn mix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|c| c.iter().sum::<f32>() * scale),
    );
}

fn to_s16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use camrouter_media::adts::AdtsSplitter;
    use camrouter_media::flac::alaw_to_s16;

    /// (frequency from zero crossings, RMS on a 0..1 scale).
    fn tone(x: &[f32], rate: u32) -> (f32, f32) {
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let th = rms / 4.0;
        let (mut crossings, mut state) = (0, 0);
        for v in x {
            if *v > th && state <= 0 {
                crossings += i32::from(state < 0);
                state = 1;
            } else if *v < -th && state >= 0 {
                crossings += i32::from(state > 0);
                state = -1;
            }
        }
        let seconds = x.len() as f32 / rate as f32;
        (crossings as f32 / 2.0 / seconds, rms)
    }

    #[test]
    fn aac_lc_becomes_opus_at_48khz_on_the_sources_timeline() {
        // ffmpeg: a 440 Hz sine, 16 kHz mono AAC-LC, 0.5 s, ADTS.
        let mut split = AdtsSplitter::new();
        split.push(include_bytes!("../testdata/sine440_16k_mono.aac"));
        split.finish();
        let frames: Vec<_> = std::iter::from_fn(|| split.pop()).collect();
        assert!(frames.len() >= 7);
        let info = frames[0].header.codec_info();
        assert_eq!((info.name, info.clock_rate), (CodecName::Aac, 16000));
        let mut p = Pipeline::new(&info).unwrap();
        assert_eq!(p.output().codec, "OPUS");
        let mut out = Vec::new();
        // The camera's timeline starts anywhere: 1000 s in.
        let start = 16000 * 1000;
        for (i, f) in frames.iter().enumerate() {
            p.push(start + 1024 * i as i64, &f.data, &mut out).unwrap();
        }
        // 20 ms frames, timestamps 960 apart from the source's start at 48 kHz.
        assert!(out.len() >= 20, "{} frames", out.len());
        for (i, (_, ts)) in out.iter().enumerate() {
            assert_eq!(*ts, (48000 * 1000 + 960 * i as i64) as u32);
        }
        let mut dec = opus::Decoder::new(48000, opus::Channels::Mono).unwrap();
        let mut pcm = Vec::new();
        let mut buf = [0f32; 960];
        for (payload, _) in &out {
            let n = dec.decode_float(payload, &mut buf, false).unwrap();
            pcm.extend_from_slice(&buf[..n]);
        }
        // Past the codecs' start-up.
        let (freq, rms) = tone(&pcm[4800..], 48000);
        assert!((freq - 440.0).abs() < 10.0, "{freq} Hz");
        assert!(rms > 0.05, "rms {rms}");
    }

    #[test]
    fn l16_becomes_8khz_pcma_and_a_jump_restarts_the_timeline() {
        let info = CodecInfo {
            channels: 2,
            ..CodecInfo::new(CodecName::PcmS16be, 48000)
        };
        let mut p = Pipeline::new(&info).unwrap();
        assert_eq!(p.output().codec, "PCMA");
        let mut out = Vec::new();
        // 1 s of stereo 440 Hz in 10 ms packets.
        for k in 0..100 {
            let mut data = Vec::new();
            for i in 0..480 {
                let t = (k * 480 + i) as f32 / 48000.0;
                let s = (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
                data.extend_from_slice(&s.to_be_bytes());
                data.extend_from_slice(&s.to_be_bytes());
            }
            p.push(k * 480, &data, &mut out).unwrap();
        }
        assert!(out.iter().all(|(f, _)| f.len() == 160));
        assert_eq!(out[1].1 - out[0].1, 160);
        let pcm: Vec<f32> = out
            .iter()
            .flat_map(|(f, _)| f.iter().map(|b| f32::from(alaw_to_s16(*b)) / 32768.0))
            .collect();
        let (freq, rms) = tone(&pcm[800..], 8000);
        assert!((freq - 440.0).abs() < 10.0, "{freq} Hz");
        assert!(
            (rms - 8000.0 / 32768.0 / 2f32.sqrt()).abs() < 0.02,
            "rms {rms}"
        );
        // The source restarted at 0 after 60 s: the output follows it.
        out.clear();
        p.push(60 * 48000, &[0; 1920], &mut out).unwrap();
        p.push(60 * 48000 + 480, &[0; 1920], &mut out).unwrap();
        let before = out.len();
        assert!(before <= 1);
        p.push(0, &[0; 1920 * 4], &mut out).unwrap();
        assert!(out.len() > before);
        assert_eq!(out[before].1, 0);
    }

    fn aac_frames(file: &[u8]) -> (CodecInfo, Vec<Vec<u8>>) {
        let mut split = AdtsSplitter::new();
        split.push(file);
        split.finish();
        let frames: Vec<_> = std::iter::from_fn(|| split.pop()).collect();
        (
            frames[0].header.codec_info(),
            frames.into_iter().map(|f| f.data).collect(),
        )
    }

    /// CPU seconds of this thread.
    fn thread_cpu() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }

    /// The README's cost figure: `cargo test --release -p camrouter-webrtc
    /// --lib transcode_cost -- --ignored --nocapture` (thread CPU time, so
    /// other load on the machine does not count).
    #[test]
    #[ignore]
    fn transcode_cost() {
        const SECONDS: usize = 120;
        let l16: Vec<u8> = (0..48000)
            .flat_map(|i| {
                let t = i as f32 / 48000.0;
                ((8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16).to_be_bytes()
            })
            .collect();
        let cases: [(&str, CodecInfo, Vec<Vec<u8>>); 3] = {
            let (a, af) = aac_frames(include_bytes!("../testdata/sine440_16k_mono.aac"));
            let (b, bf) = aac_frames(include_bytes!("../testdata/sine_48k_stereo.aac"));
            [
                ("AAC-LC 16 kHz mono -> Opus 48 kHz", a, af),
                ("AAC-LC 48 kHz stereo -> Opus 48 kHz", b, bf),
                (
                    "L16 48 kHz mono -> PCMA 8 kHz",
                    CodecInfo::new(CodecName::PcmS16be, 48000),
                    l16.chunks(1920).map(<[u8]>::to_vec).collect(),
                ),
            ]
        };
        for (name, info, frames) in cases {
            let mut p = Pipeline::new(&info).unwrap();
            let mut out = Vec::new();
            let (mut pts, mut audio) = (0i64, 0usize);
            let start = thread_cpu();
            while audio < SECONDS * info.clock_rate as usize {
                for f in &frames {
                    out.clear();
                    p.push(pts, f, &mut out).unwrap();
                    let n = match info.name {
                        CodecName::Aac => 1024,
                        _ => f.len() / 2,
                    };
                    pts += n as i64;
                    audio += n;
                }
            }
            let cpu = thread_cpu() - start;
            let secs = audio as f64 / f64::from(info.clock_rate);
            println!(
                "{name}: {:.4} cores ({cpu:.3} s CPU for {secs:.0} s of audio)",
                cpu / secs
            );
        }
    }

    #[test]
    fn what_cannot_be_decoded_is_an_error_not_a_panic() {
        let mut info = CodecInfo::new(CodecName::Aac, 16000);
        assert!(Pipeline::new(&info).is_err()); // no AudioSpecificConfig
        info.extradata = vec![0x14, 0x08]; // AAC-LC 16 kHz mono
        let mut p = Pipeline::new(&info).unwrap();
        let mut out = Vec::new();
        // Garbage from the network: errors or noise, never a panic.
        let mut x = 0x1234_5678u32;
        for k in 0..2000 {
            let data: Vec<u8> = (0..k % 300)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            let _ = p.push(k as i64 * 1024, &data, &mut out);
        }
        // HE-AAC (SBR) is refused with a reason, not decoded wrong.
        info.extradata = vec![0x2C, 0x09, 0x88];
        assert!(Pipeline::new(&info).is_err());
        assert!(Pipeline::new(&CodecInfo::new(CodecName::H264, 90000)).is_err());
    }
}
