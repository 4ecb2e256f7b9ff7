//! Annex-B byte streams (ITU-T H.264 Annex B, H.265 Annex B) and the
//! 4-byte length-prefixed ("AVCC", ISO/IEC 14496-15) representation.

use crate::error::{Error, Result};

/// Find the next 3-byte start code prefix `00 00 01` at or after `from`.
/// Returns the index of its first zero byte.
pub fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let tail = data.get(from..)?;
    tail.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|p| p + from)
}

/// Strip trailing zero bytes: per Annex B.2 they are `trailing_zero_8bits`
/// or the leading zero of a 4-byte start code, never part of the NAL
/// (a NAL's RBSP ends in the stop bit, so its last byte is non-zero).
pub fn trim_trailing_zeros(nal: &[u8]) -> &[u8] {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    nal.get(..end).unwrap_or(&[])
}

/// Iterator over the NAL units of a complete Annex-B buffer.
/// Bytes before the first start code are ignored; empty NALs are skipped.
#[derive(Debug, Clone)]
pub struct NalIter<'a> {
    data: &'a [u8],
    /// Start of the next NAL payload (just after a start code), if any.
    next: Option<usize>,
}

/// Iterate NAL units (without start codes) in an Annex-B buffer.
pub fn nal_units(data: &[u8]) -> NalIter<'_> {
    NalIter {
        data,
        next: find_start_code(data, 0).map(|p| p + 3),
    }
}

impl<'a> Iterator for NalIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.next?;
            let (end, next) = match find_start_code(self.data, start) {
                Some(p) => (p, Some(p + 3)),
                None => (self.data.len(), None),
            };
            self.next = next;
            let nal = trim_trailing_zeros(self.data.get(start..end).unwrap_or(&[]));
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

/// Append one NAL with a 4-byte big-endian length prefix.
pub fn push_length_prefixed(out: &mut Vec<u8>, nal: &[u8]) {
    // NALs larger than 4 GiB cannot come from our bounded buffers.
    let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
}

/// Convert Annex-B to 4-byte length-prefixed NAL units.
pub fn annexb_to_avcc(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in nal_units(data) {
        push_length_prefixed(&mut out, nal);
    }
    out
}

/// Iterator over 4-byte length-prefixed NAL units.
#[derive(Debug, Clone)]
pub struct AvccIter<'a> {
    rest: &'a [u8],
}

/// Iterate 4-byte length-prefixed NAL units; yields an error (once) on a
/// truncated length or payload.
pub fn avcc_units(data: &[u8]) -> AvccIter<'_> {
    AvccIter { rest: data }
}

impl<'a> Iterator for AvccIter<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Result<&'a [u8]>> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((len_bytes, rest)) = self.rest.split_first_chunk::<4>() else {
            self.rest = &[];
            return Some(Err(Error::Truncated("NAL length prefix")));
        };
        let len = u32::from_be_bytes(*len_bytes) as usize;
        match (rest.get(..len), rest.get(len..)) {
            (Some(nal), Some(after)) => {
                self.rest = after;
                Some(Ok(nal))
            }
            _ => {
                self.rest = &[];
                Some(Err(Error::Truncated("length-prefixed NAL")))
            }
        }
    }
}

/// Convert 4-byte length-prefixed NAL units back to Annex-B with 4-byte
/// start codes.
pub fn avcc_to_annexb(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    for nal in avcc_units(data) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_mixed_start_codes() {
        let data = [
            0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 0, 1, 0x65, 4, 0, 0,
        ];
        let nals: Vec<_> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }

    #[test]
    fn no_start_code_no_nals() {
        assert_eq!(nal_units(&[1, 2, 3, 0, 0]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1, 0, 0, 1]).count(), 0);
    }

    #[test]
    fn roundtrip_avcc() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3];
        let avcc = annexb_to_avcc(&data);
        assert_eq!(avcc, vec![0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3]);
        let back = avcc_to_annexb(&avcc).unwrap();
        assert_eq!(back, vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3]);
    }

    #[test]
    fn truncated_avcc_errors() {
        assert!(avcc_to_annexb(&[0, 0, 0, 5, 1]).is_err());
        assert!(avcc_to_annexb(&[0, 0]).is_err());
        assert!(avcc_to_annexb(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(avcc_to_annexb(&[]).unwrap(), Vec::<u8>::new());
    }
}
