//! One client that receives JPEGs: an HTTP multipart body or an `/api/ws`
//! connection. Sending never blocks: a full queue (slow reader) drops the
//! picture and counts it, so memory stays at the host's fixed queue.

use std::sync::atomic::{AtomicBool, Ordering};

use camrouter_plugin_api::abi::SendStatus;
use camrouter_plugin_api::sdk::{BodySink, Client, Responder, WsSender};

use crate::decode::head_len;
use crate::params::Output;

/// go2rtc's multipart boundary; players and ffmpeg's mpjpeg demuxer read
/// the boundary from the Content-Type anyway.
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=frame";

/// One multipart part: boundary, headers, the JPEG, CRLF. The length header
/// lets readers take the image without scanning for the next boundary.
pub fn part(jpeg: &[u8]) -> Vec<u8> {
    let head = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut out = Vec::with_capacity(head.len() + jpeg.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(jpeg);
    out.extend_from_slice(b"\r\n");
    out
}

/// A client whose answer waits for negotiation: the HTTP responder, or the
/// WebSocket to tell.
pub enum Pending {
    Http(Responder),
    Ws(WsSender),
}

impl Pending {
    /// Negotiation succeeded: start the multipart body (the raw one of
    /// `stream.y4m`/`stream.ascii`), or tell the WebSocket client that binary
    /// JPEGs follow (go2rtc's `{"type":"mjpeg"}`).
    pub fn start(self, output: Output) -> Viewer {
        match self {
            Pending::Http(r) => {
                let content_type = match output {
                    Output::Jpeg => CONTENT_TYPE,
                    Output::Y4m => "video/x-yuv4mpeg",
                    Output::Ascii(_) => "text/plain; charset=utf-8",
                };
                Viewer {
                    out: Out::Http(r.stream(
                        200,
                        &[
                            ("Content-Type", content_type),
                            ("Cache-Control", "no-cache"),
                            ("Pragma", "no-cache"),
                        ],
                    )),
                    client: None,
                    output,
                    started: AtomicBool::new(false),
                }
            }
            Pending::Ws(w) => {
                w.send_json(&serde_json::json!({"type": "mjpeg"}));
                Viewer {
                    out: Out::Ws(w),
                    client: None,
                    output: Output::Jpeg,
                    started: AtomicBool::new(false),
                }
            }
        }
    }

    pub fn fail(self, error: &str) {
        match self {
            Pending::Http(r) => r.text(500, error),
            Pending::Ws(w) => {
                w.send_json(&serde_json::json!({"type": "error", "value": error}));
            }
        }
    }
}

enum Out {
    Http(BodySink),
    Ws(WsSender),
}

pub struct Viewer {
    out: Out,
    /// The host's record of this client, once registered.
    pub client: Option<Client>,
    output: Output,
    /// The first picture went out (with the stream's header).
    started: AtomicBool,
}

impl Viewer {
    /// Sends one picture. Returns `false` once the client is gone.
    pub fn send(&self, jpeg: &[u8]) -> bool {
        let (status, len) = match &self.out {
            Out::Http(sink) if self.output != Output::Jpeg => {
                // Each picture repeats the stream's header; a client takes
                // it once. A dropped first picture leaves it unsent.
                let skip = if self.started.load(Ordering::Relaxed) {
                    head_len(&self.output, jpeg)
                } else {
                    0
                };
                let chunk = jpeg.get(skip..).unwrap_or_default().to_vec();
                let len = chunk.len();
                let status = sink.try_send(chunk);
                if status == SendStatus::Ok {
                    self.started.store(true, Ordering::Relaxed);
                }
                (status, len)
            }
            Out::Http(sink) => {
                let chunk = part(jpeg);
                let len = chunk.len();
                (sink.try_send(chunk), len)
            }
            Out::Ws(w) => (w.send_binary(jpeg.to_vec()), jpeg.len()),
        };
        match status {
            SendStatus::Ok => {
                if let Some(c) = &self.client {
                    c.sent(len, 1);
                }
                true
            }
            SendStatus::Full => {
                if let Some(c) = &self.client {
                    c.dropped(1);
                }
                true
            }
            SendStatus::Closed => false,
        }
    }

    /// The stream ended: end the HTTP body (a WebSocket stays open for its
    /// other uses) and say why on a WebSocket.
    pub fn end(self, reason: &str) {
        match self.out {
            Out::Http(sink) => sink.finish(),
            Out::Ws(w) => {
                w.send_json(&serde_json::json!({"type": "error", "value": reason}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_framing() {
        assert_eq!(
            part(b"\xff\xd8\xff\xd9"),
            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\r\n"
                .to_vec()
        );
    }
}
