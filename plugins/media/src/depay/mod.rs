//! RTP depacketizers: RTP packets in, whole frames out (sans-IO).
//!
//! Every depacketizer has the same shape: [`push`](Depacketizer::push) a
//! parsed packet, then [`pop`](Depacketizer::pop) frames until `None`.
//! Sequence gaps drop the partial frame and set
//! [`RtpFrame::discontinuity`] on the next frame; late/duplicate packets are
//! ignored (there is no reordering buffer). `push` errors describe a
//! malformed packet; the depacketizer has already recovered and can be fed
//! the next packet.

mod aac;
mod audio;
mod common;
mod h26x;
mod jpeg;

pub use aac::{AacHbrDepacketizer, AacHbrParams, LatmDepacketizer};
pub use audio::PassthroughDepacketizer;
pub use h26x::H26xDepacketizer;
pub use jpeg::JpegDepacketizer;

use crate::codec::CodecName;
use crate::error::{Error, Result};
use crate::rtp::RtpPacket;
use crate::sdp::SdpFormat;

/// Frames (access units, images) larger than this are dropped.
pub const MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;

/// One frame in the crate's canonical form (see the crate README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFrame {
    /// H.264/H.265: 4-byte length-prefixed NAL units. JPEG: a whole JFIF
    /// image. AAC: one raw access unit. Opus: one packet. G.711/L16/G.722:
    /// the samples as sent.
    pub data: Vec<u8>,
    /// RTP timestamp of the frame (for AAC AUs after the first in a packet:
    /// the packet timestamp plus 1024 per preceding AU).
    pub timestamp: u32,
    /// Random access point: IDR (H.264), IRAP (H.265); always true for
    /// JPEG and audio.
    pub keyframe: bool,
    /// Packets were lost (or a frame dropped) between the previous frame
    /// and this one.
    pub discontinuity: bool,
}

/// Any of the depacketizers, chosen from an SDP format.
#[derive(Debug, Clone)]
pub enum Depacketizer {
    /// H.264 (RFC 6184) or H.265 (RFC 7798).
    H26x(H26xDepacketizer),
    /// JPEG (RFC 2435).
    Jpeg(JpegDepacketizer),
    /// AAC in mpeg4-generic (RFC 3640).
    AacHbr(AacHbrDepacketizer),
    /// AAC in MP4A-LATM (RFC 6416).
    Latm(LatmDepacketizer),
    /// One frame per packet: Opus, G.711, L16, G.722.
    Passthrough(PassthroughDepacketizer),
}

impl Depacketizer {
    /// Pick a depacketizer for an SDP format (`codec` is the upper-case
    /// encoding name). H.264/H.265 parameter sets from `sprop-*` are
    /// preloaded.
    pub fn for_format(format: &SdpFormat) -> Result<Depacketizer> {
        Ok(match format.codec.as_str() {
            "H264" | "H265" => {
                let name = if format.codec == "H264" {
                    CodecName::H264
                } else {
                    CodecName::H265
                };
                let mut d = H26xDepacketizer::new(name)?;
                if let Some(info) = &format.info {
                    d.set_parameter_sets(&info.extradata);
                }
                Depacketizer::H26x(d)
            }
            "JPEG" => Depacketizer::Jpeg(JpegDepacketizer::new()),
            "MPEG4-GENERIC" => Depacketizer::AacHbr(AacHbrDepacketizer::new(
                AacHbrParams::from_fmtp(&format.fmtp)?,
            )),
            "MP4A-LATM" => Depacketizer::Latm(LatmDepacketizer::new()),
            "OPUS" | "PCMA" | "PCMU" | "L16" | "G722" => {
                Depacketizer::Passthrough(PassthroughDepacketizer::new())
            }
            other => return Err(Error::unsupported("RTP payload format", other.to_string())),
        })
    }

    /// Feed one packet.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self {
            Depacketizer::H26x(d) => d.push(pkt),
            Depacketizer::Jpeg(d) => d.push(pkt),
            Depacketizer::AacHbr(d) => d.push(pkt),
            Depacketizer::Latm(d) => d.push(pkt),
            Depacketizer::Passthrough(d) => d.push(pkt),
        }
    }

    /// Next complete frame.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        match self {
            Depacketizer::H26x(d) => d.pop(),
            Depacketizer::Jpeg(d) => d.pop(),
            Depacketizer::AacHbr(d) => d.pop(),
            Depacketizer::Latm(d) => d.pop(),
            Depacketizer::Passthrough(d) => d.pop(),
        }
    }

    /// Packets counted as lost from sequence gaps so far.
    pub fn lost_packets(&self) -> u64 {
        match self {
            Depacketizer::H26x(d) => d.lost_packets(),
            Depacketizer::Jpeg(d) => d.lost_packets(),
            Depacketizer::AacHbr(d) => d.lost_packets(),
            Depacketizer::Latm(d) => d.lost_packets(),
            Depacketizer::Passthrough(d) => d.lost_packets(),
        }
    }
}
