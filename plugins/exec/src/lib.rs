//! `exec:` source: runs a command and turns its stdout into a stream.
//! See README.md for URL formats and `#params`.

mod source;

use camrouter_plugin_api::sdk::{InitContext, Plugin, Source, SourceEvents};

pub struct Exec {
    ctx: InitContext,
}

impl Plugin for Exec {
    fn init(ctx: InitContext) -> Result<Self, String> {
        Ok(Exec { ctx })
    }

    fn schemes(&self) -> Vec<String> {
        vec!["exec".into()]
    }

    fn open_source(&self, url: &str, events: SourceEvents) -> Result<Box<dyn Source>, String> {
        let rest = url.strip_prefix("exec:").ok_or("exec: not an exec: URL")?;
        let opts = source::Options::parse(rest, &self.ctx.config)?;
        Ok(Box::new(source::start(
            opts,
            events,
            self.ctx.host.clone(),
            &self.ctx.runtime,
        )))
    }

    fn config_keys(&self) -> Vec<String> {
        vec!["allow_paths".into(), "worker_threads".into()]
    }
}

camrouter_plugin_api::declare_plugin!("exec", Exec);
