//! The web UI: files embedded at build time, or `api.static_dir` when set.

use std::path::{Component, Path};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../www/index.html");

fn content_type(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

pub async fn serve(static_dir: Option<&str>, path: &str) -> Response {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    if let Some(dir) = static_dir {
        // No `..` or absolute components: the dir is the whole namespace.
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return crate::api::text(StatusCode::NOT_FOUND, "404 page not found");
        }
        return match tokio::fs::read(Path::new(dir).join(rel)).await {
            Ok(bytes) => ([(header::CONTENT_TYPE, content_type(rel))], bytes).into_response(),
            Err(_) => crate::api::text(StatusCode::NOT_FOUND, "404 page not found"),
        };
    }
    match rel {
        "index.html" => ([(header::CONTENT_TYPE, content_type(rel))], INDEX_HTML).into_response(),
        _ => crate::api::text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}
