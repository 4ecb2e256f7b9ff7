//! `echo:` source: runs a command (no shell) and opens the URL it prints.
//! See README.md.

use std::sync::Mutex;
use std::time::Duration;

use camrouter_plugin_api::cmd::{check_allowed, split_args};
use camrouter_plugin_api::sdk::{InitContext, Plugin, Source, SourceEvents};
use tokio::sync::oneshot;

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Echo {
    ctx: InitContext,
}

struct Running(Mutex<Option<oneshot::Sender<()>>>);

impl Source for Running {
    fn stop(&self) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }
}

/// The URL a command printed: its output, trimmed.
pub fn url_from_output(out: &[u8]) -> Result<String, String> {
    let s = String::from_utf8_lossy(out).trim().to_string();
    if s.is_empty() {
        return Err("echo: empty output".into());
    }
    Ok(s)
}

impl Plugin for Echo {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Echo { ctx })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["echo".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let cmd = url.strip_prefix("echo:").ok_or("echo: not an echo: URL")?;
        let args = split_args(cmd);
        let program = args.first().ok_or("echo: empty command")?.clone();
        check_allowed("echo", &self.ctx.config, &program)?;
        let (tx, rx) = oneshot::channel::<()>();
        self.ctx.runtime.spawn(async move {
            let run = tokio::process::Command::new(&program)
                .args(&args[1..])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            tokio::select! {
                _ = rx => {}
                r = tokio::time::timeout(RUN_TIMEOUT, run) => match r {
                    Ok(Ok(out)) if out.status.success() => match url_from_output(&out.stdout) {
                        Ok(u) => {
                            tracing::debug!(url = %u, "echo: resolved");
                            events.redirect(u);
                        }
                        Err(e) => events.closed(&e),
                    },
                    Ok(Ok(out)) => events.closed(&format!(
                        "echo: {program}: {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                    Ok(Err(e)) => events.closed(&format!("echo: {program}: {e}")),
                    Err(_) => events.closed("echo: timeout"),
                },
            }
        });
        Ok(Box::new(Running(Mutex::new(Some(tx)))))
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["allow_paths".into(), "worker_threads".into()]
    }
}

camrouter_plugin_api::declare_plugin!("echo", Echo);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_trimmed_and_required() {
        assert_eq!(url_from_output(b"  rtsp://x/y\n").unwrap(), "rtsp://x/y");
        assert!(url_from_output(b"\n").is_err());
    }
}
