//! JPEG depacketizer (RFC 2435): rebuilds a complete JFIF image from the
//! RTP/JPEG header, the optional restart and quantization table headers,
//! and the scan data fragments.

use super::common::{DepayState, SeqCheck};
use super::{RtpFrame, MAX_FRAME_SIZE};
use crate::error::{Error, Result};
use crate::rfc2435::{default_qtables, make_headers, JpegParams};
use crate::rtp::RtpPacket;

/// Images not popped beyond this are dropped (oldest first).
const MAX_QUEUE: usize = 64;

/// Image being assembled.
#[derive(Debug, Clone)]
struct Building {
    ts: u32,
    data: Vec<u8>,
    next_offset: usize,
}

/// Depacketizer for RTP/JPEG. Types 0/1 (and 64/65 with restart markers)
/// are supported, which is what cameras and ffmpeg send.
#[derive(Debug, Clone, Default)]
pub struct JpegDepacketizer {
    state: DepayState<MAX_QUEUE>,
    frame: Option<Building>,
    /// Tables last received in-band for Q 128..=254 (RFC 2435 4.2: they may
    /// be omitted from later frames).
    cached: Vec<(u8, u8, Vec<u8>)>,
}

/// Fields of the main header (RFC 2435 3.1).
struct MainHeader {
    offset: usize,
    kind: u8,
    q: u8,
    width: u16,
    height: u16,
}

impl JpegDepacketizer {
    /// New depacketizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.state.lost_packets()
    }

    /// Next complete image.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.state.pop()
    }

    fn drop_frame(&mut self) {
        if self.frame.take().is_some() {
            self.state.set_discontinuity();
        }
    }

    /// Feed one packet.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self.state.check(pkt.sequence) {
            SeqCheck::Stale => return Ok(()),
            SeqCheck::Gap => self.frame = None,
            SeqCheck::InOrder => {}
        }
        if self.frame.as_ref().is_some_and(|f| f.ts != pkt.timestamp) {
            // The marker packet of the previous image never came.
            self.drop_frame();
        }
        match self.push_inner(pkt) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.drop_frame();
                Err(e)
            }
        }
    }

    fn push_inner(&mut self, pkt: &RtpPacket) -> Result<()> {
        let (h, mut rest) = pkt
            .payload
            .split_first_chunk::<8>()
            .ok_or(Error::Truncated("RTP/JPEG header"))?;
        let hdr = MainHeader {
            offset: (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]),
            kind: h[4],
            q: h[5],
            width: u16::from(h[6]) * 8,
            height: u16::from(h[7]) * 8,
        };
        let mut restart_interval = 0;
        if (64..=127).contains(&hdr.kind) {
            // 3.1.7: restart marker header.
            let (r, after) = rest
                .split_first_chunk::<4>()
                .ok_or(Error::Truncated("RTP/JPEG restart header"))?;
            restart_interval = u16::from_be_bytes([r[0], r[1]]);
            rest = after;
        }
        let kind = hdr.kind & 0x3F;
        if hdr.kind >= 128 || kind > 1 {
            return Err(Error::unsupported("RTP/JPEG", format!("type {}", hdr.kind)));
        }
        if hdr.offset != 0 {
            let Some(frame) = &mut self.frame else {
                return Ok(()); // waiting for the first fragment
            };
            if frame.next_offset != hdr.offset {
                self.drop_frame();
                return Ok(());
            }
            frame.data.extend_from_slice(rest);
            frame.next_offset += rest.len();
            if frame.data.len() > MAX_FRAME_SIZE {
                return Err(Error::invalid("RTP/JPEG", "image too large"));
            }
        } else {
            if self.frame.is_some() {
                self.drop_frame();
            }
            if hdr.width == 0 || hdr.height == 0 {
                return Err(Error::unsupported("RTP/JPEG", "zero width or height"));
            }
            let (qtables, precision, scan) = self.qtables(hdr.q, rest)?;
            let mut data = make_headers(&JpegParams {
                kind,
                width: hdr.width,
                height: hdr.height,
                restart_interval,
                qtables,
                precision,
            });
            data.extend_from_slice(scan);
            self.frame = Some(Building {
                ts: pkt.timestamp,
                data,
                next_offset: scan.len(),
            });
        }
        if pkt.marker {
            if let Some(mut f) = self.frame.take() {
                if !f.data.ends_with(&[0xFF, 0xD9]) {
                    f.data.extend_from_slice(&[0xFF, 0xD9]);
                }
                self.state.emit(f.data, f.ts, true);
            }
        }
        Ok(())
    }

    /// Tables for the first packet of an image; returns (tables, precision
    /// bits, rest of the payload).
    fn qtables<'p>(&mut self, q: u8, rest: &'p [u8]) -> Result<(Vec<u8>, u8, &'p [u8])> {
        if q < 128 {
            return Ok((default_qtables(q), 0, rest));
        }
        // 3.1.8: MBZ(8) Precision(8) Length(16) then the tables.
        let (h, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(Error::Truncated("RTP/JPEG quantization header"))?;
        let precision = h[1];
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let (tables, rest) = rest
            .split_at_checked(len)
            .ok_or(Error::Truncated("RTP/JPEG quantization tables"))?;
        if len == 0 {
            if q == 255 {
                return Err(Error::invalid("RTP/JPEG", "Q=255 without tables"));
            }
            let (_, p, t) = self
                .cached
                .iter()
                .find(|c| c.0 == q)
                .ok_or(Error::invalid("RTP/JPEG", "tables omitted and not cached"))?;
            return Ok((t.clone(), *p, rest));
        }
        // The length must cover whole tables (64 bytes, 128 with the
        // precision bit), one to four of them.
        let mut need = 0;
        let mut count = 0;
        while need < len && count < 4 {
            need += if precision & (1 << count) != 0 {
                128
            } else {
                64
            };
            count += 1;
        }
        if need != len {
            return Err(Error::invalid(
                "RTP/JPEG",
                format!("quantization table length {len}"),
            ));
        }
        if q != 255 {
            self.cached.retain(|c| c.0 != q);
            if self.cached.len() >= 16 {
                self.cached.remove(0);
            }
            self.cached.push((q, precision, tables.to_vec()));
        }
        Ok((tables.to_vec(), precision, rest))
    }
}
