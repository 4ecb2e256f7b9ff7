//! A plugin that panics inside its calls, to show the host survives: the SDK
//! catches the panic at the boundary, logs it and returns an error.

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents};

pub struct Panicky;

impl Plugin for Panicky {
    fn init(_ctx: InitContext) -> Result<Self, String> {
        Ok(Panicky)
    }
    fn schemes(&self) -> Vec<String> {
        vec!["panic".into()]
    }
    fn open_source(&self, url: &str, _events: SourceEvents) -> Result<Box<dyn Source>, String> {
        panic!("panicky: open_source({url})");
    }
    fn routes(&self) -> Vec<String> {
        vec!["/api/panic".into()]
    }
    fn http(&self, _request: HttpRequest, _responder: Responder) {
        panic!("panicky: http");
    }
}

camrouter_plugin_api::declare_plugin!("panicky", Panicky);
camrouter_plugin_api::export_plugin!(module);
