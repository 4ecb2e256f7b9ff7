//! `ffmpeg:` source, pure logic: turns a go2rtc-style `ffmpeg:` URL
//! (`ffmpeg:{input}#video=h264#audio=opus…`) into an ffmpeg argv
//! ([`args::build`]), from templates that the `ffmpeg:` config section can
//! override ([`args::Templates`]), and picks a hardware encoder
//! ([`hardware::choose`], [`hardware::detect`]).
//!
//! Sources from the API are checked by [`untrusted::check`] first.
//!
//! The plugin ([`source`]) redirects an `ffmpeg:` source to an `exec:` source
//! running that command. See README.md for URL formats, `#params` and config keys.

pub mod args;
mod discovery;
pub mod hardware;
mod source;
pub mod untrusted;

pub use source::Ffmpeg;

camrouter_plugin_api::declare_plugin!("ffmpeg", Ffmpeg);
