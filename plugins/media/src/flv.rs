//! FLV (Adobe Flash Video File Format Specification v10.1, Annex E): a sans-IO
//! demuxer and muxer for H.264, AAC and G.711, plus H.265 both as Enhanced
//! RTMP's `hvc1` FourCC (veovera enhanced-rtmp v1, what ffmpeg 6.1+ and OBS
//! write) and as the older codec id 12 some Chinese cameras and servers use,
//! AV1 as Enhanced RTMP's `av01` (SequenceStart with the `av1C` record,
//! CodedFrames/CodedFramesX of OBUs without a composition time, SequenceEnd),
//! and Opus as Enhanced RTMP v2's audio FourCC `Opus`.
//!
//! ```
//! use camrouter_media::flv::{FlvDemuxer, FlvEvent};
//! let mut d = FlvDemuxer::new();
//! d.push(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
//! assert!(matches!(d.poll(), Some(Ok(FlvEvent::Header { audio: true, video: true }))));
//! ```

use std::collections::VecDeque;

use crate::adts::{channels_of, AudioSpecificConfig};
use crate::annexb::{avcc_units, push_length_prefixed};
use crate::codec::{CodecInfo, CodecName};
use crate::error::{Error, Result};
use crate::{av1, h264, h265};

/// FLV header (9 bytes) plus PreviousTagSize0.
pub const HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
/// Tag types (E.4.1).
pub mod tag_type {
    /// Audio data.
    pub const AUDIO: u8 = 8;
    /// Video data.
    pub const VIDEO: u8 = 9;
    /// Script data (AMF0 `onMetaData`), skipped.
    pub const SCRIPT: u8 = 18;
}
/// Legacy video codec ids (E.4.3.1).
const CODEC_AVC: u8 = 7;
const CODEC_HEVC_LEGACY: u8 = 12;
/// Sound formats (E.4.2.1).
const SOUND_PCMA: u8 = 7;
const SOUND_PCMU: u8 = 8;
const SOUND_AAC: u8 = 10;
/// Enhanced RTMP v2: the sound format that announces an extended audio
/// header (packet type in the low nibble, then a FourCC).
const SOUND_EX_HEADER: u8 = 9;
/// Enhanced RTMP audio packet types.
const EX_AUDIO_SEQUENCE_START: u8 = 0;
const EX_AUDIO_CODED_FRAMES: u8 = 1;
/// Enhanced RTMP video packet types.
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;

/// What the demuxer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvEvent {
    /// The file header: which kinds of tags it announces.
    Header {
        /// Audio tags announced.
        audio: bool,
        /// Video tags announced.
        video: bool,
    },
    /// A track's description from its sequence header (or, for G.711, its
    /// first tag). Comes again when the stream changes parameters.
    Config {
        /// A video track (else audio).
        video: bool,
        /// Its description.
        info: CodecInfo,
    },
    /// One frame. Video data is 4-byte length-prefixed NAL units (a
    /// keyframe starts with the parameter sets), or for AV1 a temporal unit
    /// of sized OBUs (a keyframe starts with the sequence header); audio is
    /// a raw AAC frame, an Opus packet or G.711 samples.
    Frame {
        /// A video frame (else audio).
        video: bool,
        /// Random access point (always true for audio).
        keyframe: bool,
        /// Decode time in milliseconds, as the tag has it.
        dts_ms: i64,
        /// Presentation time in milliseconds (decode time plus the
        /// composition offset).
        pts_ms: i64,
        /// The frame.
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Default)]
struct VideoState {
    /// NAL unit length field size from the configuration record.
    length_size: usize,
    /// Parameter sets, 4-byte length-prefixed, for keyframes (AV1: the
    /// sequence header OBU).
    sets: Vec<u8>,
    codec: Option<CodecName>,
}

/// Sans-IO FLV demuxer: push bytes, poll events.
#[derive(Debug, Clone, Default)]
pub struct FlvDemuxer {
    buf: Vec<u8>,
    header_done: bool,
    failed: bool,
    video: VideoState,
    audio: Option<CodecInfo>,
    /// Reported once each: codecs we skip.
    skipped_video: bool,
    skipped_audio: bool,
    out: VecDeque<Result<FlvEvent>>,
}

impl FlvDemuxer {
    /// A demuxer expecting the FLV header.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream's framing is broken; nothing more will come out.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Next event; `Err` items report a tag that was skipped, or (with
    /// [`failed`](Self::failed)) the end of the stream.
    pub fn poll(&mut self) -> Option<Result<FlvEvent>> {
        self.out.pop_front()
    }

    /// Feed bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if !self.header_done {
                let Some(h) = rest.get(..HEADER_LEN) else {
                    break;
                };
                if &h[..3] != b"FLV" {
                    return self.fail(Error::invalid("FLV header", "no FLV signature"));
                }
                let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
                if !(HEADER_LEN..=1024).contains(&offset) {
                    return self.fail(Error::invalid("FLV header", "data offset"));
                }
                // The header, then PreviousTagSize0.
                if rest.len() < offset + 4 {
                    break;
                }
                self.out.push_back(Ok(FlvEvent::Header {
                    audio: h[4] & 0x04 != 0,
                    video: h[4] & 0x01 != 0,
                }));
                self.header_done = true;
                pos += offset + 4;
                continue;
            }
            let Some(t) = rest.get(..TAG_HEADER_LEN) else {
                break;
            };
            // Bit 5 is the filter (encryption) flag, bits 6-7 reserved.
            if t[0] & 0xC0 != 0 {
                return self.fail(Error::invalid("FLV tag", "reserved bits set"));
            }
            if t[0] & 0x20 != 0 {
                return self.fail(Error::unsupported("FLV tag", "encrypted (filtered)"));
            }
            let kind = t[0] & 0x1F;
            if !matches!(kind, tag_type::AUDIO | tag_type::VIDEO | tag_type::SCRIPT) {
                return self.fail(Error::invalid("FLV tag", format!("type {kind}")));
            }
            let size = u32::from_be_bytes([0, t[1], t[2], t[3]]) as usize;
            let ts = u32::from_be_bytes([t[7], t[4], t[5], t[6]]);
            let total = TAG_HEADER_LEN + size + 4;
            if rest.len() < total {
                break;
            }
            let body = rest[TAG_HEADER_LEN..TAG_HEADER_LEN + size].to_vec();
            pos += total;
            let r = match kind {
                tag_type::VIDEO => self.video_tag(i64::from(ts), &body),
                tag_type::AUDIO => self.audio_tag(i64::from(ts), &body),
                _ => Ok(()),
            };
            if let Err(e) = r {
                self.out.push_back(Err(e));
            }
        }
        self.buf.drain(..pos);
    }

    fn fail(&mut self, e: Error) {
        self.failed = true;
        self.buf = Vec::new();
        self.out.push_back(Err(e));
    }

    fn video_tag(&mut self, ts: i64, b: &[u8]) -> Result<()> {
        let Some(&b0) = b.first() else {
            return Ok(());
        };
        // E.4.3.1: frame type 5 is a video info/command frame, no picture.
        let (frame_type, packet_type, codec, payload, cts) = if b0 & 0x80 != 0 {
            let fourcc = b.get(1..5).ok_or(Error::Truncated("FLV video FourCC"))?;
            let packet_type = b0 & 0x0F;
            let codec = match fourcc {
                b"hvc1" => CodecName::H265,
                b"av01" => CodecName::Av1,
                _ => return self.skip_video(format!("FourCC {}", String::from_utf8_lossy(fourcc))),
            };
            // Only avc1/hvc1 CodedFrames carry a composition time offset.
            let (payload, cts) = match packet_type {
                EX_CODED_FRAMES if codec == CodecName::H265 => {
                    (b.get(8..).unwrap_or(&[]), cts24(b.get(5..8))?)
                }
                _ => (b.get(5..).unwrap_or(&[]), 0),
            };
            // SequenceEnd, Metadata, MPEG2TSSequenceStart, multitrack and
            // ModEx carry no picture.
            let packet_type = match packet_type {
                EX_SEQUENCE_START => 0,
                EX_CODED_FRAMES | EX_CODED_FRAMES_X => 1,
                _ => return Ok(()),
            };
            ((b0 >> 4) & 0x07, packet_type, codec, payload, cts)
        } else {
            let codec = match b0 & 0x0F {
                CODEC_AVC => CodecName::H264,
                CODEC_HEVC_LEGACY => CodecName::H265,
                id => return self.skip_video(format!("codec id {id}")),
            };
            let packet_type = *b.get(1).ok_or(Error::Truncated("FLV AVC packet type"))?;
            let cts = cts24(b.get(2..5))?;
            (b0 >> 4, packet_type, codec, b.get(5..).unwrap_or(&[]), cts)
        };
        if frame_type == 5 {
            return Ok(());
        }
        match packet_type {
            0 => {
                let info = self.video_config(codec, payload)?;
                self.out
                    .push_back(Ok(FlvEvent::Config { video: true, info }));
                Ok(())
            }
            1 => {
                if self.video.codec != Some(codec) {
                    // Frames before any sequence header cannot be decoded.
                    return Ok(());
                }
                let keyframe = frame_type == 1;
                if codec == CodecName::Av1 {
                    let mut data = av1::normalize(payload)?;
                    if keyframe {
                        data = av1::with_sequence_header(&self.video.sets, data);
                    }
                    if !data.is_empty() {
                        self.out.push_back(Ok(FlvEvent::Frame {
                            video: true,
                            keyframe,
                            dts_ms: ts,
                            pts_ms: ts,
                            data,
                        }));
                    }
                    return Ok(());
                }
                let mut data = Vec::with_capacity(payload.len() + self.video.sets.len());
                if keyframe {
                    data.extend_from_slice(&self.video.sets);
                }
                let n = self.video.length_size;
                let mut rest = payload;
                while !rest.is_empty() {
                    let len_bytes = rest.get(..n).ok_or(Error::Truncated("FLV NAL length"))?;
                    let len = len_bytes
                        .iter()
                        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
                    let nal = rest
                        .get(n..n + len)
                        .ok_or(Error::Truncated("FLV NAL unit"))?;
                    push_length_prefixed(&mut data, nal);
                    rest = &rest[n + len..];
                }
                self.out.push_back(Ok(FlvEvent::Frame {
                    video: true,
                    keyframe,
                    dts_ms: ts,
                    pts_ms: ts + i64::from(cts),
                    data,
                }));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn skip_video(&mut self, what: String) -> Result<()> {
        if std::mem::replace(&mut self.skipped_video, true) {
            return Ok(());
        }
        Err(Error::unsupported("FLV video", what))
    }

    fn video_config(&mut self, codec: CodecName, rec: &[u8]) -> Result<CodecInfo> {
        if codec == CodecName::Av1 {
            let rec = av1::ConfigRecord::parse(rec)?;
            self.video = VideoState {
                length_size: 0,
                sets: rec.sequence_header.clone(),
                codec: Some(codec),
            };
            return Ok(rec.codec_info());
        }
        let (length_size, sets) = match codec {
            CodecName::H264 => avc_record(rec)?,
            _ => hevc_record(rec)?,
        };
        let info = record_codec_info(codec == CodecName::H264, &sets)?;
        let mut prefixed = Vec::new();
        for s in &sets {
            push_length_prefixed(&mut prefixed, s);
        }
        self.video = VideoState {
            length_size,
            sets: prefixed,
            codec: Some(codec),
        };
        Ok(info)
    }

    fn audio_tag(&mut self, ts: i64, b: &[u8]) -> Result<()> {
        let Some(&b0) = b.first() else {
            return Ok(());
        };
        let format = b0 >> 4;
        let data = match format {
            SOUND_AAC => {
                let packet_type = *b.get(1).ok_or(Error::Truncated("FLV AAC packet type"))?;
                let payload = b.get(2..).unwrap_or(&[]);
                if packet_type == 0 {
                    let asc = AudioSpecificConfig::parse(payload)?;
                    let mut info = CodecInfo::new(CodecName::Aac, asc.sample_rate());
                    info.channels = channels_of(asc.channel_config);
                    info.profile = asc.profile_name().to_string();
                    info.extradata = payload.to_vec();
                    self.audio = Some(info.clone());
                    self.out
                        .push_back(Ok(FlvEvent::Config { video: false, info }));
                    return Ok(());
                }
                if self.audio.as_ref().is_none_or(|a| a.name != CodecName::Aac) {
                    return Ok(());
                }
                payload
            }
            SOUND_PCMA | SOUND_PCMU => {
                let name = if format == SOUND_PCMA {
                    CodecName::Pcma
                } else {
                    CodecName::Pcmu
                };
                if self.audio.as_ref().is_none_or(|a| a.name != name) {
                    // E.4.2.1: G.711 in FLV is 8 kHz mono whatever the
                    // rate bits say.
                    let mut info = CodecInfo::new(name, 8000);
                    info.channels = 1;
                    self.audio = Some(info.clone());
                    self.out
                        .push_back(Ok(FlvEvent::Config { video: false, info }));
                }
                b.get(1..).unwrap_or(&[])
            }
            SOUND_EX_HEADER => {
                let packet_type = b0 & 0x0F;
                let fourcc = b.get(1..5).ok_or(Error::Truncated("FLV audio FourCC"))?;
                if fourcc != b"Opus" {
                    if std::mem::replace(&mut self.skipped_audio, true) {
                        return Ok(());
                    }
                    return Err(Error::unsupported(
                        "FLV audio",
                        format!("FourCC {}", String::from_utf8_lossy(fourcc)),
                    ));
                }
                let payload = b.get(5..).unwrap_or(&[]);
                match packet_type {
                    EX_AUDIO_SEQUENCE_START => {
                        self.opus_config(Some(payload));
                        return Ok(());
                    }
                    EX_AUDIO_CODED_FRAMES => {
                        // The sequence start (the Opus ID header) is optional.
                        if self
                            .audio
                            .as_ref()
                            .is_none_or(|a| a.name != CodecName::Opus)
                        {
                            self.opus_config(None);
                        }
                        payload
                    }
                    // Sequence end, multichannel config, multitrack, ModEx:
                    // nothing we play.
                    _ => return Ok(()),
                }
            }
            other => {
                if std::mem::replace(&mut self.skipped_audio, true) {
                    return Ok(());
                }
                return Err(Error::unsupported(
                    "FLV audio",
                    format!("sound format {other}"),
                ));
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        self.out.push_back(Ok(FlvEvent::Frame {
            video: false,
            keyframe: true,
            dts_ms: ts,
            pts_ms: ts,
            data: data.to_vec(),
        }));
        Ok(())
    }
}

impl FlvDemuxer {
    /// Opus's track from its ID header (RFC 7845 §5.1: channel count at
    /// byte 9), or stereo without one; RTP's Opus clock is always 48 kHz.
    fn opus_config(&mut self, head: Option<&[u8]>) {
        let mut info = CodecInfo::new(CodecName::Opus, 48_000);
        info.channels = 2;
        if let Some(h) = head.filter(|h| h.len() >= 19 && h.starts_with(b"OpusHead")) {
            info.channels = u16::from(h[9].max(1));
            info.extradata = h.to_vec();
        }
        self.audio = Some(info.clone());
        self.out
            .push_back(Ok(FlvEvent::Config { video: false, info }));
    }
}

/// An Opus ID header (RFC 7845 §5.1) for a track that has none: version 1,
/// its channels, no pre-skip, 48 kHz, no gain, mapping family 0.
fn opus_head(info: &CodecInfo) -> Vec<u8> {
    if info.extradata.starts_with(b"OpusHead") {
        return info.extradata.clone();
    }
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(info.channels.clamp(1, 2) as u8);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// Signed 24-bit composition time offset (ms).
fn cts24(b: Option<&[u8]>) -> Result<i32> {
    let b = b.ok_or(Error::Truncated("FLV composition time"))?;
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    Ok((v << 8) >> 8)
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): the NAL length
/// size and the parameter sets.
/// The codec of an avcC (`h264`) or hvcC record's parameter sets, as
/// [`avc_record`] / [`hevc_record`] return them (FLV and MP4 alike).
pub(crate) fn record_codec_info(h264: bool, sets: &[Vec<u8>]) -> Result<CodecInfo> {
    let find = |pick: &dyn Fn(&[u8]) -> bool| sets.iter().find(|n| pick(n)).cloned();
    Ok(if h264 {
        let sps = find(&|n| h264::nal_type_of(n) == h264::nal_type::SPS)
            .ok_or_else(|| Error::invalid("AVC configuration", "no SPS"))?;
        let pps = find(&|n| h264::nal_type_of(n) == h264::nal_type::PPS);
        h264::codec_info(&sps, pps.as_deref())?
    } else {
        let sps = find(&|n| h265::nal_type_of(n) == h265::nal_type::SPS)
            .ok_or_else(|| Error::invalid("HEVC configuration", "no SPS"))?;
        let vps = find(&|n| h265::nal_type_of(n) == h265::nal_type::VPS);
        let pps = find(&|n| h265::nal_type_of(n) == h265::nal_type::PPS);
        h265::codec_info(vps.as_deref(), &sps, pps.as_deref())?
    })
}

pub(crate) fn avc_record(b: &[u8]) -> Result<(usize, Vec<Vec<u8>>)> {
    let t = Error::Truncated("AVC configuration");
    let head = b.get(..6).ok_or(t.clone())?;
    let length_size = usize::from(head[4] & 3) + 1;
    let mut sets = Vec::new();
    let mut pos = 6;
    let mut count = usize::from(head[5] & 0x1F);
    for round in 0..2 {
        for _ in 0..count {
            let len = b.get(pos..pos + 2).ok_or(t.clone())?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            sets.push(b.get(pos + 2..pos + 2 + len).ok_or(t.clone())?.to_vec());
            pos += 2 + len;
        }
        if round == 0 {
            count = usize::from(*b.get(pos).ok_or(t.clone())?);
            pos += 1;
        }
    }
    Ok((length_size, sets))
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
pub(crate) fn hevc_record(b: &[u8]) -> Result<(usize, Vec<Vec<u8>>)> {
    let t = Error::Truncated("HEVC configuration");
    let head = b.get(..23).ok_or(t.clone())?;
    let length_size = usize::from(head[21] & 3) + 1;
    let mut sets = Vec::new();
    let mut pos = 23;
    for _ in 0..head[22] {
        let n = b.get(pos + 1..pos + 3).ok_or(t.clone())?;
        pos += 3;
        for _ in 0..u16::from_be_bytes([n[0], n[1]]) {
            let len = b.get(pos..pos + 2).ok_or(t.clone())?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            sets.push(b.get(pos + 2..pos + 2 + len).ok_or(t.clone())?.to_vec());
            pos += 2 + len;
        }
    }
    Ok((length_size, sets))
}

/// One track of the muxer.
#[derive(Debug, Clone)]
struct MuxTrack {
    info: CodecInfo,
    /// The sequence header's body (after the tag's codec bytes).
    config: Vec<u8>,
}

/// Sans-IO FLV muxer for one video (H.264, H.265, AV1) and one audio track
/// (AAC, G.711, Opus). Frames go in as the graph carries them: video as
/// 4-byte length-prefixed NAL units or AV1 OBUs, audio raw.
#[derive(Debug, Clone)]
pub struct FlvMuxer {
    /// Per input track: its slot, or `None` when FLV cannot carry it.
    tracks: Vec<Option<MuxTrack>>,
}

impl FlvMuxer {
    /// Codecs FLV carries here.
    pub fn supports(name: CodecName) -> bool {
        matches!(
            name,
            CodecName::H264
                | CodecName::H265
                | CodecName::Av1
                | CodecName::Aac
                | CodecName::Pcma
                | CodecName::Pcmu
                | CodecName::Opus
        )
    }

    /// The first video and the first audio track FLV can carry are used;
    /// others are left out. Fails when none is usable.
    pub fn new(tracks: &[CodecInfo]) -> Result<FlvMuxer> {
        let mut have_video = false;
        let mut have_audio = false;
        let mut out = Vec::new();
        for info in tracks {
            let video = info.kind() == crate::codec::MediaKind::Video;
            let taken = if video { have_video } else { have_audio };
            if taken || !Self::supports(info.name) {
                out.push(None);
                continue;
            }
            let config = match info.name {
                CodecName::H264 | CodecName::H265 => crate::fmp4::decoder_config(info)?,
                CodecName::Aac => crate::fmp4::decoder_config(info)?,
                CodecName::Opus => opus_head(info),
                CodecName::Av1 => av1::config_record(&info.extradata)?.to_bytes(),
                _ => Vec::new(),
            };
            if video {
                have_video = true;
            } else {
                have_audio = true;
            }
            out.push(Some(MuxTrack {
                info: info.clone(),
                config,
            }));
        }
        if !have_video && !have_audio {
            return Err(Error::unsupported(
                "FLV",
                "no H.264/H.265/AV1/AAC/G.711/Opus track",
            ));
        }
        Ok(FlvMuxer { tracks: out })
    }

    /// Whether input track `track` goes into the file.
    pub fn carries(&self, track: usize) -> bool {
        matches!(self.tracks.get(track), Some(Some(_)))
    }

    /// The file header, PreviousTagSize0 and the sequence headers.
    pub fn header(&self) -> Vec<u8> {
        let used = || self.tracks.iter().flatten();
        let audio = used().any(|t| t.info.kind() != crate::codec::MediaKind::Video);
        let video = used().any(|t| t.info.kind() == crate::codec::MediaKind::Video);
        let flags = (u8::from(audio) << 2) | u8::from(video);
        let mut b = vec![b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0];
        for t in used() {
            match t.info.name {
                CodecName::H264 => {
                    let mut body = vec![0x17, 0, 0, 0, 0];
                    body.extend_from_slice(&t.config);
                    tag(&mut b, tag_type::VIDEO, 0, &body);
                }
                CodecName::H265 | CodecName::Av1 => {
                    let mut body = vec![0x80 | 0x10 | EX_SEQUENCE_START];
                    body.extend_from_slice(fourcc(t.info.name));
                    body.extend_from_slice(&t.config);
                    tag(&mut b, tag_type::VIDEO, 0, &body);
                }
                CodecName::Aac => {
                    let mut body = vec![aac_byte(), 0];
                    body.extend_from_slice(&t.config);
                    tag(&mut b, tag_type::AUDIO, 0, &body);
                }
                CodecName::Opus => {
                    let mut body = vec![(SOUND_EX_HEADER << 4) | EX_AUDIO_SEQUENCE_START];
                    body.extend_from_slice(b"Opus");
                    body.extend_from_slice(&t.config);
                    tag(&mut b, tag_type::AUDIO, 0, &body);
                }
                _ => {}
            }
        }
        b
    }

    /// The video track's end of sequence (AVC end of sequence, E-RTMP
    /// SequenceEnd), for a publisher that stops cleanly; `None` without video.
    pub fn sequence_end(&self, dts_ms: u32) -> Option<Vec<u8>> {
        let t = self
            .tracks
            .iter()
            .flatten()
            .find(|t| t.info.kind() == crate::codec::MediaKind::Video)?;
        let body = match t.info.name {
            CodecName::H264 => vec![0x17, 2, 0, 0, 0],
            name => {
                let mut body = vec![0x80 | 0x10 | EX_SEQUENCE_END];
                body.extend_from_slice(fourcc(name));
                body
            }
        };
        let mut b = Vec::new();
        tag(&mut b, tag_type::VIDEO, dts_ms, &body);
        Some(b)
    }

    /// One frame as a tag (with its PreviousTagSize); `None` for a track
    /// that is left out or an empty frame. `dts_ms` is the decode time, `cts_ms`
    /// the composition offset (pts - dts), both in milliseconds.
    pub fn frame(
        &self,
        track: usize,
        dts_ms: u32,
        cts_ms: i32,
        keyframe: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        let t = self.tracks.get(track)?.as_ref()?;
        if data.is_empty() {
            return None;
        }
        let mut body = Vec::with_capacity(data.len() + 8);
        let cts = cts_ms.clamp(-(1 << 23), (1 << 23) - 1).to_be_bytes();
        let frame_type = if keyframe { 1 } else { 2 };
        let kind = match t.info.name {
            CodecName::H264 => {
                body.extend_from_slice(&[(frame_type << 4) | CODEC_AVC, 1]);
                body.extend_from_slice(&cts[1..]);
                tag_type::VIDEO
            }
            CodecName::H265 => {
                body.push(0x80 | (frame_type << 4) | EX_CODED_FRAMES);
                body.extend_from_slice(b"hvc1");
                body.extend_from_slice(&cts[1..]);
                tag_type::VIDEO
            }
            CodecName::Av1 => {
                // No composition offset: AV1 has no reordering in the
                // container (hidden frames come out with the shown one).
                if av1::obus(data).any(|o| o.is_err()) {
                    return None;
                }
                body.push(0x80 | (frame_type << 4) | EX_CODED_FRAMES);
                body.extend_from_slice(b"av01");
                tag_type::VIDEO
            }
            CodecName::Aac => {
                body.extend_from_slice(&[aac_byte(), 1]);
                tag_type::AUDIO
            }
            CodecName::Pcma => {
                // 5.5 kHz rate bits, 16-bit, mono: the rate field cannot say
                // 8 kHz and readers ignore it for G.711.
                body.push((SOUND_PCMA << 4) | 0x02);
                tag_type::AUDIO
            }
            CodecName::Pcmu => {
                body.push((SOUND_PCMU << 4) | 0x02);
                tag_type::AUDIO
            }
            CodecName::Opus => {
                body.push((SOUND_EX_HEADER << 4) | EX_AUDIO_CODED_FRAMES);
                body.extend_from_slice(b"Opus");
                tag_type::AUDIO
            }
            _ => return None,
        };
        if kind == tag_type::VIDEO && t.info.name != CodecName::Av1 {
            // Already 4-byte length-prefixed, which the configuration records
            // we write announce.
            if avcc_units(data).any(|n| n.is_err()) {
                return None;
            }
        }
        body.extend_from_slice(data);
        if body.len() > 0xFF_FFFF {
            return None;
        }
        let mut b = Vec::with_capacity(body.len() + TAG_HEADER_LEN + 4);
        tag(&mut b, kind, dts_ms, &body);
        Some(b)
    }
}

/// The Enhanced RTMP FourCC of a video codec that has one.
fn fourcc(name: CodecName) -> &'static [u8; 4] {
    match name {
        CodecName::Av1 => b"av01",
        _ => b"hvc1",
    }
}

/// AAC, 44 kHz, 16-bit, stereo: E.4.2.1 says AAC always writes these bits.
fn aac_byte() -> u8 {
    (SOUND_AAC << 4) | 0x0F
}

fn tag(b: &mut Vec<u8>, kind: u8, ts_ms: u32, body: &[u8]) {
    let size = body.len() as u32;
    b.push(kind);
    b.extend_from_slice(&size.to_be_bytes()[1..]);
    let ts = ts_ms.to_be_bytes();
    b.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(body);
    b.extend_from_slice(&(size + TAG_HEADER_LEN as u32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::tests::SPS_640X360_HIGH;

    const PPS: [u8; 6] = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn events(d: &mut FlvDemuxer) -> Vec<Result<FlvEvent>> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    fn tracks() -> Vec<CodecInfo> {
        let video = h264::codec_info(&SPS_640X360_HIGH, Some(&PPS)).unwrap();
        let mut audio = CodecInfo::new(CodecName::Aac, 48_000);
        audio.channels = 2;
        audio.extradata = vec![0x11, 0x90];
        vec![video, audio]
    }

    #[test]
    fn muxed_file_demuxes_back() {
        let m = FlvMuxer::new(&tracks()).unwrap();
        let mut file = m.header();
        let idr = [0, 0, 0, 4, 0x65, 0x88, 0x84, 0x00];
        let p = [0, 0, 0, 3, 0x41, 0x9a, 0x02];
        file.extend(m.frame(0, 0, 80, true, &idr).unwrap());
        file.extend(m.frame(1, 10, 0, true, &[0x21; 10]).unwrap());
        file.extend(m.frame(0, 40, -40, false, &p).unwrap());
        // A timestamp past 24 bits uses the extension byte.
        file.extend(m.frame(0, 0x0100_0010, 0, false, &p).unwrap());

        let mut d = FlvDemuxer::new();
        for c in file.chunks(7) {
            d.push(c);
        }
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            ev[0],
            FlvEvent::Header {
                audio: true,
                video: true
            }
        );
        let FlvEvent::Config { video: true, info } = &ev[1] else {
            panic!("{:?}", ev[1])
        };
        assert_eq!((info.width, info.height), (640, 360));
        let FlvEvent::Config { video: false, info } = &ev[2] else {
            panic!("{:?}", ev[2])
        };
        assert_eq!((info.clock_rate, info.channels), (48_000, 2));
        let FlvEvent::Frame {
            keyframe: true,
            dts_ms: 0,
            pts_ms: 80,
            data,
            ..
        } = &ev[3]
        else {
            panic!("{:?}", ev[3])
        };
        // Parameter sets first, then the IDR.
        assert_eq!(data.len(), 4 + 26 + 4 + 6 + idr.len());
        assert!(data.ends_with(&idr));
        assert!(
            matches!(&ev[4], FlvEvent::Frame { video: false, dts_ms: 10, data, .. } if data == &[0x21; 10])
        );
        assert!(
            matches!(&ev[5], FlvEvent::Frame { video: true, keyframe: false, dts_ms: 40, pts_ms: 0, data, .. } if data == &p)
        );
        assert!(matches!(
            &ev[6],
            FlvEvent::Frame {
                dts_ms: 0x0100_0010,
                ..
            }
        ));
        assert_eq!(ev.len(), 7);
    }

    #[test]
    fn rejects_garbage_and_reports_once() {
        let mut d = FlvDemuxer::new();
        d.push(b"GIF89a........");
        assert!(matches!(d.poll(), Some(Err(Error::Invalid { .. }))));
        assert!(d.failed());
        d.push(b"more");
        assert!(d.poll().is_none());

        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
        d.push(&[0x55; 20]);
        let ev = events(&mut d);
        assert!(
            matches!(ev.last(), Some(Err(Error::Invalid { .. }))),
            "{ev:?}"
        );
    }

    #[test]
    fn truncated_nal_is_an_error_not_a_panic() {
        let m = FlvMuxer::new(&tracks()).unwrap();
        let mut file = m.header();
        let mut t = Vec::new();
        // A NAL length larger than the tag.
        tag(
            &mut t,
            tag_type::VIDEO,
            0,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 99, 0x65],
        );
        file.extend(t);
        let mut d = FlvDemuxer::new();
        d.push(&file);
        let ev = events(&mut d);
        assert!(
            matches!(ev.last(), Some(Err(Error::Truncated(_)))),
            "{ev:?}"
        );
    }

    #[test]
    fn g711_and_other_codecs() {
        let mut pcmu = CodecInfo::new(CodecName::Pcmu, 8000);
        pcmu.channels = 1;
        let m = FlvMuxer::new(&[pcmu]).unwrap();
        let mut file = m.header();
        file.extend(m.frame(0, 0, 0, true, &[0xFF; 160]).unwrap());
        let mut d = FlvDemuxer::new();
        d.push(&file);
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert!(
            matches!(&ev[1], FlvEvent::Config { video: false, info } if info.name == CodecName::Pcmu)
        );
        assert!(matches!(&ev[2], FlvEvent::Frame { data, .. } if data.len() == 160));
        assert!(FlvMuxer::new(&[CodecInfo::new(CodecName::Mjpeg, 90_000)]).is_err());
    }

    fn av1_info() -> CodecInfo {
        av1::ConfigRecord::parse(&av1::tests::AV1C_320X240)
            .unwrap()
            .codec_info()
    }

    /// Enhanced RTMP `av01`, byte by byte: `0x80 | frameType << 4 |
    /// packetType`, the FourCC, then the `av1C` record (SequenceStart) or
    /// the OBUs with no composition time (CodedFrames).
    #[test]
    fn av1_as_enhanced_rtmp_video() {
        let m = FlvMuxer::new(&[av1_info()]).unwrap();
        let file = m.header();
        let seq = &file[HEADER_LEN + 4 + TAG_HEADER_LEN..];
        assert_eq!(&seq[..5], b"\x90av01");
        assert_eq!(&seq[5..5 + 17], &av1::tests::AV1C_320X240);
        let sh = &av1::tests::AV1C_320X240[4..];
        let mut key = sh.to_vec();
        key.extend_from_slice(&[0x32, 0x02, 0x10, 0x00]);
        let inter = [0x32, 0x02, 0x30, 0x00];
        let k = m.frame(0, 0, 0, true, &key).unwrap();
        assert_eq!(&k[TAG_HEADER_LEN..TAG_HEADER_LEN + 5], b"\x91av01");
        assert_eq!(&k[TAG_HEADER_LEN + 5..k.len() - 4], &key[..]);
        let p = m.frame(0, 40, 0, false, &inter).unwrap();
        assert_eq!(&p[TAG_HEADER_LEN..TAG_HEADER_LEN + 5], b"\xA1av01");
        // Broken OBUs are not written.
        assert!(m.frame(0, 80, 0, false, &[0x32, 0x09]).is_none());
        let end = m.sequence_end(80).unwrap();
        assert_eq!(&end[TAG_HEADER_LEN..TAG_HEADER_LEN + 5], b"\x92av01");

        let mut d = FlvDemuxer::new();
        for part in [&file, &k, &p, &end] {
            d.push(part);
        }
        // As OBS sends it: CodedFramesX, a temporal delimiter and no size
        // field on the last OBU; the demuxer stores it sized, without the TD,
        // and puts the sequence header in front of the keyframe.
        let mut t = Vec::new();
        tag(
            &mut t,
            tag_type::VIDEO,
            120,
            b"\x93av01\x12\x00\x30\x10\x00",
        );
        d.push(&t);
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        let FlvEvent::Config { video: true, info } = &ev[1] else {
            panic!("{:?}", ev[1])
        };
        assert_eq!(
            (info.name, info.width, info.height),
            (CodecName::Av1, 320, 240)
        );
        assert_eq!(info.extradata, av1::tests::AV1C_320X240);
        assert!(matches!(&ev[2], FlvEvent::Frame { keyframe: true, data, .. } if data == &key));
        assert!(
            matches!(&ev[3], FlvEvent::Frame { keyframe: false, dts_ms: 40, pts_ms: 40, data, .. } if data == &inter)
        );
        let FlvEvent::Frame {
            keyframe: true,
            dts_ms: 120,
            data,
            ..
        } = &ev[4]
        else {
            panic!("{:?}", ev[4])
        };
        assert!(data.starts_with(sh) && data.ends_with(&[0x32, 0x02, 0x10, 0x00]));
        assert!(av1::is_keyframe(data, false));
        assert_eq!(ev.len(), 5, "{ev:?}");

        // A record without a sequence header is an error, not a track.
        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
        let mut t = Vec::new();
        tag(&mut t, tag_type::VIDEO, 0, b"\x90av01\x81\x00\x0c\x00");
        tag(&mut t, tag_type::VIDEO, 0, b"\x91av01\x32\x01\x10");
        d.push(&t);
        let ev = events(&mut d);
        assert!(matches!(ev[1], Err(Error::Invalid { .. })), "{ev:?}");
        assert_eq!(ev.len(), 2, "frames before a config are dropped: {ev:?}");
    }

    /// Enhanced RTMP v2 audio, byte by byte as the spec lays it out:
    /// `soundFormat = 9 (ExHeader) | audioPacketType`, the FourCC, then the
    /// body (the Opus ID header for SequenceStart, a packet for CodedFrames).
    #[test]
    fn opus_as_enhanced_rtmp_audio() {
        let mut opus = CodecInfo::new(CodecName::Opus, 48_000);
        opus.channels = 2;
        let m = FlvMuxer::new(&[opus]).unwrap();
        let file = m.header();
        let seq = &file[HEADER_LEN + 4 + TAG_HEADER_LEN..];
        assert_eq!(&seq[..5], b"\x90Opus");
        assert_eq!(&seq[5..13], b"OpusHead");
        assert_eq!((seq[13], seq[14]), (1, 2), "version, channels");
        assert_eq!(&seq[17..21], &48_000u32.to_le_bytes());
        let frame = m.frame(0, 20, 0, true, &[0xFC, 1, 2]).unwrap();
        assert_eq!(
            &frame[TAG_HEADER_LEN..TAG_HEADER_LEN + 8],
            b"\x91Opus\xFC\x01\x02"
        );

        let mut d = FlvDemuxer::new();
        d.push(&file);
        d.push(&frame);
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert!(matches!(&ev[1], FlvEvent::Config { video: false, info }
            if info.name == CodecName::Opus && info.clock_rate == 48_000 && info.channels == 2
                && info.extradata.starts_with(b"OpusHead")));
        assert!(
            matches!(&ev[2], FlvEvent::Frame { video: false, dts_ms: 20, data, .. } if data == &[0xFC, 1, 2])
        );

        // Coded frames without a sequence start: mono is unknown, stereo assumed.
        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
        let mut t = Vec::new();
        tag(&mut t, tag_type::AUDIO, 0, b"\x91Opus\xF8\xFF");
        d.push(&t);
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert!(matches!(&ev[1], FlvEvent::Config { info, .. } if info.name == CodecName::Opus));
        assert!(matches!(&ev[2], FlvEvent::Frame { data, .. } if data == &[0xF8, 0xFF]));

        // Another FourCC (ac-3) is skipped with one error.
        let mut d = FlvDemuxer::new();
        d.push(b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
        let mut t = Vec::new();
        tag(&mut t, tag_type::AUDIO, 0, b"\x91ac-3\x00");
        tag(&mut t, tag_type::AUDIO, 0, b"\x91ac-3\x00");
        d.push(&t);
        let ev = events(&mut d);
        assert_eq!(ev.iter().filter(|e| e.is_err()).count(), 1, "{ev:?}");
        assert!(!d.failed());
    }
}
