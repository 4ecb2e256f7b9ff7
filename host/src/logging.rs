//! The host log: go2rtc's console format (Home Assistant reads these lines to
//! know the server is up), per-module levels, JSON output, and the in-memory
//! ring served at `/api/log`. Plugin events arrive through `HostApi::log`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use camrouter_plugin_api::abi::LogLevel;
use camrouter_plugin_api::log::{format_fields, level_of};
use serde_json::Value;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Metadata, Subscriber};

const RING_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Output {
    Stdout,
    Stderr,
    None,
}

pub struct Settings {
    pub default: LogLevel,
    pub modules: HashMap<String, LogLevel>,
    pub format: Format,
    pub output: Output,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default: LogLevel::Info,
            modules: HashMap::new(),
            format: Format::Text,
            output: Output::Stdout,
        }
    }
}

pub fn parse_level(s: &str) -> Option<LogLevel> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" | "warning" => LogLevel::Warn,
        "error" | "fatal" | "panic" => LogLevel::Error,
        // go2rtc's "disabled": nothing is above error, so only errors pass.
        "disabled" => LogLevel::Error,
        _ => return None,
    })
}

impl Settings {
    /// From the `log:` config section. Returns the settings and warnings.
    pub fn from_config(section: &Value) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut warnings = Vec::new();
        let Some(map) = section.as_object() else {
            return (s, warnings);
        };
        for (k, v) in map {
            let text = match v {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            match k.as_str() {
                "level" => match parse_level(&text) {
                    Some(l) => s.default = l,
                    None => warnings.push(format!("log.level: unknown level {text:?}")),
                },
                "format" => match text.as_str() {
                    "json" => s.format = Format::Json,
                    "text" | "color" | "" => s.format = Format::Text,
                    _ => warnings.push(format!("log.format: unknown format {text:?}")),
                },
                "output" => match text.as_str() {
                    "stdout" => s.output = Output::Stdout,
                    "stderr" => s.output = Output::Stderr,
                    "" => s.output = Output::None,
                    _ => warnings.push(format!("log.output: unknown output {text:?}")),
                },
                "time" => {}
                module => match parse_level(&text) {
                    Some(l) => {
                        s.modules.insert(module.to_string(), l);
                    }
                    None => warnings.push(format!("log.{module}: unknown level {text:?}")),
                },
            }
        }
        (s, warnings)
    }
}

/// The module a `tracing` target belongs to: `camrouter_exec::source` → `exec`;
/// host code logs with explicit targets (`api`, `streams`, `app`).
pub fn module_of(target: &str) -> &str {
    let first = target.split("::").next().unwrap_or(target);
    if let Some(m) = first.strip_prefix("camrouter_") {
        return m;
    }
    if first == "camrouter" {
        return "app";
    }
    first
}

/// Dependencies (hyper, axum, ...) log under their module paths; they are
/// kept to warnings unless asked for by name.
fn is_own(target: &str) -> bool {
    target.starts_with("camrouter") || !target.contains("::")
}

pub struct Logger {
    settings: RwLock<Settings>,
    ring: Mutex<Ring>,
    next_span: AtomicU64,
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Logger {
    pub fn new(settings: Settings) -> Arc<Logger> {
        Arc::new(Logger {
            settings: RwLock::new(settings),
            ring: Mutex::default(),
            next_span: AtomicU64::new(1),
        })
    }

    pub fn set(&self, settings: Settings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    pub fn enabled(&self, level: LogLevel, target: &str) -> bool {
        let s = self.settings.read().unwrap_or_else(|e| e.into_inner());
        let module = module_of(target);
        let min = match s.modules.get(module) {
            Some(l) => *l,
            None if is_own(target) => s.default,
            None => s.default.max(LogLevel::Warn),
        };
        level >= min
    }

    /// Every log line, the host's and the plugins', passes here: credentials
    /// are masked once, for the console and `/api/log` alike.
    pub fn log(&self, level: LogLevel, target: &str, message: &str) {
        let message = camrouter_plugin_api::secret::mask(message);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let module = module_of(target);
        // go2rtc's ring holds zerolog JSON with the module inside the message.
        let json_line = serde_json::json!({
            "level": level_name(level),
            "time": now.as_millis() as u64,
            "message": format!("[{module}] {message}"),
        })
        .to_string();
        let (format, output) = {
            let s = self.settings.read().unwrap_or_else(|e| e.into_inner());
            (s.format, s.output)
        };
        if output != Output::None {
            let line = match format {
                Format::Json => format!("{json_line}\n"),
                Format::Text => {
                    let (h, m, sec) = local_hms(now.as_secs() as i64);
                    format!(
                        "{:02}:{:02}:{:02}.{:03} {} [{}] {}\n",
                        h,
                        m,
                        sec,
                        now.subsec_millis(),
                        level_short(level),
                        module,
                        message
                    )
                }
            };
            let _ = match output {
                Output::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
                _ => std::io::stderr().lock().write_all(line.as_bytes()),
            };
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.bytes += json_line.len() + 1;
        ring.lines.push_back(json_line);
        while ring.bytes > RING_BYTES {
            match ring.lines.pop_front() {
                Some(l) => ring.bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    /// `/api/log`: JSON lines, oldest first.
    pub fn ring_text(&self) -> String {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(ring.bytes);
        for l in &ring.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    pub fn clear_ring(&self) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.lines.clear();
        ring.bytes = 0;
    }
}

/// Local wall-clock time of day, as go2rtc prints it (UTC if the zone is unknown).
fn local_hms(secs: i64) -> (i64, i64, i64) {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid
    // for the call, and localtime_r is the thread-safe variant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        (tm.tm_hour as i64, tm.tm_min as i64, tm.tm_sec as i64)
    } else {
        ((secs / 3600) % 24, (secs / 60) % 60, secs % 60)
    }
}

fn level_short(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "TRC",
        LogLevel::Debug => "DBG",
        LogLevel::Info => "INF",
        LogLevel::Warn => "WRN",
        LogLevel::Error => "ERR",
    }
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// The process-wide `tracing` subscriber: host code and, in a bundled build,
/// the linked-in plugins log through it.
pub struct HostSubscriber(pub Arc<Logger>);

impl Subscriber for HostSubscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.0.enabled(level_of(m.level()), m.target())
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.0.next_span.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let m = e.metadata();
        self.0
            .log(level_of(m.level()), m.target(), &format_fields(e));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_and_levels() {
        assert_eq!(module_of("camrouter_exec::source"), "exec");
        assert_eq!(module_of("api"), "api");
        let (s, w) = Settings::from_config(
            &serde_json::json!({"level": "warn", "exec": "debug", "format": "json", "bogus": "x"}),
        );
        assert_eq!(w.len(), 1);
        let l = Logger::new(s);
        assert!(l.enabled(LogLevel::Debug, "camrouter_exec::x"));
        assert!(!l.enabled(LogLevel::Info, "api"));
        assert!(l.enabled(LogLevel::Warn, "api"));
    }

    #[test]
    fn credentials_never_reach_the_ring() {
        let l = Logger::new(Settings {
            output: Output::None,
            ..Default::default()
        });
        l.log(
            LogLevel::Trace,
            "camrouter_exec::source",
            "exec: started cmd=ffmpeg -i rtsp://admin:hunter2@cam/s?password=hunter3",
        );
        let text = l.ring_text();
        assert!(!text.contains("hunter"), "{text}");
        assert!(
            text.contains("rtsp://admin:***@cam/s?password=***"),
            "{text}"
        );
    }

    #[test]
    fn ring_is_bounded_and_clearable() {
        let l = Logger::new(Settings {
            output: Output::None,
            ..Default::default()
        });
        for i in 0..20000 {
            l.log(
                LogLevel::Info,
                "api",
                &format!("line {i} {}", "x".repeat(100)),
            );
        }
        let text = l.ring_text();
        assert!(text.len() <= RING_BYTES);
        assert!(text.lines().last().unwrap().contains("line 19999"));
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first["message"].as_str().unwrap().starts_with("[api] line"));
        l.clear_ring();
        assert!(l.ring_text().is_empty());
    }
}
