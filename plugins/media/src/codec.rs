//! Codec identifiers and the per-track description handed to consumers.

/// Whether a track carries pictures or sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
}

/// The codecs this crate can recognise in a child process's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecName {
    /// ITU-T H.264 / AVC.
    H264,
    /// ITU-T H.265 / HEVC.
    H265,
    /// Motion JPEG (a sequence of baseline/progressive JPEG images).
    Mjpeg,
    /// AOMedia AV1 (temporal units of OBUs, see [`crate::av1`]).
    Av1,
    /// MPEG-4 AAC.
    Aac,
    /// Opus.
    Opus,
    /// G.711 A-law.
    Pcma,
    /// G.711 mu-law.
    Pcmu,
    /// Signed 16-bit big-endian PCM (RTP L16, RFC 3551 4.5.11).
    PcmS16be,
    /// Signed 16-bit little-endian PCM.
    PcmS16le,
    /// ITU-T G.722 (RTP clock rate 8000 despite 16 kHz sampling, RFC 3551 4.5.2).
    G722,
}

impl CodecName {
    /// Name as used by ffmpeg's `-c` / `-f` options.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            CodecName::H264 => "h264",
            CodecName::H265 => "hevc",
            CodecName::Mjpeg => "mjpeg",
            CodecName::Av1 => "av1",
            CodecName::Aac => "aac",
            CodecName::Opus => "opus",
            CodecName::Pcma => "pcm_alaw",
            CodecName::Pcmu => "pcm_mulaw",
            CodecName::PcmS16be => "pcm_s16be",
            CodecName::PcmS16le => "pcm_s16le",
            CodecName::G722 => "adpcm_g722",
        }
    }

    /// Name as go2rtc spells it (mostly the RTP/SDP encoding name).
    pub fn go2rtc_name(self) -> &'static str {
        match self {
            CodecName::H264 => "H264",
            CodecName::H265 => "H265",
            CodecName::Mjpeg => "JPEG",
            CodecName::Av1 => "AV1",
            CodecName::Aac => "MPEG4-GENERIC",
            CodecName::Opus => "OPUS",
            CodecName::Pcma => "PCMA",
            CodecName::Pcmu => "PCMU",
            CodecName::PcmS16be => "L16",
            CodecName::PcmS16le => "PCML",
            CodecName::G722 => "G722",
        }
    }

    /// The codec go2rtc calls `name` (exactly as [`go2rtc_name`](Self::go2rtc_name)
    /// spells it); `None` for codecs this crate does not know.
    pub fn from_go2rtc_name(name: &str) -> Option<CodecName> {
        Some(match name {
            "H264" => CodecName::H264,
            "H265" => CodecName::H265,
            "JPEG" => CodecName::Mjpeg,
            "AV1" => CodecName::Av1,
            "MPEG4-GENERIC" => CodecName::Aac,
            "OPUS" => CodecName::Opus,
            "PCMA" => CodecName::Pcma,
            "PCMU" => CodecName::Pcmu,
            "L16" => CodecName::PcmS16be,
            "PCML" => CodecName::PcmS16le,
            "G722" => CodecName::G722,
            _ => return None,
        })
    }

    /// Video or audio.
    pub fn kind(self) -> MediaKind {
        match self {
            CodecName::H264 | CodecName::H265 | CodecName::Mjpeg | CodecName::Av1 => {
                MediaKind::Video
            }
            _ => MediaKind::Audio,
        }
    }
}

/// Everything a consumer needs to describe one track (e.g. to write SDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecInfo {
    /// Which codec.
    pub name: CodecName,
    /// RTP clock rate: 90000 for video, the sample rate for audio.
    pub clock_rate: u32,
    /// Audio channels; 0 for video.
    pub channels: u16,
    /// Picture width in pixels (after cropping); 0 for audio.
    pub width: u32,
    /// Picture height in pixels (after cropping); 0 for audio.
    pub height: u32,
    /// Profile name, e.g. "High", "Main", "LC"; empty if not applicable.
    pub profile: String,
    /// Level, e.g. "3.1"; empty if not applicable.
    pub level: String,
    /// H.264/H.265: parameter sets (VPS,) SPS, PPS as 4-byte big-endian
    /// length-prefixed NAL units. AV1: the `av1C` record (with the sequence
    /// header OBU). AAC: the AudioSpecificConfig. Else empty.
    pub extradata: Vec<u8>,
}

/// Video clock rate used by RTP for all video codecs (RFC 6184 8.2.1, RFC 7798 7.1).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

impl CodecInfo {
    /// A description with only the codec and clock rate filled in.
    pub fn new(name: CodecName, clock_rate: u32) -> Self {
        Self {
            name,
            clock_rate,
            channels: 0,
            width: 0,
            height: 0,
            profile: String::new(),
            level: String::new(),
            extradata: Vec::new(),
        }
    }

    /// Video or audio.
    pub fn kind(&self) -> MediaKind {
        self.name.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let all = [
            CodecName::H264,
            CodecName::H265,
            CodecName::Mjpeg,
            CodecName::Av1,
            CodecName::Aac,
            CodecName::Opus,
            CodecName::Pcma,
            CodecName::Pcmu,
            CodecName::PcmS16be,
            CodecName::PcmS16le,
            CodecName::G722,
        ];
        let ff: Vec<_> = all.iter().map(|c| c.ffmpeg_name()).collect();
        assert_eq!(
            ff,
            [
                "h264",
                "hevc",
                "mjpeg",
                "av1",
                "aac",
                "opus",
                "pcm_alaw",
                "pcm_mulaw",
                "pcm_s16be",
                "pcm_s16le",
                "adpcm_g722"
            ]
        );
        let g: Vec<_> = all.iter().map(|c| c.go2rtc_name()).collect();
        assert_eq!(
            g,
            [
                "H264",
                "H265",
                "JPEG",
                "AV1",
                "MPEG4-GENERIC",
                "OPUS",
                "PCMA",
                "PCMU",
                "L16",
                "PCML",
                "G722"
            ]
        );
        for c in all {
            assert_eq!(CodecName::from_go2rtc_name(c.go2rtc_name()), Some(c));
        }
        for other in ["h264", "MP4A-LATM", "FLAC", "VP8", ""] {
            assert_eq!(CodecName::from_go2rtc_name(other), None);
        }
        assert_eq!(CodecName::Mjpeg.kind(), MediaKind::Video);
        assert_eq!(CodecName::Pcmu.kind(), MediaKind::Audio);
        assert_eq!(
            CodecInfo::new(CodecName::H264, 90000).kind(),
            MediaKind::Video
        );
    }
}
