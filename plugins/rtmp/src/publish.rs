//! Publishing a stream to another RTMP server (the config's `publish:`,
//! `POST /api/streams?src=cam&dst=rtmp://…`): connect and `publish`, then
//! one [`Feed`] of the stream, as the server's players have, whose chunked
//! messages go to the target on the message stream it gave. The host decides
//! about reconnecting; a publisher only reports why it ended.

use std::sync::Arc;
use std::time::Duration;

use camrouter_plugin_api::sdk::{Host, PublishEvents, Publisher};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::client::{ClientEvent, RtmpUrl};
use crate::feed::{Feed, FeedConsumer};

/// What targets take (see `feed::publishable`); asking only for these lets
/// the stream start a transcoding source (`ffmpeg:cam#audio=aac`) listed
/// after a camera whose audio is G.711.
const QUERY: &str = "video=h264,h265,av1&audio=aac";

/// How long the stream may take to give its first media.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(60);

pub struct RtmpPublisher(Arc<Notify>);

impl Publisher for RtmpPublisher {
    fn stop(&self) {
        self.0.notify_one();
    }
}

/// Removes the feed's consumer however the publisher ends (its future is
/// dropped on `stop`).
struct Attached(Arc<Feed>);

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.remove();
    }
}

pub fn start(
    host: &Host,
    rt: &tokio::runtime::Handle,
    stream: &str,
    url: &str,
    events: PublishEvents,
) -> Result<RtmpPublisher, String> {
    let parsed = RtmpUrl::parse(url)?;
    if parsed.app.is_empty() {
        return Err("rtmp: publish URL without an app (rtmp://host/app/key)".into());
    }
    let stop = Arc::new(Notify::new());
    let s = stop.clone();
    let host = host.clone();
    let stream = stream.to_string();
    rt.spawn(async move {
        let reason = tokio::select! {
            r = run(&host, &stream, &parsed) => match r {
                Ok(()) => "rtmp: closed by the server".to_string(),
                Err(e) => format!("rtmp: {e}"),
            },
            _ = s.notified() => return,
        };
        events.closed(&reason);
    });
    Ok(RtmpPublisher(stop))
}

async fn run(host: &Host, stream: &str, url: &RtmpUrl) -> Result<(), String> {
    let (io, mut session, _) = crate::source::start(url, true).await?;
    let target = url.addr();
    let feed = Feed::publisher(stream, host.clone(), session.stream_id());
    let _attached = Attached(feed.clone());
    let info = json!({"format_name": "rtmp", "protocol": "rtmp", "remote_addr": target, "url": url.tc_url});
    let id = host.add_consumer(stream, QUERY, info.clone(), FeedConsumer(feed.clone()));
    feed.set_consumer(id);
    if tokio::time::timeout(MEDIA_TIMEOUT, feed.wait_ready())
        .await
        .is_err()
    {
        return Err(format!("stream {stream}: no media within 60 s"));
    }
    if let Some(e) = feed.ended() {
        return Err(e);
    }
    if !feed.has_audio() {
        tracing::info!(
            stream,
            target = %target,
            "publish: without audio: the stream has no AAC audio (RTMP targets take AAC; \
             a G.711 or Opus camera needs a transcoding source such as ffmpeg:{stream}#audio=aac)"
        );
    }
    let client = Arc::new(host.add_client(id, info));
    let Some((_, mut rx)) = feed.subscribe(client) else {
        return Err(feed.ended().unwrap_or_else(|| "stream ended".into()));
    };
    tracing::info!(stream, target = %target, "publish: started");
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(bytes) => wr.write_all(&bytes).await.map_err(|e| e.to_string())?,
                None => return Err(feed.ended().unwrap_or_else(|| "stream ended".into())),
            },
            // Acknowledgements, pings and a late refusal from the target.
            r = rd.read(&mut buf) => {
                let n = r.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok(());
                }
                for e in session.push(&buf[..n]).map_err(|e| e.to_string())? {
                    if let ClientEvent::Refused(why) = e {
                        return Err(why);
                    }
                }
                if !session.out.is_empty() {
                    let out = std::mem::take(&mut session.out);
                    wr.write_all(&out).await.map_err(|e| e.to_string())?;
                }
            }
        }
    }
}
