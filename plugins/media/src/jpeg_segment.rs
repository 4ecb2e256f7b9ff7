//! Walking a JPEG's marker segments (T.81 B.1.1.2): shared by the RTP/JPEG
//! parser and the Huffman re-encoder, which read the same headers for
//! different fields.

use crate::error::{Error, Result};

/// One marker segment.
pub(crate) struct Segment<'a> {
    /// The marker's second byte (`0xC0` for SOF0, ...).
    pub marker: u8,
    /// The whole segment, from its `0xFF`.
    pub whole: &'a [u8],
    /// What follows the length field (empty for markers without one).
    pub body: &'a [u8],
    /// Where the next marker starts.
    pub next: usize,
}

/// The marker segment at `pos`, after any fill bytes (`0xFF` repeated).
/// SOI, EOI, RSTn and TEM stand alone; the others carry a length.
pub(crate) fn segment_at<'a>(
    jpeg: &'a [u8],
    mut pos: usize,
    what: &'static str,
) -> Result<Segment<'a>> {
    loop {
        let (Some(&ff), Some(&m)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            return Err(Error::Truncated("JPEG marker"));
        };
        if ff != 0xFF {
            return Err(Error::invalid(what, "expected a marker"));
        }
        if m == 0xFF {
            pos += 1;
            continue;
        }
        if matches!(m, 0x01 | 0xD0..=0xD9) {
            return Ok(Segment {
                marker: m,
                whole: &jpeg[pos..pos + 2],
                body: &[],
                next: pos + 2,
            });
        }
        let len = jpeg
            .get(pos + 2..pos + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(Error::Truncated("JPEG segment length"))?;
        if len < 2 {
            return Err(Error::invalid(what, "segment length < 2"));
        }
        let whole = jpeg
            .get(pos..pos + 2 + len)
            .ok_or(Error::Truncated("JPEG segment"))?;
        return Ok(Segment {
            marker: m,
            whole,
            body: &whole[4..],
            next: pos + 2 + len,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_fill_bytes_lengths_and_standalone_markers() {
        let jpeg = [
            0xFF, 0xD8, // SOI
            0xFF, 0xFF, 0xFF, 0xDD, 0x00, 0x04, 0x00, 0x10, // fill, DRI
            0xFF, 0xD9, // EOI
        ];
        let s = segment_at(&jpeg, 0, "t").unwrap();
        assert_eq!((s.marker, s.body, s.next), (0xD8, &[][..], 2));
        let s = segment_at(&jpeg, s.next, "t").unwrap();
        assert_eq!((s.marker, s.body, s.next), (0xDD, &[0x00, 0x10][..], 10));
        assert_eq!(s.whole, &jpeg[4..10]);
        let s = segment_at(&jpeg, s.next, "t").unwrap();
        assert_eq!((s.marker, s.next), (0xD9, 12));
        assert!(matches!(
            segment_at(&jpeg, 12, "t"),
            Err(Error::Truncated(_))
        ));
    }

    #[test]
    fn bad_segments_are_errors() {
        assert!(segment_at(&[0x00, 0xD8], 0, "t").is_err());
        assert!(segment_at(&[0xFF, 0xDB, 0x00, 0x01], 0, "t").is_err());
        assert!(matches!(
            segment_at(&[0xFF, 0xDB, 0x00, 0x43, 0x00], 0, "t"),
            Err(Error::Truncated(_))
        ));
        assert!(matches!(
            segment_at(&[0xFF, 0xDB, 0x00], 0, "t"),
            Err(Error::Truncated(_))
        ));
    }
}
