//! The ABI contract. Everything here crosses the host/plugin boundary, so only
//! `abi_stable` types are used. Changing anything in this file is an ABI change:
//! bump the minor version of this crate (host and plugins must share `0.MINOR`).
#![allow(non_camel_case_types, non_local_definitions)] // abi_stable generates `Trait_TO` / `Root_Ref` names

use std::sync::atomic::AtomicU64;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    StableAbi,
};

/// Media kind, as go2rtc names it in `medias` strings.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

/// Direction from the point of view of the side that *describes* the media,
/// following go2rtc: a producer's `recvonly` media is one consumers can receive,
/// a producer's `sendonly` media accepts data (a camera speaker: backchannel).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    RecvOnly,
    SendOnly,
}

/// One codec with the parameters a consumer needs to set up its output.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub struct Codec {
    /// go2rtc codec name: H264, H265, JPEG, MPEG4-GENERIC, OPUS, PCMA, PCMU, L16, PCML, ...
    pub name: RString,
    pub clock_rate: u32,
    pub channels: u16,
    /// RTP payload type when the codec came from SDP (0 when unknown).
    pub payload_type: u8,
    /// SDP fmtp line content when known.
    pub fmtp: RString,
    /// H.264/H.265: parameter sets as 4-byte length-prefixed NAL units; AAC: AudioSpecificConfig.
    pub extradata: RVec<u8>,
    pub width: u32,
    pub height: u32,
    pub profile: RString,
    pub level: RString,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    pub direction: Direction,
    pub codecs: RVec<Codec>,
}

/// Packet flags.
pub const FLAG_KEYFRAME: u32 = 1;
pub const FLAG_DISCONTINUITY: u32 = 2;

/// One frame (access unit) in the canonical form of its codec (DESIGN.md §4).
/// The payload is reference counted: fan-out clones the `RArc`, never the bytes.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Packet {
    /// Index into the producer's (or the negotiated consumer's) media list.
    pub track: u32,
    pub flags: u32,
    /// Presentation time in the codec's clock rate.
    pub pts: i64,
    pub dts: i64,
    /// Monotonic microseconds when the frame arrived from the network.
    pub received_at_us: u64,
    pub payload: RArc<RVec<u8>>,
}

impl Packet {
    pub fn is_keyframe(&self) -> bool {
        self.flags & FLAG_KEYFRAME != 0
    }
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Counters of one connected client (see `HostApi::add_client`), shared by the
/// plugin that adds to them and the host that reads them: counting is a
/// relaxed atomic add in the plugin, never a call across the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Default)]
pub struct ClientCounters {
    /// Bytes written to the client (payload and framing, as sent).
    pub bytes: AtomicU64,
    /// Packets written (RTP packets, fMP4 fragments, ...: the format's unit).
    pub packets: AtomicU64,
    /// Frames skipped because the client was too slow.
    pub dropped: AtomicU64,
}

/// Result of a non-blocking send towards a client.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    Ok,
    /// The client is slow: the queue is full and the data was not taken.
    Full,
    /// The client is gone.
    Closed,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct HttpRequest {
    pub method: RString,
    /// Path without the API's `base_path`, e.g. `/api/frame.jpeg`.
    pub path: RString,
    /// Raw query string without `?`.
    pub query: RString,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
    pub remote_addr: RString,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.0.as_str().eq_ignore_ascii_case(name))
            .map(|h| h.1.as_str())
    }
}

pub type Headers = RVec<Tuple2<RString, RString>>;

/// The host's services, given to a plugin at init.
#[sabi_trait]
pub trait HostApi: Send + Sync {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
    /// Lets a plugin skip formatting events nobody will see.
    fn log_enabled(&self, level: LogLevel, target: RStr<'_>) -> bool;
    /// Attaches a consumer to a stream. `query` uses go2rtc's filters
    /// (`video`, `audio=all`, `microphone`, ...). `info` is a JSON object with
    /// `format_name`, `protocol`, `remote_addr`, `user_agent`. The outcome comes
    /// later through `Consumer::attached` or `Consumer::failed`. Returns the
    /// consumer id used by `remove_consumer` and `consumer_send`.
    /// With `"wait_publisher_ms": N` in `info`, a stream that has no producer
    /// yet waits up to N ms for one to be added (ingest) before failing.
    fn add_consumer(
        &self,
        stream: RStr<'_>,
        query: RStr<'_>,
        info: RString,
        consumer: ConsumerBox,
    ) -> u64;
    fn remove_consumer(&self, id: u64);
    /// Sends a packet from a consumer's `sendonly` media (a browser microphone)
    /// to the producer that accepted it (backchannel).
    fn consumer_send(&self, id: u64, track: u32, packet: &Packet);
    /// Attaches a passive producer (ingest: RTSP RECORD, WHIP, POST stream.ts) to
    /// an existing stream. The returned events object is how the plugin feeds it.
    fn add_producer(
        &self,
        stream: RStr<'_>,
        info: RString,
        source: SourceBox,
    ) -> RResult<SourceEventsBox, RString>;
    /// Registers one connected client of consumer `consumer` (from
    /// `add_consumer`). Every client is listed as its own consumer in
    /// `/api/streams` and counted in metrics, also where several clients
    /// share one graph consumer (the RTSP server's feed, an HLS muxer); a
    /// consumer that registers no client is listed as itself. `info` is a
    /// JSON object (`format_name`, `protocol`, `remote_addr`, `user_agent`,
    /// optionally `tracks`: the consumer's track indexes this client plays)
    /// overriding the consumer's. The plugin adds to `counters`; the host
    /// only reads them. Returns the client id for `update_client` and
    /// `remove_client`; the client also ends with its consumer.
    fn add_client(&self, consumer: u64, info: RString, counters: RArc<ClientCounters>) -> u64;
    /// Merges a JSON object into the client's info (`tracks` once it is known).
    fn update_client(&self, client: u64, info: RString);
    fn remove_client(&self, client: u64);
    fn stream_exists(&self, name: RStr<'_>) -> bool;
    /// Creates (or replaces) a stream. `hidden` streams are internal plumbing
    /// (exec's `{output}`): not listed by the API and not saved.
    fn add_stream(&self, name: RStr<'_>, sources: RVec<RString>, hidden: bool);
    fn remove_stream(&self, name: RStr<'_>);
    /// Facts plugins publish for each other without knowing each other, e.g.
    /// `rtsp.internal_url` = `rtsp://127.0.0.1:8554`.
    fn set_fact(&self, key: RStr<'_>, value: RString);
    fn fact(&self, key: RStr<'_>) -> ROption<RString>;
    /// Checks a user and password a client gave a plugin (an RTMP publisher)
    /// against the API's (`api.username`/`api.password`), for a plugin that
    /// protects what it serves with the API's credentials when auth is on.
    /// Compares in constant time; must not be used to find out the
    /// credentials (the plugin passes what the client sent, nothing else).
    fn check_api_credentials(&self, user: RStr<'_>, password: RStr<'_>) -> ApiCredentials;
    /// A viewer of consumer `id` lost video on the consumer's track `track`
    /// (a WebRTC viewer's PLI/FIR): the host asks the producers feeding that
    /// track for a keyframe (`Source::request_keyframe`). Advisory: a
    /// producer that cannot act on it ignores it, so the caller still waits
    /// for the next keyframe. Allowed wherever `consumer_send` is (also
    /// from `Consumer::packet`); the caller rate-limits (a viewer may send
    /// one per lost packet).
    fn request_keyframe(&self, id: u64, track: u32);
}

/// The outcome of `HostApi::check_api_credentials`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCredentials {
    /// The API has no username: auth is off.
    AuthOff,
    Accepted,
    Refused,
}

/// What an opened source reports to the host. Implemented by the host.
#[sabi_trait]
pub trait SourceEvents: Send + Sync {
    /// The source's medias are known (called once per connection).
    fn medias(&self, medias: RVec<Media>);
    /// One frame. Hot path: the host fans it out to consumers without copying.
    fn packet(&self, packet: &Packet);
    /// JSON object merged into the producer's stats (`remote_addr`, `pid`, ...).
    fn info(&self, info: RString);
    /// The source resolved to another URL (echo:, expr:); the host opens that one.
    fn redirect(&self, url: RString);
    /// The source ended; `reason` says why. The host may retry.
    fn closed(&self, reason: RString);
}

/// A running source. Implemented by a plugin.
#[sabi_trait]
pub trait Source: Send + Sync {
    /// Data for a `sendonly` media (backchannel audio towards the camera).
    fn send(&self, track: u32, packet: &Packet);
    /// Stop and release everything. Must not block.
    fn stop(&self);
    /// A consumer asks for a keyframe on producer track `track` (see
    /// `HostApi::request_keyframe`). Must not block; sources that cannot
    /// ask their upstream for one leave the default, which does nothing.
    fn request_keyframe(&self, _track: u32) {}
}

/// A consumer of a stream. Implemented by a plugin (RTSP session, WebRTC peer, ...).
#[sabi_trait]
pub trait Consumer: Send + Sync {
    /// Negotiation succeeded: one media per track, each with exactly one codec.
    fn attached(&self, medias: RVec<Media>);
    fn failed(&self, error: RString);
    /// `track` is the consumer's own track index (position in `attached`'s
    /// medias); `packet.track` is the producer's. Must only enqueue, never
    /// block: it runs on the producer's thread, under the host's lock of that
    /// track. From in here a plugin may call `remove_consumer` (deferred by
    /// the host), the client calls, `consumer_send` and `log`; stream and
    /// producer changes (`add_stream`, `remove_stream`, `add_producer`) must
    /// be made from another thread.
    fn packet(&self, track: u32, packet: &Packet);
    /// The stream is gone for good (deleted, or every source failed).
    fn closed(&self, reason: RString);
}

/// A streaming HTTP body.
#[sabi_trait]
pub trait BodySink: Send + Sync {
    fn try_send(&self, chunk: RVec<u8>) -> SendStatus;
    fn finish(&self);
}

/// Answers one HTTP request, once.
#[sabi_trait]
pub trait Responder: Send + Sync {
    fn respond(&self, status: u16, headers: Headers, body: RVec<u8>);
    fn stream(&self, status: u16, headers: Headers) -> BodySinkBox;
    /// For a request on a `"METHOD /path"` route (see `PluginObject::routes`):
    /// hands its body to `body` as it arrives (ingest: `POST /api/stream.ts`).
    /// Call at most once, before answering. The body is read until it ends or
    /// the plugin answers, whichever comes first: a plugin that takes a
    /// publisher's body answers after `RequestBody::end`, or earlier to cut
    /// the publisher off. A body silent for 10 s ends with an error; there
    /// is no limit on its total length or duration.
    fn read_body(&self, body: RequestBodyBox);
}

/// A streaming request body, received by a plugin. Implemented by a plugin.
#[sabi_trait]
pub trait RequestBody: Send + Sync {
    /// The next piece of the body. The host calls it from the connection's
    /// task, one piece at a time and in order, and reads the next piece only
    /// when it returns: a plugin that is slow paces the sender (TCP
    /// backpressure) and delays nobody else. Must not block on IO.
    fn data(&self, chunk: RSlice<'_, u8>);
    /// The body ended: `error` is `None` at its regular end, or why it was cut
    /// (silence, connection reset). Called once, last; not called when the
    /// plugin answered first.
    fn end(&self, error: ROption<RString>);
}

/// Sends WebSocket messages to one `/api/ws` client.
#[sabi_trait]
pub trait WsSender: Send + Sync {
    fn send_text(&self, text: RString) -> SendStatus;
    fn send_binary(&self, data: RVec<u8>) -> SendStatus;
}

/// A loaded plugin. Implemented by the SDK around the author's `Plugin`.
#[sabi_trait]
pub trait PluginObject: Send + Sync {
    /// URL schemes this plugin opens as sources (`rtsp`, `exec`, ...).
    fn schemes(&self) -> RVec<RString>;
    fn open_source(&self, url: RStr<'_>, events: SourceEventsBox) -> RResult<SourceBox, RString>;
    /// HTTP paths this plugin serves (exact paths, e.g. `/api/frame.jpeg`),
    /// any method. A route `"POST /api/stream.ts"` (method, one space, path)
    /// takes only that method and wins over another plugin's plain route of
    /// the same path; the host does not read its body (`HttpRequest::body` is
    /// empty): the plugin streams it with `Responder::read_body`.
    fn routes(&self) -> RVec<RString>;
    fn http(&self, request: HttpRequest, responder: ResponderBox);
    /// `/api/ws` message types (or prefixes ending with `*`) this plugin handles.
    fn ws_types(&self) -> RVec<RString>;
    fn ws_message(&self, conn: u64, message: RStr<'_>, sender: WsSenderBox);
    fn ws_closed(&self, conn: u64);
    /// Config keys of this module's section, for unknown-key warnings.
    fn config_keys(&self) -> RVec<RString>;
    fn shutdown(&self);
    /// Whether `url` (one of this plugin's schemes) may be used although it
    /// came from outside the config file: the HTTP API or `/api/ws`, where a
    /// client or a web page chooses it. The host calls this for every such
    /// source before it stores or opens it, and refuses the source with the
    /// error as a 400 otherwise. A plugin that turns a URL into a command line
    /// must refuse what lets the client choose arguments, read or write local
    /// files outside the directories its config allows, or load code. Sources
    /// from the config file are never checked. Must not block or start anything.
    fn check_untrusted_source(&self, url: RStr<'_>) -> RResult<(), RString>;
    /// Starts pushing stream `stream` to `url` (one of this plugin's
    /// schemes: `POST /api/streams?src=cam&dst=rtmp://…`, the config's
    /// `publish:`). The plugin attaches its own consumer to the stream
    /// (`HostApi::add_consumer`, listed in `/api/streams` as any other) and
    /// connects to the target; it returns at once, and reports the end of
    /// the publisher (the target refused or dropped it, the stream failed)
    /// through `events.closed`, once. An `Err` means it cannot publish to
    /// this URL at all (no such support, a malformed URL). The host calls
    /// `Publisher::stop` once when it no longer wants the publisher, also
    /// after `closed`; reconnecting is the host's decision, by calling this
    /// again. Must not block.
    fn publish(
        &self,
        stream: RStr<'_>,
        url: RStr<'_>,
        events: PublishEventsBox,
    ) -> RResult<PublisherBox, RString>;
}

/// What a publisher reports to the host. Implemented by the host.
#[sabi_trait]
pub trait PublishEvents: Send + Sync {
    /// The publisher ended; `reason` says why (logged, and used to choose
    /// the reconnect delay as for sources). Not called after `stop`.
    fn closed(&self, reason: RString);
}

/// A running publisher (see `PluginObject::publish`). Implemented by a plugin.
#[sabi_trait]
pub trait Publisher: Send + Sync {
    /// Disconnect from the target and leave the stream. Must not block.
    fn stop(&self);
}

pub type HostBox = HostApi_TO<'static, RArc<()>>;
pub type SourceEventsBox = SourceEvents_TO<'static, RArc<()>>;
pub type SourceBox = Source_TO<'static, RBox<()>>;
pub type ConsumerBox = Consumer_TO<'static, RArc<()>>;
pub type BodySinkBox = BodySink_TO<'static, RBox<()>>;
pub type ResponderBox = Responder_TO<'static, RBox<()>>;
pub type RequestBodyBox = RequestBody_TO<'static, RBox<()>>;
pub type WsSenderBox = WsSender_TO<'static, RArc<()>>;
pub type PluginBox = PluginObject_TO<'static, RBox<()>>;
pub type PublishEventsBox = PublishEvents_TO<'static, RArc<()>>;
pub type PublisherBox = Publisher_TO<'static, RBox<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRoot_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginRoot {
    /// The module name (`exec`): its `app.modules` entry and config section.
    pub name: extern "C" fn() -> RStr<'static>,
    pub version: extern "C" fn() -> RStr<'static>,
    /// `config` is the module's config section as JSON (`null` when absent).
    #[sabi(last_prefix_field)]
    pub init: extern "C" fn(host: HostBox, config: RString) -> RResult<PluginBox, RString>,
}

impl RootModule for PluginRoot_Ref {
    declare_root_module_statics! {PluginRoot_Ref}
    const BASE_NAME: &'static str = "camrouter_plugin";
    const NAME: &'static str = "camrouter_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
