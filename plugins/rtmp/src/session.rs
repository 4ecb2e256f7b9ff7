//! The server's side of the command flow (connect, createStream, publish,
//! play, deleteStream), sans-IO: messages in, events out, bytes to send
//! collected in [`ServerSession::out`].

use crate::amf::{self, Amf};
use crate::chunk::{self, msg, ChunkReader, Message};
use crate::Error;

/// The chunk size we send with; one value for every connection so that a
/// stream's chunked media can be shared by its players.
pub const OUT_CHUNK_SIZE: usize = 4096;
/// Chunk stream ids we write on.
pub const CSID_COMMAND: u8 = 3;
pub const CSID_AUDIO: u8 = 4;
pub const CSID_VIDEO: u8 = 6;
pub const CSID_DATA: u8 = 5;
/// The one message stream a connection gets from createStream.
pub const STREAM_ID: u32 = 1;
const WINDOW: u32 = 2_500_000;

/// What a connection wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `publish`: the app (from connect) and the stream name argument, each
    /// with any `?query` still on.
    Publish {
        app: String,
        name: String,
    },
    Play {
        app: String,
        name: String,
    },
    /// Audio, video or data (`@setDataFrame`) of a publisher.
    Media(Message),
    /// deleteStream / closeStream / FCUnpublish: the peer is done.
    Done,
}

#[derive(Debug, Default)]
pub struct ServerSession {
    pub reader: ChunkReader,
    pub out: Vec<u8>,
    app: String,
    tc_url: String,
    connected: bool,
    /// publish or play was accepted: media flows.
    active: bool,
    window: u32,
    acked: u64,
}

impl ServerSession {
    pub fn new() -> Self {
        ServerSession {
            window: WINDOW,
            ..Default::default()
        }
    }

    pub fn tc_url(&self) -> &str {
        &self.tc_url
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Event>, Error> {
        self.reader.push(data);
        let mut events = Vec::new();
        while let Some(m) = self.reader.poll()? {
            if let Some(e) = self.message(m)? {
                events.push(e);
            }
        }
        // Acknowledge as the peer's window asks; publishers that count on it
        // (Flash-era encoders) stall without.
        if self.reader.received - self.acked >= u64::from(self.window.max(1)) {
            self.acked = self.reader.received;
            let n = (self.reader.received & 0xFFFF_FFFF) as u32;
            chunk::control(&mut self.out, msg::ACK, &n.to_be_bytes());
        }
        Ok(events)
    }

    fn message(&mut self, m: Message) -> Result<Option<Event>, Error> {
        match m.type_id {
            msg::AUDIO | msg::VIDEO | msg::DATA_AMF0 if self.active => Ok(Some(Event::Media(m))),
            // AMF3 data (metadata from a client that connected with
            // objectEncoding 3): a format byte, then AMF0 values (with AMF3
            // inside), which the FLV reader takes as a script tag.
            msg::DATA_AMF3 if self.active => {
                let mut m = m;
                m.payload.drain(..m.payload.len().min(1));
                m.type_id = msg::DATA_AMF0;
                Ok(Some(Event::Media(m)))
            }
            msg::WINDOW_ACK_SIZE => {
                if let Some(b) = m.payload.get(..4) {
                    self.window = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                Ok(None)
            }
            msg::COMMAND_AMF0 => self.command(&m.payload, m.stream_id),
            // AMF3 command: a format byte, then AMF0 values.
            msg::COMMAND_AMF3 => self.command(m.payload.get(1..).unwrap_or_default(), m.stream_id),
            _ => Ok(None),
        }
    }

    fn command(&mut self, body: &[u8], stream_id: u32) -> Result<Option<Event>, Error> {
        let v = amf::decode_all(body)?;
        let name = v.first().and_then(Amf::as_str).unwrap_or_default();
        let txid = v.get(1).and_then(Amf::as_f64).unwrap_or(0.0);
        let arg = |i: usize| {
            v.get(i)
                .and_then(Amf::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match name {
            "connect" => {
                let obj = v.get(2).cloned().unwrap_or(Amf::Null);
                self.app = obj
                    .get("app")
                    .and_then(Amf::as_str)
                    .unwrap_or_default()
                    .into();
                self.tc_url = obj
                    .get("tcUrl")
                    .and_then(Amf::as_str)
                    .unwrap_or_default()
                    .into();
                // Echoed: a client that asked for AMF3 (3) expects it back.
                let encoding = if obj.get("objectEncoding").and_then(Amf::as_f64) == Some(3.0) {
                    3.0
                } else {
                    0.0
                };
                self.connected = true;
                chunk::control(&mut self.out, msg::WINDOW_ACK_SIZE, &WINDOW.to_be_bytes());
                let mut bw = WINDOW.to_be_bytes().to_vec();
                bw.push(2);
                chunk::control(&mut self.out, msg::SET_PEER_BANDWIDTH, &bw);
                chunk::control(
                    &mut self.out,
                    msg::SET_CHUNK_SIZE,
                    &(OUT_CHUNK_SIZE as u32).to_be_bytes(),
                );
                self.reply(
                    0,
                    &[
                        Amf::str("_result"),
                        Amf::Number(txid),
                        Amf::object(&[
                            ("fmsVer", Amf::str("FMS/3,0,1,123")),
                            ("capabilities", Amf::Number(31.0)),
                        ]),
                        Amf::object(&[
                            ("level", Amf::str("status")),
                            ("code", Amf::str("NetConnection.Connect.Success")),
                            ("description", Amf::str("Connection succeeded.")),
                            ("objectEncoding", Amf::Number(encoding)),
                        ]),
                    ],
                );
                Ok(None)
            }
            _ if !self.connected => Err(Error::Command("command before connect")),
            "createStream" => {
                self.reply(
                    0,
                    &[
                        Amf::str("_result"),
                        Amf::Number(txid),
                        Amf::Null,
                        Amf::Number(f64::from(STREAM_ID)),
                    ],
                );
                Ok(None)
            }
            "publish" if !self.active => Ok(Some(Event::Publish {
                app: self.app.clone(),
                name: arg(3),
            })),
            "play" if !self.active => Ok(Some(Event::Play {
                app: self.app.clone(),
                name: arg(3),
            })),
            "deleteStream" | "closeStream" | "FCUnpublish" => Ok(Some(Event::Done)),
            "releaseStream" | "FCPublish" | "getStreamLength" | "_checkbw" => {
                // Answered so clients that wait for it go on; the stream
                // itself is named by publish/play.
                if txid != 0.0 {
                    self.reply(0, &[Amf::str("_result"), Amf::Number(txid), Amf::Null]);
                }
                let _ = stream_id;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn reply(&mut self, stream_id: u32, values: &[Amf]) {
        let body = amf::encode_all(values);
        chunk::write_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            CSID_COMMAND,
            msg::COMMAND_AMF0,
            0,
            stream_id,
            &body,
        );
    }

    fn status(&mut self, level: &str, code: &str, description: &str) {
        self.reply(
            STREAM_ID,
            &[
                Amf::str("onStatus"),
                Amf::Number(0.0),
                Amf::Null,
                Amf::object(&[
                    ("level", Amf::str(level)),
                    ("code", Amf::str(code)),
                    ("description", Amf::str(description)),
                ]),
            ],
        );
    }

    pub fn accept_publish(&mut self) {
        self.active = true;
        self.status("status", "NetStream.Publish.Start", "Publishing.");
    }

    pub fn accept_play(&mut self) {
        self.active = true;
        // User control: Stream Begin on our message stream.
        let mut ev = vec![0, 0];
        ev.extend_from_slice(&STREAM_ID.to_be_bytes());
        chunk::control(&mut self.out, msg::USER_CONTROL, &ev);
        self.status("status", "NetStream.Play.Reset", "Playing and resetting.");
        self.status("status", "NetStream.Play.Start", "Started playing.");
        let data = amf::encode_all(&[
            Amf::str("|RtmpSampleAccess"),
            Amf::Bool(true),
            Amf::Bool(true),
        ]);
        chunk::write_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            CSID_DATA,
            msg::DATA_AMF0,
            0,
            STREAM_ID,
            &data,
        );
    }

    /// Refuses publish or play with the status code the reason calls for
    /// (`NetStream.Publish.BadName`, `NetStream.Play.StreamNotFound`, …).
    pub fn reject(&mut self, code: &str, description: &str) {
        self.status("error", code, description);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(values: &[Amf], stream_id: u32) -> Vec<u8> {
        let mut b = Vec::new();
        chunk::write_message(
            &mut b,
            128,
            3,
            msg::COMMAND_AMF0,
            0,
            stream_id,
            &amf::encode_all(values),
        );
        b
    }

    /// Every command reply in `out`, decoded.
    fn replies(out: &[u8]) -> Vec<Vec<Amf>> {
        let mut r = ChunkReader::new();
        r.push(out);
        let mut v = Vec::new();
        while let Some(m) = r.poll().unwrap() {
            if m.type_id == msg::COMMAND_AMF0 {
                v.push(amf::decode_all(&m.payload).unwrap());
            }
        }
        v
    }

    #[test]
    fn publish_flow_as_ffmpeg_sends_it() {
        let mut s = ServerSession::new();
        let mut b = command(
            &[
                Amf::str("connect"),
                Amf::Number(1.0),
                Amf::object(&[
                    ("app", Amf::str("live")),
                    ("tcUrl", Amf::str("rtmp://h/live")),
                ]),
            ],
            0,
        );
        b.extend(command(
            &[
                Amf::str("releaseStream"),
                Amf::Number(2.0),
                Amf::Null,
                Amf::str("x"),
            ],
            0,
        ));
        b.extend(command(
            &[Amf::str("createStream"), Amf::Number(4.0), Amf::Null],
            0,
        ));
        b.extend(command(
            &[
                Amf::str("publish"),
                Amf::Number(5.0),
                Amf::Null,
                Amf::str("x?k=1"),
                Amf::str("live"),
            ],
            1,
        ));
        let ev = s.push(&b).unwrap();
        assert_eq!(
            ev,
            vec![Event::Publish {
                app: "live".into(),
                name: "x?k=1".into()
            }]
        );
        s.accept_publish();
        let r = replies(&s.out);
        assert_eq!(r[0][0], Amf::str("_result"));
        assert_eq!(
            r[0][3].get("code"),
            Some(&Amf::str("NetConnection.Connect.Success"))
        );
        assert_eq!(r[2][3], Amf::Number(1.0), "createStream's stream id");
        assert_eq!(
            r[3][3].get("code"),
            Some(&Amf::str("NetStream.Publish.Start"))
        );
        // Media now flows as events.
        let mut v = Vec::new();
        chunk::write_message(&mut v, 128, 6, msg::VIDEO, 0, 1, &[0x17, 0]);
        assert!(matches!(s.push(&v).unwrap()[..], [Event::Media(_)]));
    }

    /// A client with objectEncoding 3: commands as type 17 (a format byte,
    /// then AMF0 with the command object in AMF3), metadata as type 15.
    #[test]
    fn amf3_connect_and_data() {
        let mut s = ServerSession::new();
        let mut body = vec![0u8];
        body.extend(amf::encode_all(&[Amf::str("connect"), Amf::Number(1.0)]));
        // AMF3 dynamic anonymous object {app: "live", objectEncoding: 3}.
        body.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01, 0x07]);
        body.extend_from_slice(b"app");
        body.extend_from_slice(&[0x06, 0x09]);
        body.extend_from_slice(b"live");
        body.push(0x1D);
        body.extend_from_slice(b"objectEncoding");
        body.extend_from_slice(&[0x04, 0x03, 0x01]);
        let mut b = Vec::new();
        chunk::write_message(&mut b, 128, 3, msg::COMMAND_AMF3, 0, 0, &body);
        let mut create = vec![0u8];
        create.extend(amf::encode_all(&[
            Amf::str("createStream"),
            Amf::Number(2.0),
            Amf::Null,
        ]));
        chunk::write_message(&mut b, 128, 3, msg::COMMAND_AMF3, 0, 0, &create);
        let mut publish = vec![0u8];
        publish.extend(amf::encode_all(&[
            Amf::str("publish"),
            Amf::Number(3.0),
            Amf::Null,
            Amf::str("x"),
        ]));
        chunk::write_message(&mut b, 128, 8, msg::COMMAND_AMF3, 0, 1, &publish);
        let ev = s.push(&b).unwrap();
        assert_eq!(
            ev,
            vec![Event::Publish {
                app: "live".into(),
                name: "x".into()
            }]
        );
        let r = replies(&s.out);
        assert_eq!(r[0][3].get("objectEncoding"), Some(&Amf::Number(3.0)));
        s.accept_publish();
        let mut data = vec![0u8];
        data.extend(amf::encode_all(&[Amf::str("onMetaData")]));
        let mut v = Vec::new();
        chunk::write_message(&mut v, 128, 5, msg::DATA_AMF3, 0, 1, &data);
        match &s.push(&v).unwrap()[..] {
            [Event::Media(m)] => {
                assert_eq!(m.type_id, msg::DATA_AMF0);
                assert_eq!(
                    amf::decode_all(&m.payload).unwrap()[0],
                    Amf::str("onMetaData")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_before_connect_are_refused() {
        let mut s = ServerSession::new();
        let b = command(
            &[Amf::str("play"), Amf::Number(1.0), Amf::Null, Amf::str("x")],
            0,
        );
        assert!(s.push(&b).is_err());
        let mut s = ServerSession::new();
        let mut b = Vec::new();
        chunk::write_message(&mut b, 128, 3, msg::COMMAND_AMF0, 0, 0, &[0x03, 0, 1]);
        assert!(s.push(&b).is_err(), "bogus AMF");
    }
}
