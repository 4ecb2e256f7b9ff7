//! An HLS playlist as a source (RFC 8216): the first variant of a
//! multivariant playlist, its segments fetched in order into one demuxer,
//! the playlist reloaded as the server adds segments. Segments are MPEG-TS,
//! or fMP4 (`#EXT-X-MAP` names the init segment, fetched before the first
//! segment and again when it changes; the demuxer detects either).

use std::time::{Duration, Instant};

use crate::client::{Client, Response};
use crate::source::Feed;
use crate::target::Target;

/// A playlist larger than this is not one.
const MAX_PLAYLIST: usize = 1024 * 1024;
/// A live playlist starts this many segments from its end (RFC 8216 6.3.3
/// says at least three target durations from the end; two keeps latency low
/// and still leaves a segment in hand).
const LIVE_START_SEGMENTS: usize = 2;

#[derive(Debug, Default, PartialEq)]
pub struct Playlist {
    /// Multivariant: the first variant's URI.
    pub variant: Option<String>,
    pub target_duration: Duration,
    pub media_sequence: u64,
    /// (media sequence number, URI).
    pub segments: Vec<(u64, String)>,
    pub ended: bool,
    /// `#EXT-X-MAP`'s URI: the init segment of fMP4 segments.
    pub map: Option<String>,
}

pub fn parse(text: &str) -> Result<Playlist, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("HLS: invalid playlist (no #EXTM3U)".into());
    }
    let mut p = Playlist {
        target_duration: Duration::from_secs(2),
        ..Playlist::default()
    };
    let mut seq = None;
    let mut stream_inf = false;
    for line in lines {
        if let Some(tag) = line.strip_prefix('#') {
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-TARGETDURATION" => {
                    if let Ok(s) = value.trim().parse::<f64>() {
                        if s.is_finite() && s > 0.0 {
                            p.target_duration = Duration::from_secs_f64(s.min(60.0));
                        }
                    }
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    p.media_sequence = value.trim().parse().unwrap_or(0);
                }
                "EXT-X-ENDLIST" => p.ended = true,
                "EXT-X-MAP" => {
                    let uri = attribute(value, "URI")
                        .ok_or("HLS: invalid playlist (#EXT-X-MAP without URI)")?;
                    p.map = Some(uri.to_string());
                }
                "EXT-X-STREAM-INF" => stream_inf = true,
                _ => {}
            }
            continue;
        }
        if stream_inf {
            p.variant.get_or_insert_with(|| line.to_string());
            stream_inf = false;
            continue;
        }
        let n = *seq.get_or_insert(p.media_sequence);
        p.segments.push((n, line.to_string()));
        seq = Some(n + 1);
    }
    Ok(p)
}

/// A quoted attribute of a tag's list (`NAME="value",…`).
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, tail) = rest.split_once('=')?;
        let (value, tail) = match tail.strip_prefix('"') {
            Some(q) => {
                let (v, t) = q.split_once('"')?;
                (v, t)
            }
            None => tail.split_at(tail.find(',').unwrap_or(tail.len())),
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = tail.trim_start_matches(',');
    }
    None
}

async fn read_all(mut res: Response, timeout: Duration) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk(timeout).await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_PLAYLIST {
            return Err("HLS: invalid playlist (over 1 MiB)".into());
        }
    }
    String::from_utf8(body).map_err(|_| "HLS: invalid playlist (not UTF-8)".into())
}

/// Runs the playlist until it ends or fails; returns why.
pub async fn run(client: &mut Client, res: Response, feed: &mut Feed, timeout: Duration) -> String {
    let mut target = res.target.clone();
    let mut playlist = match read_all(res, timeout).await.and_then(|t| parse(&t)) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if let Some(variant) = playlist.variant.take() {
        target = match target.redirect(&variant) {
            Ok(t) => t,
            Err(e) => return format!("HLS: variant: {e}"),
        };
        playlist = match fetch_playlist(client, &target, timeout).await {
            Ok(p) => p,
            Err(e) => return e,
        };
    }
    // The init segment the demuxer last had (fMP4).
    let mut map_pushed: Option<String> = None;
    let mut next: Option<u64> = None;
    let mut last_new = Instant::now();
    loop {
        let start = next.unwrap_or_else(|| {
            if playlist.ended {
                playlist.media_sequence
            } else {
                let n = playlist.segments.len().saturating_sub(LIVE_START_SEGMENTS);
                playlist.segments.get(n).map_or(0, |s| s.0)
            }
        });
        for (seq, uri) in playlist.segments.iter().filter(|s| s.0 >= start) {
            let seg = match target.redirect(uri) {
                Ok(t) => t,
                Err(e) => return format!("HLS: segment: {e}"),
            };
            if let Some(uri) = playlist
                .map
                .clone()
                .filter(|m| map_pushed.as_ref() != Some(m))
            {
                let init = match target.redirect(&uri) {
                    Ok(t) => t,
                    Err(e) => return format!("HLS: init segment: {e}"),
                };
                if let Err(e) = fetch_into(client, &init, feed, timeout).await {
                    return format!("HLS: init segment: {e}");
                }
                map_pushed = Some(uri);
            }
            if let Err(e) = fetch_into(client, &seg, feed, timeout).await {
                return format!("HLS: segment {seq}: {e}");
            }
            next = Some(seq + 1);
            last_new = Instant::now();
        }
        if playlist.ended {
            return match feed.finish() {
                Err(e) => e,
                Ok(()) => feed.eof(),
            };
        }
        if last_new.elapsed() > playlist.target_duration * 3 + timeout {
            return "HLS: the playlist stopped growing".into();
        }
        tokio::time::sleep((playlist.target_duration / 2).max(Duration::from_millis(500))).await;
        playlist = match fetch_playlist(client, &target, timeout).await {
            Ok(p) => p,
            Err(e) => return e,
        };
        // A server that restarted its numbering: start again from its end.
        if let (Some(n), Some(last)) = (next, playlist.segments.last()) {
            if last.0 + 1 < n {
                next = None;
            }
        }
    }
}

/// One segment's body into the demuxer.
async fn fetch_into(
    client: &mut Client,
    target: &Target,
    feed: &mut Feed,
    timeout: Duration,
) -> Result<(), String> {
    let mut res = client.get(target).await?;
    while let Some(data) = res.chunk(timeout).await? {
        feed.push(&data)?;
    }
    Ok(())
}

async fn fetch_playlist(
    client: &mut Client,
    target: &Target,
    timeout: Duration,
) -> Result<Playlist, String> {
    let res = client.get(target).await.map_err(|e| format!("HLS: {e}"))?;
    parse(&read_all(res, timeout).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_media_and_multivariant_playlists() {
        let p = parse(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXTINF:2.0,\nseg7.ts\n#EXTINF:2.0,\n/live/seg8.ts\n",
        )
        .unwrap();
        assert_eq!(p.target_duration, Duration::from_secs(2));
        assert_eq!(
            p.segments,
            vec![(7, "seg7.ts".into()), (8, "/live/seg8.ts".into())]
        );
        assert!(!p.ended && p.map.is_none() && p.variant.is_none());

        let m = parse(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.64001f\"\nhi/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=500\nlo/index.m3u8\n",
        )
        .unwrap();
        assert_eq!(m.variant.as_deref(), Some("hi/index.m3u8"));

        let v = parse(
            "#EXTM3U\n#EXT-X-MAP:URI=\"init, 1.mp4\",BYTERANGE=\"10@0\"\n#EXTINF:1,\na.m4s\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        assert_eq!(v.map.as_deref(), Some("init, 1.mp4"));
        assert!(v.ended);
        assert_eq!(
            attribute("BYTERANGE=10@0,URI=\"x.mp4\"", "URI"),
            Some("x.mp4")
        );
        assert_eq!(attribute("A=1,B=2", "B"), Some("2"));
        assert!(parse("#EXTM3U\n#EXT-X-MAP:BYTERANGE=1\n").is_err());
        assert!(parse("<html>").is_err());
    }
}
