//! Publishing a stream to a remote server, as go2rtc: the config's
//! `publish: {stream: [rtmp://…, …]}` and `POST /api/streams?src=cam&dst=URL`.
//! The plugin owning the URL's scheme runs each publisher (its own consumer
//! of the stream, `PluginObject::publish`); the host keeps the config's up,
//! reconnecting on the sources' retry schedule, and forgets an API one when
//! it ends or is stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RStr, RString};
use camrouter_plugin_api::abi::{PublishEvents, PublishEventsBox, PublisherBox};

use crate::app::App;
use crate::graph::mask;

/// A target as logs show it: up to the app, since the rest is the stream
/// key (`rtmp://a.rtmp.youtube.com/live2/…`), which lets anyone stream to
/// the account.
fn shown(url: &str) -> String {
    let url = mask(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url;
    };
    let mut parts = rest.splitn(3, '/');
    let authority = parts.next().unwrap_or("");
    match (parts.next(), parts.next()) {
        (Some(app), Some(_)) => format!("{scheme}://{authority}/{app}/…"),
        (Some(app), None) if app.contains('?') => {
            format!(
                "{scheme}://{authority}/{}?…",
                app.split('?').next().unwrap_or("")
            )
        }
        _ => url,
    }
}

#[cfg(test)]
#[test]
fn stream_keys_are_not_shown() {
    assert_eq!(
        shown("rtmp://a.rtmp.youtube.com/live2/abcd-efgh"),
        "rtmp://a.rtmp.youtube.com/live2/…"
    );
    assert_eq!(shown("rtmps://h:443/app?key=1"), "rtmps://h:443/app?…");
    assert_eq!(shown("rtmp://h/app"), "rtmp://h/app");
}

struct Entry {
    stream: String,
    url: String,
    /// From the config: reconnected whenever it ends.
    keep: bool,
    /// Bumped at each (re)start, so a late `closed` of an old run is ignored.
    generation: u64,
    running: Option<PublisherBox>,
    started: Instant,
    retries: u32,
    last_error: Option<String>,
}

#[derive(Default)]
struct Table {
    next: u64,
    entries: HashMap<u64, Entry>,
}

fn table() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, Table> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// A run that lasted this long was working: its end starts the retry
/// schedule afresh.
const HEALTHY: Duration = Duration::from_secs(10);

/// Starts the config's publishers (`publish:`): a stream maps to a URL or a
/// list of URLs.
pub fn start_config(app: &Arc<App>) {
    let section = app.section("publish");
    let Some(map) = section.as_object() else {
        return;
    };
    for (stream, targets) in map {
        for url in crate::app::sources_of(targets) {
            if app.graph.stream(stream).is_none() {
                tracing::warn!(target: "streams", stream = %stream, "publish: stream not found");
                continue;
            }
            if let Err(e) = add(app, stream, &url, true) {
                tracing::warn!(target: "streams", stream = %stream, url = %shown(&url), "publish: {e}");
            }
        }
    }
}

/// Adds a publisher of `stream` to `url` and starts it. An API publisher of
/// the same stream and URL replaces the previous one.
pub fn add(app: &Arc<App>, stream: &str, url: &str, keep: bool) -> Result<(), String> {
    if app.registry.plugin_for(url).is_none() {
        return Err(format!("publish: unsupported scheme: {}", mask(url)));
    }
    if !keep {
        stop(stream, url);
    }
    let id = {
        let mut t = lock();
        t.next += 1;
        let id = t.next;
        t.entries.insert(
            id,
            Entry {
                stream: stream.to_string(),
                url: url.to_string(),
                keep,
                generation: 0,
                running: None,
                started: Instant::now(),
                retries: 0,
                last_error: None,
            },
        );
        id
    };
    let r = run(app, id);
    if r.is_err() {
        lock().entries.remove(&id);
    }
    r
}

/// Stops the API publishers of `stream` to `url`; `false` if there were none.
pub fn stop(stream: &str, url: &str) -> bool {
    let gone: Vec<Entry> = {
        let mut t = lock();
        let ids: Vec<u64> = t
            .entries
            .iter()
            .filter(|(_, e)| !e.keep && e.stream == stream && e.url == url)
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| t.entries.remove(id)).collect()
    };
    let found = !gone.is_empty();
    for e in gone {
        if let Some(p) = e.running {
            p.stop();
        }
    }
    found
}

/// (Re)starts entry `id` through the plugin of its scheme.
fn run(app: &Arc<App>, id: u64) -> Result<(), String> {
    let (stream, url, generation) = {
        let mut t = lock();
        let Some(e) = t.entries.get_mut(&id) else {
            return Ok(());
        };
        e.generation += 1;
        e.started = Instant::now();
        (e.stream.clone(), e.url.clone(), e.generation)
    };
    let plugin = app
        .registry
        .plugin_for(&url)
        .ok_or_else(|| format!("publish: unsupported scheme: {}", mask(&url)))?;
    let events = PublishEventsBox::from_ptr(
        RArc::new(Events {
            app: Arc::downgrade(app),
            id,
            generation,
        }),
        TD_Opaque,
    );
    match plugin
        .object
        .publish(RStr::from_str(&stream), RStr::from_str(&url), events)
    {
        RResult::ROk(p) => {
            let mut t = lock();
            let stale = match t.entries.get_mut(&id) {
                // A run that ended before it was stored here (its `closed`
                // found nothing to stop) is stopped now.
                Some(e) if e.generation == generation => e.running.replace(p),
                // Stopped meanwhile.
                _ => Some(p),
            };
            drop(t);
            if let Some(p) = stale {
                p.stop();
            }
            Ok(())
        }
        RResult::RErr(e) => Err(e.into_string()),
    }
}

struct Events {
    app: Weak<App>,
    id: u64,
    generation: u64,
}

impl PublishEvents for Events {
    fn closed(&self, reason: RString) {
        let reason = reason.into_string();
        let Some(app) = self.app.upgrade() else {
            return;
        };
        let mut t = lock();
        let Some(e) = t.entries.get_mut(&self.id) else {
            return;
        };
        if e.generation != self.generation {
            return;
        }
        let old = e.running.take();
        let (stream, url) = (e.stream.clone(), shown(&e.url));
        if !e.keep {
            t.entries.remove(&self.id);
            drop(t);
            tracing::warn!(target: "streams", stream = %stream, url = %url, "publish: {}", mask(&reason));
            if let Some(p) = old {
                p.stop();
            }
            return;
        }
        if e.started.elapsed() >= HEALTHY {
            e.retries = 0;
        }
        e.retries += 1;
        let lasting = crate::graph::is_lasting_failure(&reason);
        // One line when it starts failing or the kind of failure changes,
        // as for sources; the rest at debug.
        let news = e.retries == 1
            || e.last_error
                .as_deref()
                .is_none_or(|l| crate::graph::is_lasting_failure(l) != lasting);
        e.last_error = Some(reason.clone());
        let delay = crate::graph::retry_delay(e.retries, lasting);
        drop(t);
        if news {
            tracing::warn!(target: "streams", stream = %stream, url = %url, retry_in = ?delay, "publish: {}", mask(&reason));
        } else {
            tracing::debug!(target: "streams", stream = %stream, url = %url, retry_in = ?delay, "publish: {}", mask(&reason));
        }
        if let Some(p) = old {
            p.stop();
        }
        let id = self.id;
        let generation = self.generation;
        let a = app.clone();
        app.graph.spawn(async move {
            tokio::time::sleep(delay).await;
            // Still the same run's follow-up (not stopped or restarted since).
            let current = lock()
                .entries
                .get(&id)
                .is_some_and(|e| e.generation == generation);
            if current {
                if let Err(e) = run(&a, id) {
                    tracing::warn!(target: "streams", "publish: {e}");
                }
            }
        });
    }
}
