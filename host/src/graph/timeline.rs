//! One output timeline per consumer track across producer generations and
//! producers (DESIGN.md §5).
//!
//! A camera that reboots, an exec command that respawns or a publisher that
//! reconnects starts a new producer generation with a fresh timestamp base
//! (RTP timestamps start at a random value). Passed through, a reader's
//! timeline jumps by hours and recordings end. Here each track's timestamps
//! are shifted so that the new generation continues where the old one
//! stopped, plus the wall-clock time of the outage; video resumes at a
//! keyframe, which gets the new generation's parameter sets in band when it
//! carries none (a camera may come back with another resolution). The
//! timeline belongs to the consumer's route (a sink of a producer track), so
//! it moves with the consumer when a publisher reconnects or the stream
//! fails over to another source.
//!
//! Sans-IO: the caller passes the generation and the time, so that this is
//! tested without a clock.

use std::borrow::Cow;

use abi_stable::std_types::{RArc, RVec};
use camrouter_plugin_api::{MediaKind, Packet, FLAG_DISCONTINUITY};

/// Which producer, and which of its generations, a packet comes from.
pub type Epoch = (u64, u64);

#[derive(Default)]
pub struct Timeline {
    generation: Epoch,
    /// Added to the current generation's pts and dts.
    offset: i64,
    /// The last output dts, and when (host clock, µs) it was passed.
    last_dts: i64,
    last_at_us: u64,
    started: bool,
    /// Video of a new generation waits for its first keyframe.
    wait_keyframe: bool,
    /// The next packet out is flagged as a discontinuity.
    mark: bool,
}

/// What the parameter sets look like, to tell whether a keyframe has them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamSets {
    H264,
    H265,
    None,
}

impl ParamSets {
    pub fn for_codec(name: &str) -> ParamSets {
        match name {
            "H264" => ParamSets::H264,
            "H265" => ParamSets::H265,
            _ => ParamSets::None,
        }
    }

    fn is_sps(self, nal_header: u8) -> bool {
        match self {
            ParamSets::H264 => nal_header & 0x1f == 7,
            ParamSets::H265 => (nal_header >> 1) & 0x3f == 33,
            ParamSets::None => true,
        }
    }
}

impl Timeline {
    /// The packet to deliver for `packet` of (producer, generation)
    /// `generation`, arriving at `now_us` (host clock): rebased, or `None`
    /// while a new generation's video waits for a keyframe. `extradata`:
    /// the track's current parameter sets (length-prefixed NAL units).
    #[allow(clippy::too_many_arguments)]
    pub fn apply<'a>(
        &mut self,
        generation: Epoch,
        kind: MediaKind,
        clock_rate: u32,
        params: ParamSets,
        extradata: &[u8],
        now_us: u64,
        packet: &'a Packet,
    ) -> Option<Cow<'a, Packet>> {
        if !self.started {
            // The first generation keeps its own timestamps.
            self.started = true;
            self.generation = generation;
        } else if generation != self.generation {
            let clock = if clock_rate == 0 { 90_000 } else { clock_rate } as i128;
            let gap_us = now_us.saturating_sub(self.last_at_us) as i128;
            let expected = self.last_dts as i128 + (gap_us * clock / 1_000_000).max(1);
            self.offset = (expected - packet.dts as i128) as i64;
            self.generation = generation;
            self.wait_keyframe = kind == MediaKind::Video;
            self.mark = true;
        }
        if self.wait_keyframe {
            if !packet.is_keyframe() {
                return None;
            }
            self.wait_keyframe = false;
        }
        let dts = packet.dts.wrapping_add(self.offset);
        self.last_dts = dts;
        self.last_at_us = now_us;
        let add_params = self.mark
            && packet.is_keyframe()
            && !extradata.is_empty()
            && !has_sps(&packet.payload, params);
        if self.offset == 0 && !self.mark {
            return Some(Cow::Borrowed(packet));
        }
        let mut out = packet.clone();
        out.pts = packet.pts.wrapping_add(self.offset);
        out.dts = dts;
        if self.mark {
            out.flags |= FLAG_DISCONTINUITY;
            self.mark = false;
        }
        if add_params {
            let mut payload = Vec::with_capacity(extradata.len() + packet.payload.len());
            payload.extend_from_slice(extradata);
            payload.extend_from_slice(&packet.payload);
            out.payload = RArc::new(RVec::from(payload));
        }
        Some(Cow::Owned(out))
    }
}

/// Whether a frame of 4-byte length-prefixed NAL units carries an SPS.
fn has_sps(payload: &[u8], params: ParamSets) -> bool {
    if params == ParamSets::None {
        return true;
    }
    let mut rest = payload;
    while rest.len() > 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len) else {
            return false;
        };
        if nal.first().is_some_and(|h| params.is_sps(*h)) {
            return true;
        }
        rest = &rest[4 + len..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use camrouter_plugin_api::FLAG_KEYFRAME;

    fn pkt(dts: i64, key: bool, payload: &[u8]) -> Packet {
        Packet {
            track: 0,
            flags: if key { FLAG_KEYFRAME } else { 0 },
            pts: dts + 3000,
            dts,
            received_at_us: 0,
            payload: RArc::new(RVec::from(payload.to_vec())),
        }
    }

    fn nal(header: u8) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 2, header, 0xaa];
        v.shrink_to_fit();
        v
    }

    fn run(tl: &mut Timeline, g: u64, kind: MediaKind, now_ms: u64, p: &Packet) -> Option<Packet> {
        tl.apply((7, g), kind, 90_000, ParamSets::H264, &[], now_ms * 1000, p)
            .map(Cow::into_owned)
    }

    #[test]
    fn first_generation_passes_through_untouched() {
        let mut tl = Timeline::default();
        let p = pkt(1_000_000, true, &nal(0x65));
        let out = tl
            .apply(
                (7, 1),
                MediaKind::Video,
                90_000,
                ParamSets::H264,
                &[],
                0,
                &p,
            )
            .unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
    }

    #[test]
    fn a_restart_continues_with_the_outage_as_gap() {
        let mut tl = Timeline::default();
        // 25 fps from a camera whose timestamps start at 1e9.
        for i in 0..50 {
            let p = pkt(1_000_000_000 + i * 3600, i == 0, &nal(0x41));
            run(&mut tl, 1, MediaKind::Video, i as u64 * 40, &p).unwrap();
        }
        let last = 1_000_000_000 + 49 * 3600;
        // Back 6 s after the last frame, with a random new base; the first
        // frames before a keyframe are dropped.
        assert!(run(
            &mut tl,
            3,
            MediaKind::Video,
            49 * 40 + 6000,
            &pkt(77, false, &nal(0x41))
        )
        .is_none());
        let k = run(
            &mut tl,
            3,
            MediaKind::Video,
            49 * 40 + 6040,
            &pkt(77 + 3600, true, &nal(0x65)),
        )
        .unwrap();
        // The gap was measured at the first packet of the generation (6 s).
        assert_eq!(k.dts, last + 6 * 90_000 + 3600);
        assert_eq!(k.pts, k.dts + 3000);
        assert!(k.flags & FLAG_DISCONTINUITY != 0);
        let n = run(
            &mut tl,
            3,
            MediaKind::Video,
            49 * 40 + 6080,
            &pkt(77 + 7200, false, &nal(0x41)),
        )
        .unwrap();
        assert_eq!(n.dts, k.dts + 3600);
        assert!(n.flags & FLAG_DISCONTINUITY == 0);
    }

    #[test]
    fn audio_resumes_at_once() {
        let mut tl = Timeline::default();
        run(&mut tl, 1, MediaKind::Audio, 0, &pkt(5000, false, b"a")).unwrap();
        let b = pkt(9, false, b"b");
        let p = tl
            .apply(
                (7, 2),
                MediaKind::Audio,
                16_000,
                ParamSets::None,
                &[],
                2_000_000,
                &b,
            )
            .unwrap();
        assert_eq!(p.dts, 5000 + 32_000);
    }

    #[test]
    fn timestamps_stay_monotonic_when_the_clock_did_not_move() {
        let mut tl = Timeline::default();
        run(&mut tl, 1, MediaKind::Audio, 10, &pkt(5000, false, b"a")).unwrap();
        let p = run(&mut tl, 2, MediaKind::Audio, 10, &pkt(100_000, false, b"b")).unwrap();
        assert!(p.dts > 5000);
    }

    #[test]
    fn new_parameter_sets_go_in_band_before_a_keyframe_without_them() {
        let mut tl = Timeline::default();
        run(&mut tl, 1, MediaKind::Video, 0, &pkt(0, true, &nal(0x65))).unwrap();
        let mut params = nal(0x67);
        params.extend(nal(0x68));
        let p = pkt(0, true, &nal(0x65));
        let k = tl
            .apply(
                (7, 2),
                MediaKind::Video,
                90_000,
                ParamSets::H264,
                &params,
                1_000_000,
                &p,
            )
            .unwrap()
            .into_owned();
        let mut want = params.clone();
        want.extend(nal(0x65));
        assert_eq!(k.payload.as_slice(), &want[..]);
        // A keyframe that has its own SPS is left as it is.
        let mut own = nal(0x67);
        own.extend(nal(0x65));
        let p = pkt(0, true, &own);
        let k = tl
            .apply(
                (7, 3),
                MediaKind::Video,
                90_000,
                ParamSets::H264,
                &params,
                2_000_000,
                &p,
            )
            .unwrap()
            .into_owned();
        assert_eq!(k.payload.as_slice(), &own[..]);
        // Within a generation, nothing is added.
        let p = pkt(3600, true, &nal(0x65));
        let k = tl
            .apply(
                (7, 3),
                MediaKind::Video,
                90_000,
                ParamSets::H264,
                &params,
                2_040_000,
                &p,
            )
            .unwrap();
        assert_eq!(k.payload.as_slice(), &nal(0x65)[..]);
    }

    #[test]
    fn h265_sps_is_recognised() {
        // VPS 32, SPS 33, PPS 34: header byte is type << 1.
        let mut f = nal(32 << 1);
        f.extend(nal(33 << 1));
        assert!(has_sps(&f, ParamSets::H265));
        assert!(!has_sps(&nal(19 << 1), ParamSets::H265));
        // A truncated NAL is not an SPS, and does not panic.
        assert!(!has_sps(&[0, 0, 0, 9, 0x67], ParamSets::H264));
    }
}
