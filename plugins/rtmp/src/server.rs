//! The RTMP server: each connection does the handshake and the command flow
//! ([`ServerSession`]), then either publishes into a stream (an ingest
//! producer) or plays one (a player of the stream's shared [`Feed`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camrouter_plugin_api::abi::ApiCredentials;
use camrouter_plugin_api::sdk::{Host, Source};
use camrouter_plugin_api::url::{percent_decode, query_pairs};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::feed::{Feed, FeedConsumer};
use crate::handshake::ServerHandshake;
use crate::ingest::Ingest;
use crate::session::{Event, ServerSession};
use crate::Config;

/// The handshake and the commands up to publish/play must be done by then:
/// a slowloris connection costs at most this long.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher silent this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections at once; past this, new ones are closed at accept.
const MAX_CONNECTIONS: usize = 2048;

pub struct Server {
    host: Host,
    runtime: tokio::runtime::Handle,
    config: Config,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    connections: AtomicUsize,
}

impl Server {
    pub fn new(host: Host, runtime: tokio::runtime::Handle, config: Config) -> Server {
        Server {
            host,
            runtime,
            config,
            feeds: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
        }
    }

    /// The stream's feed, started on first use.
    fn feed(&self, stream: &str) -> Option<Arc<Feed>> {
        let mut feeds = self.feeds.lock().ok()?;
        if let Some(f) = feeds.get(stream) {
            if f.ended().is_none() {
                return Some(f.clone());
            }
            f.remove();
            feeds.remove(stream);
        }
        let feed = Feed::new(stream, self.host.clone());
        let info = json!({"format_name": "rtmp", "protocol": "rtmp"});
        let id = self.host.add_consumer(
            stream,
            "video=h264,h265,av1&audio=aac,pcma,pcmu",
            info,
            FeedConsumer(feed.clone()),
        );
        feed.set_consumer(id);
        feeds.insert(stream.to_string(), feed.clone());
        Some(feed)
    }

    fn leave(&self, feed: &Arc<Feed>, player: u64) {
        let Ok(mut feeds) = self.feeds.lock() else {
            return;
        };
        if feed.unsubscribe(player) {
            if feeds
                .get(&feed.stream)
                .is_some_and(|f| Arc::ptr_eq(f, feed))
            {
                feeds.remove(&feed.stream);
            }
            // Off the lock's holder's path: the graph may call the feed.
            let feed = feed.clone();
            self.runtime.spawn(async move { feed.remove() });
        }
    }
}

pub async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if server.connections.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            server.connections.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(remote = %peer, "too many connections");
            continue;
        }
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(&server, sock, peer).await {
                tracing::warn!(remote = %peer, "{e}");
            }
            server.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The stream a publish/play names: the stream name argument (the last
/// path element of the URL), else the app (`rtmp://host/name` as some
/// clients split it), without its query.
fn stream_name(app: &str, name: &str) -> (String, String) {
    let pick = if name.is_empty() { app } else { name };
    let (path, query) = pick.split_once('?').unwrap_or((pick, ""));
    let last = path.rsplit('/').next().unwrap_or(path);
    let app_query = app.split_once('?').map_or("", |(_, q)| q);
    let query = if query.is_empty() { app_query } else { query };
    (percent_decode(last), query.to_string())
}

async fn connection(
    server: &Arc<Server>,
    mut sock: TcpStream,
    peer: SocketAddr,
) -> Result<(), String> {
    let _ = sock.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut session = ServerSession::new();
    let setup = async {
        let mut hs = ServerHandshake::new();
        let rest = loop {
            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            let (reply, rest) = hs.push(&buf[..n]).map_err(|e| e.to_string())?;
            if !reply.is_empty() {
                sock.write_all(&reply).await.map_err(|e| e.to_string())?;
            }
            if hs.done() {
                break rest;
            }
        };
        let mut events = session.push(&rest).map_err(|e| e.to_string())?;
        loop {
            if !session.out.is_empty() {
                let out = std::mem::take(&mut session.out);
                sock.write_all(&out).await.map_err(|e| e.to_string())?;
            }
            if let Some(i) = events
                .iter()
                .position(|e| matches!(e, Event::Publish { .. } | Event::Play { .. }))
            {
                return Ok(events.swap_remove(i));
            }
            if events.contains(&Event::Done) {
                return Err("closed before publish or play".to_string());
            }
            let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before publish or play".to_string());
            }
            events = session.push(&buf[..n]).map_err(|e| e.to_string())?;
        }
    };
    let event = match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(r) => r?,
        Err(_) => return Err("no publish or play within 10 s".into()),
    };
    match event {
        Event::Publish { app, name } => {
            let (stream, query) = stream_name(&app, &name);
            publish(server, sock, peer, session, buf, stream, query).await
        }
        Event::Play { app, name } => {
            let (stream, _) = stream_name(&app, &name);
            play(server, sock, peer, session, buf, stream).await
        }
        _ => Ok(()),
    }
}

/// Publishing credentials come in the query of the stream name or the app
/// (`?user=…&pass=…`; OBS's stream key field takes `name?user=…&pass=…`).
/// They must be `rtmp.username`/`rtmp.password` when set; else the API's
/// when the API has a username (`api`, asked through the host, which
/// compares them); else anyone may publish. Unlike the API, loopback
/// clients are not exempt: a publisher replaces what a stream shows.
fn authorized(
    config: &Config,
    query: &str,
    api: impl FnOnce(&str, &str) -> ApiCredentials,
) -> bool {
    let pairs = query_pairs(query);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let (user, pass) = (get("user"), get("pass"));
    if !config.username.is_empty() || !config.password.is_empty() {
        // Both compared whatever the first gives.
        return same_secret(user, &config.username) & same_secret(pass, &config.password);
    }
    api(user, pass) != ApiCredentials::Refused
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

struct PublisherSource(Arc<Notify>);

impl Source for PublisherSource {
    fn stop(&self) {
        self.0.notify_one();
    }
}

async fn publish(
    server: &Arc<Server>,
    mut sock: TcpStream,
    peer: SocketAddr,
    mut session: ServerSession,
    mut buf: Vec<u8>,
    stream: String,
    query: String,
) -> Result<(), String> {
    if !authorized(&server.config, &query, |u, p| {
        server.host.check_api_credentials(u, p)
    }) {
        session.reject("NetStream.Publish.BadAuth", "wrong or missing user/pass");
        let _ = sock.write_all(&session.out).await;
        return Err(format!("publish {stream}: not authorized"));
    }
    if stream.is_empty() || !server.host.stream_exists(&stream) {
        session.reject("NetStream.Publish.BadName", "stream not found");
        let _ = sock.write_all(&session.out).await;
        return Err(format!("publish {stream}: stream not found"));
    }
    let stop = Arc::new(Notify::new());
    let info = json!({
        "format_name": "rtmp",
        "protocol": "rtmp",
        "remote_addr": peer.to_string(),
        "url": session.tc_url(),
    });
    let events = server
        .host
        .add_producer(&stream, info, PublisherSource(stop.clone()))
        .map_err(|e| format!("publish {stream}: {e}"))?;
    tracing::debug!(stream = %stream, remote = %peer, "publisher joined");
    session.accept_publish();
    let out = std::mem::take(&mut session.out);
    let result = async {
        sock.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut ingest = Ingest::new(events.clone());
        loop {
            let n = tokio::select! {
                r = tokio::time::timeout(IDLE_TIMEOUT, sock.read(&mut buf)) => match r {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => return Err("publisher silent for 30 s".to_string()),
                },
                _ = stop.notified() => return Ok("stopped".to_string()),
            };
            if n == 0 {
                return Ok("EOF".to_string());
            }
            for ev in session.push(&buf[..n]).map_err(|e| e.to_string())? {
                match ev {
                    Event::Media(m) => ingest.message(&m)?,
                    Event::Done => return Ok("unpublished".to_string()),
                    _ => {}
                }
            }
            if !session.out.is_empty() {
                let out = std::mem::take(&mut session.out);
                sock.write_all(&out).await.map_err(|e| e.to_string())?;
            }
        }
    }
    .await;
    match result {
        Ok(reason) => {
            events.closed(&format!("rtmp: publisher: {reason}"));
            Ok(())
        }
        Err(e) => {
            events.closed(&format!("rtmp: publisher: {e}"));
            Err(format!("publish {stream}: {e}"))
        }
    }
}

async fn play(
    server: &Arc<Server>,
    mut sock: TcpStream,
    peer: SocketAddr,
    mut session: ServerSession,
    mut buf: Vec<u8>,
    stream: String,
) -> Result<(), String> {
    let feed = if stream.is_empty() || !server.host.stream_exists(&stream) {
        None
    } else {
        server.feed(&stream)
    };
    let Some(feed) = feed else {
        session.reject("NetStream.Play.StreamNotFound", "stream not found");
        let _ = sock.write_all(&session.out).await;
        return Err(format!("play {stream}: stream not found"));
    };
    // The stream's source may take a while to start; a player waits as
    // long as the graph lets a consumer wait.
    if tokio::time::timeout(Duration::from_secs(60), feed.wait_ready())
        .await
        .is_err()
    {
        server.leave(&feed, 0);
        return Err(format!("play {stream}: no media within 60 s"));
    }
    let client = Arc::new(server.host.add_client(
        feed.consumer(),
        json!({
            "format_name": "flv",
            "protocol": "rtmp",
            "remote_addr": peer.to_string(),
            "url": session.tc_url(),
        }),
    ));
    let Some((player, mut rx)) = feed.subscribe(client) else {
        session.reject("NetStream.Play.Failed", "stream ended");
        let _ = sock.write_all(&session.out).await;
        return Err(format!(
            "play {stream}: {}",
            feed.ended().unwrap_or_default()
        ));
    };
    session.accept_play();
    let out = std::mem::take(&mut session.out);
    let result = async {
        sock.write_all(&out).await.map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(bytes) => sock.write_all(&bytes).await.map_err(|e| e.to_string())?,
                    None => return Err(feed.ended().unwrap_or_else(|| "feed ended".into())),
                },
                r = sock.read(&mut buf) => {
                    let n = r.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Ok(());
                    }
                    let events = session.push(&buf[..n]).map_err(|e| e.to_string())?;
                    if !session.out.is_empty() {
                        let out = std::mem::take(&mut session.out);
                        sock.write_all(&out).await.map_err(|e| e.to_string())?;
                    }
                    if events.contains(&Event::Done) {
                        return Ok(());
                    }
                }
            }
        }
    }
    .await;
    server.leave(&feed, player);
    result.map_err(|e| format!("play {stream}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_last_path_element() {
        assert_eq!(stream_name("live", "x"), ("x".into(), String::new()));
        assert_eq!(stream_name("x", ""), ("x".into(), String::new()));
        assert_eq!(
            stream_name("live", "x?user=a&pass=b"),
            ("x".into(), "user=a&pass=b".into())
        );
        assert_eq!(
            stream_name("live?user=a", "x"),
            ("x".into(), "user=a".into())
        );
        assert_eq!(
            stream_name("live", "a/b%20c"),
            ("b c".into(), String::new())
        );
    }

    #[test]
    fn auth_only_when_configured() {
        let mut c = Config {
            listen: String::new(),
            username: String::new(),
            password: String::new(),
        };
        let off = |_: &str, _: &str| ApiCredentials::AuthOff;
        let api = |u: &str, p: &str| {
            if (u, p) == ("admin", "secret") {
                ApiCredentials::Accepted
            } else {
                ApiCredentials::Refused
            }
        };
        assert!(authorized(&c, "", off));
        // Without rtmp credentials, the API's decide when it has some.
        assert!(!authorized(&c, "", api));
        assert!(!authorized(&c, "user=admin&pass=wrong", api));
        assert!(authorized(&c, "user=admin&pass=secret", api));
        // rtmp.username/password override the API's.
        c.username = "u".into();
        c.password = "p".into();
        assert!(!authorized(&c, "", off));
        assert!(!authorized(&c, "user=u&pass=x", off));
        assert!(authorized(&c, "user=u&pass=p", off));
        assert!(!authorized(&c, "user=admin&pass=secret", api));
        assert!(authorized(&c, "user=u&pass=p", api));
    }
}
