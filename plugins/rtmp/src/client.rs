//! The client's side of the command flow, sans-IO: connect, createStream,
//! then play (a source) or publish. Bytes in through [`ClientSession::push`],
//! bytes to send in [`ClientSession::out`].

use crate::amf::{self, Amf};
use crate::chunk::{self, msg, ChunkReader, Message};
use crate::session::{CSID_COMMAND, OUT_CHUNK_SIZE};
use crate::Error;

const TX_CONNECT: f64 = 1.0;
const TX_CREATE_STREAM: f64 = 2.0;
/// Chunk stream of play/publish (ffmpeg's choice; servers do not care).
const CSID_STREAM: u8 = 8;

/// An `rtmp://` URL split as servers expect: the app is the first path
/// element, the stream name the rest (with the query, which carries keys
/// and tokens for many servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub tls: bool,
    /// `rtmpx`: TLS without verifying the certificate, as go2rtc's `…x://`.
    pub insecure: bool,
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream: String,
    /// `rtmp://host:port/app`, what `connect` announces.
    pub tc_url: String,
}

impl RtmpUrl {
    pub fn parse(url: &str) -> Result<RtmpUrl, String> {
        let (scheme, rest) = url.split_once("://").ok_or("rtmp: no scheme")?;
        let (tls, insecure, default_port) = match scheme {
            "rtmp" => (false, false, 1935),
            "rtmps" => (true, false, 443),
            "rtmpx" => (true, true, 443),
            _ => return Err(format!("rtmp: unknown scheme {scheme}")),
        };
        let rest = rest.split('#').next().unwrap_or(rest);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
                Ok(p) => (h.to_string(), p),
                Err(_) => (authority.to_string(), default_port),
            },
            _ => (authority.to_string(), default_port),
        };
        if host.is_empty() {
            return Err("rtmp: no host".into());
        }
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        let (app, app_query) = app
            .split_once('?')
            .map_or((app, None), |(a, q)| (a, Some(q)));
        let stream = match (stream.is_empty(), app_query) {
            // `rtmp://host/app?key` : the query goes with the stream.
            (true, Some(q)) => format!("?{q}"),
            _ => stream.to_string(),
        };
        let host_port = if port == default_port {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        Ok(RtmpUrl {
            tls,
            insecure,
            tc_url: format!("{scheme}://{host_port}/{app}"),
            host,
            port,
            app: app.to_string(),
            stream,
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// createStream answered: play or publish may be sent.
    StreamCreated,
    /// `NetStream.Play.Start` / `NetStream.Publish.Start`.
    Started,
    /// An error status or `_error`: the server's code and description.
    Refused(String),
    /// Audio, video or data from the server (play).
    Media(Message),
}

#[derive(Debug, Default)]
pub struct ClientSession {
    pub reader: ChunkReader,
    pub out: Vec<u8>,
    stream_id: u32,
    window: u32,
    acked: u64,
}

impl ClientSession {
    /// Starts the command flow: our chunk size, then `connect`.
    pub fn new(url: &RtmpUrl) -> ClientSession {
        let mut s = ClientSession {
            window: 2_500_000,
            ..Default::default()
        };
        chunk::control(
            &mut s.out,
            msg::SET_CHUNK_SIZE,
            &(OUT_CHUNK_SIZE as u32).to_be_bytes(),
        );
        s.command(
            0,
            &[
                Amf::str("connect"),
                Amf::Number(TX_CONNECT),
                Amf::object(&[
                    ("app", Amf::str(&url.app)),
                    ("flashVer", Amf::str("FMLE/3.0 (compatible; camrouter)")),
                    ("tcUrl", Amf::str(&url.tc_url)),
                    ("fpad", Amf::Bool(false)),
                    ("capabilities", Amf::Number(15.0)),
                    ("audioCodecs", Amf::Number(4071.0)),
                    ("videoCodecs", Amf::Number(252.0)),
                    ("videoFunction", Amf::Number(1.0)),
                    // Enhanced RTMP: servers that know it may send H.265, AV1.
                    (
                        "fourCcList",
                        Amf::StrictArray(vec![
                            Amf::str("av01"),
                            Amf::str("hvc1"),
                            Amf::str("avc1"),
                        ]),
                    ),
                ]),
            ],
        );
        s
    }

    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    fn command(&mut self, stream_id: u32, values: &[Amf]) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        chunk::write_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            csid,
            msg::COMMAND_AMF0,
            0,
            stream_id,
            &amf::encode_all(values),
        );
    }

    pub fn play(&mut self, name: &str) {
        let id = self.stream_id;
        self.command(
            id,
            &[
                Amf::str("play"),
                Amf::Number(0.0),
                Amf::Null,
                Amf::str(name),
                Amf::Number(-1000.0),
            ],
        );
        // Set Buffer Length (3 s), which some servers wait for.
        let mut ev = vec![0, 3];
        ev.extend_from_slice(&id.to_be_bytes());
        ev.extend_from_slice(&3000u32.to_be_bytes());
        chunk::control(&mut self.out, msg::USER_CONTROL, &ev);
    }

    pub fn publish(&mut self, name: &str) {
        let id = self.stream_id;
        self.command(
            0,
            &[
                Amf::str("releaseStream"),
                Amf::Number(3.0),
                Amf::Null,
                Amf::str(name),
            ],
        );
        self.command(
            0,
            &[
                Amf::str("FCPublish"),
                Amf::Number(4.0),
                Amf::Null,
                Amf::str(name),
            ],
        );
        self.command(
            id,
            &[
                Amf::str("publish"),
                Amf::Number(5.0),
                Amf::Null,
                Amf::str(name),
                Amf::str("live"),
            ],
        );
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<ClientEvent>, Error> {
        self.reader.push(data);
        let mut events = Vec::new();
        while let Some(m) = self.reader.poll()? {
            self.message(m, &mut events)?;
        }
        if self.reader.received - self.acked >= u64::from(self.window.max(1)) {
            self.acked = self.reader.received;
            let n = (self.reader.received & 0xFFFF_FFFF) as u32;
            chunk::control(&mut self.out, msg::ACK, &n.to_be_bytes());
        }
        Ok(events)
    }

    fn message(&mut self, m: Message, events: &mut Vec<ClientEvent>) -> Result<(), Error> {
        match m.type_id {
            msg::AUDIO | msg::VIDEO | msg::DATA_AMF0 => events.push(ClientEvent::Media(m)),
            msg::WINDOW_ACK_SIZE => {
                if let Some(b) = m.payload.get(..4) {
                    self.window = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            // Ping request: answer with the same timestamp, or servers
            // (nginx-rtmp's ping_timeout) drop us.
            msg::USER_CONTROL if m.payload.get(..2) == Some(&[0, 6]) => {
                let mut ev = vec![0, 7];
                ev.extend_from_slice(m.payload.get(2..6).unwrap_or(&[0; 4]));
                chunk::control(&mut self.out, msg::USER_CONTROL, &ev);
            }
            msg::COMMAND_AMF0 | msg::COMMAND_AMF3 => {
                let body = if m.type_id == msg::COMMAND_AMF3 {
                    m.payload.get(1..).unwrap_or_default()
                } else {
                    &m.payload
                };
                let v = amf::decode_all(body)?;
                let name = v.first().and_then(Amf::as_str).unwrap_or_default();
                let txid = v.get(1).and_then(Amf::as_f64).unwrap_or(0.0);
                match name {
                    "_result" if txid == TX_CONNECT => {
                        self.command(
                            0,
                            &[
                                Amf::str("createStream"),
                                Amf::Number(TX_CREATE_STREAM),
                                Amf::Null,
                            ],
                        );
                    }
                    "_result" if txid == TX_CREATE_STREAM => {
                        let id = v.get(3).and_then(Amf::as_f64).unwrap_or(1.0);
                        self.stream_id = id.clamp(0.0, f64::from(u32::MAX)) as u32;
                        events.push(ClientEvent::StreamCreated);
                    }
                    "_error" => events.push(ClientEvent::Refused(describe(v.get(3)))),
                    "onStatus" => {
                        let info = v.get(3);
                        let code = info.and_then(|i| i.get("code")).and_then(Amf::as_str);
                        let level = info.and_then(|i| i.get("level")).and_then(Amf::as_str);
                        match code {
                            Some("NetStream.Play.Start" | "NetStream.Publish.Start") => {
                                events.push(ClientEvent::Started)
                            }
                            Some(
                                "NetStream.Play.StreamNotFound"
                                | "NetStream.Play.Failed"
                                | "NetStream.Publish.BadName"
                                | "NetStream.Publish.Failed"
                                | "NetStream.Play.UnpublishNotify"
                                | "NetStream.Play.Stop",
                            ) => events.push(ClientEvent::Refused(describe(info))),
                            _ if level == Some("error") => {
                                events.push(ClientEvent::Refused(describe(info)))
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn describe(info: Option<&Amf>) -> String {
    let s = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(Amf::as_str)
            .unwrap_or("")
    };
    match (s("code"), s("description")) {
        ("", "") => "refused".into(),
        (c, "") => c.into(),
        (c, d) => format!("{c}: {d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Event, ServerSession};

    #[test]
    fn urls_split_into_app_and_stream() {
        let u = RtmpUrl::parse("rtmp://user:pw@h:1936/live/cam?key=1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("h", 1936));
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", "cam?key=1"));
        assert_eq!(u.tc_url, "rtmp://h:1936/live");
        let u = RtmpUrl::parse("rtmps://a.rtmp.youtube.com/live2/abcd-efgh").unwrap();
        assert!(u.tls && u.port == 443 && u.tc_url == "rtmps://a.rtmp.youtube.com/live2");
        assert_eq!(u.stream, "abcd-efgh");
        let u = RtmpUrl::parse("rtmp://h/app/a/b").unwrap();
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("app", "a/b"));
        assert!(RtmpUrl::parse("http://h/x").is_err());
    }

    #[test]
    fn client_and_server_sessions_talk() {
        let url = RtmpUrl::parse("rtmp://h/live/x").unwrap();
        let mut c = ClientSession::new(&url);
        let mut s = ServerSession::new();
        let mut server_events = Vec::new();
        let mut client_events = Vec::new();
        let mut accepted = false;
        for _ in 0..4 {
            let out = std::mem::take(&mut c.out);
            server_events.extend(s.push(&out).unwrap());
            let out = std::mem::take(&mut s.out);
            for e in c.push(&out).unwrap() {
                if e == ClientEvent::StreamCreated {
                    c.play("x");
                }
                client_events.push(e);
            }
            if !accepted
                && server_events
                    .iter()
                    .any(|e| matches!(e, Event::Play { .. }))
            {
                accepted = true;
                s.accept_play();
            }
        }
        assert!(server_events.contains(&Event::Play {
            app: "live".into(),
            name: "x".into()
        }));
        assert!(
            client_events.contains(&ClientEvent::Started),
            "{client_events:?}"
        );
        assert_eq!(c.stream_id(), 1);
    }
}
