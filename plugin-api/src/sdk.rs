//! The safe SDK: plugin authors implement [`Plugin`] in plain Rust and call
//! [`declare_plugin!`](crate::declare_plugin); the SDK writes the ABI glue.
//! Every call from the host into plugin code is panic-guarded: a panic is
//! logged, turned into an error, and the object that panicked is marked failed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{
    RArc, RBox, RErr, ROk, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2,
};

use crate::abi::{self, *};

/// Runs `f`, turning a panic into `None` and a log line. The panic hook still
/// prints, which is what we want: the backtrace helps the plugin's author.
pub fn guard<R>(what: &str, failed: &AtomicBool, f: impl FnOnce() -> R) -> Option<R> {
    if failed.load(Ordering::Relaxed) {
        return None;
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(e) => {
            failed.store(true, Ordering::Relaxed);
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("panic in {what}: {msg}");
            None
        }
    }
}

/// The host as a plugin sees it.
#[derive(Clone)]
pub struct Host(Arc<HostBox>);

impl Host {
    pub fn raw(&self) -> &Arc<HostBox> {
        &self.0
    }
    /// See [`HostApi::add_consumer`]. The consumer's answers arrive through its methods.
    pub fn add_consumer(
        &self,
        stream: &str,
        query: &str,
        info: serde_json::Value,
        consumer: impl Consumer,
    ) -> u64 {
        let c = ConsumerBox::from_ptr(
            RArc::new(GuardedConsumer {
                inner: consumer,
                failed: AtomicBool::new(false),
            }),
            TD_Opaque,
        );
        self.0.add_consumer(
            RStr::from_str(stream),
            RStr::from_str(query),
            RString::from(info.to_string()),
            c,
        )
    }
    pub fn remove_consumer(&self, id: u64) {
        self.0.remove_consumer(id)
    }
    pub fn consumer_send(&self, id: u64, track: u32, packet: &Packet) {
        self.0.consumer_send(id, track, packet)
    }
    /// See [`HostApi::request_keyframe`].
    pub fn request_keyframe(&self, id: u64, track: u32) {
        self.0.request_keyframe(id, track)
    }
    /// See [`HostApi::add_client`]: one connected client of a shared
    /// consumer. Dropping the returned [`Client`] removes it.
    pub fn add_client(&self, consumer: u64, info: serde_json::Value) -> Client {
        let counters = RArc::new(ClientCounters::default());
        let id = self
            .0
            .add_client(consumer, RString::from(info.to_string()), counters.clone());
        Client {
            host: self.clone(),
            id,
            counters,
        }
    }
    pub fn stream_exists(&self, name: &str) -> bool {
        self.0.stream_exists(RStr::from_str(name))
    }
    pub fn add_stream(&self, name: &str, sources: Vec<String>, hidden: bool) {
        let sources = sources.into_iter().map(RString::from).collect();
        self.0.add_stream(RStr::from_str(name), sources, hidden)
    }
    pub fn remove_stream(&self, name: &str) {
        self.0.remove_stream(RStr::from_str(name))
    }
    pub fn set_fact(&self, key: &str, value: &str) {
        self.0.set_fact(RStr::from_str(key), RString::from(value))
    }
    pub fn fact(&self, key: &str) -> Option<String> {
        self.0
            .fact(RStr::from_str(key))
            .into_option()
            .map(RString::into_string)
    }
    /// See [`HostApi::check_api_credentials`].
    pub fn check_api_credentials(&self, user: &str, password: &str) -> ApiCredentials {
        self.0
            .check_api_credentials(RStr::from_str(user), RStr::from_str(password))
    }
    pub fn add_producer(
        &self,
        stream: &str,
        info: serde_json::Value,
        source: impl Source,
    ) -> Result<SourceEvents, String> {
        match self.0.add_producer(
            RStr::from_str(stream),
            RString::from(info.to_string()),
            box_source(source),
        ) {
            ROk(ev) => Ok(SourceEvents(Arc::new(ev))),
            RErr(e) => Err(e.into_string()),
        }
    }
}

/// One connected client as the host lists it; removed when dropped.
pub struct Client {
    host: Host,
    id: u64,
    counters: RArc<ClientCounters>,
}

impl Client {
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Merges `info` (a JSON object) into the client's record.
    pub fn update(&self, info: serde_json::Value) {
        self.host
            .0
            .update_client(self.id, RString::from(info.to_string()))
    }
    /// Counts what was written to the client.
    #[inline]
    pub fn sent(&self, bytes: usize, packets: usize) {
        self.counters
            .bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.counters
            .packets
            .fetch_add(packets as u64, Ordering::Relaxed);
    }
    /// Counts frames skipped because the client was too slow.
    #[inline]
    pub fn dropped(&self, frames: u64) {
        self.counters.dropped.fetch_add(frames, Ordering::Relaxed);
    }
    /// The shared counters, for a writer that counts on its own.
    pub fn counters(&self) -> &RArc<ClientCounters> {
        &self.counters
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.host.0.remove_client(self.id)
    }
}

/// What a source reports to the host; cheap to clone.
#[derive(Clone)]
pub struct SourceEvents(Arc<SourceEventsBox>);

impl SourceEvents {
    pub fn medias(&self, medias: Vec<Media>) {
        self.0.medias(RVec::from(medias))
    }
    #[inline]
    pub fn packet(&self, packet: &Packet) {
        self.0.packet(packet)
    }
    pub fn info(&self, info: serde_json::Value) {
        self.0.info(RString::from(info.to_string()))
    }
    pub fn redirect(&self, url: String) {
        self.0.redirect(RString::from(url))
    }
    pub fn closed(&self, reason: &str) {
        self.0.closed(RString::from(reason))
    }
}

/// What a publisher reports to the host (see [`abi::PublishEvents`]); cheap to clone.
#[derive(Clone)]
pub struct PublishEvents(Arc<PublishEventsBox>);

impl PublishEvents {
    pub fn closed(&self, reason: &str) {
        self.0.closed(RString::from(reason))
    }
}

/// A running publisher, plugin side. See [`abi::Publisher`].
pub trait Publisher: Send + Sync + 'static {
    fn stop(&self);
}

struct GuardedPublisher {
    inner: Box<dyn Publisher>,
    failed: AtomicBool,
}

impl abi::Publisher for GuardedPublisher {
    fn stop(&self) {
        self.failed.store(false, Ordering::Relaxed);
        guard("publisher stop", &self.failed, || self.inner.stop());
    }
}

/// A running source, plugin side.
pub trait Source: Send + Sync + 'static {
    fn send(&self, _track: u32, _packet: &Packet) {}
    fn stop(&self);
    /// See [`abi::Source::request_keyframe`].
    fn request_keyframe(&self, _track: u32) {}
}

/// A consumer, plugin side. See [`abi::Consumer`].
pub trait Consumer: Send + Sync + 'static {
    fn attached(&self, medias: Vec<Media>);
    fn failed(&self, error: String);
    fn packet(&self, track: u32, packet: &Packet);
    fn closed(&self, reason: String);
}

/// Answers one HTTP request.
pub struct Responder(ResponderBox);

impl Responder {
    pub fn respond(self, status: u16, content_type: &str, body: Vec<u8>) {
        let headers = headers_of(&[("Content-Type", content_type)]);
        self.0.respond(status, headers, RVec::from(body))
    }
    pub fn respond_with(self, status: u16, headers: &[(&str, &str)], body: Vec<u8>) {
        self.0
            .respond(status, headers_of(headers), RVec::from(body))
    }
    pub fn json(self, status: u16, value: &serde_json::Value) {
        self.respond(status, "application/json", value.to_string().into_bytes())
    }
    pub fn text(self, status: u16, text: &str) {
        self.respond(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }
    pub fn stream(self, status: u16, headers: &[(&str, &str)]) -> BodySink {
        BodySink(self.0.stream(status, headers_of(headers)))
    }
    /// Streams the request body of a `"METHOD /path"` route into `body`;
    /// see [`abi::Responder::read_body`]. Answer afterwards (or to stop it).
    pub fn read_body(&self, body: impl RequestBody) {
        self.0.read_body(abi::RequestBodyBox::from_value(
            GuardedBody {
                inner: body,
                failed: AtomicBool::new(false),
            },
            TD_Opaque,
        ))
    }
}

/// A streaming request body, plugin side. See [`abi::RequestBody`].
pub trait RequestBody: Send + Sync + 'static {
    fn data(&self, chunk: &[u8]);
    fn end(&self, error: Option<String>);
}

struct GuardedBody<B> {
    inner: B,
    failed: AtomicBool,
}

impl<B: RequestBody> abi::RequestBody for GuardedBody<B> {
    fn data(&self, chunk: RSlice<'_, u8>) {
        guard("request body", &self.failed, || {
            self.inner.data(chunk.as_slice())
        });
    }
    fn end(&self, error: ROption<RString>) {
        guard("request body end", &self.failed, || {
            self.inner
                .end(error.into_option().map(RString::into_string))
        });
    }
}

pub struct BodySink(BodySinkBox);

impl BodySink {
    pub fn try_send(&self, chunk: Vec<u8>) -> SendStatus {
        self.0.try_send(RVec::from(chunk))
    }
    pub fn finish(self) {
        self.0.finish()
    }
}

#[derive(Clone)]
pub struct WsSender(Arc<WsSenderBox>);

impl WsSender {
    pub fn send_text(&self, text: String) -> SendStatus {
        self.0.send_text(RString::from(text))
    }
    pub fn send_json(&self, value: &serde_json::Value) -> SendStatus {
        self.send_text(value.to_string())
    }
    pub fn send_binary(&self, data: Vec<u8>) -> SendStatus {
        self.0.send_binary(RVec::from(data))
    }
}

fn headers_of(h: &[(&str, &str)]) -> Headers {
    h.iter()
        .map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v)))
        .collect()
}

/// What `Plugin::init` receives.
pub struct InitContext {
    pub host: Host,
    /// This module's config section (`null` when the config has none).
    pub config: serde_json::Value,
    /// The plugin's own runtime: plugin futures must run here, never on the
    /// host's (DESIGN.md §3).
    pub runtime: tokio::runtime::Handle,
}

/// A plugin, in plain Rust.
pub trait Plugin: Send + Sync + Sized + 'static {
    fn init(ctx: InitContext) -> Result<Self, String>;
    fn schemes(&self) -> Vec<String> {
        Vec::new()
    }
    fn open_source(&self, url: &str, _events: SourceEvents) -> Result<Box<dyn Source>, String> {
        Err(format!("unsupported source: {url}"))
    }
    fn routes(&self) -> Vec<String> {
        Vec::new()
    }
    fn http(&self, _request: HttpRequest, responder: Responder) {
        responder.text(404, "not found")
    }
    fn ws_types(&self) -> Vec<String> {
        Vec::new()
    }
    fn ws_message(&self, _conn: u64, _message: &str, _sender: WsSender) {}
    fn ws_closed(&self, _conn: u64) {}
    fn config_keys(&self) -> Vec<String> {
        Vec::new()
    }
    fn shutdown(&self) {}
    /// See [`abi::PluginObject::check_untrusted_source`]. The default accepts
    /// every URL: right for a plugin whose URLs name a network peer and never
    /// become a command line or a local path.
    fn check_untrusted_source(&self, _url: &str) -> Result<(), String> {
        Ok(())
    }
    /// See [`abi::PluginObject::publish`]. The default: publishing to this
    /// plugin's schemes is not supported.
    fn publish(
        &self,
        _stream: &str,
        url: &str,
        _events: PublishEvents,
    ) -> Result<Box<dyn Publisher>, String> {
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        Err(format!("publishing to {scheme}: is not supported"))
    }
}

fn strings(v: Vec<String>) -> RVec<RString> {
    v.into_iter().map(RString::from).collect()
}

struct GuardedPlugin<P> {
    inner: P,
    failed: AtomicBool,
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
}

impl<P: Plugin> abi::PluginObject for GuardedPlugin<P> {
    fn schemes(&self) -> RVec<RString> {
        guard("schemes", &self.failed, || strings(self.inner.schemes())).unwrap_or_default()
    }
    fn open_source(&self, url: RStr<'_>, events: SourceEventsBox) -> RResult<SourceBox, RString> {
        let events = SourceEvents(Arc::new(events));
        match guard("open_source", &self.failed, || {
            self.inner.open_source(url.as_str(), events)
        }) {
            Some(Ok(src)) => ROk(box_dyn_source(src)),
            Some(Err(e)) => RErr(RString::from(e)),
            None => RErr(RString::from("plugin failed (panic)")),
        }
    }
    fn routes(&self) -> RVec<RString> {
        guard("routes", &self.failed, || strings(self.inner.routes())).unwrap_or_default()
    }
    fn http(&self, request: HttpRequest, responder: ResponderBox) {
        // The responder moves into the call; if the plugin panics the host sees
        // the responder dropped and answers 500 itself.
        guard("http", &self.failed, || {
            self.inner.http(request, Responder(responder))
        });
    }
    fn ws_types(&self) -> RVec<RString> {
        guard("ws_types", &self.failed, || strings(self.inner.ws_types())).unwrap_or_default()
    }
    fn ws_message(&self, conn: u64, message: RStr<'_>, sender: WsSenderBox) {
        guard("ws_message", &self.failed, || {
            self.inner
                .ws_message(conn, message.as_str(), WsSender(Arc::new(sender)))
        });
    }
    fn ws_closed(&self, conn: u64) {
        guard("ws_closed", &self.failed, || self.inner.ws_closed(conn));
    }
    fn config_keys(&self) -> RVec<RString> {
        guard("config_keys", &self.failed, || {
            strings(self.inner.config_keys())
        })
        .unwrap_or_default()
    }
    fn check_untrusted_source(&self, url: RStr<'_>) -> RResult<(), RString> {
        match guard("check_untrusted_source", &self.failed, || {
            self.inner.check_untrusted_source(url.as_str())
        }) {
            Some(Ok(())) => ROk(()),
            Some(Err(e)) => RErr(RString::from(e)),
            None => RErr(RString::from("plugin failed (panic)")),
        }
    }
    fn publish(
        &self,
        stream: RStr<'_>,
        url: RStr<'_>,
        events: PublishEventsBox,
    ) -> RResult<PublisherBox, RString> {
        let events = PublishEvents(Arc::new(events));
        match guard("publish", &self.failed, || {
            self.inner.publish(stream.as_str(), url.as_str(), events)
        }) {
            Some(Ok(p)) => ROk(PublisherBox::from_ptr(
                RBox::new(GuardedPublisher {
                    inner: p,
                    failed: AtomicBool::new(false),
                }),
                TD_Opaque,
            )),
            Some(Err(e)) => RErr(RString::from(e)),
            None => RErr(RString::from("plugin failed (panic)")),
        }
    }
    fn shutdown(&self) {
        guard("shutdown", &self.failed, || self.inner.shutdown());
        if let Ok(mut rt) = self.runtime.lock() {
            if let Some(rt) = rt.take() {
                rt.shutdown_background();
            }
        }
    }
}

struct GuardedSource {
    inner: Box<dyn Source>,
    failed: AtomicBool,
}

impl abi::Source for GuardedSource {
    fn send(&self, track: u32, packet: &Packet) {
        guard("source send", &self.failed, || {
            self.inner.send(track, packet)
        });
    }
    fn stop(&self) {
        // Stop must run even after an earlier panic, to release processes.
        self.failed.store(false, Ordering::Relaxed);
        guard("source stop", &self.failed, || self.inner.stop());
    }
    fn request_keyframe(&self, track: u32) {
        guard("source keyframe request", &self.failed, || {
            self.inner.request_keyframe(track)
        });
    }
}

fn box_dyn_source(src: Box<dyn Source>) -> SourceBox {
    SourceBox::from_ptr(
        RBox::new(GuardedSource {
            inner: src,
            failed: AtomicBool::new(false),
        }),
        TD_Opaque,
    )
}

fn box_source(src: impl Source) -> SourceBox {
    box_dyn_source(Box::new(src))
}

struct GuardedConsumer<C> {
    inner: C,
    failed: AtomicBool,
}

impl<C: Consumer> abi::Consumer for GuardedConsumer<C> {
    fn attached(&self, medias: RVec<Media>) {
        guard("consumer attached", &self.failed, || {
            self.inner.attached(medias.into_vec())
        });
    }
    fn failed(&self, error: RString) {
        guard("consumer failed", &self.failed, || {
            self.inner.failed(error.into_string())
        });
    }
    #[inline]
    fn packet(&self, track: u32, packet: &Packet) {
        guard("consumer packet", &self.failed, || {
            self.inner.packet(track, packet)
        });
    }
    fn closed(&self, reason: RString) {
        guard("consumer closed", &self.failed, || {
            self.inner.closed(reason.into_string())
        });
    }
}

/// Builds the runtime and the plugin; what the generated `init` calls.
pub fn init_plugin<P: Plugin>(
    name: &str,
    host: HostBox,
    config: RString,
) -> RResult<PluginBox, RString> {
    let no_failure = AtomicBool::new(false);
    let result = guard("init", &no_failure, || -> Result<PluginBox, String> {
        let host = Host(Arc::new(host));
        // A dynamically loaded plugin has its own copy of `tracing`: route it
        // to the host. In a bundled build the host's subscriber is already the
        // global one and this fails harmlessly.
        let _ =
            tracing::subscriber::set_global_default(crate::log::Forwarder::new(host.raw().clone()));
        let config: serde_json::Value =
            serde_json::from_str(config.as_str()).unwrap_or(serde_json::Value::Null);
        let threads = config
            .get("worker_threads")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .clamp(1, 64) as usize;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(format!("{name}-rt"))
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let ctx = InitContext {
            host,
            config,
            runtime: runtime.handle().clone(),
        };
        let inner = P::init(ctx)?;
        Ok(PluginBox::from_value(
            GuardedPlugin {
                inner,
                failed: AtomicBool::new(false),
                runtime: std::sync::Mutex::new(Some(runtime)),
            },
            TD_Opaque,
        ))
    });
    match result {
        Some(Ok(p)) => ROk(p),
        Some(Err(e)) => RErr(RString::from(e)),
        None => RErr(RString::from("panic during init")),
    }
}

/// Declares a plugin: generates `pub fn module() -> PluginRoot_Ref` for the
/// module, used by the bundled build and by [`export_plugin!`](crate::export_plugin).
///
/// ```
/// use camrouter_plugin_api::sdk::{InitContext, Plugin};
///
/// struct Hello;
///
/// impl Plugin for Hello {
///     fn init(_ctx: InitContext) -> Result<Self, String> {
///         Ok(Hello)
///     }
/// }
///
/// camrouter_plugin_api::declare_plugin!("hello", Hello);
///
/// fn main() {
///     assert_eq!((module().name())().as_str(), "hello");
/// }
/// ```
#[macro_export]
macro_rules! declare_plugin {
    ($name:literal, $ty:ty) => {
        /// The module's root, for the host's bundled build and the cdylib wrapper.
        pub fn module() -> $crate::abi::PluginRoot_Ref {
            extern "C" fn __name() -> $crate::reexports::RStr<'static> {
                $crate::reexports::RStr::from_str($name)
            }
            extern "C" fn __version() -> $crate::reexports::RStr<'static> {
                $crate::reexports::RStr::from_str(env!("CARGO_PKG_VERSION"))
            }
            extern "C" fn __init(
                host: $crate::abi::HostBox,
                config: $crate::reexports::RString,
            ) -> $crate::reexports::RResult<$crate::abi::PluginBox, $crate::reexports::RString>
            {
                $crate::sdk::init_plugin::<$ty>($name, host, config)
            }
            use $crate::reexports::PrefixTypeTrait;
            $crate::abi::PluginRoot {
                name: __name,
                version: __version,
                init: __init,
            }
            .leak_into_prefix()
        }
    };
}

/// Exports a declared plugin from a cdylib (`libcamrouter_plugin_<name>.so`).
/// Lives in a separate one-line crate per plugin, because the exported symbol
/// is fixed and two of them cannot be linked into one (bundled) binary.
#[macro_export]
macro_rules! export_plugin {
    ($module:path) => {
        #[$crate::reexports::export_root_module]
        pub fn camrouter_root_module() -> $crate::abi::PluginRoot_Ref {
            $module()
        }
    };
}
