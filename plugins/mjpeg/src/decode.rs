//! H.264 access units to JPEG in-process (DESIGN §11): Cisco's openh264
//! decodes, a nearest-neighbour sampler scales and rotates the YUV 4:2:0
//! picture, and jpeg-encoder writes the JPEG. Decoding is single-threaded
//! and takes milliseconds: callers run it on a blocking thread.

use camrouter_media::annexb::avcc_units;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::params::{Rotate, Shape};

/// JPEG quality (1–100); close to what ffmpeg's `-q:v 5` gives for the size.
const QUALITY: u8 = 80;
/// Largest side we scale to, whatever the client asks (memory per picture).
pub(crate) const MAX_SIDE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("h264: {0}")]
    Bitstream(String),
    #[error("h264: the access unit gave no picture")]
    NoPicture,
    #[error("jpeg: {0}")]
    Encode(String),
}

/// One stream's decoder. Keeping it between snapshots saves the buffer
/// allocation a fresh decoder pays (~20 ms at 1080p).
pub struct H264ToJpeg {
    decoder: Option<Decoder>,
    annexb: Vec<u8>,
    streaming: bool,
}

impl Default for H264ToJpeg {
    fn default() -> Self {
        Self::snapshots()
    }
}

impl H264ToJpeg {
    /// For single keyframes: each one is flushed out of the decoder at once.
    pub fn snapshots() -> Self {
        H264ToJpeg {
            decoder: None,
            annexb: Vec::new(),
            streaming: false,
        }
    }

    /// For consecutive frames: no flush after each one, because a flush
    /// empties the reorder buffer that B-frames need (openh264 then fails
    /// every frame until the next IDR).
    pub fn stream() -> Self {
        H264ToJpeg {
            streaming: true,
            ..Self::snapshots()
        }
    }

    /// Decodes one access unit (4-byte length-prefixed NAL units) after the
    /// parameter sets in `extradata` (same form; may be empty when the unit
    /// carries them in band) and returns the picture as a JPEG, or `None`
    /// when the decoder needs more units first (a non-IDR frame right after a
    /// reset). `encode: false` only feeds the decoder (frames nobody waits for).
    pub fn decode(
        &mut self,
        extradata: &[u8],
        au: &[u8],
        shape: &Shape,
        encode: bool,
    ) -> Result<Option<Vec<u8>>, DecodeError> {
        self.annexb.clear();
        for nal in avcc_units(extradata).chain(avcc_units(au)) {
            let nal = nal.map_err(|e| DecodeError::Bitstream(e.to_string()))?;
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(nal);
        }
        if self.decoder.is_none() {
            let flush = if self.streaming {
                Flush::NoFlush
            } else {
                Flush::Flush
            };
            let config = DecoderConfig::new().flush_after_decode(flush);
            self.decoder = Some(
                Decoder::with_api_config(OpenH264API::from_source(), config)
                    .map_err(|e| DecodeError::Bitstream(e.to_string()))?,
            );
        }
        let Some(decoder) = self.decoder.as_mut() else {
            return Err(DecodeError::NoPicture);
        };
        let started = std::time::Instant::now();
        match decoder.decode(&self.annexb) {
            Ok(Some(yuv)) => {
                if !encode {
                    return Ok(None);
                }
                let decoded = started.elapsed();
                let jpeg = encode_yuv(&yuv, shape)?;
                tracing::trace!(
                    decode_us = decoded.as_micros() as u64,
                    encode_us = (started.elapsed() - decoded).as_micros() as u64,
                    "h264 to jpeg"
                );
                Ok(Some(jpeg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // A decoder that saw a broken unit may keep bad state; the next
                // IDR starts a fresh one.
                self.decoder = None;
                Err(DecodeError::Bitstream(e.to_string()))
            }
        }
    }
}

/// The output size for a source of `w`×`h`: one given side keeps the aspect
/// ratio (ffmpeg's `scale=W:-1`), both give exactly that, none the source.
/// Returns the size before rotation.
pub fn scaled_size(w: u32, h: u32, shape: &Shape) -> (u32, u32) {
    let cap = |v: u32| v.clamp(1, MAX_SIDE.min(w.max(h).saturating_mul(2)).max(1));
    let (ow, oh) = match (shape.width, shape.height) {
        (Some(ow), Some(oh)) => (ow, oh),
        (Some(ow), None) => (
            ow,
            ((h as u64 * ow as u64 + w as u64 / 2) / w.max(1) as u64) as u32,
        ),
        (None, Some(oh)) => (
            ((w as u64 * oh as u64 + h as u64 / 2) / h.max(1) as u64) as u32,
            oh,
        ),
        (None, None) => (w, h),
    };
    (cap(ow), cap(oh))
}

/// A scaled, rotated view of a YUV 4:2:0 picture, read row by row by the
/// JPEG encoder.
struct View<'a> {
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
    strides: (usize, usize, usize),
    rotate: Rotate,
    /// Output size (after rotation).
    out: (u16, u16),
    /// Pre-rotation size, for mirroring coordinates.
    scaled: (usize, usize),
    /// Source column of each pre-rotation column, source row of each row.
    xmap: Vec<usize>,
    ymap: Vec<usize>,
}

fn axis_map(out: usize, src: usize) -> Vec<usize> {
    // Sample the centre of each output pixel's footprint.
    (0..out)
        .map(|i| ((2 * i + 1) * src / (2 * out)).min(src.saturating_sub(1)))
        .collect()
}

impl jpeg_encoder::ImageBuffer for View<'_> {
    fn get_jpeg_color_type(&self) -> jpeg_encoder::JpegColorType {
        jpeg_encoder::JpegColorType::Ycbcr
    }
    fn width(&self) -> u16 {
        self.out.0
    }
    fn height(&self) -> u16 {
        self.out.1
    }
    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        let (sw, sh) = self.scaled;
        let row = row as usize;
        if self.rotate == Rotate::None {
            // The common case, row-wise: `extend` over a slice reserves once
            // instead of checking capacity per pixel (half the encode time
            // at 1080p).
            let y = self.ymap[row];
            let (yr, ur, vr) = (
                &self.y[y * self.strides.0..],
                &self.u[(y / 2) * self.strides.1..],
                &self.v[(y / 2) * self.strides.2..],
            );
            buffers[0].extend(self.xmap.iter().map(|&x| yr[x]));
            buffers[1].extend(self.xmap.iter().map(|&x| ur[x / 2]));
            buffers[2].extend(self.xmap.iter().map(|&x| vr[x / 2]));
            return;
        }
        for col in 0..self.out.0 as usize {
            // Output pixel → pre-rotation pixel (u, v) → source pixel.
            let (u, v) = match self.rotate {
                Rotate::None => (col, row),
                Rotate::Cw90 => (row, sh - 1 - col),
                Rotate::Cw180 => (sw - 1 - col, sh - 1 - row),
                Rotate::Cw270 => (sw - 1 - row, col),
            };
            let (x, y) = (self.xmap[u], self.ymap[v]);
            buffers[0].push(self.y[y * self.strides.0 + x]);
            buffers[1].push(self.u[(y / 2) * self.strides.1 + x / 2]);
            buffers[2].push(self.v[(y / 2) * self.strides.2 + x / 2]);
        }
    }
}

fn encode_yuv(yuv: &impl YUVSource, shape: &Shape) -> Result<Vec<u8>, DecodeError> {
    let (w, h) = yuv.dimensions();
    let (sw, sh) = scaled_size(w as u32, h as u32, shape);
    let (sw, sh) = (sw as usize, sh as usize);
    let out = match shape.rotate {
        Rotate::None | Rotate::Cw180 => (sw as u16, sh as u16),
        Rotate::Cw90 | Rotate::Cw270 => (sh as u16, sw as u16),
    };
    let view = View {
        y: yuv.y(),
        u: yuv.u(),
        v: yuv.v(),
        strides: yuv.strides(),
        rotate: shape.rotate,
        out,
        scaled: (sw, sh),
        xmap: axis_map(sw, w),
        ymap: axis_map(sh, h),
    };
    let mut jpeg = Vec::with_capacity(sw * sh / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, QUALITY);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode_image(view)
        .map_err(|e| DecodeError::Encode(e.to_string()))?;
    Ok(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(width: Option<u32>, height: Option<u32>) -> Shape {
        Shape {
            width,
            height,
            rotate: Rotate::None,
        }
    }

    #[test]
    fn one_side_keeps_the_aspect_ratio() {
        assert_eq!(scaled_size(640, 360, &shape(Some(320), None)), (320, 180));
        assert_eq!(scaled_size(640, 360, &shape(None, Some(180))), (320, 180));
        assert_eq!(
            scaled_size(1920, 1080, &shape(Some(100), Some(100))),
            (100, 100)
        );
        assert_eq!(scaled_size(640, 360, &shape(None, None)), (640, 360));
        // A silly request is capped rather than allocating gigabytes.
        assert_eq!(scaled_size(640, 360, &shape(Some(100_000), None)).0, 1280);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut d = H264ToJpeg::snapshots();
        let s = shape(None, None);
        assert!(d.decode(&[], &[0, 0, 0, 9, 1, 2], &s, true).is_err());
        // Length-prefixed junk: the decoder rejects or skips it.
        let junk = [0u8, 0, 0, 4, 0x65, 0xff, 0x00, 0x13];
        assert!(!matches!(d.decode(&[], &junk, &s, true), Ok(Some(_))));
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    struct Planes {
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        w: usize,
        h: usize,
    }

    impl YUVSource for Planes {
        fn dimensions(&self) -> (usize, usize) {
            (self.w, self.h)
        }
        fn strides(&self) -> (usize, usize, usize) {
            (self.w, self.w / 2, self.w / 2)
        }
        fn y(&self) -> &[u8] {
            &self.y
        }
        fn u(&self) -> &[u8] {
            &self.u
        }
        fn v(&self) -> &[u8] {
            &self.v
        }
    }

    /// Every shape of a 1080p picture encodes; the best of 10 encodes is
    /// printed, a figure for `cargo test -p camrouter-mjpeg --release --
    /// --nocapture encode_1080p` (the minimum is what the code costs on an
    /// idle core), never asserted.
    #[test]
    fn encode_1080p() {
        let (w, h) = (1920, 1080);
        let p = Planes {
            y: (0..w * h).map(|i| (i % 251) as u8).collect(),
            u: (0..w * h / 4).map(|i| (i % 241) as u8).collect(),
            v: (0..w * h / 4).map(|i| (i % 239) as u8).collect(),
            w,
            h,
        };
        for (name, shape) in [
            ("full", Shape::default()),
            (
                "width=320",
                Shape {
                    width: Some(320),
                    ..Shape::default()
                },
            ),
            (
                "rotate=90",
                Shape {
                    rotate: Rotate::Cw90,
                    ..Shape::default()
                },
            ),
        ] {
            let best = (0..10)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let j = encode_yuv(&p, &shape).unwrap();
                    assert!(j.len() > 1000);
                    t.elapsed()
                })
                .min()
                .unwrap();
            println!("encode 1080p {name}: {best:?}");
        }
        let inter: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        let best = (0..10)
            .map(|_| {
                let t = std::time::Instant::now();
                let mut j = Vec::new();
                let mut e = jpeg_encoder::Encoder::new(&mut j, QUALITY);
                e.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
                e.encode(&inter, w as u16, h as u16, jpeg_encoder::ColorType::Ycbcr)
                    .unwrap();
                t.elapsed()
            })
            .min()
            .unwrap();
        println!("encode 1080p interleaved baseline: {best:?}");
    }
}
