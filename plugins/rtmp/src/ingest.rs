//! A publisher's audio/video messages are FLV tag bodies: they are framed as
//! an FLV file and go through the same demuxer as `POST /api/stream.flv`
//! and FLV sources (camrouter-media's `PipeDemuxer`).

use std::time::{Duration, Instant};

use camrouter_media::detect::Format;
use camrouter_media::pipe::{PipeDemuxer, PipeEvent};
use camrouter_plugin_api::media::{frame_packet, to_media};
use camrouter_plugin_api::sdk::SourceEvents;
use serde_json::json;

use crate::amf::{self, Amf};
use crate::chunk::{msg, Message};

/// Until the tracks are described, at most this long.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Ingest {
    events: SourceEvents,
    demux: PipeDemuxer,
    header_sent: bool,
    /// From `onMetaData`: which kinds the publisher announced.
    audio: Option<bool>,
    video: Option<bool>,
    clocks: Vec<u32>,
    described: bool,
    started: Instant,
    tag: Vec<u8>,
}

impl Ingest {
    pub fn new(events: SourceEvents) -> Ingest {
        Ingest {
            events,
            demux: PipeDemuxer::with_format(Format::Flv),
            header_sent: false,
            audio: None,
            video: None,
            clocks: Vec::new(),
            described: false,
            started: Instant::now(),
            tag: Vec::new(),
        }
    }

    pub fn message(&mut self, m: &Message) -> Result<(), String> {
        match m.type_id {
            msg::DATA_AMF0 => {
                if self.header_sent {
                    return Ok(());
                }
                // `@setDataFrame`, `onMetaData`, {videocodecid, audiocodecid, …}
                if let Ok(values) = amf::decode_all(&m.payload) {
                    if let Some(meta) = values.iter().find(|v| {
                        v.get("duration").is_some()
                            || v.get("videocodecid").is_some()
                            || v.get("audiocodecid").is_some()
                    }) {
                        self.video =
                            Some(meta.get("videocodecid").is_some_and(|v| *v != Amf::Null));
                        self.audio =
                            Some(meta.get("audiocodecid").is_some_and(|v| *v != Amf::Null));
                    }
                }
                Ok(())
            }
            msg::AUDIO | msg::VIDEO => {
                if !self.header_sent {
                    self.header_sent = true;
                    // Without metadata, announce both kinds: a track whose
                    // description never comes holds the others back only
                    // until the demuxer's pending limit.
                    let video = self.video.unwrap_or(true);
                    let audio = self.audio.unwrap_or(true);
                    let flags = (u8::from(audio) << 2) | u8::from(video);
                    self.demux
                        .push(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]);
                }
                if m.payload.is_empty() {
                    return Ok(());
                }
                let len = m.payload.len() as u32;
                self.tag.clear();
                self.tag.push(m.type_id);
                self.tag.extend_from_slice(&len.to_be_bytes()[1..]);
                let ts = m.timestamp;
                self.tag.extend_from_slice(&ts.to_be_bytes()[1..]);
                self.tag.push((ts >> 24) as u8);
                self.tag.extend_from_slice(&[0, 0, 0]);
                self.tag.extend_from_slice(&m.payload);
                self.tag.extend_from_slice(&(len + 11).to_be_bytes());
                self.demux.push(&self.tag);
                self.drain()
            }
            _ => Ok(()),
        }
    }

    fn drain(&mut self) -> Result<(), String> {
        while let Some(ev) = self.demux.poll() {
            match ev {
                Ok(PipeEvent::Tracks(tracks)) => {
                    if self.described {
                        continue;
                    }
                    self.described = true;
                    self.clocks = tracks.iter().map(|t| t.clock_rate.max(1)).collect();
                    self.events.info(json!({"format_name": "rtmp"}));
                    self.events.medias(tracks.iter().map(to_media).collect());
                }
                Ok(PipeEvent::Frame(f)) => {
                    let clock = self.clocks.get(f.track).copied().unwrap_or(90_000);
                    self.events
                        .packet(&frame_packet(f, clock, self.started.elapsed()));
                }
                // FLV only: never raw pictures.
                Ok(PipeEvent::RawVideo(_) | PipeEvent::Picture(_)) => {}
                Err(e) => {
                    if self.demux.failed() {
                        return Err(format!("flv: {e}"));
                    }
                    tracing::debug!("rtmp: publisher: {e}");
                }
            }
        }
        if !self.described && self.started.elapsed() > START_TIMEOUT {
            return Err(format!("no media after {} s", START_TIMEOUT.as_secs()));
        }
        Ok(())
    }
}
