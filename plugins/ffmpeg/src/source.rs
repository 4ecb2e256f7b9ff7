//! The plugin glue: an `ffmpeg:` source becomes an `exec:` source running the
//! built command, either publishing into our RTSP server (`{output}`) or
//! writing a container to stdout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{Host, InitContext, Plugin, Responder, Source, SourceEvents};

use crate::args::{self, Env, FfmpegVersion, Templates};
use crate::hardware::{self, HardwareEngine};

pub struct Ffmpeg {
    host: Host,
    templates: Arc<Templates>,
    /// `ffmpeg.allow_dirs`: where API sources may read local files.
    allow_dirs: Vec<std::path::PathBuf>,
    runtime: tokio::runtime::Handle,
    /// `ffmpeg -version` and the hardware encoders, probed on first use (the
    /// probe runs test encodes, which takes seconds; no process is started
    /// for a config without `ffmpeg:` sources).
    probe: Arc<OnceLock<Probe>>,
}

#[derive(Debug, Clone, Default)]
struct Probe {
    version: Option<FfmpegVersion>,
    hardware: Option<HardwareEngine>,
}

fn probe(bin: &str) -> Probe {
    let version = std::process::Command::new(bin)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| FfmpegVersion::parse(&String::from_utf8_lossy(&o.stdout)));
    let hardware = if version.is_some() {
        hardware::detect(bin)
    } else {
        None
    };
    Probe { version, hardware }
}

/// Stopping before the command is built cancels the redirect; after it,
/// the exec source the URL redirected to owns the process.
struct Redirected(Arc<AtomicBool>);

impl Source for Redirected {
    fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Plugin for Ffmpeg {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let level = ctx
            .host
            .fact("log.ffmpeg")
            .unwrap_or_else(|| args::DEFAULT_LOG_LEVEL.to_string());
        let templates = Templates::from_config(&ctx.config, &level).map_err(|e| e.to_string())?;
        Ok(Ffmpeg {
            allow_dirs: crate::untrusted::allow_dirs(&ctx.config),
            host: ctx.host,
            templates: Arc::new(templates),
            runtime: ctx.runtime,
            probe: Arc::new(OnceLock::new()),
        })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["ffmpeg".into()]
    }

    fn routes(&self) -> Vec<String> {
        vec!["/api/ffmpeg/devices".into(), "/api/ffmpeg/hardware".into()]
    }

    fn http(&self, request: HttpRequest, responder: Responder) {
        let bin = self.templates.bin().to_string();
        let path = request.path.to_string();
        // The hardware list runs test encodes (seconds): off the host's threads.
        self.runtime.spawn_blocking(move || {
            let list = if path == "/api/ffmpeg/hardware" {
                crate::discovery::hardware(&bin)
            } else {
                crate::discovery::devices()
            };
            responder.json(200, &list);
        });
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let source = url
            .strip_prefix("ffmpeg:")
            .ok_or("ffmpeg: not an ffmpeg: URL")?
            .to_string();
        let stopped = Arc::new(AtomicBool::new(false));
        let (host, templates, probe_cell) = (
            self.host.clone(),
            self.templates.clone(),
            self.probe.clone(),
        );
        let stop = stopped.clone();
        self.runtime.spawn_blocking(move || {
            // The first source waits for the probe; later ones find it done.
            let probe = probe_cell.get_or_init(|| {
                let bin = templates.bin().to_string();
                let p = probe(&bin);
                match (&p.version, &p.hardware) {
                    (Some(v), hw) => tracing::debug!(version = %v.ffmpeg, hardware = ?hw.map(|h| h.to_string()), "ffmpeg found"),
                    (None, _) => tracing::warn!(bin = %bin, "ffmpeg not found"),
                }
                p
            });
            let h = host.clone();
            let stream_exists = move |name: &str| h.stream_exists(name);
            let env = Env {
                templates: &templates,
                stream_exists: &stream_exists,
                internal_rtsp: host.fact("rtsp.internal_url"),
                hardware: probe.hardware,
                libavformat: probe.version.as_ref().and_then(|v| v.libavformat),
            };
            let cmd = match args::build(&source, &env) {
                Ok(c) => c,
                Err(e) => {
                    events.closed(&format!("ffmpeg: {e}"));
                    return;
                }
            };
            if !cmd.ignored.is_empty() {
                tracing::debug!(params = %cmd.ignored.join(","), "ffmpeg: unknown #params ignored");
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let exec = format!("exec:{cmd}");
            tracing::debug!(cmd = %exec, "ffmpeg: command");
            events.redirect(exec);
        });
        Ok(Box::new(Redirected(stopped)))
    }

    fn config_keys(&self) -> Vec<String> {
        // Every key is a template name: any key is valid.
        Vec::new()
    }

    fn check_untrusted_source(&self, url: &str) -> Result<(), String> {
        let source = url
            .strip_prefix("ffmpeg:")
            .ok_or("ffmpeg: not an ffmpeg: URL")?;
        let host = self.host.clone();
        crate::untrusted::check(source, &self.templates, &self.allow_dirs, &move |name| {
            host.stream_exists(name)
        })
        .map_err(|e| e.to_string())
    }
}
