//! The stream graph (DESIGN.md §4–5): streams with ordered sources, producers
//! opened on demand and shared by every consumer, codec negotiation per media,
//! backchannel routing, a GOP cache per video track, and per-connection stats.

pub mod filter;
mod stats;
mod timeline;
mod totals;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RString, RVec};
use camrouter_plugin_api::abi::{
    ClientCounters, ConsumerBox, SourceBox, SourceEvents, SourceEventsBox,
};
use camrouter_plugin_api::{Codec, Direction, Media, MediaKind, Packet};
use serde_json::{json, Value};
use tokio::sync::watch;

use camrouter_plugin_api::gop::Gop;
pub use filter::Filter;
use timeline::{ParamSets, Timeline};
pub use totals::StreamTotals;

/// Microseconds on the host's monotonic clock: the sources' `received_at_us`
/// restart with each connection, so outages are measured here.
/// (tokio's `Instant` is the std one, but follows a paused clock in tests.)
fn now_us() -> u64 {
    static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(tokio::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

/// Opens source URLs: implemented by the plugin registry.
pub trait Opener: Send + Sync {
    fn open(&self, url: &str, events: SourceEventsBox) -> Result<SourceBox, String>;
}

/// How long a producer lingers after its last consumer left: reconnecting
/// players (and snapshot pollers) reuse the connection instead of redialling.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a consumer waits for a source to report its medias.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_REDIRECTS: u32 = 8;
/// How long a source fails before its consumers move to the next source in
/// the list that has their codecs: longer than a camera's reconnect, so a
/// quick restart keeps them where they are.
const FAILOVER_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("stream not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    NoMatch(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Idle,
    Opening,
    Ready,
    Failed(String),
}

/// Why [`Graph::rename_stream`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RenameError {
    #[error("stream not found")]
    NotFound,
    #[error("a stream of the new name exists")]
    Exists,
}

pub struct Graph {
    me: Weak<Graph>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    consumers: Mutex<HashMap<u64, Arc<ConsumerEntry>>>,
    /// Client id → its consumer, for `update_client`/`remove_client`.
    clients: Mutex<HashMap<u64, Weak<ConsumerEntry>>>,
    opener: RwLock<Option<Arc<dyn Opener>>>,
    rt: tokio::runtime::Handle,
    ids: AtomicU64,
}

pub struct Stream {
    pub name: String,
    graph: Weak<Graph>,
    me: Weak<Stream>,
    inner: Mutex<StreamInner>,
    /// Internal plumbing (exec's `{output}`): not listed by the API.
    hidden: AtomicBool,
    /// Bumped when an ingest producer is added, for consumers waiting on one.
    publishers: watch::Sender<u64>,
    /// What consumers and clients that have left had sent, so that the
    /// stream's totals never go down.
    departed: SentTotals,
}

/// Sent-side counters of a stream, summed over its consumers' clients.
#[derive(Default, Debug)]
pub struct SentTotals {
    pub bytes: AtomicU64,
    pub packets: AtomicU64,
    pub dropped: AtomicU64,
}

/// A stream's consumer side at one moment: what `/api/metrics` reports.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerTotals {
    /// Listed consumers (each client of a shared consumer counts once).
    pub count: u64,
    pub bytes: u64,
    pub packets: u64,
    pub dropped: u64,
}

impl SentTotals {
    fn add_client(&self, c: &ClientCounters) {
        self.add(
            c.bytes.load(Ordering::Relaxed),
            c.packets.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
        );
    }

    fn add(&self, bytes: u64, packets: u64, dropped: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct StreamInner {
    sources: Vec<String>,
    producers: Vec<Arc<Producer>>,
    passive: Vec<Arc<Producer>>,
    consumers: Vec<Arc<ConsumerEntry>>,
    /// Bumped on every attach, so a pending stop timer knows it is stale.
    epoch: u64,
    /// What producers that have left had received (see `totals`).
    departed_producers: totals::DepartedProducers,
}

pub struct Producer {
    pub id: u64,
    url: String,
    passive: bool,
    graph: Weak<Graph>,
    stream: Weak<Stream>,
    me: Weak<Producer>,
    status: watch::Sender<Status>,
    generation: AtomicU64,
    core: Mutex<ProducerCore>,
    tracks: RwLock<Vec<Arc<Track>>>,
    bytes: AtomicU64,
    packets: AtomicU64,
    /// Failed since its last start (see `note_start`).
    failed: AtomicBool,
    restarts: AtomicU64,
}

#[derive(Default)]
struct ProducerCore {
    source: Option<Arc<SourceBox>>,
    current_url: String,
    redirects: u32,
    medias: Vec<Media>,
    info: serde_json::Map<String, Value>,
    retries: u32,
    last_error: Option<String>,
    /// The failure last logged: a source that keeps failing the same way
    /// logs once, not once per retry.
    logged_error: Option<String>,
    /// When the current run of failures began (cleared when medias come).
    failing_since: Option<tokio::time::Instant>,
    /// Its consumers were offered to the other sources in this run.
    failed_over: bool,
}

pub struct Track {
    pub index: u32,
    pub kind: MediaKind,
    pub direction: Direction,
    pub codec: Codec,
    state: Mutex<TrackState>,
    bytes: AtomicU64,
    packets: AtomicU64,
}

#[derive(Default)]
struct TrackState {
    sinks: Vec<Sink>,
    gop: Gop<Packet>,
}

/// A consumer track fed by a producer track.
struct Sink {
    consumer: Arc<ConsumerEntry>,
    ctrack: u32,
    /// The consumer's own timestamps: continuous across producer
    /// generations, and carried along when the consumer moves to another
    /// producer.
    timeline: Timeline,
}

/// An in-host packet callback: `(consumer track, packet)`.
pub type PacketFn = Box<dyn Fn(u32, &Packet) + Send + Sync>;

/// Where a consumer's packets go.
pub enum ConsumerSink {
    Plugin(Arc<ConsumerBox>),
    /// In-host consumers (probe, preload); `None` drops packets.
    Internal(Option<PacketFn>),
}

pub struct ConsumerEntry {
    pub id: u64,
    sink: ConsumerSink,
    info: Value,
    stream: Weak<Stream>,
    medias: Mutex<Vec<Media>>,
    routes: Mutex<Vec<Route>>,
    bytes: AtomicU64,
    packets: AtomicU64,
    closed: AtomicBool,
    /// Connected clients of a shared consumer (`HostApi::add_client`).
    clients: Mutex<Vec<Client>>,
    /// Set by the first client: from then on the consumer is listed as its
    /// clients, and its own graph-side counters are not the bytes sent.
    shared: AtomicBool,
}

/// One connected client of a shared consumer.
pub struct Client {
    pub id: u64,
    info: Value,
    counters: RArc<ClientCounters>,
}

#[derive(Clone)]
struct Route {
    producer: Arc<Producer>,
    ptrack: u32,
    ctrack: u32,
    direction: Direction,
}

impl Graph {
    pub fn new(rt: tokio::runtime::Handle) -> Arc<Graph> {
        Arc::new_cyclic(|me| Graph {
            me: me.clone(),
            streams: RwLock::default(),
            consumers: Mutex::default(),
            clients: Mutex::default(),
            opener: RwLock::new(None),
            rt,
            ids: AtomicU64::new(1),
        })
    }

    pub fn set_opener(&self, opener: Arc<dyn Opener>) {
        *self.opener.write().unwrap_or_else(|e| e.into_inner()) = Some(opener);
    }

    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().ok()?.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.streams
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates or replaces a stream's sources. Running producers whose URL is
    /// unchanged are kept; the others are stopped.
    pub fn set_stream(&self, name: &str, sources: Vec<String>) -> Arc<Stream> {
        let stream = {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            streams
                .entry(name.to_string())
                .or_insert_with(|| self.new_stream(name))
                .clone()
        };
        stream.set_sources(sources);
        stream
    }

    fn new_stream(&self, name: &str) -> Arc<Stream> {
        Arc::new_cyclic(|me| Stream {
            name: name.to_string(),
            graph: self.me.clone(),
            me: me.clone(),
            inner: Mutex::default(),
            hidden: AtomicBool::new(false),
            publishers: watch::Sender::new(0),
            departed: SentTotals::default(),
        })
    }

    /// Renames stream `from` to `to`: the swap happens under one write lock
    /// of the stream list, so a listing shows one of the two names, never
    /// both nor neither. The stream under its new name has the same sources
    /// and starts over; clients of the old name are cut as by a delete.
    pub fn rename_stream(&self, from: &str, to: &str) -> Result<Arc<Stream>, RenameError> {
        let Some(sources) = self.stream(from).map(|s| s.sources()) else {
            return Err(RenameError::NotFound);
        };
        // Built (and its sources set) before the lock: set_sources takes the
        // stream's own lock, which must not nest inside the list's.
        let new = self.new_stream(to);
        new.set_sources(sources);
        let old = {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            if streams.contains_key(to) {
                return Err(RenameError::Exists);
            }
            let Some(old) = streams.remove(from) else {
                return Err(RenameError::NotFound);
            };
            new.hidden
                .store(old.hidden.load(Ordering::Relaxed), Ordering::Relaxed);
            streams.insert(to.to_string(), new.clone());
            old
        };
        if old.sources() != new.sources() {
            // Its sources changed between the read and the swap.
            new.set_sources(old.sources());
        }
        old.shutdown("stream renamed");
        Ok(new)
    }

    /// Like [`Graph::set_stream`], for streams that are internal plumbing.
    pub fn set_hidden_stream(&self, name: &str, sources: Vec<String>) -> Arc<Stream> {
        let s = self.set_stream(name, sources);
        s.hidden.store(true, Ordering::Relaxed);
        s
    }

    pub fn remove_stream(&self, name: &str) -> bool {
        let removed = self
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(s) => {
                s.shutdown("stream deleted");
                true
            }
            None => false,
        }
    }

    /// Attaches a consumer: negotiates its medias, starting producers as
    /// needed, and wires it to their tracks. `id` comes from [`Graph::next_id`].
    pub async fn attach(
        &self,
        id: u64,
        stream_name: &str,
        filter: &Filter,
        sink: ConsumerSink,
        info: Value,
    ) -> Result<Arc<ConsumerEntry>, GraphError> {
        let stream = self
            .stream(stream_name)
            .ok_or_else(|| GraphError::NotFound(stream_name.to_string()))?;
        let entry = Arc::new(ConsumerEntry {
            id,
            sink,
            info,
            stream: Arc::downgrade(&stream),
            medias: Mutex::default(),
            routes: Mutex::default(),
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            clients: Mutex::default(),
            shared: AtomicBool::new(false),
        });
        // Registered before negotiating, so producers started for it are not
        // stopped as unused meanwhile.
        stream.add_consumer(entry.clone());
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry.clone());
        let wait_ms = entry
            .info
            .get("wait_publisher_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if wait_ms > 0 {
            stream
                .wait_for_producer(Duration::from_millis(wait_ms))
                .await;
        }
        match stream.negotiate(filter).await {
            Ok((medias, routes)) => {
                *entry.medias.lock().unwrap_or_else(|e| e.into_inner()) = medias.clone();
                *entry.routes.lock().unwrap_or_else(|e| e.into_inner()) = routes.clone();
                // A plugin consumer learns its tracks before the first packet
                // (the GOP replay below) reaches it.
                if let ConsumerSink::Plugin(c) = &entry.sink {
                    c.attached(RVec::from(medias));
                }
                for r in &routes {
                    if r.direction == Direction::RecvOnly {
                        r.producer.add_sink(r.ptrack, &entry, r.ctrack);
                    }
                }
                Ok(entry)
            }
            Err(e) => {
                self.detach(id);
                Err(e)
            }
        }
    }

    pub fn detach(&self, id: u64) {
        let entry = self
            .consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let Some(entry) = entry else { return };
        entry.closed.store(true, Ordering::SeqCst);
        let clients = match entry.stream.upgrade() {
            Some(stream) => stream.consumer_left(&entry),
            None => std::mem::take(&mut *entry.lock_clients()),
        };
        {
            let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            for c in &clients {
                map.remove(&c.id);
            }
        }
        let routes = std::mem::take(&mut *entry.routes.lock().unwrap_or_else(|e| e.into_inner()));
        for r in routes {
            r.producer.remove_sink(r.ptrack, id);
        }
        if let Some(stream) = entry.stream.upgrade() {
            stream.remove_consumer(id);
        }
    }

    /// Registers a client of a shared consumer (see `HostApi::add_client`).
    /// Returns 0 when the consumer is gone: the client is then never listed.
    pub fn add_client(&self, consumer: u64, info: Value, counters: RArc<ClientCounters>) -> u64 {
        let Some(entry) = self.consumer(consumer) else {
            return 0;
        };
        let id = self.next_id();
        let client = Client { id, info, counters };
        match entry.stream.upgrade() {
            Some(stream) => stream.client_joined(&entry, client),
            None => entry.lock_clients().push(client),
        }
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::downgrade(&entry));
        id
    }

    pub fn update_client(&self, id: u64, info: Value) {
        let entry = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .and_then(Weak::upgrade);
        let (Some(entry), Value::Object(add)) = (entry, info) else {
            return;
        };
        let mut clients = entry.lock_clients();
        if let Some(c) = clients.iter_mut().find(|c| c.id == id) {
            if let Value::Object(m) = &mut c.info {
                m.extend(add);
            } else {
                c.info = Value::Object(add);
            }
        }
    }

    pub fn remove_client(&self, id: u64) {
        let entry = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
            .and_then(|w| w.upgrade());
        let Some(entry) = entry else { return };
        match entry.stream.upgrade() {
            Some(stream) => stream.client_left(&entry, id),
            None => entry.lock_clients().retain(|c| c.id != id),
        }
    }

    pub fn consumer(&self, id: u64) -> Option<Arc<ConsumerEntry>> {
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Backchannel: a consumer's microphone packet goes to the producer that
    /// accepted it.
    pub fn consumer_send(&self, id: u64, track: u32, packet: &Packet) {
        let Some(entry) = self.consumer(id) else {
            return;
        };
        for (producer, ptrack) in entry.routed(track, Direction::SendOnly) {
            producer.send(ptrack, packet);
        }
    }

    /// A consumer's viewer wants a keyframe on its track `track`: asked of
    /// the producers feeding it (see `HostApi::request_keyframe`).
    pub fn request_keyframe(&self, id: u64, track: u32) {
        let Some(entry) = self.consumer(id) else {
            return;
        };
        for (producer, ptrack) in entry.routed(track, Direction::RecvOnly) {
            producer.request_keyframe(ptrack);
        }
    }

    /// Attaches a passive producer (ingest) to an existing stream.
    pub fn add_producer(
        &self,
        stream_name: &str,
        info: Value,
        source: SourceBox,
    ) -> Result<SourceEventsBox, GraphError> {
        let stream = self
            .stream(stream_name)
            .ok_or_else(|| GraphError::NotFound(stream_name.to_string()))?;
        let url = info
            .get("url")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let producer = Producer::new(self, &stream, url, true);
        {
            let mut core = producer.lock_core();
            core.source = Some(Arc::new(source));
            if let Value::Object(m) = info {
                core.info = m;
            }
        }
        producer.status.send_replace(Status::Opening);
        let events = producer.events(producer.generation.load(Ordering::Relaxed));
        {
            let mut inner = stream.lock();
            inner.passive.push(producer);
            inner.departed_producers.publisher_joined();
        }
        stream.publishers.send_modify(|n| *n += 1);
        Ok(events)
    }

    pub fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }

    fn opener(&self) -> Option<Arc<dyn Opener>> {
        self.opener.read().ok()?.clone()
    }

    /// `GET /api/streams` body.
    pub fn streams_json(&self) -> Value {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        let mut out = serde_json::Map::new();
        for s in streams.iter().filter(|s| !s.hidden.load(Ordering::Relaxed)) {
            out.insert(s.name.clone(), s.json());
        }
        Value::Object(out)
    }

    /// Stops every producer (host shutdown).
    pub fn shutdown(&self) {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for s in streams {
            s.shutdown("server shutdown");
        }
    }
}

impl Stream {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sources(&self) -> Vec<String> {
        self.lock().sources.clone()
    }

    fn set_sources(&self, sources: Vec<String>) {
        let Some(graph) = self.graph.upgrade() else {
            return;
        };
        let Some(me) = self.me.upgrade() else { return };
        // One lock for the swap: the list is never seen empty meanwhile, and
        // the replaced producers' counts move to the stream's totals.
        let old = {
            let mut inner = self.lock();
            let mut old = std::mem::take(&mut inner.producers);
            inner.producers = sources
                .iter()
                .map(|url| match old.iter().position(|p| &p.url == url) {
                    Some(i) => old.remove(i),
                    None => Producer::new(&graph, &me, url.clone(), false),
                })
                .collect();
            inner.sources = sources;
            for p in &old {
                inner.departed_producers.producer_left(p);
            }
            old
        };
        for p in old {
            p.stop();
        }
    }

    fn remove_passive(&self, producer: &Producer) {
        let mut inner = self.lock();
        if let Some(i) = inner.passive.iter().position(|p| p.id == producer.id) {
            let p = inner.passive.remove(i);
            inner.departed_producers.producer_left(&p);
        }
    }

    fn has_producers(&self) -> bool {
        let inner = self.lock();
        !inner.producers.is_empty() || !inner.passive.is_empty()
    }

    /// For streams fed only by ingest: waits until a publisher arrives.
    async fn wait_for_producer(&self, timeout: Duration) {
        let mut rx = self.publishers.subscribe();
        let _ = tokio::time::timeout(timeout, async {
            while !self.has_producers() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    fn add_consumer(&self, entry: Arc<ConsumerEntry>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.consumers.push(entry);
    }

    fn remove_consumer(&self, id: u64) {
        let (empty, epoch) = {
            let mut inner = self.lock();
            inner.consumers.retain(|c| c.id != id);
            (inner.consumers.is_empty(), inner.epoch)
        };
        if !empty {
            return;
        }
        let (Some(graph), Some(me)) = (self.graph.upgrade(), self.me.upgrade()) else {
            return;
        };
        graph.spawn(async move {
            tokio::time::sleep(STOP_GRACE).await;
            let producers = {
                let inner = me.lock();
                if !inner.consumers.is_empty() || inner.epoch != epoch {
                    return;
                }
                inner.producers.clone()
            };
            for p in producers {
                if p.is_active() {
                    tracing::debug!(target: "streams", stream = %me.name, url = %mask(&p.url), "stop producer: no consumers");
                    p.stop();
                }
            }
        });
    }

    /// A publisher that reconnects is a new ingest producer: the consumers
    /// still routed to the one that left move over to it.
    fn adopt_orphans(&self, new: &Arc<Producer>) {
        let (consumers, live): (Vec<Arc<ConsumerEntry>>, Vec<u64>) = {
            let inner = self.lock();
            (
                inner.consumers.clone(),
                inner.passive.iter().map(|p| p.id).collect(),
            )
        };
        let tracks = new.tracks.read().map(|t| t.clone()).unwrap_or_default();
        for c in consumers {
            c.move_routes(
                |p| p.passive && p.id != new.id && !live.contains(&p.id),
                new,
                &tracks,
            );
        }
    }

    /// Moves the consumers of a source that keeps failing to the next
    /// sources in the list that have their codecs, starting them as needed.
    async fn fail_over(&self, from: &Arc<Producer>) {
        let others: Vec<Arc<Producer>> = self
            .lock()
            .producers
            .iter()
            .filter(|p| p.id != from.id)
            .cloned()
            .collect();
        for q in others {
            if !self.is_used(from) {
                return;
            }
            let Ok(tracks) = q.ready_tracks().await else {
                continue;
            };
            let consumers = self.lock().consumers.clone();
            let mut moved = 0;
            for c in consumers {
                moved += c.move_routes(|p| p.id == from.id, &q, &tracks);
            }
            if moved > 0 {
                tracing::info!(target: "streams", stream = %self.name, from = %mask(&from.url), to = %mask(&q.url), "consumers moved to the next source");
            }
        }
    }

    /// Whether any consumer is routed to `p`.
    fn is_used(&self, p: &Producer) -> bool {
        self.lock().consumers.iter().any(|c| {
            c.routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|r| r.producer.id == p.id)
        })
    }

    fn has_consumers(&self) -> bool {
        !self.lock().consumers.is_empty()
    }

    fn shutdown(&self, reason: &str) {
        let (producers, consumers) = {
            let mut inner = self.lock();
            let mut p = std::mem::take(&mut inner.producers);
            p.append(&mut inner.passive);
            for left in &p {
                inner.departed_producers.producer_left(left);
            }
            (p, std::mem::take(&mut inner.consumers))
        };
        for p in producers {
            p.stop();
        }
        let graph = self.graph.upgrade();
        for c in consumers {
            if let Some(g) = &graph {
                g.detach(c.id);
            }
            c.notify_closed(reason);
        }
    }

    /// go2rtc's negotiation: for each wanted media, the first producer (in
    /// source order, then ingest) that has a matching codec wins; producers
    /// are only started while something is still unmatched.
    async fn negotiate(&self, filter: &Filter) -> Result<(Vec<Media>, Vec<Route>), GraphError> {
        let producers: Vec<Arc<Producer>> = {
            let inner = self.lock();
            inner
                .producers
                .iter()
                .chain(inner.passive.iter())
                .cloned()
                .collect()
        };
        let mut satisfied = vec![false; filter.wants.len()];
        let mut mic_done = filter.microphone.is_none();
        let mut medias = Vec::new();
        let mut routes: Vec<Route> = Vec::new();
        let mut errors = Vec::new();
        for p in producers {
            let need_more = filter
                .wants
                .iter()
                .zip(&satisfied)
                .any(|(w, s)| w.all || !s)
                || !mic_done;
            if !need_more {
                break;
            }
            let tracks = match p.ready_tracks().await {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{}: {e}", mask(&p.url)));
                    continue;
                }
            };
            for (wi, want) in filter.wants.iter().enumerate() {
                if satisfied[wi] && !want.all {
                    continue;
                }
                for t in &tracks {
                    if t.kind != want.kind
                        || t.direction != Direction::RecvOnly
                        || !Filter::accepts(&want.codecs, t.codec.name.as_str())
                        || routes
                            .iter()
                            .any(|r| Arc::ptr_eq(&r.producer, &p) && r.ptrack == t.index)
                    {
                        continue;
                    }
                    routes.push(Route {
                        producer: p.clone(),
                        ptrack: t.index,
                        ctrack: medias.len() as u32,
                        direction: Direction::RecvOnly,
                    });
                    medias.push(Media {
                        kind: t.kind,
                        direction: Direction::SendOnly,
                        codecs: RVec::from(vec![t.codec.clone()]),
                    });
                    satisfied[wi] = true;
                    if !want.all {
                        break;
                    }
                }
            }
            if let Some(mic) = &filter.microphone {
                if !mic_done {
                    if let Some(t) = tracks.iter().find(|t| {
                        t.kind == MediaKind::Audio
                            && t.direction == Direction::SendOnly
                            && Filter::accepts(mic, t.codec.name.as_str())
                    }) {
                        routes.push(Route {
                            producer: p.clone(),
                            ptrack: t.index,
                            ctrack: medias.len() as u32,
                            direction: Direction::SendOnly,
                        });
                        medias.push(Media {
                            kind: MediaKind::Audio,
                            direction: Direction::RecvOnly,
                            codecs: RVec::from(vec![t.codec.clone()]),
                        });
                        mic_done = true;
                    }
                }
            }
        }
        if medias.is_empty() {
            let mut msg = format!("streams: codecs not matched for stream {}", self.name);
            if !errors.is_empty() {
                msg = format!("{msg}: {}", errors.join("; "));
            }
            return Err(GraphError::NoMatch(msg));
        }
        Ok((medias, routes))
    }

    fn json(&self) -> Value {
        let (producers, consumers) = {
            let inner = self.lock();
            let p: Vec<_> = inner
                .producers
                .iter()
                .chain(inner.passive.iter())
                .cloned()
                .collect();
            (p, inner.consumers.clone())
        };
        json!({
            "producers": producers.iter().map(|p| p.json()).collect::<Vec<_>>(),
            "consumers": consumers.iter().filter(|c| !c.is_internal_probe()).flat_map(|c| c.records()).collect::<Vec<_>>(),
        })
    }

    /// Consumers listed and what they sent, including those that have left.
    pub fn consumer_totals(&self) -> ConsumerTotals {
        // Under the lock that moves leaving consumers and clients to
        // `departed` (see `totals`): each is counted once, never twice or not
        // at all, so the totals never go down between two reads.
        let inner = self.lock();
        let consumers = &inner.consumers;
        let mut t = ConsumerTotals {
            count: 0,
            bytes: self.departed.bytes.load(Ordering::Relaxed),
            packets: self.departed.packets.load(Ordering::Relaxed),
            dropped: self.departed.dropped.load(Ordering::Relaxed),
        };
        for c in consumers.iter().filter(|c| !c.is_internal_probe()) {
            if c.shared.load(Ordering::Relaxed) {
                for cl in c.lock_clients().iter() {
                    t.count += 1;
                    t.bytes += cl.counters.bytes.load(Ordering::Relaxed);
                    t.packets += cl.counters.packets.load(Ordering::Relaxed);
                    t.dropped += cl.counters.dropped.load(Ordering::Relaxed);
                }
            } else {
                t.count += 1;
                t.bytes += c.bytes.load(Ordering::Relaxed);
                t.packets += c.packets.load(Ordering::Relaxed);
            }
        }
        t
    }
}

impl Producer {
    fn new(graph: &Graph, stream: &Arc<Stream>, url: String, passive: bool) -> Arc<Producer> {
        Arc::new_cyclic(|me| Producer {
            id: graph.next_id(),
            url: url.clone(),
            passive,
            graph: graph.me.clone(),
            stream: Arc::downgrade(stream),
            me: me.clone(),
            status: watch::Sender::new(Status::Idle),
            generation: AtomicU64::new(1),
            core: Mutex::new(ProducerCore {
                current_url: url,
                ..Default::default()
            }),
            tracks: RwLock::default(),
            bytes: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        })
    }

    fn lock_core(&self) -> std::sync::MutexGuard<'_, ProducerCore> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_active(&self) -> bool {
        !matches!(*self.status.borrow(), Status::Idle)
    }

    fn events(&self, generation: u64) -> SourceEventsBox {
        SourceEventsBox::from_ptr(
            RArc::new(HostEvents {
                producer: self.me.clone(),
                generation,
            }),
            TD_Opaque,
        )
    }

    /// Opens the source if it is not running. Never blocks: plugins answer
    /// `open_source` at once and report medias later.
    fn start(&self) {
        let url = {
            let core = self.lock_core();
            if core.source.is_some() || self.passive {
                return;
            }
            core.current_url.clone()
        };
        self.note_start();
        self.open_url(url);
    }

    fn open_url(&self, url: String) {
        let Some(graph) = self.graph.upgrade() else {
            return;
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.status.send_replace(Status::Opening);
        let Some(opener) = graph.opener() else {
            self.fail(generation, "no plugins loaded".into());
            return;
        };
        tracing::debug!(target: "streams", url = %mask(&url), "open source");
        match opener.open(&url, self.events(generation)) {
            Ok(src) => {
                let mut core = self.lock_core();
                if self.generation.load(Ordering::SeqCst) == generation {
                    core.source = Some(Arc::new(src));
                } else {
                    drop(core);
                    src.stop();
                }
            }
            Err(e) => self.fail(generation, e),
        }
    }

    fn fail(&self, generation: u64, reason: String) {
        // Retire the failed generation: late events from it are ignored.
        if self
            .generation
            .compare_exchange(
                generation,
                generation + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_err()
        {
            return;
        }
        let generation = generation + 1;
        self.note_failure();
        let (source, log) = {
            let mut core = self.lock_core();
            core.last_error = Some(reason.clone());
            core.redirects = 0;
            core.current_url = self.url.clone();
            // Once per state change: when the source starts failing, and
            // when its failure turns from passing (refused) to lasting
            // (401) or back; not once per retry.
            core.failing_since
                .get_or_insert_with(tokio::time::Instant::now);
            let log = core
                .logged_error
                .as_deref()
                .is_none_or(|e| is_lasting_failure(e) != is_lasting_failure(&reason));
            if log {
                core.logged_error = Some(reason.clone());
            }
            (core.source.take(), log)
        };
        if let Some(s) = source {
            s.stop();
        }
        let stream_name = self
            .stream
            .upgrade()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        if log {
            tracing::warn!(target: "streams", stream = %stream_name, url = %mask(&self.url), "source failed: {}", mask(&reason));
        } else {
            tracing::trace!(target: "streams", stream = %stream_name, "source failed again");
        }
        self.status.send_replace(Status::Failed(reason));
        if self.passive {
            if let Some(stream) = self.stream.upgrade() {
                stream.remove_passive(self);
            }
            return;
        }
        self.schedule_retry(generation);
    }

    /// Retries with backoff while consumers remain; they stay attached to the
    /// tracks and resume when the source is back.
    fn schedule_retry(&self, generation: u64) {
        let Some(stream) = self.stream.upgrade() else {
            return;
        };
        if !stream.has_consumers() {
            return;
        }
        let Some(graph) = self.graph.upgrade() else {
            return;
        };
        let fail_over = {
            let mut core = self.lock_core();
            let due = !core.failed_over
                && core
                    .failing_since
                    .is_some_and(|t| t.elapsed() >= FAILOVER_AFTER);
            core.failed_over |= due;
            due
        };
        if fail_over && stream.lock().producers.len() > 1 {
            if let Some(me) = self.me.upgrade() {
                let st = stream.clone();
                graph.spawn(async move { st.fail_over(&me).await });
            }
        }
        let (retries, lasting) = {
            let mut core = self.lock_core();
            core.retries += 1;
            let lasting = core.last_error.as_deref().is_some_and(is_lasting_failure);
            (core.retries, lasting)
        };
        let delay = retry_delay(retries, lasting);
        let me = self.me.clone();
        graph.spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(p) = me.upgrade() else { return };
            if p.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            // Retried while consumers are routed to it; once they have all
            // moved to another source (or left), it rests until needed.
            if p.stream.upgrade().is_some_and(|s| s.is_used(&p)) {
                tracing::debug!(target: "streams", url = %mask(&p.url), "retry source");
                p.start();
            } else {
                p.stop();
            }
        });
    }

    /// Stops the source and forgets its medias (they are learnt again on the
    /// next start).
    fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let source = {
            let mut core = self.lock_core();
            core.retries = 0;
            core.redirects = 0;
            core.current_url = self.url.clone();
            core.info.clear();
            core.logged_error = None;
            core.source.take()
        };
        if let Some(s) = source {
            s.stop();
        }
        self.status.send_replace(Status::Idle);
    }

    /// Starts the producer if needed and waits for its tracks.
    async fn ready_tracks(&self) -> Result<Vec<Arc<Track>>, String> {
        let mut rx = self.status.subscribe();
        let current = rx.borrow().clone();
        match current {
            Status::Idle | Status::Failed(_) => self.start(),
            _ => {}
        }
        let wait = async {
            loop {
                let s = rx.borrow_and_update().clone();
                match s {
                    Status::Ready => return Ok(()),
                    Status::Failed(e) => return Err(e),
                    Status::Idle => return Err("stopped".to_string()),
                    Status::Opening => {}
                }
                if rx.changed().await.is_err() {
                    return Err("producer gone".into());
                }
            }
        };
        match tokio::time::timeout(MEDIA_TIMEOUT, wait).await {
            Ok(Ok(())) => Ok(self.tracks.read().map(|t| t.clone()).unwrap_or_default()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("timeout waiting for medias".into()),
        }
    }

    fn add_sink(&self, ptrack: u32, entry: &Arc<ConsumerEntry>, ctrack: u32) {
        self.add_sink_with(ptrack, entry, ctrack, Timeline::default());
    }

    /// Wires a consumer track to one of ours with the timeline it had so far
    /// (a fresh one for a new consumer).
    fn add_sink_with(
        &self,
        ptrack: u32,
        entry: &Arc<ConsumerEntry>,
        ctrack: u32,
        timeline: Timeline,
    ) {
        let Some(track) = self.track(ptrack) else {
            return;
        };
        let mut sink = Sink {
            consumer: entry.clone(),
            ctrack,
            timeline,
        };
        let epoch = (self.id, self.generation.load(Ordering::SeqCst));
        let now = now_us();
        let mut st = track.lock();
        // Replay under the same lock that live packets take, so the consumer
        // gets the cached GOP and then live frames with no gap or duplicate.
        for p in st.gop.frames() {
            if let Some(p) = track.rebase(&mut sink.timeline, epoch, now, p) {
                entry.deliver(ctrack, &p);
            }
        }
        st.sinks.push(sink);
    }

    fn remove_sink(&self, ptrack: u32, consumer: u64) {
        if let Some(track) = self.track(ptrack) {
            track.take_sink(consumer);
        }
    }

    fn track(&self, index: u32) -> Option<Arc<Track>> {
        self.tracks.read().ok()?.get(index as usize).cloned()
    }

    fn send(&self, ptrack: u32, packet: &Packet) {
        let source = self.lock_core().source.clone();
        if let Some(s) = source {
            s.send(ptrack, packet);
        }
    }

    fn request_keyframe(&self, ptrack: u32) {
        let source = self.lock_core().source.clone();
        if let Some(s) = source {
            s.request_keyframe(ptrack);
        }
    }

    fn on_medias(&self, medias: Vec<Media>) {
        let new_track = |i: usize, m: &Media| {
            Arc::new(Track {
                index: i as u32,
                kind: m.kind,
                direction: m.direction,
                codec: m.codecs.first().cloned().unwrap_or_default(),
                state: Mutex::default(),
                bytes: AtomicU64::new(0),
                packets: AtomicU64::new(0),
            })
        };
        // Consumers of a track whose codec changed: negotiated against the
        // old codec, they cannot go on.
        let mut ended: Vec<(Arc<ConsumerEntry>, String)> = Vec::new();
        {
            let mut tracks = self.tracks.write().unwrap_or_else(|e| e.into_inner());
            let same_shape = tracks.len() == medias.len()
                && tracks
                    .iter()
                    .zip(&medias)
                    .all(|(t, m)| t.kind == m.kind && t.direction == m.direction);
            if !same_shape {
                for t in tracks.iter() {
                    for s in t.lock().sinks.drain(..) {
                        ended.push((s.consumer, "the source came back with other medias".into()));
                    }
                }
                *tracks = medias
                    .iter()
                    .enumerate()
                    .map(|(i, m)| new_track(i, m))
                    .collect();
            } else {
                for (i, m) in medias.iter().enumerate() {
                    let old = tracks[i].clone();
                    let codec = m.codecs.first().cloned().unwrap_or_default();
                    let mut st = old.lock();
                    st.gop.clear();
                    if codec == old.codec {
                        continue;
                    }
                    let fresh = new_track(i, m);
                    if codec.name != old.codec.name || codec.clock_rate != old.codec.clock_rate {
                        let why = format!(
                            "the source's codec changed from {} to {}",
                            old.codec.name, codec.name
                        );
                        for s in st.sinks.drain(..) {
                            ended.push((s.consumer, why.clone()));
                        }
                    } else {
                        // Same codec, other parameters (a new SPS, another
                        // resolution): the consumers go on, in band.
                        fresh.lock().sinks = std::mem::take(&mut st.sinks);
                    }
                    drop(st);
                    tracks[i] = fresh;
                }
            }
        }
        {
            let mut core = self.lock_core();
            core.medias = medias;
            core.retries = 0;
            core.last_error = None;
            core.failing_since = None;
            core.failed_over = false;
            if let Some(e) = core.logged_error.take() {
                let stream = self
                    .stream
                    .upgrade()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                tracing::info!(target: "streams", stream = %stream, url = %mask(&self.url), "source is back (was: {})", mask(&e));
            }
        }
        self.status.send_replace(Status::Ready);
        if self.passive {
            if let (Some(stream), Some(me)) = (self.stream.upgrade(), self.me.upgrade()) {
                stream.adopt_orphans(&me);
            }
        }
        if !ended.is_empty() {
            if let Some(graph) = self.graph.upgrade() {
                let g = graph.clone();
                // Not from inside the source's callback: closing calls into
                // the consumers' plugins.
                graph.spawn(async move {
                    let mut seen = std::collections::HashSet::new();
                    for (c, why) in ended {
                        if seen.insert(c.id) {
                            tracing::warn!(target: "streams", consumer = c.id, "consumer ended: {why}");
                            g.detach(c.id);
                            c.notify_closed(&why);
                        }
                    }
                });
            }
        }
    }

    #[inline]
    fn on_packet(&self, generation: u64, packet: &Packet) {
        let tracks = self.tracks.read().unwrap_or_else(|e| e.into_inner());
        let Some(track) = tracks.get(packet.track as usize) else {
            return;
        };
        let len = packet.payload.len() as u64;
        self.bytes.fetch_add(len, Ordering::Relaxed);
        self.packets.fetch_add(1, Ordering::Relaxed);
        track.bytes.fetch_add(len, Ordering::Relaxed);
        track.packets.fetch_add(1, Ordering::Relaxed);
        let now = now_us();
        let epoch = (self.id, generation);
        let mut st = track.lock();
        let TrackState { sinks, gop } = &mut *st;
        if track.kind == MediaKind::Video {
            // The GOP holds the producer's own timestamps; each consumer's
            // timeline rebases them on the way out, replay included.
            gop.push(packet.clone(), packet.payload.len(), packet.is_keyframe());
        }
        for s in sinks.iter_mut() {
            if let Some(p) = track.rebase(&mut s.timeline, epoch, now, packet) {
                s.consumer.deliver(s.ctrack, &p);
            }
        }
    }

    fn on_redirect(&self, generation: u64, url: String) {
        let old = {
            let mut core = self.lock_core();
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            core.redirects += 1;
            if core.redirects > MAX_REDIRECTS {
                drop(core);
                self.fail(generation, "too many redirects".into());
                return;
            }
            core.current_url = url.clone();
            core.source.take()
        };
        let Some(graph) = self.graph.upgrade() else {
            return;
        };
        let me = self.me.clone();
        // Not from inside the plugin's callback: stopping a source from its
        // own call stack could deadlock the plugin.
        graph.spawn(async move {
            if let Some(s) = old {
                s.stop();
            }
            if let Some(p) = me.upgrade() {
                if p.generation.load(Ordering::SeqCst) == generation {
                    p.open_url(url);
                }
            }
        });
    }

    fn json(&self) -> Value {
        stats::producer_json(self)
    }
}

impl Track {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn rebase<'a>(
        &self,
        timeline: &mut Timeline,
        epoch: timeline::Epoch,
        now: u64,
        packet: &'a Packet,
    ) -> Option<std::borrow::Cow<'a, Packet>> {
        timeline.apply(
            epoch,
            self.kind,
            self.codec.clock_rate,
            ParamSets::for_codec(self.codec.name.as_str()),
            &self.codec.extradata,
            now,
            packet,
        )
    }

    /// Unwires a consumer; its sink (and timeline) when it was wired.
    fn take_sink(&self, consumer: u64) -> Option<Sink> {
        let mut st = self.lock();
        let i = st.sinks.iter().position(|s| s.consumer.id == consumer)?;
        Some(st.sinks.remove(i))
    }
}

thread_local! {
    /// Set while this thread runs a consumer's `packet` under a track's
    /// lock. A plugin may drop its last reference to a consumer in there
    /// (the RTSP feed whose last session left meanwhile), and removing the
    /// consumer then would take the same, non-reentrant lock.
    static DELIVERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a consumer's `packet` (see `DELIVERING`).
pub fn delivering() -> bool {
    DELIVERING.with(|d| d.get())
}

impl ConsumerEntry {
    #[inline]
    fn deliver(&self, ctrack: u32, packet: &Packet) {
        self.bytes
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        self.packets.fetch_add(1, Ordering::Relaxed);
        match &self.sink {
            ConsumerSink::Plugin(c) => {
                let outer = DELIVERING.with(|d| d.replace(true));
                c.packet(ctrack, packet);
                DELIVERING.with(|d| d.set(outer));
            }
            ConsumerSink::Internal(Some(f)) => f(ctrack, packet),
            ConsumerSink::Internal(None) => {}
        }
    }

    pub fn medias(&self) -> Vec<Media> {
        self.medias
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn notify_closed(&self, reason: &str) {
        if let ConsumerSink::Plugin(c) = &self.sink {
            c.closed(RString::from(reason));
        }
    }

    fn is_internal_probe(&self) -> bool {
        self.info.get("format_name").and_then(|v| v.as_str()) == Some("probe")
    }

    pub fn json(&self) -> Value {
        stats::consumer_json(self)
    }

    /// The consumer's entries in `/api/streams`: itself, or, once clients
    /// registered, one per connected client (none between clients).
    pub fn records(&self) -> Vec<Value> {
        if !self.shared.load(Ordering::Relaxed) {
            return vec![stats::consumer_json(self)];
        }
        self.lock_clients()
            .iter()
            .map(|c| stats::client_json(self, c))
            .collect()
    }

    /// Moves this consumer's routes from producers that `leaving` picks to
    /// tracks of `new` with the same codec, each with its timeline, so
    /// that the output continues. Returns how many routes moved.
    fn move_routes(
        self: &Arc<Self>,
        leaving: impl Fn(&Producer) -> bool,
        new: &Arc<Producer>,
        new_tracks: &[Arc<Track>],
    ) -> usize {
        // The routes change under their lock; the sinks move after it is
        // released. Taking a track's lock under the routes lock would order
        // them against a delivery (which holds the track lock) calling back
        // into the host (`consumer_send`, `remove_client` → stream lock →
        // `is_used` → routes lock): a cycle.
        let mut moved: Vec<(Arc<Track>, u32, u32, Direction)> = Vec::new();
        {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            let mut taken: Vec<u32> = routes
                .iter()
                .filter(|r| r.producer.id == new.id)
                .map(|r| r.ptrack)
                .collect();
            for r in routes.iter_mut() {
                if r.producer.id == new.id || !leaving(&r.producer) {
                    continue;
                }
                let Some(old) = r.producer.track(r.ptrack) else {
                    continue;
                };
                let Some(nt) = new_tracks.iter().find(|t| {
                    !taken.contains(&t.index)
                        && t.kind == old.kind
                        && t.direction == old.direction
                        && t.codec.name == old.codec.name
                        && t.codec.clock_rate == old.codec.clock_rate
                }) else {
                    continue;
                };
                taken.push(nt.index);
                moved.push((old, nt.index, r.ctrack, r.direction));
                r.producer = new.clone();
                r.ptrack = nt.index;
            }
        }
        let n = moved.len();
        for (old, ptrack, ctrack, dir) in moved {
            let timeline = old
                .take_sink(self.id)
                .map(|s| s.timeline)
                .unwrap_or_default();
            if dir == Direction::RecvOnly {
                new.add_sink_with(ptrack, self, ctrack, timeline);
                // A detach that took the routes before this sink was added
                // cannot have removed it: `closed` is set before it takes them.
                if self.closed.load(Ordering::SeqCst) {
                    new.remove_sink(ptrack, self.id);
                }
            }
        }
        n
    }

    /// The producers' tracks routed to this consumer's track `track` in
    /// `direction`, copied out: what is done with them (`send`,
    /// `request_keyframe`) is plugin code, which must not run under the
    /// routes lock (a failover takes it too).
    fn routed(&self, track: u32, direction: Direction) -> Vec<(Arc<Producer>, u32)> {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.ctrack == track && r.direction == direction)
            .map(|r| (r.producer.clone(), r.ptrack))
            .collect()
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host's side of `SourceEvents`: tied to one generation of a producer,
/// so events from a stopped or replaced source are ignored.
struct HostEvents {
    producer: Weak<Producer>,
    generation: u64,
}

impl HostEvents {
    fn live(&self) -> Option<Arc<Producer>> {
        let p = self.producer.upgrade()?;
        (p.generation.load(Ordering::Relaxed) == self.generation).then_some(p)
    }
}

impl SourceEvents for HostEvents {
    fn medias(&self, medias: RVec<Media>) {
        if let Some(p) = self.live() {
            p.on_medias(medias.into_vec());
        }
    }
    #[inline]
    fn packet(&self, packet: &Packet) {
        if let Some(p) = self.live() {
            p.on_packet(self.generation, packet);
        }
    }
    fn info(&self, info: RString) {
        if let Some(p) = self.live() {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(info.as_str()) {
                p.lock_core().info.extend(m);
            }
        }
    }
    fn redirect(&self, url: RString) {
        if let Some(p) = self.live() {
            p.on_redirect(self.generation, url.into_string());
        }
    }
    fn closed(&self, reason: RString) {
        if let Some(p) = self.live() {
            p.fail(self.generation, reason.into_string());
        }
    }
}

/// While consumers wait, a camera that refuses or does not answer is dialled
/// again every half second, so that they get frames within about a second
/// of its return (a refused dial costs nothing). Answers that retrying soon
/// will not change back off exponentially, up to 30 s.
pub(crate) fn retry_delay(retries: u32, lasting: bool) -> Duration {
    if lasting {
        Duration::from_millis((1000u64 << retries.saturating_sub(1).min(5)).min(30_000))
    } else {
        Duration::from_millis(500)
    }
}

/// Failures that the same request will meet again: wrong credentials, a
/// missing path, a description we cannot use, a source that cannot run.
pub(crate) fn is_lasting_failure(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        " 401",
        " 403",
        " 404",
        " 400",
        " 405",
        " 415",
        " 451",
        " 454",
        " 461",
        "unauthorized",
        "forbidden",
        "not found",
        "wrong user or password",
        "password",
        "sdp",
        "unsupported",
        "not supported",
        "no such file",
        "bad #",
        "bad url",
        "invalid",
        "unknown scheme",
        "no plugin",
        "too many redirects",
        "no medias",
    ]
    .iter()
    .any(|k| r.contains(k))
}

/// Masks secrets in URLs for logs and API answers (see
/// [`camrouter_plugin_api::secret::mask`]).
pub fn mask(url: &str) -> String {
    camrouter_plugin_api::secret::mask(url)
}

#[cfg(test)]
mod tests;
