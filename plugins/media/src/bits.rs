//! RBSP bit reader for H.264/H.265 parameter sets and slice headers.
//!
//! NAL unit payloads carry emulation-prevention bytes (ITU-T H.264 7.4.1,
//! H.265 7.4.2): an encoder inserts 0x03 after any two zero bytes so that a
//! start code cannot appear inside a NAL. They must be removed before the
//! syntax elements can be read.

use crate::error::{Error, Result};

/// Remove emulation-prevention bytes (`00 00 03` -> `00 00`).
///
/// ITU-T H.264 7.3.1: `emulation_prevention_three_byte` follows every
/// `00 00` pair that would otherwise be followed by 00..03.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

/// MSB-first bit reader over an RBSP (emulation prevention already removed).
#[derive(Debug, Clone)]
pub struct BitReader {
    data: Vec<u8>,
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl BitReader {
    /// Reader over escaped NAL bytes; emulation-prevention bytes are removed.
    pub fn new_escaped(nal: &[u8]) -> Self {
        Self {
            data: unescape_rbsp(nal),
            pos: 0,
        }
    }

    /// Reader over bytes that contain no emulation prevention (e.g. AAC ASC).
    pub fn new_raw(data: &[u8]) -> Self {
        Self {
            data: data.to_vec(),
            pos: 0,
        }
    }

    /// Bits not yet read.
    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// Read one bit.
    pub fn bit(&mut self) -> Result<u32> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(Error::Truncated("bitstream"))?;
        let v = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(v))
    }

    /// Read one bit as a flag.
    pub fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    /// u(n): fixed-length unsigned, n <= 32 (H.264 7.2).
    pub fn u(&mut self, n: u32) -> Result<u32> {
        if n > 32 {
            return Err(Error::invalid("bit read", format!("u({n}) wider than 32")));
        }
        if self.bits_left() < n as usize {
            return Err(Error::Truncated("bitstream"));
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // n <= 32 so this cannot truncate.
        Ok(v as u32)
    }

    /// Skip `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        if self.bits_left() < n {
            return Err(Error::Truncated("bitstream"));
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): Exp-Golomb unsigned (H.264 9.1). Values above u32::MAX - 1
    /// cannot be represented and are rejected.
    pub fn ue(&mut self) -> Result<u32> {
        let mut leading = 0u32;
        while self.bit()? == 0 {
            leading += 1;
            if leading > 31 {
                return Err(Error::invalid("exp-golomb", "more than 31 leading zeros"));
            }
        }
        let rest = self.u(leading)?;
        // 2^leading - 1 + rest, at most 2^32 - 2 for leading = 31.
        let v = (1u64 << leading) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| Error::invalid("exp-golomb", "value overflow"))
    }

    /// se(v): Exp-Golomb signed (H.264 9.1.1): k -> (-1)^(k+1) * ceil(k/2).
    pub fn se(&mut self) -> Result<i32> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| Error::invalid("exp-golomb", "signed overflow"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 0]
        );
        // A 03 not after two zeros is data.
        assert_eq!(unescape_rbsp(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
    }

    #[test]
    fn reads_fixed_and_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 ... -> ue 0,1,2,3 then se
        let mut r = BitReader::new_raw(&[0b1010_0110, 0b0100_0010, 0b1000_0000]);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        // 00101 -> k=4 -> se = -2
        assert_eq!(r.se().unwrap(), -2);
        assert_eq!(r.bits_left(), 7);
        assert_eq!(r.u(7).unwrap(), 0);
        assert_eq!(r.bit(), Err(Error::Truncated("bitstream")));
    }

    #[test]
    fn u32_full_width() {
        let mut r = BitReader::new_raw(&[0xff, 0xff, 0xff, 0xff, 0x80]);
        assert_eq!(r.u(32).unwrap(), u32::MAX);
        assert_eq!(r.u(1).unwrap(), 1);
        assert!(r.u(33).is_err());
    }

    #[test]
    fn golomb_errors_without_panic() {
        let mut r = BitReader::new_raw(&[0, 0, 0, 0, 0]);
        assert!(r.ue().is_err());
        let mut r = BitReader::new_raw(&[0, 0, 0, 0, 1]);
        assert!(r.ue().is_err());
        let mut r = BitReader::new_raw(&[]);
        assert!(r.se().is_err());
        // 31 leading zeros then 1 then 31 ones: max value.
        let mut r = BitReader::new_raw(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(r.ue().unwrap(), u32::MAX - 1);
    }
}
