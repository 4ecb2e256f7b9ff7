//! H.264 to MJPEG, one transcoder per (stream, size), shared by all its
//! clients: one graph consumer, one decoder on a blocking thread, each
//! picture encoded once and written to every client. The transcoder ends
//! with its last client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use camrouter_plugin_api::queue::FrameQueue;
use camrouter_plugin_api::sdk::Consumer;
use camrouter_plugin_api::{Media, Packet};
use tokio::sync::mpsc;

use crate::decode::H264ToJpeg;
use crate::params::{Output, Shape};
use crate::viewer::{Pending, Viewer};
use crate::State;

/// Frames waiting for the decoder. Holds a whole GOP replay (the first
/// picture comes from the cached keyframe, not the next one); a decoder that
/// falls further behind drops to the next keyframe.
const QUEUE: usize = 128;

/// Queued frames past which pictures are decoded but not encoded.
const BEHIND: usize = 8;

type Key = (String, Shape);

#[derive(Default)]
pub struct Transcoders(Mutex<HashMap<Key, Arc<Transcoder>>>);

struct Transcoder {
    key: Key,
    consumer: AtomicU64,
    attached: AtomicBool,
    stopped: AtomicBool,
    /// SPS/PPS from negotiation, for keyframes that lack them in band.
    extradata: Mutex<Vec<u8>>,
    viewers: Mutex<Vec<(u64, Viewer, serde_json::Value)>>,
    next_viewer: AtomicU64,
}

/// A client's place in a transcoder; `leave` removes it.
pub struct Membership {
    transcoder: Weak<Transcoder>,
    id: u64,
}

impl Membership {
    pub fn leave(self) {
        if let Some(t) = self.transcoder.upgrade() {
            let mut v = t.viewers.lock().unwrap_or_else(|e| e.into_inner());
            v.retain(|(id, _, _)| *id != self.id);
        }
    }
}

impl Transcoders {
    pub fn join(
        &self,
        state: &Arc<State>,
        src: &str,
        shape: Shape,
        info: serde_json::Value,
        pending: Pending,
    ) -> Membership {
        let key = (src.to_string(), shape);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let t = match map.get(&key) {
            Some(t) if !t.stopped.load(Ordering::Acquire) => t.clone(),
            _ => {
                let t = Transcoder::start(state, key.clone());
                map.insert(key, t.clone());
                t
            }
        };
        let mut viewer = pending.start(shape.output);
        if t.attached.load(Ordering::Acquire) {
            viewer.client = Some(
                state
                    .host
                    .add_client(t.consumer.load(Ordering::Acquire), info.clone()),
            );
        }
        let id = t.next_viewer.fetch_add(1, Ordering::Relaxed);
        t.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, viewer, info));
        Membership {
            transcoder: Arc::downgrade(&t),
            id,
        }
    }

    fn remove(&self, t: &Arc<Transcoder>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&t.key).is_some_and(|x| Arc::ptr_eq(x, t)) {
            map.remove(&t.key);
        }
    }
}

impl Transcoder {
    fn start(state: &Arc<State>, key: Key) -> Arc<Transcoder> {
        let (queue, rx) = FrameQueue::new(QUEUE, vec![true]);
        let t = Arc::new(Transcoder {
            key,
            consumer: AtomicU64::new(0),
            attached: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            extradata: Mutex::default(),
            viewers: Mutex::default(),
            next_viewer: AtomicU64::new(1),
        });
        let format_name = match t.key.1.output {
            Output::Jpeg => "mjpeg",
            Output::Y4m => "yuv4mpegpipe",
            Output::Ascii(_) => "ascii",
        };
        let info = serde_json::json!({"format_name": format_name, "protocol": "http"});
        let id = state.host.add_consumer(
            &t.key.0,
            "video=h264",
            info,
            // The queue's sender lives in the consumer: when the graph drops
            // it (stream gone, failure, removal) the decoder thread ends.
            TranscodeConsumer {
                queue,
                t: Arc::downgrade(&t),
                state: Arc::downgrade(state),
            },
        );
        t.consumer.store(id, Ordering::Release);
        let (tt, st) = (t.clone(), state.clone());
        state.runtime.spawn_blocking(move || run(&st, &tt, rx));
        t
    }

    /// Ends every client (stream gone or failed) and the transcoder.
    fn end(&self, reason: &str) {
        self.stopped.store(true, Ordering::Release);
        let viewers = std::mem::take(&mut *self.viewers.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, v, _) in viewers {
            v.end(reason);
        }
    }
}

/// The decoder thread: decodes every frame in order and writes each
/// picture to every client. Pictures are skipped (decoded, not encoded)
/// only while the queue is long: the GOP replay a new transcoder starts
/// with, or a decoder falling behind. Sources that deliver frames in bursts
/// (a pipe's 32 KiB writes) still get every picture.
fn run(state: &Arc<State>, t: &Arc<Transcoder>, mut rx: mpsc::Receiver<(u32, Packet)>) {
    let mut decoder = H264ToJpeg::stream();
    let mut shown = false;
    while let Some((_, packet)) = rx.blocking_recv() {
        if t.stopped.load(Ordering::Acquire) {
            break;
        }
        let extradata = if packet.is_keyframe() {
            t.extradata
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            Vec::new()
        };
        let encode = !shown || rx.len() < BEHIND;
        let r = decoder.decode(&extradata, &packet.payload, &t.key.1, encode);
        let jpeg = match r {
            Ok(Some(j)) => j,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(src = %t.key.0, "transcode: {e}");
                continue;
            }
        };
        shown = true;
        let mut viewers = t.viewers.lock().unwrap_or_else(|e| e.into_inner());
        viewers.retain(|(_, v, _)| v.send(&jpeg));
        if viewers.is_empty() {
            // Decided under the map's lock, so a client joining now gets a
            // new transcoder instead of this ending one.
            drop(viewers);
            let map = state
                .transcoders
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if t.viewers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                t.stopped.store(true, Ordering::Release);
                drop(map);
                break;
            }
        }
    }
    t.stopped.store(true, Ordering::Release);
    state.transcoders.remove(t);
    state
        .host
        .remove_consumer(t.consumer.load(Ordering::Acquire));
}

struct TranscodeConsumer {
    queue: FrameQueue,
    t: Weak<Transcoder>,
    state: Weak<State>,
}

impl Consumer for TranscodeConsumer {
    fn attached(&self, medias: Vec<Media>) {
        let (Some(t), Some(state)) = (self.t.upgrade(), self.state.upgrade()) else {
            return;
        };
        if let Some(c) = medias.first().and_then(|m| m.codecs.first()) {
            *t.extradata.lock().unwrap_or_else(|e| e.into_inner()) = c.extradata.to_vec();
        }
        // Clients that joined before negotiation ended are registered now,
        // off the graph's thread.
        let rt = state.runtime.clone();
        rt.spawn(async move {
            while t.consumer.load(Ordering::Acquire) == 0 {
                tokio::task::yield_now().await;
            }
            let id = t.consumer.load(Ordering::Acquire);
            let mut viewers = t.viewers.lock().unwrap_or_else(|e| e.into_inner());
            for (_, v, info) in viewers.iter_mut() {
                if v.client.is_none() {
                    v.client = Some(state.host.add_client(id, info.clone()));
                }
            }
            t.attached.store(true, Ordering::Release);
        });
    }

    fn failed(&self, error: String) {
        if let Some(t) = self.t.upgrade() {
            t.end(&error);
        }
    }

    fn packet(&self, _track: u32, packet: &Packet) {
        self.queue.push(0, packet);
    }

    fn closed(&self, reason: String) {
        if let Some(t) = self.t.upgrade() {
            t.end(&reason);
        }
    }
}
