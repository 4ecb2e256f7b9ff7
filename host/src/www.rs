//! The web UI: the `www/` tree embedded at build time (see `build.rs`), or
//! `api.static_dir` when set.

use std::path::{Component, Path};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/www_files.rs"));
}

fn content_type(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("txt") | Some("md") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// The embedded file at `rel` (a path without a leading `/`).
fn embedded(rel: &str) -> Option<&'static [u8]> {
    embedded::FILES
        .binary_search_by(|(p, _)| (*p).cmp(rel))
        .ok()
        .map(|i| embedded::FILES[i].1)
}

pub async fn serve(static_dir: Option<&str>, path: &str) -> Response {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    let not_found = || crate::api::text(StatusCode::NOT_FOUND, "404 page not found");
    // No `..` or absolute components: the dir (or the embedded tree) is the
    // whole namespace.
    if Path::new(&rel)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return not_found();
    }
    let reply = |body: axum::body::Body| {
        (
            [
                (header::CONTENT_TYPE, content_type(&rel)),
                // The UI changes with the binary; a stale cached script
                // talking to a new API is worse than a refetch.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response()
    };
    if let Some(dir) = static_dir {
        return match tokio::fs::read(Path::new(dir).join(&rel)).await {
            Ok(bytes) => reply(bytes.into()),
            Err(_) => not_found(),
        };
    }
    match embedded(&rel) {
        Some(bytes) => reply(bytes.into()),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_embedded_and_sorted() {
        assert!(embedded("index.html").is_some());
        assert!(embedded("video-stream.js").is_some());
        assert!(embedded("nope.html").is_none());
        assert!(embedded::FILES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
