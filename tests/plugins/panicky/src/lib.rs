//! A test plugin: panics inside its calls (and echoes WebSocket messages), to show the host survives: the SDK
//! catches the panic at the boundary, logs it and returns an error.

use camrouter_plugin_api::abi::HttpRequest;
use camrouter_plugin_api::sdk::{InitContext, Plugin, Responder, Source, SourceEvents, WsSender};

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
    fn ws_types(&self) -> Vec<String> {
        vec!["test/*".into()]
    }
    /// `test/echo` answers with the same value; `test/panic` panics.
    fn ws_message(&self, _conn: u64, message: &str, sender: WsSender) {
        let v: serde_json::Value = serde_json::from_str(message).unwrap_or_default();
        if v["type"] == "test/panic" {
            panic!("panicky: ws");
        }
        sender.send_json(
            &serde_json::json!({"type": "test/echo", "value": v["value"], "query": v["query"]}),
        );
    }
}

camrouter_plugin_api::declare_plugin!("panicky", Panicky);
camrouter_plugin_api::export_plugin!(module);
