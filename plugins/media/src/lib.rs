//! Sans-IO media library: codecs, parsers and containers. No sockets, no
//! clocks, no runtime.
//!
//! The main entry point is [`pipe::PipeDemuxer`], which turns whatever a
//! child process writes to stdout (the `exec:` source) into tracks and
//! frames. The other modules are the building blocks it uses.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adts;
pub mod annexb;
pub mod au;
pub mod bits;
pub mod codec;
pub mod detect;
pub mod error;
pub mod h264;
pub mod h265;
pub mod mjpeg;
pub mod mpegts;
pub mod pipe;
pub mod wav;

pub use codec::{CodecInfo, CodecName, MediaKind};
pub use error::{Error, Result};
pub use pipe::{Frame, PipeDemuxer, PipeEvent};
