//! An example camrouter plugin, built outside camrouter's workspace:
//!
//! - `GET /api/hello` answers `{"message": …, "module": "hello", "version": …}`;
//!   the message comes from the module's config section (`hello: {greeting: …}`).
//! - `hello:` (or `hello:<Hz>`) is a source: a sine tone as G.711 µ-law (PCMU,
//!   8 kHz mono, 20 ms frames), made in code, so any output (RTSP, …) can carry it.
//!
//! See docs/plugins.md in camrouter's repository for the rules a plugin follows.

use std::f64::consts::TAU;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use camrouter_plugin_api::abi::{Codec, Direction, HttpRequest, Media, MediaKind, Packet};
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents};
use camrouter_plugin_api::{RArc, RString, RVec, FLAG_KEYFRAME};

pub const CLOCK_RATE: u32 = 8000;
/// 20 ms at 8 kHz: what RTP telephony sends per packet.
pub const FRAME_SAMPLES: usize = 160;
const DEFAULT_HZ: f64 = 440.0;

pub struct Hello {
    greeting: String,
    runtime: tokio::runtime::Handle,
}

impl Plugin for Hello {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let greeting = match ctx.config.get("greeting") {
            None => "hello from a plugin".to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            // A bad config refuses the module with one log line; the host runs on.
            Some(other) => return Err(format!("hello.greeting must be a string, not {other}")),
        };
        Ok(Hello {
            greeting,
            runtime: ctx.runtime,
        })
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["greeting".into()]
    }

    fn routes(&self) -> Vec<String> {
        vec!["/api/hello".into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        if request.method.as_str() != "GET" {
            return responder.text(405, "method not allowed");
        }
        responder.json(
            200,
            &serde_json::json!({
                "message": self.greeting,
                "module": "hello",
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    fn schemes(&self) -> Vec<String> {
        vec!["hello".into()]
    }

    /// Must return at once: the tone runs on this plugin's own runtime.
    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let hz = tone_hz(url)?;
        let task = self.runtime.spawn(async move {
            tracing::debug!(target: "hello", hz, "tone started");
            events.info(serde_json::json!({"format_name": "hello", "tone_hz": hz}));
            events.medias(vec![pcmu_media()]);
            let mut tone = Tone::new(hz);
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let (pts, payload) = tone.next_frame();
                events.packet(&Packet {
                    track: 0,
                    flags: FLAG_KEYFRAME,
                    pts,
                    dts: pts,
                    received_at_us: started.elapsed().as_micros() as u64,
                    payload: RArc::new(RVec::from(payload)),
                });
            }
        });
        Ok(Box::new(Running(Mutex::new(Some(task)))))
    }

    /// A `hello:` URL from the API starts nothing but a tone: nothing to refuse.
    fn check_untrusted_source(&self, url: &str) -> Result<(), String> {
        tone_hz(url).map(|_| ())
    }
}

struct Running(Mutex<Option<tokio::task::JoinHandle<()>>>);

impl Source for Running {
    /// Must not block: aborting the task is enough, it owns nothing else.
    fn stop(&self) {
        if let Some(task) = self.0.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

/// `hello:` → 440 Hz, `hello:1000` → 1000 Hz (audible range only).
pub fn tone_hz(url: &str) -> Result<f64, String> {
    let rest = url
        .strip_prefix("hello:")
        .ok_or_else(|| format!("hello: not a hello: URL: {url}"))?;
    if rest.is_empty() {
        return Ok(DEFAULT_HZ);
    }
    match rest.parse::<f64>() {
        Ok(hz) if (20.0..=3900.0).contains(&hz) => Ok(hz),
        _ => Err(format!("hello: tone must be 20..3900 Hz, got {rest:?}")),
    }
}

pub fn pcmu_media() -> Media {
    Media {
        kind: MediaKind::Audio,
        direction: Direction::RecvOnly,
        codecs: RVec::from(vec![Codec {
            name: RString::from("PCMU"),
            clock_rate: CLOCK_RATE,
            channels: 1,
            payload_type: 0,
            ..Default::default()
        }]),
    }
}

/// A sine tone, frame after frame, its phase continuous across frames.
pub struct Tone {
    hz: f64,
    sample: u64,
}

impl Tone {
    pub fn new(hz: f64) -> Self {
        Tone { hz, sample: 0 }
    }

    /// The next 20 ms: its pts (in samples) and its µ-law bytes.
    pub fn next_frame(&mut self) -> (i64, Vec<u8>) {
        let pts = self.sample as i64;
        let frame = (0..FRAME_SAMPLES as u64)
            .map(|i| {
                let t = (self.sample + i) as f64 / CLOCK_RATE as f64;
                linear_to_ulaw(((TAU * self.hz * t).sin() * 8000.0) as i16)
            })
            .collect();
        self.sample += FRAME_SAMPLES as u64;
        (pts, frame)
    }
}

/// G.711 µ-law (ITU-T G.711 §3.1): sign, 3-bit segment, 4-bit step, inverted.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut segment = 7;
    while segment > 0 && s & (0x80 << segment) == 0 {
        segment -= 1;
    }
    let step = (s >> (segment + 3)) & 0x0F;
    !(sign | (segment << 4) | step) as u8
}

camrouter_plugin_api::declare_plugin!("hello", Hello);
camrouter_plugin_api::export_plugin!(module);

#[cfg(test)]
mod tests {
    use super::*;

    fn ulaw_to_linear(u: u8) -> i32 {
        let u = !u;
        let segment = ((u >> 4) & 7) as i32;
        let magnitude = ((((u & 0x0F) as i32) << 3) + 0x84) << segment;
        let v = magnitude - 0x84;
        if u & 0x80 != 0 {
            -v
        } else {
            v
        }
    }

    #[test]
    fn ulaw_fixed_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        // Within one quantisation step of the input, all the way up.
        for s in (-32000..32000).step_by(97) {
            let back = ulaw_to_linear(linear_to_ulaw(s as i16));
            let step = 8 << ((!linear_to_ulaw(s as i16) >> 4) & 7);
            assert!((back - s).abs() <= step, "{s} -> {back}");
        }
    }

    #[test]
    fn tone_frames_are_20ms_and_continuous() {
        let mut tone = Tone::new(1000.0);
        let (pts0, a) = tone.next_frame();
        let (pts1, b) = tone.next_frame();
        assert_eq!((pts0, pts1), (0, FRAME_SAMPLES as i64));
        assert_eq!((a.len(), b.len()), (FRAME_SAMPLES, FRAME_SAMPLES));
        // 1000 Hz at 8 kHz repeats every 8 samples, across the frame boundary too.
        let all: Vec<u8> = a.iter().chain(&b).copied().collect();
        assert!(all.windows(9).all(|w| w[0] == w[8]));
        assert!(all.iter().any(|&u| ulaw_to_linear(u) > 7000));
    }

    #[test]
    fn urls() {
        assert_eq!(tone_hz("hello:"), Ok(440.0));
        assert_eq!(tone_hz("hello:1000"), Ok(1000.0));
        assert!(tone_hz("hello:99999").is_err());
        assert!(tone_hz("hello:abc").is_err());
        assert!(tone_hz("rtsp://x").is_err());
    }

    #[test]
    fn exports_the_module_the_host_looks_for() {
        assert_eq!((module().name())().as_str(), "hello");
    }
}
