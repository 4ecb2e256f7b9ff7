//! H.264 access units to JPEG in-process (DESIGN §11): Cisco's openh264
//! decodes, a nearest-neighbour sampler scales and rotates the YUV 4:2:0
//! picture, and jpeg-encoder writes the JPEG. Decoding is single-threaded
//! and takes milliseconds: callers run it on a blocking thread.

use camrouter_media::annexb::avcc_units;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::params::{Ascii, Output, Palette, Rotate, Shape};

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
                let jpeg = match shape.output {
                    Output::Jpeg => encode_yuv(&yuv, shape)?,
                    Output::Y4m => y4m_frame(&yuv, shape),
                    Output::Ascii(a) => ascii_frame(&yuv, shape, &a),
                };
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

/// The scaled, rotated view of a decoded picture the client asked for.
fn view<'a>(yuv: &'a impl YUVSource, shape: &Shape) -> View<'a> {
    let (w, h) = yuv.dimensions();
    let (sw, sh) = scaled_size(w as u32, h as u32, shape);
    let (sw, sh) = (sw as usize, sh as usize);
    let out = match shape.rotate {
        Rotate::None | Rotate::Cw180 => (sw as u16, sh as u16),
        Rotate::Cw90 | Rotate::Cw270 => (sh as u16, sw as u16),
    };
    View {
        y: yuv.y(),
        u: yuv.u(),
        v: yuv.v(),
        strides: yuv.strides(),
        rotate: shape.rotate,
        out,
        scaled: (sw, sh),
        xmap: axis_map(sw, w),
        ymap: axis_map(sh, h),
    }
}

/// The stream header of `stream.y4m` and `stream.ascii` at the start of
/// every picture they render; a client gets it once (see [`head_len`]).
const ASCII_CLEAR: &str = "\x1b[2J";

/// How many leading bytes of a rendered picture are the stream's header,
/// which a client needs only before its first picture: the `YUV4MPEG2`
/// line, or the terminal's clear-screen.
pub fn head_len(output: &Output, picture: &[u8]) -> usize {
    match output {
        Output::Jpeg => 0,
        Output::Y4m => picture
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1),
        Output::Ascii(_) => ASCII_CLEAR.len(),
    }
}

/// One `stream.y4m` picture: the stream header line, then `FRAME` and the
/// planes as decoded: YUV 4:2:0 with H.264's default chroma siting
/// (`C420mpeg2`, left) and no range flag (readers assume the limited range
/// cameras send). The frame rate is nominal: y4m has no timestamps.
fn y4m_frame(yuv: &impl YUVSource, shape: &Shape) -> Vec<u8> {
    use jpeg_encoder::ImageBuffer;
    let view = view(yuv, shape);
    let (w, h) = (usize::from(view.out.0), usize::from(view.out.1));
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let head = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420mpeg2\nFRAME\n");
    let mut out = Vec::with_capacity(head.len() + w * h + 2 * cw * ch);
    out.extend_from_slice(head.as_bytes());
    let mut u = Vec::with_capacity(cw * ch);
    let mut v = Vec::with_capacity(cw * ch);
    let mut rows: [Vec<u8>; 4] = Default::default();
    for row in 0..h {
        rows.iter_mut().for_each(Vec::clear);
        view.fill_buffers(row as u16, &mut rows);
        out.extend_from_slice(&rows[0]);
        if row % 2 == 0 {
            u.extend(rows[1].iter().step_by(2));
            v.extend(rows[2].iter().step_by(2));
        }
    }
    out.extend_from_slice(&u);
    out.extend_from_slice(&v);
    out
}

/// One `stream.ascii` picture (go2rtc's look): clear the screen (first
/// picture only), cursor home, a character per pixel from dark to bright,
/// optionally coloured, a line per row, colours reset.
fn ascii_frame(yuv: &impl YUVSource, shape: &Shape, style: &Ascii) -> Vec<u8> {
    use jpeg_encoder::ImageBuffer;
    use std::fmt::Write;
    let view = view(yuv, shape);
    let (w, h) = (usize::from(view.out.0), usize::from(view.out.1));
    let chars = style.text.chars();
    let mut out = String::with_capacity(ASCII_CLEAR.len() + 3 + (w + 1) * h);
    out.push_str(ASCII_CLEAR);
    out.push_str("\x1b[H");
    let mut rows: [Vec<u8>; 4] = Default::default();
    let (mut last_fg, mut last_bg) = (None, None);
    for row in 0..h {
        rows.iter_mut().for_each(Vec::clear);
        view.fill_buffers(row as u16, &mut rows);
        for ((&y, &cb), &cr) in rows[0].iter().zip(&rows[1]).zip(&rows[2]) {
            if style.color != Palette::None || style.back != Palette::None {
                let rgb = to_rgb(y, cb, cr);
                for (palette, base, last) in [
                    (style.color, 30, &mut last_fg),
                    (style.back, 40, &mut last_bg),
                ] {
                    let code = match palette {
                        Palette::None => continue,
                        Palette::Ansi8 => format!("{}", base + nearest(rgb, 8)),
                        Palette::Xterm256 => format!("{};5;{}", base + 8, nearest(rgb, 256)),
                        Palette::Rgb => format!("{};2;{};{};{}", base + 8, rgb.0, rgb.1, rgb.2),
                    };
                    if last.as_ref() != Some(&code) {
                        let _ = write!(out, "\x1b[{code}m");
                        *last = Some(code);
                    }
                }
            }
            out.push(chars[usize::from(y) * (chars.len() - 1) / 255]);
        }
        out.push('\n');
    }
    out.push_str("\x1b[0m");
    out.into_bytes()
}

/// Full-range BT.601 (JFIF) YCbCr to RGB.
fn to_rgb(y: u8, cb: u8, cr: u8) -> (u8, u8, u8) {
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let c = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    (
        c(y + 1.402 * cr),
        c(y - 0.344_136 * cb - 0.714_136 * cr),
        c(y + 1.772 * cb),
    )
}

/// xterm's colour `i` (0..=255): 16 system colours, a 6×6×6 cube, 24 greys.
fn xterm_color(i: u8) -> (u8, u8, u8) {
    const SYSTEM: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
        (128, 0, 128),
        (0, 128, 128),
        (192, 192, 192),
        (128, 128, 128),
        (255, 0, 0),
        (0, 255, 0),
        (255, 255, 0),
        (0, 0, 255),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
    ];
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    match i {
        0..=15 => SYSTEM[usize::from(i)],
        16..=231 => {
            let i = usize::from(i - 16);
            (LEVELS[i / 36], LEVELS[(i / 6) % 6], LEVELS[i % 6])
        }
        _ => {
            let g = 8 + 10 * (i - 232);
            (g, g, g)
        }
    }
}

/// The closest of the first `n` xterm colours.
fn nearest((r, g, b): (u8, u8, u8), n: u16) -> u8 {
    let mut best = (u32::MAX, 0u8);
    for i in 0..n {
        let (cr, cg, cb) = xterm_color(i as u8);
        let d = u32::from(r.abs_diff(cr)) + u32::from(g.abs_diff(cg)) + u32::from(b.abs_diff(cb));
        if d < best.0 {
            best = (d, i as u8);
        }
    }
    best.1
}

fn encode_yuv(yuv: &impl YUVSource, shape: &Shape) -> Result<Vec<u8>, DecodeError> {
    let view = view(yuv, shape);
    let (sw, sh) = view.scaled;
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
            ..Shape::default()
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

    #[test]
    fn y4m_picture_and_its_header() {
        let p = Planes {
            y: (0..16).collect(),
            u: vec![100, 101, 102, 103],
            v: vec![200, 201, 202, 203],
            w: 4,
            h: 4,
        };
        let out = y4m_frame(&p, &Shape::default());
        let head = b"YUV4MPEG2 W4 H4 F25:1 Ip A1:1 C420mpeg2\n";
        assert!(out.starts_with(head));
        assert_eq!(head_len(&Output::Y4m, &out), head.len());
        let body = &out[head.len()..];
        assert!(body.starts_with(b"FRAME\n"));
        let planes = &body[6..];
        assert_eq!(planes.len(), 16 + 4 + 4);
        assert_eq!(&planes[..16], &p.y[..]);
        assert_eq!(&planes[16..20], &p.u[..]);
        assert_eq!(&planes[20..], &p.v[..]);
        // Halved: 2x2 luma, 1x1 chroma.
        let half = Shape {
            width: Some(2),
            ..Shape::default()
        };
        let out = y4m_frame(&p, &half);
        assert!(out.starts_with(b"YUV4MPEG2 W2 H2 "));
        assert_eq!(out.len() - head_len(&Output::Y4m, &out), 6 + 4 + 2);
    }

    #[test]
    fn ascii_picture_dark_to_bright_with_colours() {
        let p = Planes {
            y: vec![0, 255, 0, 255, 0, 255, 0, 255],
            u: vec![128; 2],
            v: vec![128; 2],
            w: 4,
            h: 2,
        };
        let plain = Ascii::default();
        let out = String::from_utf8(ascii_frame(&p, &Shape::default(), &plain)).unwrap();
        assert_eq!(out, "\x1b[2J\x1b[H @ @\n @ @\n\x1b[0m");
        assert_eq!(head_len(&Output::Ascii(plain), out.as_bytes()), 4);
        let coloured = Ascii {
            color: Palette::Xterm256,
            ..Ascii::default()
        };
        let out = String::from_utf8(ascii_frame(&p, &Shape::default(), &coloured)).unwrap();
        // Black is colour 0, white 15; a colour is only written when it changes.
        assert!(
            out.starts_with("\x1b[2J\x1b[H\x1b[38;5;0m \x1b[38;5;15m@\x1b[38;5;0m "),
            "{out:?}"
        );
        assert_eq!(to_rgb(128, 128, 128), (128, 128, 128));
        assert_eq!(xterm_color(196), (255, 0, 0));
        assert_eq!(nearest((250, 5, 5), 256), 9);
    }
}
