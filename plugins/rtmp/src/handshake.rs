//! The RTMP handshake (§5.2). We answer the simple variant: S1 carries a
//! zero version field, which tells a client sending the digest variant
//! (Flash, ffmpeg, OBS) not to validate our digest, and S2 echoes C1 as both
//! variants accept. C2 is read and not checked, since digest clients fill it
//! with their own scheme.

pub const SIZE: usize = 1536;

/// Server side: feed bytes until [`done`](Self::done).
#[derive(Debug, Default)]
pub struct ServerHandshake {
    buf: Vec<u8>,
    replied: bool,
    done: bool,
}

impl ServerHandshake {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// Takes bytes; returns what to send back (S0+S1+S2 once C0+C1 are in)
    /// and, once C2 is in, the bytes that followed it (the first chunks).
    pub fn push(&mut self, data: &[u8]) -> Result<(Vec<u8>, Vec<u8>), crate::Error> {
        self.buf.extend_from_slice(data);
        let mut reply = Vec::new();
        if !self.replied && self.buf.len() > SIZE {
            if self.buf[0] != 3 {
                return Err(crate::Error::Handshake(
                    "version is not 3 (RTMPE is not supported)",
                ));
            }
            reply.reserve(1 + 2 * SIZE);
            reply.push(3);
            // S1: time, zero version, then filler.
            reply.extend_from_slice(&[0; 8]);
            reply.extend((0..SIZE - 8).map(|i| (i * 7 + 13) as u8));
            reply.extend_from_slice(&self.buf[1..=SIZE]);
            self.replied = true;
        }
        let mut rest = Vec::new();
        if self.replied && !self.done && self.buf.len() > 2 * SIZE {
            self.done = true;
            rest = self.buf.split_off(1 + 2 * SIZE);
            self.buf = Vec::new();
        }
        Ok((reply, rest))
    }
}

/// Client side: C0+C1 to send first.
pub fn client_hello() -> Vec<u8> {
    let mut b = vec![3];
    b.extend_from_slice(&[0; 8]);
    b.extend((0..SIZE - 8).map(|i| (i * 11 + 5) as u8));
    b
}

/// C2 to send, and the bytes that came after S2.
pub type ClientReply = (Vec<u8>, Vec<u8>);

/// Client side: once S0+S1+S2 are in, C2 (the echo of S1) and the bytes
/// after S2.
pub fn client_reply(buf: &[u8]) -> Result<Option<ClientReply>, crate::Error> {
    if buf.len() < 1 + 2 * SIZE {
        return Ok(None);
    }
    if buf[0] != 3 {
        return Err(crate::Error::Handshake("server version is not 3"));
    }
    Ok(Some((buf[1..=SIZE].to_vec(), buf[1 + 2 * SIZE..].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_and_hands_over_the_rest() {
        let mut s = ServerHandshake::new();
        let c = client_hello();
        let (reply, rest) = s.push(&c[..100]).unwrap();
        assert!(reply.is_empty() && rest.is_empty());
        let (reply, _) = s.push(&c[100..]).unwrap();
        assert_eq!(reply.len(), 1 + 2 * SIZE);
        assert_eq!(&reply[1 + SIZE..], &c[1..], "S2 echoes C1");
        let (c2, after) = client_reply(&reply).unwrap().unwrap();
        assert!(after.is_empty());
        let mut tail = c2.clone();
        tail.extend_from_slice(b"chunks");
        let (_, rest) = s.push(&tail).unwrap();
        assert!(s.done());
        assert_eq!(rest, b"chunks");
    }

    #[test]
    fn refuses_other_versions() {
        let mut s = ServerHandshake::new();
        let mut c = client_hello();
        c[0] = 6;
        assert!(s.push(&c).is_err());
    }
}
