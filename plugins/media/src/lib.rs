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
pub mod av1;
mod b64;
pub mod bits;
pub mod codec;
pub mod depay;
pub mod detect;
pub mod error;
pub mod flac;
pub mod flv;
pub mod fmp4;
pub mod fmp4_demux;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod jpeg_huffman;
mod jpeg_segment;
pub mod mjpeg;
pub mod mpegts;
pub mod mpegts_mux;
pub mod pay;
pub mod pipe;
pub mod resample;
pub mod rfc2435;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod wav;
pub mod y4m;

pub use codec::{CodecInfo, CodecName, MediaKind};
pub use depay::{Depacketizer, RtpFrame};
pub use error::{Error, Result};
pub use pay::{Framing, Packetizer, RtpPackets};
pub use pipe::{Frame, PipeDemuxer, PipeEvent};
pub use rtp::{RtpHeader, RtpPacket};
pub use sdp::Session;
