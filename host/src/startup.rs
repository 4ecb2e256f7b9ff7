//! Startup: config, log, plugins, streams, listeners; then wait for a signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RString};
use anyhow::Context as _;
use camrouter_plugin_api::abi::{HostBox, PluginRoot_Ref};
use serde_json::Value;

use crate::api::{self, ApiSettings, Ctx};
use crate::app::{App, GO2RTC_VERSION};
use crate::graph::Graph;
use crate::hostapi::HostImpl;
use crate::loader::{self, LoadedPlugin, Registry, RegistryOpener};
use crate::logging::{HostSubscriber, Logger, Settings};
use crate::serve;
use crate::Args;

/// First-party plugins linked into a bundled binary.
fn bundled() -> Vec<PluginRoot_Ref> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(feature = "bundled")]
    {
        v.push(camrouter_exec::module());
        v.push(camrouter_echo::module());
        v.push(camrouter_expr::module());
        v.push(camrouter_ffmpeg::module());
        v.push(camrouter_rtsp::module());
        v.push(camrouter_mp4::module());
        v.push(camrouter_mjpeg::module());
        v.push(camrouter_hls::module());
        v.push(camrouter_http::module());
        v.push(camrouter_flv::module());
        v.push(camrouter_webrtc::module());
        v.push(camrouter_rtmp::module());
        v.push(camrouter_onvif::module());
    }
    v
}

fn plugin_dirs(args: &Args, config: &Value) -> Vec<PathBuf> {
    let mut dirs = args.plugin_dirs.clone();
    if let Some(d) = config
        .pointer("/app/plugin_dir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        // The installed layout, relative to the binary: /usr/bin/camrouter
        // finds the packages' /usr/lib/camrouter/plugins, /usr/local/bin's
        // finds /usr/local/lib/..., and a tree unpacked anywhere else (a
        // test root, a tarball) finds its own plugins.
        if let Some(prefix) = exe_dir.parent() {
            dirs.push(prefix.join(loader::PREFIX_PLUGIN_DIR));
        }
        dirs.push(exe_dir);
    }
    dirs.push(PathBuf::from(loader::SYSTEM_DIR));
    dirs
}

fn load_plugins(
    args: &Args,
    app_config: &Value,
    logger: &Arc<Logger>,
    graph: &Arc<Graph>,
) -> Registry {
    let allow: Option<Vec<String>> = app_config
        .pointer("/app/modules")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        });
    let allowed = |m: &str| allow.as_ref().is_none_or(|a| a.iter().any(|x| x == m));
    let default_query = app_config
        .pointer("/rtsp/default_query")
        .and_then(|v| v.as_str())
        .unwrap_or("video&audio")
        .to_string();
    let facts = crate::hostapi::Facts::default();
    // Per-module log levels, for plugins that pass them on to tools they run
    // (the ffmpeg module's `-v`, as go2rtc's `log.ffmpeg`).
    if let (Ok(mut f), Some(log)) = (
        facts.lock(),
        app_config.get("log").and_then(|l| l.as_object()),
    ) {
        for (k, v) in log {
            if let Some(level) = v.as_str() {
                f.insert(format!("log.{k}"), level.to_string());
            }
        }
    }
    let api_user = app_config
        .pointer("/api/username")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let api_password = app_config
        .pointer("/api/password")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let host = || -> HostBox {
        HostBox::from_ptr(
            RArc::new(HostImpl {
                facts: facts.clone(),
                logger: logger.clone(),
                graph: Arc::downgrade(graph),
                default_query: default_query.clone(),
                api_credentials: (api_user.clone(), api_password.clone()),
            }),
            TD_Opaque,
        )
    };
    let mut registry = Registry::default();
    let mut roots: Vec<(PluginRoot_Ref, Option<PathBuf>)> = Vec::new();
    for root in bundled() {
        if allowed(&loader::module_name(&root)) {
            roots.push((root, None));
        }
    }
    for cand in loader::discover(&plugin_dirs(args, app_config)) {
        if !allowed(&cand.module) {
            // The allowlist: never opened, not even dlopen'ed.
            continue;
        }
        if roots
            .iter()
            .any(|(r, _)| loader::module_name(r) == cand.module)
        {
            continue;
        }
        match loader::open_file(&cand.path) {
            Ok(root) => {
                let name = loader::module_name(&root);
                if name != cand.module {
                    tracing::warn!(target: "app", file = %cand.path.display(), "plugin refused: file is named for {} but the module says {name}", cand.module);
                    continue;
                }
                roots.push((root, Some(cand.path)));
            }
            Err(e) => {
                tracing::warn!(target: "app", file = %cand.path.display(), "plugin refused: {e}");
            }
        }
    }
    for (root, path) in roots {
        let name = loader::module_name(&root);
        let version = (root.version())().to_string();
        let section = app_config.get(&name).cloned().unwrap_or(Value::Null);
        match (root.init())(host(), RString::from(section.to_string())) {
            RResult::ROk(object) => {
                tracing::debug!(target: "app", module = %name, version = %version, file = %path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "bundled".into()), "plugin loaded");
                registry.add(LoadedPlugin {
                    name,
                    version,
                    path,
                    object,
                });
            }
            RResult::RErr(e) => {
                tracing::warn!(target: "app", module = %name, "plugin init failed: {e}");
            }
        }
    }
    if let Some(list) = &allow {
        for m in list {
            if !registry.has_module(m) && !loader::HOST_MODULES.contains(&m.as_str()) {
                tracing::warn!(target: "app", module = %m, "module not found (no plugin file for it)");
            }
        }
    }
    registry
}

pub fn known_sections(registry: &Registry) -> camrouter_config::Known {
    let mut k = camrouter_config::Known::new()
        .section(
            "api",
            [
                "listen",
                "username",
                "password",
                "local_auth",
                "allow_paths",
                "base_path",
                "origin",
                "allowed_hosts",
                "static_dir",
                "tls_listen",
                "tls_cert",
                "tls_key",
                "unix_listen",
            ],
        )
        .section("app", ["modules", "plugin_dir"]);
    for p in registry.all() {
        let keys: Vec<String> = p
            .object
            .config_keys()
            .into_iter()
            .map(|s| s.into_string())
            .collect();
        if keys.is_empty() {
            k.add_free_section(&p.name);
        } else {
            k.add_section(&p.name, keys);
        }
    }
    // Sections of go2rtc modules we may not have loaded are not typos.
    for s in [
        "rtsp",
        "webrtc",
        "ffmpeg",
        "hass",
        "homekit",
        "mjpeg",
        "hls",
        "mp4",
        "rtmp",
        "srtp",
        "onvif",
        "ngrok",
        "publish",
        "webtorrent",
        "exec",
        "echo",
        "expr",
        "http",
        "debug",
        "ws",
        "srtp",
        "wyze",
        "ring",
        "tapo",
        "isapi",
        "roborock",
        "xiaomi",
        "gopro",
        "nest",
    ] {
        if !k.has_section(s) {
            k.add_free_section(s);
        }
    }
    k
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before any thread starts; the listeners size their caps from it.
    let fd_limit = camrouter_plugin_api::conn::raise_fd_limit();
    let logger = Logger::new(Settings::default());
    let _ = tracing::subscriber::set_global_default(HostSubscriber(logger.clone()));

    let cwd = std::env::current_dir().context("current dir")?;
    let loaded = match camrouter_config::load(&args.configs, &cwd, &|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(target: "app", "{e}");
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let config = loaded.config.clone();
    let (settings, log_warnings) = Settings::from_config(config.get("log").unwrap_or(&Value::Null));
    logger.set(settings);
    tracing::info!(target: "app", platform = %format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH), version = GO2RTC_VERSION, camrouter = env!("CARGO_PKG_VERSION"), "camrouter");
    let config_path = loaded
        .sources
        .iter()
        .any(|_| true)
        .then_some(())
        .map(|_| loaded.path.clone())
        .or(Some(loaded.path.clone()));
    if let Some(p) = &config_path {
        tracing::info!(target: "app", path = %std::path::absolute(p).unwrap_or_else(|_| p.clone()).display(), "config");
    }
    tracing::debug!(target: "app", fd_limit, "open files limit");
    for w in loaded.warnings.iter().chain(&log_warnings) {
        tracing::warn!(target: "app", "{w}");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("host-rt")
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let graph = Graph::new(rt.handle().clone());
    let registry = Arc::new({
        let _g = rt.enter();
        load_plugins(&args, &config, &logger, &graph)
    });
    graph.set_opener(Arc::new(RegistryOpener(registry.clone())));
    for key in camrouter_config::unknown_keys(&config, &known_sections(&registry)) {
        tracing::warn!(target: "app", key = %key, "unknown config key");
    }

    let app = Arc::new(App {
        logger: logger.clone(),
        graph: graph.clone(),
        registry: registry.clone(),
        config: RwLock::new(config.clone()),
        config_path,
        args: args.raw.clone(),
        preloads: Mutex::default(),
        config_write: tokio::sync::Mutex::new(()),
    });
    app.apply_streams();
    warn_unresolvable_sources(&app);

    let code = rt.block_on(async {
        if let Some(map) = config.get("preload").and_then(|v| v.as_object()) {
            for (name, q) in map {
                let q = q.as_str().unwrap_or("video&audio").to_string();
                let app = app.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    if let Err(e) = app.preload(&name, &q).await {
                        tracing::warn!(target: "streams", "preload {name}: {e}");
                    }
                });
            }
        }
        crate::publish::start_config(&app);
        let api_cfg = config.get("api").cloned().unwrap_or(Value::Null);
        if let Err(e) = serve_api(app.clone(), &api_cfg).await {
            tracing::error!(target: "api", "{e:#}");
            return ExitCode::from(1);
        }
        wait_signal().await;
        ExitCode::SUCCESS
    });
    graph.shutdown();
    for p in registry.all() {
        p.object.shutdown();
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(code)
}

/// A source whose scheme no loaded module handles gets a clear log line now,
/// not only when somebody watches.
fn warn_unresolvable_sources(app: &App) {
    let schemes = app.registry.schemes();
    for name in app.graph.names() {
        let Some(s) = app.graph.stream(&name) else {
            continue;
        };
        for src in s.sources() {
            let ok = loader::scheme_of(&src).is_some_and(|sc| schemes.iter().any(|k| k == sc));
            if !ok {
                tracing::warn!(target: "streams", stream = %name, url = %crate::graph::mask(&src), "unsupported scheme: no loaded module handles this source");
            }
        }
    }
}

async fn wait_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => eprintln!("exit with signal: terminated"),
        _ = int.recv() => eprintln!("exit with signal: interrupt"),
    }
}

/// go2rtc's listen syntax: `:1984`, `127.0.0.1:1984`, `[::]:1984`; empty disables.
pub fn listen_addr(s: &str) -> String {
    if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    }
}

async fn serve_api(app: Arc<App>, cfg: &Value) -> anyhow::Result<()> {
    let settings = Arc::new(ApiSettings::from_config(cfg));
    let ctx = Ctx {
        app: app.clone(),
        settings,
    };
    let router = axum::Router::new().fallback(api::handle).with_state(ctx);
    let listen = match cfg.get("listen") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => ":1984".to_string(),
        Some(other) => other.to_string(),
    };
    if !listen.is_empty() {
        let l = tokio::net::TcpListener::bind(listen_addr(&listen))
            .await
            .with_context(|| format!("api: listen {listen}"))?;
        tracing::info!(target: "api", addr = %listen, "listen");
        tokio::spawn(serve::run(serve::Listener::Tcp(l), router.clone()));
    }
    if let Some(path) = cfg
        .get("unix_listen")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("api: unix_listen {path}"))?;
        tracing::info!(target: "api", addr = %path, "listen");
        tokio::spawn(serve::run(serve::Listener::Unix(l), router.clone()));
    }
    if let Some(tls) = cfg
        .get("tls_listen")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let s = |k: &str| {
            cfg.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let config = crate::tls::server_config(&s("tls_cert"), &s("tls_key"))?;
        let tcp = tokio::net::TcpListener::bind(listen_addr(tls))
            .await
            .with_context(|| format!("api: tls_listen {tls}"))?;
        tracing::info!(target: "api", addr = %tls, "listen tls");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(serve::run(serve::Listener::Tls(tcp, acceptor), router));
    }
    Ok(())
}
