//! MPEG-2 transport stream muxer (ISO/IEC 13818-1), the counterpart of
//! [`mpegts`](crate::mpegts)' demuxer: one program with H.264, H.265 and AAC
//! elementary streams, which is what go2rtc puts into `stream.ts` and HLS
//! segments and what every TS reader takes.
//!
//! Frames come in the canonical form (DESIGN.md §4): video access units as
//! 4-byte length-prefixed NAL units, AAC as raw frames. Video goes out as
//! Annex-B with an access unit delimiter and, on keyframes, the parameter
//! sets (so a reader can start at any keyframe, as an HLS segment must);
//! AAC goes out with ADTS headers. PAT and PMT are written before the first
//! frame and before every video keyframe (audio only: every second), so a
//! reader joining or a segment cut at a keyframe finds them right there.
//! Timestamps are rescaled to 90 kHz and start at [`START_90K`]; the PCR
//! rides on the video track (else the first track). Sans-IO: bytes out only.

use crate::adts::{write_adts_header, AudioSpecificConfig};
use crate::annexb::{avcc_units, push_length_prefixed};
use crate::codec::{CodecInfo, CodecName, MediaKind};
use crate::error::{Error, Result};
use crate::fmp4::Sample;
use crate::mpegts::{crc32_mpeg2, stream_type, PACKET_SIZE, SYNC_BYTE};
use crate::{h264, h265};

/// PID of the program map table (as go2rtc).
pub const PMT_PID: u16 = 0x1000;
/// PID of the first elementary stream; the others follow.
pub const FIRST_PID: u16 = 0x100;
/// Where every output's timeline starts (90 kHz): one second, so the PCR,
/// which runs a little ahead of the decode times, never goes below zero.
pub const START_90K: i64 = 90_000;
/// How far the PCR runs ahead of the decode time of the frame it rides on.
const PCR_LEAD_90K: i64 = 9_000;
/// With no video, PAT/PMT are repeated this often (90 kHz).
const AUDIO_TABLES_EVERY_90K: i64 = 90_000;
/// A track whose first frame arrives later than the output's first frame
/// starts that much later on the timeline, unless the gap is absurd.
const MAX_LATE_US: u64 = 60_000_000;

const TS_PAYLOAD: usize = PACKET_SIZE - 4;
/// 33-bit PTS/DTS/PCR base.
const TS_MASK: i64 = (1 << 33) - 1;

#[derive(Debug)]
struct Track {
    name: CodecName,
    pid: u16,
    stream_id: u8,
    stream_type: u8,
    clock_rate: i64,
    cc: u8,
    /// AAC: the config every ADTS header repeats.
    asc: Option<AudioSpecificConfig>,
    /// H.264/H.265: the latest parameter sets (NAL units without prefix).
    sets: Vec<Vec<u8>>,
    /// First input dts and where it lands on the output timeline (90 kHz).
    origin: Option<(i64, i64)>,
}

/// Writes one transport stream: [`write`](TsMuxer::write) a frame at a time.
#[derive(Debug)]
pub struct TsMuxer {
    tracks: Vec<Track>,
    pcr_track: usize,
    has_video: bool,
    pat_cc: u8,
    pmt_cc: u8,
    /// Arrival time of the first frame written (the output's origin).
    origin_us: Option<u64>,
    /// Output dts of the last PAT/PMT, `None` before the first.
    last_tables: Option<i64>,
    force_tables: bool,
}

impl TsMuxer {
    /// Whether this muxer can carry `name`.
    pub fn supports(name: CodecName) -> bool {
        matches!(name, CodecName::H264 | CodecName::H265 | CodecName::Aac)
    }

    /// A muxer for `tracks`, in this order (PIDs 0x100, 0x101, ...). H.264
    /// and H.265 `extradata` may be empty when keyframes carry their
    /// parameter sets; AAC needs its AudioSpecificConfig.
    pub fn new(tracks: &[CodecInfo]) -> Result<TsMuxer> {
        if tracks.is_empty() {
            return Err(Error::invalid("MPEG-TS muxer", "no tracks"));
        }
        let mut out = Vec::with_capacity(tracks.len());
        for (i, info) in tracks.iter().enumerate() {
            let (stream_type, stream_id) = match info.name {
                CodecName::H264 => (stream_type::H264, 0xE0),
                CodecName::H265 => (stream_type::H265, 0xE0),
                CodecName::Aac => (stream_type::AAC_ADTS, 0xC0),
                other => {
                    return Err(Error::unsupported(
                        "MPEG-TS muxer",
                        format!("codec {}", other.ffmpeg_name()),
                    ))
                }
            };
            let asc = match info.name {
                CodecName::Aac => Some(AudioSpecificConfig::parse(&info.extradata)?),
                _ => None,
            };
            let sets = avcc_units(&info.extradata)
                .map_while(|n| n.ok())
                .filter(|n| is_parameter_set(info.name, n))
                .map(<[u8]>::to_vec)
                .collect();
            if info.clock_rate == 0 {
                return Err(Error::invalid("MPEG-TS muxer", "clock rate 0"));
            }
            out.push(Track {
                name: info.name,
                pid: FIRST_PID + i as u16,
                stream_id,
                stream_type,
                clock_rate: i64::from(info.clock_rate),
                cc: 0,
                asc,
                sets,
                origin: None,
            });
        }
        let video = out.iter().position(|t| t.name.kind() == MediaKind::Video);
        Ok(TsMuxer {
            has_video: video.is_some(),
            pcr_track: video.unwrap_or(0),
            tracks: out,
            pat_cc: 0,
            pmt_cc: 0,
            origin_us: None,
            last_tables: None,
            force_tables: false,
        })
    }

    /// The PID of track `track`.
    pub fn pid(&self, track: usize) -> Option<u16> {
        self.tracks.get(track).map(|t| t.pid)
    }

    /// PAT and PMT go out again before the next frame (a new HLS segment
    /// that does not start with a video keyframe).
    pub fn repeat_tables(&mut self) {
        self.force_tables = true;
    }

    /// Muxes one frame into `out` (a whole number of 188-byte packets).
    pub fn write(&mut self, track: usize, sample: &Sample<'_>, out: &mut Vec<u8>) -> Result<()> {
        let origin_us = *self.origin_us.get_or_insert(sample.arrival_us);
        let t = self
            .tracks
            .get_mut(track)
            .ok_or_else(|| Error::invalid("MPEG-TS muxer", format!("no track {track}")))?;
        let video = t.name.kind() == MediaKind::Video;
        let es = match t.name {
            CodecName::H264 | CodecName::H265 => video_es(t, sample)?,
            _ => {
                let asc = t.asc.as_ref().ok_or(Error::Truncated("AAC config"))?;
                let mut es = write_adts_header(asc, sample.data.len())?.to_vec();
                es.extend_from_slice(sample.data);
                es
            }
        };
        let (first_dts, start) = *t.origin.get_or_insert_with(|| {
            let late = sample.arrival_us.saturating_sub(origin_us);
            let late = if sample.arrival_us == 0 || late > MAX_LATE_US {
                0
            } else {
                late
            };
            (sample.dts, START_90K + (late * 9 / 100) as i64)
        });
        let rate = t.clock_rate;
        let to_90k = |ts: i64| -> i64 {
            let d = i128::from(ts) - i128::from(first_dts);
            (start as i128 + d * 90_000 / i128::from(rate)) as i64
        };
        let dts = to_90k(sample.dts);
        let pts = to_90k(sample.pts.max(sample.dts));

        let keyframe = video && sample.keyframe;
        let tables_due = match self.last_tables {
            None => true,
            Some(_) if self.force_tables || keyframe => true,
            Some(last) => !self.has_video && dts.wrapping_sub(last) >= AUDIO_TABLES_EVERY_90K,
        };
        if tables_due {
            self.force_tables = false;
            self.last_tables = Some(dts);
            self.write_tables(out);
        }
        let pcr = (track == self.pcr_track).then(|| (dts - PCR_LEAD_90K) & TS_MASK);
        let t = &mut self.tracks[track];
        let header = pes_header(
            t.stream_id,
            pts,
            (dts != pts).then_some(dts),
            es.len(),
            video,
        );
        write_packets(
            out,
            t.pid,
            &mut t.cc,
            &header,
            &es,
            pcr,
            keyframe || tables_due,
        );
        Ok(())
    }

    /// [`write`](Self::write) into a new buffer.
    pub fn frame(&mut self, track: usize, sample: &Sample<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(sample.data.len() + sample.data.len() / 8 + 512);
        self.write(track, sample, &mut out)?;
        Ok(out)
    }

    fn write_tables(&mut self, out: &mut Vec<u8>) {
        // 2.4.4.3 PAT: program 1 → PMT_PID.
        let pmt = PMT_PID.to_be_bytes();
        let pat = section(0x00, 1, &[0, 1, 0xE0 | pmt[0], pmt[1]]);
        write_section(out, 0, &mut self.pat_cc, &pat);
        // 2.4.4.8 PMT: PCR_PID, no program info, one entry per stream.
        let pcr_pid = self.tracks[self.pcr_track].pid;
        let mut body = vec![0xE0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xF0, 0x00];
        for t in &self.tracks {
            body.extend_from_slice(&[
                t.stream_type,
                0xE0 | (t.pid >> 8) as u8,
                t.pid as u8,
                0xF0,
                0x00,
            ]);
        }
        let pmt = section(0x02, 1, &body);
        write_section(out, PMT_PID, &mut self.pmt_cc, &pmt);
    }
}

fn is_parameter_set(name: CodecName, nal: &[u8]) -> bool {
    match name {
        CodecName::H264 => matches!(
            h264::nal_type_of(nal),
            h264::nal_type::SPS | h264::nal_type::PPS
        ),
        CodecName::H265 => matches!(
            h265::nal_type_of(nal),
            h265::nal_type::VPS | h265::nal_type::SPS | h265::nal_type::PPS
        ),
        _ => false,
    }
}

fn is_aud(name: CodecName, nal: &[u8]) -> bool {
    match name {
        CodecName::H264 => h264::nal_type_of(nal) == 9,
        CodecName::H265 => h265::nal_type_of(nal) == 35,
        _ => false,
    }
}

/// The access unit in Annex-B: a delimiter first (H.222 2.14 requires one
/// for H.264 in TS), the parameter sets on a keyframe that lacks them, then
/// the frame's own NAL units (less any delimiter of its own).
fn video_es(t: &mut Track, sample: &Sample<'_>) -> Result<Vec<u8>> {
    let mut es = Vec::with_capacity(sample.data.len() + 64);
    match t.name {
        // nal_unit_type 9, primary_pic_type 7 (any slice type).
        CodecName::H264 => es.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]),
        // nal_unit_type 35, layer 0, tid 1, pic_type 2 (any).
        _ => es.extend_from_slice(&[0, 0, 0, 1, 0x46, 0x01, 0x50]),
    }
    let nals: Vec<&[u8]> = avcc_units(sample.data).collect::<Result<_>>()?;
    if sample.keyframe {
        let in_band: Vec<&[u8]> = nals
            .iter()
            .copied()
            .filter(|n| is_parameter_set(t.name, n))
            .collect();
        if in_band.is_empty() {
            for s in &t.sets {
                es.extend_from_slice(&[0, 0, 0, 1]);
                es.extend_from_slice(s);
            }
        } else if let Some(sets) =
            crate::fmp4::parameter_sets_from_frame(t.name, &join_length_prefixed(&in_band))
        {
            // A camera back with other parameters: later keyframes that
            // carry none get these.
            t.sets = avcc_units(&sets)
                .map_while(|n| n.ok())
                .map(<[u8]>::to_vec)
                .collect();
        }
    }
    for nal in nals.iter().filter(|n| !n.is_empty() && !is_aud(t.name, n)) {
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(nal);
    }
    Ok(es)
}

fn join_length_prefixed(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for n in nals {
        push_length_prefixed(&mut v, n);
    }
    v
}

/// 2.4.3.6 PES header with PTS (and DTS when it differs).
fn pes_header(stream_id: u8, pts: i64, dts: Option<i64>, es_len: usize, video: bool) -> Vec<u8> {
    let ext_len = if dts.is_some() { 10 } else { 5 };
    let packet_len = 3 + ext_len + es_len;
    // 0 = unbounded, allowed for video only (2.4.3.7).
    let packet_len = if packet_len > 0xFFFF && video {
        0
    } else {
        packet_len.min(0xFFFF)
    };
    let mut h = vec![0, 0, 1, stream_id];
    h.extend_from_slice(&(packet_len as u16).to_be_bytes());
    // '10', data_alignment_indicator; PTS_DTS_flags; header length.
    h.push(0x84);
    h.push(if dts.is_some() { 0xC0 } else { 0x80 });
    h.push(ext_len as u8);
    match dts {
        Some(dts) => {
            push_timestamp(&mut h, 0x3, pts);
            push_timestamp(&mut h, 0x1, dts);
        }
        None => push_timestamp(&mut h, 0x2, pts),
    }
    h
}

/// 33-bit timestamp in 5 bytes with a 4-bit prefix and marker bits.
fn push_timestamp(h: &mut Vec<u8>, prefix: u8, ts: i64) {
    let ts = ts & TS_MASK;
    h.push((prefix << 4) | (((ts >> 30) & 0x07) as u8) << 1 | 1);
    h.push((ts >> 22) as u8);
    h.push((((ts >> 15) & 0x7F) as u8) << 1 | 1);
    h.push((ts >> 7) as u8);
    h.push(((ts & 0x7F) as u8) << 1 | 1);
}

/// A PSI section with syntax indicator, version 0, current, and its CRC.
fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![table_id, 0xB0 | (len >> 8) as u8, len as u8];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&[0xC1, 0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// One packet holding a (short) section, the rest stuffed with 0xFF.
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, section: &[u8]) {
    out.extend_from_slice(&[SYNC_BYTE, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | *cc]);
    *cc = (*cc + 1) & 0x0F;
    out.push(0); // pointer_field
    let room = TS_PAYLOAD - 1;
    let n = section.len().min(room);
    out.extend_from_slice(&section[..n]);
    out.extend(std::iter::repeat_n(0xFF, room - n));
}

/// Splits one PES (`header` + `es`) into transport packets. The first
/// carries the PCR and the random access flag; the last is padded with an
/// adaptation field, as the standard wants (2.4.3.5), not with 0xFF data.
fn write_packets(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    header: &[u8],
    es: &[u8],
    pcr: Option<i64>,
    random_access: bool,
) {
    let total = header.len() + es.len();
    let mut pos = 0;
    let byte_at = |range: std::ops::Range<usize>, out: &mut Vec<u8>| {
        // The PES bytes `range`, across the header/es boundary.
        let (a, b) = (range.start, range.end);
        if a < header.len() {
            out.extend_from_slice(&header[a..b.min(header.len())]);
        }
        if b > header.len() {
            out.extend_from_slice(&es[a.max(header.len()) - header.len()..b - header.len()]);
        }
    };
    let mut first = true;
    while first || pos < total {
        // Adaptation field bytes after its length byte.
        let mut af: Option<Vec<u8>> = None;
        if first {
            let mut flags = 0u8;
            if random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            if flags != 0 {
                let mut f = vec![flags];
                if let Some(base) = pcr {
                    // 33-bit base, 6 reserved bits, 9-bit extension 0.
                    f.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        (((base & 1) as u8) << 7) | 0x7E,
                        0,
                    ]);
                }
                af = Some(f);
            }
        }
        let left = total - pos;
        let af_size = af.as_ref().map_or(0, |f| 1 + f.len());
        if left < TS_PAYLOAD - af_size {
            // Stuff the adaptation field up to the packet's end.
            let need = TS_PAYLOAD - left; // adaptation field bytes, length byte included
            let f = af.get_or_insert_with(Vec::new);
            if need >= 2 && f.is_empty() {
                f.push(0); // no flags
            }
            f.resize(need - 1, 0xFF);
        }
        let afc = if af.is_some() { 0x30 } else { 0x10 };
        let pusi = if first { 0x40 } else { 0 };
        out.extend_from_slice(&[SYNC_BYTE, pusi | (pid >> 8) as u8, pid as u8, afc | *cc]);
        *cc = (*cc + 1) & 0x0F;
        let mut used = 0;
        if let Some(f) = &af {
            out.push(f.len() as u8);
            out.extend_from_slice(f);
            used = 1 + f.len();
        }
        let n = (TS_PAYLOAD - used).min(left);
        byte_at(pos..pos + n, out);
        pos += n;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adts::AdtsSplitter;
    use crate::mpegts::{TsDemuxer, TsEvent};

    fn h264_info() -> CodecInfo {
        let mut i = CodecInfo::new(CodecName::H264, 90_000);
        // Not a real SPS: the muxer only copies it.
        push_length_prefixed(&mut i.extradata, &[0x67, 0x64, 0x00, 0x1F, 0xAC]);
        push_length_prefixed(&mut i.extradata, &[0x68, 0xEE, 0x3C, 0x80]);
        i
    }

    fn aac_info() -> CodecInfo {
        let mut i = CodecInfo::new(CodecName::Aac, 16_000);
        i.extradata = vec![0x14, 0x08]; // LC, 16 kHz, mono
        i
    }

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        join_length_prefixed(nals)
    }

    fn demux(ts: &[u8]) -> (Vec<u16>, Vec<crate::mpegts::Pes>, TsDemuxer) {
        assert_eq!(ts.len() % PACKET_SIZE, 0);
        let mut d = TsDemuxer::new();
        d.push(ts);
        d.finish();
        let mut pids = Vec::new();
        let mut pes = Vec::new();
        while let Some(ev) = d.pop() {
            match ev.expect("clean stream") {
                TsEvent::Streams(s) => pids = s.iter().map(|s| s.pid).collect(),
                TsEvent::Pes(p) => pes.push(p),
            }
        }
        (pids, pes, d)
    }

    fn sample(dts: i64, pts: i64, keyframe: bool, data: &[u8]) -> Sample<'_> {
        Sample {
            dts,
            pts,
            keyframe,
            arrival_us: 0,
            data,
        }
    }

    #[test]
    fn video_and_audio_roundtrip_through_the_demuxer() {
        let mut m = TsMuxer::new(&[h264_info(), aac_info()]).unwrap();
        let idr = au(&[&[0x65; 3000]]);
        let p = au(&[&[0x41; 100]]);
        let aac = vec![0x21; 200];
        let mut ts = Vec::new();
        m.write(0, &sample(1000, 1000, true, &idr), &mut ts)
            .unwrap();
        m.write(1, &sample(160, 160, true, &aac), &mut ts).unwrap();
        m.write(0, &sample(4600, 8200, false, &p), &mut ts).unwrap();
        m.write(1, &sample(1184, 1184, true, &aac), &mut ts)
            .unwrap();
        let (pids, pes, d) = demux(&ts);
        assert_eq!(pids, vec![0x100, 0x101]);
        assert_eq!(d.continuity_errors(), 0);
        assert_eq!(d.resyncs(), 0);
        assert_eq!(pes.len(), 4);
        // Keyframe: AUD, then the sets from extradata, then the slice.
        let mut want = vec![0, 0, 0, 1, 0x09, 0xF0];
        want.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1F, 0xAC]);
        want.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xEE, 0x3C, 0x80]);
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&[0x65; 3000]);
        assert_eq!(pes[0].data, want);
        assert_eq!((pes[0].pts, pes[0].dts), (Some(START_90K), None));
        // B-frame order: pts and dts both written, rescaled from the start.
        assert_eq!(pes[2].dts, Some(START_90K + 3600));
        assert_eq!(pes[2].pts, Some(START_90K + 7200));
        assert_eq!(pes[2].data[..6], [0, 0, 0, 1, 0x09, 0xF0]);
        // AAC: 1024 samples at 16 kHz = 5760 ticks; an ADTS frame each.
        assert_eq!(pes[1].pts, Some(START_90K));
        assert_eq!(pes[3].pts, Some(START_90K + 5760));
        let mut s = AdtsSplitter::new();
        s.push(&pes[3].data);
        let f = s.pop().unwrap();
        assert_eq!(f.data, aac);
        assert_eq!(f.header.sample_rate(), 16_000);
    }

    #[test]
    fn tables_and_pcr_at_keyframes() {
        let mut m = TsMuxer::new(&[h264_info()]).unwrap();
        let idr = au(&[&[0x65; 10]]);
        let p = au(&[&[0x41; 10]]);
        let a = m.frame(0, &sample(0, 0, true, &idr)).unwrap();
        let b = m.frame(0, &sample(3600, 3600, false, &p)).unwrap();
        let c = m.frame(0, &sample(7200, 7200, true, &idr)).unwrap();
        let pids = |ts: &[u8]| -> Vec<u16> {
            ts.chunks(PACKET_SIZE)
                .map(|p| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]))
                .collect()
        };
        assert_eq!(pids(&a), vec![0, PMT_PID, 0x100]);
        assert_eq!(pids(&b), vec![0x100]);
        assert_eq!(pids(&c), vec![0, PMT_PID, 0x100]);
        // Each segment a keyframe starts reads on its own.
        let (_, pes, _) = demux(&c);
        assert_eq!(pes.len(), 1);
        assert_eq!(pes[0].pts, Some(START_90K + 7200));
        // PCR in the keyframe's packet, with the random access flag.
        let pkt = &c[2 * PACKET_SIZE..];
        assert_eq!(pkt[3] & 0x30, 0x30);
        assert_eq!(pkt[5] & 0x50, 0x50);
        let base = (i64::from(pkt[6]) << 25)
            | (i64::from(pkt[7]) << 17)
            | (i64::from(pkt[8]) << 9)
            | (i64::from(pkt[9]) << 1)
            | i64::from(pkt[10] >> 7);
        assert_eq!(base, START_90K + 7200 - PCR_LEAD_90K);
    }

    #[test]
    fn in_band_sets_replace_the_extradata_and_auds_are_not_doubled() {
        let mut m = TsMuxer::new(&[h264_info()]).unwrap();
        let sps: &[u8] = &[0x67, 0x42, 0, 0x1E];
        let pps: &[u8] = &[0x68, 0xCE];
        let first = au(&[&[0x09, 0xF0], sps, pps, &[0x65, 1]]);
        let later = au(&[&[0x65, 2]]);
        let mut ts = m.frame(0, &sample(0, 0, true, &first)).unwrap();
        ts.extend(m.frame(0, &sample(3600, 3600, true, &later)).unwrap());
        let (_, pes, _) = demux(&ts);
        let want = |slice: u8| {
            let mut v = vec![0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1];
            v.extend_from_slice(sps);
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(pps);
            v.extend_from_slice(&[0, 0, 0, 1, 0x65, slice]);
            v
        };
        assert_eq!(pes[0].data, want(1));
        assert_eq!(pes[1].data, want(2));
    }

    #[test]
    fn every_payload_size_packs_into_whole_packets() {
        // Sizes around the packet boundaries, where the stuffing changes.
        let mut m = TsMuxer::new(&[aac_info()]).unwrap();
        let mut ts = Vec::new();
        let mut sent = Vec::new();
        for (i, len) in (1..800).enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
            m.write(
                0,
                &sample(i as i64 * 1024, i as i64 * 1024, true, &data),
                &mut ts,
            )
            .unwrap();
            sent.push(data);
        }
        let (_, pes, d) = demux(&ts);
        assert_eq!(d.continuity_errors(), 0);
        assert_eq!(pes.len(), sent.len());
        for (p, data) in pes.iter().zip(&sent) {
            let mut s = AdtsSplitter::new();
            s.push(&p.data);
            assert_eq!(&s.pop().unwrap().data, data);
        }
    }

    #[test]
    fn late_track_starts_at_its_arrival_and_timestamps_wrap() {
        let mut m = TsMuxer::new(&[h264_info(), aac_info()]).unwrap();
        let idr = au(&[&[0x65; 10]]);
        let mut s = sample(1 << 40, 1 << 40, true, &idr);
        s.arrival_us = 1_000_000;
        let mut ts = m.frame(0, &s).unwrap();
        let aac = [1u8; 8];
        let mut a = sample(5, 5, true, &aac);
        a.arrival_us = 1_500_000;
        ts.extend(m.frame(1, &a).unwrap());
        let (_, pes, _) = demux(&ts);
        assert_eq!(pes[0].pts, Some(START_90K));
        assert_eq!(pes[1].pts, Some(START_90K + 45_000));
        // 33-bit wrap instead of an overflow.
        let mut s2 = sample((1 << 40) + (1 << 34), (1 << 40) + (1 << 34), false, &idr);
        s2.arrival_us = 1_040_000;
        assert!(m.frame(0, &s2).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot_carry() {
        assert!(TsMuxer::new(&[]).is_err());
        assert!(TsMuxer::new(&[CodecInfo::new(CodecName::Opus, 48_000)]).is_err());
        // AAC without its config cannot get ADTS headers.
        assert!(TsMuxer::new(&[CodecInfo::new(CodecName::Aac, 48_000)]).is_err());
        let mut m = TsMuxer::new(&[h264_info()]).unwrap();
        assert!(m
            .frame(1, &sample(0, 0, true, &[0, 0, 0, 1, 0x65]))
            .is_err());
        // A truncated length prefix is an error, not a panic.
        assert!(m
            .frame(0, &sample(0, 0, true, &[0, 0, 0, 9, 0x65]))
            .is_err());
        let mut a = TsMuxer::new(&[aac_info()]).unwrap();
        assert!(a.frame(0, &sample(0, 0, true, &[0; 9000])).is_err());
    }
}
