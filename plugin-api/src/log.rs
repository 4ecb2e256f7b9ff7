//! Log forwarding: a plugin's `tracing` events reach the host's log through
//! `HostApi::log`, so one log shows every module with its name.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use abi_stable::std_types::RStr;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Level, Metadata, Subscriber};

use crate::abi::{HostBox, LogLevel};

pub fn level_of(level: &Level) -> LogLevel {
    match *level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

/// Renders an event as go2rtc renders its log lines: the message, then
/// `key=value` pairs sorted by key with `error` first (values with spaces or
/// quotes are quoted).
pub fn format_fields(event: &Event<'_>) -> String {
    let mut v = FieldWriter::default();
    event.record(&mut v);
    v.fields
        .sort_by(|a, b| (a.0 != "error", a.0).cmp(&(b.0 != "error", b.0)));
    let mut out = v.message;
    for (k, val) in v.fields {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        if val.is_empty()
            || val.contains([' ', '"', '=', '\\'])
            || val.chars().any(char::is_control)
        {
            let _ = write!(out, "{val:?}");
        } else {
            out.push_str(&val);
        }
    }
    out
}

#[derive(Default)]
struct FieldWriter {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl FieldWriter {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }
}

impl Visit for FieldWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let s = format!("{value:?}");
        self.push(field, &s);
    }
}

/// The subscriber a dynamically loaded plugin installs as its global default.
pub struct Forwarder {
    host: Arc<HostBox>,
    next_span: AtomicU64,
}

impl Forwarder {
    pub fn new(host: Arc<HostBox>) -> Self {
        Forwarder {
            host,
            next_span: AtomicU64::new(1),
        }
    }
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Levels can change at run time in the host: ask every time.
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.host.log_enabled(
            level_of(metadata.level()),
            RStr::from_str(metadata.target()),
        )
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let text = format_fields(event);
        self.host.log(
            level_of(meta.level()),
            RStr::from_str(meta.target()),
            RStr::from_str(&text),
        );
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
