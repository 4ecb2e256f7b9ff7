//! Challenge parsing must not panic, and our own answer to any supported Digest challenge
//! must verify on our server side, for the URI it was computed for only.
#![no_main]
use camrouter_rtsp::proto::auth::{
    parse_challenges, select_challenge, Challenge, ClientAuth, Credentials, ServerAuth,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse_challenges(&s);
    let creds = Credentials::new("user", "pa\"ss");
    let uri = "rtsp://h/s";
    if let Some(c) = select_challenge(s.split('\n')) {
        let mut a = ClientAuth::new(creds.clone(), c.clone(), "cn").expect("supported");
        let h = a.authorization("PLAY", uri);
        if let Challenge::Digest(d) = &c {
            let clean = |v: &str| !v.chars().any(|c| c.is_control());
            if clean(&d.realm) && clean(&d.nonce) {
                let server = ServerAuth::new(d.realm.clone(), creds.clone());
                assert_eq!(
                    server.verify(Some(&h), "PLAY", uri, Some(&d.nonce)),
                    Ok(()),
                    "{h}"
                );
            }
        }
    }
    // Arbitrary Authorization values against the server.
    let server = ServerAuth::new("realm", creds.clone());
    let _ = server.verify(Some(&s), "PLAY", uri, Some("nonce"));
    // Our own answer for one URI never authorizes another.
    if let Some(c) = select_challenge(s.split('\n')) {
        if let Challenge::Digest(d) = &c {
            let mut a = ClientAuth::new(creds.clone(), c.clone(), "cn").expect("supported");
            let h = a.authorization("PLAY", "rtsp://h/a");
            let server = ServerAuth::new(d.realm.clone(), creds.clone());
            assert!(server
                .verify(Some(&h), "PLAY", "rtsp://h/b", Some(&d.nonce))
                .is_err());
        }
    }
});
