//! go2rtc's consumer query filters: `video`, `video=h264,h265`, `audio=all`,
//! `microphone`, `mp4`. A filter says which medias a consumer wants; the
//! negotiator matches them against producers in source order.

use camrouter_plugin_api::url::query_decode;
use camrouter_plugin_api::MediaKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub kind: MediaKind,
    /// Upper-case go2rtc codec names; `None` accepts any codec.
    pub codecs: Option<Vec<String>>,
    /// `=all`: every matching track of every source, not just the first.
    pub all: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub wants: Vec<Want>,
    /// Codecs the consumer can send to a producer's backchannel; `Some(None)`: any.
    pub microphone: Option<Option<Vec<String>>>,
}

/// Codecs an MP4 consumer can carry (go2rtc's `mp4` filter).
const MP4_VIDEO: &[&str] = &["H264", "H265", "AV1"];
const MP4_AUDIO: &[&str] = &["MPEG4-GENERIC", "OPUS", "PCMA", "PCMU", "FLAC"];

/// Maps user spellings (`h264`, `aac`, `pcm`) to go2rtc codec names.
pub fn codec_alias(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "h264" | "avc" => "H264".into(),
        "h265" | "hevc" => "H265".into(),
        "mjpeg" | "jpeg" => "JPEG".into(),
        "av1" | "av01" => "AV1".into(),
        "aac" | "mpeg4-generic" => "MPEG4-GENERIC".into(),
        "opus" => "OPUS".into(),
        "pcma" | "alaw" => "PCMA".into(),
        "pcmu" | "mulaw" => "PCMU".into(),
        "pcm" | "l16" => "L16".into(),
        "pcml" => "PCML".into(),
        other => other.to_ascii_uppercase(),
    }
}

fn parse_codecs(value: &str) -> (Option<Vec<String>>, bool) {
    if value.is_empty() || value.eq_ignore_ascii_case("any") {
        return (None, false);
    }
    if value.eq_ignore_ascii_case("all") {
        return (None, true);
    }
    let list = value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(codec_alias)
        .collect();
    (Some(list), false)
}

impl Filter {
    /// Parses a query string. Returns `None` when it names no media at all, so
    /// the caller can apply its default (`rtsp.default_query`).
    pub fn parse(query: &str) -> Option<Filter> {
        let mut f = Filter::default();
        let mut any = false;
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = query_decode(value);
            match key {
                "video" | "audio" => {
                    any = true;
                    let kind = if key == "video" {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    };
                    let (codecs, all) = parse_codecs(&value);
                    f.wants.push(Want { kind, codecs, all });
                }
                "microphone" => {
                    any = true;
                    f.microphone = Some(parse_codecs(&value).0);
                }
                "mp4" => {
                    any = true;
                    let list = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
                    f.wants.push(Want {
                        kind: MediaKind::Video,
                        codecs: list(MP4_VIDEO),
                        all: false,
                    });
                    f.wants.push(Want {
                        kind: MediaKind::Audio,
                        codecs: list(MP4_AUDIO),
                        all: false,
                    });
                }
                _ => {}
            }
        }
        any.then_some(f)
    }

    pub fn parse_or(query: &str, default: &str) -> Filter {
        Filter::parse(query)
            .or_else(|| Filter::parse(default))
            .unwrap_or_default()
    }

    pub fn accepts(codecs: &Option<Vec<String>>, name: &str) -> bool {
        match codecs {
            None => true,
            Some(list) => list.iter().any(|c| c == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go2rtc_filters() {
        let f = Filter::parse("video=h264,h265&audio=all&microphone").unwrap();
        assert_eq!(f.wants.len(), 2);
        assert_eq!(
            f.wants[0].codecs,
            Some(vec!["H264".to_string(), "H265".to_string()])
        );
        assert!(f.wants[1].all);
        assert_eq!(f.microphone, Some(None));
        assert!(Filter::parse("src=cam").is_none());
        let d = Filter::parse_or("", "video&audio");
        assert_eq!(d.wants.len(), 2);
        assert!(!d.wants[0].all && d.wants[0].codecs.is_none());
    }

    #[test]
    fn mp4_limits_codecs() {
        let f = Filter::parse("mp4").unwrap();
        assert!(Filter::accepts(&f.wants[0].codecs, "H264"));
        assert!(Filter::accepts(&f.wants[0].codecs, "AV1"));
        assert!(!Filter::accepts(&f.wants[0].codecs, "JPEG"));
        assert_eq!(codec_alias("av1"), "AV1");
    }
}
