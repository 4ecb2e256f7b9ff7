//! `PipeDemuxer`: what the `exec:` source calls with a child's stdout bytes.
//!
//! ```
//! use camrouter_media::{PipeDemuxer, PipeEvent};
//! let mut demux = PipeDemuxer::new();
//! demux.push(b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x07\0\x01\0\x40\x1f\0\0\x40\x1f\0\0\x01\0\x08\0data\xff\xff\xff\xff");
//! demux.push(&[0xff; 160]);
//! demux.finish();
//! while let Some(ev) = demux.poll() {
//!     match ev {
//!         Ok(PipeEvent::Tracks(tracks)) => assert_eq!(tracks[0].name.go2rtc_name(), "PCMU"),
//!         Ok(PipeEvent::Frame(f)) => assert_eq!(f.data.len(), 160),
//!         // Y4M only: raw pictures for the caller to encode.
//!         Ok(PipeEvent::RawVideo(_) | PipeEvent::Picture(_)) => unreachable!(),
//!         Err(e) => panic!("{e}"),
//!     }
//! }
//! ```

use std::collections::VecDeque;

use crate::adts::{AdtsSplitter, SAMPLES_PER_FRAME};
use crate::au::{AuAssembler, VideoCodec};
use crate::codec::{CodecInfo, MediaKind};
use crate::detect::{detect, Detection, Format};
use crate::error::{hex_prefix, Error, Result};
use crate::flv::{FlvDemuxer, FlvEvent};
use crate::fmp4_demux::{Fmp4Demuxer, Fmp4Event};
use crate::mjpeg::MjpegSplitter;
use crate::mpegts::{stream_type, TsDemuxer, TsEvent};
use crate::wav::{WavEvent, WavParser};
use crate::y4m::{Y4mDemuxer, Y4mEvent, Y4mFormat};
use crate::{h264, h265, mjpeg};

/// Give up detecting after this many bytes.
pub const DETECT_LIMIT: usize = 64 * 1024;
/// Frames held while waiting for every track's description.
pub const MAX_PENDING_FRAMES: usize = 512;

/// One media frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Index into the `Tracks` list.
    pub track: usize,
    /// Random access point (always true for audio and MJPEG).
    pub keyframe: bool,
    /// Presentation time in the track's clock rate, when the container has
    /// timestamps (MPEG-TS); `None` for elementary streams.
    pub pts: Option<i64>,
    /// Decode time, in the same clock, where the container gives one apart
    /// from `pts` (MPEG-TS and FLV video with B-frames); `None`: same as `pts`.
    pub dts: Option<i64>,
    /// H.264/H.265: the access unit as 4-byte length-prefixed NAL units.
    /// AV1: a temporal unit of sized OBUs (see [`crate::av1`]). MJPEG: one JPEG image. AAC: one raw frame (no ADTS header).
    /// PCM/G.711: a block of samples.
    pub data: Vec<u8>,
}

/// Output of [`PipeDemuxer::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeEvent {
    /// Emitted once, before any frame, when every track is described.
    Tracks(Vec<CodecInfo>),
    /// A frame of one of the tracks.
    Frame(Frame),
    /// Raw pictures follow (Y4M), in this format; once, before any
    /// `Picture`, and instead of `Tracks`: a stream carries compressed video
    /// only, so the caller encodes them (the plugin API's `rawvideo`).
    RawVideo(Y4mFormat),
    /// One raw picture of the `RawVideo` format (planar 4:2:0: Y, U, V).
    Picture(Vec<u8>),
}

/// Per elementary stream state, before mapping to output tracks.
#[derive(Debug, Clone)]
struct Source {
    info: Option<CodecInfo>,
    is_video: bool,
    seen_keyframe: bool,
    out_track: Option<usize>,
    /// For MPEG-TS elementary streams.
    video: Option<AuAssembler>,
    audio: Option<AdtsSplitter>,
    /// Last SPS that failed to parse, so each bad SPS is reported once.
    bad_sps: Option<Vec<u8>>,
    /// Left out: its codec is not supported.
    skipped: bool,
}

impl Source {
    fn new(is_video: bool) -> Self {
        Self {
            info: None,
            is_video,
            seen_keyframe: false,
            out_track: None,
            video: None,
            audio: None,
            bad_sps: None,
            skipped: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Inner {
    Detecting(Vec<u8>),
    AnnexB(AuAssembler),
    Mjpeg(MjpegSplitter),
    Adts(AdtsSplitter),
    Wav(WavParser),
    Ts(TsDemuxer),
    /// With the source index of its video and of its audio track.
    Flv(FlvDemuxer, [Option<usize>; 2]),
    Mp4(Fmp4Demuxer),
    Y4m(Y4mDemuxer),
    Failed,
}

/// Sans-IO demuxer for a child process's stdout. See the module docs.
#[derive(Debug, Clone)]
pub struct PipeDemuxer {
    inner: Inner,
    format: Option<Format>,
    sources: Vec<Source>,
    tracks_emitted: bool,
    pending: VecDeque<(usize, Frame)>,
    out: VecDeque<Result<PipeEvent>>,
    finished: bool,
    /// Buffer length at the last detection attempt (detection rescans the
    /// whole prefix, so it is retried only when the buffer has doubled).
    detect_len: usize,
    dropped_before_keyframe: u64,
    dropped_other: u64,
}

impl Default for PipeDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl PipeDemuxer {
    /// New demuxer; the format is detected from the first bytes.
    pub fn new() -> Self {
        Self {
            inner: Inner::Detecting(Vec::new()),
            format: None,
            sources: Vec::new(),
            tracks_emitted: false,
            pending: VecDeque::new(),
            out: VecDeque::new(),
            finished: false,
            detect_len: 0,
            dropped_before_keyframe: 0,
            dropped_other: 0,
        }
    }

    /// New demuxer for a format known beforehand (an HTTP Content-Type, an
    /// ingest path): a multipart MJPEG body starts with its boundary, not
    /// with a JPEG, so detection would refuse it.
    pub fn with_format(format: Format) -> Self {
        let mut d = Self::new();
        d.start(format, Vec::new());
        d
    }

    /// Detected format ("h264", "hevc", "mjpeg", "mpegts", "adts", "wav"),
    /// or "unknown" before detection.
    pub fn format_name(&self) -> &str {
        self.format.map_or("unknown", Format::name)
    }

    /// The input cannot be read any further (unknown format, broken
    /// framing): nothing more will come out.
    pub fn failed(&self) -> bool {
        match &self.inner {
            Inner::Failed => true,
            Inner::Flv(f, _) => f.failed(),
            Inner::Mp4(m) => m.failed(),
            Inner::Y4m(y) => y.failed(),
            _ => false,
        }
    }

    /// Video frames dropped because no keyframe had been seen yet.
    pub fn dropped_before_keyframe(&self) -> u64 {
        self.dropped_before_keyframe
    }

    /// Frames dropped for other reasons (pending queue overflow, frames of
    /// streams whose description never became known).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_other
    }

    /// Next event. `Err` items are reported problems; only
    /// [`Error::UnknownFormat`], WAV header errors and what [`failed`](Self::failed)
    /// says stop the demuxer.
    pub fn poll(&mut self) -> Option<Result<PipeEvent>> {
        self.out.pop_front()
    }

    /// Feed bytes read from the pipe.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.finished {
            return;
        }
        if let Inner::Detecting(buf) = &mut self.inner {
            buf.extend_from_slice(bytes);
            self.try_detect();
            return;
        }
        self.feed(bytes);
    }

    /// End of input: flushes the last frame.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        if matches!(self.inner, Inner::Detecting(_)) {
            self.finished = true;
            self.try_detect();
        }
        self.finished = true;
        match &mut self.inner {
            Inner::AnnexB(a) => a.flush(),
            Inner::Mjpeg(m) => m.finish(),
            Inner::Adts(a) => a.finish(),
            Inner::Wav(w) => w.finish(),
            Inner::Ts(t) => t.finish(),
            Inner::Y4m(y) => y.finish(),
            Inner::Flv(..) | Inner::Mp4(_) | Inner::Detecting(_) | Inner::Failed => {}
        }
        self.drain_inner();
        if !self.tracks_emitted {
            self.emit_tracks(true);
        }
    }

    fn try_detect(&mut self) {
        let Inner::Detecting(buf) = &mut self.inner else {
            return;
        };
        let retry = buf.len() < 1024
            || buf.len() >= self.detect_len.saturating_mul(2)
            || buf.len() >= DETECT_LIMIT
            || self.finished;
        if !retry {
            return;
        }
        self.detect_len = buf.len();
        match detect(buf, self.finished) {
            Detection::NeedMore if buf.len() < DETECT_LIMIT => {}
            Detection::NeedMore | Detection::NoMatch => {
                let first_bytes_hex = hex_prefix(buf, 32);
                self.inner = Inner::Failed;
                self.out
                    .push_back(Err(Error::UnknownFormat { first_bytes_hex }));
            }
            Detection::Found(format) => {
                let buf = std::mem::take(buf);
                self.start(format, buf);
            }
        }
    }

    fn start(&mut self, format: Format, buf: Vec<u8>) {
        self.format = Some(format);
        self.inner = match format {
            Format::H264 => Inner::AnnexB(AuAssembler::new(VideoCodec::H264)),
            Format::H265 => Inner::AnnexB(AuAssembler::new(VideoCodec::H265)),
            Format::Mjpeg => Inner::Mjpeg(MjpegSplitter::new()),
            Format::Adts => Inner::Adts(AdtsSplitter::new()),
            Format::Wav => Inner::Wav(WavParser::new()),
            Format::MpegTs => Inner::Ts(TsDemuxer::new()),
            Format::Flv => Inner::Flv(FlvDemuxer::new(), [None, None]),
            Format::Mp4 => Inner::Mp4(Fmp4Demuxer::new()),
            Format::Y4m => Inner::Y4m(Y4mDemuxer::new()),
        };
        // Y4M has no track: its pictures bypass `Tracks`/`Frame`.
        if !matches!(
            format,
            Format::MpegTs | Format::Flv | Format::Mp4 | Format::Y4m
        ) {
            let is_video = matches!(format, Format::H264 | Format::H265 | Format::Mjpeg);
            self.sources.push(Source::new(is_video));
        }
        self.feed(&buf);
    }

    fn feed(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            Inner::AnnexB(a) => a.push(bytes),
            Inner::Mjpeg(m) => m.push(bytes),
            Inner::Adts(a) => a.push(bytes),
            Inner::Wav(w) => w.push(bytes),
            Inner::Ts(t) => t.push(bytes),
            Inner::Flv(f, _) => f.push(bytes),
            Inner::Mp4(m) => m.push(bytes),
            Inner::Y4m(y) => y.push(bytes),
            Inner::Detecting(_) | Inner::Failed => return,
        }
        self.drain_inner();
    }

    /// Move everything the format parser produced into frames/events.
    fn drain_inner(&mut self) {
        let mut inner = std::mem::replace(&mut self.inner, Inner::Failed);
        match &mut inner {
            Inner::AnnexB(asm) => self.drain_video(0, asm, None),
            Inner::Mjpeg(m) => {
                while let Some(img) = m.pop() {
                    if self.sources.first().is_some_and(|s| s.info.is_none()) {
                        self.set_info(0, mjpeg::codec_info(img.width, img.height));
                    }
                    self.deliver(0, true, None, img.data);
                }
            }
            Inner::Adts(a) => {
                while let Some(f) = a.pop() {
                    if self.sources.first().is_some_and(|s| s.info.is_none()) {
                        self.set_info(0, f.header.codec_info());
                    }
                    self.deliver(0, true, None, f.data);
                }
            }
            Inner::Wav(w) => {
                while let Some(ev) = w.pop() {
                    match ev {
                        Ok(WavEvent::Format(f)) => self.set_info(0, f.codec_info()),
                        Ok(WavEvent::Samples(s)) => self.deliver(0, true, None, s),
                        Err(e) => self.out.push_back(Err(e)),
                    }
                }
            }
            Inner::Ts(t) => {
                while let Some(ev) = t.pop() {
                    match ev {
                        Ok(TsEvent::Streams(streams)) => {
                            for s in streams {
                                let mut src = Source::new(s.stream_type != stream_type::AAC_ADTS);
                                match s.stream_type {
                                    stream_type::H264 => {
                                        src.video = Some(AuAssembler::new(VideoCodec::H264))
                                    }
                                    stream_type::H265 => {
                                        src.video = Some(AuAssembler::new(VideoCodec::H265))
                                    }
                                    _ => src.audio = Some(AdtsSplitter::new()),
                                }
                                self.sources.push(src);
                            }
                        }
                        Ok(TsEvent::Pes(pes)) => self.ts_pes(pes),
                        Err(e) => self.out.push_back(Err(e)),
                    }
                }
            }
            Inner::Flv(f, slots) => {
                while let Some(ev) = f.poll() {
                    match ev {
                        Ok(ev) => self.flv_event(ev, slots),
                        Err(e) => {
                            // A codec we cannot carry (MP3, AV1): its track
                            // is left out rather than waited for.
                            if let Error::Unsupported { what, .. } = &e {
                                let i = match *what {
                                    "FLV video" => Some(0),
                                    "FLV audio" => Some(1),
                                    _ => None,
                                };
                                if let Some(idx) = i.and_then(|i| slots[i].take()) {
                                    if let Some(s) = self.sources.get_mut(idx) {
                                        s.skipped = true;
                                    }
                                    self.emit_tracks(false);
                                }
                            }
                            self.out.push_back(Err(e));
                        }
                    }
                }
            }
            Inner::Mp4(m) => {
                while let Some(ev) = m.poll() {
                    match ev {
                        Ok(Fmp4Event::Tracks(tracks)) => {
                            // Every track is described at once: the sources
                            // are the tracks, in order.
                            if self.sources.is_empty() {
                                for info in tracks {
                                    let mut s = Source::new(info.kind() == MediaKind::Video);
                                    s.info = Some(info);
                                    self.sources.push(s);
                                }
                                self.emit_tracks(false);
                            }
                        }
                        Ok(Fmp4Event::Frame {
                            track,
                            keyframe,
                            pts,
                            dts,
                            data,
                        }) => self.deliver(track, keyframe, Some((pts, dts)), data),
                        Err(e) => self.out.push_back(Err(e)),
                    }
                }
            }
            Inner::Y4m(y) => {
                while let Some(ev) = y.poll() {
                    self.out.push_back(ev.map(|ev| match ev {
                        Y4mEvent::Format(f) => PipeEvent::RawVideo(f),
                        Y4mEvent::Picture(p) => PipeEvent::Picture(p),
                    }));
                }
            }
            Inner::Detecting(_) | Inner::Failed => {}
        }
        self.inner = inner;
    }

    /// FLV tracks are the header's announced kinds, video first; a kind it
    /// did not announce gets a track when its description comes before the
    /// tracks are out.
    fn flv_event(&mut self, ev: FlvEvent, slots: &mut [Option<usize>; 2]) {
        let mut slot = |this: &mut Self, video: bool| -> Option<usize> {
            let i = usize::from(!video);
            if slots[i].is_none() && !this.tracks_emitted {
                this.sources.push(Source::new(video));
                slots[i] = Some(this.sources.len() - 1);
            }
            slots[i]
        };
        match ev {
            FlvEvent::Header { audio, video } => {
                if video {
                    slot(self, true);
                }
                if audio {
                    slot(self, false);
                }
            }
            FlvEvent::Config { video, info } => {
                if let Some(idx) = slot(self, video) {
                    if self.sources.get(idx).is_some_and(|s| s.info.is_none()) {
                        self.set_info(idx, info);
                    }
                }
            }
            FlvEvent::Frame {
                video,
                keyframe,
                pts_ms,
                dts_ms,
                data,
            } => {
                let Some(idx) = slots[usize::from(!video)] else {
                    return;
                };
                let rate = self
                    .sources
                    .get(idx)
                    .and_then(|s| s.info.as_ref())
                    .map_or(1000, |i| i64::from(i.clock_rate));
                let ts = (pts_ms * rate / 1000, dts_ms * rate / 1000);
                self.deliver(idx, keyframe, Some(ts), data);
            }
        }
    }

    fn ts_pes(&mut self, pes: crate::mpegts::Pes) {
        let idx = pes.stream;
        let Some(src) = self.sources.get_mut(idx) else {
            return;
        };
        if let Some(mut asm) = src.video.take() {
            // A PES carries whole access units in practice, so the end of
            // the PES is an AU boundary; this avoids one frame of latency.
            asm.push(&pes.data);
            asm.flush();
            let ts = pes.pts.map(|p| (p, pes.dts.unwrap_or(p)));
            self.drain_video(idx, &mut asm, ts);
            if let Some(src) = self.sources.get_mut(idx) {
                src.video = Some(asm);
            }
        } else if let Some(mut adts) = src.audio.take() {
            adts.push(&pes.data);
            let mut n: i64 = 0;
            while let Some(f) = adts.pop() {
                if self.sources.get(idx).is_some_and(|s| s.info.is_none()) {
                    self.set_info(idx, f.header.codec_info());
                }
                // 90 kHz PTS -> sample clock; later frames in the same PES
                // follow at 1024 samples each.
                let rate = i64::from(f.header.sample_rate());
                let pts = pes
                    .pts
                    .map(|p| p * rate / 90_000 + n * i64::from(SAMPLES_PER_FRAME));
                n += 1;
                self.deliver(idx, true, pts.map(|p| (p, p)), f.data);
            }
            if let Some(src) = self.sources.get_mut(idx) {
                src.audio = Some(adts);
            }
        }
    }

    /// `ts`: (pts, dts) of the first access unit.
    fn drain_video(&mut self, idx: usize, asm: &mut AuAssembler, mut ts: Option<(i64, i64)>) {
        while let Some(au) = asm.pop() {
            if self.sources.get(idx).is_some_and(|s| s.info.is_none()) {
                self.describe_video(idx, asm);
            }
            self.deliver(idx, au.keyframe, ts.take(), au.data);
        }
    }

    fn describe_video(&mut self, idx: usize, asm: &AuAssembler) {
        let Some(sps) = asm.sps() else { return };
        if self
            .sources
            .get(idx)
            .and_then(|s| s.bad_sps.as_deref())
            .is_some_and(|b| b == sps)
        {
            return;
        }
        let info = match asm.codec() {
            VideoCodec::H264 => h264::codec_info(sps, asm.pps()),
            VideoCodec::H265 => h265::codec_info(asm.vps(), sps, asm.pps()),
        };
        match info {
            Ok(info) => self.set_info(idx, info),
            Err(e) => {
                if let Some(s) = self.sources.get_mut(idx) {
                    s.bad_sps = Some(sps.to_vec());
                }
                self.out.push_back(Err(e));
            }
        }
    }

    fn set_info(&mut self, idx: usize, info: CodecInfo) {
        if let Some(s) = self.sources.get_mut(idx) {
            s.info = Some(info);
        }
        self.emit_tracks(false);
    }

    /// Emit `Tracks` when every source is described, or (`force`) with the
    /// described subset when waiting longer would lose frames.
    fn emit_tracks(&mut self, force: bool) {
        if self.tracks_emitted || self.sources.is_empty() {
            return;
        }
        let all = self.sources.iter().all(|s| s.info.is_some() || s.skipped);
        let any = self.sources.iter().any(|s| s.info.is_some());
        if !any || !(all || force) {
            return;
        }
        let mut tracks = Vec::new();
        for s in &mut self.sources {
            if let Some(info) = &s.info {
                s.out_track = Some(tracks.len());
                tracks.push(info.clone());
            }
        }
        self.tracks_emitted = true;
        self.out.push_back(Ok(PipeEvent::Tracks(tracks)));
        while let Some((src, mut frame)) = self.pending.pop_front() {
            match self.sources.get(src).and_then(|s| s.out_track) {
                Some(t) => {
                    frame.track = t;
                    self.out.push_back(Ok(PipeEvent::Frame(frame)));
                }
                None => self.dropped_other += 1,
            }
        }
    }

    /// `ts`: (pts, dts) when the container has timestamps.
    fn deliver(&mut self, idx: usize, keyframe: bool, ts: Option<(i64, i64)>, data: Vec<u8>) {
        let Some(src) = self.sources.get_mut(idx) else {
            return;
        };
        if src.is_video && !src.seen_keyframe {
            if !keyframe {
                self.dropped_before_keyframe += 1;
                return;
            }
            src.seen_keyframe = true;
        }
        let frame = Frame {
            track: src.out_track.unwrap_or(0),
            keyframe,
            pts: ts.map(|t| t.0),
            dts: ts.filter(|t| t.1 != t.0).map(|t| t.1),
            data,
        };
        if self.tracks_emitted {
            if src.out_track.is_some() {
                self.out.push_back(Ok(PipeEvent::Frame(frame)));
            } else {
                self.dropped_other += 1;
            }
            return;
        }
        self.pending.push_back((idx, frame));
        if self.pending.len() > MAX_PENDING_FRAMES {
            // Some track never describes itself; go with what is known.
            self.emit_tracks(true);
            if !self.tracks_emitted && self.pending.pop_front().is_some() {
                self.dropped_other += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adts::{write_adts_header, AudioSpecificConfig};
    use crate::h264::tests::SPS_640X360_HIGH;
    use crate::mpegts::tests::{packets, pes, section};

    fn events(d: &mut PipeDemuxer) -> Vec<Result<PipeEvent>> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    #[test]
    fn holds_frames_until_all_tracks_are_known() {
        let mut cc = [0u8; 4];
        let mut ts = packets(0, &section(0, 1, &[0, 1, 0xF0, 0x00]), &mut cc[0], true);
        let pmt = [
            0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00,
        ];
        ts.extend(packets(0x1000, &section(2, 1, &pmt), &mut cc[1], true));
        let asc = AudioSpecificConfig {
            object_type: 2,
            sample_rate_index: 3,
            channel_config: 2,
        };
        let mut aac = Vec::new();
        for _ in 0..2 {
            aac.extend_from_slice(&write_adts_header(&asc, 10).unwrap());
            aac.extend_from_slice(&[0x21; 10]);
        }
        // Audio at 1 s arrives before any video.
        ts.extend(packets(
            0x101,
            &pes(0xC0, 90_000, &aac, true),
            &mut cc[3],
            false,
        ));
        let mut es = vec![0, 0, 0, 1];
        es.extend_from_slice(&SPS_640X360_HIGH);
        es.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        es.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00]);
        ts.extend(packets(
            0x100,
            &pes(0xE0, 93_600, &es, false),
            &mut cc[2],
            false,
        ));
        ts.extend(packets(
            0x100,
            &pes(0xE0, 97_200, &[0, 0, 1, 0x41, 0x9a, 0x02], false),
            &mut cc[2],
            false,
        ));

        let mut d = PipeDemuxer::new();
        assert_eq!(d.format_name(), "unknown");
        for c in ts.chunks(5) {
            d.push(c);
        }
        d.finish();
        assert_eq!(d.format_name(), "mpegts");
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        let PipeEvent::Tracks(tracks) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].width, tracks[0].height), (640, 360));
        assert_eq!(tracks[0].extradata.len(), 4 + 26 + 4 + 6);
        assert_eq!((tracks[1].clock_rate, tracks[1].channels), (48_000, 2));
        let frames: Vec<&Frame> = ev[1..]
            .iter()
            .map(|e| match e {
                PipeEvent::Frame(f) => f,
                other => panic!("{other:?}"),
            })
            .collect();
        let summary: Vec<_> = frames
            .iter()
            .map(|f| (f.track, f.keyframe, f.pts))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, true, Some(48_000)),
                (1, true, Some(49_024)),
                (0, true, Some(93_600)),
                (0, false, Some(97_200)),
            ]
        );
        assert_eq!(d.dropped_before_keyframe(), 0);
        assert_eq!(d.dropped_frames(), 0);
    }

    #[test]
    fn y4m_pictures_come_out_raw() {
        let mut d = PipeDemuxer::new();
        d.push(b"YUV4MPEG2 W4 H2 F15:1 Ip A1:1 C420jpeg\nFRAME\n");
        d.push(&[0x80; 12]);
        d.push(b"FRAME\n");
        d.push(&[0x10; 12]);
        let ev = events(&mut d);
        assert_eq!(d.format_name(), "yuv4mpegpipe");
        assert!(
            matches!(&ev[0], Ok(PipeEvent::RawVideo(f)) if f.width == 4 && f.rate_num == 15),
            "{ev:?}"
        );
        assert_eq!(ev[1], Ok(PipeEvent::Picture(vec![0x80; 12])));
        assert_eq!(ev[2], Ok(PipeEvent::Picture(vec![0x10; 12])));
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn y4m_it_cannot_read_is_a_clear_error() {
        let mut d = PipeDemuxer::new();
        d.push(b"YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C444 XYSCSS=444\nFRAME\n");
        d.push(&[0x80; 2000]);
        let ev = events(&mut d);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let e = ev[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("C444") && e.contains("4:2:0"), "{e}");
        assert!(d.failed());
    }

    #[test]
    fn fragmented_mp4_is_detected_and_demuxed() {
        use crate::fmp4::{Fmp4Writer, Sample};
        let video = h264::codec_info(&SPS_640X360_HIGH, Some(&[0x68, 0xeb, 0xe3, 0xcb])).unwrap();
        let mut audio = CodecInfo::new(crate::codec::CodecName::Aac, 48_000);
        audio.channels = 2;
        audio.extradata = vec![0x11, 0x90];
        let mut w = Fmp4Writer::new(&[video, audio]).unwrap();
        let mut file = w.init_segment();
        let frame = |i: i64, key: bool, data: &'static [u8]| Sample {
            dts: i,
            pts: i,
            keyframe: key,
            arrival_us: 0,
            data,
        };
        file.extend(w.fragment(1, &frame(0, true, &[0x21, 1])).unwrap());
        file.extend(
            w.fragment(0, &frame(0, true, &[0, 0, 0, 2, 0x65, 0x88]))
                .unwrap(),
        );
        file.extend(
            w.fragment(0, &frame(3600, false, &[0, 0, 0, 2, 0x41, 0x9a]))
                .unwrap(),
        );
        let mut d = PipeDemuxer::new();
        for c in file.chunks(100) {
            d.push(c);
        }
        d.finish();
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(d.format_name(), "mp4");
        assert!(
            matches!(&ev[0], PipeEvent::Tracks(t) if t.len() == 2 && t[0].height == 360 && t[1].clock_rate == 48_000),
            "{ev:?}"
        );
        let summary: Vec<_> = ev[1..]
            .iter()
            .map(|e| match e {
                PipeEvent::Frame(f) => (f.track, f.keyframe, f.pts),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, true, Some(0)),
                (0, true, Some(0)),
                (0, false, Some(3600))
            ]
        );
    }

    #[test]
    fn known_format_skips_detection() {
        // A multipart body: boundary and part headers before each JPEG.
        let jpeg = crate::mjpeg::tests::tiny_jpeg(32, 16, &[1, 2, 3]);
        let mut body = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
        body.extend_from_slice(&jpeg);
        body.extend_from_slice(b"\r\n--frame\r\n\r\n");
        body.extend_from_slice(&jpeg);
        let mut d = PipeDemuxer::with_format(Format::Mjpeg);
        d.push(&body);
        d.finish();
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(d.format_name(), "mjpeg");
        assert!(matches!(&ev[0], PipeEvent::Tracks(t) if t[0].width == 32 && t[0].height == 16));
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn flv_with_an_unsupported_audio_codec_plays_its_video() {
        let video = h264::codec_info(
            &SPS_640X360_HIGH,
            Some(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]),
        )
        .unwrap();
        let m = crate::flv::FlvMuxer::new(&[video]).unwrap();
        let mut file = m.header();
        file[4] = 0x05; // announces audio too
                        // An MP3 audio tag (sound format 2): 11-byte header, body, size.
        file.extend_from_slice(&[
            8, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x2F, 0xFF, 0xFB, 0, 0, 0, 14,
        ]);
        file.extend(m.frame(0, 0, 80, true, &[0, 0, 0, 2, 0x65, 0x88]).unwrap());
        file.extend(m.frame(0, 40, 0, false, &[0, 0, 0, 2, 0x41, 0x9a]).unwrap());
        let mut d = PipeDemuxer::new();
        d.push(&file);
        let ev = events(&mut d);
        assert_eq!(d.format_name(), "flv");
        assert!(
            matches!(&ev[0], Ok(PipeEvent::Tracks(t)) if t.len() == 1 && t[0].width == 640),
            "{ev:?}"
        );
        assert!(matches!(
            &ev[1],
            Err(Error::Unsupported {
                what: "FLV audio",
                ..
            })
        ));
        assert!(
            matches!(&ev[2], Ok(PipeEvent::Frame(f)) if f.pts == Some(80 * 90) && f.dts == Some(0))
        );
        assert!(matches!(&ev[3], Ok(PipeEvent::Frame(f)) if !f.keyframe && f.pts == Some(40 * 90)));
        assert!(!d.failed());
        d.push(b"garbage!!!!!!!!!!!!!");
        assert!(matches!(d.poll(), Some(Err(Error::Invalid { .. }))));
        assert!(d.failed());
    }

    #[test]
    fn unknown_format_is_reported_once_with_hex() {
        let mut d = PipeDemuxer::new();
        d.push(b"Hello");
        d.push(b" more");
        d.finish();
        let ev = events(&mut d);
        assert_eq!(
            ev,
            vec![Err(Error::UnknownFormat {
                first_bytes_hex: "48656c6c6f".into()
            })]
        );
    }

    #[test]
    fn waits_for_enough_bytes_then_decides() {
        let mut d = PipeDemuxer::new();
        d.push(&[0x47]);
        assert!(d.poll().is_none());
        assert_eq!(d.format_name(), "unknown");
        d.push(&[0; 100]);
        assert!(d.poll().is_none());
        d.push(&[0; 100]);
        // Byte 188 is not a sync byte: not TS, and nothing else starts with 0x47.
        assert!(matches!(d.poll(), Some(Err(Error::UnknownFormat { .. }))));
    }

    #[test]
    fn non_keyframes_before_first_idr_are_dropped() {
        let mut s = vec![0, 0, 0, 1];
        s.extend_from_slice(&SPS_640X360_HIGH);
        s.extend_from_slice(&[0, 0, 1, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        s.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x01]); // P
        s.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x02]); // P
        s.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x03]); // IDR
        s.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x04]); // P
        let mut d = PipeDemuxer::new();
        d.push(&s);
        d.finish();
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(ev.len(), 3);
        assert_eq!(d.dropped_before_keyframe(), 2);
        let PipeEvent::Frame(f) = &ev[1] else {
            panic!()
        };
        // The IDR got the SPS and PPS prepended.
        assert!(f.keyframe);
        assert_eq!(f.data.len(), 4 + 26 + 4 + 6 + 4 + 3);
        assert_eq!(f.pts, None);
    }
}
