//! MPEG-2 transport stream demuxer (ISO/IEC 13818-1, "2.4.3" packet layer,
//! "2.4.4" PSI, "2.4.3.6" PES). Handles one program with H.264, H.265 and
//! AAC (ADTS) elementary streams.

use std::collections::{BTreeMap, VecDeque};

use crate::error::{Error, Result};

/// Transport packet size (2.4.3.2).
pub const PACKET_SIZE: usize = 188;
/// Transport packet sync byte.
pub const SYNC_BYTE: u8 = 0x47;

/// stream_type values (ISO/IEC 13818-1 Table 2-34 and amendments).
pub mod stream_type {
    /// ISO/IEC 13818-7 AAC with ADTS transport syntax.
    pub const AAC_ADTS: u8 = 0x0F;
    /// ITU-T H.264.
    pub const H264: u8 = 0x1B;
    /// ITU-T H.265.
    pub const H265: u8 = 0x24;
}

/// Whether this demuxer extracts a stream_type.
pub fn is_supported_stream_type(st: u8) -> bool {
    matches!(
        st,
        stream_type::AAC_ADTS | stream_type::H264 | stream_type::H265
    )
}

/// An elementary stream announced by the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsStream {
    /// Its PID.
    pub pid: u16,
    /// Its stream_type.
    pub stream_type: u8,
}

/// One reassembled PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    /// Index into the stream list of [`TsEvent::Streams`].
    pub stream: usize,
    /// Presentation time stamp, 90 kHz, 33 bits.
    pub pts: Option<i64>,
    /// Decoding time stamp, 90 kHz, 33 bits.
    pub dts: Option<i64>,
    /// Elementary stream bytes.
    pub data: Vec<u8>,
    /// Packets were lost (continuity_counter gap) while assembling this PES
    /// or right before it.
    pub discontinuity: bool,
}

/// Demuxer output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsEvent {
    /// The PMT's supported elementary streams, in PMT order (emitted once).
    Streams(Vec<TsStream>),
    /// A complete PES packet.
    Pes(Pes),
}

/// PES packets larger than this are dropped (memory guard).
pub const MAX_PES_SIZE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
struct PesBuf {
    started: bool,
    pts: Option<i64>,
    dts: Option<i64>,
    data: Vec<u8>,
    /// Payload bytes still expected when PES_packet_length is non-zero.
    remaining: Option<usize>,
    last_cc: Option<u8>,
    discontinuity: bool,
}

#[derive(Debug, Clone, Default)]
struct SectionBuf {
    data: Vec<u8>,
    started: bool,
}

/// Sans-IO transport stream demuxer.
#[derive(Debug, Clone, Default)]
pub struct TsDemuxer {
    buf: Vec<u8>,
    pmt_pid: Option<u16>,
    streams: Vec<TsStream>,
    sections: BTreeMap<u16, SectionBuf>,
    pes: BTreeMap<u16, PesBuf>,
    out: VecDeque<Result<TsEvent>>,
    resyncs: u64,
    cc_errors: u64,
}

impl TsDemuxer {
    /// New demuxer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams from the PMT (empty until it has been seen).
    pub fn streams(&self) -> &[TsStream] {
        &self.streams
    }

    /// Times the sync byte was lost and searched for.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Continuity counter gaps seen.
    pub fn continuity_errors(&self) -> u64 {
        self.cc_errors
    }

    /// Next event. Errors are non-fatal (a bad section or PES is skipped).
    pub fn pop(&mut self) -> Option<Result<TsEvent>> {
        self.out.pop_front()
    }

    /// Feed bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while let Some(packet) = self.buf.get(pos..pos + PACKET_SIZE) {
            if packet.first() == Some(&SYNC_BYTE) {
                let mut p = [0u8; PACKET_SIZE];
                p.copy_from_slice(packet);
                self.packet(&p);
                pos += PACKET_SIZE;
                continue;
            }
            // Lost sync: the next 0x47 that is followed by another 0x47 one
            // packet later (or by the end of the buffer) is the new start.
            self.resyncs += 1;
            let rest = self.buf.get(pos + 1..).unwrap_or(&[]);
            let next = rest.iter().enumerate().position(|(i, &b)| {
                b == SYNC_BYTE && rest.get(i + PACKET_SIZE).is_none_or(|&n| n == SYNC_BYTE)
            });
            pos = match next {
                Some(i) => pos + 1 + i,
                None => self.buf.len(),
            };
        }
        self.buf.drain(..pos.min(self.buf.len()));
    }

    /// End of input: PES packets without a length are complete now.
    pub fn finish(&mut self) {
        self.buf.clear();
        let pids: Vec<u16> = self.pes.keys().copied().collect();
        for pid in pids {
            self.flush_pes(pid);
        }
    }

    fn packet(&mut self, p: &[u8; PACKET_SIZE]) {
        // 2.4.3.2: transport_error_indicator set means the packet is damaged.
        if p[1] & 0x80 != 0 {
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let scrambled = p[3] >> 6 != 0;
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0F;
        if pid == 0x1FFF || scrambled {
            return;
        }
        let mut off = 4;
        let mut discontinuity_indicator = false;
        if afc & 0x02 != 0 {
            // 2.4.3.4 adaptation_field: length byte then flags.
            let len = usize::from(p[4]);
            if len > 0 {
                discontinuity_indicator = p[5] & 0x80 != 0;
            }
            off = 5 + len;
        }
        let payload: &[u8] = if afc & 0x01 != 0 {
            match p.get(off..) {
                Some(pl) => pl,
                None => return, // adaptation field overruns the packet
            }
        } else {
            &[]
        };

        if pid == 0 || Some(pid) == self.pmt_pid {
            self.section_payload(pid, pusi, payload);
        } else if self.streams.iter().any(|s| s.pid == pid) {
            if afc & 0x01 == 0 {
                return;
            }
            let buf = self.pes.entry(pid).or_default();
            // 2.4.3.3: CC increments per packet with payload; one duplicate
            // is allowed and must be ignored.
            if let Some(last) = buf.last_cc {
                if last == cc && !discontinuity_indicator {
                    return;
                }
                if (last + 1) & 0x0F != cc && !discontinuity_indicator {
                    buf.discontinuity = true;
                    self.cc_errors += 1;
                }
            }
            buf.last_cc = Some(cc);
            self.pes_payload(pid, pusi, payload);
        }
    }

    fn section_payload(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        let sec = self.sections.entry(pid).or_default();
        let mut complete = Vec::new();
        if pusi {
            // 2.4.4.2 pointer_field: bytes that finish the previous section.
            let Some((&pointer, rest)) = payload.split_first() else {
                return;
            };
            let pointer = usize::from(pointer);
            if sec.started {
                sec.data
                    .extend_from_slice(rest.get(..pointer).unwrap_or(rest));
                complete.push(std::mem::take(&mut sec.data));
            }
            sec.data = rest.get(pointer..).unwrap_or(&[]).to_vec();
            sec.started = true;
        } else if sec.started {
            sec.data.extend_from_slice(payload);
        } else {
            return;
        }
        // A section is complete once section_length bytes are present.
        if let Some(total) = section_total_len(&sec.data) {
            if sec.data.len() >= total {
                sec.data.truncate(total);
                complete.push(std::mem::take(&mut sec.data));
                sec.started = false;
            }
        }
        if sec.data.len() > 4096 {
            // 2.4.4.x: PSI sections are at most 1024 bytes.
            sec.data.clear();
            sec.started = false;
        }
        for s in complete {
            if let Some(total) = section_total_len(&s) {
                if let Some(s) = s.get(..total) {
                    if let Err(e) = self.section(pid, s) {
                        self.out.push_back(Err(e));
                    }
                }
            }
        }
    }

    fn section(&mut self, pid: u16, s: &[u8]) -> Result<()> {
        if s.len() < 12 {
            return Err(Error::Truncated("PSI section"));
        }
        if crc32_mpeg2(s) != 0 {
            return Err(Error::invalid("PSI section", "CRC mismatch"));
        }
        let table_id = s[0];
        // current_next_indicator = 0: the table is not valid yet.
        if s[5] & 0x01 == 0 {
            return Ok(());
        }
        let body = s.get(8..s.len() - 4).unwrap_or(&[]);
        match (pid, table_id) {
            (0, 0x00) => {
                // 2.4.4.3 PAT: program_number(16) reserved(3) PID(13).
                for e in body.chunks_exact(4) {
                    let program = u16::from_be_bytes([e[0], e[1]]);
                    let pmt = (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]);
                    if program != 0 {
                        if self.pmt_pid.is_none() {
                            self.pmt_pid = Some(pmt);
                        }
                        break;
                    }
                }
                Ok(())
            }
            (_, 0x02) => self.pmt(body),
            _ => Ok(()),
        }
    }

    /// 2.4.4.8 TS_program_map_section, from PCR_PID onwards.
    fn pmt(&mut self, body: &[u8]) -> Result<()> {
        if !self.streams.is_empty() {
            // Only the first PMT is used; a repeated PMT is the norm.
            return Ok(());
        }
        let info_len = body
            .get(2..4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]) & 0x0FFF))
            .ok_or(Error::Truncated("PMT"))?;
        let mut es = body.get(4 + info_len..).ok_or(Error::Truncated("PMT"))?;
        let mut streams = Vec::new();
        while let Some(e) = es.get(..5) {
            let st = e[0];
            let pid = (u16::from(e[1] & 0x1F) << 8) | u16::from(e[2]);
            let es_info_len = usize::from(u16::from_be_bytes([e[3], e[4]]) & 0x0FFF);
            if is_supported_stream_type(st) && !streams.iter().any(|s: &TsStream| s.pid == pid) {
                streams.push(TsStream {
                    pid,
                    stream_type: st,
                });
            }
            es = es.get(5 + es_info_len..).unwrap_or(&[]);
        }
        if streams.is_empty() {
            return Err(Error::unsupported("PMT", "no H.264/H.265/AAC stream"));
        }
        self.streams = streams.clone();
        self.out.push_back(Ok(TsEvent::Streams(streams)));
        Ok(())
    }

    fn pes_payload(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        if pusi {
            self.flush_pes(pid);
            let parsed = parse_pes_header(payload);
            let buf = self.pes.entry(pid).or_default();
            match parsed {
                Ok(h) => {
                    buf.started = true;
                    buf.pts = h.pts;
                    buf.dts = h.dts;
                    buf.remaining = h.payload_len;
                    buf.data.clear();
                    let body = payload.get(h.header_len..).unwrap_or(&[]);
                    append_limited(buf, body);
                }
                Err(e) => {
                    buf.started = false;
                    buf.data.clear();
                    buf.discontinuity = true;
                    self.out.push_back(Err(e));
                    return;
                }
            }
        } else {
            let buf = self.pes.entry(pid).or_default();
            if !buf.started {
                return;
            }
            append_limited(buf, payload);
        }
        if let Some(buf) = self.pes.get(&pid) {
            if buf.remaining == Some(0) {
                self.flush_pes(pid);
            }
        }
    }

    fn flush_pes(&mut self, pid: u16) {
        let Some(stream) = self.streams.iter().position(|s| s.pid == pid) else {
            return;
        };
        let Some(buf) = self.pes.get_mut(&pid) else {
            return;
        };
        if !buf.started {
            return;
        }
        buf.started = false;
        let data = std::mem::take(&mut buf.data);
        let discontinuity = std::mem::take(&mut buf.discontinuity);
        if data.is_empty() {
            return;
        }
        self.out.push_back(Ok(TsEvent::Pes(Pes {
            stream,
            pts: buf.pts,
            dts: buf.dts,
            data,
            discontinuity,
        })));
    }
}

fn append_limited(buf: &mut PesBuf, bytes: &[u8]) {
    let take = buf.remaining.map_or(bytes.len(), |r| r.min(bytes.len()));
    let bytes = bytes.get(..take).unwrap_or(bytes);
    if buf.data.len() + bytes.len() > MAX_PES_SIZE {
        buf.data.clear();
        buf.started = false;
        buf.discontinuity = true;
        return;
    }
    buf.data.extend_from_slice(bytes);
    if let Some(r) = buf.remaining.as_mut() {
        *r -= take;
    }
}

/// 3 + section_length (2.4.4.3: 12-bit length after table_id).
fn section_total_len(s: &[u8]) -> Option<usize> {
    let b1 = *s.get(1)?;
    let b2 = *s.get(2)?;
    Some(3 + ((usize::from(b1 & 0x0F) << 8) | usize::from(b2)))
}

/// Parsed PES header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    /// stream_id.
    pub stream_id: u8,
    /// PTS (90 kHz).
    pub pts: Option<i64>,
    /// DTS (90 kHz).
    pub dts: Option<i64>,
    /// Header bytes before the elementary data.
    pub header_len: usize,
    /// Elementary data length if PES_packet_length is set (0 = unbounded,
    /// allowed for video, 2.4.3.7).
    pub payload_len: Option<usize>,
}

/// Parse a PES packet header (2.4.3.6) from the start of a payload.
pub fn parse_pes_header(p: &[u8]) -> Result<PesHeader> {
    let h = p.first_chunk::<6>().ok_or(Error::Truncated("PES header"))?;
    if h[0..3] != [0, 0, 1] {
        return Err(Error::invalid("PES header", "no start code prefix"));
    }
    let stream_id = h[3];
    let packet_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Table 2-22: these stream_ids have no optional PES header.
    if matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return Ok(PesHeader {
            stream_id,
            pts: None,
            dts: None,
            header_len: 6,
            payload_len: (packet_len != 0).then_some(packet_len),
        });
    }
    let ext = p.get(6..9).ok_or(Error::Truncated("PES header"))?;
    if ext[0] & 0xC0 != 0x80 {
        return Err(Error::invalid("PES header", "missing '10' marker bits"));
    }
    let pts_dts = ext[1] >> 6;
    let header_len = 9 + usize::from(ext[2]);
    if p.len() < header_len {
        return Err(Error::Truncated("PES header"));
    }
    let mut pts = None;
    let mut dts = None;
    if pts_dts & 0x02 != 0 {
        pts = Some(parse_timestamp(
            p.get(9..14).ok_or(Error::Truncated("PTS"))?,
        )?);
    }
    if pts_dts == 0x03 {
        dts = Some(parse_timestamp(
            p.get(14..19).ok_or(Error::Truncated("DTS"))?,
        )?);
    }
    let payload_len = if packet_len == 0 {
        None
    } else {
        // PES_packet_length counts bytes after the length field.
        Some(
            packet_len
                .checked_sub(header_len - 6)
                .ok_or_else(|| Error::invalid("PES header", "length shorter than header"))?,
        )
    };
    Ok(PesHeader {
        stream_id,
        pts,
        dts,
        header_len,
        payload_len,
    })
}

/// 33-bit timestamp in 5 bytes with marker bits (2.4.3.7).
fn parse_timestamp(b: &[u8]) -> Result<i64> {
    let b: &[u8; 5] = b.first_chunk::<5>().ok_or(Error::Truncated("timestamp"))?;
    if b[0] & 1 == 0 || b[2] & 1 == 0 || b[4] & 1 == 0 {
        return Err(Error::invalid("PES timestamp", "marker bit not set"));
    }
    let v = (i64::from((b[0] >> 1) & 0x07) << 30)
        | (i64::from(b[1]) << 22)
        | (i64::from(b[2] >> 1) << 15)
        | (i64::from(b[3]) << 7)
        | i64::from(b[4] >> 1);
    Ok(v)
}

/// CRC-32/MPEG-2 (Annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no
/// reflection). Over a whole section including its CRC field the result is 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a PSI section with CRC.
    pub fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![table_id, 0xB0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(&id.to_be_bytes());
        s.extend_from_slice(&[0xC1, 0, 0]);
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    /// Packetise `payload` on `pid` (PUSI on the first packet), padding the
    /// last packet with an adaptation field.
    pub fn packets(pid: u16, payload: &[u8], cc: &mut u8, psi: bool) -> Vec<u8> {
        let mut data = Vec::new();
        if psi {
            data.push(0); // pointer_field
        }
        data.extend_from_slice(payload);
        let mut out = Vec::new();
        let mut first = true;
        for chunk in data.chunks(184) {
            let mut p = vec![
                SYNC_BYTE,
                (if first { 0x40 } else { 0 }) | (pid >> 8) as u8,
                pid as u8,
            ];
            let pad = 184 - chunk.len();
            if pad == 0 {
                p.push(0x10 | *cc);
            } else {
                p.push(0x30 | *cc);
                p.push((pad - 1) as u8);
                if pad > 1 {
                    p.push(0);
                    p.extend(std::iter::repeat_n(0xFF, pad - 2));
                }
            }
            p.extend_from_slice(chunk);
            assert_eq!(p.len(), 188);
            out.extend(p);
            *cc = (*cc + 1) & 0x0F;
            first = false;
        }
        out
    }

    pub fn pes(stream_id: u8, pts: i64, es: &[u8], with_len: bool) -> Vec<u8> {
        let mut v = vec![0, 0, 1, stream_id];
        let len = if with_len { 3 + 5 + es.len() } else { 0 };
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.extend_from_slice(&[0x80, 0x80, 5]);
        v.push(0x21 | (((pts >> 30) & 7) as u8) << 1);
        v.push((pts >> 22) as u8);
        v.push(0x01 | ((pts >> 14) as u8 & 0xFE));
        v.push((pts >> 7) as u8);
        v.push(0x01 | ((pts << 1) as u8 & 0xFE));
        v.extend_from_slice(es);
        v
    }

    pub fn simple_ts() -> Vec<u8> {
        let mut cc = [0u8; 4];
        let mut ts = packets(0, &section(0, 1, &[0, 1, 0xF0, 0x00]), &mut cc[0], true);
        let pmt_body = [
            0xE1, 0x00, 0xF0, 0x00, // PCR PID 0x100, no program info
            0x1B, 0xE1, 0x00, 0xF0, 0x00, // H.264 on 0x100
            0x06, 0xE1, 0x02, 0xF0, 0x00, // private data: ignored
            0x0F, 0xE1, 0x01, 0xF0, 0x00, // AAC on 0x101
        ];
        ts.extend(packets(0x1000, &section(2, 1, &pmt_body), &mut cc[1], true));
        ts.extend(packets(
            0x100,
            &pes(0xE0, 1 << 32 | 5, &[7u8; 300], false),
            &mut cc[2],
            false,
        ));
        ts.extend(packets(
            0x101,
            &pes(0xC0, 900, &[9u8; 50], true),
            &mut cc[3],
            false,
        ));
        ts.extend(packets(
            0x100,
            &pes(0xE0, 3600, &[8u8; 10], false),
            &mut cc[2],
            false,
        ));
        ts
    }

    fn demux(data: &[u8], chunk: usize) -> Vec<Result<TsEvent>> {
        let mut d = TsDemuxer::new();
        for c in data.chunks(chunk) {
            d.push(c);
        }
        d.finish();
        std::iter::from_fn(|| d.pop()).collect()
    }

    #[test]
    fn crc_known_value() {
        // CRC-32/MPEG-2 check value for "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn demuxes_pat_pmt_pes() {
        let ts = simple_ts();
        for chunk in [1, 7, 188, 10_000] {
            let ev: Vec<_> = demux(&ts, chunk).into_iter().map(|e| e.unwrap()).collect();
            assert_eq!(ev.len(), 4, "chunk {chunk}");
            assert_eq!(
                ev[0],
                TsEvent::Streams(vec![
                    TsStream {
                        pid: 0x100,
                        stream_type: 0x1B
                    },
                    TsStream {
                        pid: 0x101,
                        stream_type: 0x0F
                    },
                ])
            );
            // Audio has a length, so it completes before the next video PES.
            let TsEvent::Pes(a) = &ev[1] else { panic!() };
            assert_eq!((a.stream, a.pts, a.data.len()), (1, Some(900), 50));
            let TsEvent::Pes(v) = &ev[2] else { panic!() };
            assert_eq!((v.stream, v.pts, v.data.len()), (0, Some(1 << 32 | 5), 300));
            assert!(!v.discontinuity);
            let TsEvent::Pes(v) = &ev[3] else { panic!() };
            assert_eq!((v.pts, v.data.len()), (Some(3600), 10));
        }
    }

    #[test]
    fn resyncs_and_flags_discontinuity() {
        let ts = simple_ts();
        let mut broken = vec![1, 2, 3, 0x47, 5];
        broken.extend_from_slice(&ts[..188 * 3]);
        // Drop the 2nd video packet (cc gap) and insert junk.
        broken.extend_from_slice(&[0x55; 17]);
        broken.extend_from_slice(&ts[188 * 4..]);
        let mut d = TsDemuxer::new();
        d.push(&broken);
        d.finish();
        let ev: Vec<_> = std::iter::from_fn(|| d.pop())
            .filter_map(|e| e.ok())
            .collect();
        assert!(d.resyncs() >= 2);
        assert_eq!(d.continuity_errors(), 1);
        let video: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                TsEvent::Pes(p) if p.stream == 0 => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(video.len(), 2);
        assert!(video[0].discontinuity);
        assert!(!video[1].discontinuity);
    }

    #[test]
    fn garbage_does_not_panic() {
        let mut x: u32 = 7;
        let mut data = Vec::new();
        for i in 0..20_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            data.push(if i % 188 == 0 { 0x47 } else { (x >> 24) as u8 });
        }
        let _ = demux(&data, 7);
        let mut ts = simple_ts();
        for i in (0..ts.len()).step_by(13) {
            ts[i] ^= 0x5A;
        }
        let _ = demux(&ts, 100);
        assert!(parse_pes_header(&[0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10]).is_err());
        assert!(parse_pes_header(&[0, 0, 2]).is_err());
        assert!(parse_pes_header(&[0, 0, 1, 0xE0, 0, 1, 0x80, 0, 0]).is_err());
    }
}
