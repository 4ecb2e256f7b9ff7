//! The server's command flow after a handshake, on arbitrary chunk bytes.
#![no_main]
use camrouter_rtmp::session::ServerSession;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = ServerSession::new();
    for piece in data.chunks(97) {
        if s.push(piece).is_err() {
            return;
        }
        s.out.clear();
    }
});
