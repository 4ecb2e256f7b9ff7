//! `GET /api/metrics`: Prometheus text exposition format 0.0.4.
//!
//! Names follow <https://prometheus.io/docs/practices/naming/>: `camrouter_`
//! prefix, base units (bytes, seconds), `_total` on counters. A scrape only
//! reads counters the packet path keeps anyway and a few `/proc` files. Labels
//! carry stream names, module names and versions, never a URL: a stream named
//! by its own source URL is left out.

use std::fmt::{Display, Write as _};
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::{App, GO2RTC_VERSION};
use crate::graph::StreamTotals;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn response(app: &App) -> Response {
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(app),
    )
        .into_response()
}

pub fn render(app: &App) -> String {
    let mut out = Exposition::default();
    out.family(
        "camrouter_build_info",
        Kind::Gauge,
        "camrouter's version and the go2rtc version its API matches; always 1.",
    );
    out.sample(
        "camrouter_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("go2rtc_version", GO2RTC_VERSION),
        ],
        1,
    );
    out.family(
        "camrouter_plugin_info",
        Kind::Gauge,
        "A loaded plugin and its version; always 1.",
    );
    for p in app.registry.all() {
        out.sample(
            "camrouter_plugin_info",
            &[("module", &p.name), ("version", &p.version)],
            1,
        );
    }
    let streams: Vec<StreamTotals> = app
        .graph
        .stream_totals()
        .into_iter()
        .filter(|s| !s.named_by_source && !s.name.contains("://"))
        .collect();
    streams_section(&mut out, &streams);
    process_section(&mut out);
    out.text
}

fn streams_section(out: &mut Exposition, streams: &[StreamTotals]) {
    type Field = fn(&StreamTotals) -> u64;
    const FAMILIES: &[(&str, Kind, &str, Field)] = &[
        (
            "camrouter_stream_producers",
            Kind::Gauge,
            "Sources of the stream connected now.",
            |s| s.producers.connected,
        ),
        (
            "camrouter_stream_consumers",
            Kind::Gauge,
            "Consumers of the stream now: each client (an RTSP session), preload, play.",
            |s| s.consumers.count,
        ),
        (
            "camrouter_stream_received_bytes_total",
            Kind::Counter,
            "Media payload bytes received from the stream's sources.",
            |s| s.producers.bytes,
        ),
        (
            "camrouter_stream_received_packets_total",
            Kind::Counter,
            "Packets (frames) received from the stream's sources.",
            |s| s.producers.packets,
        ),
        (
            "camrouter_stream_sent_bytes_total",
            Kind::Counter,
            "Bytes sent to the stream's clients as written (RTSP: RTP with its framing).",
            |s| s.consumers.bytes,
        ),
        (
            "camrouter_stream_sent_packets_total",
            Kind::Counter,
            "Packets sent to the stream's clients (RTSP: RTP packets).",
            |s| s.consumers.packets,
        ),
        (
            "camrouter_stream_dropped_frames_total",
            Kind::Counter,
            "Frames skipped for clients that could not keep up.",
            |s| s.consumers.dropped,
        ),
        (
            "camrouter_stream_producer_restarts_total",
            Kind::Counter,
            "Starts of a source after it failed (reconnects, retries, respawns) and returning ingest publishers.",
            |s| s.producers.restarts,
        ),
    ];
    for (name, kind, help, field) in FAMILIES {
        out.family(name, *kind, help);
        for s in streams {
            out.sample(name, &[("stream", &s.name)], field(s));
        }
    }
}

fn process_section(out: &mut Exposition) {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| ProcStat::parse(&t));
    let statm = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| Statm::parse(&t));
    let ticks = sysconf(libc::_SC_CLK_TCK);
    let page = sysconf(libc::_SC_PAGESIZE);
    if let (Some(st), Some(ticks)) = (&stat, ticks) {
        out.family(
            "process_cpu_seconds_total",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
        );
        out.sample(
            "process_cpu_seconds_total",
            &[],
            (st.utime + st.stime) as f64 / ticks as f64,
        );
    }
    if let (Some(m), Some(page)) = (&statm, page) {
        out.family(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", &[], m.resident * page);
        out.family(
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory size in bytes.",
        );
        out.sample("process_virtual_memory_bytes", &[], m.size * page);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The listing's own descriptor is among them, as in client_golang.
        out.family(
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors.",
        );
        out.sample("process_open_fds", &[], dir.count());
    }
    if let Some(max) = max_fds() {
        out.family(
            "process_max_fds",
            Kind::Gauge,
            "Maximum number of open file descriptors.",
        );
        out.sample("process_max_fds", &[], max);
    }
    if let Some(start) = start_time(stat.as_ref(), ticks) {
        out.family(
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process since unix epoch in seconds.",
        );
        out.sample("process_start_time_seconds", &[], start);
    }
}

/// Boot time plus the process's start in clock ticks after boot: it does not
/// change, so it is worked out once.
fn start_time(stat: Option<&ProcStat>, ticks: Option<u64>) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| boot_time(&t))?;
        Some(btime as f64 + stat?.starttime as f64 / ticks? as f64)
    })
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    (v > 0).then_some(v as u64)
}

fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// The fields of `/proc/self/stat` we use (proc(5)).
#[derive(Debug, PartialEq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

impl ProcStat {
    fn parse(text: &str) -> Option<ProcStat> {
        // The command name (field 2) is in parentheses and may hold spaces and
        // parentheses itself: fields are counted after its last `)`.
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `f[0]` is field 3 (state).
        let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
        Some(ProcStat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
        })
    }
}

/// `/proc/self/statm`, in pages.
#[derive(Debug, PartialEq)]
struct Statm {
    size: u64,
    resident: u64,
}

impl Statm {
    fn parse(text: &str) -> Option<Statm> {
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        Some(Statm {
            size: it.next()??,
            resident: it.next()??,
        })
    }
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Writes the text format: `# HELP` and `# TYPE` once per family, then its
/// samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        self.text.push_str("# HELP ");
        self.text.push_str(name);
        self.text.push(' ');
        escape_help(help, &mut self.text);
        self.text.push('\n');
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                escape_label_value(v, &mut self.text);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and line feed (a quote stays as it is).
fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
