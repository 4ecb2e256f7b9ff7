//! `GET /api/frame.jpeg`: the cached keyframe of the stream (the graph
//! replays its GOP to a new consumer at once), as is for a JPEG source,
//! decoded in-process for H.264, through ffmpeg for H.265.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Consumer, Responder};
use camrouter_plugin_api::{Codec, Media, Packet, RArc, RVec};
use tokio::sync::{oneshot, watch};

use crate::decode::H264ToJpeg;
use crate::params::{Params, Shape};
use crate::State;

/// How long a snapshot waits for a keyframe from an idle stream (camera
/// connect plus one GOP).
const KEYFRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// Codecs a snapshot can come from, in the order sources are tried.
pub const SNAPSHOT_QUERY: &str = "video=jpeg,h264,h265";

/// While a stream's snapshots were asked for within this long, each new
/// keyframe is decoded as it arrives (Home Assistant asks every ~10 s, so
/// with a GOP of seconds every request would otherwise find a new keyframe
/// and pay a full decode); after it, the stream costs nothing again.
const AHEAD_IDLE: Duration = Duration::from_secs(60);
/// Sizes (shapes) of one stream kept and decoded ahead, most recent first:
/// bounds memory to this many pictures per stream.
const AHEAD_SHAPES: usize = 3;

/// [`AHEAD_IDLE`], or for tests `CAMROUTER_MJPEG_AHEAD_IDLE_MS`.
fn ahead_idle() -> Duration {
    std::env::var("CAMROUTER_MJPEG_AHEAD_IDLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(AHEAD_IDLE)
}

/// A picture stored for `cache=` requests, with when it was taken.
type Stored = (Instant, Arc<Vec<u8>>);

/// The last picture decoded from a stream's keyframe: while the GOP cache
/// still holds that keyframe, every snapshot of the same shape is this
/// picture again, so it is served without decoding (Home Assistant asks
/// every few seconds; a GOP lasts seconds).
struct Decoded {
    parameter_sets: Vec<u8>,
    keyframe: RArc<RVec<u8>>,
    shape: Shape,
    jpeg: Arc<Vec<u8>>,
    /// Decoded in the background when the keyframe arrived, not for a request.
    ahead: bool,
}

impl Decoded {
    fn matches(&self, codec: &Codec, keyframe: &RArc<RVec<u8>>, shape: &Shape) -> bool {
        self.shape == *shape
            && self.parameter_sets.as_slice() == codec.extradata.as_slice()
            // The same frame is the same allocation in the GOP cache; bytes
            // decide for a source that re-sends an identical keyframe.
            && (std::ptr::eq::<RVec<u8>>(&*self.keyframe, &**keyframe)
                || self.keyframe.as_slice() == keyframe.as_slice())
    }
}

#[derive(Default)]
pub struct Snapshots {
    /// Stream name → its last picture taken with `cache=`.
    cache: Mutex<HashMap<String, Stored>>,
    /// One H.264 decoder per stream, kept between snapshots.
    decoders: Mutex<HashMap<String, Arc<Mutex<H264ToJpeg>>>>,
    /// Stream name → the pictures of its last decoded keyframe, one per
    /// shape (at most [`AHEAD_SHAPES`]), oldest first.
    decoded: Mutex<HashMap<String, Vec<Decoded>>>,
    /// Streams whose keyframes are decoded ahead: present while its
    /// background task runs.
    ahead: Mutex<HashMap<String, Ahead>>,
    /// Stream name → the background decode in progress, so a request for
    /// that keyframe waits for it instead of decoding it a second time.
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// What a stream's background decoding needs to know about its requests.
struct Ahead {
    last_request: Instant,
    /// Shapes asked for, with when, most recent first.
    shapes: Vec<(Shape, Instant)>,
}

struct InFlight {
    keyframe: RArc<RVec<u8>>,
    shapes: Vec<Shape>,
    done: watch::Receiver<bool>,
}

impl Snapshots {
    fn cached(&self, src: &str, max_age: Duration) -> Option<Arc<Vec<u8>>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(src)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, j)| j.clone())
    }

    fn store(&self, src: &str, jpeg: Arc<Vec<u8>>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(src.to_string(), (Instant::now(), jpeg));
    }

    fn decoded(
        &self,
        src: &str,
        codec: &Codec,
        keyframe: &RArc<RVec<u8>>,
        shape: &Shape,
    ) -> Option<(Arc<Vec<u8>>, bool)> {
        let map = self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        map.get(src)?
            .iter()
            .find(|d| d.matches(codec, keyframe, shape))
            .map(|d| (d.jpeg.clone(), d.ahead))
    }

    fn store_decoded(
        &self,
        src: &str,
        codec: &Codec,
        keyframe: RArc<RVec<u8>>,
        shape: Shape,
        jpeg: Arc<Vec<u8>>,
        ahead: bool,
    ) {
        let mut map = self.decoded.lock().unwrap_or_else(|e| e.into_inner());
        let pictures = map.entry(src.to_string()).or_default();
        pictures.retain(|d| d.shape != shape);
        if pictures.len() >= AHEAD_SHAPES {
            pictures.remove(0);
        }
        pictures.push(Decoded {
            parameter_sets: codec.extradata.to_vec(),
            keyframe,
            shape,
            jpeg,
            ahead,
        });
    }

    /// Records a request; true when the stream's background decoding is
    /// not running and must be started.
    fn note_request(&self, src: &str, shape: Shape) -> bool {
        let now = Instant::now();
        let mut map = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let start = !map.contains_key(src);
        let a = map.entry(src.to_string()).or_insert(Ahead {
            last_request: now,
            shapes: Vec::new(),
        });
        a.last_request = now;
        a.shapes.retain(|(s, _)| *s != shape);
        a.shapes.insert(0, (shape, now));
        a.shapes.truncate(AHEAD_SHAPES);
        start
    }

    /// The shapes to decode ahead, or None (and the stream forgotten) when
    /// no snapshot was asked for within `idle`. Checked and removed under
    /// one lock so a request racing the end starts a new task.
    fn ahead_shapes(&self, src: &str, idle: Duration) -> Option<Vec<Shape>> {
        let mut map = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let a = map.get(src)?;
        if a.last_request.elapsed() >= idle {
            map.remove(src);
            return None;
        }
        Some(
            a.shapes
                .iter()
                .filter(|(_, at)| at.elapsed() < idle)
                .map(|(s, _)| *s)
                .collect(),
        )
    }

    fn idle_left(&self, src: &str, idle: Duration) -> Duration {
        let map = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        map.get(src)
            .map(|a| idle.saturating_sub(a.last_request.elapsed()))
            .unwrap_or_default()
    }

    /// Waits for a background decode of this keyframe and shape, if one runs.
    async fn wait_in_flight(&self, src: &str, keyframe: &RArc<RVec<u8>>, shape: &Shape) -> bool {
        let done = {
            let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(src) {
                Some(f)
                    if f.shapes.contains(shape)
                        && (std::ptr::eq::<RVec<u8>>(&*f.keyframe, &**keyframe)
                            || f.keyframe.as_slice() == keyframe.as_slice()) =>
                {
                    f.done.clone()
                }
                _ => return false,
            }
        };
        let mut done = done;
        // A dropped sender (task gone) ends the wait as well.
        let _ = done.wait_for(|d| *d).await;
        true
    }

    fn decoder(&self, src: &str) -> Arc<Mutex<H264ToJpeg>> {
        let mut map = self.decoders.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(src.to_string()).or_default().clone()
    }
}

pub fn handle(state: &Arc<State>, request: HttpRequest, responder: Responder) {
    let params = match Params::parse(request.query.as_str()) {
        Ok(p) => p,
        Err(e) => return responder.text(400, &e),
    };
    // A deleted stream's stored picture is never served.
    if !state.host.stream_exists(&params.src) {
        return responder.text(404, "stream not found");
    }
    if let Some(max_age) = params.cache {
        if let Some(jpeg) = state.snapshots.cached(&params.src, max_age) {
            return send_jpeg(responder, jpeg.to_vec());
        }
    }
    let info = crate::client_info(&request, "jpeg");
    let st = state.clone();
    state.runtime.spawn(async move {
        let started = Instant::now();
        match snapshot(&st, &params, info).await {
            Ok(jpeg) => {
                tracing::debug!(src = %params.src, ms = started.elapsed().as_millis() as u64, "snapshot");
                if params.cache.is_some() {
                    st.snapshots.store(&params.src, Arc::new(jpeg.clone()));
                }
                send_jpeg(responder, jpeg)
            }
            Err(e) => responder.text(500, &e),
        }
    });
}

fn send_jpeg(responder: Responder, jpeg: Vec<u8>) {
    responder.respond_with(
        200,
        &[
            ("Content-Type", "image/jpeg"),
            ("Cache-Control", "no-cache"),
            ("Pragma", "no-cache"),
        ],
        jpeg,
    )
}

async fn snapshot(
    state: &Arc<State>,
    params: &Params,
    info: serde_json::Value,
) -> Result<Vec<u8>, String> {
    let (codec, payload) = keyframe(state, &params.src, info).await?;
    let name = codec.name.as_str().to_string();
    if name == "JPEG" {
        // As go2rtc: a JPEG source's picture is served as it is, whatever
        // the size params say.
        return Ok(payload.to_vec());
    }
    let start = name == "H264" && state.snapshots.note_request(&params.src, params.shape);
    let r = picture(state, params, &name, codec, payload).await;
    // Started after this request's own decode, so the keyframe the GOP
    // cache replays to the new consumer is found decoded, not decoded twice.
    if start {
        start_ahead(state, &params.src);
    }
    r
}

/// The keyframe's picture: kept, being decoded ahead, or decoded now.
async fn picture(
    state: &Arc<State>,
    params: &Params,
    name: &str,
    codec: Codec,
    payload: RArc<RVec<u8>>,
) -> Result<Vec<u8>, String> {
    let snapshots = &state.snapshots;
    if snapshots
        .wait_in_flight(&params.src, &payload, &params.shape)
        .await
    {
        tracing::debug!(src = %params.src, "snapshot: waited for the decode ahead");
    }
    if let Some((jpeg, ahead)) = snapshots.decoded(&params.src, &codec, &payload, &params.shape) {
        if ahead {
            tracing::debug!(src = %params.src, "snapshot: the picture decoded ahead");
        } else {
            tracing::debug!(src = %params.src, "snapshot: the keyframe's picture again");
        }
        return Ok(jpeg.to_vec());
    }
    let jpeg = match name {
        "H264" => {
            let decoder = snapshots.decoder(&params.src);
            let (shape, codec, payload) = (params.shape, codec.clone(), payload.clone());
            tokio::task::spawn_blocking(move || decode_h264(&decoder, &codec, &payload, &shape))
                .await
                .map_err(|e| format!("mjpeg: decoder task: {e}"))??
        }
        "H265" => crate::hevc::snapshot(&codec.extradata, &payload, &params.shape).await?,
        other => return Err(format!("mjpeg: codecs not matched: {other}")),
    };
    snapshots.store_decoded(
        &params.src,
        &codec,
        payload,
        params.shape,
        Arc::new(jpeg.clone()),
        false,
    );
    Ok(jpeg)
}

/// Decodes each new keyframe of `src` as it arrives, for the shapes asked
/// recently, until no snapshot was asked for [`AHEAD_IDLE`]. One decode at
/// a time: the channel keeps only the latest keyframe, so one that arrives
/// while a decode runs replaces any older one waiting.
fn start_ahead(state: &Arc<State>, src: &str) {
    let (tx, mut rx) = watch::channel::<Option<Keyframe>>(None);
    let info = serde_json::json!({
        "format_name": "jpeg",
        "protocol": "http",
        "remote_addr": "",
        "user_agent": "camrouter snapshot decode ahead",
    });
    let id = state.host.add_consumer(
        src,
        SNAPSHOT_QUERY,
        info,
        Watch {
            tx: Mutex::new(Some(tx)),
            codec: Mutex::new(None),
        },
    );
    let (st, src) = (state.clone(), src.to_string());
    state.runtime.spawn(async move {
        let snapshots = &st.snapshots;
        let idle = ahead_idle();
        loop {
            let left = snapshots.idle_left(&src, idle);
            let arrived = match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) => true,
                // The stream ended or the consumer failed.
                Ok(Err(_)) => {
                    let mut map = snapshots.ahead.lock().unwrap_or_else(|e| e.into_inner());
                    map.remove(&src);
                    break;
                }
                Err(_) => false,
            };
            let Some(shapes) = snapshots.ahead_shapes(&src, idle) else {
                break;
            };
            if !arrived {
                continue;
            }
            let Some((codec, keyframe)) = rx.borrow_and_update().clone() else {
                continue;
            };
            let shapes: Vec<Shape> = shapes
                .into_iter()
                .filter(|s| snapshots.decoded(&src, &codec, &keyframe, s).is_none())
                .collect();
            if codec.name.as_str() != "H264" || shapes.is_empty() {
                continue;
            }
            let (done_tx, done_rx) = watch::channel(false);
            snapshots
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    src.clone(),
                    InFlight {
                        keyframe: keyframe.clone(),
                        shapes: shapes.clone(),
                        done: done_rx,
                    },
                );
            for shape in shapes {
                let decoder = snapshots.decoder(&src);
                let (c, k) = (codec.clone(), keyframe.clone());
                let r = tokio::task::spawn_blocking(move || decode_h264(&decoder, &c, &k, &shape))
                    .await
                    .map_err(|e| format!("mjpeg: decoder task: {e}"))
                    .and_then(|r| r);
                match r {
                    Ok(jpeg) => {
                        tracing::debug!(src = %src, "snapshot: keyframe decoded ahead");
                        snapshots.store_decoded(
                            &src,
                            &codec,
                            keyframe.clone(),
                            shape,
                            Arc::new(jpeg),
                            true,
                        );
                    }
                    Err(e) => tracing::debug!(src = %src, error = %e, "snapshot: decode ahead"),
                }
            }
            snapshots
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&src);
            let _ = done_tx.send(true);
        }
        st.host.remove_consumer(id);
        tracing::debug!(src = %src, "snapshot: decoding ahead stopped");
    });
}

/// The background decoder's consumer: hands each keyframe to its task.
struct Watch {
    /// Dropped when the stream fails or closes, which ends the task.
    tx: Mutex<Option<watch::Sender<Option<Keyframe>>>>,
    codec: Mutex<Option<Codec>>,
}

impl Consumer for Watch {
    fn attached(&self, medias: Vec<Media>) {
        let codec = medias
            .into_iter()
            .next()
            .and_then(|m| m.codecs.into_iter().next());
        *self.codec.lock().unwrap_or_else(|e| e.into_inner()) = codec;
    }
    fn packet(&self, _track: u32, packet: &Packet) {
        if !packet.is_keyframe() {
            return;
        }
        let Some(codec) = self.codec.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(Some((codec, packet.payload.clone())));
        }
    }
    fn failed(&self, _error: String) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
    fn closed(&self, _reason: String) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn decode_h264(
    decoder: &Mutex<H264ToJpeg>,
    codec: &Codec,
    au: &[u8],
    shape: &Shape,
) -> Result<Vec<u8>, String> {
    let mut d = decoder.lock().unwrap_or_else(|e| e.into_inner());
    match d.decode(&codec.extradata, au, shape, true) {
        Ok(Some(jpeg)) => Ok(jpeg),
        Ok(None) => Err("mjpeg: h264: the keyframe gave no picture".into()),
        Err(e) => Err(format!("mjpeg: {e}")),
    }
}

type Keyframe = (Codec, RArc<RVec<u8>>);

/// Attaches a consumer just long enough to get one keyframe: from the GOP
/// cache at once when the stream runs, else when the camera sends one.
async fn keyframe(
    state: &Arc<State>,
    src: &str,
    info: serde_json::Value,
) -> Result<Keyframe, String> {
    let (tx, rx) = oneshot::channel();
    let grab = Grab {
        tx: Mutex::new(Some(tx)),
        codec: Mutex::new(None),
    };
    let id = state.host.add_consumer(src, SNAPSHOT_QUERY, info, grab);
    let r = tokio::time::timeout(KEYFRAME_TIMEOUT, rx).await;
    state.host.remove_consumer(id);
    match r {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("mjpeg: the stream ended".into()),
        Err(_) => Err(format!(
            "mjpeg: no keyframe from {src} within {} s",
            KEYFRAME_TIMEOUT.as_secs()
        )),
    }
}

struct Grab {
    tx: Mutex<Option<oneshot::Sender<Result<Keyframe, String>>>>,
    codec: Mutex<Option<Codec>>,
}

impl Grab {
    fn answer(&self, r: Result<Keyframe, String>) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(r);
        }
    }
}

impl Consumer for Grab {
    fn attached(&self, medias: Vec<Media>) {
        let codec = medias
            .into_iter()
            .next()
            .and_then(|m| m.codecs.into_iter().next());
        *self.codec.lock().unwrap_or_else(|e| e.into_inner()) = codec;
    }
    fn failed(&self, error: String) {
        self.answer(Err(error))
    }
    fn packet(&self, _track: u32, packet: &Packet) {
        let Some(codec) = self.codec.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        // Every JPEG is a whole picture; a video codec needs its keyframe.
        if codec.name.as_str() == "JPEG" || packet.is_keyframe() {
            self.answer(Ok((codec, packet.payload.clone())))
        }
    }
    fn closed(&self, reason: String) {
        self.answer(Err(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(width: u32) -> Shape {
        Shape {
            width: Some(width),
            ..Shape::default()
        }
    }

    #[test]
    fn one_picture_per_shape_and_at_most_a_few() {
        let s = Snapshots::default();
        let codec = Codec::default();
        let key = RArc::new(RVec::from(vec![1u8, 2, 3]));
        for w in [10, 20, 10, 30, 40] {
            let jpeg = Arc::new(vec![w as u8]);
            s.store_decoded("cam", &codec, key.clone(), shape(w), jpeg, true);
        }
        let map = s.decoded.lock().unwrap();
        let widths: Vec<_> = map["cam"].iter().map(|d| d.shape.width).collect();
        // 10 was replaced (kept once, as the newer), then the oldest (20) went.
        assert_eq!(widths, [Some(10), Some(30), Some(40)]);
        drop(map);
        assert_eq!(s.decoded("cam", &codec, &key, &shape(20)), None);
        let other = RArc::new(RVec::from(vec![9u8]));
        assert_eq!(s.decoded("cam", &codec, &other, &shape(40)), None);
        assert_eq!(
            s.decoded("cam", &codec, &key, &shape(40)),
            Some((Arc::new(vec![40u8]), true))
        );
    }

    #[test]
    fn decoding_ahead_ends_after_the_idle_window() {
        let s = Snapshots::default();
        assert!(
            s.note_request("cam", shape(320)),
            "the first request starts it"
        );
        assert!(
            !s.note_request("cam", shape(640)),
            "running: not started twice"
        );
        assert_eq!(
            s.ahead_shapes("cam", Duration::from_secs(60)),
            Some(vec![shape(640), shape(320)])
        );
        // Idle for the window: the stream is forgotten, and the next
        // request starts it again.
        assert_eq!(s.ahead_shapes("cam", Duration::ZERO), None);
        assert!(s.ahead.lock().unwrap().is_empty());
        assert!(s.note_request("cam", shape(320)));
    }
}
