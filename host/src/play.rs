//! go2rtc's "stream to camera": `POST /api/streams?dst=cam&src=URL` plays the
//! audio of `src` into the backchannel of `dst`; an empty `src` stops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;

use crate::app::App;
use crate::graph::{ConsumerSink, Filter};

struct Playing {
    source_consumer: u64,
    mic_consumer: u64,
    /// A stream created for a URL `src`, removed when playing stops.
    temp_stream: Option<String>,
}

fn playing() -> &'static Mutex<HashMap<String, Playing>> {
    static P: OnceLock<Mutex<HashMap<String, Playing>>> = OnceLock::new();
    P.get_or_init(Mutex::default)
}

fn stop(app: &App, dst: &str) {
    let old = playing()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(dst);
    if let Some(p) = old {
        app.graph.detach(p.source_consumer);
        app.graph.detach(p.mic_consumer);
        if let Some(t) = p.temp_stream {
            app.graph.remove_stream(&t);
        }
    }
}

pub async fn play(app: &Arc<App>, src: &str, dst: &str) -> Result<(), String> {
    stop(app, dst);
    if src.is_empty() {
        return Ok(());
    }
    let (src_stream, temp) = if app.graph.stream(src).is_some() {
        (src.to_string(), None)
    } else {
        app.graph.set_stream(src, vec![src.to_string()]);
        (src.to_string(), Some(src.to_string()))
    };
    let mic_id = app.graph.next_id();
    let src_id = app.graph.next_id();
    let graph = app.graph.clone();
    // Packets of the source's audio go straight to the camera's backchannel.
    let sink = ConsumerSink::Internal(Some(Box::new(move |_t, p| {
        graph.consumer_send(mic_id, 0, p)
    })));
    let info = json!({"format_name": "play", "protocol": "internal"});
    let entry = match app
        .graph
        .attach(
            src_id,
            &src_stream,
            &Filter::parse_or("audio", ""),
            sink,
            info.clone(),
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            if let Some(t) = &temp {
                app.graph.remove_stream(t);
            }
            return Err(e.to_string());
        }
    };
    let codec = entry
        .medias()
        .first()
        .and_then(|m| m.codecs.first().map(|c| c.name.to_string()))
        .unwrap_or_default();
    let mic = Filter::parse_or(&format!("microphone={codec}"), "");
    if let Err(e) = app
        .graph
        .attach(mic_id, dst, &mic, ConsumerSink::Internal(None), info)
        .await
    {
        app.graph.detach(src_id);
        if let Some(t) = &temp {
            app.graph.remove_stream(t);
        }
        return Err(e.to_string());
    }
    playing().lock().unwrap_or_else(|e| e.into_inner()).insert(
        dst.to_string(),
        Playing {
            source_consumer: src_id,
            mic_consumer: mic_id,
            temp_stream: temp,
        },
    );
    Ok(())
}
