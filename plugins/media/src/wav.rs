//! RIFF/WAVE parsing (Microsoft RIFF spec; WAVE_FORMAT_EXTENSIBLE per the
//! Windows "WAVEFORMATEXTENSIBLE" definition), streaming-friendly.
//!
//! ffmpeg writing to a pipe cannot seek back to patch sizes, so it leaves the
//! RIFF and `data` sizes as 0xFFFFFFFF (or 0); both mean "until end of input".

use std::collections::VecDeque;

use crate::codec::{CodecInfo, CodecName};
use crate::error::{Error, Result};

const TAG_PCM: u16 = 0x0001;
const TAG_ALAW: u16 = 0x0006;
const TAG_MULAW: u16 = 0x0007;
const TAG_EXTENSIBLE: u16 = 0xFFFE;
/// Tail shared by all KSDATAFORMAT_SUBTYPE GUIDs derived from a format tag
/// (`xxxxxxxx-0000-0010-8000-00aa00389b71`, bytes after the 4-byte tag).
const SUBTYPE_GUID_TAIL: [u8; 12] = [
    0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Chunk headers before `data` bigger than this are rejected (a `fmt `
/// chunk is at most 40 bytes; unknown chunks are skipped, not buffered).
const MAX_FMT_SIZE: u32 = 1024;

/// The audio format from the `fmt ` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Codec (PCM s16le, A-law, mu-law).
    pub codec: CodecName,
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Bytes per sample frame (all channels).
    pub block_align: u16,
    /// Bits per sample.
    pub bits_per_sample: u16,
}

impl WavFormat {
    /// Parse a `fmt ` chunk body (WAVEFORMATEX, optionally EXTENSIBLE).
    pub fn parse(body: &[u8]) -> Result<WavFormat> {
        let rd16 = |o: usize| -> Result<u16> {
            body.get(o..o + 2)
                .and_then(|s| s.try_into().ok())
                .map(u16::from_le_bytes)
                .ok_or(Error::Truncated("WAV fmt chunk"))
        };
        let rd32 = |o: usize| -> Result<u32> {
            body.get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or(Error::Truncated("WAV fmt chunk"))
        };
        let mut tag = rd16(0)?;
        let channels = rd16(2)?;
        let sample_rate = rd32(4)?;
        let block_align = rd16(12)?;
        let bits_per_sample = rd16(14)?;
        if tag == TAG_EXTENSIBLE {
            // cbSize(2) validBits(2) channelMask(4) SubFormat GUID(16).
            let cb_size = rd16(16)?;
            if cb_size < 22 {
                return Err(Error::invalid("WAV fmt chunk", "extensible cbSize < 22"));
            }
            let guid = body.get(24..40).ok_or(Error::Truncated("WAV SubFormat"))?;
            if guid.get(4..) != Some(&SUBTYPE_GUID_TAIL[..]) {
                return Err(Error::unsupported(
                    "WAV SubFormat",
                    crate::error::hex_prefix(guid, 16),
                ));
            }
            tag = rd16(24)?;
        }
        let codec = match (tag, bits_per_sample) {
            (TAG_PCM, 16) => CodecName::PcmS16le,
            (TAG_ALAW, 8) => CodecName::Pcma,
            (TAG_MULAW, 8) => CodecName::Pcmu,
            _ => {
                return Err(Error::unsupported(
                    "WAV format",
                    format!("tag 0x{tag:04x} with {bits_per_sample} bits"),
                ))
            }
        };
        if channels == 0 || sample_rate == 0 {
            return Err(Error::invalid(
                "WAV fmt chunk",
                "zero channels or sample rate",
            ));
        }
        let expected = u32::from(channels) * u32::from(bits_per_sample / 8);
        if u32::from(block_align) != expected {
            return Err(Error::invalid("WAV fmt chunk", "block align mismatch"));
        }
        Ok(WavFormat {
            codec,
            sample_rate,
            channels,
            block_align,
            bits_per_sample,
        })
    }

    /// Track description.
    pub fn codec_info(&self) -> CodecInfo {
        let mut info = CodecInfo::new(self.codec, self.sample_rate);
        info.channels = self.channels;
        info
    }

    /// Bytes in a 20 ms block (the usual RTP packetisation time, RFC 3551
    /// 4.2), rounded to whole sample frames; at least one sample frame.
    pub fn block_bytes(&self) -> usize {
        let frames = (self.sample_rate / 50).max(1) as usize;
        frames * usize::from(self.block_align.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for "RIFF" size "WAVE".
    RiffHeader,
    /// Waiting for an 8-byte chunk header.
    ChunkHeader,
    /// Skipping `n` bytes of an uninteresting chunk.
    Skip(u64),
    /// Inside `data`; `None` = until end of input.
    Data(Option<u64>),
    /// After the `data` chunk: everything else is ignored.
    Done,
}

/// Events from the WAV parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WavEvent {
    /// The `fmt ` chunk (emitted when `data` begins).
    Format(WavFormat),
    /// Raw samples, a whole number of sample frames (20 ms except the last).
    Samples(Vec<u8>),
}

/// Sans-IO WAV parser.
#[derive(Debug, Clone)]
pub struct WavParser {
    state: State,
    buf: Vec<u8>,
    format: Option<WavFormat>,
    out: VecDeque<Result<WavEvent>>,
    failed: bool,
}

impl Default for WavParser {
    fn default() -> Self {
        Self::new()
    }
}

impl WavParser {
    /// New parser.
    pub fn new() -> Self {
        Self {
            state: State::RiffHeader,
            buf: Vec::new(),
            format: None,
            out: VecDeque::new(),
            failed: false,
        }
    }

    /// The format once known.
    pub fn format(&self) -> Option<WavFormat> {
        self.format
    }

    /// Next event; errors are fatal (the parser stops afterwards).
    pub fn pop(&mut self) -> Option<Result<WavEvent>> {
        self.out.pop_front()
    }

    /// Feed bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(data);
        if let Err(e) = self.run() {
            self.failed = true;
            self.buf.clear();
            self.out.push_back(Err(e));
        }
    }

    /// End of input: emit the final partial block (whole sample frames only).
    pub fn finish(&mut self) {
        if self.failed {
            return;
        }
        if let (State::Data(_), Some(f)) = (self.state, self.format) {
            let align = usize::from(f.block_align.max(1));
            let n = self.buf.len() / align * align;
            if n > 0 {
                self.out
                    .push_back(Ok(WavEvent::Samples(self.buf.drain(..n).collect())));
            }
        } else if self.format.is_none() {
            self.out.push_back(Err(Error::Truncated("WAV header")));
        }
        self.buf.clear();
        self.state = State::Done;
    }

    fn run(&mut self) -> Result<()> {
        loop {
            match self.state {
                State::RiffHeader => {
                    let Some(h) = self.buf.first_chunk::<12>() else {
                        return Ok(());
                    };
                    if &h[0..4] != b"RIFF" || &h[8..12] != b"WAVE" {
                        return Err(Error::invalid("WAV header", "not RIFF/WAVE"));
                    }
                    self.buf.drain(..12);
                    self.state = State::ChunkHeader;
                }
                State::ChunkHeader => {
                    let Some(h) = self.buf.first_chunk::<8>() else {
                        return Ok(());
                    };
                    let id = [h[0], h[1], h[2], h[3]];
                    let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                    match &id {
                        b"fmt " => {
                            if size > MAX_FMT_SIZE {
                                return Err(Error::invalid("WAV fmt chunk", "too large"));
                            }
                            // Chunks are padded to even size (RIFF spec).
                            let total = 8 + size as usize + (size as usize & 1);
                            if self.buf.len() < total {
                                return Ok(());
                            }
                            let body = self.buf.get(8..8 + size as usize).unwrap_or(&[]);
                            self.format = Some(WavFormat::parse(body)?);
                            self.buf.drain(..total);
                        }
                        b"data" => {
                            let format = self.format.ok_or_else(|| {
                                Error::invalid("WAV header", "data chunk before fmt chunk")
                            })?;
                            self.buf.drain(..8);
                            let limit = match size {
                                0 | u32::MAX => None,
                                n => Some(u64::from(n)),
                            };
                            self.out.push_back(Ok(WavEvent::Format(format)));
                            self.state = State::Data(limit);
                        }
                        _ => {
                            self.buf.drain(..8);
                            self.state = State::Skip(u64::from(size) + u64::from(size & 1));
                        }
                    }
                }
                State::Skip(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buf.len());
                    self.buf.drain(..take);
                    let left = n - take as u64;
                    if left > 0 {
                        self.state = State::Skip(left);
                        return Ok(());
                    }
                    self.state = State::ChunkHeader;
                }
                State::Data(limit) => {
                    self.emit_blocks(limit);
                    return Ok(());
                }
                State::Done => {
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    fn emit_blocks(&mut self, mut limit: Option<u64>) {
        let Some(f) = self.format else { return };
        if let Some(l) = limit {
            // Bytes past the declared data size are other chunks; ignore them.
            let l = usize::try_from(l).unwrap_or(usize::MAX);
            if self.buf.len() > l {
                self.buf.truncate(l);
            }
        }
        let block = f.block_bytes();
        while self.buf.len() >= block {
            let samples: Vec<u8> = self.buf.drain(..block).collect();
            limit = limit.map(|l| l.saturating_sub(block as u64));
            self.out.push_back(Ok(WavEvent::Samples(samples)));
        }
        self.state = match limit {
            Some(l) if l < block as u64 && self.buf.len() as u64 >= l => {
                // The declared data is complete: flush the remainder now.
                let align = usize::from(f.block_align.max(1));
                let n = self.buf.len() / align * align;
                if n > 0 {
                    self.out
                        .push_back(Ok(WavEvent::Samples(self.buf.drain(..n).collect())));
                }
                self.buf.clear();
                State::Done
            }
            _ => State::Data(limit),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(tag: u16, bits: u16, rate: u32, ch: u16, data_size: u32, samples: &[u8]) -> Vec<u8> {
        let mut v = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
        v.extend_from_slice(b"LIST\x05\0\0\0abcde\0"); // odd size + pad byte
        v.extend_from_slice(b"fmt ");
        let ext = tag == TAG_EXTENSIBLE;
        v.extend_from_slice(&(if ext { 40u32 } else { 16 }).to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&ch.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        let align = ch * bits / 8;
        v.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        if ext {
            v.extend_from_slice(&22u16.to_le_bytes());
            v.extend_from_slice(&bits.to_le_bytes());
            v.extend_from_slice(&3u32.to_le_bytes());
            v.extend_from_slice(&TAG_PCM.to_le_bytes());
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&SUBTYPE_GUID_TAIL);
        }
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_size.to_le_bytes());
        v.extend_from_slice(samples);
        v
    }

    fn parse(data: &[u8], chunk: usize) -> (Option<WavFormat>, Vec<Vec<u8>>, Vec<Error>) {
        let mut p = WavParser::new();
        for c in data.chunks(chunk) {
            p.push(c);
        }
        p.finish();
        let (mut fmt, mut blocks, mut errs) = (None, vec![], vec![]);
        while let Some(e) = p.pop() {
            match e {
                Ok(WavEvent::Format(f)) => fmt = Some(f),
                Ok(WavEvent::Samples(s)) => blocks.push(s),
                Err(e) => errs.push(e),
            }
        }
        (fmt, blocks, errs)
    }

    #[test]
    fn streams_until_end_when_size_unknown() {
        let samples: Vec<u8> = (0..=255).cycle().take(8000 * 2 / 50 * 3 + 101).collect();
        for size in [0, u32::MAX] {
            let data = wav(TAG_PCM, 16, 8000, 1, size, &samples);
            for chunk in [1, 7, 4096] {
                let (fmt, blocks, errs) = parse(&data, chunk);
                assert!(errs.is_empty());
                let fmt = fmt.unwrap();
                assert_eq!(fmt.codec, CodecName::PcmS16le);
                assert_eq!(blocks.len(), 4);
                assert_eq!(blocks[0].len(), 320);
                assert_eq!(blocks[3].len(), 100); // odd trailing byte dropped
            }
        }
    }

    #[test]
    fn respects_declared_size_and_extensible() {
        let data = wav(TAG_EXTENSIBLE, 16, 16000, 2, 640 + 8, &[7u8; 2000]);
        let (fmt, blocks, errs) = parse(&data, 13);
        assert!(errs.is_empty());
        let f = fmt.unwrap();
        assert_eq!(
            (f.codec, f.channels, f.sample_rate),
            (CodecName::PcmS16le, 2, 16000)
        );
        assert_eq!(f.codec_info().channels, 2);
        assert_eq!(
            blocks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1280 - 640 + 8]
        );
        let (fmt, _, _) = parse(&wav(TAG_ALAW, 8, 8000, 1, 0, &[1; 10]), 3);
        assert_eq!(fmt.unwrap().codec, CodecName::Pcma);
        let (fmt, _, _) = parse(&wav(TAG_MULAW, 8, 8000, 1, 0, &[1; 10]), 3);
        assert_eq!(fmt.unwrap().codec, CodecName::Pcmu);
    }

    #[test]
    fn bad_headers_error() {
        let (_, _, errs) = parse(b"RIFX\0\0\0\0WAVE", 4);
        assert_eq!(errs.len(), 1);
        let (_, _, errs) = parse(&wav(3, 32, 8000, 1, 0, &[]), 4); // float
        assert!(matches!(errs[0], Error::Unsupported { .. }));
        let (_, _, errs) = parse(b"RIFF\0\0\0\0WAVEdata\0\0\0\0", 4);
        assert_eq!(errs.len(), 1);
        let (_, _, errs) = parse(b"RIFF\0\0\0\0WAVEfm", 4);
        assert_eq!(errs, vec![Error::Truncated("WAV header")]);
        assert!(WavFormat::parse(&[1, 0, 1, 0]).is_err());
    }
}
