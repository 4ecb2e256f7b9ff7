//! Fragmented MP4 reader (ISO/IEC 14496-12): `moov` (tracks, no samples)
//! then `moof` + `mdat` fragments, as HLS fMP4/CMAF segments (`#EXT-X-MAP`
//! init + `.m4s`), DASH and `ffmpeg -f mp4 -movflags frag_keyframe+empty_moov`
//! give it. Sans-IO: push bytes, poll events. H.264, H.265, AV1 (`av01`),
//! AAC and Opus tracks are read; other tracks are left out with one `Unsupported` error.
//!
//! Bounded: a box is buffered whole only when its contents are needed
//! (`moov`, `moof`, `mdat` after a `moof`), each under a cap; other boxes
//! are skipped as they stream past. A plain MP4 (samples in `moov`'s tables)
//! is refused: this reader follows a live stream, not a file with an index.
//!
//! ```
//! use camrouter_media::fmp4_demux::Fmp4Demuxer;
//! let mut d = Fmp4Demuxer::new();
//! d.push(b"\0\0\0\x10ftypiso5\0\0\0\0");
//! assert!(d.poll().is_none());
//! ```

use std::collections::VecDeque;

use crate::adts::{channels_of, AudioSpecificConfig};
use crate::annexb::push_length_prefixed;
use crate::av1;
use crate::codec::{CodecInfo, CodecName, MediaKind, VIDEO_CLOCK_RATE};
use crate::error::{Error, Result};
use crate::flv::{avc_record, hevc_record, record_codec_info};

/// Largest `moov` read (an init segment is a few hundred bytes; a plain MP4's
/// index is refused anyway).
pub const MAX_MOOV: u64 = 1 << 20;
/// Largest `moof` read.
pub const MAX_MOOF: u64 = 1 << 20;
/// Largest `mdat` read: one fragment's media (an HLS segment of several
/// seconds at a high bitrate fits).
pub const MAX_MDAT: u64 = 32 << 20;
/// Tracks read from one `moov`.
const MAX_TRACKS: usize = 16;
/// Samples in one fragment: as many as a 1 MiB `moof` can describe with
/// one 4-byte field each.
const MAX_FRAGMENT_SAMPLES: usize = (MAX_MOOF / 4) as usize;

/// What the demuxer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fmp4Event {
    /// The tracks of the init segment this reader can carry, in `moov`
    /// order. Comes once; a later `moov` describing other tracks is an error.
    Tracks(Vec<CodecInfo>),
    /// One sample.
    Frame {
        /// Index into `Tracks`.
        track: usize,
        /// Random access point (always true for audio).
        keyframe: bool,
        /// Presentation time in the track's clock rate (90 kHz for video,
        /// the sample rate for audio).
        pts: i64,
        /// Decode time, same clock.
        dts: i64,
        /// H.264/H.265: 4-byte length-prefixed NAL units, a keyframe led by
        /// the parameter sets; AAC: a raw frame; Opus: a packet.
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct Track {
    id: u32,
    /// Index in the `Tracks` event.
    out: usize,
    info: CodecInfo,
    timescale: u32,
    /// Video: the NAL length size and the parameter sets (4-byte prefixed;
    /// AV1: the sequence header OBU).
    length_size: usize,
    sets: Vec<u8>,
    /// `trex` defaults.
    default_duration: u32,
    default_size: u32,
    default_flags: u32,
    /// Decode time after the last sample, for fragments without `tfdt`.
    next_dts: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Reading a box header.
    Header,
    /// Skipping this many bytes of a box whose contents are not needed.
    Skip(u64),
    /// Buffering a box of this total size (header included).
    Box {
        kind: [u8; 4],
        size: u64,
    },
    Failed,
}

/// Sans-IO fragmented MP4 demuxer. See the module docs.
#[derive(Debug, Clone)]
pub struct Fmp4Demuxer {
    buf: Vec<u8>,
    state: State,
    tracks: Option<Vec<Track>>,
    /// The last `moof`, waiting for its `mdat`.
    moof: Option<Vec<u8>>,
    out: VecDeque<Result<Fmp4Event>>,
    /// `Tracks` waits for an AV1 track's first keyframe (its `av1C` was
    /// empty); frames until then are dropped.
    tracks_pending: bool,
}

impl Default for Fmp4Demuxer {
    fn default() -> Self {
        Self::new()
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let hi = be32(b, at)?;
    let lo = be32(b, at + 4)?;
    Some(u64::from(hi) << 32 | u64::from(lo))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|x| u16::from_be_bytes([x[0], x[1]]))
}

/// The child boxes of a box's payload: (type, payload). Stops at the first
/// box that does not fit.
fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = be32(b, 0)? as usize;
        let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
        let (head, size) = match size {
            1 => (16, usize::try_from(be64(b, 8)?).ok()?),
            0 => (8, b.len()),
            n => (8, n),
        };
        if size < head || size > b.len() {
            return None;
        }
        let payload = &b[head..size];
        b = &b[size..];
        Some((kind, payload))
    })
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b).find(|(k, _)| k == kind).map(|(_, p)| p)
}

fn truncated(what: &'static str) -> Error {
    Error::Truncated(what)
}

impl Fmp4Demuxer {
    /// A demuxer expecting the first box.
    pub fn new() -> Self {
        Fmp4Demuxer {
            buf: Vec::new(),
            state: State::Header,
            tracks: None,
            moof: None,
            out: VecDeque::new(),
            tracks_pending: false,
        }
    }

    /// The stream cannot go on (a box over its cap, a plain MP4).
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// Next event.
    pub fn poll(&mut self) -> Option<Result<Fmp4Event>> {
        self.out.pop_front()
    }

    /// Feed bytes.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Failed => return,
                State::Skip(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                    data = &data[k..];
                    let left = n - k as u64;
                    self.state = if left == 0 {
                        State::Header
                    } else {
                        State::Skip(left)
                    };
                }
                State::Header => {
                    let need = if self.buf.len() >= 8 && be32(&self.buf, 0) == Some(1) {
                        16
                    } else {
                        8
                    };
                    let k = (need - self.buf.len().min(need)).min(data.len());
                    self.buf.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.buf.len() < 8 || (be32(&self.buf, 0) == Some(1) && self.buf.len() < 16)
                    {
                        continue;
                    }
                    self.header();
                }
                State::Box { size, .. } => {
                    let want = usize::try_from(size).unwrap_or(usize::MAX);
                    let k = (want - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..k]);
                    data = &data[k..];
                    if self.buf.len() == want {
                        self.whole_box();
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Error) {
        self.state = State::Failed;
        self.buf = Vec::new();
        self.moof = None;
        self.out.push_back(Err(e));
    }

    /// A box header is in `buf`: decide whether to read or skip the box.
    fn header(&mut self) {
        let kind: [u8; 4] = [self.buf[4], self.buf[5], self.buf[6], self.buf[7]];
        let (head, size) = match be32(&self.buf, 0).unwrap_or(0) {
            1 => (16u64, be64(&self.buf, 8).unwrap_or(0)),
            0 => {
                // "To the end of the file": only a last `mdat` does this,
                // which a live reader cannot wait for.
                return self.fail(Error::unsupported(
                    "MP4",
                    format!("box {} without a size", String::from_utf8_lossy(&kind)),
                ));
            }
            n => (8, u64::from(n)),
        };
        if size < head {
            return self.fail(Error::invalid("MP4 box", format!("size {size}")));
        }
        let cap = match &kind {
            b"moov" => MAX_MOOV,
            b"moof" => MAX_MOOF,
            b"mdat" if self.moof.is_some() => MAX_MDAT,
            b"mdat" if self.tracks.is_none() => {
                return self.fail(Error::unsupported(
                    "MP4",
                    "media before the track descriptions (a plain MP4 with moov at its end)",
                ));
            }
            _ => 0,
        };
        if cap == 0 {
            self.buf.clear();
            self.state = if size == head {
                State::Header
            } else {
                State::Skip(size - head)
            };
            return;
        }
        if size > cap {
            return self.fail(Error::invalid(
                "MP4 box",
                format!(
                    "{} of {size} bytes (at most {cap})",
                    String::from_utf8_lossy(&kind)
                ),
            ));
        }
        if self.buf.len() as u64 == size {
            self.state = State::Box { kind, size };
            self.whole_box();
        } else {
            self.state = State::Box { kind, size };
        }
    }

    fn whole_box(&mut self) {
        let State::Box { kind, .. } = self.state else {
            return;
        };
        let b = std::mem::take(&mut self.buf);
        self.state = State::Header;
        let head = if be32(&b, 0) == Some(1) { 16 } else { 8 };
        let r = match &kind {
            b"moov" => self.moov(&b[head..]),
            b"moof" => {
                self.moof = Some(b);
                Ok(())
            }
            b"mdat" => match self.moof.take() {
                Some(moof) => self.fragment(&moof, &b, head),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = r {
            if matches!(e, Error::Unsupported { .. }) && !self.failed() {
                self.fail(e);
            } else {
                // A broken fragment: report it, go on with the next one.
                self.out.push_back(Err(e));
            }
        }
    }

    fn moov(&mut self, moov: &[u8]) -> Result<()> {
        let mut tracks = Vec::new();
        let mut left_out = Vec::new();
        for (kind, trak) in children(moov) {
            if &kind != b"trak" {
                continue;
            }
            if tracks.len() >= MAX_TRACKS {
                break;
            }
            match read_trak(trak)? {
                Ok(mut t) => {
                    t.out = tracks.len();
                    tracks.push(t);
                }
                Err(what) => left_out.push(what),
            }
        }
        if let Some(mvex) = child(moov, b"mvex") {
            for (kind, trex) in children(mvex) {
                if &kind != b"trex" {
                    continue;
                }
                let id = be32(trex, 4).ok_or(truncated("MP4 trex"))?;
                if let Some(t) = tracks.iter_mut().find(|t| t.id == id) {
                    t.default_duration = be32(trex, 12).unwrap_or(0);
                    t.default_size = be32(trex, 16).unwrap_or(0);
                    t.default_flags = be32(trex, 20).unwrap_or(0);
                }
            }
        } else if !tracks.is_empty() {
            return Err(Error::unsupported(
                "MP4",
                "not fragmented (no mvex): only fragmented MP4 is read",
            ));
        }
        if let Some(old) = &self.tracks {
            // Every HLS init segment, or the same stream restarted: the same
            // tracks go on; others would need new consumers.
            let same = old.len() == tracks.len()
                && old
                    .iter()
                    .zip(&tracks)
                    .all(|(a, b)| a.info.name == b.info.name && a.id == b.id);
            if !same {
                return Err(Error::unsupported("MP4", "the tracks changed mid-stream"));
            }
            for (new, old) in tracks.iter_mut().zip(old) {
                new.next_dts = old.next_dts;
            }
            self.tracks = Some(tracks);
            return Ok(());
        }
        if tracks.is_empty() {
            return Err(Error::unsupported(
                "MP4 tracks",
                if left_out.is_empty() {
                    "none".to_string()
                } else {
                    left_out.join(", ")
                },
            ));
        }
        // An AV1 track without its sequence header (an empty `av1C`) is
        // described by its first keyframe instead, so consumers that need
        // the record up front (the RTMP and FLV muxers) get it.
        self.tracks_pending = tracks
            .iter()
            .any(|t| t.info.name == CodecName::Av1 && t.info.extradata.is_empty());
        if !self.tracks_pending {
            self.out.push_back(Ok(Fmp4Event::Tracks(
                tracks.iter().map(|t| t.info.clone()).collect(),
            )));
        }
        self.tracks = Some(tracks);
        if !left_out.is_empty() {
            // Reported, not fatal: the other tracks play.
            self.out
                .push_back(Err(Error::unsupported("MP4 track", left_out.join(", "))));
        }
        Ok(())
    }

    /// One `moof` and its `mdat` (whole boxes, headers included).
    fn fragment(&mut self, moof: &[u8], mdat: &[u8], mdat_head: usize) -> Result<()> {
        let Some(tracks) = self.tracks.as_mut() else {
            return Ok(());
        };
        let moof_head = if be32(moof, 0) == Some(1) { 16 } else { 8 };
        // Offsets in `trun` count from the first byte of the `moof`; the
        // `mdat` follows it directly in every stream this reads (a box
        // between them was skipped, and its length is not known here, so
        // such offsets fail the bounds check below).
        let mdat_start = moof.len();
        let in_mdat = |off: u64, len: u64| -> Option<&[u8]> {
            let start = usize::try_from(off)
                .ok()?
                .checked_sub(mdat_start + mdat_head)?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            mdat.get(mdat_head + start..mdat_head + end)
        };
        let mut frames = Vec::new();
        let mut next_base: Option<u64> = None;
        for (kind, traf) in children(&moof[moof_head..]) {
            if &kind != b"traf" {
                continue;
            }
            let tfhd = child(traf, b"tfhd").ok_or(truncated("MP4 tfhd"))?;
            let flags = be32(tfhd, 0).ok_or(truncated("MP4 tfhd"))? & 0xFF_FFFF;
            let id = be32(tfhd, 4).ok_or(truncated("MP4 tfhd"))?;
            let mut at = 8;
            let mut field = |present: bool, n: usize| -> Result<Option<u64>> {
                if !present {
                    return Ok(None);
                }
                let v = if n == 8 {
                    be64(tfhd, at)
                } else {
                    be32(tfhd, at).map(u64::from)
                };
                at += n;
                v.map(Some).ok_or(truncated("MP4 tfhd"))
            };
            let base_offset = field(flags & 0x1 != 0, 8)?;
            let _sample_description = field(flags & 0x2 != 0, 4)?;
            let dflt_duration = field(flags & 0x8 != 0, 4)?;
            let dflt_size = field(flags & 0x10 != 0, 4)?;
            let dflt_flags = field(flags & 0x20 != 0, 4)?;
            let Some(t) = tracks.iter_mut().find(|t| t.id == id) else {
                continue;
            };
            let dflt_duration = dflt_duration.map_or(t.default_duration, |v| v as u32);
            let dflt_size = dflt_size.map_or(t.default_size, |v| v as u32);
            let dflt_flags = dflt_flags.map_or(t.default_flags, |v| v as u32);
            // A base offset in the file is meaningless to a reader that only
            // has this fragment; with default-base-is-moof (0x20000) or
            // nothing, the first track's data starts at the moof.
            if base_offset.is_some() {
                return Err(Error::unsupported(
                    "MP4 fragment",
                    "explicit base data offset",
                ));
            }
            let base = if flags & 0x2_0000 != 0 {
                0
            } else {
                next_base.unwrap_or(0)
            };
            if let Some(tfdt) = child(traf, b"tfdt") {
                t.next_dts = if tfdt.first() == Some(&1) {
                    be64(tfdt, 4)
                } else {
                    be32(tfdt, 4).map(u64::from)
                }
                .ok_or(truncated("MP4 tfdt"))?;
            }
            let mut data_pos = base;
            for (kind, trun) in children(traf) {
                if &kind != b"trun" {
                    continue;
                }
                let version = *trun.first().ok_or(truncated("MP4 trun"))?;
                let tflags = be32(trun, 0).ok_or(truncated("MP4 trun"))? & 0xFF_FFFF;
                let count = be32(trun, 4).ok_or(truncated("MP4 trun"))?;
                let mut at = 8;
                if tflags & 0x1 != 0 {
                    let off = be32(trun, at).ok_or(truncated("MP4 trun"))? as i32;
                    data_pos = base
                        .checked_add_signed(i64::from(off))
                        .ok_or_else(|| Error::invalid("MP4 trun", "data offset"))?;
                    at += 4;
                }
                let first_flags = if tflags & 0x4 != 0 {
                    at += 4;
                    Some(be32(trun, at - 4).ok_or(truncated("MP4 trun"))?)
                } else {
                    None
                };
                let per = [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|&&f| tflags & f != 0)
                    .count()
                    * 4;
                // Every sample's fields must be in the box before any is used.
                if (count as usize).saturating_mul(per) > trun.len().saturating_sub(at) {
                    return Err(truncated("MP4 trun samples"));
                }
                // A trun with no per-sample fields takes every sample from
                // the defaults, so its count is bounded by nothing in the
                // box (found by the fmp4_demux fuzz target: billions of
                // empty samples).
                if frames.len().saturating_add(count as usize) > MAX_FRAGMENT_SAMPLES {
                    return Err(Error::invalid(
                        "MP4 trun",
                        "too many samples in one fragment",
                    ));
                }
                for i in 0..count as usize {
                    let mut read = |present: bool| -> Option<u32> {
                        present.then(|| {
                            at += 4;
                            be32(trun, at - 4).unwrap_or(0)
                        })
                    };
                    let duration = read(tflags & 0x100 != 0).unwrap_or(dflt_duration);
                    let size = read(tflags & 0x200 != 0).unwrap_or(dflt_size);
                    let sflags = read(tflags & 0x400 != 0)
                        .or(if i == 0 { first_flags } else { None })
                        .unwrap_or(dflt_flags);
                    let cto = read(tflags & 0x800 != 0).map_or(0, |v| {
                        if version == 0 {
                            i64::from(v)
                        } else {
                            i64::from(v as i32)
                        }
                    });
                    let bytes = in_mdat(data_pos, u64::from(size))
                        .ok_or_else(|| Error::invalid("MP4 trun", "a sample outside its mdat"))?;
                    data_pos += u64::from(size);
                    let dts = t.next_dts;
                    t.next_dts = t.next_dts.wrapping_add(u64::from(duration));
                    let video = t.info.kind() == MediaKind::Video;
                    // sample_is_non_sync_sample (ISO/IEC 14496-12 8.8.3.1).
                    let keyframe = !video || sflags & 0x1_0000 == 0;
                    frames.push((t.out, keyframe, dts, cto, video, bytes));
                }
            }
            next_base = Some(data_pos);
        }
        let mut events = Vec::with_capacity(frames.len());
        for (out, keyframe, dts, cto, video, bytes) in frames {
            let t = &tracks[out];
            let rescale = |v: i128| -> i64 {
                (v * i128::from(t.info.clock_rate) / i128::from(t.timescale.max(1))) as i64
            };
            let dts_c = rescale(i128::from(dts));
            let pts_c = rescale(i128::from(dts) + i128::from(cto));
            let data = if t.info.name == CodecName::Av1 {
                let d = av1::normalize(bytes)?;
                if keyframe {
                    av1::with_sequence_header(&t.sets, d)
                } else {
                    d
                }
            } else if video {
                let mut d = Vec::with_capacity(bytes.len() + t.sets.len() + 16);
                if keyframe {
                    d.extend_from_slice(&t.sets);
                }
                let n = t.length_size;
                let mut rest = bytes;
                while !rest.is_empty() {
                    let len = rest
                        .get(..n)
                        .ok_or(truncated("MP4 NAL length"))?
                        .iter()
                        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
                    let nal = rest
                        .get(n..n.saturating_add(len))
                        .ok_or(truncated("MP4 NAL unit"))?;
                    push_length_prefixed(&mut d, nal);
                    rest = &rest[n + len..];
                }
                d
            } else {
                bytes.to_vec()
            };
            events.push(Ok(Fmp4Event::Frame {
                track: out,
                keyframe,
                pts: pts_c,
                dts: dts_c,
                data,
            }));
        }
        if self.tracks_pending {
            let Some(tracks) = self.tracks.as_mut() else {
                return Ok(());
            };
            for ev in &events {
                let Ok(Fmp4Event::Frame {
                    track,
                    keyframe: true,
                    data,
                    ..
                }) = ev
                else {
                    continue;
                };
                let Some(t) = tracks.iter_mut().find(|t| t.out == *track) else {
                    continue;
                };
                if t.info.name != CodecName::Av1 || !t.info.extradata.is_empty() {
                    continue;
                }
                if let Some(rec) = fmp4_av1_record(data) {
                    t.info = rec.codec_info();
                    t.sets = rec.sequence_header;
                }
            }
            if tracks
                .iter()
                .any(|t| t.info.name == CodecName::Av1 && t.info.extradata.is_empty())
            {
                return Ok(());
            }
            self.tracks_pending = false;
            let mut infos: Vec<(usize, CodecInfo)> =
                tracks.iter().map(|t| (t.out, t.info.clone())).collect();
            infos.sort_by_key(|(out, _)| *out);
            self.out.push_back(Ok(Fmp4Event::Tracks(
                infos.into_iter().map(|(_, i)| i).collect(),
            )));
            // Frames before the described keyframe cannot be decoded.
            let first = events.iter().position(|e| {
                matches!(e, Ok(Fmp4Event::Frame { keyframe: true, track, .. })
                    if tracks.iter().any(|t| t.out == *track && t.info.name == CodecName::Av1))
            });
            self.out.extend(events.into_iter().skip(first.unwrap_or(0)));
            return Ok(());
        }
        self.out.extend(events);
        Ok(())
    }
}

/// The configuration record from a keyframe's sequence header.
fn fmp4_av1_record(frame: &[u8]) -> Option<av1::ConfigRecord> {
    let sequence_header = av1::find_sequence_header(frame)?;
    let sequence = av1::SequenceHeader::find(&sequence_header).ok()?;
    Some(av1::ConfigRecord {
        sequence,
        sequence_header,
    })
}

/// A `trak`: `Ok(Ok(track))`, `Ok(Err(what))` for a codec left out, `Err`
/// for a broken box.
fn read_trak(trak: &[u8]) -> Result<std::result::Result<Track, String>> {
    let tkhd = child(trak, b"tkhd").ok_or(truncated("MP4 tkhd"))?;
    let id = if tkhd.first() == Some(&1) {
        be32(tkhd, 20)
    } else {
        be32(tkhd, 12)
    }
    .ok_or(truncated("MP4 tkhd"))?;
    let mdia = child(trak, b"mdia").ok_or(truncated("MP4 mdia"))?;
    let mdhd = child(mdia, b"mdhd").ok_or(truncated("MP4 mdhd"))?;
    let timescale = if mdhd.first() == Some(&1) {
        be32(mdhd, 20)
    } else {
        be32(mdhd, 12)
    }
    .ok_or(truncated("MP4 mdhd"))?;
    if timescale == 0 {
        return Err(Error::invalid("MP4 mdhd", "timescale 0"));
    }
    let stbl = child(mdia, b"minf")
        .and_then(|m| child(m, b"stbl"))
        .ok_or(truncated("MP4 stbl"))?;
    if child(stbl, b"stsz")
        .and_then(|s| be32(s, 8))
        .is_some_and(|n| n > 0)
    {
        return Err(Error::unsupported(
            "MP4",
            "not fragmented (samples in moov): only fragmented MP4 is read",
        ));
    }
    let stsd = child(stbl, b"stsd").ok_or(truncated("MP4 stsd"))?;
    let (kind, entry) = children(stsd.get(8..).ok_or(truncated("MP4 stsd"))?)
        .next()
        .ok_or(truncated("MP4 sample entry"))?;
    let mut t = Track {
        id,
        out: 0,
        info: CodecInfo::new(CodecName::H264, VIDEO_CLOCK_RATE),
        timescale,
        length_size: 4,
        sets: Vec::new(),
        default_duration: 0,
        default_size: 0,
        default_flags: 0,
        next_dts: 0,
    };
    match &kind {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" => {
            let h264 = kind.starts_with(b"avc");
            // VisualSampleEntry: 78 bytes before its child boxes.
            let boxes = entry
                .get(78..)
                .ok_or(truncated("MP4 visual sample entry"))?;
            let rec = child(boxes, if h264 { b"avcC" } else { b"hvcC" })
                .ok_or(truncated("MP4 decoder configuration"))?;
            let (length_size, sets) = if h264 {
                avc_record(rec)?
            } else {
                hevc_record(rec)?
            };
            t.info = record_codec_info(h264, &sets)?;
            t.length_size = length_size;
            for s in &sets {
                push_length_prefixed(&mut t.sets, s);
            }
        }
        b"av01" => {
            let boxes = entry
                .get(78..)
                .ok_or(truncated("MP4 visual sample entry"))?;
            let rec = child(boxes, b"av1C").ok_or(truncated("MP4 av1C"))?;
            // ffmpeg 5.1 with libaom writes an empty `av1C` under
            // `empty_moov` (the encoder has no global header yet): the
            // sequence header then comes with each keyframe, and the track
            // is described from the first one (see `tracks_pending`).
            if rec.len() <= 4 {
                t.info = CodecInfo::new(CodecName::Av1, VIDEO_CLOCK_RATE);
            } else {
                let rec = av1::ConfigRecord::parse(rec)?;
                t.info = rec.codec_info();
                t.sets = rec.sequence_header;
            }
        }
        b"mp4a" | b"Opus" => {
            // AudioSampleEntry: 28 bytes before its child boxes; QuickTime's
            // sound description versions 1 and 2 add 16 and 36.
            let skip = match be16(entry, 8) {
                Some(1) => 44,
                Some(2) => 64,
                _ => 28,
            };
            let boxes = entry
                .get(skip..)
                .ok_or(truncated("MP4 audio sample entry"))?;
            let channels = be16(entry, 16).unwrap_or(2);
            if &kind == b"Opus" {
                let mut info = CodecInfo::new(CodecName::Opus, 48_000);
                info.channels = child(boxes, b"dOps")
                    .and_then(|d| d.get(1))
                    .map_or(channels, |&c| u16::from(c));
                t.info = info;
            } else {
                let esds = child(boxes, b"esds").ok_or(truncated("MP4 esds"))?;
                let Some(asc) = esds_audio_config(esds.get(4..).unwrap_or(&[]))? else {
                    return Ok(Err("mp4a that is not AAC".into()));
                };
                let parsed = AudioSpecificConfig::parse(asc)?;
                let mut info = CodecInfo::new(CodecName::Aac, parsed.sample_rate());
                info.channels = channels_of(parsed.channel_config);
                info.profile = parsed.profile_name().to_string();
                info.extradata = asc.to_vec();
                t.info = info;
            }
        }
        other => return Ok(Err(String::from_utf8_lossy(other).into_owned())),
    }
    Ok(Ok(t))
}

/// An MPEG-4 descriptor (14496-1 7.2.2.1): tag, length in 1–4 bytes of 7
/// bits, then the body.
fn descriptor(b: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let tag = *b.first().ok_or(truncated("MP4 descriptor"))?;
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let x = *b.get(at).ok_or(truncated("MP4 descriptor"))?;
        len = (len << 7) | usize::from(x & 0x7F);
        at += 1;
        if x & 0x80 == 0 || at == 5 {
            break;
        }
    }
    let body = b
        .get(at..at.saturating_add(len))
        .ok_or(truncated("MP4 descriptor"))?;
    Ok((tag, body, &b[at + len..]))
}

/// The AudioSpecificConfig from an `esds` ES_Descriptor, `None` when the
/// object type is not AAC (0x40, or MPEG-2 AAC's 0x66–0x68).
fn esds_audio_config(b: &[u8]) -> Result<Option<&[u8]>> {
    let (tag, es, _) = descriptor(b)?;
    if tag != 3 {
        return Err(Error::invalid("MP4 esds", "no ES_Descriptor"));
    }
    let flags = *es.get(2).ok_or(truncated("MP4 esds"))?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at).ok_or(truncated("MP4 esds"))?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, dc, _) = descriptor(es.get(at..).ok_or(truncated("MP4 esds"))?)?;
    if tag != 4 {
        return Err(Error::invalid("MP4 esds", "no DecoderConfigDescriptor"));
    }
    if !matches!(dc.first(), Some(0x40 | 0x66..=0x68)) {
        return Ok(None);
    }
    let (tag, dsi, _) = descriptor(dc.get(13..).ok_or(truncated("MP4 esds"))?)?;
    if tag != 5 {
        return Err(Error::invalid("MP4 esds", "no DecoderSpecificInfo"));
    }
    Ok(Some(dsi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::{Fmp4Writer, Sample};
    use crate::h264;

    /// The fmp4_demux fuzz target's out-of-memory input: a trun whose
    /// samples all come from the defaults, counted in billions. Fed as the
    /// target feeds it (the first byte picks the chunk size); it must end in
    /// an error, not in gigabytes of empty samples.
    #[test]
    fn a_trun_of_countless_default_samples_is_refused() {
        let data = include_bytes!("../testdata/fuzz/fmp4_demux_oom_empty_samples.mp4");
        let (&first, rest) = data.split_first().unwrap();
        let mut d = Fmp4Demuxer::new();
        let mut frames = 0usize;
        let mut refused = false;
        for c in rest.chunks(usize::from(first % 64) + 1) {
            d.push(c);
            while let Some(ev) = d.poll() {
                match ev {
                    Ok(Fmp4Event::Frame { .. }) => frames += 1,
                    Ok(_) => {}
                    Err(e) => refused |= e.to_string().contains("too many samples"),
                }
            }
        }
        assert!(refused, "not refused");
        assert!(frames <= MAX_FRAGMENT_SAMPLES, "{frames} frames");
    }

    fn h264_info() -> CodecInfo {
        let pps = [0x68, 0xeb, 0xe3, 0xcb];
        h264::codec_info(&h264::tests::SPS_640X360_HIGH, Some(&pps)).unwrap()
    }

    fn aac_info() -> CodecInfo {
        let mut a = CodecInfo::new(CodecName::Aac, 48_000);
        a.channels = 2;
        a.extradata = vec![0x11, 0x90];
        a
    }

    /// (track, keyframe, pts, data).
    type Got = (usize, bool, i64, Vec<u8>);

    /// Our own writer's output read back: tracks, timestamps, keyframes.
    fn written() -> (Vec<u8>, Vec<Got>) {
        let tracks = [h264_info(), aac_info()];
        let mut w = Fmp4Writer::new(&tracks).unwrap();
        let mut bytes = w.init_segment();
        let mut want = Vec::new();
        for i in 0..6i64 {
            let key = i % 3 == 0;
            let mut frame = Vec::new();
            push_length_prefixed(
                &mut frame,
                if key { &[0x65, 1, 2, 3] } else { &[0x41, 9, 9] },
            );
            let s = Sample {
                dts: i * 3600,
                pts: i * 3600,
                keyframe: key,
                arrival_us: 0,
                data: &frame,
            };
            bytes.extend(w.fragment(0, &s).unwrap());
            want.push((0, key, i * 3600, frame));
            let a = vec![0x21, i as u8, 7];
            let s = Sample {
                dts: i * 1024,
                pts: i * 1024,
                keyframe: true,
                arrival_us: 0,
                data: &a,
            };
            bytes.extend(w.fragment(1, &s).unwrap());
            want.push((1, true, i * 1024, a));
        }
        (bytes, want)
    }

    fn read(d: &mut Fmp4Demuxer) -> (Vec<CodecInfo>, Vec<Got>, Vec<Error>) {
        let (mut tracks, mut frames, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(ev) = d.poll() {
            match ev {
                Ok(Fmp4Event::Tracks(t)) => tracks = t,
                Ok(Fmp4Event::Frame {
                    track,
                    keyframe,
                    pts,
                    data,
                    ..
                }) => frames.push((track, keyframe, pts, data)),
                Err(e) => errors.push(e),
            }
        }
        (tracks, frames, errors)
    }

    #[test]
    fn reads_what_the_writer_wrote_in_any_chunking() {
        let (bytes, want) = written();
        for chunk in [1, 7, 188, bytes.len()] {
            let mut d = Fmp4Demuxer::new();
            for c in bytes.chunks(chunk) {
                d.push(c);
            }
            let (tracks, frames, errors) = read(&mut d);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(tracks.len(), 2);
            assert_eq!((tracks[0].name, tracks[0].width), (CodecName::H264, 640));
            assert_eq!(
                (tracks[1].name, tracks[1].clock_rate),
                (CodecName::Aac, 48_000)
            );
            assert_eq!(frames.len(), want.len());
            for (got, want) in frames.iter().zip(&want) {
                assert_eq!((got.0, got.1, got.2), (want.0, want.1, want.2));
                if got.1 && got.0 == 0 {
                    // A keyframe is led by the parameter sets.
                    assert!(got.3.ends_with(&want.3) && got.3.len() > want.3.len());
                } else {
                    assert_eq!(got.3, want.3);
                }
            }
        }
    }

    #[test]
    fn a_second_identical_init_segment_is_taken() {
        let (bytes, _) = written();
        let init = Fmp4Writer::new(&[h264_info(), aac_info()])
            .unwrap()
            .init_segment();
        let mut d = Fmp4Demuxer::new();
        d.push(&bytes);
        d.push(&init);
        d.push(&bytes[init.len()..]);
        let (_, frames, errors) = read(&mut d);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(frames.len(), 24);
    }

    #[test]
    fn oversized_and_broken_boxes_are_errors_not_allocations() {
        let mut d = Fmp4Demuxer::new();
        d.push(b"\x7f\xff\xff\xffmoov");
        assert!(d.failed());
        assert!(matches!(read(&mut d).2[..], [Error::Invalid { .. }]));

        // A plain MP4 whose mdat comes first.
        let mut d = Fmp4Demuxer::new();
        d.push(b"\0\0\0\x10mdat\0\0\0\0\0\0\0\0");
        assert!(d.failed());

        // A fragment whose sample points past its mdat.
        let (bytes, _) = written();
        let mut d = Fmp4Demuxer::new();
        let init_len = Fmp4Writer::new(&[h264_info(), aac_info()])
            .unwrap()
            .init_segment()
            .len();
        let mut broken = bytes.clone();
        // The first fragment's mdat, one byte shorter than the trun says.
        let moof_len = be32(&broken, init_len).unwrap() as usize;
        let mdat_at = init_len + moof_len;
        let mdat_len = be32(&broken, mdat_at).unwrap();
        broken[mdat_at..mdat_at + 4].copy_from_slice(&(mdat_len - 1).to_be_bytes());
        broken.remove(mdat_at + mdat_len as usize - 1);
        d.push(&broken);
        let (tracks, frames, errors) = read(&mut d);
        assert_eq!(tracks.len(), 2);
        assert!(!errors.is_empty());
        // Every other fragment still plays.
        assert_eq!(frames.len(), 11);
    }

    /// ffmpeg's own output (the fuzz seeds, after their chunk-size byte):
    /// `-movflags frag_keyframe+empty_moov+default_base_moof` with H.264 +
    /// AAC, and an HLS fMP4 init segment + `.m4s` with H.265.
    #[test]
    fn reads_ffmpeg_fragmented_mp4_and_hls_segments() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/fmp4_demux/");
        // Keyframe flags in decode order, as ffprobe -show_packets gives them.
        let (t, f) = (true, false);
        let cases = [
            (
                "seed-ffmpeg-h264-aac-frag",
                &[CodecName::H264, CodecName::Aac][..],
                [t, f, f, f, f, t],
            ),
            (
                "seed-ffmpeg-hls-hevc",
                &[CodecName::H265][..],
                [t, t, f, f, f, f],
            ),
            // libsvtav1 (64x64, its smallest), -g 5, `-movflags
            // frag_keyframe+empty_moov+default_base_moof`.
            (
                "seed-ffmpeg-svtav1-frag",
                &[CodecName::Av1][..],
                [t, f, f, f, f, t],
            ),
            // libaom-av1, the same: its `av1C` is empty.
            (
                "seed-ffmpeg-aomav1-frag",
                &[CodecName::Av1][..],
                [t, f, f, f, f, t],
            ),
        ];
        for (file, want, keys) in cases {
            let bytes = std::fs::read(format!("{seeds}{file}")).unwrap();
            let mut d = Fmp4Demuxer::new();
            d.push(&bytes[1..]);
            let (tracks, got, errors) = read(&mut d);
            assert!(errors.is_empty(), "{file}: {errors:?}");
            let names: Vec<_> = tracks.iter().map(|t| t.name).collect();
            assert_eq!(names, want, "{file}");
            let size = match file {
                "seed-ffmpeg-svtav1-frag" => (64, 64),
                // Described by its first keyframe's sequence header.
                "seed-ffmpeg-aomav1-frag" => (64, 48),
                _ => (64, 48),
            };
            assert_eq!((tracks[0].width, tracks[0].height), size, "{file}");
            let video: Vec<_> = got.iter().filter(|f| f.0 == 0).collect();
            let got_keys: Vec<bool> = video.iter().map(|f| f.1).collect();
            assert_eq!(got_keys, keys, "{file}");
            // 10 fps in the 90 kHz clock.
            if names[0] == CodecName::Av1 {
                assert_eq!(tracks[0].extradata.first(), Some(&0x81), "the av1C record");
                for (_, key, _, data) in &video {
                    // Sized OBUs; keyframes led by the sequence header and
                    // key frames by their own header.
                    assert!(crate::av1::obus(data).all(|o| o.is_ok_and(|o| o.header[0] & 2 != 0)));
                    assert_eq!(*key, crate::av1::is_keyframe(data, false));
                    if *key {
                        assert!(crate::av1::find_sequence_header(data).is_some());
                    }
                }
            }
            let mut pts: Vec<i64> = video.iter().map(|f| f.2).collect();
            pts.sort_unstable();
            assert_eq!(pts[1] - pts[0], 9000, "{file}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let (bytes, _) = written();
        let mut seed = 1u32;
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..8 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (seed as usize >> 4) % b.len();
                b[i] = (seed >> 20) as u8;
            }
            let mut d = Fmp4Demuxer::new();
            d.push(&b);
            while d.poll().is_some() {}
        }
    }
}
