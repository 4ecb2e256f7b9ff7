//! A sans-IO RTSP client session: the *play* and *record* flows.
//!
//! The caller owns the socket and the clock. It feeds received bytes to
//! [`Client::feed`], writes what [`Client::poll_transmit`] returns, handles
//! [`Client::poll_event`] events and calls [`Client::handle_timeout`] regularly (every
//! second is fine) so keepalives go out.
//!
//! Play: `OPTIONS` → `DESCRIBE` → [`ClientEvent::Described`] (the caller parses the SDP and
//! calls [`Client::setup`] with the medias it wants) → one `SETUP` per media → `PLAY` →
//! [`ClientEvent::Playing`]. Record: `OPTIONS` → `ANNOUNCE` (the caller's SDP) → `SETUP`
//! `mode=record` per media → `RECORD` → [`ClientEvent::Recording`].
//!
//! Any request answered `401` is sent again once with `Authorization` (twice when the
//! server says `stale=true`), using the URL's credentials. A failed `OPTIONS` is tolerated
//! (some servers do not implement it). `3xx` with `Location` gives
//! [`ClientEvent::Redirect`]. Keepalives are `GET_PARAMETER` when the server lists it in
//! `Public`, else `OPTIONS`; a rejected `GET_PARAMETER` switches to `OPTIONS`.
//!
//! A failed backchannel `SETUP` (Dahua / Amcrest refuse a second backchannel session) is
//! reported as an error; the caller reconnects with `backchannel: false`, as go2rtc does.

use super::auth::{select_challenge, AuthError, Challenge, ClientAuth, Credentials};
use super::codec::{DecodeError, Decoder, Item};
use super::message::{Method, Request, Response};
use super::transport::{
    parse_public, parse_rtp_info, parse_transports, HeaderError, Range, RtpInfo, SessionHeader,
    Transport, DEFAULT_SESSION_TIMEOUT,
};
use super::url::{base_url, join_control, RtspUrl, UrlError};
use std::collections::VecDeque;

/// ONVIF backchannel feature tag (ONVIF Streaming Spec 5.3).
pub const BACKCHANNEL_REQUIRE: &str = "www.onvif.org/ver20/backchannel";

/// Most keepalives left unanswered before the oldest are forgotten.
const MAX_PENDING: usize = 8;

/// One media to `SETUP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSetup {
    /// The media's `a=control` (relative or absolute); joined against the base URL.
    pub control: String,
    /// UDP: the RTP and RTCP ports the caller bound. `None`: TCP interleaved, channels
    /// `2i`-`2i+1` for the i-th media.
    pub udp_client_ports: Option<(u16, u16)>,
}

impl MediaSetup {
    pub fn tcp(control: impl Into<String>) -> Self {
        MediaSetup {
            control: control.into(),
            udp_client_ports: None,
        }
    }

    pub fn udp(control: impl Into<String>, rtp: u16, rtcp: u16) -> Self {
        MediaSetup {
            control: control.into(),
            udp_client_ports: Some((rtp, rtcp)),
        }
    }
}

/// Which flow to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Play,
    /// Publish: `sdp` is sent with `ANNOUNCE`; `medias` are set up with `mode=record`.
    Record {
        sdp: Vec<u8>,
        medias: Vec<MediaSetup>,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The RTSP URL, credentials included (`rtsp://user:pass@host/path`).
    pub url: String,
    pub mode: Mode,
    /// `User-Agent` (some cameras answer 401 to a DESCRIBE without one). Default `camrouter`.
    pub user_agent: Option<String>,
    /// Ask for the ONVIF backchannel (`Require` on DESCRIBE and SETUP).
    pub backchannel: bool,
    /// Caller-supplied random client nonce for Digest `qop=auth`.
    pub cnonce: String,
}

impl ClientConfig {
    pub fn play(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            mode: Mode::Play,
            user_agent: Some("camrouter".into()),
            backchannel: false,
            cnonce: String::new(),
        }
    }

    pub fn record(url: impl Into<String>, sdp: Vec<u8>, medias: Vec<MediaSetup>) -> Self {
        ClientConfig {
            mode: Mode::Record { sdp, medias },
            ..Self::play(url)
        }
    }
}

/// The outcome of one `SETUP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInfo {
    /// Index in the list given to [`Client::setup`] (or the record medias).
    pub index: usize,
    /// The URL the `SETUP` went to.
    pub url: String,
    /// The first transport of the reply (or what we asked for, if the reply had none).
    pub transport: Transport,
    /// TCP: RTP / RTCP channels as the *server* assigned them.
    pub rtp_channel: Option<u8>,
    pub rtcp_channel: Option<u8>,
    /// UDP: the server's RTP / RTCP ports, when given.
    pub server_port: Option<(u16, Option<u16>)>,
    pub ssrc: Option<u32>,
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// DESCRIBE succeeded. Parse `sdp`, join each media's control with `base_url`
    /// (`url::join_control`) and call [`Client::setup`].
    Described {
        sdp: Vec<u8>,
        base_url: String,
        content_type: Option<String>,
    },
    /// ANNOUNCE succeeded (record flow); SETUPs follow.
    Announced,
    /// One SETUP succeeded.
    SetupDone(SetupInfo),
    /// PLAY succeeded: data flows.
    Playing {
        rtp_info: Vec<RtpInfo>,
        range: Option<Range>,
    },
    /// RECORD succeeded: send data.
    Recording,
    /// A `$` frame (may arrive before the PLAY reply). See [`Client::media_for_channel`].
    Interleaved { channel: u8, data: Vec<u8> },
    /// The server redirected: reconnect to `location` (credentials are not included).
    Redirect { location: String },
    /// A request from the server; already answered (200 for OPTIONS / GET_PARAMETER /
    /// SET_PARAMETER, 501 otherwise).
    ServerRequest(Request),
    /// A response that matches no request (logged and dropped).
    UnmatchedResponse { cseq: Option<u32>, status: u16 },
    /// A keepalive was refused; the session goes on.
    KeepaliveFailed {
        method: Method,
        cseq: u32,
        status: u16,
    },
    /// Bytes the decoder skipped; the stream goes on.
    DecodeError(DecodeError),
    /// TEARDOWN answered (or not needed).
    Closed,
}

/// A fatal client error. It carries the request's method and CSeq and the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL: {0}")]
    Url(#[from] UrlError),
    #[error("{method} (CSeq {cseq}) failed: {status} {reason}")]
    Status {
        method: Method,
        cseq: u32,
        status: u16,
        reason: String,
    },
    #[error("{method} (CSeq {cseq}): 401 but the URL has no credentials")]
    NoCredentials { method: Method, cseq: u32 },
    #[error("{method} (CSeq {cseq}): credentials rejected")]
    AuthRejected { method: Method, cseq: u32 },
    #[error("{method} (CSeq {cseq}): {source}")]
    Auth {
        method: Method,
        cseq: u32,
        source: AuthError,
    },
    #[error("SETUP (CSeq {cseq}): bad Transport in reply: {source}")]
    BadTransport { cseq: u32, source: HeaderError },
    #[error("SETUP (CSeq {cseq}): asked for {asked}, server answered {answered:?}")]
    TransportMismatch {
        cseq: u32,
        asked: &'static str,
        answered: String,
    },
    #[error("{call} is not valid in state {state:?}")]
    InvalidState { call: &'static str, state: State },
    #[error("{0} medias to set up (at least one, at most 127 over TCP)")]
    BadMediaCount(usize),
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Options,
    Describe,
    /// Waiting for [`Client::setup`].
    Described,
    Announce,
    Setup,
    Play,
    Record,
    /// PLAY or RECORD succeeded.
    Streaming,
    Teardown,
    Closed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Options,
    Describe,
    Announce,
    Setup(usize),
    Play,
    Record,
    Keepalive,
    Teardown,
}

#[derive(Debug)]
struct Pending {
    cseq: u32,
    purpose: Purpose,
    method: Method,
    uri: String,
    /// Extra headers and body to repeat on an authenticated retry.
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    auth_tries: u8,
}

/// The client state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    url: RtspUrl,
    request_uri: String,
    creds: Option<Credentials>,
    auth: Option<ClientAuth>,
    cseq: u32,
    state: State,
    session: Option<SessionHeader>,
    public: Option<Vec<Method>>,
    base_url: Option<String>,
    aggregate_control: Option<String>,
    medias: Vec<MediaSetup>,
    setups: Vec<SetupInfo>,
    pending: VecDeque<Pending>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    decoder: Decoder,
    keepalive_anchor: Option<u64>,
    keepalive_options: bool,
}

impl Client {
    /// Parses the URL and queues the first request (`OPTIONS`).
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let url = RtspUrl::parse(&config.url)?;
        let request_uri = url.request_uri();
        let mut c = Client {
            creds: url.credentials(),
            url,
            request_uri,
            config,
            auth: None,
            cseq: 0,
            state: State::Options,
            session: None,
            public: None,
            base_url: None,
            aggregate_control: None,
            medias: Vec::new(),
            setups: Vec::new(),
            pending: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            decoder: Decoder::new(),
            keepalive_anchor: None,
            keepalive_options: false,
        };
        let uri = c.request_uri.clone();
        c.send(
            Purpose::Options,
            Method::Options,
            uri,
            Vec::new(),
            Vec::new(),
        );
        Ok(c)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The parsed URL (host and port to connect to, TLS or not).
    pub fn url(&self) -> &RtspUrl {
        &self.url
    }

    /// The session, once a SETUP reply gave one.
    pub fn session(&self) -> Option<&SessionHeader> {
        self.session.as_ref()
    }

    /// Methods from the `OPTIONS` reply's `Public` header.
    pub fn public(&self) -> Option<&[Method]> {
        self.public.as_deref()
    }

    /// The presentation base URL (after DESCRIBE).
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    pub fn setups(&self) -> &[SetupInfo] {
        &self.setups
    }

    /// Which media (index) an interleaved channel belongs to, and whether it is RTCP.
    pub fn media_for_channel(&self, channel: u8) -> Option<(usize, bool)> {
        self.setups.iter().find_map(|s| {
            if s.rtp_channel == Some(channel) {
                Some((s.index, false))
            } else if s.rtcp_channel == Some(channel) {
                Some((s.index, true))
            } else {
                None
            }
        })
    }

    /// The next bytes to write to the connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The session-level `a=control` of the SDP, if any: PLAY/RECORD go to it (joined with
    /// the base URL) instead of the base URL. Call before [`setup`](Self::setup).
    pub fn set_aggregate_control(&mut self, control: impl Into<String>) {
        self.aggregate_control = Some(control.into());
    }

    /// After [`ClientEvent::Described`]: set up these medias, then PLAY.
    pub fn setup(&mut self, medias: Vec<MediaSetup>) -> Result<(), ClientError> {
        if self.state != State::Described {
            return Err(self.invalid("setup"));
        }
        if medias.is_empty() || medias.len() > 127 {
            return Err(ClientError::BadMediaCount(medias.len()));
        }
        self.medias = medias;
        self.send_setup(0);
        Ok(())
    }

    /// Sends TEARDOWN (when a session exists) and ends the session.
    pub fn teardown(&mut self) {
        match self.state {
            State::Closed | State::Teardown => {}
            _ if self.session.is_none() => {
                self.state = State::Closed;
                self.events.push_back(ClientEvent::Closed);
            }
            _ => {
                let uri = self.presentation_url();
                self.state = State::Teardown;
                self.send(
                    Purpose::Teardown,
                    Method::Teardown,
                    uri,
                    Vec::new(),
                    Vec::new(),
                );
            }
        }
    }

    /// Feeds bytes read from the connection. Events and replies are queued; the error is
    /// fatal (the state becomes [`State::Failed`]).
    pub fn feed(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.decoder.push(data);
        while let Some(item) = self.decoder.poll() {
            match item {
                Ok(Item::Response(r)) => self.handle_response(r)?,
                Ok(Item::Request(r)) => self.handle_request(r),
                Ok(Item::Interleaved { channel, data }) => self
                    .events
                    .push_back(ClientEvent::Interleaved { channel, data }),
                Err(e) => self.events.push_back(ClientEvent::DecodeError(e)),
            }
        }
        Ok(())
    }

    /// The keepalive interval in ms: half the session timeout, at least one second.
    pub fn keepalive_interval_ms(&self) -> u64 {
        let t = self
            .session
            .as_ref()
            .map_or(DEFAULT_SESSION_TIMEOUT, SessionHeader::timeout_or_default);
        (u64::from(t) * 500).max(1000)
    }

    fn keepalive_active(&self) -> bool {
        self.session.is_some()
            && matches!(
                self.state,
                State::Setup | State::Play | State::Record | State::Streaming
            )
    }

    /// Whether a keepalive should be sent at `now_ms` (the caller's monotonic clock).
    pub fn keepalive_due(&self, now_ms: u64) -> bool {
        self.keepalive_active()
            && self
                .keepalive_anchor
                .is_some_and(|a| now_ms >= a.saturating_add(self.keepalive_interval_ms()))
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if known.
    pub fn next_timeout(&self) -> Option<u64> {
        if !self.keepalive_active() {
            return None;
        }
        self.keepalive_anchor
            .map(|a| a.saturating_add(self.keepalive_interval_ms()))
    }

    /// Advances time: the first call once a session exists starts the keepalive clock;
    /// later calls queue a keepalive when due.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if !self.keepalive_active() {
            return;
        }
        match self.keepalive_anchor {
            None => self.keepalive_anchor = Some(now_ms),
            Some(_) if self.keepalive_due(now_ms) => {
                self.keepalive_anchor = Some(now_ms);
                let use_get = !self.keepalive_options
                    && self
                        .public
                        .as_ref()
                        .is_some_and(|p| p.contains(&Method::GetParameter));
                let method = if use_get {
                    Method::GetParameter
                } else {
                    Method::Options
                };
                let uri = self.presentation_url();
                self.send(Purpose::Keepalive, method, uri, Vec::new(), Vec::new());
            }
            Some(_) => {}
        }
    }

    fn invalid(&self, call: &'static str) -> ClientError {
        ClientError::InvalidState {
            call,
            state: self.state,
        }
    }

    fn presentation_url(&self) -> String {
        let base = self.base_url.as_deref().unwrap_or(&self.request_uri);
        match &self.aggregate_control {
            Some(c) => join_control(base, c),
            None => base.to_string(),
        }
    }

    fn send(
        &mut self,
        purpose: Purpose,
        method: Method,
        uri: String,
        extra: Vec<(String, String)>,
        body: Vec<u8>,
    ) {
        let p = Pending {
            cseq: 0,
            purpose,
            method,
            uri,
            extra,
            body,
            auth_tries: 0,
        };
        self.send_pending(p);
    }

    fn send_pending(&mut self, mut p: Pending) {
        self.cseq = self.cseq.wrapping_add(1);
        p.cseq = self.cseq;
        let mut req = Request::new(p.method.clone(), p.uri.clone());
        // Exactly `CSeq`: some cameras are case-sensitive here (go2rtc #7).
        req.headers.append("CSeq", p.cseq.to_string());
        if let Some(a) = &mut self.auth {
            req.headers
                .append("Authorization", a.authorization(p.method.as_str(), &p.uri));
        }
        if let Some(ua) = &self.config.user_agent {
            req.headers.append("User-Agent", ua.clone());
        }
        if let Some(s) = &self.session {
            if p.method != Method::Options || p.purpose == Purpose::Keepalive {
                req.headers.append("Session", s.id.clone());
            }
        }
        for (n, v) in &p.extra {
            req.headers.append(n.clone(), v.clone());
        }
        req.body = p.body.clone();
        self.transmit.push_back(req.to_bytes());
        self.pending.push_back(p);
        while self.pending.len() > MAX_PENDING {
            match self
                .pending
                .iter()
                .position(|p| p.purpose == Purpose::Keepalive)
            {
                Some(i) => drop(self.pending.remove(i)),
                None => drop(self.pending.pop_front()),
            }
        }
    }

    fn send_describe(&mut self) {
        let mut extra = vec![("Accept".to_string(), "application/sdp".to_string())];
        if self.config.backchannel {
            extra.push(("Require".into(), BACKCHANNEL_REQUIRE.into()));
        }
        self.state = State::Describe;
        let uri = self.request_uri.clone();
        self.send(Purpose::Describe, Method::Describe, uri, extra, Vec::new());
    }

    fn send_announce(&mut self) {
        let Mode::Record { sdp, medias } = &self.config.mode else {
            return;
        };
        let body = sdp.clone();
        self.medias = medias.clone();
        self.state = State::Announce;
        let uri = self.request_uri.clone();
        let extra = vec![("Content-Type".to_string(), "application/sdp".to_string())];
        self.send(Purpose::Announce, Method::Announce, uri, extra, body);
    }

    fn send_setup(&mut self, i: usize) {
        let Some(m) = self.medias.get(i) else {
            return;
        };
        let base = self.base_url.as_deref().unwrap_or(&self.request_uri);
        let uri = join_control(base, &m.control);
        let mut t = match m.udp_client_ports {
            Some((a, b)) => Transport::udp_client_ports(a, b),
            // i ≤ 126, so 2i+1 fits a u8.
            None => Transport::tcp_interleaved((i * 2) as u8),
        };
        if matches!(self.config.mode, Mode::Record { .. }) {
            t.mode = Some("record".into());
        }
        let mut extra = vec![("Transport".to_string(), t.to_string())];
        if self.config.backchannel {
            extra.push(("Require".into(), BACKCHANNEL_REQUIRE.into()));
        }
        self.state = State::Setup;
        self.send(Purpose::Setup(i), Method::Setup, uri, extra, Vec::new());
    }

    fn send_play_or_record(&mut self) {
        let uri = self.presentation_url();
        // No `Range: npt=0.000-`: live cameras gain nothing from it, and some
        // (GStreamer's ONVIF server) try to seek their live pipeline and
        // answer 503. go2rtc sends none either.
        let mut extra = Vec::new();
        if self.config.backchannel {
            extra.push(("Require".to_string(), BACKCHANNEL_REQUIRE.to_string()));
        }
        if matches!(self.config.mode, Mode::Record { .. }) {
            self.state = State::Record;
            self.send(Purpose::Record, Method::Record, uri, extra, Vec::new());
        } else {
            self.state = State::Play;
            self.send(Purpose::Play, Method::Play, uri, extra, Vec::new());
        }
    }

    fn handle_request(&mut self, req: Request) {
        let status = match req.method {
            Method::Options | Method::GetParameter | Method::SetParameter => 200,
            _ => 501,
        };
        let mut res = Response::new(status);
        if let Some(c) = req.headers.get("CSeq") {
            res.headers.append("CSeq", c.trim());
        }
        if let Some(s) = &self.session {
            res.headers.append("Session", s.id.clone());
        }
        self.transmit.push_back(res.to_bytes());
        self.events.push_back(ClientEvent::ServerRequest(req));
    }

    fn fail(&mut self, e: ClientError) -> Result<(), ClientError> {
        self.state = State::Failed;
        Err(e)
    }

    fn status_error(p: &Pending, res: &Response) -> ClientError {
        ClientError::Status {
            method: p.method.clone(),
            cseq: p.cseq,
            status: res.status,
            reason: res.reason.chars().take(128).collect(),
        }
    }

    /// Handles one response (when the caller runs its own decoder; [`feed`](Self::feed)
    /// calls this).
    pub fn handle_response(&mut self, res: Response) -> Result<(), ClientError> {
        if self.state == State::Failed {
            return Ok(());
        }
        let cseq = res.cseq();
        let idx = match cseq {
            Some(c) => self.pending.iter().position(|p| p.cseq == c),
            // No CSeq (seen on cheap cameras): fine if only one request is outstanding.
            None if self.pending.len() == 1 => Some(0),
            None => None,
        };
        let Some(p) = idx.and_then(|i| self.pending.remove(i)) else {
            self.events.push_back(ClientEvent::UnmatchedResponse {
                cseq,
                status: res.status,
            });
            return Ok(());
        };

        if self.session.is_none() {
            if let Some(s) = res.headers.get("Session") {
                self.session = SessionHeader::parse(s).ok();
            }
        }

        if res.status == 401 {
            return self.handle_unauthorized(p, &res);
        }
        if (300..400).contains(&res.status) && p.purpose != Purpose::Keepalive {
            if let Some(loc) = res.headers.get("Location") {
                self.state = State::Closed;
                self.events.push_back(ClientEvent::Redirect {
                    location: loc.trim().to_string(),
                });
                return Ok(());
            }
        }
        let ok = res.is_success();
        match p.purpose {
            Purpose::Options => {
                if ok {
                    self.public = Some(
                        res.headers
                            .get_all("Public")
                            .flat_map(parse_public)
                            .collect(),
                    );
                }
                // A failed OPTIONS is not fatal: go on.
                match self.config.mode {
                    Mode::Play => self.send_describe(),
                    Mode::Record { .. } => self.send_announce(),
                }
            }
            Purpose::Describe => {
                if !ok {
                    return self.fail(Self::status_error(&p, &res));
                }
                let base = base_url(
                    res.headers.get("Content-Base"),
                    res.headers.get("Content-Location"),
                    &self.request_uri,
                );
                self.base_url = Some(base.clone());
                self.state = State::Described;
                self.events.push_back(ClientEvent::Described {
                    sdp: res.body,
                    base_url: base,
                    content_type: res.headers.get("Content-Type").map(str::to_string),
                });
            }
            Purpose::Announce => {
                if !ok {
                    return self.fail(Self::status_error(&p, &res));
                }
                self.events.push_back(ClientEvent::Announced);
                if self.medias.is_empty() {
                    self.send_play_or_record();
                } else {
                    self.send_setup(0);
                }
            }
            Purpose::Setup(i) => {
                if !ok {
                    return self.fail(Self::status_error(&p, &res));
                }
                let info = match self.setup_info(i, &p, &res) {
                    Ok(info) => info,
                    Err(e) => return self.fail(e),
                };
                self.setups.push(info.clone());
                self.events.push_back(ClientEvent::SetupDone(info));
                if i + 1 < self.medias.len() {
                    self.send_setup(i + 1);
                } else {
                    self.send_play_or_record();
                }
            }
            Purpose::Play | Purpose::Record => {
                if !ok {
                    return self.fail(Self::status_error(&p, &res));
                }
                self.state = State::Streaming;
                if p.purpose == Purpose::Play {
                    self.events.push_back(ClientEvent::Playing {
                        rtp_info: res
                            .headers
                            .get_all("RTP-Info")
                            .flat_map(parse_rtp_info)
                            .collect(),
                        range: res.headers.get("Range").and_then(|r| Range::parse(r).ok()),
                    });
                } else {
                    self.events.push_back(ClientEvent::Recording);
                }
            }
            Purpose::Keepalive => {
                if !ok {
                    if p.method == Method::GetParameter {
                        self.keepalive_options = true;
                    }
                    self.events.push_back(ClientEvent::KeepaliveFailed {
                        method: p.method,
                        cseq: p.cseq,
                        status: res.status,
                    });
                }
            }
            Purpose::Teardown => {
                self.state = State::Closed;
                self.events.push_back(ClientEvent::Closed);
            }
        }
        Ok(())
    }

    fn handle_unauthorized(&mut self, mut p: Pending, res: &Response) -> Result<(), ClientError> {
        let (method, cseq) = (p.method.clone(), p.cseq);
        let Some(creds) = self.creds.clone() else {
            if p.purpose == Purpose::Keepalive {
                return Ok(());
            }
            return self.fail(ClientError::NoCredentials { method, cseq });
        };
        let challenge = select_challenge(res.headers.get_all("WWW-Authenticate"));
        let stale = matches!(&challenge, Some(Challenge::Digest(d)) if d.stale);
        let max_tries = if stale { 2 } else { 1 };
        if p.auth_tries >= max_tries {
            if p.purpose == Purpose::Keepalive {
                return Ok(());
            }
            return self.fail(ClientError::AuthRejected { method, cseq });
        }
        let Some(challenge) = challenge else {
            let values: Vec<&str> = res.headers.get_all("WWW-Authenticate").collect();
            return self.fail(ClientError::Auth {
                method,
                cseq,
                source: AuthError::NoSupportedChallenge(values.join(", ")),
            });
        };
        match ClientAuth::new(creds, challenge, self.config.cnonce.clone()) {
            Ok(a) => self.auth = Some(a),
            Err(source) => {
                return self.fail(ClientError::Auth {
                    method,
                    cseq,
                    source,
                })
            }
        }
        p.auth_tries += 1;
        self.send_pending(p);
        Ok(())
    }

    fn setup_info(&self, i: usize, p: &Pending, res: &Response) -> Result<SetupInfo, ClientError> {
        let asked = self.medias.get(i).and_then(|m| m.udp_client_ports);
        let requested = match asked {
            Some((a, b)) => Transport::udp_client_ports(a, b),
            None => Transport::tcp_interleaved((i * 2) as u8),
        };
        let transport = match res.headers.get("Transport") {
            // Missing Transport: assume the server took what we asked for.
            None => requested,
            Some(v) => parse_transports(v)
                .map_err(|source| ClientError::BadTransport {
                    cseq: p.cseq,
                    source,
                })?
                .swap_remove(0),
        };
        let mismatch = |asked: &'static str| ClientError::TransportMismatch {
            cseq: p.cseq,
            asked,
            answered: transport.to_string(),
        };
        let (rtp_channel, rtcp_channel) = if asked.is_none() {
            if transport.client_port.is_some() && transport.interleaved.is_none() {
                return Err(mismatch("TCP interleaved"));
            }
            // The server may pick other channels than ours: its choice wins.
            let (rtp, rtcp) = transport
                .channels()
                .unwrap_or(((i * 2) as u8, Some((i * 2 + 1) as u8)));
            (Some(rtp), rtcp)
        } else {
            if transport.lower == super::transport::LowerTransport::Tcp {
                return Err(mismatch("UDP"));
            }
            (None, None)
        };
        Ok(SetupInfo {
            index: i,
            url: p.uri.clone(),
            server_port: transport.server_port,
            ssrc: transport.ssrc,
            rtp_channel,
            rtcp_channel,
            transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(c: &mut Client) -> Request {
        let b = c.poll_transmit().expect("a request");
        Request::parse(&b).unwrap()
    }

    fn reply(c: &mut Client, cseq: u32, rest: &str) -> Result<(), ClientError> {
        let msg = format!("RTSP/1.0 {rest}");
        let msg = msg.replacen("\r\n", &format!("\r\nCSeq: {cseq}\r\n"), 1);
        c.feed(msg.as_bytes())
    }

    fn events(c: &mut Client) -> Vec<ClientEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn play_flow_tcp_with_digest() {
        let mut c = Client::new(ClientConfig {
            cnonce: "abc".into(),
            ..ClientConfig::play("rtsp://admin:12345@cam/live")
        })
        .unwrap();
        let r = sent(&mut c);
        assert_eq!(
            (r.method.clone(), r.uri.as_str(), r.cseq()),
            (Method::Options, "rtsp://cam/live", Some(1))
        );
        reply(
            &mut c,
            1,
            "200 OK\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n\r\n",
        )
        .unwrap();
        let r = sent(&mut c);
        assert_eq!(r.method, Method::Describe);
        assert_eq!(r.headers.get("Accept"), Some("application/sdp"));
        assert!(r.headers.get("Authorization").is_none());
        reply(
            &mut c,
            2,
            "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n1\"\r\n\r\n",
        )
        .unwrap();
        let r = sent(&mut c);
        assert_eq!((r.method.clone(), r.cseq()), (Method::Describe, Some(3)));
        assert!(r
            .headers
            .get("Authorization")
            .unwrap()
            .starts_with("Digest username=\"admin\""));
        reply(
            &mut c,
            3,
            "200 OK\r\nContent-Base: rtsp://cam/live/\r\nContent-Length: 5\r\n\r\nv=0\r\n",
        )
        .unwrap();
        assert_eq!(
            events(&mut c),
            [ClientEvent::Described {
                sdp: b"v=0\r\n".to_vec(),
                base_url: "rtsp://cam/live/".into(),
                content_type: None
            }]
        );
        assert!(c.poll_transmit().is_none());
        c.setup(vec![
            MediaSetup::tcp("trackID=1"),
            MediaSetup::tcp("trackID=2"),
        ])
        .unwrap();
        let r = sent(&mut c);
        assert_eq!(r.uri, "rtsp://cam/live/trackID=1");
        assert_eq!(
            r.headers.get("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
        assert!(r.headers.get("Authorization").is_some());
        reply(&mut c, 4, "200 OK\r\nSession: ABC;timeout=30\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert_eq!(
            r.headers.get("Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=2-3")
        );
        assert_eq!(r.headers.get("Session"), Some("ABC"));
        reply(&mut c, 5, "200 OK\r\nSession: ABC;timeout=30\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert_eq!(
            (r.method.clone(), r.uri.as_str()),
            (Method::Play, "rtsp://cam/live/")
        );
        assert_eq!(r.headers.get("Range"), None, "no seek on live cameras");
        // RTCP before the PLAY reply.
        c.feed(b"$\x01\x00\x04\x80\xc8\x00\x01").unwrap();
        reply(
            &mut c,
            6,
            "200 OK\r\nRTP-Info: url=rtsp://cam/live/trackID=1;seq=5\r\n\r\n",
        )
        .unwrap();
        let ev = events(&mut c);
        assert!(
            matches!(ev.last(), Some(ClientEvent::Playing { rtp_info, .. }) if rtp_info[0].seq == Some(5))
        );
        assert!(ev
            .iter()
            .any(|e| matches!(e, ClientEvent::Interleaved { channel: 1, .. })));
        assert_eq!(c.media_for_channel(1), Some((0, true)));
        assert_eq!(c.media_for_channel(2), Some((1, false)));
        assert_eq!(c.state(), State::Streaming);

        // Keepalive: 30 s timeout -> every 15 s, GET_PARAMETER since it is public.
        c.handle_timeout(1_000);
        assert!(c.poll_transmit().is_none());
        assert!(!c.keepalive_due(15_999));
        assert!(c.keepalive_due(16_000));
        assert_eq!(c.next_timeout(), Some(16_000));
        c.handle_timeout(16_000);
        let r = sent(&mut c);
        assert_eq!(r.method, Method::GetParameter);
        assert_eq!(r.headers.get("Session"), Some("ABC"));
        reply(&mut c, 7, "405 Method Not Allowed\r\n\r\n").unwrap();
        assert!(matches!(
            events(&mut c)[..],
            [ClientEvent::KeepaliveFailed {
                status: 405,
                cseq: 7,
                ..
            }]
        ));
        c.handle_timeout(31_000);
        assert_eq!(sent(&mut c).method, Method::Options);

        c.teardown();
        let r = sent(&mut c);
        assert_eq!(r.method, Method::Teardown);
        reply(&mut c, 9, "200 OK\r\n\r\n").unwrap();
        assert_eq!(c.state(), State::Closed);
    }

    #[test]
    fn errors_carry_cseq_and_status() {
        let mut c = Client::new(ClientConfig::play("rtsp://cam/x")).unwrap();
        sent(&mut c);
        reply(&mut c, 1, "501 Not Implemented\r\n\r\n").unwrap(); // tolerated
        assert_eq!(sent(&mut c).method, Method::Describe);
        let e = reply(&mut c, 2, "404 Stream Not Found\r\n\r\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "DESCRIBE (CSeq 2) failed: 404 Stream Not Found"
        );
        assert_eq!(c.state(), State::Failed);

        let mut c = Client::new(ClientConfig::play("rtsp://cam/x")).unwrap();
        sent(&mut c);
        reply(
            &mut c,
            1,
            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
        )
        .unwrap_err();
        let mut c = Client::new(ClientConfig::play("rtsp://u:p@cam/x")).unwrap();
        sent(&mut c);
        reply(
            &mut c,
            1,
            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
        )
        .unwrap();
        let r = sent(&mut c);
        assert_eq!(r.headers.get("Authorization"), Some("Basic dTpw"));
        let e = reply(
            &mut c,
            2,
            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            ClientError::AuthRejected {
                method: Method::Options,
                cseq: 2
            }
        );
    }

    #[test]
    fn stale_nonce_retries_twice() {
        let mut c = Client::new(ClientConfig::play("rtsp://u:p@cam/x")).unwrap();
        sent(&mut c);
        reply(
            &mut c,
            1,
            "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"a\"\r\n\r\n",
        )
        .unwrap();
        sent(&mut c);
        reply(&mut c, 2, "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"b\", stale=true\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert!(r
            .headers
            .get("Authorization")
            .unwrap()
            .contains("nonce=\"b\""));
    }

    #[test]
    fn record_flow_udp() {
        let sdp = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=control:streamid=0\r\n".to_vec();
        let mut c = Client::new(ClientConfig::record(
            "rtsp://srv:8554/pub",
            sdp.clone(),
            vec![MediaSetup::udp("streamid=0", 5000, 5001)],
        ))
        .unwrap();
        sent(&mut c);
        reply(&mut c, 1, "200 OK\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert_eq!(r.method, Method::Announce);
        assert_eq!(r.body, sdp);
        assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));
        reply(&mut c, 2, "200 OK\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert_eq!(r.uri, "rtsp://srv:8554/pub/streamid=0");
        assert_eq!(
            r.headers.get("Transport"),
            Some("RTP/AVP;unicast;client_port=5000-5001;mode=record")
        );
        reply(&mut c, 3, "200 OK\r\nSession: s1\r\nTransport: RTP/AVP/UDP;unicast;client_port=5000-5001;server_port=7000-7001;mode=record\r\n\r\n").unwrap();
        let r = sent(&mut c);
        assert_eq!(r.method, Method::Record);
        reply(&mut c, 4, "200 OK\r\n\r\n").unwrap();
        let ev = events(&mut c);
        assert!(
            matches!(&ev[1], ClientEvent::SetupDone(s) if s.server_port == Some((7000, Some(7001))))
        );
        assert_eq!(ev.last(), Some(&ClientEvent::Recording));
    }

    #[test]
    fn invalid_calls_and_redirect() {
        let mut c = Client::new(ClientConfig::play("rtsp://cam/x")).unwrap();
        assert!(matches!(
            c.setup(vec![MediaSetup::tcp("a")]),
            Err(ClientError::InvalidState { .. })
        ));
        sent(&mut c);
        reply(&mut c, 1, "302 Moved\r\nLocation: rtsp://other/x\r\n\r\n").unwrap();
        assert_eq!(
            events(&mut c),
            [ClientEvent::Redirect {
                location: "rtsp://other/x".into()
            }]
        );
        assert!(Client::new(ClientConfig::play("http://x")).is_err());
    }

    #[test]
    fn server_requests_are_answered() {
        let mut c = Client::new(ClientConfig::play("rtsp://cam/x")).unwrap();
        sent(&mut c);
        c.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\nANNOUNCE rtsp://cam/x RTSP/1.0\r\nCSeq: 10\r\n\r\n").unwrap();
        let a = Response::parse(&c.poll_transmit().unwrap()).unwrap();
        assert_eq!((a.status, a.cseq()), (200, Some(9)));
        let b = Response::parse(&c.poll_transmit().unwrap()).unwrap();
        assert_eq!((b.status, b.cseq()), (501, Some(10)));
        // Unknown CSeq.
        reply(&mut c, 77, "200 OK\r\n\r\n").unwrap();
        assert!(events(&mut c).contains(&ClientEvent::UnmatchedResponse {
            cseq: Some(77),
            status: 200
        }));
    }
}
