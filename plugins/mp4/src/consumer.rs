//! One MP4 client = one graph consumer (`stream.mp4`, `frame.mp4`, an MSE
//! socket). The graph replays its cached GOP to a new consumer, so the first
//! fragment comes from the cached keyframe at once. Muxing runs on the
//! producer's thread and only hands finished fragments to a bounded,
//! non-blocking queue: a client that cannot keep up loses frames up to the
//! next keyframe, so its memory stays bounded and it never delays others.

use std::sync::{Arc, Mutex, MutexGuard};

use camrouter_media::fmp4::{parameter_sets_from_frame, Fmp4Writer, Sample};
use camrouter_media::{CodecInfo, CodecName, MediaKind};
use camrouter_plugin_api::abi::{Media, Packet, SendStatus};
use camrouter_plugin_api::media::to_info;
use camrouter_plugin_api::sdk::{
    BodySink, Client, Consumer, Host, InitContext, Responder, WsSender,
};
use serde_json::{json, Value};

/// Where the bytes go.
pub enum Output {
    /// `stream.mp4`: the answer starts with the init segment, then streams.
    Body {
        responder: Option<Responder>,
        sink: Option<BodySink>,
        /// Extra headers (`Content-Disposition`).
        headers: Vec<(String, String)>,
    },
    /// MSE: the content type as a text message, then binary fMP4.
    Ws(WsSender),
    /// `frame.mp4`: init segment and the first keyframe, answered whole.
    Frame {
        responder: Option<Responder>,
        headers: Vec<(String, String)>,
    },
}

/// go2rtc's `rotate` and `scale` for `stream.mp4`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Display {
    pub rotate: u16,
    pub aspect: Option<(u32, u32)>,
}

pub struct Session {
    host: Host,
    runtime: tokio::runtime::Handle,
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
    /// Per consumer track: what is written (`None`: a codec MP4 cannot carry).
    tracks: Vec<Option<CodecInfo>>,
    /// Per consumer track: the writer's track index.
    map: Vec<Option<usize>>,
    writer: Option<Fmp4Writer>,
    has_video: bool,
    display: Display,
    /// The first keyframe went out.
    started: bool,
    /// Frames are skipped until the next video keyframe (slow client).
    waiting: bool,
    done: bool,
}

impl Session {
    /// Attaches a new consumer for `output` to `stream`.
    pub fn start(
        ctx: &InitContext,
        stream: &str,
        query: &str,
        info: Value,
        output: Output,
        display: Display,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            host: ctx.host.clone(),
            runtime: ctx.runtime.clone(),
            state: Mutex::new(State {
                output,
                consumer: 0,
                attached: false,
                client_asked: false,
                client: None,
                info: info.clone(),
                tracks: Vec::new(),
                map: Vec::new(),
                writer: None,
                has_video: false,
                display,
                started: false,
                waiting: true,
                done: false,
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
            close_output(&mut st.output, error);
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
                .filter(|i| Fmp4Writer::supports(i.name));
            st.map.push(info.as_ref().map(|_| {
                n += 1;
                n - 1
            }));
            if info.as_ref().is_some_and(|i| i.kind() == MediaKind::Video) {
                st.has_video = true;
            }
            st.tracks.push(info);
        }
        if n == 0 {
            drop(st);
            self.end(Some((500, "mp4: no track MP4 can carry".into())));
            return;
        }
        self.maybe_add_client(&mut st);
        if let Err(e) = try_open(&mut st) {
            drop(st);
            self.end(Some((500, format!("mp4: {e}"))));
        }
    }

    fn packet(&self, track: u32, p: &Packet) {
        let mut st = self.lock();
        if st.done {
            return;
        }
        let Some(Some(wtrack)) = st.map.get(track as usize).copied() else {
            return;
        };
        let Some(name) = st.tracks[track as usize].as_ref().map(|i| i.name) else {
            return;
        };
        let video = name.kind() == MediaKind::Video;
        let keyframe = p.is_keyframe();
        if st.writer.is_none() {
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
            if let Err(e) = try_open(&mut st) {
                drop(st);
                self.end(Some((500, format!("mp4: {e}"))));
                return;
            }
            if st.writer.is_none() || st.done {
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
        let State {
            writer,
            output,
            client,
            ..
        } = &mut *st;
        let Some(writer) = writer.as_mut() else {
            return;
        };
        if let Output::Ws(ws) = output {
            // A camera back with another resolution: MSE takes a new init
            // segment mid-stream. (A progressive file cannot; its decoder
            // reads the new sets in band.)
            if video && keyframe && writer.update_parameter_sets(wtrack, &p.payload) {
                ws.send_binary(writer.init_segment());
            }
        }
        let fragment = match writer.fragment(wtrack, &sample) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("mp4: frame skipped: {e}");
                return;
            }
        };
        let len = fragment.len();
        let status = match output {
            Output::Body { sink: Some(s), .. } => s.try_send(fragment),
            Output::Body { .. } => SendStatus::Closed,
            Output::Ws(ws) => ws.send_binary(fragment),
            Output::Frame { responder, headers } => {
                if let Some(r) = responder.take() {
                    let mut body = writer.init_segment();
                    body.extend_from_slice(&fragment);
                    let ct = writer.content_type();
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
                // Resume at the next keyframe: a fragment that depends on a
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

/// Builds the writer once every video track has its parameter sets, and
/// starts the output (headers and init segment).
fn try_open(st: &mut State) -> Result<(), String> {
    if st.writer.is_some() {
        return Ok(());
    }
    let infos: Vec<CodecInfo> = st.tracks.iter().flatten().cloned().collect();
    let missing_sets = infos
        .iter()
        .any(|i| matches!(i.name, CodecName::H264 | CodecName::H265) && i.extradata.is_empty());
    if missing_sets {
        return Ok(());
    }
    let mut writer = Fmp4Writer::new(&infos).map_err(|e| e.to_string())?;
    writer
        .set_rotation(st.display.rotate)
        .map_err(|e| e.to_string())?;
    if let Some((h, v)) = st.display.aspect {
        writer.set_pixel_aspect(h, v).map_err(|e| e.to_string())?;
    }
    let init = writer.init_segment();
    let content_type = writer.content_type();
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
                let _ = s.try_send(init);
                *sink = Some(s);
            }
        }
        Output::Ws(ws) => {
            ws.send_json(&json!({"type": "mse", "value": content_type}));
            ws.send_binary(init);
        }
        Output::Frame { .. } => {}
    }
    st.writer = Some(writer);
    Ok(())
}

fn close_output(output: &mut Output, error: Option<(u16, String)>) {
    match output {
        Output::Body {
            responder, sink, ..
        } => {
            if let Some(r) = responder.take() {
                let (status, text) = error.unwrap_or((500, "mp4: stream ended".into()));
                r.text(status, &text);
            }
            if let Some(s) = sink.take() {
                s.finish();
            }
        }
        Output::Frame { responder, .. } => {
            if let Some(r) = responder.take() {
                let (status, text) =
                    error.unwrap_or((500, "mp4: no keyframe before the stream ended".into()));
                r.text(status, &text);
            }
        }
        Output::Ws(ws) => {
            if let Some((_, text)) = error {
                ws.send_json(&json!({"type": "error", "value": text}));
            }
        }
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
