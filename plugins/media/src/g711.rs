//! G.711 compression (ITU-T G.711, the reference `linear2alaw` and
//! `linear2ulaw`), for PCM sent where only A-law or mu-law is taken
//! (WebRTC). The expansions are in [`crate::flac`].

/// Segment ends: A-law on a 13-bit magnitude, mu-law on a biased 14-bit one.
const SEG_A: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
const SEG_U: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

fn segment(ends: &[i32; 8], v: i32) -> usize {
    ends.iter().position(|&e| v <= e).unwrap_or(8)
}

/// 16-bit linear PCM to an A-law byte.
pub fn s16_to_alaw(s: i16) -> u8 {
    let mut v = i32::from(s) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(&SEG_A, v);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (a as u8) ^ mask
}

/// 16-bit linear PCM to a mu-law byte.
pub fn s16_to_ulaw(s: i16) -> u8 {
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let mut v = i32::from(s) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(CLIP) + BIAS;
    let seg = segment(&SEG_U, v);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
    (u as u8) ^ mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flac::{alaw_to_s16, ulaw_to_s16};

    #[test]
    fn every_code_survives_expand_then_compress() {
        for b in 0..=255u8 {
            assert_eq!(s16_to_alaw(alaw_to_s16(b)), b, "A-law {b:#x}");
            // mu-law has two codes for zero (0x7F and 0xFF): both expand to 0.
            if b != 0x7F {
                assert_eq!(s16_to_ulaw(ulaw_to_s16(b)), b, "mu-law {b:#x}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_within_a_step() {
        for s in (i16::MIN..=i16::MAX).step_by(97) {
            let a = i32::from(alaw_to_s16(s16_to_alaw(s)));
            let u = i32::from(ulaw_to_s16(s16_to_ulaw(s)));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!((a - i32::from(s)).abs() <= tol, "A-law {s} -> {a}");
            assert!((u - i32::from(s)).abs() <= tol.max(40), "mu-law {s} -> {u}");
        }
    }
}
