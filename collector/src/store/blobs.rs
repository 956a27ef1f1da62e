//! How content is kept: each distinct content once (by SHA-256), compressed
//! with zstd, or as a zstd delta that uses the previous version of the same
//! file as dictionary when that is smaller. Delta chains are capped at
//! [`MAX_DEPTH`] so reading a version never decodes more than that many.
//!
//! The encoding functions are pure; [`super::Store`] does the SQL.

use crate::error::{Error, Result};

/// Longest chain of deltas before a full (zstd) copy is stored again.
pub const MAX_DEPTH: i64 = 32;
const LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
    /// zstd with the base blob's content as a raw dictionary.
    Delta = 2,
}

impl Codec {
    pub fn from_i64(v: i64) -> Option<Codec> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Delta),
            _ => None,
        }
    }
}

/// The smallest encoding of `content`; a delta only when `base` is given.
pub fn encode(content: &[u8], base: Option<&[u8]>) -> (Codec, Vec<u8>) {
    let mut best = (Codec::Raw, content.to_vec());
    if let Ok(z) = zstd::bulk::compress(content, LEVEL) {
        if z.len() < best.1.len() {
            best = (Codec::Zstd, z);
        }
    }
    if let Some(base) = base.filter(|b| !b.is_empty()) {
        let delta = zstd::bulk::Compressor::with_dictionary(LEVEL, base).and_then(|mut c| c.compress(content));
        if let Ok(d) = delta {
            if d.len() < best.1.len() {
                best = (Codec::Delta, d);
            }
        }
    }
    best
}

/// Decodes stored `data` of `size` bytes; `base` is the base blob's content
/// for a delta.
pub fn decode(codec: Codec, data: &[u8], size: usize, base: Option<&[u8]>) -> Result<Vec<u8>> {
    let corrupt = |why: String| Error::Corrupt(why);
    let out = match codec {
        Codec::Raw => data.to_vec(),
        Codec::Zstd => zstd::bulk::decompress(data, size).map_err(|e| corrupt(format!("zstd: {e}")))?,
        Codec::Delta => {
            let base = base.ok_or_else(|| corrupt("delta without its base".into()))?;
            let mut d = zstd::bulk::Decompressor::with_dictionary(base).map_err(|e| corrupt(format!("zstd dict: {e}")))?;
            d.decompress(data, size).map_err(|e| corrupt(format!("zstd delta: {e}")))?
        }
    };
    if out.len() != size {
        return Err(corrupt(format!("decoded {} bytes, expected {size}", out.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n: usize) -> Vec<u8> {
        (0..n).map(|i| format!("option_{i} = value {}\n", i * 7)).collect::<String>().into_bytes()
    }

    #[test]
    fn small_edit_is_stored_as_a_tiny_delta() {
        let a = config(400);
        let mut b = a.clone();
        b.extend_from_slice(b"new_option = 1\n");
        let (codec, data) = encode(&b, Some(&a));
        assert_eq!(codec, Codec::Delta);
        assert!(data.len() < 100, "delta of {} bytes", data.len());
        assert_eq!(decode(codec, &data, b.len(), Some(&a)).unwrap(), b);
    }

    #[test]
    fn round_trips_every_codec() {
        for content in [b"".to_vec(), b"x".to_vec(), config(50), (0..=255u8).collect()] {
            let (codec, data) = encode(&content, None);
            assert_ne!(codec, Codec::Delta);
            assert_eq!(decode(codec, &data, content.len(), None).unwrap(), content);
        }
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        assert!(decode(Codec::Zstd, b"garbage", 10, None).is_err());
        assert!(decode(Codec::Delta, b"garbage", 10, None).is_err());
    }
}
