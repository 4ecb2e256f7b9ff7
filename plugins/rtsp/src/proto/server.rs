//! Server-side helpers: CSeq validation, response building with `CSeq` / `Session` /
//! `Server` headers, `SETUP` transport negotiation and session ids. The stream logic stays
//! with the caller.
//!
//! ```
//! use camrouter_rtsp::proto::server::{Responder, SetupTransport};
//! use camrouter_rtsp::proto::Request;
//! let req = Request::parse(b"SETUP rtsp://h/s/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n").unwrap();
//! let responder = Responder::new("camrouter");
//! let (setup, reply) = responder.parse_setup(&req, 0).unwrap();
//! assert_eq!(setup, SetupTransport::Tcp { rtp_channel: 0, rtcp_channel: 1 });
//! let res = responder.respond(&req, 200).with_header("Transport", reply.to_string());
//! assert_eq!(res.cseq(), Some(3));
//! ```

use super::message::{Method, Request, Response};
use super::transport::{parse_transports, write_public, LowerTransport, SessionHeader, Transport};

/// Why a request cannot be served; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error("missing or invalid CSeq")]
    BadCSeq,
    #[error("unsupported RTSP version {0:?}")]
    BadVersion(String),
    #[error("missing Transport header")]
    MissingTransport,
    #[error("no supported transport in {0:?}")]
    UnsupportedTransport(String),
    #[error("session not found")]
    SessionNotFound,
    #[error("session id needs at least 8 random bytes, got {0}")]
    NotEnoughRandomness(usize),
}

impl ServerError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ServerError::BadCSeq | ServerError::MissingTransport => 400,
            ServerError::BadVersion(_) => 505,
            ServerError::UnsupportedTransport(_) => 461,
            ServerError::SessionNotFound => 454,
            ServerError::NotEnoughRandomness(_) => 500,
        }
    }
}

/// The transport a client asked for in SETUP, as the server will use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupTransport {
    /// Interleaved on the RTSP connection.
    Tcp { rtp_channel: u8, rtcp_channel: u8 },
    /// UDP to the client's ports (on the address of the RTSP peer).
    Udp { rtp_port: u16, rtcp_port: u16 },
}

/// A session id of hex digits from caller-supplied randomness (at least 8 bytes; 16 used).
pub fn generate_session_id(random: &[u8]) -> Result<String, ServerError> {
    if random.len() < 8 {
        return Err(ServerError::NotEnoughRandomness(random.len()));
    }
    Ok(random.iter().take(16).map(|b| format!("{b:02X}")).collect())
}

/// Builds responses for one connection.
#[derive(Debug, Clone)]
pub struct Responder {
    /// `Server` header value.
    pub server: String,
    /// The session, once created: (id, timeout seconds).
    pub session: Option<SessionHeader>,
    /// Methods for `Public` in OPTIONS replies.
    pub public: Vec<Method>,
}

impl Responder {
    pub fn new(server: impl Into<String>) -> Self {
        Responder {
            server: server.into(),
            session: None,
            public: Method::KNOWN.to_vec(),
        }
    }

    /// Checks what every request needs: a numeric `CSeq` and an `RTSP/1.x` version.
    /// Returns the CSeq.
    pub fn validate(&self, req: &Request) -> Result<u32, ServerError> {
        if !req.version.starts_with("RTSP/1.") {
            return Err(ServerError::BadVersion(
                req.version.chars().take(16).collect(),
            ));
        }
        req.cseq().ok_or(ServerError::BadCSeq)
    }

    /// Checks the request's `Session` against ours (454 when it names another one).
    /// A request without `Session` passes.
    pub fn check_session(&self, req: &Request) -> Result<(), ServerError> {
        match (req.headers.get("Session"), &self.session) {
            (None, _) => Ok(()),
            (Some(v), Some(s)) => match SessionHeader::parse(v) {
                Ok(h) if h.id == s.id => Ok(()),
                _ => Err(ServerError::SessionNotFound),
            },
            (Some(_), None) => Err(ServerError::SessionNotFound),
        }
    }

    /// A response to `req` with `status`, carrying `CSeq` (copied), `Server`, and
    /// `Session` once one exists (with `;timeout=` on SETUP replies).
    pub fn respond(&self, req: &Request, status: u16) -> Response {
        let mut res = Response::new(status);
        if let Some(c) = req.headers.get("CSeq") {
            res.headers.append("CSeq", c.trim());
        }
        if !self.server.is_empty() {
            res.headers.append("Server", self.server.clone());
        }
        if let Some(s) = &self.session {
            if req.method == Method::Setup {
                res.headers.append("Session", s.to_string());
            } else {
                res.headers.append("Session", s.id.clone());
            }
        }
        res
    }

    /// The answer to a request that failed validation.
    pub fn error(&self, req: &Request, err: &ServerError) -> Response {
        self.respond(req, err.status())
    }

    /// `200 OK` with `Public`.
    pub fn options(&self, req: &Request) -> Response {
        self.respond(req, 200)
            .with_header("Public", write_public(&self.public))
    }

    /// `401` with one `WWW-Authenticate` per challenge (see `auth::ServerAuth::challenges`).
    pub fn unauthorized(&self, req: &Request, challenges: &[String]) -> Response {
        let mut res = self.respond(req, 401);
        for c in challenges {
            res.headers.append("WWW-Authenticate", c.clone());
        }
        res
    }

    /// Creates the session (id from [`generate_session_id`]) if there is none yet.
    pub fn ensure_session(&mut self, id: String, timeout_secs: u32) -> &SessionHeader {
        self.session.get_or_insert(SessionHeader {
            id,
            timeout: Some(timeout_secs),
        })
    }

    /// Picks the first acceptable transport of a SETUP and the `Transport` to reply with.
    /// TCP without `interleaved` gets `next_channel`/`next_channel+1`. UDP needs
    /// `client_port`. Multicast is refused.
    pub fn parse_setup(
        &self,
        req: &Request,
        next_channel: u8,
    ) -> Result<(SetupTransport, Transport), ServerError> {
        let value = req
            .headers
            .get("Transport")
            .ok_or(ServerError::MissingTransport)?;
        let unsupported = || ServerError::UnsupportedTransport(value.chars().take(128).collect());
        let alts = parse_transports(value).map_err(|_| unsupported())?;
        for t in alts {
            if !t.profile.starts_with("RTP/")
                || t.delivery == Some(super::transport::Delivery::Multicast)
            {
                continue;
            }
            let mut reply = t.clone();
            reply.delivery = Some(super::transport::Delivery::Unicast);
            reply.other.clear();
            if t.lower == LowerTransport::Tcp
                || (t.interleaved.is_some() && t.client_port.is_none())
            {
                let (rtp, rtcp) = match t.channels() {
                    Some((a, Some(b))) => (a, b),
                    Some((_, None)) => continue, // 255 has no pair
                    None => match next_channel.checked_add(1) {
                        Some(b) => (next_channel, b),
                        None => continue,
                    },
                };
                reply.lower = LowerTransport::Tcp;
                reply.interleaved = Some((rtp, Some(rtcp)));
                reply.client_port = None;
                return Ok((
                    SetupTransport::Tcp {
                        rtp_channel: rtp,
                        rtcp_channel: rtcp,
                    },
                    reply,
                ));
            }
            if let Some((rtp, rtcp)) = t.client_port {
                let rtcp = rtcp.or_else(|| rtp.checked_add(1)).unwrap_or(rtp);
                reply.client_port = Some((rtp, Some(rtcp)));
                return Ok((
                    SetupTransport::Udp {
                        rtp_port: rtp,
                        rtcp_port: rtcp,
                    },
                    reply,
                ));
            }
        }
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        Request::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn validate_and_respond() {
        let mut r = Responder::new("camrouter/0.1");
        let ok = req("OPTIONS * RTSP/1.0\r\nCSeq: 4 \r\n\r\n");
        assert_eq!(r.validate(&ok), Ok(4));
        let res = r.options(&ok);
        assert_eq!(res.cseq(), Some(4));
        assert_eq!(res.headers.get("Server"), Some("camrouter/0.1"));
        assert!(res.headers.get("Public").unwrap().contains("GET_PARAMETER"));
        let bad = req("OPTIONS * RTSP/1.0\r\nCSeq: x\r\n\r\n");
        assert_eq!(r.validate(&bad), Err(ServerError::BadCSeq));
        assert_eq!(r.error(&bad, &ServerError::BadCSeq).status, 400);
        let v2 = req("OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(r.validate(&v2).unwrap_err().status(), 505);

        let id = generate_session_id(&[0xab; 8]).unwrap();
        assert_eq!(id, "ABABABABABABABAB");
        assert!(generate_session_id(&[1; 4]).is_err());
        r.ensure_session(id.clone(), 60);
        let setup = req("SETUP rtsp://h/s RTSP/1.0\r\nCSeq: 5\r\n\r\n");
        assert_eq!(
            r.respond(&setup, 200).headers.get("Session"),
            Some("ABABABABABABABAB;timeout=60")
        );
        let play = req(&format!(
            "PLAY rtsp://h/s RTSP/1.0\r\nCSeq: 6\r\nSession: {id}\r\n\r\n"
        ));
        assert_eq!(r.check_session(&play), Ok(()));
        assert_eq!(
            r.respond(&play, 200).headers.get("Session"),
            Some(id.as_str())
        );
        let wrong = req("PLAY rtsp://h/s RTSP/1.0\r\nCSeq: 6\r\nSession: nope\r\n\r\n");
        assert_eq!(r.check_session(&wrong).unwrap_err().status(), 454);
        let u = r.unauthorized(
            &play,
            &[
                "Basic realm=\"x\"".into(),
                "Digest realm=\"x\", nonce=\"y\"".into(),
            ],
        );
        assert_eq!(u.headers.get_all("WWW-Authenticate").count(), 2);
    }

    #[test]
    fn setup_transports() {
        let r = Responder::new("");
        let t = |v: &str| {
            r.parse_setup(
                &req(&format!(
                    "SETUP rtsp://h/s RTSP/1.0\r\nCSeq: 1\r\nTransport: {v}\r\n\r\n"
                )),
                4,
            )
        };
        let (s, reply) = t("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record").unwrap();
        assert_eq!(
            s,
            SetupTransport::Tcp {
                rtp_channel: 0,
                rtcp_channel: 1
            }
        );
        assert_eq!(
            reply.to_string(),
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=RECORD"
        );
        let (s, _) = t("RTP/AVP/TCP;unicast").unwrap();
        assert_eq!(
            s,
            SetupTransport::Tcp {
                rtp_channel: 4,
                rtcp_channel: 5
            }
        );
        let (s, reply) = t("RTP/AVP/UDP;multicast, RTP/AVP;unicast;client_port=5000-5001").unwrap();
        assert_eq!(
            s,
            SetupTransport::Udp {
                rtp_port: 5000,
                rtcp_port: 5001
            }
        );
        assert_eq!(reply.to_string(), "RTP/AVP;unicast;client_port=5000-5001");
        assert_eq!(t("RTP/AVP;unicast").unwrap_err().status(), 461);
        assert_eq!(t("garbage").unwrap_err().status(), 461);
        assert_eq!(t("RTP/AVP/TCP;interleaved=255").unwrap_err().status(), 461);
        assert_eq!(
            r.parse_setup(&req("SETUP rtsp://h/s RTSP/1.0\r\nCSeq: 1\r\n\r\n"), 0)
                .unwrap_err(),
            ServerError::MissingTransport
        );
    }
}
