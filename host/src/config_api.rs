//! `/api/config` and the config-file writes of stream and preload changes.
//! Every write is validated, atomic (temp file + rename) and keeps a backup;
//! a failed edit leaves the user's file untouched.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::text;
use crate::app::App;

pub async fn handle(app: &Arc<App>, method: &Method, body: Bytes) -> Response {
    let Some(path) = app.config_path.clone() else {
        return text(StatusCode::GONE, "config file disabled");
    };
    let _lock = app.config_write.lock().await;
    let current = match read_current(&path).await {
        Ok(c) => c,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    match *method {
        Method::GET => ([(header::CONTENT_TYPE, "application/yaml")], current).into_response(),
        Method::POST => {
            let Ok(new) = String::from_utf8(body.to_vec()) else {
                return text(StatusCode::BAD_REQUEST, "config: not UTF-8");
            };
            if let Err(e) = camrouter_config::validate(&new) {
                return text(StatusCode::BAD_REQUEST, &e.to_string());
            }
            write(&path, &new).await
        }
        Method::PATCH => {
            let Ok(body) = std::str::from_utf8(&body) else {
                return text(StatusCode::BAD_REQUEST, "config: not UTF-8");
            };
            let patch = match camrouter_config::validate(body) {
                Ok(v) => v,
                Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            match camrouter_config::patch(&current, &patch) {
                Ok(new) => write(&path, &new).await,
                Err(e) => text(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// The config file's text; a missing file is an empty config, but a file we
/// cannot read is an error: editing "nothing" would replace the user's config.
async fn read_current(path: &std::path::Path) -> Result<String, String> {
    match tokio::fs::read_to_string(path).await {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("config: {}: {e}", path.display())),
    }
}

async fn write(path: &std::path::Path, text_: &str) -> Response {
    let p = path.to_path_buf();
    let t = text_.to_string();
    match tokio::task::spawn_blocking(move || camrouter_config::write_atomic(&p, &t)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("config: {e}")),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("config: {e}")),
    }
}

async fn edit(
    app: &Arc<App>,
    f: impl FnOnce(&str) -> camrouter_config::Result<String>,
) -> Result<(), String> {
    let Some(path) = app.config_path.clone() else {
        return Err("config file disabled".into());
    };
    let _lock = app.config_write.lock().await;
    let current = read_current(&path).await?;
    let new = f(&current).map_err(|e| e.to_string())?;
    let p = path.clone();
    tokio::task::spawn_blocking(move || camrouter_config::write_atomic(&p, &new))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("config: {e}"))
}

/// Writes (or with `None` removes) a stream in the config file, keeping the
/// user's comments and layout.
pub async fn save_stream(
    app: &Arc<App>,
    name: &str,
    sources: Option<&[String]>,
) -> Result<(), String> {
    match sources {
        Some(s) => edit(app, |t| camrouter_config::set_stream(t, name, s)).await,
        None => edit(app, |t| camrouter_config::remove_stream(t, name)).await,
    }
}

/// Moves stream `from` (and its preload, when it has one) to `to` in the
/// config file: one write, so the file never holds both names or neither.
pub async fn rename_stream(
    app: &Arc<App>,
    from: &str,
    to: &str,
    sources: &[String],
    preload: Option<&str>,
) -> Result<(), String> {
    edit(app, |t| {
        let mut t = camrouter_config::remove_stream(t, from)?;
        t = camrouter_config::set_stream(&t, to, sources)?;
        if let Some(q) = preload {
            t = camrouter_config::remove_preload(&t, from)?;
            t = camrouter_config::set_preload(&t, to, q)?;
        }
        Ok(t)
    })
    .await
}

pub async fn save_preload(app: &Arc<App>, name: &str, query: Option<&str>) -> Result<(), String> {
    match query {
        Some(q) => edit(app, |t| camrouter_config::set_preload(t, name, q)).await,
        None => edit(app, |t| camrouter_config::remove_preload(t, name)).await,
    }
}
