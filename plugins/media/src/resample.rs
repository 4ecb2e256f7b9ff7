//! Sample-rate conversion for transcoded audio (a camera's 16 kHz AAC to
//! Opus's 48 kHz, 48 kHz PCM to G.711's 8 kHz): a rational polyphase
//! resampler with a Blackman-windowed sinc low-pass, mono, streaming (any
//! chunk sizes; the filter's state carries over between calls).
//!
//! The ratio `to/from` is reduced to `L/M`; the input is (conceptually)
//! upsampled by `L`, low-passed below the lower of the two Nyquist
//! frequencies, and every `M`-th sample kept. Only the `TAPS` products that
//! land on real input samples are computed, so an output sample costs
//! `TAPS` multiply-adds per sample of the lower rate.

/// Filter length in samples of the lower rate. 32 keeps the transition
/// band narrow enough that a 3.4 kHz voice band survives the 48 → 8 kHz
/// conversion while what would alias is cut by > 40 dB; downsampling by
/// `k` reads `k` times as many input samples per output sample.
const TAPS: usize = 32;

/// Pass band edge as a fraction of the lower Nyquist frequency: the
/// transition band sits just below it, so nothing aliases back.
const CUTOFF: f64 = 0.9;

/// One channel's rate converter. Build one per stream and feed it every
/// chunk in order; [`reset`](Self::reset) after a gap.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    up: u64,
    down: u64,
    /// Input samples each output sample reads.
    taps: usize,
    /// `coeffs[p * taps + j]`: the filter's tap `p + j * up`.
    coeffs: Vec<f32>,
    /// Input not yet consumed, oldest first: `taps - 1` samples of history
    /// then what is new. `buf[0]` is input sample number `base`.
    buf: Vec<f32>,
    base: u64,
    /// Next output sample number.
    next: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz. `None` for a zero rate.
    pub fn new(from: u32, to: u32) -> Option<Resampler> {
        if from == 0 || to == 0 {
            return None;
        }
        let g = gcd(u64::from(from), u64::from(to));
        let (up, down) = (u64::from(to) / g, u64::from(from) / g);
        let taps = TAPS * (down.div_ceil(up) as usize);
        let n = taps * up as usize;
        // Cutoff in cycles per upsampled sample.
        let fc = CUTOFF * 0.5 * f64::from(from.min(to)) / (f64::from(from) * up as f64);
        let mid = (n as f64 - 1.0) / 2.0;
        let mut h = vec![0f64; n];
        for (i, v) in h.iter_mut().enumerate() {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 2.0 * std::f64::consts::PI * i as f64 / (n as f64 - 1.0);
            let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
            // × up: upsampling by zero stuffing divides the level by `up`.
            *v = sinc * blackman * up as f64;
        }
        let mut coeffs = vec![0f32; n];
        for p in 0..up as usize {
            for j in 0..taps {
                coeffs[p * taps + j] = h[p + j * up as usize] as f32;
            }
        }
        let mut r = Resampler {
            from,
            to,
            up,
            down,
            taps,
            coeffs,
            buf: Vec::new(),
            base: 0,
            next: 0,
        };
        r.reset();
        Some(r)
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Forgets the history (after a gap in the input): the next chunk
    /// starts from silence.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.taps - 1, 0.0);
        self.base = 0;
        // Output m reads input floor(m·down/up) and the taps - 1 before it;
        // start where those are the zeros above plus the first real sample.
        self.next = ((self.taps as u64 - 1) * self.up).div_ceil(self.down);
    }

    /// Converts `input` and appends the output samples to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.up == self.down {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        let end = self.base + self.buf.len() as u64;
        loop {
            let t = self.next * self.down;
            let newest = t / self.up;
            if newest >= end {
                break;
            }
            let phase = (t % self.up) as usize;
            let n = self.taps;
            let taps = &self.coeffs[phase * n..(phase + 1) * n];
            // taps[j] weighs input newest - j.
            let at = (newest - self.base) as usize;
            let window = &self.buf[at + 1 - n..=at];
            let acc: f32 = window.iter().rev().zip(taps).map(|(x, h)| x * h).sum();
            out.push(acc);
            self.next += 1;
        }
        // Keep what the next output still reads.
        let needed = (self.next * self.down / self.up + 1).saturating_sub(self.taps as u64);
        let drop = needed.saturating_sub(self.base).min(self.buf.len() as u64) as usize;
        self.buf.drain(..drop);
        self.base += drop as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as f32
            })
            .collect()
    }

    /// Amplitude of `freq` in `x` (a single DFT bin), on the same 0..1
    /// scale as the sine's peak.
    fn level(x: &[f32], freq: f64, rate: u32) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, v) in x.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate);
            re += f64::from(*v) * a.cos();
            im += f64::from(*v) * a.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn run(r: &mut Resampler, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process(c, &mut out);
        }
        out
    }

    #[test]
    fn keeps_a_tone_and_its_level_across_rates() {
        for (from, to) in [
            (16000, 48000),
            (44100, 48000),
            (8000, 48000),
            (48000, 8000),
            (22050, 8000),
            (16000, 8000),
        ] {
            let mut r = Resampler::new(from, to).unwrap();
            let input = sine(440.0, from, from as usize); // one second
            let out = run(&mut r, &input, 1024);
            let expect = to as usize;
            assert!(
                out.len().abs_diff(expect) <= TAPS * 8,
                "{from}->{to}: {} samples",
                out.len()
            );
            // Skip the filter's start-up.
            let tail = &out[out.len() / 4..];
            let l = level(tail, 440.0, to);
            assert!((l - 0.5).abs() < 0.02, "{from}->{to}: 440 Hz level {l}");
            // Nothing at another frequency.
            assert!(level(tail, 1000.0, to) < 0.01, "{from}->{to}");
        }
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input = sine(440.0, 44100, 20000);
        let a = run(&mut Resampler::new(44100, 8000).unwrap(), &input, 20000);
        let b = run(&mut Resampler::new(44100, 8000).unwrap(), &input, 7);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    }

    #[test]
    fn downsampling_cuts_what_the_lower_rate_cannot_carry() {
        // 6 kHz at 48 kHz would alias to 2 kHz at 8 kHz.
        let mut r = Resampler::new(48000, 8000).unwrap();
        let out = run(&mut r, &sine(6000.0, 48000, 48000), 960);
        let tail = &out[out.len() / 4..];
        assert!(
            level(tail, 2000.0, 8000) < 0.005,
            "{}",
            level(tail, 2000.0, 8000)
        );
    }

    #[test]
    fn same_rate_passes_through_and_zero_is_refused() {
        let mut r = Resampler::new(8000, 8000).unwrap();
        let mut out = Vec::new();
        r.process(&[0.25, -0.5], &mut out);
        assert_eq!(out, [0.25, -0.5]);
        assert!(Resampler::new(0, 8000).is_none());
    }
}
