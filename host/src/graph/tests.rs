use super::*;
use camrouter_plugin_api::abi::Source;
use std::sync::atomic::AtomicUsize;

/// A scripted source: reports the medias its URL names (`fake:video=H264,audio=PCMA`)
/// and keeps the events object so the test can push packets.
#[derive(Default)]
struct FakeOpener {
    opened: AtomicUsize,
    stopped: Arc<AtomicUsize>,
    events: Mutex<Vec<Arc<SourceEventsBox>>>,
    fail: AtomicBool,
    /// Opening exactly this URL fails.
    fail_url: Mutex<String>,
}

struct FakeSource {
    stopped: Arc<AtomicUsize>,
}

impl Source for FakeSource {
    fn send(&self, _: u32, _: &Packet) {}
    fn stop(&self) {
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

fn media(kind: MediaKind, dir: Direction, codec: &str) -> Media {
    Media {
        kind,
        direction: dir,
        codecs: RVec::from(vec![Codec {
            name: codec.into(),
            clock_rate: 90000,
            ..Default::default()
        }]),
    }
}

impl Opener for FakeOpener {
    fn open(&self, url: &str, events: SourceEventsBox) -> Result<SourceBox, String> {
        if self.fail.load(Ordering::SeqCst) || *self.fail_url.lock().unwrap() == url {
            return Err("camera gone".into());
        }
        self.opened.fetch_add(1, Ordering::SeqCst);
        let spec = url.strip_prefix("fake:").ok_or("bad scheme")?;
        let medias: Vec<Media> = spec
            .split(',')
            .map(|m| {
                let (k, c) = m.split_once('=').unwrap_or((m, "H264"));
                match k {
                    "video" => media(MediaKind::Video, Direction::RecvOnly, c),
                    "backchannel" => media(MediaKind::Audio, Direction::SendOnly, c),
                    _ => media(MediaKind::Audio, Direction::RecvOnly, c),
                }
            })
            .collect();
        events.medias(RVec::from(medias));
        self.events.lock().unwrap().push(Arc::new(events));
        Ok(SourceBox::from_value(
            FakeSource {
                stopped: self.stopped.clone(),
            },
            TD_Opaque,
        ))
    }
}

fn packet(track: u32, key: bool, n: u8) -> Packet {
    Packet {
        track,
        flags: if key {
            camrouter_plugin_api::FLAG_KEYFRAME
        } else {
            0
        },
        pts: n as i64,
        dts: n as i64,
        received_at_us: 0,
        payload: RArc::new(RVec::from(vec![n; 4])),
    }
}

type Collected = Arc<Mutex<Vec<(u32, u8)>>>;

fn collector() -> (ConsumerSink, Collected) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let sink = ConsumerSink::Internal(Some(Box::new(move |t: u32, p: &Packet| {
        g.lock().unwrap().push((t, p.payload[0]));
    })));
    (sink, got)
}

fn setup(sources: &[&str]) -> (Arc<Graph>, Arc<FakeOpener>) {
    let g = Graph::new(tokio::runtime::Handle::current());
    let o = Arc::new(FakeOpener::default());
    g.set_opener(o.clone());
    g.set_stream("cam", sources.iter().map(|s| s.to_string()).collect());
    (g, o)
}

#[tokio::test(start_paused = true)]
async fn one_producer_shared_and_stopped_after_last_consumer() {
    let (g, o) = setup(&["fake:video=H264,audio=PCMA"]);
    let f = Filter::parse("video&audio").unwrap();
    let (s1, got1) = collector();
    let c1 = g
        .attach(g.next_id(), "cam", &f, s1, json!({}))
        .await
        .unwrap();
    assert_eq!(c1.medias().len(), 2);
    let ev = o.events.lock().unwrap()[0].clone();
    ev.packet(&packet(0, true, 1));
    ev.packet(&packet(0, false, 2));
    ev.packet(&packet(1, false, 3));
    // A second consumer starts from the cached keyframe at once.
    let (s2, got2) = collector();
    let c2 = g
        .attach(g.next_id(), "cam", &f, s2, json!({}))
        .await
        .unwrap();
    assert_eq!(
        o.opened.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    ev.packet(&packet(0, false, 4));
    assert_eq!(*got1.lock().unwrap(), vec![(0, 1), (0, 2), (1, 3), (0, 4)]);
    assert_eq!(*got2.lock().unwrap(), vec![(0, 1), (0, 2), (0, 4)]);
    g.detach(c1.id);
    tokio::time::sleep(STOP_GRACE * 2).await;
    assert_eq!(o.stopped.load(Ordering::SeqCst), 0, "still one consumer");
    g.detach(c2.id);
    tokio::time::sleep(STOP_GRACE * 2).await;
    assert_eq!(o.stopped.load(Ordering::SeqCst), 1);
    let js = g.streams_json();
    assert_eq!(
        js["cam"]["producers"][0],
        json!({"url": "fake:video=H264,audio=PCMA"})
    );
}

#[tokio::test(start_paused = true)]
async fn negotiation_follows_source_order_and_filters() {
    let (g, o) = setup(&["fake:video=H264", "fake:video=H265,audio=OPUS"]);
    let f = Filter::parse("video").unwrap();
    let c = g
        .attach(g.next_id(), "cam", &f, collector().0, json!({}))
        .await
        .unwrap();
    assert_eq!(c.medias()[0].codecs[0].name.as_str(), "H264");
    assert_eq!(
        o.opened.load(Ordering::SeqCst),
        1,
        "second source not needed"
    );
    let f = Filter::parse("video=h265&audio").unwrap();
    let c2 = g
        .attach(g.next_id(), "cam", &f, collector().0, json!({}))
        .await
        .unwrap();
    let names: Vec<String> = c2
        .medias()
        .iter()
        .map(|m| m.codecs[0].name.to_string())
        .collect();
    assert_eq!(names, vec!["H265", "OPUS"]);
    let f = Filter::parse("video=all&audio=all").unwrap();
    let c3 = g
        .attach(g.next_id(), "cam", &f, collector().0, json!({}))
        .await
        .unwrap();
    assert_eq!(c3.medias().len(), 3);
    let err = g
        .attach(
            g.next_id(),
            "cam",
            &Filter::parse("audio=pcmu").unwrap(),
            collector().0,
            json!({}),
        )
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("codecs not matched"), "{err}");
    assert!(matches!(
        g.attach(1000, "nope", &f, collector().0, json!({})).await,
        Err(GraphError::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn backchannel_routes_microphone_to_sendonly_media() {
    let (g, _o) = setup(&["fake:video=H264,backchannel=PCMU"]);
    let f = Filter::parse("video&microphone").unwrap();
    let c = g
        .attach(g.next_id(), "cam", &f, collector().0, json!({}))
        .await
        .unwrap();
    let m = c.medias();
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].direction, Direction::RecvOnly);
    assert_eq!(m[1].codecs[0].name.as_str(), "PCMU");
}

#[tokio::test(start_paused = true)]
async fn failed_source_is_retried_while_consumers_remain() {
    let (g, o) = setup(&["fake:video=H264"]);
    let f = Filter::parse("video").unwrap();
    let (sink, got) = collector();
    let _c = g
        .attach(g.next_id(), "cam", &f, sink, json!({}))
        .await
        .unwrap();
    let ev = o.events.lock().unwrap()[0].clone();
    ev.closed(RString::from("eof"));
    ev.packet(&packet(0, true, 9)); // stale generation: ignored
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(o.opened.load(Ordering::SeqCst), 2, "reconnected");
    let ev2 = o.events.lock().unwrap()[1].clone();
    ev2.packet(&packet(0, true, 7));
    assert_eq!(
        *got.lock().unwrap(),
        vec![(0, 7)],
        "consumer resumed without reattaching"
    );
}

#[test]
fn masks_secrets() {
    assert_eq!(
        mask("rtsp://admin:pw@10.0.0.1/s?x=1"),
        "rtsp://admin:***@10.0.0.1/s?x=1"
    );
    assert_eq!(
        mask("http://h/x?user=a&password=b#p"),
        "http://h/x?user=a&password=***#p"
    );
    assert_eq!(mask("exec:ffmpeg -i x"), "exec:ffmpeg -i x");
    assert_eq!(
        mask("rtsp://u:p@cam/s#transport=wss://wu:w@p@h:1/ws"),
        "rtsp://u:***@cam/s#transport=wss://wu:***@h:1/ws"
    );
    assert_eq!(
        mask("rtsp://cam/s#transport=ws://wu:wp@h/ws"),
        "rtsp://cam/s#transport=ws://wu:***@h/ws"
    );
}

#[tokio::test(start_paused = true)]
async fn consumer_can_wait_for_a_publisher() {
    let (g, _o) = setup(&[]);
    let f = Filter::parse("video").unwrap();
    // Without waiting: no producer, a clear error at once.
    assert!(g
        .attach(g.next_id(), "cam", &f, collector().0, json!({}))
        .await
        .is_err());
    let g2 = g.clone();
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let src = SourceBox::from_value(
            FakeSource {
                stopped: Arc::default(),
            },
            TD_Opaque,
        );
        let ev = g2
            .add_producer("cam", json!({"url": "rtsp://publisher"}), src)
            .unwrap();
        ev.medias(RVec::from(vec![media(
            MediaKind::Video,
            Direction::RecvOnly,
            "H264",
        )]));
        ev
    });
    let c = g
        .attach(
            g.next_id(),
            "cam",
            &f,
            collector().0,
            json!({"wait_publisher_ms": 5000}),
        )
        .await
        .unwrap();
    assert_eq!(c.medias()[0].codecs[0].name.as_str(), "H264");
    let _ev = publisher.await.unwrap();
    let hidden = g.set_hidden_stream("internal", vec![]);
    assert!(g.stream("internal").is_some());
    assert!(
        g.streams_json().get("internal").is_none(),
        "hidden streams are not listed"
    );
    drop(hidden);
}

#[tokio::test(start_paused = true)]
async fn clients_of_a_shared_consumer_are_listed_and_counted_each() {
    let (g, _o) = setup(&["fake:video=H264,audio=PCMA"]);
    let f = Filter::parse("video&audio").unwrap();
    let c = g
        .attach(
            g.next_id(),
            "cam",
            &f,
            collector().0,
            json!({"format_name": "rtsp", "remote_addr": "first"}),
        )
        .await
        .unwrap();
    let stream = g.stream("cam").unwrap();
    // Before any client: the consumer itself.
    assert_eq!(stream.consumer_totals().count, 1);
    let k1 = RArc::new(ClientCounters::default());
    let k2 = RArc::new(ClientCounters::default());
    let a = g.add_client(c.id, json!({"remote_addr": "a", "tracks": [1]}), k1.clone());
    let b = g.add_client(c.id, json!({"remote_addr": "b"}), k2.clone());
    k1.bytes.store(100, Ordering::Relaxed);
    k2.bytes.store(50, Ordering::Relaxed);
    k2.dropped.store(3, Ordering::Relaxed);
    let listed = g.streams_json()["cam"]["consumers"].clone();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], json!(a));
    assert_eq!(listed[0]["remote_addr"], json!("a"));
    assert_eq!(listed[0]["format_name"], json!("rtsp"));
    assert_eq!(listed[0]["medias"], json!(["audio, sendonly, PCMA"]));
    assert_eq!(listed[0]["bytes_send"], json!(100));
    assert_eq!(listed[1]["medias"].as_array().unwrap().len(), 2);
    g.update_client(b, json!({"user_agent": "VLC"}));
    assert_eq!(
        g.streams_json()["cam"]["consumers"][1]["user_agent"],
        json!("VLC")
    );
    let t = stream.consumer_totals();
    assert_eq!((t.count, t.bytes, t.dropped), (2, 150, 3));
    // A client that leaves is no longer listed, but its bytes stay counted.
    g.remove_client(a);
    k1.bytes.store(1_000, Ordering::Relaxed);
    let t = stream.consumer_totals();
    assert_eq!((t.count, t.bytes), (1, 150));
    // The consumer leaving takes its last client with it.
    g.detach(c.id);
    let t = stream.consumer_totals();
    assert_eq!((t.count, t.bytes, t.dropped), (0, 150, 3));
    assert_eq!(g.streams_json()["cam"]["consumers"], json!([]));
    // Adding to a consumer that is gone is refused.
    assert_eq!(g.add_client(c.id, json!({}), k1), 0);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_source_continues_the_timeline_and_a_changed_codec_ends_consumers() {
    let (g, o) = setup(&["fake:video=H264"]);
    let f = Filter::parse("video").unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let sink = ConsumerSink::Internal(Some(Box::new(move |_: u32, p: &Packet| {
        g2.lock().unwrap().push((p.dts, p.flags));
    })));
    let c = g
        .attach(g.next_id(), "cam", &f, sink, json!({}))
        .await
        .unwrap();
    let ev = o.events.lock().unwrap()[0].clone();
    let mut p = packet(0, true, 1);
    p.dts = 1_000_000;
    ev.packet(&p);
    // The camera drops; the retry comes within a second.
    ev.closed(RString::from("rtsp: camera closed the connection"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        o.opened.load(Ordering::SeqCst),
        2,
        "retried within a second"
    );
    let ev2 = o.events.lock().unwrap()[1].clone();
    let mut p = packet(0, false, 2);
    p.dts = 5;
    ev2.packet(&p); // not a keyframe: dropped
    let mut p = packet(0, true, 3);
    p.dts = 3605;
    ev2.packet(&p);
    let seen = got.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].0 > seen[0].0, "{seen:?}");
    assert!(seen[1].1 & camrouter_plugin_api::FLAG_DISCONTINUITY != 0);
    assert!(g.consumer(c.id).is_some());
    // Back with another codec: the consumer ends.
    ev2.closed(RString::from("gone"));
    o.events.lock().unwrap().clear();
    g.stream("cam").unwrap().lock().producers[0]
        .lock_core()
        .current_url = "fake:video=H265".into();
    tokio::time::sleep(Duration::from_millis(600)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        g.consumer(c.id).is_none(),
        "consumer of the old codec ended"
    );
}

#[tokio::test(start_paused = true)]
async fn consumers_fail_over_to_the_next_source_with_their_timeline() {
    let (g, o) = setup(&["fake:video=H264,audio=PCMA", "fake:video=H264"]);
    let f = Filter::parse("video").unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let sink = ConsumerSink::Internal(Some(Box::new(move |_: u32, p: &Packet| {
        g2.lock().unwrap().push((p.dts, p.payload[0]));
    })));
    let c = g
        .attach(g.next_id(), "cam", &f, sink, json!({}))
        .await
        .unwrap();
    assert_eq!(o.opened.load(Ordering::SeqCst), 1);
    let ev = o.events.lock().unwrap()[0].clone();
    let mut p = packet(0, true, 1);
    p.dts = 900_000;
    ev.packet(&p);
    // The first camera dies and stays dead.
    *o.fail_url.lock().unwrap() = "fake:video=H264,audio=PCMA".into();
    ev.closed(RString::from("rtsp: camera closed the connection"));
    tokio::time::sleep(FAILOVER_AFTER + Duration::from_secs(1)).await;
    assert_eq!(
        o.opened.load(Ordering::SeqCst),
        2,
        "the second source was started"
    );
    let ev2 = o.events.lock().unwrap()[1].clone();
    let mut p = packet(0, true, 2);
    p.dts = 7;
    ev2.packet(&p);
    let seen = got.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].1, 2, "frames of the second source");
    // Continuous: later than the last frame by about the outage.
    assert!(seen[1].0 > 900_000 + 3 * 90_000, "{seen:?}");
    assert!(g.consumer(c.id).is_some());
    // The dead source is no longer retried once nobody is routed to it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let js = g.streams_json();
    assert_eq!(
        js["cam"]["producers"][0],
        json!({"url": "fake:video=H264,audio=PCMA"})
    );
}

#[tokio::test(start_paused = true)]
async fn rename_moves_the_stream_and_refuses_a_missing_or_taken_name() {
    let (g, _o) = setup(&["fake:video=H264", "fake:audio=PCMA"]);
    g.set_stream("other", vec![]);
    assert_eq!(
        g.rename_stream("nosuch", "x").err(),
        Some(RenameError::NotFound)
    );
    assert_eq!(
        g.rename_stream("cam", "other").err(),
        Some(RenameError::Exists)
    );
    assert!(g.stream("cam").is_some());
    let s = g.rename_stream("cam", "porch").unwrap();
    assert_eq!(s.name, "porch");
    assert!(g.stream("cam").is_none());
    assert_eq!(
        g.stream("porch").unwrap().sources(),
        ["fake:video=H264", "fake:audio=PCMA"]
    );
}
