//! The plugin glue: an `ffmpeg:` source becomes an `exec:` source running the
//! built command, either publishing into our RTSP server (`{output}`) or
//! writing a container to stdout.

use std::sync::{Arc, OnceLock};

use camrouter_plugin_api::sdk::{Host, InitContext, Plugin, Source, SourceEvents};

use crate::args::{self, Env, FfmpegVersion, Templates};
use crate::hardware::{self, HardwareEngine};

pub struct Ffmpeg {
    host: Host,
    templates: Templates,
    /// Probed in the background at start: `ffmpeg -version` and the
    /// hardware encoders (the probe runs test encodes, which takes seconds).
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

/// Nothing to stop: the exec source the URL redirects to owns the process.
struct Redirected;

impl Source for Redirected {
    fn stop(&self) {}
}

impl Plugin for Ffmpeg {
    fn init(ctx: InitContext) -> Result<Self, String> {
        let level = ctx
            .host
            .fact("log.ffmpeg")
            .unwrap_or_else(|| args::DEFAULT_LOG_LEVEL.to_string());
        let templates = Templates::from_config(&ctx.config, &level).map_err(|e| e.to_string())?;
        let probe_cell = Arc::new(OnceLock::new());
        let bin = templates.bin().to_string();
        let cell = probe_cell.clone();
        std::thread::Builder::new()
            .name("ffmpeg-probe".into())
            .spawn(move || {
                let p = probe(&bin);
                match (&p.version, &p.hardware) {
                    (Some(v), hw) => tracing::debug!(version = %v.ffmpeg, hardware = ?hw.map(|h| h.to_string()), "ffmpeg found"),
                    (None, _) => tracing::warn!(bin = %bin, "ffmpeg not found"),
                }
                let _ = cell.set(p);
            })
            .map_err(|e| e.to_string())?;
        Ok(Ffmpeg {
            host: ctx.host,
            templates,
            probe: probe_cell,
        })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["ffmpeg".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let source = url
            .strip_prefix("ffmpeg:")
            .ok_or("ffmpeg: not an ffmpeg: URL")?;
        let probe = self.probe.get().cloned().unwrap_or_default();
        let host = self.host.clone();
        let stream_exists = move |name: &str| host.stream_exists(name);
        let env = Env {
            templates: &self.templates,
            stream_exists: &stream_exists,
            internal_rtsp: self.host.fact("rtsp.internal_url"),
            hardware: probe.hardware,
            libavformat: probe.version.as_ref().and_then(|v| v.libavformat),
        };
        let cmd = args::build(source, &env).map_err(|e| format!("ffmpeg: {e}"))?;
        if !cmd.ignored.is_empty() {
            tracing::debug!(params = %cmd.ignored.join(","), "ffmpeg: unknown #params ignored");
        }
        let exec = format!("exec:{cmd}");
        tracing::debug!(cmd = %exec, "ffmpeg: command");
        events.redirect(exec);
        Ok(Box::new(Redirected))
    }

    fn config_keys(&self) -> Vec<String> {
        // Every key is a template name: any key is valid.
        Vec::new()
    }
}
