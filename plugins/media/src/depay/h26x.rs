//! H.264 (RFC 6184) and H.265 (RFC 7798) depacketizer.
//!
//! Supported: single NAL unit packets, STAP-A / AP aggregation, FU-A / FU
//! fragmentation (non-interleaved mode; H.265 without DONL, i.e.
//! sprop-max-don-diff=0). Access units end at the marker bit or when the
//! timestamp changes (some cameras never set the marker). AUDs are removed;
//! parameter sets seen in-band or given via [`set_parameter_sets`] are
//! prepended to keyframes that lack them. NALs that arrive without any
//! slice (e.g. SPS/PPS sent with their own timestamp or marker) are carried
//! into the next access unit.
//!
//! [`set_parameter_sets`]: H26xDepacketizer::set_parameter_sets

use super::common::{DepayState, SeqCheck};
use super::{RtpFrame, MAX_FRAME_SIZE};
use crate::annexb::{avcc_units, push_length_prefixed};
use crate::codec::CodecName;
use crate::error::{Error, Result};
use crate::rtp::RtpPacket;
use crate::{h264, h265};

/// Carried parameter-set-only data beyond this is discarded.
const MAX_CARRY: usize = 1024 * 1024;

/// Parameter-set slots: VPS, SPS, PPS.
const VPS: usize = 0;
const SPS: usize = 1;
const PPS: usize = 2;

/// Depacketizer for H.264 or H.265. See the module docs.
#[derive(Debug, Clone)]
pub struct H26xDepacketizer {
    hevc: bool,
    /// The output queue is unbounded.
    state: DepayState<{ usize::MAX }>,
    /// Access unit being built, length-prefixed.
    au: Vec<u8>,
    au_ts: u32,
    au_vcl: bool,
    au_key: bool,
    au_has: [bool; 3],
    /// NAL being reassembled from fragments.
    fu: Option<Vec<u8>>,
    fu_ts: u32,
    /// Drop packets with this timestamp (the access unit lost a packet).
    skip_ts: Option<u32>,
    last_ts: Option<u32>,
    params: [Option<Vec<u8>>; 3],
}

impl H26xDepacketizer {
    /// New depacketizer for `CodecName::H264` or `CodecName::H265`.
    pub fn new(codec: CodecName) -> Result<Self> {
        let hevc = match codec {
            CodecName::H264 => false,
            CodecName::H265 => true,
            other => {
                return Err(Error::unsupported(
                    "H.26x depacketizer",
                    other.go2rtc_name().to_string(),
                ))
            }
        };
        Ok(Self {
            hevc,
            state: DepayState::default(),
            au: Vec::new(),
            au_ts: 0,
            au_vcl: false,
            au_key: false,
            au_has: [false; 3],
            fu: None,
            fu_ts: 0,
            skip_ts: None,
            last_ts: None,
            params: [None, None, None],
        })
    }

    /// Preload parameter sets (e.g. from SDP `sprop-*`), given as 4-byte
    /// length-prefixed NAL units like `CodecInfo::extradata`. Malformed
    /// input is ignored.
    pub fn set_parameter_sets(&mut self, extradata: &[u8]) {
        for nal in avcc_units(extradata).map_while(|r| r.ok()) {
            if let Some(slot) = self.param_slot(nal) {
                self.params[slot] = Some(nal.to_vec());
            }
        }
    }

    /// Latest SPS seen (SDP or in-band).
    pub fn sps(&self) -> Option<&[u8]> {
        self.params[SPS].as_deref()
    }

    /// Latest PPS seen.
    pub fn pps(&self) -> Option<&[u8]> {
        self.params[PPS].as_deref()
    }

    /// Latest VPS seen (H.265 only).
    pub fn vps(&self) -> Option<&[u8]> {
        self.params[VPS].as_deref()
    }

    /// Packets counted as lost from sequence gaps.
    pub fn lost_packets(&self) -> u64 {
        self.state.lost_packets()
    }

    /// Next complete access unit.
    pub fn pop(&mut self) -> Option<RtpFrame> {
        self.state.pop()
    }

    /// Feed one packet.
    pub fn push(&mut self, pkt: &RtpPacket) -> Result<()> {
        match self.state.check(pkt.sequence) {
            SeqCheck::Stale => return Ok(()),
            SeqCheck::Gap => self.on_loss(pkt),
            SeqCheck::InOrder => {}
        }
        if let Some(ts) = self.skip_ts {
            if ts == pkt.timestamp {
                self.last_ts = Some(ts);
                return Ok(());
            }
            self.skip_ts = None;
        }
        if self.au_vcl && self.au_ts != pkt.timestamp {
            self.flush();
        }
        if self.fu.is_some() && self.fu_ts != pkt.timestamp {
            // The end fragment never came; the NAL is unusable.
            self.fu = None;
        }
        let result = self.depacketize(pkt.payload, pkt.timestamp);
        self.au_ts = pkt.timestamp;
        self.last_ts = Some(pkt.timestamp);
        if let Err(e) = result {
            self.drop_au(pkt.timestamp);
            return Err(e);
        }
        if pkt.marker {
            self.flush();
        }
        Ok(())
    }

    fn nal_type(&self, nal: &[u8]) -> u8 {
        if self.hevc {
            h265::nal_type_of(nal)
        } else {
            h264::nal_type_of(nal)
        }
    }

    fn param_slot(&self, nal: &[u8]) -> Option<usize> {
        let t = self.nal_type(nal);
        match (self.hevc, t) {
            (false, h264::nal_type::SPS) | (true, h265::nal_type::SPS) => Some(SPS),
            (false, h264::nal_type::PPS) | (true, h265::nal_type::PPS) => Some(PPS),
            (true, h265::nal_type::VPS) => Some(VPS),
            _ => None,
        }
    }

    /// After a gap (already counted and marked as a discontinuity): drop
    /// partial data, and keep dropping the current access unit unless this
    /// packet visibly starts a new one.
    fn on_loss(&mut self, pkt: &RtpPacket) {
        self.clear_au();
        self.fu = None;
        let new_ts = self.last_ts != Some(pkt.timestamp);
        if !(new_ts && self.starts_au(pkt.payload)) {
            self.skip_ts = Some(pkt.timestamp);
        }
    }

    fn drop_au(&mut self, ts: u32) {
        self.clear_au();
        self.fu = None;
        self.state.set_discontinuity();
        self.skip_ts = Some(ts);
    }

    fn clear_au(&mut self) {
        self.au.clear();
        self.au_vcl = false;
        self.au_key = false;
        self.au_has = [false; 3];
    }

    /// Whether a payload begins an access unit: a non-slice NAL, or a slice
    /// with first_mb_in_slice = 0 (H.264 7.4.3) /
    /// first_slice_segment_in_pic_flag (H.265 7.4.7.1).
    fn starts_au(&self, payload: &[u8]) -> bool {
        let Some(&h0) = payload.first() else {
            return false;
        };
        if self.hevc {
            let t = (h0 >> 1) & 0x3F;
            match t {
                0..=31 => h265::first_slice_segment_in_pic(payload).unwrap_or(false),
                32..=47 => true,
                48 => payload
                    .get(2..4)
                    .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
                    .and_then(|n| payload.get(4..4 + n))
                    .is_some_and(|nal| self.starts_au(nal)),
                49 => match payload.get(2) {
                    Some(&fuh) if fuh & 0x80 != 0 => {
                        fuh & 0x3F >= 32
                            || h265::first_slice_segment_in_pic(&payload[1..]).unwrap_or(false)
                    }
                    _ => false,
                },
                _ => false,
            }
        } else {
            match h0 & 0x1F {
                1..=5 => h264::first_mb_in_slice(payload).is_ok_and(|mb| mb == 0),
                6..=23 => true,
                24 => payload
                    .get(1..3)
                    .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
                    .and_then(|n| payload.get(3..3 + n))
                    .is_some_and(|nal| self.starts_au(nal)),
                28 => match payload.get(1) {
                    Some(&fuh) if fuh & 0x80 != 0 => {
                        !h264::is_vcl(fuh & 0x1F)
                            || h264::first_mb_in_slice(&payload[1..]).is_ok_and(|mb| mb == 0)
                    }
                    _ => false,
                },
                _ => false,
            }
        }
    }

    fn depacketize(&mut self, payload: &[u8], ts: u32) -> Result<()> {
        let Some(&h0) = payload.first() else {
            return Ok(()); // empty payload (keep-alive): nothing to do
        };
        if self.hevc {
            // RFC 7798 1.1.4: two-byte PayloadHdr, type in bits 1..6.
            let &h1 = payload
                .get(1)
                .ok_or(Error::Truncated("H.265 payload header"))?;
            match (h0 >> 1) & 0x3F {
                0..=47 => self.add_nal(payload),
                48 => self.aggregate(payload.get(2..).unwrap_or(&[])),
                49 => {
                    // 4.4.3: FU header S(1) E(1) FuType(6).
                    let &fuh = payload.get(2).ok_or(Error::Truncated("H.265 FU header"))?;
                    let header = [(h0 & 0x81) | ((fuh & 0x3F) << 1), h1];
                    self.fragment(&header, fuh, payload.get(3..).unwrap_or(&[]), ts)
                }
                t => Err(Error::unsupported(
                    "H.265 RTP payload",
                    format!("packet type {t} (PACI or reserved)"),
                )),
            }
        } else {
            match h0 & 0x1F {
                1..=23 => self.add_nal(payload),
                // RFC 6184 5.7.1: STAP-A = header byte, then size(16) + NAL.
                24 => self.aggregate(payload.get(1..).unwrap_or(&[])),
                28 => {
                    // 5.8: FU indicator (F, NRI, 28) + FU header S E R Type.
                    let &fuh = payload.get(1).ok_or(Error::Truncated("H.264 FU header"))?;
                    let header = [(h0 & 0xE0) | (fuh & 0x1F)];
                    self.fragment(&header, fuh, payload.get(2..).unwrap_or(&[]), ts)
                }
                t => Err(Error::unsupported(
                    "H.264 RTP payload",
                    format!("packet type {t} (interleaved mode or reserved)"),
                )),
            }
        }
    }

    /// STAP-A / AP body: repeated 16-bit size + NAL unit.
    fn aggregate(&mut self, mut rest: &[u8]) -> Result<()> {
        while !rest.is_empty() {
            let (size, after) = rest
                .split_first_chunk::<2>()
                .ok_or(Error::Truncated("aggregation packet NAL size"))?;
            let (nal, after) = after
                .split_at_checked(usize::from(u16::from_be_bytes(*size)))
                .ok_or(Error::Truncated("aggregation packet NAL"))?;
            self.add_nal(nal)?;
            rest = after;
        }
        Ok(())
    }

    /// FU-A / FU: `fuh` has S in bit 7 and E in bit 6.
    fn fragment(&mut self, header: &[u8], fuh: u8, data: &[u8], ts: u32) -> Result<()> {
        let (start, end) = (fuh & 0x80 != 0, fuh & 0x40 != 0);
        if start {
            let mut nal = Vec::with_capacity(header.len() + data.len() * 4);
            nal.extend_from_slice(header);
            nal.extend_from_slice(data);
            self.fu = Some(nal);
            self.fu_ts = ts;
        } else if let Some(nal) = &mut self.fu {
            if nal.len() + data.len() > MAX_FRAME_SIZE {
                return Err(Error::invalid("fragmented NAL", "too large"));
            }
            nal.extend_from_slice(data);
        } else {
            // Start fragment lost (or dropped with a bad packet): ignore
            // the rest of this NAL.
            return Ok(());
        }
        if end {
            if let Some(nal) = self.fu.take() {
                self.add_nal(&nal)?;
            }
        }
        Ok(())
    }

    fn add_nal(&mut self, nal: &[u8]) -> Result<()> {
        if nal.is_empty() {
            return Ok(());
        }
        let t = self.nal_type(nal);
        let (aud, vcl, key) = if self.hevc {
            (
                t == h265::nal_type::AUD,
                h265::is_vcl(t),
                h265::is_keyframe(t),
            )
        } else {
            (
                t == h264::nal_type::AUD,
                h264::is_vcl(t),
                h264::is_keyframe(t),
            )
        };
        if aud {
            return Ok(());
        }
        if self.au.len() + nal.len() + 4 > MAX_FRAME_SIZE {
            return Err(Error::invalid("access unit", "too large"));
        }
        if let Some(slot) = self.param_slot(nal) {
            self.params[slot] = Some(nal.to_vec());
            self.au_has[slot] = true;
        }
        self.au_vcl |= vcl;
        self.au_key |= key;
        push_length_prefixed(&mut self.au, nal);
        Ok(())
    }

    /// End of access unit: emit it, or carry slice-less NALs forward.
    fn flush(&mut self) {
        self.fu = None;
        if !self.au_vcl {
            if self.au.len() > MAX_CARRY {
                self.clear_au();
            }
            return;
        }
        let mut data = Vec::new();
        if self.au_key {
            let first = if self.hevc { VPS } else { SPS };
            for slot in first..=PPS {
                if let (false, Some(p)) = (self.au_has[slot], &self.params[slot]) {
                    push_length_prefixed(&mut data, p);
                }
            }
        }
        if data.is_empty() {
            data = std::mem::take(&mut self.au);
        } else {
            data.extend_from_slice(&self.au);
        }
        self.state.emit(data, self.au_ts, self.au_key);
        self.clear_au();
    }
}
