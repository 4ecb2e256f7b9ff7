//! Runs the client and decoder over the camera exchanges in `testdata/` (format in
//! `testdata/README.md`) and asserts each file's quirk is handled.

use camrouter_rtsp::proto::auth::{digest_response, Algorithm, Credentials};
use camrouter_rtsp::proto::client::{Client, ClientConfig, ClientEvent, MediaSetup, State};
use camrouter_rtsp::proto::{DecodeError, Decoder, Item, Method, Request};
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[derive(Debug)]
enum Step {
    Expect { method: String, uri: Option<String> },
    Feed(Vec<u8>),
}

#[derive(Debug, Default)]
struct Script {
    settings: Vec<(String, String)>,
    steps: Vec<Step>,
}

impl Script {
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text_line(line: &[u8]) -> String {
    String::from_utf8(line.to_vec())
        .unwrap()
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

fn load(name: &str) -> Script {
    let data = read(name);
    let mut s = Script::default();
    let mut block: Option<Vec<u8>> = None;
    for line in data.split_inclusive(|&b| b == b'\n') {
        let marker = line.starts_with(b">> ")
            || line.starts_with(b"<<")
            || line.starts_with(b"== ")
            || (line.starts_with(b"#") && s.steps.is_empty() && block.is_none());
        if !marker {
            block
                .as_mut()
                .unwrap_or_else(|| panic!("{name}: bytes outside a << block: {line:?}"))
                .extend_from_slice(line);
            continue;
        }
        if let Some(b) = block.take() {
            s.steps.push(Step::Feed(b));
        }
        let l = text_line(line);
        if let Some(rest) = l.strip_prefix("== ") {
            let (k, v) = rest.split_once(": ").expect("== key: value");
            s.settings.push((k.to_string(), v.to_string()));
        } else if let Some(rest) = l.strip_prefix(">> ") {
            let mut it = rest.splitn(2, ' ');
            s.steps.push(Step::Expect {
                method: it.next().unwrap().to_string(),
                uri: it.next().map(str::to_string),
            });
        } else if let Some(rest) = l.strip_prefix("<<") {
            let file = rest.trim();
            if file.is_empty() {
                block = Some(Vec::new());
            } else {
                s.steps.push(Step::Feed(read(file)));
            }
        }
    }
    if let Some(b) = block.take() {
        s.steps.push(Step::Feed(b));
    }
    s
}

struct Outcome {
    client: Client,
    requests: Vec<Request>,
    events: Vec<ClientEvent>,
}

const CNONCE: &str = "0a4f113b";

fn run(name: &str, chunk: usize) -> Outcome {
    let script = load(name);
    let url = script.setting("url").expect("url");
    let controls: Vec<&str> = script
        .setting("setup")
        .map(|s| s.split(' ').collect())
        .unwrap_or_default();
    let udp: Option<u16> = script
        .setting("udp")
        .map(|p| p.split('-').next().unwrap().parse().unwrap());
    let mut client = Client::new(ClientConfig {
        backchannel: script.setting("backchannel") == Some("true"),
        cnonce: CNONCE.into(),
        ..ClientConfig::play(url)
    })
    .unwrap();
    let mut requests = Vec::new();
    let mut events = Vec::new();
    let mut now = 0u64;
    for step in &script.steps {
        match step {
            Step::Expect { method, uri } => {
                let bytes = client.poll_transmit().or_else(|| {
                    client.handle_timeout(now);
                    now += client.keepalive_interval_ms();
                    client.handle_timeout(now);
                    client.poll_transmit()
                });
                let bytes = bytes.unwrap_or_else(|| {
                    panic!(
                        "{name}: expected {method}, client sent nothing ({:?})",
                        client.state()
                    )
                });
                let req = Request::parse(&bytes).unwrap();
                assert_eq!(req.method.as_str(), method, "{name}");
                if let Some(u) = uri {
                    assert_eq!(&req.uri, u, "{name}: {method}");
                }
                requests.push(req);
            }
            Step::Feed(bytes) => {
                for c in bytes.chunks(chunk.max(1)) {
                    client
                        .feed(c)
                        .unwrap_or_else(|e| panic!("{name} (chunk {chunk}): {e}"));
                    while let Some(ev) = client.poll_event() {
                        if matches!(ev, ClientEvent::Described { .. }) {
                            if let Some(a) = script.setting("aggregate") {
                                client.set_aggregate_control(a);
                            }
                            let medias = controls
                                .iter()
                                .enumerate()
                                .map(|(i, c)| match udp {
                                    Some(p) => {
                                        MediaSetup::udp(*c, p + 2 * i as u16, p + 2 * i as u16 + 1)
                                    }
                                    None => MediaSetup::tcp(*c),
                                })
                                .collect();
                            client.setup(medias).unwrap();
                        }
                        events.push(ev);
                    }
                }
            }
        }
    }
    assert!(
        client.poll_transmit().is_none(),
        "{name}: the client sent a request the script does not expect"
    );
    Outcome {
        client,
        requests,
        events,
    }
}

/// Runs whole and in 1-byte chunks; both must agree.
fn run_both(name: &str) -> Outcome {
    let one = run(name, 1);
    let whole = run(name, usize::MAX);
    assert_eq!(
        one.events, whole.events,
        "{name}: chunking changed the events"
    );
    assert_eq!(one.requests, whole.requests, "{name}");
    assert_eq!(whole.client.state(), State::Streaming, "{name}");
    for e in &whole.events {
        assert!(
            !matches!(
                e,
                ClientEvent::UnmatchedResponse { .. } | ClientEvent::DecodeError(_)
            ),
            "{name}: {e:?}"
        );
    }
    whole
}

fn find(reqs: &[Request], m: Method) -> impl Iterator<Item = &Request> {
    reqs.iter().filter(move |r| r.method == m)
}

/// Extracts a `name="value"` or `name=value` parameter from an Authorization value.
fn auth_param<'a>(h: &'a str, name: &str) -> Option<&'a str> {
    h.split(", ").find_map(|p| {
        let p = p.strip_prefix("Digest ").unwrap_or(p);
        let (n, v) = p.split_once('=')?;
        (n == name).then(|| v.trim_matches('"'))
    })
}

fn playing_rtp_info(events: &[ClientEvent]) -> &[camrouter_rtsp::proto::transport::RtpInfo] {
    events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Playing { rtp_info, .. } => Some(&rtp_info[..]),
            _ => None,
        })
        .expect("Playing")
}

#[test]
fn hikvision_describe() {
    let o = run_both("hikvision_describe.txt");
    let describes: Vec<_> = find(&o.requests, Method::Describe).collect();
    assert_eq!(describes.len(), 2);
    assert!(describes[0].headers.get("Authorization").is_none());
    let h = describes[1].headers.get("Authorization").unwrap();
    assert!(h.starts_with("Digest "), "Digest preferred over Basic: {h}");
    let expected = digest_response(
        Algorithm::Md5,
        &Credentials::new("admin", "12345"),
        "IP Camera(C6157)",
        "ef3e3c2e8a4b7d0f5e1f4d9b4b2a6c11",
        "DESCRIBE",
        "rtsp://192.168.1.64:554/Streaming/Channels/101",
        None,
    );
    assert_eq!(auth_param(h, "response"), Some(expected.as_str()));
    assert_eq!(
        auth_param(h, "uri"),
        Some("rtsp://192.168.1.64:554/Streaming/Channels/101")
    );
    // Later requests stay authenticated.
    assert!(find(&o.requests, Method::Play).all(|r| r.headers.get("Authorization").is_some()));
    let s = &o.client.setups()[0];
    assert_eq!(s.ssrc, Some(0x0d6d_6627));
    assert_eq!(s.transport.mode.as_deref(), Some("PLAY"));
    let session = o.client.session().unwrap();
    assert_eq!(
        (session.id.as_str(), session.timeout),
        ("708886412", Some(60))
    );
    assert_eq!(playing_rtp_info(&o.events)[0].seq, Some(23207));
}

#[test]
fn dahua_digest_sha256() {
    let o = run_both("dahua_digest_sha256.txt");
    let opts: Vec<_> = find(&o.requests, Method::Options).collect();
    let h = opts[1].headers.get("Authorization").unwrap();
    assert_eq!(auth_param(h, "algorithm"), Some("SHA-256"));
    let expected = digest_response(
        Algorithm::Sha256,
        &Credentials::new("admin", "pass"),
        "Login to 4K05A1FPAZ00118",
        "8d1b7c3c6b8b5d8e92c93aa8e5d57e02",
        "OPTIONS",
        "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0",
        None,
    );
    assert_eq!(auth_param(h, "response"), Some(expected.as_str()));
    assert_eq!(expected.len(), 64);
    assert_eq!(o.client.setups()[0].ssrc, Some(0x30A9_8EE7));
    assert_eq!(o.client.keepalive_interval_ms(), 30_000);
    assert_eq!(playing_rtp_info(&o.events).len(), 2);
}

#[test]
fn reolink_interleaved_before_play() {
    let o = run_both("reolink_interleaved_before_play.txt");
    let order: Vec<String> = o
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Interleaved { channel, .. } => Some(format!("ch{channel}")),
            ClientEvent::Playing { .. } => Some("PLAY".into()),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["ch1", "ch3", "PLAY", "ch0", "ch2"]);
    let info = playing_rtp_info(&o.events);
    assert_eq!(info[0].ssrc, Some(0xdcc4_a0d8));
    assert_eq!(info[1].seq, Some(39409));
    assert_eq!(o.client.setups()[0].ssrc, None);
    assert_eq!(o.client.media_for_channel(3), Some((1, true)));
    assert_eq!(o.client.session().unwrap().timeout, None);

    // The decoder alone, 1-byte chunks.
    let mut dec = Decoder::new();
    let mut items = Vec::new();
    for b in read("reolink_interleaved_before_play.bin") {
        dec.push(&[b]);
        while let Some(r) = dec.poll() {
            items.push(r.unwrap());
        }
    }
    assert!(matches!(&items[..], [
        Item::Interleaved { channel: 1, .. },
        Item::Interleaved { channel: 3, .. },
        Item::Response(r),
        Item::Interleaved { channel: 0, .. },
        Item::Interleaved { channel: 2, .. },
    ] if r.cseq() == Some(6)));
}

#[test]
fn tapo_no_content_base() {
    let o = run_both("tapo_no_content_base.txt");
    assert_eq!(o.client.base_url(), Some("rtsp://192.168.1.20:554/stream1"));
    let h = find(&o.requests, Method::Describe)
        .nth(1)
        .unwrap()
        .headers
        .get("Authorization")
        .unwrap();
    assert!(auth_param(h, "qop").is_none() && auth_param(h, "nc").is_none());
    assert_eq!(o.client.keepalive_interval_ms(), 60_000);
}

#[test]
fn axis_absolute_control() {
    let o = run_both("axis_absolute_control.txt");
    let opts: Vec<_> = find(&o.requests, Method::Options).collect();
    assert_eq!(
        opts[1].headers.get("Authorization"),
        Some("Basic cm9vdDpwYXNz")
    );
    assert_eq!(
        o.client.setups()[0].url,
        "rtsp://10.0.0.5/axis-media/media.amp/stream=0?videocodec=h264"
    );
}

#[test]
fn amcrest_backchannel_describe() {
    let o = run_both("amcrest_backchannel_describe.txt");
    for r in &o.requests {
        let want = matches!(r.method, Method::Describe | Method::Setup | Method::Play);
        assert_eq!(
            r.headers.get("Require") == Some("www.onvif.org/ver20/backchannel"),
            want,
            "{} {}",
            r.method,
            r.uri
        );
    }
    assert_eq!(o.client.setups().len(), 3);
    assert_eq!(o.client.media_for_channel(4), Some((2, false)));
    assert_eq!(
        o.client.setups()[2].url,
        "rtsp://192.168.1.30:554/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif/trackID=5"
    );
}

#[test]
fn ssrc_decimal_transport() {
    let o = run_both("ssrc_decimal_transport.txt");
    let setup = find(&o.requests, Method::Setup).next().unwrap();
    assert_eq!(
        setup.headers.get("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001")
    );
    let s = &o.client.setups()[0];
    assert_eq!(s.ssrc, Some(3_735_928_559));
    assert_eq!(s.server_port, Some((50000, Some(50001))));
    assert_eq!(s.rtp_channel, None);
    assert_eq!(o.client.session().unwrap().timeout, Some(30));
}

#[test]
fn gst_rtsp_server() {
    let o = run_both("gst_rtsp_server.txt");
    assert!(o
        .client
        .setups()
        .iter()
        .all(|s| s.transport.mode.as_deref() == Some("PLAY")));
    let info = playing_rtp_info(&o.events);
    assert_eq!(info.len(), 2);
    assert_eq!(info[1].url, "rtsp://127.0.0.1:8554/test/stream=1");
    let ka = o.requests.last().unwrap();
    assert_eq!(ka.method, Method::GetParameter);
    assert_eq!(ka.headers.get("Session"), Some("mCbZy0LVEXzbhMkH"));
}

#[test]
fn server_ignores_channel_ids() {
    let o = run_both("server_ignores_channel_ids.txt");
    let c = &o.client;
    assert_eq!(c.base_url(), Some("rtsp://192.168.1.70:554/ch01/0/"));
    assert_eq!(c.media_for_channel(0), None);
    assert_eq!(c.media_for_channel(10), Some((0, false)));
    assert_eq!(c.media_for_channel(11), Some((0, true)));
    assert_eq!(c.media_for_channel(12), Some((1, false)));
    assert_eq!(c.media_for_channel(13), Some((1, true)));
    let chans: Vec<u8> = o
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Interleaved { channel, .. } => Some(*channel),
            _ => None,
        })
        .collect();
    assert_eq!(chans, [10, 11, 12]);
}

#[test]
fn garbage_resync() {
    let data = read("garbage_resync.bin");
    let decode = |chunk: usize| {
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            dec.push(c);
            out.extend(std::iter::from_fn(|| dec.poll()));
        }
        (out, dec.buffered())
    };
    let (whole, left) = decode(data.len());
    assert_eq!(left, 0);
    for chunk in [1, 2, 3, 7] {
        assert_eq!(decode(chunk).0, whole, "chunk {chunk}");
    }
    let items: Vec<_> = whole.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(matches!(&items[..], [
        Item::Interleaved { channel: 0, .. },
        Item::Response(r),
        Item::Interleaved { channel: 1, .. },
    ] if r.cseq() == Some(7)));
    let errs: Vec<_> = whole.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(matches!(errs[0], DecodeError::Garbage { offset: 2, .. }));
    // Every skipped byte is accounted for.
    let skipped: usize = errs
        .iter()
        .map(|e| match e {
            DecodeError::Garbage { len, .. } => *len,
            _ => 0,
        })
        .sum();
    let item_bytes: usize = items
        .iter()
        .map(|i| match i {
            Item::Interleaved { data, .. } => data.len() + 4,
            Item::Response(r) => r.to_bytes().len(),
            Item::Request(r) => r.to_bytes().len(),
        })
        .sum();
    assert_eq!(skipped + item_bytes + 2, data.len());
}

/// Every testdata file, truncated at every length and with every single byte flipped, must
/// not panic the decoder or the client.
#[test]
fn mutated_testdata_never_panics() {
    for entry in std::fs::read_dir(path("")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") || p.is_dir() {
            continue;
        }
        let data = std::fs::read(&p).unwrap();
        for i in (0..data.len()).step_by(7) {
            let mut m = data.clone();
            m[i] ^= 0x5a;
            for input in [&data[..i], &m[..]] {
                let mut c = Client::new(ClientConfig::play("rtsp://u:p@h/x")).unwrap();
                for chunk in input.chunks(97) {
                    if c.feed(chunk).is_err() {
                        break;
                    }
                }
                let mut d = Decoder::new();
                d.push(input);
                while d.poll().is_some() {}
            }
        }
    }
}
