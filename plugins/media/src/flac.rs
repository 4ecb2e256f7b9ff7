//! PCM and G.711 audio as FLAC frames with verbatim subframes (FLAC format
//! §9, RFC 9639): no compression, only the framing, so that browsers and MP4
//! players take a camera's G.711 or PCM audio (go2rtc does the same). Also
//! the G.711 expansions (ITU-T G.711) this needs.

use crate::codec::CodecName;
use crate::error::{Error, Result};

/// Largest block (samples per channel) in one frame; STREAMINFO states it as
/// both minimum and maximum (go2rtc: Apple's players want them equal and at
/// most 32768).
pub const MAX_BLOCK: usize = 32768;

/// A-law byte to 16-bit linear PCM (ITU-T G.711, the reference `alaw2linear`).
pub fn alaw_to_s16(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = i16::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// mu-law byte to 16-bit linear PCM (ITU-T G.711, the reference `ulaw2linear`).
pub fn ulaw_to_s16(u: u8) -> i16 {
    let u = !u;
    let mut t = (i16::from(u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        0x84 - t
    } else {
        t - 0x84
    }
}

/// Whether [`FlacEncoder`] takes frames of this codec.
pub fn supports(name: CodecName) -> bool {
    matches!(
        name,
        CodecName::Pcma | CodecName::Pcmu | CodecName::PcmS16be | CodecName::PcmS16le
    )
}

/// Turns frames of G.711 or 16-bit PCM into FLAC frames.
#[derive(Debug, Clone)]
pub struct FlacEncoder {
    codec: CodecName,
    sample_rate: u32,
    channels: u8,
    /// Samples (per channel) written so far: the variable-blocksize frame
    /// header's coded number.
    position: u64,
}

impl FlacEncoder {
    /// An encoder for `codec` at `sample_rate` with `channels` (1..=8).
    pub fn new(codec: CodecName, sample_rate: u32, channels: u16) -> Result<FlacEncoder> {
        if !supports(codec) {
            return Err(Error::unsupported("FLAC input", codec.ffmpeg_name()));
        }
        if sample_rate == 0 || sample_rate >= 1 << 20 {
            return Err(Error::invalid("FLAC sample rate", sample_rate.to_string()));
        }
        Ok(FlacEncoder {
            codec,
            sample_rate,
            channels: channels.clamp(1, 8) as u8,
            position: 0,
        })
    }

    /// Channels as written.
    pub fn channels(&self) -> u16 {
        u16::from(self.channels)
    }

    /// The 34-byte STREAMINFO block body (FLAC §8.2), for `dfLa`.
    pub fn stream_info(&self) -> [u8; 34] {
        let mut b = [0u8; 34];
        b[0..2].copy_from_slice(&(MAX_BLOCK as u16).to_be_bytes());
        b[2..4].copy_from_slice(&(MAX_BLOCK as u16).to_be_bytes());
        // Frame sizes unknown (0); rate (20 bits), channels - 1 (3), bits - 1 (5),
        // total samples unknown (36), MD5 unknown.
        let v: u64 = (u64::from(self.sample_rate) << 44)
            | (u64::from(self.channels - 1) << 41)
            | (15u64 << 36);
        b[10..18].copy_from_slice(&v.to_be_bytes());
        b
    }

    /// Samples per channel in a frame of `len` input bytes.
    pub fn samples_in(&self, len: usize) -> usize {
        let bytes = match self.codec {
            CodecName::Pcma | CodecName::Pcmu => 1,
            _ => 2,
        };
        len / bytes / usize::from(self.channels)
    }

    /// One FLAC frame with the samples of `data` (interleaved channels).
    pub fn encode(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let n = self.samples_in(data.len());
        if n == 0 {
            return Err(Error::Truncated("PCM frame"));
        }
        if n > MAX_BLOCK {
            return Err(Error::unsupported(
                "PCM frame",
                format!("{n} samples (FLAC frames here hold at most {MAX_BLOCK})"),
            ));
        }
        let ch = usize::from(self.channels);
        let mut out = Vec::with_capacity(16 + n * ch * 2);
        // Sync code, variable block size (the coded number counts samples).
        out.extend_from_slice(&[0xFF, 0xF9]);
        let (rate_code, rate_tail) = rate_code(self.sample_rate);
        // Block size: 16 bits (n - 1) at the end of the header.
        out.push(0x70 | rate_code);
        // Independent channels, 16 bits per sample.
        out.push(((self.channels - 1) << 4) | 0x08);
        coded_number(&mut out, self.position);
        out.extend_from_slice(&((n - 1) as u16).to_be_bytes());
        out.extend_from_slice(&rate_tail);
        out.push(crc8(&out));
        self.position += n as u64;
        let sample = |i: usize, c: usize| -> i16 {
            let k = i * ch + c;
            match self.codec {
                CodecName::Pcma => alaw_to_s16(data[k]),
                CodecName::Pcmu => ulaw_to_s16(data[k]),
                CodecName::PcmS16be => i16::from_be_bytes([data[2 * k], data[2 * k + 1]]),
                _ => i16::from_le_bytes([data[2 * k], data[2 * k + 1]]),
            }
        };
        for c in 0..ch {
            // Subframe header: verbatim, no wasted bits; 16-bit samples keep
            // every subframe byte-aligned.
            out.push(0x02);
            for i in 0..n {
                out.extend_from_slice(&sample(i, c).to_be_bytes());
            }
        }
        let crc = crc16(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

/// The frame header's sample rate code and the bytes it needs at the end
/// (FLAC §9.1.3); 0 means "as in STREAMINFO".
fn rate_code(rate: u32) -> (u8, Vec<u8>) {
    let code = match rate {
        88200 => 1,
        176400 => 2,
        192000 => 3,
        8000 => 4,
        16000 => 5,
        22050 => 6,
        24000 => 7,
        32000 => 8,
        44100 => 9,
        48000 => 10,
        96000 => 11,
        r if r <= 0xFFFF => return (13, (r as u16).to_be_bytes().to_vec()),
        _ => 0,
    };
    (code, Vec::new())
}

/// The UTF-8-like coded sample number (FLAC §9.1.5), up to 36 bits.
fn coded_number(out: &mut Vec<u8>, v: u64) {
    let v = v & ((1 << 36) - 1);
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    // Bytes after the first hold 6 bits each; the first holds what is left.
    let extra = match v {
        _ if v < 1 << 11 => 1,
        _ if v < 1 << 16 => 2,
        _ if v < 1 << 21 => 3,
        _ if v < 1 << 26 => 4,
        _ if v < 1 << 31 => 5,
        _ => 6,
    };
    let lead: u8 = !(0xFFu8 >> (extra + 1));
    out.push(lead | (v >> (6 * extra)) as u8);
    for i in (0..extra).rev() {
        out.push(0x80 | ((v >> (6 * i)) & 0x3F) as u8);
    }
}

/// CRC-8, polynomial x^8 + x^2 + x + 1, initial 0 (FLAC §9.1.8).
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC-16, polynomial x^16 + x^15 + x^2 + 1, initial 0 (FLAC §9.3).
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8005
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_reference_values() {
        // Silence and full scale of both laws (ITU-T G.711 tables).
        assert_eq!(alaw_to_s16(0xD5), 8);
        assert_eq!(alaw_to_s16(0x55), -8);
        assert_eq!(alaw_to_s16(0xAA), 32256);
        assert_eq!(alaw_to_s16(0x2A), -32256);
        assert_eq!(ulaw_to_s16(0xFF), 0);
        assert_eq!(ulaw_to_s16(0x7F), 0);
        assert_eq!(ulaw_to_s16(0x80), 32124);
        assert_eq!(ulaw_to_s16(0x00), -32124);
        // Monotonic over each half.
        let pos: Vec<i16> = (0x80..=0xFFu8).rev().map(ulaw_to_s16).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn coded_numbers() {
        let enc = |v| {
            let mut o = Vec::new();
            coded_number(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(0x7F), [0x7F]);
        assert_eq!(enc(0x80), [0xC2, 0x80]);
        assert_eq!(enc(0x7FF), [0xDF, 0xBF]);
        assert_eq!(enc(0x800), [0xE0, 0xA0, 0x80]);
        assert_eq!(enc(0x10000), [0xF0, 0x90, 0x80, 0x80]);
        assert_eq!(enc((1 << 36) - 1)[0], 0xFE);
    }

    #[test]
    fn crcs() {
        // Check values of the two FLAC CRCs for "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }

    #[test]
    fn frame_layout() {
        let mut e = FlacEncoder::new(CodecName::Pcmu, 8000, 1).unwrap();
        let f = e.encode(&[0xFF; 160]).unwrap();
        assert_eq!(f[..4], [0xFF, 0xF9, 0x74, 0x08]);
        assert_eq!(f[4], 0); // first sample number
        assert_eq!(u16::from_be_bytes([f[5], f[6]]), 159);
        assert_eq!(f[7], crc8(&f[..7]));
        assert_eq!(f[8], 0x02);
        assert_eq!(f.len(), 9 + 320 + 2);
        let f2 = e.encode(&[0xFF; 160]).unwrap();
        assert_eq!(f2[4..6], [0xC2, 0xA0]); // 160
        let mut st = FlacEncoder::new(CodecName::PcmS16le, 16000, 2).unwrap();
        let f = st.encode(&[1, 0, 2, 0, 3, 0, 4, 0]).unwrap();
        assert_eq!(f[3], 0x18);
        // Channel 0 then channel 1, big-endian.
        assert_eq!(f[8..15], [0x02, 0, 1, 0, 3, 0x02, 0]);
        assert!(e.encode(&[]).is_err());
        assert!(e.encode(&vec![0; MAX_BLOCK + 1]).is_err());
        assert!(FlacEncoder::new(CodecName::Aac, 8000, 1).is_err());
        let info = FlacEncoder::new(CodecName::Pcma, 8000, 1)
            .unwrap()
            .stream_info();
        assert_eq!(info[10..14], [0x01, 0xF4, 0x00, 0xF0]);
    }
}
