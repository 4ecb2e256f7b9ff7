//! Splits a concatenated MJPEG stream (`ffmpeg -f mjpeg -`) into JPEG images.
//!
//! Images are delimited by walking the marker segments (ITU-T T.81 B.1.1)
//! rather than by searching for FF D9, so an EXIF thumbnail (a whole JPEG
//! inside an APP1 segment) does not end the image early.

use std::collections::VecDeque;

use crate::codec::{CodecInfo, CodecName, VIDEO_CLOCK_RATE};

/// One complete JPEG image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegImage {
    /// The image from SOI to EOI inclusive.
    pub data: Vec<u8>,
    /// Width from the SOF segment (0 if none was found).
    pub width: u32,
    /// Height from the SOF segment (0 if none was found).
    pub height: u32,
}

/// Images larger than this are dropped; guards memory against a stream
/// that never ends an image.
pub const MAX_IMAGE_SIZE: usize = 32 * 1024 * 1024;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Whether a marker is a start-of-frame (T.81 Table B.1: C0..CF except
/// C4 DHT, C8 JPG, CC DAC).
pub fn is_sof(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Parse height/width from an SOF segment body (after the 2-byte length):
/// P(8) Y(16) X(16) Nf(8), T.81 B.2.2.
pub fn parse_sof(body: &[u8]) -> Option<(u32, u32)> {
    let h = u16::from_be_bytes([*body.get(1)?, *body.get(2)?]);
    let w = u16::from_be_bytes([*body.get(3)?, *body.get(4)?]);
    Some((u32::from(w), u32::from(h)))
}

/// Width and height of a complete JPEG image, from its first SOF.
pub fn dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut s = MjpegSplitter::new();
    s.push(jpeg);
    s.pop().map(|i| (i.width, i.height))
}

/// Track description for an MJPEG stream.
pub fn codec_info(width: u32, height: u32) -> CodecInfo {
    let mut info = CodecInfo::new(CodecName::Mjpeg, VIDEO_CLOCK_RATE);
    info.width = width;
    info.height = height;
    info
}

/// Sans-IO splitter; push bytes, pop images.
#[derive(Debug, Clone, Default)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// `buf` starts with SOI of the image being assembled.
    in_image: bool,
    /// Next offset to examine.
    pos: usize,
    /// Inside entropy-coded data after SOS.
    in_scan: bool,
    width: u32,
    height: u32,
    out: VecDeque<JpegImage>,
    dropped_bytes: u64,
}

impl MjpegSplitter {
    /// New splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes discarded while resynchronising.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Next complete image.
    pub fn pop(&mut self) -> Option<JpegImage> {
        self.out.pop_front()
    }

    /// End of input: an unfinished image is discarded (it cannot be decoded).
    pub fn finish(&mut self) {
        self.dropped_bytes += self.buf.len() as u64;
        self.buf.clear();
        self.in_image = false;
        self.pos = 0;
        self.in_scan = false;
    }

    /// Feed bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while self.step() {}
        if self.buf.len() > MAX_IMAGE_SIZE {
            self.resync_from(self.buf.len());
        }
    }

    /// Drop everything before `at` and look for the next SOI from there.
    fn resync_from(&mut self, at: usize) {
        let at = at.min(self.buf.len());
        self.dropped_bytes += at as u64;
        self.buf.drain(..at);
        self.in_image = false;
        self.pos = 0;
        self.in_scan = false;
    }

    /// Advance as far as possible; false when more input is needed.
    fn step(&mut self) -> bool {
        if !self.in_image {
            return self.seek_soi();
        }
        if self.in_scan {
            return self.scan_entropy();
        }
        self.read_marker()
    }

    fn seek_soi(&mut self) -> bool {
        let found = self.buf.windows(2).position(|w| w == [0xFF, SOI]);
        match found {
            Some(p) => {
                self.resync_from(p);
                self.in_image = true;
                self.pos = 2;
                self.width = 0;
                self.height = 0;
                true
            }
            None => {
                // Keep a trailing FF: it may be the first half of SOI.
                let keep = usize::from(self.buf.last() == Some(&0xFF));
                self.resync_from(self.buf.len() - keep);
                false
            }
        }
    }

    /// Entropy-coded data ends at the first marker that is not a stuffed
    /// zero (FF 00) or a restart marker RSTn (T.81 B.1.1.5, F.1.2.3).
    fn scan_entropy(&mut self) -> bool {
        let mut p = self.pos;
        while let Some(rel) = self
            .buf
            .get(p..)
            .and_then(|t| t.iter().position(|&b| b == 0xFF))
        {
            let ff = p + rel;
            match self.buf.get(ff + 1) {
                None => {
                    self.pos = ff;
                    return false;
                }
                Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => p = ff + 1,
                Some(_) => {
                    self.pos = ff;
                    self.in_scan = false;
                    return true;
                }
            }
        }
        self.pos = self.buf.len();
        false
    }

    fn read_marker(&mut self) -> bool {
        let pos = self.pos;
        let (Some(&ff), Some(&marker)) = (self.buf.get(pos), self.buf.get(pos + 1)) else {
            return false;
        };
        if ff != 0xFF {
            // Not a marker where one must be: corrupt image, find the next.
            self.resync_from(pos);
            return true;
        }
        match marker {
            0xFF => {
                // Fill byte before a marker (T.81 B.1.1.2).
                self.pos += 1;
                true
            }
            SOI => {
                // A new image began before this one ended.
                self.resync_from(pos);
                true
            }
            EOI => {
                let end = pos + 2;
                let data: Vec<u8> = self.buf.drain(..end).collect();
                self.out.push_back(JpegImage {
                    data,
                    width: self.width,
                    height: self.height,
                });
                self.in_image = false;
                self.pos = 0;
                true
            }
            0x01 | 0xD0..=0xD7 => {
                // Standalone markers without a length field.
                self.pos += 2;
                true
            }
            _ => {
                let (Some(&hi), Some(&lo)) = (self.buf.get(pos + 2), self.buf.get(pos + 3)) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 2 {
                    self.resync_from(pos);
                    return true;
                }
                let end = pos + 2 + len;
                if self.buf.len() < end {
                    return false;
                }
                if is_sof(marker) && self.width == 0 {
                    if let Some((w, h)) = self.buf.get(pos + 4..end).and_then(parse_sof) {
                        self.width = w;
                        self.height = h;
                    }
                }
                self.pos = end;
                if marker == SOS {
                    self.in_scan = true;
                }
                true
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A structurally valid tiny JPEG: SOI, APP0, SOF0 (w x h), SOS, data, EOI.
    pub fn tiny_jpeg(w: u16, h: u16, scan: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend_from_slice(&[0xFF, 0xE0, 0, 6, b'J', b'F', b'I', b'F']);
        let [wh, wl] = w.to_be_bytes();
        let [hh, hl] = h.to_be_bytes();
        v.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, hh, hl, wh, wl, 1, 1, 0x11, 0]);
        v.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0x3f, 0]);
        v.extend_from_slice(scan);
        v.extend_from_slice(&[0xFF, 0xD9]);
        v
    }

    fn split(data: &[u8], chunk: usize) -> Vec<JpegImage> {
        let mut s = MjpegSplitter::new();
        for c in data.chunks(chunk) {
            s.push(c);
        }
        s.finish();
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn splits_concatenated_images() {
        let a = tiny_jpeg(320, 240, &[1, 2, 0xFF, 0x00, 3, 0xFF, 0xD0, 4]);
        let b = tiny_jpeg(1280, 720, &[0xFF, 0xFF, 0x00, 9]);
        let mut stream = vec![0x00, 0x12, 0xFF];
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a[..10]); // truncated tail is dropped
        for chunk in [1, 2, 3, 7, 1000] {
            let imgs = split(&stream, chunk);
            assert_eq!(imgs.len(), 2, "chunk {chunk}");
            assert_eq!(imgs[0].data, a);
            assert_eq!((imgs[0].width, imgs[0].height), (320, 240));
            assert_eq!(imgs[1].data, b);
            assert_eq!((imgs[1].width, imgs[1].height), (1280, 720));
        }
        assert_eq!(dimensions(&a), Some((320, 240)));
    }

    #[test]
    fn exif_thumbnail_does_not_split() {
        let thumb = tiny_jpeg(16, 16, &[5]);
        let mut img = vec![0xFF, 0xD8, 0xFF, 0xE1];
        img.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        img.extend_from_slice(&thumb);
        img.extend_from_slice(&tiny_jpeg(64, 48, &[7])[2..]);
        let imgs = split(&img, 3);
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].data, img);
        assert_eq!((imgs[0].width, imgs[0].height), (64, 48));
    }

    #[test]
    fn corrupt_input_does_not_panic() {
        let mut data = tiny_jpeg(8, 8, &[1]);
        data[5] = 0; // bad APP0 length (< 2)
        data.extend_from_slice(&tiny_jpeg(8, 8, &[2]));
        let imgs = split(&data, 5);
        assert_eq!(imgs.len(), 1);
        assert!(split(&[0xFF, 0xD8, 0xFF], 1).is_empty());
        assert!(split(&[0xFF; 100], 7).is_empty());
        assert_eq!(parse_sof(&[8, 0]), None);
        assert!(is_sof(0xC0) && is_sof(0xC2) && !is_sof(0xC4));
    }
}
