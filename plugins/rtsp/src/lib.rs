//! RTSP for camrouter.
//!
//! For now this crate holds only the sans-IO protocol core in [`proto`]: RTSP/1.0 messages,
//! the TCP stream decoder (messages mixed with `$` interleaved frames), authentication,
//! header parsers, URL handling and client / server state machines. Nothing here does I/O
//! or reads a clock: bytes and the current time are passed in, bytes and events come out.
//! The plugin glue (sockets, RTP, SDP, the camrouter plugin ABI) is built on top of it.

pub mod proto;
