//! camrouter's plugin API: the ABI contract ([`abi`]) and the SDK ([`sdk`]).
//!
//! A plugin is a crate that implements [`sdk::Plugin`] and calls
//! [`declare_plugin!`]; a one-line cdylib crate calls [`export_plugin!`] to make
//! the loadable `libcamrouter_plugin_<module>.so`.

pub mod abi;
#[cfg(feature = "auth")]
pub mod auth;
pub mod cmd;
pub mod conn;
pub mod gop;
pub mod log;
#[cfg(feature = "media")]
pub mod media;
#[cfg(feature = "media")]
pub mod muxed;
pub mod queue;
pub mod sdk;
pub mod secret;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;

pub use abi::{Codec, Direction, Media, MediaKind, Packet, FLAG_DISCONTINUITY, FLAG_KEYFRAME};
pub use sdk::{Host, InitContext, Plugin, Responder, SourceEvents, WsSender};

/// Items the macros need; not part of the API.
#[doc(hidden)]
pub mod reexports {
    pub use abi_stable::export_root_module;
    pub use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::std_types::{RResult, RStr, RString};
}

pub use abi_stable::std_types::{RArc, RStr, RString, RVec};
