//! Turns fuzz input into a sequence of RTP packets so the fuzzer does not
//! have to learn the RTP header. Each record is `ctrl len payload[len]`:
//! ctrl bit 0 = marker, bits 1..3 = sequence step (1 = in order, 0 =
//! duplicate, >1 = gap), bits 4..7 = timestamp step in units of 3000
//! (0 = same frame). The sequence starts just below the wrap.
use camrouter_media::RtpHeader;

pub fn packets(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut seq: u16 = 65530;
    let mut ts: u32 = u32::MAX - 5000;
    while let [ctrl, len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (payload, after) = rest.split_at(n);
        seq = seq.wrapping_add(u16::from((ctrl >> 1) & 7));
        ts = ts.wrapping_add(u32::from(ctrl >> 4) * 3000);
        let mut p = Vec::with_capacity(12 + n);
        RtpHeader {
            marker: ctrl & 1 != 0,
            payload_type: 96,
            sequence: seq,
            timestamp: ts,
            ssrc: 1,
        }
        .write(&mut p);
        p.extend_from_slice(payload);
        out.push(p);
        data = after;
    }
    out
}
