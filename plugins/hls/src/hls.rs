//! HLS sessions, with go2rtc's paths: `GET /api/stream.m3u8?src=` starts a
//! session (one graph consumer, listed as one client) and answers a
//! multivariant playlist naming `hls/playlist.m3u8?id=`; the media playlist
//! lists the session's recent segments (`hls/segment.ts?id=&n=`, or with
//! `?mp4` `hls/init.mp4?id=` and `hls/segment.m4s?id=&n=`).
//!
//! Segments are cut at video keyframes once they hold [`MIN_SEGMENT`]; the
//! first one starts at the stream's cached keyframe. A session keeps at most
//! [`KEEP`] segments and [`MAX_SESSION_BYTES`], so a reader that falls
//! behind (or stops) costs a bounded amount of memory, and a session nobody
//! asked for anything in [`EXPIRE`] is ended and leaves the stream.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Responder, WsSender};
use camrouter_plugin_api::url::query_pairs;
use serde_json::json;
use tokio::sync::Notify;

use camrouter_plugin_api::muxed::{query, Display, Format, Output, SegmentSink, Session};

/// Shortest segment: cuts happen at the first keyframe after this.
const MIN_SEGMENT: f64 = 1.0;
/// A segment is cut here even without a keyframe (a camera with a very
/// long GOP, or one that lost its keyframes).
const MAX_SEGMENT: f64 = 10.0;
/// Segments a session keeps (the playlist's window).
const KEEP: usize = 6;
/// A segment is cut at this size even without a keyframe.
const MAX_SEGMENT_BYTES: usize = 8 << 20;
/// Everything a session holds: its segments and the one being written.
const MAX_SESSION_BYTES: usize = 32 << 20;
/// A session with no request for this long is ended.
pub const EXPIRE: Duration = Duration::from_secs(10);
/// Sessions at once (all streams); more get 503.
const MAX_SESSIONS: usize = 128;
/// How long a request waits for the first segment, a segment being
/// written, or the codecs (the camera's first keyframe when it was idle).
const WAIT: Duration = Duration::from_secs(20);
/// What an HLS session asks of the stream (go2rtc's TS and MP4 defaults).
const QUERY: &str = "video=h264,h265&audio=aac";

struct Segment {
    n: u64,
    duration: f64,
    data: Vec<u8>,
}

/// One session's segment window, filled by its consumer.
pub struct Segments {
    state: Mutex<SegState>,
    notify: Notify,
}

#[derive(Default)]
struct SegState {
    /// RFC 6381 codecs once the muxer is open.
    codecs: Option<String>,
    /// fMP4: the init segment.
    init: Option<Vec<u8>>,
    done: VecDeque<Segment>,
    done_bytes: usize,
    current: Vec<u8>,
    /// Time (seconds, the clock track's) where the current segment starts.
    start: Option<f64>,
    /// Number of the segment being written.
    next_n: u64,
    /// Why the session ended (`Some("")` for no particular reason).
    ended: Option<String>,
    last_access: Option<Instant>,
}

impl Segments {
    fn new() -> Segments {
        Segments {
            state: Mutex::new(SegState {
                last_access: Some(Instant::now()),
                ..SegState::default()
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SegState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        self.lock().last_access = Some(Instant::now());
    }

    fn idle_for(&self) -> Duration {
        self.lock()
            .last_access
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }
}

/// Filled by the session's consumer, on the producer's thread.
impl SegmentSink for Segments {
    /// The muxer is open: the playlist can name the codecs.
    fn opened(&self, codecs: String, init: Option<Vec<u8>>) {
        let mut st = self.lock();
        st.codecs = Some(codecs);
        st.init = init;
        drop(st);
        self.notify.notify_waiters();
    }

    /// The session ended; waiting requests get `reason`.
    fn ended(&self, reason: Option<String>) {
        let mut st = self.lock();
        st.ended.get_or_insert(reason.unwrap_or_default());
        st.current = Vec::new();
        drop(st);
        self.notify.notify_waiters();
    }

    /// A frame of the clock track at `dts` (in `rate`) comes next; `true`
    /// when the segment was cut before it. `can_cut`: it is a video keyframe
    /// (or the session has no video).
    fn frame_time(&self, dts: i64, rate: u32, can_cut: bool) -> bool {
        let t = dts as f64 / f64::from(rate.max(1));
        let mut st = self.lock();
        let Some(start) = st.start else {
            st.start = Some(t);
            return false;
        };
        let elapsed = t - start;
        let cut = !st.current.is_empty()
            && ((can_cut && elapsed >= MIN_SEGMENT)
                || elapsed >= MAX_SEGMENT
                || !(0.0..=MAX_SEGMENT).contains(&elapsed)
                || st.current.len() >= MAX_SEGMENT_BYTES);
        if !cut {
            return false;
        }
        let data = std::mem::take(&mut st.current);
        let n = st.next_n;
        st.next_n += 1;
        st.done_bytes += data.len();
        st.done.push_back(Segment {
            n,
            duration: elapsed.clamp(0.001, MAX_SEGMENT),
            data,
        });
        while st.done.len() > KEEP || (st.done_bytes > MAX_SESSION_BYTES && st.done.len() > 1) {
            if let Some(old) = st.done.pop_front() {
                st.done_bytes -= old.data.len();
            }
        }
        st.start = Some(t);
        drop(st);
        self.notify.notify_waiters();
        true
    }

    /// Bytes of the segment being written.
    fn append(&self, bytes: &[u8]) {
        let mut st = self.lock();
        // Frames without a clock frame to cut at (a video track that went
        // silent while audio goes on) are dropped past the cap.
        if st.ended.is_none() && st.current.len() + bytes.len() <= 2 * MAX_SEGMENT_BYTES {
            st.current.extend_from_slice(bytes);
        }
    }
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

fn text(status: u16, s: &str) -> Answer {
    (status, "text/plain; charset=utf-8", s.as_bytes().to_vec())
}

/// Waits until `f` has an answer, the session ends or [`WAIT`] passes.
async fn wait_for(segs: &Segments, f: impl Fn(&SegState) -> Option<Answer>) -> Answer {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let notified = segs.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = segs.lock();
            if let Some(a) = f(&st) {
                return a;
            }
            if let Some(reason) = &st.ended {
                let reason = if reason.is_empty() {
                    "hls: session ended"
                } else {
                    reason
                };
                return text(404, reason);
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return text(
                504,
                "hls: nothing to send yet (no keyframe from the camera)",
            );
        }
    }
}

struct Entry {
    segs: Arc<Segments>,
    session: Arc<Session>,
    format: Format,
}

/// All HLS sessions of the plugin.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends sessions nobody reads and those whose stream ended.
    pub fn sweep(&self) {
        let gone: Vec<Entry> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, e)| e.segs.is_ended() || e.segs.idle_for() > EXPIRE)
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for e in gone {
            e.session.leave();
        }
    }

    pub fn shutdown(&self) {
        let all: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for e in all {
            e.session.leave();
        }
    }

    fn get(&self, id: &str) -> Option<(Arc<Segments>, Arc<Session>, Format)> {
        self.lock()
            .get(id)
            .map(|e| (e.segs.clone(), e.session.clone(), e.format))
    }
}

/// A session id: 16 hex digits from the process's random hasher keys and a
/// counter (ids are not guessable from one another).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

fn respond(responder: Responder, (status, ct, body): Answer) {
    if status >= 400 {
        return responder.text(status, &String::from_utf8_lossy(&body));
    }
    responder.respond_with(
        status,
        &[("Content-Type", ct), ("Cache-Control", "no-cache")],
        body,
    );
}

/// Starts a session on `src`: its id and its segment window, or the error
/// answer.
fn open(
    ctx: &InitContext,
    sessions: &Sessions,
    src: &str,
    query: &str,
    format: Format,
    info: serde_json::Value,
) -> Result<(String, Arc<Segments>), (u16, &'static str)> {
    if src.is_empty() || !ctx.host.stream_exists(src) {
        return Err((404, "stream not found"));
    }
    if sessions.lock().len() >= MAX_SESSIONS {
        return Err((503, "hls: too many sessions"));
    }
    let segs = Arc::new(Segments::new());
    let session = Session::start(
        ctx,
        src,
        query,
        info,
        format,
        Output::Segments(segs.clone()),
        Display::default(),
    );
    let id = new_id();
    sessions.lock().insert(
        id.clone(),
        Entry {
            segs: segs.clone(),
            session,
            format,
        },
    );
    Ok((id, segs))
}

/// The multivariant playlist naming session `id`'s media playlist, once
/// the stream's codecs are known.
async fn master(segs: &Segments, id: &str) -> Answer {
    wait_for(segs, |st| {
        // Safari plays FLAC in fMP4 but refuses it in a playlist (as go2rtc).
        let codecs = st.codecs.as_ref()?.replace("flac", "mp4a.40.2");
        // Bandwidth matters to Safari; the codecs let players pick their
        // decoder before the first segment.
        let body = format!(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS=\"{codecs}\"\nhls/playlist.m3u8?id={id}\n"
        );
        Some((200, "application/vnd.apple.mpegurl", body.into_bytes()))
    })
    .await
}

/// `GET /api/stream.m3u8?src=NAME[&mp4]`: TS segments, or with `mp4` (and
/// go2rtc's `mp4=flac|all`, `video=`, `audio=`) fMP4 ones.
pub fn start(ctx: &InitContext, sessions: &Arc<Sessions>, req: &HttpRequest, responder: Responder) {
    let pairs = query_pairs(req.query.as_str());
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (format, query) = if get("mp4").is_some() {
        match query::from_params(&pairs) {
            Ok(q) => (Format::Fmp4, q),
            Err(e) => return responder.text(400, &e),
        }
    } else {
        (Format::Ts, QUERY.to_string())
    };
    let info = json!({
        "format_name": if format == Format::Fmp4 { "hls/fmp4" } else { "hls/mpegts" },
        "protocol": "http",
        "remote_addr": req.remote_addr.as_str(),
        "user_agent": crate::user_agent(req),
    });
    let src = get("src").unwrap_or_default();
    let (id, segs) = match open(ctx, sessions, src, &query, format, info) {
        Ok(s) => s,
        Err((status, text)) => return responder.text(status, text),
    };
    ctx.runtime.spawn(async move {
        let answer = master(&segs, &id).await;
        respond(responder, answer);
    });
}

/// `{"type":"hls","value":"<codecs>"}` on `/api/ws?src=NAME` (go2rtc's
/// player when the browser has no MSE, e.g. iPhone Safari): an fMP4 session
/// for the codecs the browser lists, answered `{"type":"hls","value":
/// "<multivariant playlist>"}`. The session expires like any other.
pub fn ws(ctx: &InitContext, sessions: &Arc<Sessions>, message: &str, sender: WsSender) {
    let error = |text: &str| {
        sender.send_json(&json!({"type": "error", "value": text}));
    };
    let Ok(msg) = serde_json::from_str::<serde_json::Value>(message) else {
        return error("hls: bad message");
    };
    let field = |k: &str| msg.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let src = query::ws_src(&msg);
    let query = match query::from_mse_codecs(field("value")) {
        Ok(q) => q,
        Err(e) => return error(&e),
    };
    let info = json!({
        "format_name": "hls/fmp4",
        "protocol": "ws",
        "remote_addr": field("remote_addr"),
        "user_agent": field("user_agent"),
    });
    let (id, segs) = match open(ctx, sessions, &src, &query, Format::Fmp4, info) {
        Ok(s) => s,
        Err((_, text)) => return error(text),
    };
    ctx.runtime.spawn(async move {
        let (status, _, body) = master(&segs, &id).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        let kind = if status == 200 { "hls" } else { "error" };
        sender.send_json(&json!({"type": kind, "value": text}));
    });
}

/// Which session route.
#[derive(Clone, Copy)]
pub enum Route {
    Playlist,
    SegmentTs,
    Init,
    SegmentM4s,
}

/// `GET /api/hls/{playlist.m3u8,segment.ts,init.mp4,segment.m4s}?id=…`.
pub fn serve(
    ctx: &InitContext,
    sessions: &Arc<Sessions>,
    route: Route,
    req: &HttpRequest,
    responder: Responder,
) {
    let pairs = query_pairs(req.query.as_str());
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some((segs, session, format)) = get("id").and_then(|id| sessions.get(id)) else {
        return responder.text(404, "hls: no such session (expired or never started)");
    };
    let id = get("id").unwrap_or_default().to_string();
    let mp4 = format == Format::Fmp4;
    let n = match route {
        Route::SegmentTs | Route::SegmentM4s => match get("n").map(str::parse::<u64>) {
            Some(Ok(n)) => Some(n),
            _ => return responder.text(400, "hls: n must be a segment number"),
        },
        _ => None,
    };
    match (route, mp4) {
        (Route::SegmentTs, true) | (Route::Init | Route::SegmentM4s, false) => {
            return responder.text(404, "hls: this session has no such file (TS vs ?mp4)");
        }
        _ => {}
    }
    segs.touch();
    ctx.runtime.spawn(async move {
        let answer = match route {
            Route::Playlist => {
                wait_for(&segs, |st| {
                    (!st.done.is_empty()).then(|| {
                        (
                            200,
                            "application/vnd.apple.mpegurl",
                            playlist(st, &id, mp4).into_bytes(),
                        )
                    })
                })
                .await
            }
            Route::Init => {
                wait_for(&segs, |st| st.init.clone().map(|i| (200, "video/mp4", i))).await
            }
            Route::SegmentTs | Route::SegmentM4s => {
                let n = n.unwrap_or_default();
                let ct = if mp4 {
                    "video/iso.segment"
                } else {
                    "video/mp2t"
                };
                let first = {
                    let st = segs.lock();
                    st.done.front().map_or(st.next_n, |s| s.n)
                };
                if n < first {
                    text(404, "hls: segment expired")
                } else if n > segs.lock().next_n {
                    text(404, "hls: no such segment yet")
                } else {
                    wait_for(&segs, |st| {
                        st.done
                            .iter()
                            .find(|s| s.n == n)
                            .map(|s| (200, ct, s.data.clone()))
                    })
                    .await
                }
            }
        };
        segs.touch();
        if answer.0 == 200 {
            session.sent(answer.2.len());
        }
        respond(responder, answer);
    });
}

/// The media playlist: the window of finished segments.
fn playlist(st: &SegState, id: &str, mp4: bool) -> String {
    use std::fmt::Write;
    let target = st
        .done
        .iter()
        .map(|s| s.duration.ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let first = st.done.front().map_or(0, |s| s.n);
    let mut p = format!(
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n",
        if mp4 { 6 } else { 3 }
    );
    if mp4 {
        let _ = writeln!(p, "#EXT-X-MAP:URI=\"init.mp4?id={id}\"");
    }
    let ext = if mp4 { "m4s" } else { "ts" };
    for s in &st.done {
        let _ = writeln!(
            p,
            "#EXTINF:{:.3},\nsegment.{ext}?id={id}&n={}",
            s.duration, s.n
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(segs: &Segments, secs: f64, keyframe: bool, bytes: usize) -> bool {
        let cut = segs.frame_time((secs * 90_000.0) as i64, 90_000, keyframe);
        segs.append(&vec![0; bytes]);
        cut
    }

    #[test]
    fn cuts_at_keyframes_after_the_minimum_and_keeps_a_window() {
        let s = Segments::new();
        // 25 fps, a keyframe every 2 s.
        let mut cuts = 0;
        for i in 0..(25 * 30) {
            let t = f64::from(i) / 25.0;
            if feed(&s, t, i % 50 == 0, 1000) {
                cuts += 1;
                assert_eq!(i % 50, 0, "cut only at keyframes");
            }
        }
        assert_eq!(cuts, 14);
        let st = s.lock();
        assert_eq!(st.done.len(), KEEP);
        assert_eq!(st.done.back().unwrap().n, 13);
        assert!((st.done[0].duration - 2.0).abs() < 1e-6);
        assert_eq!(st.done[0].data.len(), 50 * 1000);
        let p = playlist(&st, "abc", false);
        assert!(p.contains("#EXT-X-TARGETDURATION:2\n"), "{p}");
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:8\n"), "{p}");
        assert!(
            p.ends_with("#EXTINF:2.000,\nsegment.ts?id=abc&n=13\n"),
            "{p}"
        );
        let p = playlist(&st, "abc", true);
        assert!(p.contains("#EXT-X-MAP:URI=\"init.mp4?id=abc\"\n"));
        assert!(p.contains("segment.m4s?id=abc&n=13\n"));
    }

    #[test]
    fn memory_is_capped_without_keyframes_and_for_huge_frames() {
        let s = Segments::new();
        // No keyframe ever: cut every MAX_SEGMENT seconds anyway.
        for i in 0..(25 * 25) {
            feed(&s, f64::from(i) / 25.0, false, 10);
        }
        assert_eq!(s.lock().done.len(), 2);
        // 1 MB frames: every segment is cut by size, the window by bytes.
        let s = Segments::new();
        for i in 0..200 {
            feed(&s, f64::from(i) / 25.0, false, 1 << 20);
        }
        let st = s.lock();
        assert!(st.done_bytes <= MAX_SESSION_BYTES, "{}", st.done_bytes);
        assert!(st.current.len() <= 2 * MAX_SEGMENT_BYTES);
    }

    #[test]
    fn ids_differ() {
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 16);
    }
}
