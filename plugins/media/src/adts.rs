//! AAC in ADTS framing (ISO/IEC 14496-3 1.A.2.2 / 1.A.3.2) and the
//! AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).

use std::collections::VecDeque;

use crate::codec::{CodecInfo, CodecName};
use crate::error::{Error, Result};

/// Sampling frequencies by index (ISO/IEC 14496-3 Table 1.18).
pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per AAC frame (1024 for AAC-LC/Main/SSR/LTP; we do not handle 960).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// Fixed + variable ADTS header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// ID bit: false = MPEG-4, true = MPEG-2.
    pub mpeg2: bool,
    /// True when a 16-bit CRC follows the header (protection_absent = 0).
    pub has_crc: bool,
    /// profile_ObjectType: audio object type minus one (1 = AAC LC).
    pub profile: u8,
    /// sampling_frequency_index.
    pub sample_rate_index: u8,
    /// channel_configuration (0 = defined in-band, not supported here).
    pub channel_config: u8,
    /// aac_frame_length: whole frame including header.
    pub frame_length: usize,
    /// number_of_raw_data_blocks_in_frame + 1.
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Header size: 7 bytes, or 9 with CRC.
    pub fn header_len(&self) -> usize {
        if self.has_crc {
            9
        } else {
            7
        }
    }

    /// Parse and validate a header at the start of `data` (needs 7 bytes).
    pub fn parse(data: &[u8]) -> Result<AdtsHeader> {
        let h: &[u8; 7] = data
            .first_chunk::<7>()
            .ok_or(Error::Truncated("ADTS header"))?;
        if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
            return Err(Error::invalid("ADTS header", "no syncword"));
        }
        if h[1] & 0x06 != 0 {
            return Err(Error::invalid("ADTS header", "layer must be 0"));
        }
        let sample_rate_index = (h[2] >> 2) & 0x0F;
        if usize::from(sample_rate_index) >= SAMPLE_RATES.len() {
            return Err(Error::invalid(
                "ADTS header",
                "reserved sampling frequency index",
            ));
        }
        let header = AdtsHeader {
            mpeg2: h[1] & 0x08 != 0,
            has_crc: h[1] & 0x01 == 0,
            profile: h[2] >> 6,
            sample_rate_index,
            channel_config: ((h[2] & 0x01) << 2) | (h[3] >> 6),
            frame_length: (usize::from(h[3] & 0x03) << 11)
                | (usize::from(h[4]) << 3)
                | usize::from(h[5] >> 5),
            raw_blocks: (h[6] & 0x03) + 1,
        };
        if header.frame_length < header.header_len() {
            return Err(Error::invalid(
                "ADTS header",
                "frame length shorter than header",
            ));
        }
        Ok(header)
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES
            .get(usize::from(self.sample_rate_index))
            .copied()
            .unwrap_or(0)
    }

    /// The equivalent AudioSpecificConfig.
    pub fn audio_specific_config(&self) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type: self.profile + 1,
            sample_rate_index: self.sample_rate_index,
            channel_config: self.channel_config,
        }
    }

    /// Track description (clock rate = sample rate, extradata = ASC).
    pub fn codec_info(&self) -> CodecInfo {
        let asc = self.audio_specific_config();
        let mut info = CodecInfo::new(CodecName::Aac, self.sample_rate());
        info.channels = channels_of(self.channel_config);
        info.profile = asc.profile_name().to_string();
        info.extradata = asc.to_bytes().to_vec();
        info
    }
}

/// Channel count for a channel_configuration (ISO/IEC 14496-3 Table 1.19).
pub fn channels_of(channel_config: u8) -> u16 {
    match channel_config {
        7 => 8,
        c => u16::from(c),
    }
}

/// The 2-byte AudioSpecificConfig used as AAC extradata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// audioObjectType (2 = AAC LC).
    pub object_type: u8,
    /// samplingFrequencyIndex (0..=12).
    pub sample_rate_index: u8,
    /// channelConfiguration.
    pub channel_config: u8,
}

impl AudioSpecificConfig {
    /// Serialise: objectType(5) freqIndex(4) channels(4) + 3 zero bits
    /// (GASpecificConfig: frameLengthFlag, dependsOnCoreCoder, extensionFlag).
    pub fn to_bytes(&self) -> [u8; 2] {
        let v: u16 = (u16::from(self.object_type & 0x1F) << 11)
            | (u16::from(self.sample_rate_index & 0x0F) << 7)
            | (u16::from(self.channel_config & 0x0F) << 3);
        v.to_be_bytes()
    }

    /// Parse the first fields of an AudioSpecificConfig. Escaped object
    /// types (31) and explicit frequencies (index 15) cannot be expressed in
    /// ADTS and are rejected.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let b: &[u8; 2] = data
            .first_chunk::<2>()
            .ok_or(Error::Truncated("AudioSpecificConfig"))?;
        let v = u16::from_be_bytes(*b);
        let asc = AudioSpecificConfig {
            object_type: (v >> 11) as u8,
            sample_rate_index: ((v >> 7) & 0x0F) as u8,
            channel_config: ((v >> 3) & 0x0F) as u8,
        };
        if asc.object_type == 0 || asc.object_type > 4 {
            return Err(Error::unsupported(
                "AudioSpecificConfig",
                format!("object type {} has no ADTS profile", asc.object_type),
            ));
        }
        if usize::from(asc.sample_rate_index) >= SAMPLE_RATES.len() {
            return Err(Error::unsupported(
                "AudioSpecificConfig",
                "explicit sample rate",
            ));
        }
        if asc.channel_config > 7 {
            return Err(Error::invalid(
                "AudioSpecificConfig",
                "channel configuration > 7",
            ));
        }
        Ok(asc)
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES
            .get(usize::from(self.sample_rate_index))
            .copied()
            .unwrap_or(0)
    }

    /// Profile name ffmpeg uses for the object type.
    pub fn profile_name(&self) -> &'static str {
        match self.object_type {
            1 => "Main",
            2 => "LC",
            3 => "SSR",
            4 => "LTP",
            5 => "HE-AAC",
            _ => "",
        }
    }
}

/// Write a 7-byte ADTS header (no CRC, MPEG-4) for a raw frame of
/// `payload_len` bytes.
pub fn write_adts_header(asc: &AudioSpecificConfig, payload_len: usize) -> Result<[u8; 7]> {
    // aac_frame_length is 13 bits and includes the header.
    let total = payload_len
        .checked_add(7)
        .filter(|&t| t <= 0x1FFF)
        .ok_or_else(|| Error::invalid("ADTS frame", "too long for aac_frame_length"))?;
    if asc.object_type == 0 || asc.object_type > 4 {
        return Err(Error::unsupported(
            "ADTS frame",
            "object type not expressible",
        ));
    }
    let profile = asc.object_type - 1;
    let fullness: usize = 0x7FF; // VBR
    Ok([
        0xFF,
        0xF1, // sync, MPEG-4, layer 0, protection_absent
        (profile << 6) | ((asc.sample_rate_index & 0x0F) << 2) | ((asc.channel_config >> 2) & 1),
        ((asc.channel_config & 3) << 6) | ((total >> 11) as u8 & 0x03),
        (total >> 3) as u8,
        (((total & 7) as u8) << 5) | ((fullness >> 6) as u8 & 0x1F),
        ((fullness & 0x3F) as u8) << 2,
    ])
}

/// One raw AAC frame (ADTS header and CRC removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFrame {
    /// The header it came with.
    pub header: AdtsHeader,
    /// raw_data_block bytes.
    pub data: Vec<u8>,
}

/// Largest ADTS frame (13-bit length); buffered data beyond this without a
/// valid header is garbage.
const MAX_FRAME: usize = 0x1FFF;

/// Sans-IO ADTS splitter with resynchronisation on corrupt headers.
#[derive(Debug, Clone, Default)]
pub struct AdtsSplitter {
    buf: Vec<u8>,
    out: VecDeque<AacFrame>,
    dropped_bytes: u64,
}

impl AdtsSplitter {
    /// New splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes skipped while searching for a syncword.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Next raw frame.
    pub fn pop(&mut self) -> Option<AacFrame> {
        self.out.pop_front()
    }

    /// End of input: a partial frame is dropped.
    pub fn finish(&mut self) {
        self.dropped_bytes += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Feed bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = self.buf.get(pos..).unwrap_or(&[]);
            if rest.len() < 7 {
                break;
            }
            match AdtsHeader::parse(rest) {
                Ok(h) => {
                    let Some(frame) = rest.get(..h.frame_length) else {
                        break;
                    };
                    let payload = frame.get(h.header_len()..).unwrap_or(&[]);
                    self.out.push_back(AacFrame {
                        header: h,
                        data: payload.to_vec(),
                    });
                    pos += h.frame_length;
                }
                Err(_) => {
                    // Skip to the next candidate syncword byte.
                    let skip = rest
                        .get(1..)
                        .and_then(|t| t.iter().position(|&b| b == 0xFF))
                        .map_or(rest.len(), |p| p + 1);
                    self.dropped_bytes += skip as u64;
                    pos += skip;
                }
            }
        }
        self.buf.drain(..pos.min(self.buf.len()));
        if self.buf.len() > 2 * MAX_FRAME {
            // Unreachable with valid headers; defensive against bugs.
            self.dropped_bytes += self.buf.len() as u64;
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(asc: &AudioSpecificConfig, payload: &[u8]) -> Vec<u8> {
        let mut v = write_adts_header(asc, payload.len()).unwrap().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_roundtrip_and_asc() {
        let asc = AudioSpecificConfig {
            object_type: 2,
            sample_rate_index: 4,
            channel_config: 2,
        };
        // AAC LC 44.1 kHz stereo is the well-known 0x12 0x10.
        assert_eq!(asc.to_bytes(), [0x12, 0x10]);
        assert_eq!(AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap(), asc);
        let hdr = write_adts_header(&asc, 100).unwrap();
        let h = AdtsHeader::parse(&hdr).unwrap();
        assert_eq!(h.frame_length, 107);
        assert!(!h.has_crc);
        assert_eq!(h.sample_rate(), 44100);
        assert_eq!(h.audio_specific_config(), asc);
        let info = h.codec_info();
        assert_eq!((info.clock_rate, info.channels), (44100, 2));
        assert_eq!(info.extradata, vec![0x12, 0x10]);
        assert_eq!(info.profile, "LC");
        assert!(write_adts_header(&asc, 9000).is_err());
        assert!(AudioSpecificConfig::parse(&[0x12]).is_err());
        assert!(AudioSpecificConfig::parse(&[0xF8, 0x00]).is_err());
    }

    #[test]
    fn crc_header() {
        // Same fields with protection_absent = 0: 9-byte header.
        let asc = AudioSpecificConfig {
            object_type: 2,
            sample_rate_index: 3,
            channel_config: 1,
        };
        let mut v = frame(&asc, &[1, 2, 3]);
        v[1] &= 0xFE;
        let len = 3 + 9;
        v[3] = (v[3] & 0xFC) | ((len >> 11) as u8 & 3);
        v[4] = (len >> 3) as u8;
        v[5] = (v[5] & 0x1F) | (((len & 7) as u8) << 5);
        v.splice(7..7, [0xAB, 0xCD]);
        let mut s = AdtsSplitter::new();
        s.push(&v);
        let f = s.pop().unwrap();
        assert!(f.header.has_crc);
        assert_eq!(f.data, vec![1, 2, 3]);
    }

    #[test]
    fn splits_and_resyncs_in_chunks() {
        let asc = AudioSpecificConfig {
            object_type: 2,
            sample_rate_index: 3,
            channel_config: 1,
        };
        let mut stream = vec![0xFF, 0x00, 0x12];
        for i in 0..5u8 {
            stream.extend_from_slice(&frame(&asc, &vec![i; 20 + usize::from(i)]));
            if i == 2 {
                stream.extend_from_slice(&[0xFF, 0xF1, 0xFF]); // garbage
            }
        }
        for chunk in [1, 3, 7, 500] {
            let mut s = AdtsSplitter::new();
            for c in stream.chunks(chunk) {
                s.push(c);
            }
            s.finish();
            let frames: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
            assert_eq!(frames.len(), 5, "chunk {chunk}");
            for (i, f) in frames.iter().enumerate() {
                assert_eq!(f.data.len(), 20 + i);
            }
        }
    }

    #[test]
    fn garbage_headers() {
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x50]).is_err());
        assert!(AdtsHeader::parse(&[0xFF, 0xF7, 0x50, 0x80, 0, 0x1F, 0xFC]).is_err()); // layer
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x7C, 0x80, 0, 0x1F, 0xFC]).is_err()); // sf 15
        assert!(AdtsHeader::parse(&[0xFF, 0xF1, 0x50, 0x80, 0, 0x1F, 0xFC]).is_err()); // len 0
        let mut s = AdtsSplitter::new();
        s.push(&[0xFF; 64]);
        s.finish();
        assert!(s.pop().is_none());
    }
}
