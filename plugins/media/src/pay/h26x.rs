//! H.264 (RFC 6184 5.6, 5.8) and H.265 (RFC 7798 4.4.1, 4.4.3)
//! packetization: single NAL unit packets when they fit, FU-A / FU
//! otherwise. The marker bit is set on the last packet of the access unit.

use super::{Kind, Packetizer, RtpPackets};
use crate::annexb::avcc_units;
use crate::error::{Error, Result};

impl Packetizer {
    pub(super) fn packetize_h26x(
        &mut self,
        frame: &[u8],
        timestamp: u32,
        out: &mut RtpPackets,
    ) -> Result<()> {
        let hevc = self.kind == Kind::H265;
        let header_len = if hevc { 2 } else { 1 };
        let nals = avcc_units(frame)
            .filter(|n| n.as_ref().map_or(true, |n| !n.is_empty()))
            .collect::<Result<Vec<_>>>()?;
        if nals.iter().any(|n| n.len() < header_len) {
            return Err(Error::invalid("access unit", "NAL shorter than its header"));
        }
        let count = nals.len();
        for (i, nal) in nals.into_iter().enumerate() {
            let last_nal = i + 1 == count;
            if nal.len() <= self.max_payload {
                self.emit(out, last_nal, timestamp, &[nal]);
                continue;
            }
            let (head, body) = nal.split_at(header_len);
            let (fu_head, fu_type): ([u8; 2], u8) = if hevc {
                // PayloadHdr with type 49, then FU header S E FuType(6).
                (
                    [(head[0] & 0x81) | (49 << 1), head[1]],
                    (head[0] >> 1) & 0x3F,
                )
            } else {
                // FU indicator: F NRI from the NAL, type 28.
                ([(head[0] & 0xE0) | 28, 0], head[0] & 0x1F)
            };
            let fu_head = &fu_head[..header_len];
            let chunk = self.max_payload - header_len - 1;
            let n = body.len().div_ceil(chunk);
            for (j, part) in body.chunks(chunk).enumerate() {
                let start = if j == 0 { 0x80 } else { 0 };
                let end = if j + 1 == n { 0x40 } else { 0 };
                let fuh = [start | end | fu_type];
                self.emit(
                    out,
                    last_nal && j + 1 == n,
                    timestamp,
                    &[fu_head, &fuh, part],
                );
            }
        }
        Ok(())
    }
}
