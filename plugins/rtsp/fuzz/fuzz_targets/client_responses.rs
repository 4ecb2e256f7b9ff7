//! Arbitrary bytes as server replies to play and record clients: no panics, bounded queues.
#![no_main]
use camrouter_rtsp::proto::client::{Client, ClientConfig, ClientEvent, MediaSetup};
use libfuzzer_sys::fuzz_target;

fn drive(mut c: Client, data: &[u8], chunk: usize) {
    let mut now = 0u64;
    for part in data.chunks(chunk) {
        now += 10_000;
        c.handle_timeout(now);
        if c.feed(part).is_err() {
            return;
        }
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::Described { .. } = ev {
                let _ = c.setup(vec![
                    MediaSetup::tcp("trackID=1"),
                    MediaSetup::udp("a", 5000, 5001),
                ]);
            }
        }
        let mut n = 0;
        while c.poll_transmit().is_some() {
            n += 1;
        }
        assert!(n < 10_000);
        let _ = c.keepalive_due(now);
        let _ = c.next_timeout();
    }
    c.teardown();
}

fuzz_target!(|data: &[u8]| {
    let chunk = data.first().map_or(1, |b| *b as usize % 64 + 1);
    let play = ClientConfig {
        backchannel: data.len() % 2 == 0,
        ..ClientConfig::play("rtsp://u:p@cam:554/live")
    };
    drive(Client::new(play).unwrap(), data, chunk);
    let rec = ClientConfig::record(
        "rtsp://u:p@srv/pub",
        b"v=0\r\n".to_vec(),
        vec![MediaSetup::tcp("streamid=0")],
    );
    drive(Client::new(rec).unwrap(), data, chunk);
});
