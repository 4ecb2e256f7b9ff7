//! Per-stream totals for `/api/metrics`. They are read from the counters the
//! packet path already keeps; what a producer had counted when it leaves the
//! stream is added to the stream's `departed_producers`, under the same lock that
//! removes it, so the stream's totals never go down.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Client, ConsumerEntry, ConsumerTotals, Graph, Producer, Status, Stream};

/// A stream's producer side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerTotals {
    /// Producers connected now (medias known, packets may flow).
    pub connected: u64,
    pub bytes: u64,
    pub packets: u64,
    /// Starts of a source after it failed (reconnects, retries, respawns).
    pub restarts: u64,
}

#[derive(Clone, Debug)]
pub struct StreamTotals {
    pub name: String,
    /// The stream is named by one of its own source URLs (the temporary
    /// stream of `POST /api/streams?src=URL`): its name is no label.
    pub named_by_source: bool,
    pub producers: ProducerTotals,
    pub consumers: ConsumerTotals,
}

/// What the producers that left a stream had counted.
#[derive(Default)]
pub(super) struct DepartedProducers {
    bytes: u64,
    packets: u64,
    restarts: u64,
    /// An ingest publisher left: the next one to arrive is a restart.
    publisher_gone: bool,
}

impl DepartedProducers {
    /// Call with the stream's lock held, as the producer leaves its list.
    pub(super) fn producer_left(&mut self, p: &Producer) {
        self.bytes += p.bytes.load(Ordering::Relaxed);
        self.packets += p.packets.load(Ordering::Relaxed);
        self.restarts += p.restarts.load(Ordering::Relaxed);
        self.publisher_gone |= p.passive;
    }

    /// Call with the stream's lock held, as an ingest producer joins.
    pub(super) fn publisher_joined(&mut self) {
        if std::mem::take(&mut self.publisher_gone) {
            self.restarts += 1;
        }
    }
}

impl Graph {
    /// Totals of every stream the API lists (hidden streams are plumbing),
    /// in name order.
    pub fn stream_totals(&self) -> Vec<StreamTotals> {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        streams
            .iter()
            .filter(|s| !s.hidden.load(Ordering::Relaxed))
            .map(|s| {
                let named_by_source = s.lock().sources.iter().any(|u| *u == s.name);
                StreamTotals {
                    name: s.name.clone(),
                    named_by_source,
                    producers: s.producer_totals(),
                    consumers: s.consumer_totals(),
                }
            })
            .collect()
    }
}

impl Stream {
    pub fn producer_totals(&self) -> ProducerTotals {
        // Read under the lock that removes producers: a producer is counted
        // either here or in `departed`, never in both or neither.
        let inner = self.lock();
        let mut t = ProducerTotals {
            bytes: inner.departed_producers.bytes,
            packets: inner.departed_producers.packets,
            restarts: inner.departed_producers.restarts,
            ..Default::default()
        };
        for p in inner.producers.iter().chain(inner.passive.iter()) {
            t.bytes += p.bytes.load(Ordering::Relaxed);
            t.packets += p.packets.load(Ordering::Relaxed);
            t.restarts += p.restarts.load(Ordering::Relaxed);
            if *p.status.borrow() == Status::Ready {
                t.connected += 1;
            }
        }
        t
    }
}

/// Consumers and clients leave under the stream's lock, which
/// `consumer_totals` reads under: their counts move to `departed` in the same
/// step that takes them off the list.
impl Stream {
    /// Takes the consumer off the list; returns its clients.
    pub(super) fn consumer_left(&self, entry: &ConsumerEntry) -> Vec<Client> {
        let mut inner = self.lock();
        let clients = std::mem::take(&mut *entry.lock_clients());
        if entry.shared.load(Ordering::Relaxed) {
            for c in &clients {
                self.departed.add_client(&c.counters);
            }
        } else if !entry.is_internal_probe() {
            self.departed.add(
                entry.bytes.load(Ordering::Relaxed),
                entry.packets.load(Ordering::Relaxed),
                0,
            );
        }
        inner.consumers.retain(|c| c.id != entry.id);
        clients
    }

    pub(super) fn client_joined(&self, entry: &ConsumerEntry, client: Client) {
        let _inner = self.lock();
        // From its first client on, a consumer counts as its clients: what
        // it had counted itself until then stays in the totals.
        if !entry.shared.swap(true, Ordering::Relaxed) && !entry.is_internal_probe() {
            self.departed.add(
                entry.bytes.load(Ordering::Relaxed),
                entry.packets.load(Ordering::Relaxed),
                0,
            );
        }
        entry.lock_clients().push(client);
    }

    pub(super) fn client_left(&self, entry: &ConsumerEntry, id: u64) {
        let _inner = self.lock();
        let mut clients = entry.lock_clients();
        if let Some(i) = clients.iter().position(|c| c.id == id) {
            let c = clients.remove(i);
            self.departed.add_client(&c.counters);
        }
    }
}

impl Producer {
    /// A source is being opened: after a failure, that is a restart.
    pub(super) fn note_start(&self) {
        if self.failed.swap(false, Ordering::Relaxed) {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn note_failure(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}
