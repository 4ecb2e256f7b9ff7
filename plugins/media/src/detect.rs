//! Container/codec autodetection from the first bytes of a pipe.

use crate::adts::AdtsHeader;
use crate::annexb::nal_units;
use crate::mpegts::{PACKET_SIZE, SYNC_BYTE};

/// Formats a child process may write to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// H.264 Annex-B elementary stream.
    H264,
    /// H.265 Annex-B elementary stream.
    H265,
    /// Concatenated JPEG images.
    Mjpeg,
    /// MPEG-2 transport stream.
    MpegTs,
    /// AAC in ADTS framing.
    Adts,
    /// RIFF/WAVE.
    Wav,
    /// Flash Video (H.264/H.265/AAC/G.711).
    Flv,
    /// Fragmented MP4 (init segment, then `moof` + `mdat` fragments).
    Mp4,
    /// YUV4MPEG2 raw pictures.
    Y4m,
}

impl Format {
    /// ffmpeg's name for the format (`-f` value).
    pub fn name(self) -> &'static str {
        match self {
            Format::H264 => "h264",
            Format::H265 => "hevc",
            Format::Mjpeg => "mjpeg",
            Format::MpegTs => "mpegts",
            Format::Adts => "adts",
            Format::Wav => "wav",
            Format::Flv => "flv",
            Format::Mp4 => "mp4",
            Format::Y4m => "yuv4mpegpipe",
        }
    }
}

/// Result of looking at a prefix of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// The format is certain enough.
    Found(Format),
    /// The prefix is consistent with some format; more bytes are needed.
    NeedMore,
    /// No supported format starts like this.
    NoMatch,
}

/// Decide the format. `finished` means no more bytes will come, so a
/// shorter-than-ideal prefix is judged as is.
pub fn detect(buf: &[u8], finished: bool) -> Detection {
    let checks = [
        detect_mp4(buf),
        detect_ts(buf, finished),
        detect_prefix(buf, b"RIFF", Format::Wav).and(detect_wave(buf)),
        detect_prefix(buf, &[0xFF, 0xD8, 0xFF], Format::Mjpeg),
        detect_prefix(buf, b"FLV\x01", Format::Flv),
        detect_prefix(buf, crate::y4m::MAGIC, Format::Y4m),
        detect_multipart(buf),
        detect_adts(buf),
        detect_annexb(buf),
    ];
    let mut need_more = false;
    for c in checks {
        match c {
            Detection::Found(f) => return Detection::Found(f),
            Detection::NeedMore => need_more = true,
            Detection::NoMatch => {}
        }
    }
    if need_more && !finished {
        Detection::NeedMore
    } else {
        Detection::NoMatch
    }
}

trait And {
    fn and(self, other: Detection) -> Detection;
}

impl And for Detection {
    /// Both must agree; the more specific result of `other` wins.
    fn and(self, other: Detection) -> Detection {
        match (self, other) {
            (Detection::NoMatch, _) | (_, Detection::NoMatch) => Detection::NoMatch,
            (Detection::Found(_), o) => o,
            (Detection::NeedMore, _) => Detection::NeedMore,
        }
    }
}

fn detect_prefix(buf: &[u8], magic: &[u8], f: Format) -> Detection {
    let n = buf.len().min(magic.len());
    if buf.get(..n) != magic.get(..n) {
        Detection::NoMatch
    } else if n < magic.len() {
        Detection::NeedMore
    } else {
        Detection::Found(f)
    }
}

/// An ISO BMFF box at the start: a size, then `ftyp` (a file or an init
/// segment), `styp` (a media segment), `moov` or `moof`.
fn detect_mp4(buf: &[u8]) -> Detection {
    const TYPES: [&[u8; 4]; 4] = [b"ftyp", b"styp", b"moov", b"moof"];
    let Some(kind) = buf.get(4..8) else {
        // A first box (ftyp, an init segment's moov) is under 64 KiB: its
        // size starts with two zero bytes. Then wait for the type.
        return if buf.iter().take(2).all(|&b| b == 0) {
            Detection::NeedMore
        } else {
            Detection::NoMatch
        };
    };
    if TYPES.iter().any(|t| t[..] == *kind) {
        Detection::Found(Format::Mp4)
    } else {
        Detection::NoMatch
    }
}

/// "RIFF" <size> "WAVE".
fn detect_wave(buf: &[u8]) -> Detection {
    match buf.get(8..12) {
        Some(b"WAVE") => Detection::Found(Format::Wav),
        Some(_) => Detection::NoMatch,
        None if buf.len() <= 8 => Detection::NeedMore,
        None => {
            let have = buf.get(8..).unwrap_or(&[]);
            if b"WAVE".starts_with(have) {
                Detection::NeedMore
            } else {
                Detection::NoMatch
            }
        }
    }
}

/// Sync byte at 0, 188 and 376 (ISO/IEC 13818-1 2.4.3.2).
fn detect_ts(buf: &[u8], finished: bool) -> Detection {
    if buf.first().is_some_and(|&b| b != SYNC_BYTE) || buf.is_empty() {
        return if buf.is_empty() {
            Detection::NeedMore
        } else {
            Detection::NoMatch
        };
    }
    for k in [PACKET_SIZE, 2 * PACKET_SIZE] {
        if buf.get(k).is_some_and(|&b| b != SYNC_BYTE) {
            return Detection::NoMatch;
        }
    }
    if buf.len() > 2 * PACKET_SIZE || (finished && buf.len() >= PACKET_SIZE) {
        Detection::Found(Format::MpegTs)
    } else {
        Detection::NeedMore
    }
}

/// A multipart body (`ffmpeg -f mpjpeg`, a camera's MJPEG without its
/// Content-Type): `--boundary` on the first line. The JPEG splitter skips
/// the part headers between images.
fn detect_multipart(buf: &[u8]) -> Detection {
    const MAX_BOUNDARY_LINE: usize = 80;
    match detect_prefix(buf, b"--", Format::Mjpeg) {
        Detection::Found(_) => {}
        other => return other,
    }
    let line = &buf[2..];
    match line.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let boundary = line[..end].strip_suffix(b"\r").unwrap_or(&line[..end]);
            // RFC 2046 5.1.1: 1 to 70 characters, no control bytes.
            if !boundary.is_empty()
                && boundary.len() <= 70
                && boundary.iter().all(|b| (0x20..0x7F).contains(b))
            {
                Detection::Found(Format::Mjpeg)
            } else {
                Detection::NoMatch
            }
        }
        None if line.len() < MAX_BOUNDARY_LINE
            && line.iter().all(|b| (0x20..0x7F).contains(b) || *b == b'\r') =>
        {
            Detection::NeedMore
        }
        None => Detection::NoMatch,
    }
}

fn detect_adts(buf: &[u8]) -> Detection {
    match buf {
        [] => Detection::NeedMore,
        [0xFF] => Detection::NeedMore,
        [0xFF, b1, ..] if b1 & 0xF0 == 0xF0 => {
            if buf.len() < 7 {
                Detection::NeedMore
            } else if AdtsHeader::parse(buf).is_ok() {
                Detection::Found(Format::Adts)
            } else {
                Detection::NoMatch
            }
        }
        _ => Detection::NoMatch,
    }
}

/// Leading zeros then 0x01, then NAL headers that only make sense for one
/// of the codecs. H.265 headers are two bytes with layer id 0 and
/// TemporalId+1 = 1 (H.265 7.4.2.2); parameter sets and AUD/SEI begin every
/// real stream. H.264 SPS/PPS carry nal_ref_idc != 0 and AUD/SEI carry 0
/// (H.264 7.4.1), which keeps the two sets disjoint.
fn detect_annexb(buf: &[u8]) -> Detection {
    let zeros = buf.iter().take_while(|&&b| b == 0).count();
    match buf.get(zeros) {
        None => return Detection::NeedMore,
        Some(1) if zeros >= 2 => {}
        Some(_) => return Detection::NoMatch,
    }
    for nal in nal_units(buf) {
        if let [b0, b1, ..] = nal {
            let h265_type = (b0 >> 1) & 0x3F;
            if b0 & 0x81 == 0 && *b1 == 0x01 && matches!(h265_type, 32..=35 | 39) {
                return Detection::Found(Format::H265);
            }
        }
        if let Some(&b0) = nal.first() {
            let ref_idc = (b0 >> 5) & 0x03;
            let ty = b0 & 0x1F;
            let plausible = b0 & 0x80 == 0
                && match ty {
                    7 | 8 => ref_idc != 0,
                    6 | 9 => ref_idc == 0,
                    _ => false,
                };
            if plausible && nal.len() >= 2 {
                return Detection::Found(Format::H264);
            }
        }
    }
    Detection::NeedMore
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect(b"RIFF\0\0\0\0WAVEfmt ", false),
            Detection::Found(Format::Wav)
        );
        assert_eq!(detect(b"RIFF\0\0", false), Detection::NeedMore);
        assert_eq!(detect(b"RIFF\0\0\0\0AVI ", false), Detection::NoMatch);
        assert_eq!(
            detect(&[0xFF, 0xD8, 0xFF, 0xE0], false),
            Detection::Found(Format::Mjpeg)
        );
        assert_eq!(
            detect(&[0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC], false),
            Detection::Found(Format::Adts)
        );
        assert_eq!(
            detect(&[0, 0, 0, 1, 0x67, 0x64, 0, 0x1e], false),
            Detection::Found(Format::H264)
        );
        assert_eq!(
            detect(&[0, 0, 1, 0x09, 0xf0], false),
            Detection::Found(Format::H264)
        );
        assert_eq!(
            detect(&[0, 0, 0, 1, 0x40, 0x01, 0x0c], false),
            Detection::Found(Format::H265)
        );
        assert_eq!(
            detect(&[0, 0, 0, 1, 0x46, 0x01, 0x50], false),
            Detection::Found(Format::H265)
        );
        assert_eq!(
            detect(b"--ffmpeg\r\nContent-Type: image/jpeg\r\n", false),
            Detection::Found(Format::Mjpeg)
        );
        assert_eq!(detect(b"--ffmp", false), Detection::NeedMore);
        assert_eq!(
            detect(b"FLV\x01\x05\0\0\0\x09", false),
            Detection::Found(Format::Flv)
        );
        assert_eq!(detect(b"--\r\n", false), Detection::NoMatch);
        let mut ts = vec![0u8; 400];
        ts[0] = 0x47;
        ts[188] = 0x47;
        ts[376] = 0x47;
        assert_eq!(detect(&ts, false), Detection::Found(Format::MpegTs));
        assert_eq!(detect(&ts[..200], false), Detection::NeedMore);
        assert_eq!(detect(&ts[..200], true), Detection::Found(Format::MpegTs));
        ts[376] = 0;
        assert_eq!(detect(&ts, false), Detection::NoMatch);
    }

    #[test]
    fn waits_or_rejects() {
        assert_eq!(detect(&[], false), Detection::NeedMore);
        assert_eq!(detect(&[0, 0], false), Detection::NeedMore);
        assert_eq!(detect(&[0, 0], true), Detection::NoMatch);
        assert_eq!(detect(b"hello world", false), Detection::NoMatch);
        assert_eq!(detect(&[0, 1, 2], false), Detection::NoMatch);
        assert_eq!(
            detect(b"\0\0\0\x18ftypiso5", false),
            Detection::Found(Format::Mp4)
        );
        assert_eq!(
            detect(b"\0\0\x02\0moof", false),
            Detection::Found(Format::Mp4)
        );
        assert_eq!(detect(b"\0\0\0\x18free", true), Detection::NoMatch);
        // A start code followed by an ambiguous NAL: wait for more NALs.
        assert_eq!(detect(&[0, 0, 1, 0x01, 0x02], false), Detection::NeedMore);
    }
}
