//! `expr:` source: a small script (go2rtc's expr syntax, run by Rhai after a
//! syntax pre-pass) computes the real source URL, which the host then opens.
//! See README.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use camrouter_plugin_api::sdk::{InitContext, Plugin, Source, SourceEvents};

pub mod engine;
pub mod fetch;
pub mod script;

pub use engine::{eval, RUN_TIMEOUT};

pub struct Expr {
    ctx: InitContext,
}

/// A running evaluation. `stopped` aborts the script (the engine checks it
/// between operations). The `report` mutex is held while the result is
/// reported, so once `stop` has returned nothing more is reported. The host
/// may call `stop` from inside the report (`closed` stops the source at
/// once): `reporter` names the reporting thread so that call does not wait
/// for itself.
pub struct Running {
    stopped: Arc<AtomicBool>,
    report: Arc<Mutex<()>>,
    reporter: Arc<Mutex<Option<ThreadId>>>,
}

impl Source for Running {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let me = thread::current().id();
        if *self.reporter.lock().unwrap_or_else(|e| e.into_inner()) == Some(me) {
            return;
        }
        drop(self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Evaluates `source` on a blocking thread of `runtime` and hands the result
/// to `report`, unless the returned source was stopped first.
pub fn start(
    runtime: &tokio::runtime::Handle,
    source: String,
    timeout: Duration,
    report: impl FnOnce(Result<String, String>) + Send + 'static,
) -> Running {
    let running = Running {
        stopped: Arc::new(AtomicBool::new(false)),
        report: Arc::new(Mutex::new(())),
        reporter: Arc::new(Mutex::new(None)),
    };
    let (stopped, lock, reporter) = (
        running.stopped.clone(),
        running.report.clone(),
        running.reporter.clone(),
    );
    runtime.spawn_blocking(move || {
        let result = eval(&source, &stopped, timeout);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        *reporter.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current().id());
        report(result);
        *reporter.lock().unwrap_or_else(|e| e.into_inner()) = None;
    });
    running
}

impl Plugin for Expr {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Expr { ctx })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["expr".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let source = url
            .strip_prefix("expr:")
            .ok_or("expr: not an expr: URL")?
            .to_string();
        let running = start(
            &self.ctx.runtime,
            source,
            RUN_TIMEOUT,
            move |result| match result {
                Ok(url) => {
                    tracing::debug!(url = %fetch::mask(&url), "expr: resolved");
                    events.redirect(url);
                }
                Err(e) => events.closed(&format!("expr: {e}")),
            },
        );
        Ok(Box::new(running))
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["worker_threads".into()]
    }
}

camrouter_plugin_api::declare_plugin!("expr", Expr);

#[cfg(test)]
mod tests;
