use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RString, RVec};
use camrouter_plugin_api::abi::{Source, SourceBox, SourceEventsBox};
use camrouter_plugin_api::{Codec, Direction, Media, MediaKind, Packet};
use serde_json::json;

use super::*;
use crate::graph::{ConsumerSink, Filter, Graph, Opener};
use crate::loader::Registry;
use crate::logging::{Logger, Settings};

/// Opens every URL as one H.264 track and keeps the events for the test.
#[derive(Default)]
struct TestOpener {
    events: Mutex<Vec<(String, Arc<SourceEventsBox>)>>,
}

struct Idle;
impl Source for Idle {
    fn send(&self, _: u32, _: &Packet) {}
    fn stop(&self) {}
}

impl Opener for TestOpener {
    fn open(&self, url: &str, events: SourceEventsBox) -> Result<SourceBox, String> {
        events.medias(RVec::from(vec![Media {
            kind: MediaKind::Video,
            direction: Direction::RecvOnly,
            codecs: RVec::from(vec![Codec {
                name: "H264".into(),
                clock_rate: 90000,
                ..Default::default()
            }]),
        }]));
        self.events
            .lock()
            .unwrap()
            .push((url.to_string(), Arc::new(events)));
        Ok(SourceBox::from_value(Idle, TD_Opaque))
    }
}

impl TestOpener {
    fn last(&self, url: &str) -> Arc<SourceEventsBox> {
        let ev = self.events.lock().unwrap();
        ev.iter().rev().find(|(u, _)| u == url).unwrap().1.clone()
    }
}

fn frame(len: usize, key: bool) -> Packet {
    Packet {
        track: 0,
        flags: if key {
            camrouter_plugin_api::FLAG_KEYFRAME
        } else {
            0
        },
        pts: 0,
        dts: 0,
        received_at_us: 0,
        payload: RArc::new(RVec::from(vec![0u8; len])),
    }
}

fn app(graph: Arc<Graph>) -> App {
    App {
        logger: Logger::new(Settings::default()),
        graph,
        registry: Arc::new(Registry::default()),
        config: RwLock::new(json!({})),
        config_path: None,
        args: Vec::new(),
        preloads: Mutex::new(BTreeMap::new()),
        config_write: tokio::sync::Mutex::new(()),
    }
}

/// `name{labels} value` lines keyed by `name{labels}`.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut out = Exposition::default();
    out.family("x_total", Kind::Counter, "a \\ b\nc \"q\"");
    out.sample("x_total", &[("stream", "a\\b\"c\nd"), ("k", "v")], 3);
    assert_eq!(
        out.text,
        "# HELP x_total a \\\\ b\\nc \"q\"\n\
         # TYPE x_total counter\n\
         x_total{stream=\"a\\\\b\\\"c\\nd\",k=\"v\"} 3\n"
    );
}

#[tokio::test]
async fn every_family_has_help_and_type_and_follows_the_naming_rules() {
    let g = Graph::new(tokio::runtime::Handle::current());
    g.set_opener(Arc::new(TestOpener::default()));
    g.set_stream("cam", vec!["test:a".into()]);
    let text = render(&app(g));
    let mut declared: Vec<(String, String)> = Vec::new();
    let mut helped = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(
                helped.last().map(String::as_str),
                Some(name),
                "HELP before TYPE"
            );
            assert!(
                !declared.iter().any(|(n, _)| n == name),
                "{name} declared twice"
            );
            declared.push((name.to_string(), kind.to_string()));
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let (family, kind) = declared.last().expect("sample before its TYPE");
            assert_eq!(name, family, "samples follow their own family");
            assert!(matches!(kind.as_str(), "counter" | "gauge"));
        }
    }
    for (name, kind) in &declared {
        assert!(
            name.starts_with("camrouter_") || name.starts_with("process_"),
            "{name}"
        );
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
    }
    let s = samples(&text);
    assert_eq!(s["camrouter_stream_producers{stream=\"cam\"}"], "0");
    assert_eq!(s["camrouter_stream_consumers{stream=\"cam\"}"], "0");
    let rss: u64 = s["process_resident_memory_bytes"].parse().unwrap();
    assert!(rss > 1 << 20, "{rss}");
    let start: f64 = s["process_start_time_seconds"].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The test binary started within the last hour.
    assert!(start <= now + 1.0 && start > now - 3600.0, "{start} {now}");
    assert!(s["process_open_fds"].parse::<u64>().unwrap() >= 3);
}

#[tokio::test]
async fn counters_keep_what_departed_producers_counted() {
    let g = Graph::new(tokio::runtime::Handle::current());
    let opener = Arc::new(TestOpener::default());
    g.set_opener(opener.clone());
    g.set_stream("cam", vec!["test:a".into()]);
    let filter = Filter::parse("video").unwrap();
    let c = g
        .attach(
            g.next_id(),
            "cam",
            &filter,
            ConsumerSink::Internal(None),
            json!({"format_name": "test"}),
        )
        .await
        .unwrap();
    let ev = opener.last("test:a");
    ev.packet(&frame(1000, true));
    ev.packet(&frame(500, false));
    let s = samples(&render(&app(g.clone())));
    assert_eq!(s["camrouter_stream_producers{stream=\"cam\"}"], "1");
    assert_eq!(s["camrouter_stream_consumers{stream=\"cam\"}"], "1");
    assert_eq!(
        s["camrouter_stream_received_bytes_total{stream=\"cam\"}"],
        "1500"
    );
    assert_eq!(
        s["camrouter_stream_received_packets_total{stream=\"cam\"}"],
        "2"
    );
    assert_eq!(
        s["camrouter_stream_sent_bytes_total{stream=\"cam\"}"],
        "1500"
    );
    assert_eq!(
        s["camrouter_stream_sent_packets_total{stream=\"cam\"}"],
        "2"
    );

    // The source fails and is opened again: one restart.
    ev.closed(RString::from("camera gone"));
    let again = g
        .attach(
            g.next_id(),
            "cam",
            &filter,
            ConsumerSink::Internal(None),
            json!({}),
        )
        .await
        .unwrap();
    g.detach(again.id);
    let s = samples(&render(&app(g.clone())));
    assert_eq!(
        s["camrouter_stream_producer_restarts_total{stream=\"cam\"}"],
        "1"
    );
    opener.last("test:a").packet(&frame(100, true));

    // The source is replaced: its producer leaves, its counts stay.
    g.set_stream("cam", vec!["test:b".into()]);
    let s = samples(&render(&app(g.clone())));
    assert_eq!(s["camrouter_stream_producers{stream=\"cam\"}"], "0");
    assert_eq!(
        s["camrouter_stream_received_bytes_total{stream=\"cam\"}"],
        "1600"
    );
    assert_eq!(
        s["camrouter_stream_received_packets_total{stream=\"cam\"}"],
        "3"
    );
    assert_eq!(
        s["camrouter_stream_producer_restarts_total{stream=\"cam\"}"],
        "1"
    );
    g.detach(c.id);
}

#[tokio::test]
async fn hidden_and_url_named_streams_are_not_exported() {
    let g = Graph::new(tokio::runtime::Handle::current());
    g.set_opener(Arc::new(TestOpener::default()));
    g.set_stream("cam \"1\"", vec!["test:a".into()]);
    g.set_hidden_stream("exec-output-1", vec![]);
    // `POST /api/streams?src=URL` plays a URL through a stream named by it.
    let url = "rtsp://admin:secret@10.0.0.9/live";
    g.set_stream(url, vec![url.into()]);
    g.set_stream(
        "ffmpeg:cam#video=h264",
        vec!["ffmpeg:cam#video=h264".into()],
    );
    let text = render(&app(g));
    assert!(text.contains("camrouter_stream_producers{stream=\"cam \\\"1\\\"\"} 0"));
    assert!(!text.contains("exec-output"), "{text}");
    assert!(!text.contains("secret") && !text.contains("://"), "{text}");
    assert!(!text.contains("ffmpeg:"), "{text}");
}

#[test]
fn proc_files_parse() {
    // A command name with spaces and parentheses.
    let stat = "4242 (cam (1) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                123 45 0 0 20 0 9 0 98765 12345678 2222 18446744073709551615";
    assert_eq!(
        ProcStat::parse(stat),
        Some(ProcStat {
            utime: 123,
            stime: 45,
            starttime: 98765
        })
    );
    assert_eq!(ProcStat::parse("garbage"), None);
    assert_eq!(
        Statm::parse("3000 2222 300 100 0 900 0\n"),
        Some(Statm {
            size: 3000,
            resident: 2222
        })
    );
    assert_eq!(
        boot_time("cpu  1 2 3\nintr 5\nbtime 1764620000\nprocesses 9\n"),
        Some(1764620000)
    );
    assert_eq!(boot_time("cpu 1\n"), None);
}

/// A scrape with 100 streams, each with a connected source and three
/// consumers: every stream is in it with the right gauge. The time it
/// takes is printed, a figure and not an assertion (a shared machine is
/// noisy); for the README's figure run
/// `cargo test -p camrouter --release scrape_of_100_streams -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_of_100_streams() {
    let g = Graph::new(tokio::runtime::Handle::current());
    let opener = Arc::new(TestOpener::default());
    g.set_opener(opener.clone());
    let filter = Filter::parse("video").unwrap();
    for i in 0..100 {
        let name = format!("camera_{i}");
        g.set_stream(&name, vec![format!("test:{i}")]);
        for _ in 0..3 {
            g.attach(
                g.next_id(),
                &name,
                &filter,
                ConsumerSink::Internal(None),
                json!({}),
            )
            .await
            .unwrap();
        }
        opener.last(&format!("test:{i}")).packet(&frame(1200, true));
    }
    let app = app(g);
    // Wall time includes being descheduled on a busy machine; the thread's
    // CPU time is the scrape's own cost.
    fn cpu_now() -> std::time::Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    let runs = 200;
    let (mut wall, mut cpu): (Vec<_>, Vec<_>) = (0..runs)
        .map(|_| {
            let (t, c) = (std::time::Instant::now(), cpu_now());
            let text = render(&app);
            let took = (t.elapsed(), cpu_now() - c);
            assert!(text.contains("camrouter_stream_consumers{stream=\"camera_99\"} 3"));
            took
        })
        .unzip();
    wall.sort();
    cpu.sort();
    let bytes = render(&app).len();
    println!(
        "scrape of 100 streams ({bytes} bytes), {runs} runs: wall median {:?} p99 {:?} max {:?}; \
         CPU median {:?} p99 {:?} max {:?}",
        wall[runs / 2],
        wall[runs * 99 / 100],
        wall[runs - 1],
        cpu[runs / 2],
        cpu[runs * 99 / 100],
        cpu[runs - 1]
    );
}

/// Consumers and clients come and go while packets flow and scrapes run:
/// no scrape may see a stream's sent totals lower than an earlier one.
#[test]
fn sent_totals_never_go_down_while_consumers_come_and_go() {
    use camrouter_plugin_api::abi::ClientCounters;
    use std::sync::atomic::{AtomicBool, Ordering};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let g = Graph::new(rt.handle().clone());
    let opener = Arc::new(TestOpener::default());
    g.set_opener(opener.clone());
    let stream = g.set_stream("cam", vec!["test:a".into()]);
    let filter = Filter::parse("video").unwrap();
    // One consumer stays, so the source keeps running.
    rt.block_on(g.attach(
        g.next_id(),
        "cam",
        &filter,
        ConsumerSink::Internal(None),
        json!({}),
    ))
    .unwrap();
    let ev = opener.last("test:a");
    let done = Arc::new(AtomicBool::new(false));
    let pump = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                ev.packet(&frame(100, false));
            }
        })
    };
    let scraper = {
        let (done, stream) = (done.clone(), stream.clone());
        std::thread::spawn(move || {
            let mut last = stream.consumer_totals();
            let mut scrapes = 0u64;
            while !done.load(Ordering::Relaxed) {
                let t = stream.consumer_totals();
                assert!(
                    t.bytes >= last.bytes && t.packets >= last.packets,
                    "went down: {last:?} -> {t:?}"
                );
                last = t;
                scrapes += 1;
            }
            scrapes
        })
    };
    for i in 0..30000u64 {
        let id = g.next_id();
        let c = rt
            .block_on(g.attach(id, "cam", &filter, ConsumerSink::Internal(None), json!({})))
            .unwrap();
        if i % 2 == 0 {
            // A shared consumer: its clients count, each with its own counters.
            let counters = RArc::new(ClientCounters::default());
            let client = g.add_client(c.id, json!({}), counters.clone());
            counters.bytes.fetch_add(1000, Ordering::Relaxed);
            counters.packets.fetch_add(1, Ordering::Relaxed);
            g.remove_client(client);
        }
        g.detach(c.id);
    }
    done.store(true, Ordering::Relaxed);
    pump.join().unwrap();
    let scrapes = scraper.join().unwrap();
    assert!(scrapes > 0);
}

#[tokio::test]
async fn a_publisher_that_comes_back_is_a_restart_and_keeps_its_counts() {
    let g = Graph::new(tokio::runtime::Handle::current());
    g.set_opener(Arc::new(TestOpener::default()));
    g.set_stream("ingest", vec![]);
    let publish = || {
        let ev = g
            .add_producer(
                "ingest",
                json!({"url": "rtsp://127.0.0.1/ingest"}),
                SourceBox::from_value(Idle, TD_Opaque),
            )
            .unwrap();
        ev.medias(RVec::from(vec![Media {
            kind: MediaKind::Video,
            direction: Direction::RecvOnly,
            codecs: RVec::from(vec![Codec {
                name: "H264".into(),
                clock_rate: 90000,
                ..Default::default()
            }]),
        }]));
        ev
    };
    let first = publish();
    first.packet(&frame(700, true));
    let s = samples(&render(&app(g.clone())));
    assert_eq!(s["camrouter_stream_producers{stream=\"ingest\"}"], "1");
    assert_eq!(
        s["camrouter_stream_producer_restarts_total{stream=\"ingest\"}"],
        "0"
    );
    first.closed(RString::from("publisher left"));
    let s = samples(&render(&app(g.clone())));
    assert_eq!(s["camrouter_stream_producers{stream=\"ingest\"}"], "0");
    assert_eq!(
        s["camrouter_stream_received_bytes_total{stream=\"ingest\"}"],
        "700"
    );
    let second = publish();
    second.packet(&frame(300, true));
    let s = samples(&render(&app(g.clone())));
    assert_eq!(s["camrouter_stream_producers{stream=\"ingest\"}"], "1");
    assert_eq!(
        s["camrouter_stream_producer_restarts_total{stream=\"ingest\"}"],
        "1"
    );
    assert_eq!(
        s["camrouter_stream_received_bytes_total{stream=\"ingest\"}"],
        "1000"
    );
}
