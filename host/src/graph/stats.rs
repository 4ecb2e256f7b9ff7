//! The stats record every producer and consumer reports, shaped like go2rtc's
//! `core.Connection` JSON so that existing tools read it unchanged.

use std::sync::atomic::Ordering;

use camrouter_plugin_api::{Codec, Direction, Media, MediaKind};
use serde_json::{json, Map, Value};

use super::{mask, Client, ConsumerEntry, Producer, Status};

/// `video, recvonly, H264` as go2rtc renders a media.
pub fn media_string(m: &Media) -> String {
    let mut s = format!(
        "{}, {}",
        match m.kind {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        },
        match m.direction {
            Direction::RecvOnly => "recvonly",
            Direction::SendOnly => "sendonly",
        }
    );
    for c in m.codecs.iter() {
        s.push_str(", ");
        s.push_str(&codec_string(c));
    }
    s
}

fn codec_string(c: &Codec) -> String {
    let mut s = c.name.to_string();
    if c.clock_rate != 0 && c.clock_rate != 90000 {
        s.push_str(&format!("/{}", c.clock_rate));
        if c.channels > 1 {
            s.push_str(&format!("/{}", c.channels));
        }
    }
    s
}

/// FFmpeg's names, as go2rtc's receivers report them.
pub fn ffmpeg_codec_name(go2rtc: &str) -> &'static str {
    match go2rtc {
        "H264" => "h264",
        "H265" => "hevc",
        "JPEG" => "mjpeg",
        "MPEG4-GENERIC" | "MP4A-LATM" => "aac",
        "OPUS" => "opus",
        "PCMA" => "pcm_alaw",
        "PCMU" => "pcm_mulaw",
        "L16" => "pcm_s16be",
        "PCML" => "pcm_s16le",
        "FLAC" => "flac",
        "G722" => "g722",
        "VP8" => "vp8",
        "VP9" => "vp9",
        "AV1" => "av1",
        _ => "",
    }
}

pub fn codec_json(kind: MediaKind, c: &Codec) -> Value {
    let mut m = Map::new();
    let ff = ffmpeg_codec_name(c.name.as_str());
    m.insert(
        "codec_name".into(),
        json!(if ff.is_empty() {
            c.name.to_lowercase()
        } else {
            ff.to_string()
        }),
    );
    m.insert(
        "codec_type".into(),
        json!(match kind {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }),
    );
    if !c.profile.is_empty() {
        m.insert("profile".into(), json!(c.profile.as_str()));
    }
    if !c.level.is_empty() {
        // ffprobe reports H.264 levels as integers (`3.1` → 31).
        let level = match (c.name.as_str(), c.level.parse::<f64>()) {
            ("H264", Ok(l)) => json!((l * 10.0).round() as i64),
            _ => json!(c.level.as_str()),
        };
        m.insert("level".into(), level);
    }
    if c.width > 0 && c.height > 0 {
        m.insert("width".into(), json!(c.width));
        m.insert("height".into(), json!(c.height));
    }
    if kind == MediaKind::Audio {
        if c.clock_rate > 0 {
            m.insert("sample_rate".into(), json!(c.clock_rate));
        }
        if c.channels > 0 {
            m.insert("channels".into(), json!(c.channels));
        }
    }
    Value::Object(m)
}

pub fn producer_json(p: &Producer) -> Value {
    let status = p.status.borrow().clone();
    let core = p.lock_core();
    let mut m = Map::new();
    if status == Status::Idle && !p.passive {
        // go2rtc shows an idle source as just its URL.
        m.insert("url".into(), json!(mask(&p.url)));
        return Value::Object(m);
    }
    m.insert("id".into(), json!(p.id));
    for (k, v) in &core.info {
        m.insert(k.clone(), v.clone());
    }
    if !p.passive {
        m.insert("url".into(), json!(mask(&p.url)));
        if core.current_url != p.url {
            m.insert("source".into(), json!(mask(&core.current_url)));
        }
    } else if let Some(Value::String(u)) = m.get("url").cloned() {
        m.insert("url".into(), json!(mask(&u)));
    }
    if let Status::Failed(e) = &status {
        m.insert("error".into(), json!(mask(e)));
    }
    if !core.medias.is_empty() {
        m.insert(
            "medias".into(),
            json!(core.medias.iter().map(media_string).collect::<Vec<_>>()),
        );
    }
    let tracks = p.tracks.read().map(|t| t.clone()).unwrap_or_default();
    let receivers: Vec<Value> = tracks
        .iter()
        .filter(|t| t.direction == Direction::RecvOnly)
        .map(|t| {
            let childs: Vec<u64> = t.lock().sinks.iter().map(|s| s.consumer.id).collect();
            json!({
                "id": t.index,
                "codec": codec_json(t.kind, &t.codec),
                "childs": childs,
                "bytes": t.bytes.load(Ordering::Relaxed),
                "packets": t.packets.load(Ordering::Relaxed),
            })
        })
        .collect();
    if !receivers.is_empty() {
        m.insert("receivers".into(), json!(receivers));
    }
    m.insert("bytes_recv".into(), json!(p.bytes.load(Ordering::Relaxed)));
    Value::Object(m)
}

pub fn consumer_json(c: &ConsumerEntry) -> Value {
    let mut m = match &c.info {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    m.insert("id".into(), json!(c.id));
    insert_medias(&mut m, &c.medias());
    m.insert("bytes_send".into(), json!(c.bytes.load(Ordering::Relaxed)));
    m.insert("packets".into(), json!(c.packets.load(Ordering::Relaxed)));
    Value::Object(m)
}

/// One client of a shared consumer, listed as a consumer of its own: the
/// consumer's fields, overridden by the client's, its own id and counters,
/// and only the tracks it plays when it said which.
pub fn client_json(c: &ConsumerEntry, client: &Client) -> Value {
    let mut m = match &c.info {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let mut tracks: Option<Vec<u64>> = None;
    if let Value::Object(ci) = &client.info {
        for (k, v) in ci {
            if k == "tracks" {
                tracks = v
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_u64()).collect());
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    m.insert("id".into(), json!(client.id));
    let mut medias = c.medias();
    if let Some(t) = tracks {
        medias = medias
            .into_iter()
            .enumerate()
            .filter(|(i, _)| t.contains(&(*i as u64)))
            .map(|(_, md)| md)
            .collect();
    }
    insert_medias(&mut m, &medias);
    let k = &client.counters;
    m.insert("bytes_send".into(), json!(k.bytes.load(Ordering::Relaxed)));
    m.insert("packets".into(), json!(k.packets.load(Ordering::Relaxed)));
    let dropped = k.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        m.insert("dropped".into(), json!(dropped));
    }
    Value::Object(m)
}

fn insert_medias(m: &mut Map<String, Value>, medias: &[camrouter_plugin_api::Media]) {
    if !medias.is_empty() {
        m.insert(
            "medias".into(),
            json!(medias.iter().map(media_string).collect::<Vec<_>>()),
        );
        let senders: Vec<Value> = medias
            .iter()
            .enumerate()
            .filter(|(_, md)| md.direction == Direction::SendOnly)
            .filter_map(|(i, md)| {
                md.codecs
                    .first()
                    .map(|cd| json!({"id": i, "codec": codec_json(md.kind, cd)}))
            })
            .collect();
        if !senders.is_empty() {
            m.insert("senders".into(), json!(senders));
        }
    }
}
