//! Sans-IO RTSP/1.0 protocol core (RFC 2326).
//!
//! * [`message`]: requests, responses, headers; parse and serialize.
//! * [`codec`]: the TCP stream [`Decoder`](codec::Decoder) (messages mixed with `$` interleaved
//!   frames, any chunking, resync after garbage) and [`encode_interleaved`](codec::encode_interleaved).
//! * [`auth`]: Basic and Digest (MD5, MD5-sess, SHA-256, qop=auth), client and server side.
//! * [`transport`]: `Transport`, `Session`, `RTP-Info`, `Range`, `Public` headers.
//! * [`url`]: RTSP URLs, credentials, control attribute joining.
//! * [`client`]: the play / record client session state machine.
//! * [`server`]: helpers for answering requests on the server side.
//!
//! All parsers treat their input as untrusted: they return typed errors, never panic, and
//! buffer a bounded amount of data (see [`codec::Limits`]).

// Shared with the HTTP source (same RFCs), so it lives in the plugin API.
pub use camrouter_plugin_api::auth;
pub mod client;
pub mod codec;
pub mod message;
pub mod server;
pub mod transport;
pub mod url;

pub use codec::{encode_interleaved, DecodeError, Decoder, Item, Limits};
pub use message::{Headers, Method, Request, Response};
