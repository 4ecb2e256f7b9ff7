//! The HTTP API on `api.listen` (default `:1984`): go2rtc's paths and JSON,
//! auth, CORS, `base_path`, static files, and delegation to plugin routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use camrouter_plugin_api::url::query_pairs;
use serde_json::{json, Value};

use crate::app::{App, GO2RTC_VERSION};
use crate::graph::{ConsumerSink, Filter};
use crate::origin::{OriginPolicy, Via};
use crate::{dot, plugin_http, ws};

/// API settings from the `api:` section.
#[derive(Clone, Debug, Default)]
pub struct ApiSettings {
    pub username: String,
    pub password: String,
    pub local_auth: bool,
    pub allow_paths: Option<Vec<String>>,
    pub base_path: String,
    /// `api.origin` and `api.allowed_hosts`.
    pub policy: Arc<OriginPolicy>,
    pub static_dir: Option<String>,
}

impl ApiSettings {
    pub fn from_config(v: &Value) -> ApiSettings {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let mut base = s("base_path");
        while base.ends_with('/') {
            base.pop();
        }
        if !base.is_empty() && !base.starts_with('/') {
            base.insert(0, '/');
        }
        ApiSettings {
            username: s("username"),
            password: s("password"),
            local_auth: v
                .get("local_auth")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            allow_paths: v.get("allow_paths").and_then(|x| x.as_array()).map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            }),
            base_path: base,
            policy: Arc::new(OriginPolicy::from_config(v)),
            static_dir: v
                .get("static_dir")
                .and_then(|x| x.as_str())
                .filter(|x| !x.is_empty())
                .map(str::to_string),
        }
    }
}

/// The client's address as go2rtc prints it (unix-socket clients are `@`),
/// and the listener it came through; `serve` puts it in each request.
#[derive(Clone, Debug)]
pub struct RemoteAddr(pub String, pub Via);

#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    pub settings: Arc<ApiSettings>,
}

pub fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{body}\n"),
    )
        .into_response()
}

pub fn json_response(value: &Value, pretty: bool) -> Response {
    let mut body = if pretty {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        value.to_string()
    };
    body.push('\n');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

fn first<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn all<'a>(q: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn is_loopback(remote: &str) -> bool {
    remote == "@" || remote.starts_with("127.") || remote.starts_with("[::1]")
}

/// The single entry point: the browser checks (Host, Origin), base path,
/// CORS, then dispatch (allow_paths, auth, routes).
pub async fn handle(
    axum::extract::State(ctx): axum::extract::State<Ctx>,
    req: Request,
) -> Response {
    let (remote, via) = req
        .extensions()
        .get::<ConnectInfo<RemoteAddr>>()
        .map(|c| (c.0 .0.clone(), c.0 .1))
        .unwrap_or_else(|| ("@".to_string(), Via::Unix));
    let s = &ctx.settings;
    let policy = &s.policy;
    let headers = req.headers();
    if !policy.host_allowed(via, headers) {
        let host = headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        policy.log_once(format!(
            "refused requests for host {host:?}: not a name of this server (DNS rebinding?); list it in api.allowed_hosts if it is one"
        ));
        return text(
            StatusCode::FORBIDDEN,
            "403 forbidden: the Host header does not name this server (see api.allowed_hosts)",
        );
    }
    let full_path = req.uri().path();
    let path = if s.base_path.is_empty() {
        full_path.to_string()
    } else {
        match full_path.strip_prefix(&s.base_path) {
            Some("") => "/".to_string(),
            Some(p) if p.starts_with('/') => p.to_string(),
            _ => return text(StatusCode::NOT_FOUND, "404 page not found"),
        }
    };
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    if policy.refuse(req.method(), &path, headers) {
        policy.log_once(format!(
            "refused a cross-origin {} {path} from {}",
            req.method(),
            origin.as_deref().unwrap_or("a cross-site page")
        ));
        return text(StatusCode::FORBIDDEN, "403 forbidden: cross-origin request");
    }
    let mut resp = if req.method() == Method::OPTIONS && policy.answers_preflight(origin.as_deref())
    {
        empty_ok()
    } else {
        mask_error(dispatch(&ctx, &remote, &path, req).await).await
    };
    policy.cors(&path, origin.as_deref(), resp.headers_mut());
    resp
}

/// Every error answer, the host's and the plugins' routes', passes here: a
/// probe's or a play's error carries ffmpeg's stderr, with the camera's
/// `user:password@` in it. Only complete bodies are error bodies worth
/// reading; a streamed one is left as it is.
async fn mask_error(resp: Response) -> Response {
    use http_body::Body as _;
    const MAX: u64 = 1 << 20;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.body().size_hint().exact().is_none_or(|n| n > MAX)
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX as usize).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    // Binary bodies are not text that could quote a URL.
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let masked = camrouter_plugin_api::secret::mask(text);
    if masked == text {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(masked))
}

fn authorized(s: &ApiSettings, remote: &str, headers: &HeaderMap) -> bool {
    if s.username.is_empty() || (!s.local_auth && is_loopback(remote)) {
        return true;
    }
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", s.username, s.password);
    // Constant-time enough for a password compare of equal length.
    raw.len() == expected.len()
        && raw
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn dispatch(ctx: &Ctx, remote: &str, path: &str, req: Request) -> Response {
    let s = &ctx.settings;
    if let Some(allow) = &s.allow_paths {
        if !allow.iter().any(|p| p == path) {
            // go2rtc never registers paths outside the list.
            return text(StatusCode::FORBIDDEN, "403 forbidden");
        }
    }
    if !authorized(s, remote, req.headers()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"go2rtc\"")],
            "Unauthorized\n",
        )
            .into_response();
    }
    if let Some(slot) = req.extensions().get::<crate::serve::Slot>() {
        slot.0.release();
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let app = &ctx.app;
    match path {
        "/api" => api_info(ctx, req.headers()),
        "/api/streams" => match read_body(req, BODY_MAX).await {
            Ok(body) => streams(app, &method, &query, body).await,
            Err(resp) => resp,
        },
        "/api/streams.dot" => (
            [(header::CONTENT_TYPE, "text/vnd.graphviz")],
            dot::render(&app.graph.streams_json()),
        )
            .into_response(),
        "/api/schemes" => json_response(&json!(app.registry.schemes()), false),
        "/api/preload" => preload(app, &method, &query).await,
        "/api/config" => {
            let type_ok = config_type_ok(&s.policy, req.headers());
            // The body is read first so that the client hears the answer
            // (closing on an unread body resets the connection).
            let body = match read_body(req, CONFIG_MAX).await {
                Ok(body) => body,
                Err(resp) => return resp,
            };
            if matches!(method, Method::POST | Method::PATCH) && !type_ok {
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "config: send the config with Content-Type: application/yaml (or application/json)",
                );
            }
            crate::config_api::handle(app, &method, body).await
        }
        // What the web editor checks a config against before it saves one.
        "/api/config/schema" => json_response(
            &crate::startup::known_sections(&app.registry).json_schema(),
            true,
        ),
        "/api/log" => match method {
            Method::GET => (
                [(header::CONTENT_TYPE, "application/jsonlines")],
                app.logger.ring_text(),
            )
                .into_response(),
            Method::DELETE => {
                app.logger.clear_ring();
                ([(header::CONTENT_TYPE, "text/plain")], "OK").into_response()
            }
            _ => text(StatusCode::BAD_REQUEST, "Method not allowed"),
        },
        "/api/metrics" => match method {
            Method::GET | Method::HEAD => crate::metrics::response(app),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        },
        "/api/exit" => exit(&method, &query),
        "/api/restart" => restart(app, &method),
        "/api/ws" => {
            let peer = ws::Peer {
                remote_addr: remote.to_string(),
                user_agent: req
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            };
            match axum::extract::ws::WebSocketUpgrade::from_request(req, &()).await {
                Ok(up) => ws::upgrade(app.clone(), up, query, peer),
                Err(e) => e.into_response(),
            }
        }
        p if app.registry.route(method.as_str(), p).is_some() => {
            plugin_http::dispatch(app, p, remote, &query, req).await
        }
        _ if method == Method::GET || method == Method::HEAD => {
            crate::www::serve(s.static_dir.as_deref(), path).await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// A config write must carry a type no HTML form can send, so that a page
/// cannot post one even where the browser sends no `Origin`. go2rtc's own
/// editor posts `text/plain`; that is taken only with proof the request
/// came from our own pages.
fn config_type_ok(policy: &OriginPolicy, headers: &HeaderMap) -> bool {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
        | "application/json" => true,
        "text/plain" => policy.same_origin(headers),
        _ => false,
    }
}

/// Largest body `/api/streams` and other host routes read.
const BODY_MAX: usize = 16 << 20;
/// Largest config accepted by `POST`/`PATCH /api/config`.
pub const CONFIG_MAX: usize = 2 << 20;

/// How long a request body may pause, and take in all, before the request
/// is answered 408 and the connection closed.
pub(crate) const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Reads a whole request body of at most `limit` bytes. A body over the limit
/// is 413 and one that cannot be read to its end (the client went away,
/// a short `Content-Length`, a broken chunk) is 400: neither may pass as an
/// empty body, which a config write would take for an empty config.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, Response> {
    use http_body::Body as _;
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    loop {
        // The header timeout ends with the headers: without these a client
        // that declares a body and never sends it (or sends a byte now and
        // then) holds its connection and a file descriptor for ever, outside
        // the caps on idle connections.
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        let until = deadline.min(tokio::time::Instant::now() + BODY_IDLE_TIMEOUT);
        let Ok(frame) = tokio::time::timeout_at(until, next).await else {
            return Err(text(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body not received in time ({} s without data, {} s in all)",
                    BODY_IDLE_TIMEOUT.as_secs(),
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                &format!("request body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.into())
}

fn api_info(ctx: &Ctx, headers: &HeaderMap) -> Response {
    let app = &ctx.app;
    let mut info = json!({
        "version": GO2RTC_VERSION,
        "camrouter_version": env!("CARGO_PKG_VERSION"),
        "revision": "camrouter",
        "host": headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(""),
    });
    info["camrouter_modules"] = json!(app
        .registry
        .all()
        .map(|p| json!({
            "name": p.name,
            "version": p.version,
            "file": p.path.as_ref().map(|f| f.display().to_string()),
        }))
        .collect::<Vec<_>>());
    if let Some(p) = &app.config_path {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        info["config_path"] = json!(abs.to_string_lossy());
    }
    if app.registry.has_module("rtsp") {
        let rtsp = app.section("rtsp");
        info["rtsp"] = json!({
            "listen": rtsp.get("listen").and_then(|v| v.as_str()).unwrap_or(":8554"),
            "default_query": rtsp.get("default_query").and_then(|v| v.as_str()).unwrap_or("video&audio"),
        });
    }
    json_response(&info, false)
}

/// go2rtc refuses these through the API: they run commands on the server.
const INSECURE_SCHEMES: &[&str] = &["exec", "echo", "expr"];

/// A source from the API is untrusted (a web page or any client chose it):
/// the host refuses the schemes that run commands, and the plugin that opens
/// the scheme refuses what it would turn into arguments or local file access
/// (`PluginObject::check_untrusted_source`).
fn validate_source(app: &App, src: &str) -> Result<(), String> {
    let scheme = crate::loader::scheme_of(src);
    // A plain stream name or an unknown scheme.
    let Some(plugin) = app.registry.plugin_for(src) else {
        return Err("streams: source not supported".into());
    };
    if scheme.is_some_and(|s| INSECURE_SCHEMES.contains(&s)) {
        return Err("streams: source from insecure producer".into());
    }
    if src.chars().any(char::is_whitespace) {
        return Err("streams: source with spaces may be insecure".into());
    }
    match plugin
        .object
        .check_untrusted_source(abi_stable::std_types::RStr::from_str(src))
    {
        abi_stable::std_types::RResult::ROk(()) => Ok(()),
        abi_stable::std_types::RResult::RErr(e) => Err(format!("streams: {e}")),
    }
}

async fn streams(app: &Arc<App>, method: &Method, query: &str, _body: Bytes) -> Response {
    let q = query_pairs(query);
    let src = first(&q, "src");
    if method == Method::POST {
        return post_stream(app, &q).await;
    }
    let Some(src) = src.filter(|s| !s.is_empty()) else {
        // go2rtc: any method without `src` lists the streams.
        return json_response(&app.graph.streams_json(), false);
    };
    match *method {
        Method::GET => {
            if app.graph.stream(src).is_none() {
                return text(StatusCode::NOT_FOUND, "");
            }
            if Filter::parse(query).is_some() {
                return probe(app, src, query).await;
            }
            let all = app.graph.streams_json();
            json_response(&all[src], true)
        }
        Method::PUT => {
            let name = first(&q, "name").filter(|n| !n.is_empty()).unwrap_or(src);
            let sources: Vec<String> = all(&q, "src").into_iter().map(str::to_string).collect();
            for s in &sources {
                if let Err(e) = validate_source(app, s) {
                    return text(StatusCode::BAD_REQUEST, &e);
                }
            }
            app.graph.set_stream(name, sources.clone());
            match crate::config_api::save_stream(app, name, Some(&sources)).await {
                Ok(()) => empty_ok(),
                Err(e) => text(StatusCode::BAD_REQUEST, &e),
            }
        }
        Method::PATCH => {
            let Some(name) = first(&q, "name").filter(|n| !n.is_empty()) else {
                return text(StatusCode::BAD_REQUEST, "");
            };
            if q.iter().any(|(k, _)| k == "rename") {
                return rename_stream(app, src, name).await;
            }
            let sources: Vec<String> = all(&q, "src").into_iter().map(str::to_string).collect();
            if let Some(existing) = app.graph.stream(src) {
                // Alias of an existing stream: same sources.
                app.graph.set_stream(name, existing.sources());
                return empty_ok();
            }
            for s in &sources {
                if let Err(e) = validate_source(app, s) {
                    return text(StatusCode::BAD_REQUEST, &e);
                }
            }
            app.graph.set_stream(name, sources);
            empty_ok()
        }
        Method::DELETE => {
            if let Some(dst) = first(&q, "dst").filter(|d| !d.is_empty()) {
                // Ends a publisher started by `POST ?src=&dst=URL`; the
                // stream stays.
                return if crate::publish::stop(src, dst) {
                    empty_ok()
                } else {
                    text(StatusCode::NOT_FOUND, "")
                };
            }
            app.remove_preload(src);
            app.graph.remove_stream(src);
            match crate::config_api::save_stream(app, src, None).await {
                Ok(()) => empty_ok(),
                Err(e) => text(StatusCode::BAD_REQUEST, &e),
            }
        }
        _ => json_response(&app.graph.streams_json(), false),
    }
}

/// `PATCH /api/streams?src=OLD&name=NEW&rename` (camrouter's own; go2rtc
/// has no rename): the stream and its preload move to the new name in the
/// running graph and in the config file, each in one step.
async fn rename_stream(app: &Arc<App>, from: &str, to: &str) -> Response {
    use crate::graph::RenameError;
    if from == to {
        return empty_ok();
    }
    let preload = app
        .preloads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(from)
        .map(|p| p.query.clone());
    let sources = match app.graph.rename_stream(from, to) {
        Ok(s) => s.sources(),
        Err(e @ RenameError::NotFound) => return text(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ RenameError::Exists) => return text(StatusCode::CONFLICT, &e.to_string()),
    };
    if let Err(e) =
        crate::config_api::rename_stream(app, from, to, &sources, preload.as_deref()).await
    {
        // The file is as it was: so is the graph.
        let _ = app.graph.rename_stream(to, from);
        return text(StatusCode::BAD_REQUEST, &e);
    }
    if let Some(q) = preload {
        app.remove_preload(from);
        if let Err(e) = app.preload(to, &q).await {
            tracing::warn!(target: "streams", stream = to, "preload: {e}");
        }
    }
    empty_ok()
}

/// `GET /api/streams?src=NAME&video=all&audio=all&microphone`: connects the
/// sources and reports what they carry (Frigate's stream probe).
async fn probe(app: &Arc<App>, name: &str, query: &str) -> Response {
    let filter = Filter::parse_or(query, "video&audio");
    let id = app.graph.next_id();
    let info = json!({"format_name": "probe", "protocol": "internal"});
    let result = app
        .graph
        .attach(id, name, &filter, ConsumerSink::Internal(None), info)
        .await;
    let resp = match result {
        Ok(_) => {
            let all = app.graph.streams_json();
            json_response(&all[name], true)
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    app.graph.detach(id);
    resp
}

/// `POST /api/streams?src=&dst=`: plays `src` into the backchannel of the
/// stream `dst` (go2rtc's "stream to camera"); an empty `src` stops it.
/// A `dst` that names no stream is a URL to publish stream `src` to
/// (`rtmp://…`), until it fails or `DELETE` with the same `src` and `dst`.
async fn post_stream(app: &Arc<App>, q: &[(String, String)]) -> Response {
    let Some(dst) = first(q, "dst").filter(|d| !d.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "");
    };
    let src = first(q, "src").unwrap_or("");
    if app.graph.stream(dst).is_none() {
        // go2rtc: a `dst` that is no stream is a target to publish `src` to;
        // one without a scheme is a stream that does not exist.
        if app.graph.stream(src).is_none() || crate::loader::scheme_of(dst).is_none() {
            return text(StatusCode::NOT_FOUND, "");
        }
        if dst.chars().any(char::is_whitespace) {
            return text(StatusCode::BAD_REQUEST, "streams: invalid dynamic source");
        }
        return match crate::publish::add(app, src, dst, false) {
            Ok(()) => empty_ok(),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
    }
    if !src.is_empty() && app.graph.stream(src).is_none() {
        if let Err(e) = validate_source(app, src) {
            return text(StatusCode::BAD_REQUEST, &e);
        }
    }
    match crate::play::play(app, src, dst).await {
        Ok(()) => json_response(&app.graph.streams_json()[dst], false),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn preload(app: &Arc<App>, method: &Method, query: &str) -> Response {
    let q = query_pairs(query);
    match *method {
        Method::GET => {
            let list: Vec<(String, String, u64)> = app
                .preloads
                .lock()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.clone(), v.query.clone(), v.consumer))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = serde_json::Map::new();
            for (name, query, id) in list {
                let consumer = app
                    .graph
                    .consumer(id)
                    .map(|c| c.json())
                    .unwrap_or_else(|| json!({"format_name": "preload"}));
                out.insert(name, json!({"consumer": consumer, "query": query}));
            }
            json_response(&Value::Object(out), false)
        }
        Method::PUT => {
            let Some(src) = first(&q, "src").filter(|s| !s.is_empty()) else {
                return text(StatusCode::BAD_REQUEST, "");
            };
            // Only media keys count, as in go2rtc (HA's codec_filter keys are dropped).
            let kept: Vec<String> = q
                .iter()
                .filter(|(k, _)| matches!(k.as_str(), "video" | "audio" | "microphone"))
                .map(|(k, v)| {
                    if v.is_empty() {
                        k.clone()
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            let query = if kept.is_empty() {
                "video&audio".to_string()
            } else {
                kept.join("&")
            };
            match app.preload(src, &query).await {
                Ok(()) => {
                    let _ = crate::config_api::save_preload(app, src, Some(&query)).await;
                    empty_ok()
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e),
            }
        }
        Method::DELETE => {
            let src = first(&q, "src").unwrap_or("");
            if app.remove_preload(src) {
                let _ = crate::config_api::save_preload(app, src, None).await;
                empty_ok()
            } else {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("streams: preload not found: {src}"),
                )
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, ""),
    }
}

fn exit(method: &Method, query: &str) -> Response {
    if method != Method::POST {
        return text(StatusCode::BAD_REQUEST, "");
    }
    let q = query_pairs(query);
    let code = match first(&q, "code").map(|c| c.parse::<i32>()) {
        None => 0,
        Some(Ok(c)) if (0..=125).contains(&c) => c,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "Code must be in the range [0, 125]",
            )
        }
    };
    tracing::info!(target: "api", code, "exit requested");
    std::process::exit(code);
}

fn restart(app: &Arc<App>, method: &Method) -> Response {
    if method != Method::POST {
        return text(StatusCode::BAD_REQUEST, "");
    }
    let args = app.args.clone();
    let graph = app.graph.clone();
    tokio::spawn(async move {
        // Let the response go out first.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        tracing::info!(target: "api", "restart requested");
        graph.shutdown();
        crate::restart_process(&args);
    });
    empty_ok()
}
