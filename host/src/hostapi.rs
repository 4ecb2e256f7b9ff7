//! The host's services as plugins see them (`HostApi`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use abi_stable::std_types::RArc;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString, RVec};
use camrouter_plugin_api::abi::{
    ApiCredentials, ClientCounters, ConsumerBox, HostApi, LogLevel, SourceBox, SourceEventsBox,
};
use camrouter_plugin_api::Packet;
use serde_json::Value;

use crate::graph::{ConsumerSink, Filter, Graph};
use crate::logging::Logger;

/// Facts plugins publish for each other (`rtsp.internal_url`, ...).
pub type Facts = Arc<Mutex<HashMap<String, String>>>;

pub struct HostImpl {
    pub facts: Facts,
    pub logger: Arc<Logger>,
    pub graph: Weak<Graph>,
    /// Applied when a consumer's query names no media (`rtsp.default_query`).
    pub default_query: String,
    /// `api.username` and `api.password` (`check_api_credentials`).
    pub api_credentials: (String, String),
}

/// Compares without stopping at the first difference, so the time taken
/// tells nothing about how much of a guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl HostApi for HostImpl {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        self.logger.log(level, target.as_str(), message.as_str());
    }

    fn log_enabled(&self, level: LogLevel, target: RStr<'_>) -> bool {
        self.logger.enabled(level, target.as_str())
    }

    fn add_consumer(
        &self,
        stream: RStr<'_>,
        query: RStr<'_>,
        info: RString,
        consumer: ConsumerBox,
    ) -> u64 {
        let Some(graph) = self.graph.upgrade() else {
            consumer.failed(RString::from("server is shutting down"));
            return 0;
        };
        let id = graph.next_id();
        let filter = Filter::parse_or(query.as_str(), &self.default_query);
        let info: Value = serde_json::from_str(info.as_str()).unwrap_or(Value::Null);
        let stream = stream.to_string();
        let consumer = Arc::new(consumer);
        let g = graph.clone();
        graph.spawn(async move {
            let sink = ConsumerSink::Plugin(consumer.clone());
            match g.attach(id, &stream, &filter, sink, info).await {
                // `attached` was called by the graph, before the first packet.
                Ok(_) => {}
                Err(e) => consumer.failed(RString::from(e.to_string())),
            }
        });
        id
    }

    fn remove_consumer(&self, id: u64) {
        if let Some(g) = self.graph.upgrade() {
            if crate::graph::delivering() {
                // Called from inside a packet delivery, which holds a track
                // lock that `detach` needs: detach once it is released.
                std::thread::spawn(move || g.detach(id));
            } else {
                g.detach(id);
            }
        }
    }

    fn consumer_send(&self, id: u64, track: u32, packet: &Packet) {
        if let Some(g) = self.graph.upgrade() {
            g.consumer_send(id, track, packet);
        }
    }

    fn request_keyframe(&self, id: u64, track: u32) {
        if let Some(g) = self.graph.upgrade() {
            g.request_keyframe(id, track);
        }
    }

    fn add_producer(
        &self,
        stream: RStr<'_>,
        info: RString,
        source: SourceBox,
    ) -> RResult<SourceEventsBox, RString> {
        let Some(g) = self.graph.upgrade() else {
            return RErr(RString::from("server is shutting down"));
        };
        let info: Value = serde_json::from_str(info.as_str()).unwrap_or(Value::Null);
        match g.add_producer(stream.as_str(), info, source) {
            Ok(ev) => ROk(ev),
            Err(e) => RErr(RString::from(e.to_string())),
        }
    }

    fn add_client(&self, consumer: u64, info: RString, counters: RArc<ClientCounters>) -> u64 {
        let Some(g) = self.graph.upgrade() else {
            return 0;
        };
        let info: Value = serde_json::from_str(info.as_str()).unwrap_or(Value::Null);
        g.add_client(consumer, info, counters)
    }

    fn update_client(&self, client: u64, info: RString) {
        if let Some(g) = self.graph.upgrade() {
            let info: Value = serde_json::from_str(info.as_str()).unwrap_or(Value::Null);
            g.update_client(client, info);
        }
    }

    fn remove_client(&self, client: u64) {
        if let Some(g) = self.graph.upgrade() {
            g.remove_client(client);
        }
    }

    fn stream_exists(&self, name: RStr<'_>) -> bool {
        self.graph
            .upgrade()
            .is_some_and(|g| g.stream(name.as_str()).is_some())
    }

    fn add_stream(&self, name: RStr<'_>, sources: RVec<RString>, hidden: bool) {
        let Some(g) = self.graph.upgrade() else {
            return;
        };
        let sources = sources.into_iter().map(RString::into_string).collect();
        if hidden {
            g.set_hidden_stream(name.as_str(), sources);
        } else {
            g.set_stream(name.as_str(), sources);
        }
    }

    fn remove_stream(&self, name: RStr<'_>) {
        if let Some(g) = self.graph.upgrade() {
            g.remove_stream(name.as_str());
        }
    }

    fn set_fact(&self, key: RStr<'_>, value: RString) {
        if let Ok(mut f) = self.facts.lock() {
            f.insert(key.to_string(), value.into_string());
        }
    }

    fn check_api_credentials(&self, user: RStr<'_>, password: RStr<'_>) -> ApiCredentials {
        let (u, p) = &self.api_credentials;
        if u.is_empty() {
            return ApiCredentials::AuthOff;
        }
        // Both compared, whatever the first gives.
        let ok_user = same_secret(user.as_str().as_bytes(), u.as_bytes());
        let ok_password = same_secret(password.as_str().as_bytes(), p.as_bytes());
        if ok_user & ok_password {
            ApiCredentials::Accepted
        } else {
            ApiCredentials::Refused
        }
    }

    fn fact(&self, key: RStr<'_>) -> ROption<RString> {
        self.facts
            .lock()
            .ok()
            .and_then(|f| f.get(key.as_str()).cloned())
            .map(RString::from)
            .into()
    }
}
