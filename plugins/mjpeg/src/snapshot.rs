//! `GET /api/frame.jpeg`: the cached keyframe of the stream (the graph
//! replays its GOP to a new consumer at once), as is for a JPEG source,
//! decoded in-process for H.264, through ffmpeg for H.265.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Consumer, Responder};
use camrouter_plugin_api::{Codec, Media, Packet, RArc, RVec};
use tokio::sync::oneshot;

use crate::decode::H264ToJpeg;
use crate::params::{Params, Shape};
use crate::State;

/// How long a snapshot waits for a keyframe from an idle stream (camera
/// connect plus one GOP).
const KEYFRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// Codecs a snapshot can come from, in the order sources are tried.
pub const SNAPSHOT_QUERY: &str = "video=jpeg,h264,h265";

/// A picture stored for `cache=` requests, with when it was taken.
type Stored = (Instant, Arc<Vec<u8>>);

#[derive(Default)]
pub struct Snapshots {
    /// Stream name → its last picture taken with `cache=`.
    cache: Mutex<HashMap<String, Stored>>,
    /// One H.264 decoder per stream, kept between snapshots.
    decoders: Mutex<HashMap<String, Arc<Mutex<H264ToJpeg>>>>,
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
    match codec.name.as_str() {
        // As go2rtc: a JPEG source's picture is served as it is, whatever
        // the size params say.
        "JPEG" => Ok(payload.to_vec()),
        "H264" => {
            let decoder = state.snapshots.decoder(&params.src);
            let shape = params.shape;
            tokio::task::spawn_blocking(move || decode_h264(&decoder, &codec, &payload, &shape))
                .await
                .map_err(|e| format!("mjpeg: decoder task: {e}"))?
        }
        "H265" => crate::hevc::snapshot(&codec.extradata, &payload, &params.shape).await,
        other => Err(format!("mjpeg: codecs not matched: {other}")),
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
