//! Process-wide state: config, log, plugins, stream graph, preloads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{json, Value};

use crate::graph::{ConsumerSink, Filter, Graph};
use crate::loader::Registry;
use crate::logging::Logger;

/// The go2rtc version we are compatible with; Home Assistant's client
/// requires `>= 1.9.13, < 2.0`.
pub const GO2RTC_VERSION: &str = "1.9.14";

pub struct App {
    pub logger: Arc<Logger>,
    pub graph: Arc<Graph>,
    pub registry: Arc<Registry>,
    pub config: RwLock<Value>,
    /// The file API writes go to; `None` when the config came only from
    /// inline `-c` values.
    pub config_path: Option<PathBuf>,
    pub args: Vec<String>,
    pub preloads: Mutex<BTreeMap<String, Preload>>,
    /// Serializes read-modify-write of the config file.
    pub config_write: tokio::sync::Mutex<()>,
}

pub struct Preload {
    pub query: String,
    pub consumer: u64,
}

impl App {
    pub fn section(&self, name: &str) -> Value {
        self.config
            .read()
            .map(|c| c.get(name).cloned().unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    }

    /// Loads `streams:` from the config: a name maps to a URL, a list of URLs,
    /// or nothing (a stream fed only by ingest).
    pub fn apply_streams(&self) {
        let streams = self.section("streams");
        let Some(map) = streams.as_object() else {
            return;
        };
        for (name, v) in map {
            self.graph.set_stream(name, sources_of(v));
        }
    }

    /// Starts a preload: a consumer without a client that keeps the stream's
    /// producers running.
    pub async fn preload(self: &Arc<Self>, name: &str, query: &str) -> Result<(), String> {
        let query = if Filter::parse(query).is_none() {
            "video&audio".to_string()
        } else {
            query.to_string()
        };
        self.remove_preload(name);
        if self.graph.stream(name).is_none() {
            return Err(format!("streams: stream not found: {name}"));
        }
        let id = self.graph.next_id();
        self.preloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.to_string(),
                Preload {
                    query: query.clone(),
                    consumer: id,
                },
            );
        let filter = Filter::parse_or(&query, "video&audio");
        let info = json!({"format_name": "preload", "protocol": "internal"});
        match self
            .graph
            .attach(id, name, &filter, ConsumerSink::Internal(None), info)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // Keep it registered: the user asked for it, and listing it
                // shows the error; a later source recovery is retried.
                tracing::warn!(target: "streams", stream = name, "preload: {e}");
                Ok(())
            }
        }
    }

    pub fn remove_preload(&self, name: &str) -> bool {
        let p = self
            .preloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match p {
            Some(p) => {
                self.graph.detach(p.consumer);
                true
            }
            None => false,
        }
    }
}

pub fn sources_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}
