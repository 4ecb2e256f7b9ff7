//! HTTP and RTSP authentication: Basic (RFC 7617) and Digest (RFC 2617 / RFC 7616: MD5, MD5-sess,
//! SHA-256, SHA-256-sess, with or without `qop=auth`).
//!
//! Client side: [`parse_challenges`] reads `WWW-Authenticate` values, [`ClientAuth`] picks
//! the best one (SHA-256 Digest > MD5 Digest > Basic) and computes `Authorization` values.
//! Server side: [`ServerAuth`] issues challenges and verifies `Authorization` values with a
//! constant-time comparison. Nothing here draws random numbers: nonces and cnonces come
//! from the caller.

use base64::Engine as _;
use md5::Md5;
use sha2::Sha256;

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Authentication errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no supported challenge in WWW-Authenticate {0:?}")]
    NoSupportedChallenge(String),
    #[error("missing Authorization header")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unsupported authentication scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("stale or unknown nonce")]
    StaleNonce,
    #[error("wrong credentials")]
    Rejected,
    #[error("Digest uri does not name the request URI")]
    UriMismatch,
}

/// A Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "MD5-SESS" => Some(Algorithm::Md5Sess),
            "SHA-256" => Some(Algorithm::Sha256),
            "SHA-256-SESS" => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn is_sha256(self) -> bool {
        matches!(self, Algorithm::Sha256 | Algorithm::Sha256Sess)
    }

    /// Lowercase hex hash of the parts joined with `:`.
    pub fn hash(self, parts: &[&str]) -> String {
        fn run<D: md5::Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        if self.is_sha256() {
            run::<Sha256>(parts)
        } else {
            run::<Md5>(parts)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A Digest challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `None` when the challenge named an algorithm we do not implement.
    pub algorithm: Option<Algorithm>,
    /// Whether the `algorithm` parameter was present (it is echoed back only then).
    pub algorithm_given: bool,
    /// The `qop` options offered, lowercased (`auth`, `auth-int`); empty for RFC 2069 style.
    pub qop: Vec<String>,
    pub stale: bool,
}

impl DigestChallenge {
    /// Whether we can answer this challenge.
    pub fn is_supported(&self) -> bool {
        self.algorithm.is_some() && (self.qop.is_empty() || self.uses_qop_auth())
    }

    fn uses_qop_auth(&self) -> bool {
        self.qop.iter().any(|q| q == "auth")
    }
}

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Digest(DigestChallenge),
    /// Another scheme, kept for diagnostics.
    Other {
        scheme: String,
    },
}

impl Challenge {
    /// Preference rank: higher is better; `None` when unsupported.
    fn rank(&self) -> Option<u8> {
        match self {
            Challenge::Digest(d) if d.is_supported() => {
                Some(if d.algorithm.is_some_and(Algorithm::is_sha256) {
                    3
                } else {
                    2
                })
            }
            Challenge::Basic { .. } => Some(1),
            _ => None,
        }
    }
}

/// Splits at top-level `sep`, honoring quoted strings with backslash escapes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quote && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == sep && !in_quote {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Parses `name=value` (value quoted or not). Names are lowercased.
fn parse_param(item: &str) -> Option<(String, String)> {
    let (n, v) = item.split_once('=')?;
    let n = n.trim();
    if n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == '"') {
        return None;
    }
    Some((n.to_ascii_lowercase(), unquote(v)))
}

/// Auth params of one challenge or credentials value.
#[derive(Debug, Default, Clone)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one `WWW-Authenticate` value, which may hold several challenges
/// (`Digest realm="a", nonce="b", Basic realm="a"`). Unparseable pieces are skipped.
pub fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut raw: Vec<(String, Params)> = Vec::new();
    for item in split_top(value, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let ws = item.find(char::is_whitespace);
        let eq = item.find('=');
        let starts_challenge = match (ws, eq) {
            (Some(w), Some(e)) => w < e,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if starts_challenge {
            let (scheme, rest) = match ws {
                Some(w) => (&item[..w], item[w..].trim()),
                None => (item, ""),
            };
            let mut params = Params::default();
            if let Some(p) = parse_param(rest) {
                params.0.push(p);
            }
            raw.push((scheme.to_string(), params));
        } else if let (Some((_, params)), Some(p)) = (raw.last_mut(), parse_param(item)) {
            params.0.push(p);
        }
    }
    raw.into_iter()
        .filter_map(|(scheme, params)| {
            if scheme.eq_ignore_ascii_case("basic") {
                Some(Challenge::Basic {
                    realm: params.get("realm").map(str::to_string),
                })
            } else if scheme.eq_ignore_ascii_case("digest") {
                let nonce = params.get("nonce")?.to_string();
                let alg = params.get("algorithm");
                Some(Challenge::Digest(DigestChallenge {
                    realm: params.get("realm").unwrap_or_default().to_string(),
                    nonce,
                    opaque: params.get("opaque").map(str::to_string),
                    algorithm: alg.map_or(Some(Algorithm::Md5), Algorithm::parse),
                    algorithm_given: alg.is_some(),
                    qop: params
                        .get("qop")
                        .map(|q| {
                            q.split(',')
                                .map(|s| s.trim().to_ascii_lowercase())
                                .filter(|s| !s.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                    stale: params
                        .get("stale")
                        .is_some_and(|s| s.eq_ignore_ascii_case("true")),
                }))
            } else {
                Some(Challenge::Other { scheme })
            }
        })
        .collect()
}

/// Picks the preferred supported challenge from all `WWW-Authenticate` values:
/// SHA-256 Digest > MD5 Digest > Basic; the first one wins a tie.
pub fn select_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut best: Option<(u8, Challenge)> = None;
    for v in values {
        for c in parse_challenges(v) {
            if let Some(r) = c.rank() {
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, c));
                }
            }
        }
    }
    best.map(|(_, c)| c)
}

/// Quotes a value for a header parameter.
fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\r' | '\n' => s.push(' '),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `Basic base64(user:pass)`.
pub fn basic_authorization(creds: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password))
    )
}

/// Computes a Digest `response` value.
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    alg: Algorithm,
    creds: &Credentials,
    realm: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop_auth: Option<(&str, &str)>, // (nc, cnonce)
) -> String {
    let mut ha1 = alg.hash(&[&creds.username, realm, &creds.password]);
    if alg.is_sess() {
        let cnonce = qop_auth.map(|(_, c)| c).unwrap_or_default();
        ha1 = alg.hash(&[&ha1, nonce, cnonce]);
    }
    let ha2 = alg.hash(&[method, uri]);
    match qop_auth {
        Some((nc, cnonce)) => alg.hash(&[&ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => alg.hash(&[&ha1, nonce, &ha2]),
    }
}

/// Client-side state: the chosen challenge and the nonce count.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    creds: Credentials,
    challenge: Challenge,
    nc: u32,
    cnonce: String,
}

impl ClientAuth {
    /// Uses `challenge` (Basic or a supported Digest). `cnonce` is the caller's random
    /// client nonce, used when the server asks for `qop=auth`.
    pub fn new(
        creds: Credentials,
        challenge: Challenge,
        cnonce: impl Into<String>,
    ) -> Result<Self, AuthError> {
        if challenge.rank().is_none() {
            return Err(AuthError::NoSupportedChallenge(format!("{challenge:?}")));
        }
        Ok(ClientAuth {
            creds,
            challenge,
            nc: 0,
            cnonce: cnonce.into(),
        })
    }

    /// Picks the best challenge from all `WWW-Authenticate` values of a 401 response.
    pub fn from_www_authenticate<'a>(
        creds: Credentials,
        values: impl IntoIterator<Item = &'a str> + Clone,
        cnonce: impl Into<String>,
    ) -> Result<Self, AuthError> {
        match select_challenge(values.clone()) {
            Some(c) => Self::new(creds, c, cnonce),
            None => Err(AuthError::NoSupportedChallenge(
                values.into_iter().collect::<Vec<_>>().join(", "),
            )),
        }
    }

    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The `Authorization` value for `method` on `uri` (the request URI exactly as sent).
    /// Each call with `qop=auth` uses the next nonce count.
    pub fn authorization(&mut self, method: &str, uri: &str) -> String {
        let d = match &self.challenge {
            Challenge::Digest(d) => d,
            _ => return basic_authorization(&self.creds),
        };
        let alg = d.algorithm.unwrap_or(Algorithm::Md5);
        let qop = d.uses_qop_auth();
        let nc = if qop {
            self.nc = self.nc.wrapping_add(1);
            format!("{:08x}", self.nc)
        } else {
            String::new()
        };
        let cnonce = if self.cnonce.is_empty() {
            // Callers should supply randomness; this fallback still varies per nonce.
            Algorithm::Md5.hash(&[&d.nonce, &self.creds.username])[..16].to_string()
        } else {
            self.cnonce.clone()
        };
        let response = digest_response(
            alg,
            &self.creds,
            &d.realm,
            &d.nonce,
            method,
            uri,
            qop.then_some((nc.as_str(), cnonce.as_str())),
        );
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            quote(&self.creds.username),
            quote(&d.realm),
            quote(&d.nonce),
            quote(uri),
            quote(&response)
        );
        if d.algorithm_given {
            s.push_str(", algorithm=");
            s.push_str(alg.as_str());
        }
        if let Some(o) = &d.opaque {
            s.push_str(", opaque=");
            s.push_str(&quote(o));
        }
        if qop {
            s.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(&cnonce)));
        }
        s
    }
}

/// Whether a Digest `uri` names the same resource as the request URI. Clients (ffmpeg,
/// VLC/live555, GStreamer) put the URI they requested there, but an absolute URI and its
/// path, another spelling of the host (`localhost` vs `127.0.0.1`) and a trailing slash
/// are all the same resource to us; the path and the query must match exactly.
fn same_resource(digest_uri: &str, request_uri: &str) -> bool {
    fn resource(uri: &str) -> (&str, &str) {
        let rest = match uri.find("://") {
            Some(i) => {
                let after = &uri[i + 3..];
                &after[after.find(['/', '?']).unwrap_or(after.len())..]
            }
            None => uri,
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        (path.trim_end_matches('/'), query)
    }
    resource(digest_uri) == resource(request_uri)
}

/// Constant-time equality (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Server-side authentication for one user.
#[derive(Debug, Clone)]
pub struct ServerAuth {
    pub realm: String,
    pub credentials: Credentials,
    /// Accept Basic credentials (sent in clear text without TLS).
    pub allow_basic: bool,
}

impl ServerAuth {
    pub fn new(realm: impl Into<String>, credentials: Credentials) -> Self {
        ServerAuth {
            realm: realm.into(),
            credentials,
            allow_basic: true,
        }
    }

    /// `Digest realm="…", nonce="…", algorithm=MD5`. `nonce` is caller-supplied randomness
    /// (keep it, per connection, to pass to [`verify`](Self::verify)).
    pub fn digest_challenge(&self, nonce: &str) -> String {
        format!(
            "Digest realm={}, nonce={}, algorithm=MD5",
            quote(&self.realm),
            quote(nonce)
        )
    }

    /// `Basic realm="…"`.
    pub fn basic_challenge(&self) -> String {
        format!("Basic realm={}", quote(&self.realm))
    }

    /// The `WWW-Authenticate` values for a 401: Digest (if a nonce is given), then Basic
    /// (if allowed).
    pub fn challenges(&self, nonce: Option<&str>) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(n) = nonce {
            v.push(self.digest_challenge(n));
        }
        if self.allow_basic {
            v.push(self.basic_challenge());
        }
        v
    }

    /// Verifies an `Authorization` value for a request with `method` on `request_uri` (the
    /// request line's URI as received). `nonce` is the one issued on this connection (Digest
    /// is refused without one). A Digest answer must name the request's own URI in `uri`
    /// (RFC 2617 §3.2.2.5, RFC 7616 §3.4.6): otherwise one computed for `/a` would
    /// authorize `/b` on the same connection.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        method: &str,
        request_uri: &str,
        nonce: Option<&str>,
    ) -> Result<(), AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if !self.allow_basic {
                return Err(AuthError::UnsupportedScheme(scheme.to_string()));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| AuthError::Malformed("bad base64"))?;
            let expected = format!(
                "{}:{}",
                self.credentials.username, self.credentials.password
            );
            return if ct_eq(&decoded, expected.as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::Rejected)
            };
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::UnsupportedScheme(
                scheme.chars().take(32).collect(),
            ));
        }
        let mut p = Params::default();
        for item in split_top(rest, ',') {
            if let Some(kv) = parse_param(item) {
                p.0.push(kv);
            }
        }
        let get = |n: &'static str| p.get(n).ok_or(AuthError::Malformed(n));
        let username = get("username")?;
        let realm = get("realm")?;
        let got_nonce = get("nonce")?;
        let uri = get("uri")?;
        let response = get("response")?;
        let alg = match p.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(AuthError::Malformed("algorithm"))?,
        };
        if !same_resource(uri, request_uri) {
            return Err(AuthError::UriMismatch);
        }
        let expected_nonce = nonce.ok_or(AuthError::StaleNonce)?;
        if !ct_eq(got_nonce.as_bytes(), expected_nonce.as_bytes()) {
            return Err(AuthError::StaleNonce);
        }
        let qop = match p.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => Some((get("nc")?, get("cnonce")?)),
            Some(_) => return Err(AuthError::Malformed("qop")),
        };
        let expected = digest_response(alg, &self.credentials, realm, got_nonce, method, uri, qop);
        // Evaluate every comparison so timing does not reveal which one failed.
        let user_ok = ct_eq(username.as_bytes(), self.credentials.username.as_bytes());
        let realm_ok = ct_eq(realm.as_bytes(), self.realm.as_bytes());
        let resp_ok = ct_eq(
            response.to_ascii_lowercase().as_bytes(),
            expected.as_bytes(),
        );
        if user_ok & realm_ok & resp_ok {
            Ok(())
        } else {
            Err(AuthError::Rejected)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mufasa(pass: &str) -> Credentials {
        Credentials::new("Mufasa", pass)
    }

    #[test]
    fn rfc2617_vector() {
        let r = digest_response(
            Algorithm::Md5,
            &mufasa("Circle Of Life"),
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");

        let www = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let mut a =
            ClientAuth::from_www_authenticate(mufasa("Circle Of Life"), [www], "0a4f113b").unwrap();
        let h = a.authorization("GET", "/dir/index.html");
        assert_eq!(
            h,
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001, cnonce="0a4f113b""#
        );
        assert!(a
            .authorization("GET", "/dir/index.html")
            .contains("nc=00000002"));
    }

    #[test]
    fn rfc7616_vectors() {
        let www_md5 = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let www_sha = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let creds = mufasa("Circle of Life");
        let mut md5 = ClientAuth::from_www_authenticate(creds.clone(), [www_md5], cnonce).unwrap();
        assert!(md5
            .authorization("GET", "/dir/index.html")
            .contains(r#"response="8ca523f5e9506fed4657c9700eebdbec""#));
        // Both offered: SHA-256 wins regardless of order.
        let mut sha = ClientAuth::from_www_authenticate(creds, [www_md5, www_sha], cnonce).unwrap();
        let h = sha.authorization("GET", "/dir/index.html");
        assert!(h.contains(
            r#"response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
        ));
        assert!(h.contains("algorithm=SHA-256"));
    }

    #[test]
    fn preference_and_multi_challenge_values() {
        let c = select_challenge([
            r#"Basic realm="x""#,
            r#"Digest realm="x", nonce="n1", Basic realm="y""#,
        ]);
        assert!(matches!(c, Some(Challenge::Digest(d)) if d.nonce == "n1"));
        let c = select_challenge([r#"Basic realm="x""#, "Negotiate abc=="]);
        assert!(matches!(c, Some(Challenge::Basic { realm: Some(r) }) if r == "x"));
        // auth-int only and unknown algorithms are not selectable.
        assert!(select_challenge([r#"Digest realm="r", nonce="n", qop="auth-int""#]).is_none());
        assert!(
            select_challenge([r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#]).is_none()
        );
        assert!(select_challenge(["Digest"]).is_none());
        assert!(select_challenge([""]).is_none());
    }

    #[test]
    fn quoted_commas_and_escapes() {
        let c = parse_challenges(r#"Digest realm="a, \"b\"", nonce=abc, stale=TRUE"#);
        match &c[..] {
            [Challenge::Digest(d)] => {
                assert_eq!(d.realm, r#"a, "b""#);
                assert_eq!(d.nonce, "abc");
                assert!(d.stale);
                assert_eq!(d.algorithm, Some(Algorithm::Md5));
                assert!(!d.algorithm_given);
            }
            x => panic!("{x:?}"),
        }
    }

    #[test]
    fn rfc2069_no_qop() {
        let mut a = ClientAuth::from_www_authenticate(
            Credentials::new("admin", "12345"),
            [r#"Digest realm="Surveillance Server", nonce="98481030""#],
            "",
        )
        .unwrap();
        let h = a.authorization("DESCRIBE", "rtsp://192.168.1.10:554/stream1");
        let expected = digest_response(
            Algorithm::Md5,
            &Credentials::new("admin", "12345"),
            "Surveillance Server",
            "98481030",
            "DESCRIBE",
            "rtsp://192.168.1.10:554/stream1",
            None,
        );
        assert!(h.contains(&format!("response=\"{expected}\"")));
        assert!(!h.contains("qop") && !h.contains("algorithm"));
    }

    #[test]
    fn basic_client() {
        let mut a = ClientAuth::from_www_authenticate(
            Credentials::new("Aladdin", "open sesame"),
            [r#"Basic realm="cam""#],
            "",
        )
        .unwrap();
        assert_eq!(
            a.authorization("OPTIONS", "*"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn server_roundtrip() {
        let creds = Credentials::new("admin", "pa\"ss");
        let server = ServerAuth::new("camrouter", creds.clone());
        let nonce = "0123456789abcdef";
        let ch = server.challenges(Some(nonce));
        assert_eq!(ch.len(), 2);
        // A client answering our Digest challenge is accepted.
        let mut client =
            ClientAuth::from_www_authenticate(creds.clone(), ch.iter().map(String::as_str), "c1")
                .unwrap();
        let h = client.authorization("DESCRIBE", "rtsp://h/s");
        assert_eq!(
            server.verify(Some(&h), "DESCRIBE", "rtsp://h/s", Some(nonce)),
            Ok(())
        );
        // Wrong method (response mismatch), wrong nonce, wrong password.
        assert_eq!(
            server.verify(Some(&h), "PLAY", "rtsp://h/s", Some(nonce)),
            Err(AuthError::Rejected)
        );
        assert_eq!(
            server.verify(Some(&h), "DESCRIBE", "rtsp://h/s", Some("other")),
            Err(AuthError::StaleNonce)
        );
        let mut bad = ClientAuth::from_www_authenticate(
            Credentials::new("admin", "x"),
            ch.iter().map(String::as_str),
            "c1",
        )
        .unwrap();
        let hb = bad.authorization("DESCRIBE", "rtsp://h/s");
        assert_eq!(
            server.verify(Some(&hb), "DESCRIBE", "rtsp://h/s", Some(nonce)),
            Err(AuthError::Rejected)
        );
        // qop=auth digests from other clients verify too.
        let qop = ServerAuth::new("testrealm@host.com", mufasa("Circle Of Life"));
        let h = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629FAE49393A05397450978507C4EF1""#;
        assert_eq!(
            qop.verify(
                Some(h),
                "GET",
                "/dir/index.html",
                Some("dcd98b7102dd2f0e8b11d0f600bfb0c093")
            ),
            Ok(())
        );
        // Basic.
        let basic = basic_authorization(&creds);
        assert_eq!(
            server.verify(Some(&basic), "PLAY", "rtsp://h/s", None),
            Ok(())
        );
        assert_eq!(
            server.verify(
                Some(&basic_authorization(&Credentials::new("admin", "no"))),
                "PLAY",
                "rtsp://h/s",
                None
            ),
            Err(AuthError::Rejected)
        );
        let mut no_basic = server.clone();
        no_basic.allow_basic = false;
        assert!(no_basic
            .verify(Some(&basic), "PLAY", "rtsp://h/s", None)
            .is_err());
        assert_eq!(
            server.verify(None, "PLAY", "rtsp://h/s", None),
            Err(AuthError::Missing)
        );
        assert!(server
            .verify(
                Some("Digest username=\"admin\""),
                "PLAY",
                "rtsp://h/s",
                Some(nonce)
            )
            .is_err());
        assert!(server
            .verify(Some("Basic !!!"), "PLAY", "rtsp://h/s", None)
            .is_err());
        assert!(server
            .verify(Some("Bearer x"), "PLAY", "rtsp://h/s", None)
            .is_err());
    }

    #[test]
    fn digest_is_bound_to_the_request_uri() {
        let creds = Credentials::new("admin", "secret");
        let server = ServerAuth::new("camrouter", creds.clone());
        let nonce = "00112233445566778899aabbccddeeff";
        let mut client = ClientAuth::from_www_authenticate(
            creds,
            server.challenges(Some(nonce)).iter().map(String::as_str),
            "",
        )
        .unwrap();
        let h = client.authorization("DESCRIBE", "rtsp://127.0.0.1:8554/a");
        let ok = |uri: &str| server.verify(Some(&h), "DESCRIBE", uri, Some(nonce));
        // The attack: the answer for /a replayed for /b on the same connection.
        assert_eq!(ok("rtsp://127.0.0.1:8554/b"), Err(AuthError::UriMismatch));
        assert_eq!(ok("rtsp://127.0.0.1:8554/a/b"), Err(AuthError::UriMismatch));
        assert_eq!(
            ok("rtsp://127.0.0.1:8554/a?audio"),
            Err(AuthError::UriMismatch)
        );
        assert_eq!(ok("rtsp://127.0.0.1:8554/"), Err(AuthError::UriMismatch));
        assert_eq!(ok("*"), Err(AuthError::UriMismatch));
        // Spellings of the same resource that clients use.
        assert_eq!(ok("rtsp://127.0.0.1:8554/a"), Ok(()));
        assert_eq!(ok("rtsp://127.0.0.1:8554/a/"), Ok(()));
        assert_eq!(ok("rtsp://localhost:8554/a"), Ok(()));
        assert_eq!(ok("/a"), Ok(()));
        // SETUP on a control URL: the client answers for that URL.
        let h = client.authorization("SETUP", "rtsp://127.0.0.1:8554/a?video/trackID=0");
        assert_eq!(
            server.verify(
                Some(&h),
                "SETUP",
                "rtsp://127.0.0.1:8554/a?video/trackID=0",
                Some(nonce)
            ),
            Ok(())
        );
        assert_eq!(
            server.verify(
                Some(&h),
                "SETUP",
                "rtsp://127.0.0.1:8554/b?video/trackID=0",
                Some(nonce)
            ),
            Err(AuthError::UriMismatch)
        );
        assert!(same_resource("rtsp://h:1?x", "/?x"));
        assert!(!same_resource("rtsp://h/a%20b", "rtsp://h/a b"));
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
