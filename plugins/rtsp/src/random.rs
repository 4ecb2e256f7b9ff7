//! Randomness for session ids, nonces and SSRCs.

pub fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness: still unique enough for ids, never for secrets
        // (nonces only guard against replay here).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
}

pub fn hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
