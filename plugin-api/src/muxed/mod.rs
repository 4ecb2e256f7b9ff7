//! One graph consumer feeding one muxer, for the HTTP outputs that serve a
//! container to one client: `stream.mp4`, `frame.mp4` and MSE (`mp4`),
//! `stream.ts`, `stream.aac` and each HLS session (`hls`), `stream.flv` (`flv`).
//!
//! The graph replays its cached GOP to a new consumer, so the first bytes
//! come from the cached keyframe at once. Muxing runs on the producer's
//! thread and only hands finished frames to a bounded, non-blocking queue (a
//! body, a WebSocket) or to a [`SegmentSink`] (HLS, which bounds itself): a
//! client that cannot keep up loses frames up to the next keyframe, so its
//! memory stays bounded and it never delays others.

pub mod query;

use std::sync::{Arc, Mutex, MutexGuard};

use camrouter_media::adts::{write_adts_header, AudioSpecificConfig};
use camrouter_media::flv::FlvMuxer;
use camrouter_media::fmp4::{parameter_sets_from_frame, Fmp4Writer, Sample};
use camrouter_media::mpegts_mux::TsMuxer;
use camrouter_media::{CodecInfo, CodecName, MediaKind};
use serde_json::{json, Value};

use crate::abi::{Media, Packet, SendStatus};
use crate::media::to_info;
use crate::sdk::{BodySink, Client, Consumer, Host, InitContext, Responder, WsSender};

/// The container a session writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Fragmented MP4 (`stream.mp4`, MSE, HLS `?mp4`).
    Fmp4,
    /// MPEG-TS (`stream.ts`, HLS).
    Ts,
    /// ADTS (`stream.aac`): the first AAC track.
    Adts,
    /// FLV (`stream.flv`): the first video and the first audio track.
    Flv,
}

impl Format {
    fn supports(self, name: CodecName) -> bool {
        match self {
            Format::Ts => TsMuxer::supports(name),
            Format::Adts => name == CodecName::Aac,
            Format::Fmp4 => Fmp4Writer::supports(name),
            Format::Flv => FlvMuxer::supports(name),
        }
    }

    /// The prefix of error messages (the module's name, as go2rtc's).
    fn name(self) -> &'static str {
        match self {
            Format::Ts => "mpegts",
            Format::Adts => "aac",
            Format::Fmp4 => "mp4",
            Format::Flv => "flv",
        }
    }
}

/// go2rtc's `rotate` and `scale` for MP4 (ignored by the other formats).
#[derive(Debug, Clone, Copy, Default)]
pub struct Display {
    pub rotate: u16,
    pub aspect: Option<(u32, u32)>,
}

enum Container {
    Ts(TsMuxer),
    Fmp4(Fmp4Writer),
    Adts(AudioSpecificConfig),
    Flv(FlvMuxer, FlvClock),
}

/// FLV's millisecond timeline. Each track starts where it joins the file: a
/// track whose first frame comes later (audio after the replayed video GOP)
/// starts at its arrival, which keeps A/V in sync without a common clock.
struct FlvClock {
    rates: Vec<i64>,
    /// `arrival_us` of the first frame written: the file's time 0.
    start_us: Option<u64>,
    /// Per track: its first dts and the file time (ms) that maps to.
    origins: Vec<Option<(i64, i64)>>,
}

impl FlvClock {
    /// (dts, composition offset) in ms.
    fn times(&mut self, track: usize, s: &Sample<'_>) -> (u32, i32) {
        let rate = self.rates.get(track).copied().unwrap_or(90_000).max(1);
        let start = *self.start_us.get_or_insert(s.arrival_us);
        let offset = (s.arrival_us.saturating_sub(start) / 1000) as i64;
        let (first, at) = match self.origins.get_mut(track) {
            Some(o) => *o.get_or_insert((s.dts, offset)),
            None => (s.dts, offset),
        };
        let dts = at + (s.dts - first) * 1000 / rate;
        let cts = (s.pts - s.dts) * 1000 / rate;
        (
            dts.clamp(0, i64::from(u32::MAX)) as u32,
            cts.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        )
    }
}

impl Container {
    fn open(format: Format, infos: &[CodecInfo], display: Display) -> Result<Container, String> {
        let e = |e: camrouter_media::Error| e.to_string();
        Ok(match format {
            Format::Ts => Container::Ts(TsMuxer::new(infos).map_err(e)?),
            Format::Fmp4 => {
                let mut w = Fmp4Writer::new(infos).map_err(e)?;
                w.set_rotation(display.rotate).map_err(e)?;
                if let Some((h, v)) = display.aspect {
                    w.set_pixel_aspect(h, v).map_err(e)?;
                }
                Container::Fmp4(w)
            }
            Format::Adts => {
                let info = infos.first().ok_or("no AAC track")?;
                Container::Adts(AudioSpecificConfig::parse(&info.extradata).map_err(e)?)
            }
            Format::Flv => Container::Flv(
                FlvMuxer::new(infos).map_err(e)?,
                FlvClock {
                    rates: infos.iter().map(|i| i64::from(i.clock_rate)).collect(),
                    start_us: None,
                    origins: vec![None; infos.len()],
                },
            ),
        })
    }

    fn content_type(&self) -> String {
        match self {
            Container::Ts(_) => "video/mp2t".into(),
            Container::Fmp4(w) => w.content_type(),
            Container::Adts(_) => "audio/aac".into(),
            Container::Flv(..) => "video/x-flv".into(),
        }
    }

    /// What goes before the first frame (the MP4 init segment).
    fn header(&self) -> Vec<u8> {
        match self {
            Container::Fmp4(w) => w.init_segment(),
            Container::Flv(m, _) => m.header(),
            _ => Vec::new(),
        }
    }

    fn write(
        &mut self,
        track: usize,
        sample: &Sample<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self {
            Container::Ts(m) => m.write(track, sample, out).map_err(|e| e.to_string()),
            Container::Fmp4(w) => w
                .write_fragment(track, sample, out)
                .map_err(|e| e.to_string()),
            Container::Adts(asc) => {
                let h = write_adts_header(asc, sample.data.len()).map_err(|e| e.to_string())?;
                out.extend_from_slice(&h);
                out.extend_from_slice(sample.data);
                Ok(())
            }
            Container::Flv(m, clock) => {
                let (dts, cts) = clock.times(track, sample);
                let tag = m
                    .frame(track, dts, cts, sample.keyframe, sample.data)
                    .ok_or("not carried by FLV (a second track of its kind, or empty)")?;
                out.extend_from_slice(&tag);
                Ok(())
            }
        }
    }
}

/// Where an HLS session's bytes go (the `hls` plugin's segment window).
/// Called on the producer's thread: no blocking.
pub trait SegmentSink: Send + Sync {
    /// The muxer is open: the stream's RFC 6381 codecs and, for fMP4, the
    /// init segment.
    fn opened(&self, codecs: String, init: Option<Vec<u8>>);
    /// A frame of the clock track (the video, else the first track) at
    /// `dts` (in `rate`) comes next; `can_cut`: it may start a segment (a
    /// video keyframe, or any frame without video). Returns `true` when a
    /// new segment starts with it.
    fn frame_time(&self, dts: i64, rate: u32, can_cut: bool) -> bool;
    /// Bytes of the segment being written.
    fn append(&self, bytes: &[u8]);
    /// The session ended, with the reason when it failed.
    fn ended(&self, reason: Option<String>);
}

/// Where the bytes go.
pub enum Output {
    /// A streamed HTTP answer: the container's header, then frames.
    Body {
        responder: Option<Responder>,
        sink: Option<BodySink>,
        /// Extra headers (`Content-Disposition`).
        headers: Vec<(String, String)>,
    },
    /// MSE: the content type as a text message, then binary fMP4.
    Ws(WsSender),
    /// `frame.mp4`: the header and the first keyframe, answered whole.
    Frame {
        responder: Option<Responder>,
        headers: Vec<(String, String)>,
    },
    /// An HLS session's segments.
    Segments(Arc<dyn SegmentSink>),
}

pub struct Session {
    host: Host,
    runtime: tokio::runtime::Handle,
    format: Format,
    state: Mutex<State>,
}

struct State {
    output: Output,
    /// The graph consumer id; 0 until `add_consumer` returned.
    consumer: u64,
    attached: bool,
    client_asked: bool,
    client: Option<Client>,
    info: Value,
    /// Per consumer track: what is written (`None`: a codec we cannot carry).
    tracks: Vec<Option<CodecInfo>>,
    /// Per consumer track: the container's track index.
    map: Vec<Option<usize>>,
    container: Option<Container>,
    display: Display,
    /// The track whose timestamps cut HLS segments: the video, else the first.
    clock_track: Option<usize>,
    has_video: bool,
    started: bool,
    /// Frames are skipped until the next video keyframe (slow client).
    waiting: bool,
    done: bool,
    buf: Vec<u8>,
}

impl Session {
    /// Attaches a new consumer writing `format` to `output`.
    pub fn start(
        ctx: &InitContext,
        stream: &str,
        query: &str,
        info: Value,
        format: Format,
        output: Output,
        display: Display,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            host: ctx.host.clone(),
            runtime: ctx.runtime.clone(),
            format,
            state: Mutex::new(State {
                output,
                consumer: 0,
                attached: false,
                client_asked: false,
                client: None,
                info: info.clone(),
                tracks: Vec::new(),
                map: Vec::new(),
                container: None,
                display,
                clock_track: None,
                has_video: false,
                started: false,
                waiting: true,
                done: false,
                buf: Vec::new(),
            }),
        });
        let id = ctx
            .host
            .add_consumer(stream, query, info, Handle(session.clone()));
        let done = {
            let mut st = session.lock();
            st.consumer = id;
            session.maybe_add_client(&mut st);
            st.done
        };
        if done {
            // It ended (failed, client gone) before we knew its id.
            session.remove(None, id);
        }
        session
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts bytes handed to the client outside the packet path (an HLS
    /// segment served).
    pub fn sent(&self, bytes: usize) {
        if let Some(c) = &self.lock().client {
            c.sent(bytes, 1);
        }
    }

    /// Ends the session: the answer or stream is closed and the consumer
    /// leaves the stream. Idempotent.
    pub fn leave(&self) {
        self.end(None);
    }

    fn end(&self, error: Option<(u16, String)>) {
        let (client, id) = {
            let mut st = self.lock();
            if st.done {
                return;
            }
            st.done = true;
            close_output(&mut st.output, error, self.format);
            (st.client.take(), st.consumer)
        };
        if id != 0 {
            self.remove(client, id);
        }
    }

    /// Leaves the graph from another thread: `end` may run on the producer's
    /// thread, under the graph's track lock.
    fn remove(&self, client: Option<Client>, id: u64) {
        let host = self.host.clone();
        self.runtime.spawn(async move {
            drop(client);
            host.remove_consumer(id);
        });
    }

    /// Registers the client record (for drops and bytes as sent) once the
    /// consumer is both known and in the graph.
    fn maybe_add_client(self: &Arc<Self>, st: &mut State) {
        if st.client_asked || st.consumer == 0 || !st.attached || st.done {
            return;
        }
        st.client_asked = true;
        let (me, id, info) = (self.clone(), st.consumer, st.info.clone());
        // Not under our lock: the graph takes its own locks to add it.
        self.runtime.spawn(async move {
            let client = me.host.add_client(id, info);
            let mut st = me.lock();
            if !st.done {
                st.client = Some(client);
            }
        });
    }

    fn fail(&self, what: &str) {
        self.end(Some((500, format!("{}: {what}", self.format.name()))));
    }

    fn attached(self: &Arc<Self>, medias: Vec<Media>) {
        let mut st = self.lock();
        if st.done {
            return;
        }
        st.attached = true;
        let mut n = 0;
        for m in &medias {
            let info = m
                .codecs
                .first()
                .and_then(to_info)
                .filter(|i| self.format.supports(i.name))
                // ADTS holds one track.
                .filter(|_| self.format != Format::Adts || n == 0);
            let index = st.tracks.len();
            st.map.push(info.as_ref().map(|_| {
                n += 1;
                n - 1
            }));
            if let Some(i) = &info {
                if i.kind() == MediaKind::Video && !st.has_video {
                    st.has_video = true;
                    st.clock_track = Some(index);
                } else if st.clock_track.is_none() {
                    st.clock_track = Some(index);
                }
            }
            st.tracks.push(info);
        }
        if n == 0 {
            drop(st);
            return self.fail("no track this format can carry");
        }
        self.maybe_add_client(&mut st);
        if let Err(e) = try_open(&mut st, self.format) {
            drop(st);
            self.fail(&e);
        }
    }

    fn packet(&self, track: u32, p: &Packet) {
        let mut st = self.lock();
        if st.done {
            return;
        }
        let Some(Some(ctrack)) = st.map.get(track as usize).copied() else {
            return;
        };
        let Some(name) = st.tracks[track as usize].as_ref().map(|i| i.name) else {
            return;
        };
        let video = name.kind() == MediaKind::Video;
        let keyframe = p.is_keyframe();
        if st.container.is_none() {
            // Parameter sets only in band: the first keyframe brings them.
            if !(video && keyframe) {
                return;
            }
            if let (Some(sets), Some(info)) = (
                parameter_sets_from_frame(name, &p.payload),
                st.tracks[track as usize].as_mut(),
            ) {
                info.extradata = sets;
                info.width = 0;
                info.height = 0;
            }
            if let Err(e) = try_open(&mut st, self.format) {
                drop(st);
                return self.fail(&e);
            }
            if st.container.is_none() || st.done {
                return;
            }
        }
        if st.waiting {
            let resume = !st.has_video || (video && keyframe);
            if !resume {
                if st.started {
                    count_drop(&st);
                }
                return;
            }
            st.waiting = false;
            st.started = true;
        }
        let sample = Sample {
            dts: p.dts,
            pts: p.pts,
            keyframe: keyframe || !video,
            arrival_us: p.received_at_us,
            data: &p.payload,
        };
        let clock = st.clock_track == Some(track as usize);
        let has_video = st.has_video;
        let State {
            container,
            output,
            client,
            buf,
            tracks,
            ..
        } = &mut *st;
        let Some(container) = container.as_mut() else {
            return;
        };
        match output {
            Output::Ws(ws) => {
                // A camera back with another resolution: MSE takes a new init
                // segment mid-stream. (A progressive file cannot; its decoder
                // reads the new sets in band.)
                if let Container::Fmp4(w) = container {
                    if video && keyframe && w.update_parameter_sets(ctrack, &p.payload) {
                        ws.send_binary(w.init_segment());
                    }
                }
            }
            Output::Segments(segs) if clock => {
                let rate = tracks[track as usize]
                    .as_ref()
                    .map_or(90_000, |i| i.clock_rate);
                let cut = segs.frame_time(p.dts, rate, keyframe || !has_video);
                if cut && !(video && keyframe) {
                    // A segment that does not start with a video keyframe
                    // (audio only, or a keyframe that never came) still
                    // starts with the tables.
                    if let Container::Ts(m) = container {
                        m.repeat_tables();
                    }
                }
            }
            _ => {}
        }
        buf.clear();
        if let Err(e) = container.write(ctrack, &sample, buf) {
            tracing::debug!("{}: frame skipped: {e}", self.format.name());
            return;
        }
        let len = buf.len();
        let status = match output {
            Output::Body { sink: Some(s), .. } => s.try_send(std::mem::take(buf)),
            Output::Body { .. } => SendStatus::Closed,
            Output::Ws(ws) => ws.send_binary(std::mem::take(buf)),
            Output::Segments(segs) => {
                segs.append(buf);
                return;
            }
            Output::Frame { responder, headers } => {
                if let Some(r) = responder.take() {
                    let mut body = container.header();
                    body.extend_from_slice(buf);
                    let ct = container.content_type();
                    let mut h: Vec<(&str, &str)> = vec![("Content-Type", ct.as_str())];
                    h.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    if let Some(c) = client {
                        c.sent(body.len(), 1);
                    }
                    r.respond_with(200, &h, body);
                }
                drop(st);
                self.leave();
                return;
            }
        };
        match status {
            SendStatus::Ok => {
                if let Some(c) = &st.client {
                    c.sent(len, 1);
                }
            }
            SendStatus::Full => {
                // Resume at the next keyframe: a frame that depends on a
                // dropped one would only show garbage.
                st.waiting = st.has_video;
                count_drop(&st);
            }
            SendStatus::Closed => {
                drop(st);
                self.leave();
            }
        }
    }
}

fn count_drop(st: &State) {
    if let Some(c) = &st.client {
        c.dropped(1);
    }
}

/// Builds the container once every video track has its parameter sets, and
/// starts the output (headers, MSE's content type, the header bytes).
fn try_open(st: &mut State, format: Format) -> Result<(), String> {
    if st.container.is_some() {
        return Ok(());
    }
    let infos: Vec<CodecInfo> = st.tracks.iter().flatten().cloned().collect();
    let missing_sets = infos.iter().any(|i| {
        matches!(i.name, CodecName::H264 | CodecName::H265 | CodecName::Av1)
            && i.extradata.is_empty()
    });
    if missing_sets {
        return Ok(());
    }
    let container = Container::open(format, &infos, st.display)?;
    let content_type = container.content_type();
    match &mut st.output {
        Output::Body {
            responder,
            sink,
            headers,
        } => {
            if let Some(r) = responder.take() {
                let mut h: Vec<(&str, &str)> = vec![
                    ("Content-Type", content_type.as_str()),
                    ("Cache-Control", "no-cache"),
                ];
                h.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let s = r.stream(200, &h);
                let header = container.header();
                if !header.is_empty() {
                    let _ = s.try_send(header);
                }
                *sink = Some(s);
            }
        }
        Output::Ws(ws) => {
            ws.send_json(&json!({"type": "mse", "value": content_type}));
            ws.send_binary(container.header());
        }
        Output::Frame { .. } => {}
        Output::Segments(segs) => {
            // RFC 6381 codecs for the multivariant playlist, whatever the
            // segments' container.
            let (codecs, init) = match &container {
                Container::Fmp4(w) => (w.mime_codecs(), Some(w.init_segment())),
                _ => (
                    Fmp4Writer::new(&infos)
                        .map(|w| w.mime_codecs())
                        .unwrap_or_default(),
                    None,
                ),
            };
            segs.opened(codecs, init);
        }
    }
    st.container = Some(container);
    Ok(())
}

fn close_output(output: &mut Output, error: Option<(u16, String)>, format: Format) {
    match output {
        Output::Body {
            responder, sink, ..
        } => {
            if let Some(r) = responder.take() {
                let (status, text) =
                    error.unwrap_or((500, format!("{}: stream ended", format.name())));
                r.text(status, &text);
            }
            if let Some(s) = sink.take() {
                s.finish();
            }
        }
        Output::Frame { responder, .. } => {
            if let Some(r) = responder.take() {
                let (status, text) = error.unwrap_or((
                    500,
                    format!("{}: no keyframe before the stream ended", format.name()),
                ));
                r.text(status, &text);
            }
        }
        Output::Ws(ws) => {
            if let Some((_, text)) = error {
                ws.send_json(&json!({"type": "error", "value": text}));
            }
        }
        Output::Segments(segs) => segs.ended(error.map(|e| e.1)),
    }
}

/// The graph's side of a session.
struct Handle(Arc<Session>);

impl Consumer for Handle {
    fn attached(&self, medias: Vec<Media>) {
        self.0.attached(medias)
    }

    fn failed(&self, error: String) {
        let status = if error.contains("not found") {
            404
        } else {
            500
        };
        self.0.end(Some((status, error)))
    }

    fn packet(&self, track: u32, packet: &Packet) {
        self.0.packet(track, packet)
    }

    fn closed(&self, _reason: String) {
        self.0.leave()
    }
}
