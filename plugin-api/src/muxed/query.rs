//! What an MP4 client asks for, turned into the graph's consumer query:
//! go2rtc's `video=`/`audio=`/`mp4` params for `stream.mp4` (and HLS
//! `?mp4`), the codec list a browser sends for MSE (and HLS over `/api/ws`).

const VIDEO: &[&str] = &["h264", "h265", "av1"];
const AUDIO: &[&str] = &["aac", "opus", "pcma", "pcmu", "pcm", "pcml"];
/// G.711 and PCM, written as FLAC (go2rtc's `mp4=flac`).
const FLAC: &str = "pcma,pcmu,pcm,pcml";
/// go2rtc's default MP4 consumer (H.264/H.265 video, AAC audio), and AV1
/// video last, so a stream with only AV1 plays too.
pub const DEFAULT: &str = "video=h264,h265,av1&audio=aac";

/// The codecs of `list` (go2rtc/ffmpeg spellings) this module can write.
fn supported(list: &str, ours: &[&'static str]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for name in list.split(',') {
        let name = match name.trim().to_ascii_lowercase().as_str() {
            "h264" | "avc" => "h264",
            "h265" | "hevc" => "h265",
            "av1" | "av01" => "av1",
            "aac" | "mpeg4-generic" => "aac",
            "opus" => "opus",
            "pcma" | "alaw" => "pcma",
            "pcmu" | "mulaw" => "pcmu",
            "pcm" | "l16" => "pcm",
            "pcml" => "pcml",
            _ => continue,
        };
        if ours.contains(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The consumer query for `stream.mp4` and `frame.mp4`, from the request's
/// query pairs; an error when every codec the client named is one MP4 here
/// cannot carry.
pub fn from_params(pairs: &[(String, String)]) -> Result<String, String> {
    if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "mp4") {
        // `mp4=flac` adds G.711/PCM (as FLAC) for modern browsers, `mp4=all`
        // also Opus, which fewer players take.
        return Ok(match v.as_str() {
            "flac" => format!("video=h264,h265,av1&audio=aac,{FLAC}"),
            "all" => format!("video=h264,h265,av1&audio=aac,{FLAC},opus"),
            _ => DEFAULT.into(),
        });
    }
    let mut parts = Vec::new();
    for (k, v) in pairs {
        let ours = match k.as_str() {
            "video" => VIDEO,
            "audio" => AUDIO,
            _ => continue,
        };
        let list = if v.is_empty() || v == "any" || v == "all" {
            ours.to_vec()
        } else {
            supported(v, ours)
        };
        if list.is_empty() {
            return Err(format!("mp4: {k}={v}: no codec MP4 can carry here"));
        }
        parts.push(format!("{k}={}", list.join(",")));
    }
    Ok(if parts.is_empty() {
        DEFAULT.into()
    } else {
        parts.join("&")
    })
}

/// The consumer query for an MSE client from the codecs its browser can
/// play (`avc1.640029,hvc1.1.6.L153.B0,mp4a.40.2,opus`), as go2rtc's
/// player sends them. Empty: go2rtc's default.
pub fn from_mse_codecs(codecs: &str) -> Result<String, String> {
    if codecs.trim().is_empty() {
        return Ok(DEFAULT.into());
    }
    let (mut video, mut audio) = (Vec::new(), Vec::new());
    for c in codecs.split(',').map(str::trim) {
        let c = c.to_ascii_lowercase();
        let (list, name) = if c.starts_with("avc1.") || c == "avc1" {
            (&mut video, "h264")
        } else if c.starts_with("hvc1.") || c.starts_with("hev1.") {
            (&mut video, "h265")
        } else if c.starts_with("av01.") {
            (&mut video, "av1")
        } else if c.starts_with("mp4a.40") {
            (&mut audio, "aac")
        } else if c == "opus" {
            (&mut audio, "opus")
        } else if c == "flac" {
            (&mut audio, FLAC)
        } else if c == "null" {
            // go2rtc's player ends the list with `null` when the browser
            // claims codecs it cannot play: trust nothing after it.
            break;
        } else {
            continue;
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }
    let mut parts = Vec::new();
    if !video.is_empty() {
        parts.push(format!("video={}", video.join(",")));
    }
    if !audio.is_empty() {
        parts.push(format!("audio={}", audio.join(",")));
    }
    if parts.is_empty() {
        return Err(format!("mse: none of the codecs {codecs:?} is supported"));
    }
    Ok(parts.join("&"))
}

/// The stream an `/api/ws` message is for: its own `src`, else the one in
/// the socket URL's query (which the host passes as `query`).
pub fn ws_src(msg: &serde_json::Value) -> String {
    if let Some(s) = msg.get("src").and_then(|v| v.as_str()) {
        return s.to_string();
    }
    let query = msg
        .get("query")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    crate::url::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "src")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        crate::url::query_pairs(q)
    }

    #[test]
    fn stream_params() {
        assert_eq!(from_params(&pairs("src=cam")).unwrap(), DEFAULT);
        assert_eq!(from_params(&pairs("src=cam&mp4")).unwrap(), DEFAULT);
        assert_eq!(
            from_params(&pairs("src=cam&mp4=all")).unwrap(),
            "video=h264,h265,av1&audio=aac,pcma,pcmu,pcm,pcml,opus"
        );
        assert_eq!(
            from_params(&pairs("mp4=flac")).unwrap(),
            "video=h264,h265,av1&audio=aac,pcma,pcmu,pcm,pcml"
        );
        assert_eq!(
            from_params(&pairs("src=cam&video")).unwrap(),
            "video=h264,h265,av1"
        );
        assert_eq!(
            from_params(&pairs("video=H265,mjpeg&audio=all")).unwrap(),
            "video=h265&audio=aac,opus,pcma,pcmu,pcm,pcml"
        );
        assert_eq!(
            from_params(&pairs("audio=alaw,g722")).unwrap(),
            "audio=pcma"
        );
        assert_eq!(from_params(&pairs("video=av1")).unwrap(), "video=av1");
        assert!(from_params(&pairs("video=mjpeg")).is_err());
        assert!(from_params(&pairs("audio=g722")).is_err());
    }

    #[test]
    fn mse_codecs() {
        assert_eq!(
            from_mse_codecs(
                "avc1.640029,avc1.64002A,hvc1.1.6.L153.B0,av01.0.08M.08,mp4a.40.2,mp4a.40.5,opus"
            )
            .unwrap(),
            "video=h264,h265,av1&audio=aac,opus"
        );
        assert_eq!(
            from_mse_codecs("avc1.640029,null,opus").unwrap(),
            "video=h264"
        );
        assert_eq!(from_mse_codecs("").unwrap(), DEFAULT);
        assert_eq!(from_mse_codecs("flac").unwrap(), "audio=pcma,pcmu,pcm,pcml");
        assert!(from_mse_codecs("vp8,vorbis").is_err());
    }
}
