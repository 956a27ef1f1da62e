//! How content is kept: each distinct content once (by SHA-256), compressed
//! with zstd, or as a zstd delta that uses the previous version of the same
//! file as dictionary when that is smaller. Delta chains are capped at
//! [`MAX_DEPTH`] so reading a version never decodes more than that many.
//!
//! A delta's base is always an older blob (smaller id), never one that
//! holds no data; purging a content (`purge.rs`) relies on both.
//!
//! The encoding functions are pure; [`super::Store`] does the SQL.

use crate::error::{Error, Result};

/// Longest chain of deltas before a full (zstd) copy is stored again.
pub const MAX_DEPTH: i64 = 32;
const LEVEL: i32 = 3;
/// Deltas: level 9 finds the long matches against the base that level 3
/// misses (a one-line edit of a 10 KiB file: 40 bytes instead of 145) at
/// ~50 µs; level 19 saves 11 more bytes for 10x the time (measured).
const DELTA_LEVEL: i32 = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
    /// zstd with the base blob's content as prefix (`ZSTD_CCtx_refPrefix`):
    /// a delta against it.
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
/// A delta under half the size is taken without trying plain compression.
pub fn encode(content: &[u8], base: Option<&[u8]>) -> (Codec, Vec<u8>) {
    let mut best = (Codec::Raw, content.to_vec());
    if let Some(d) = base.filter(|b| !b.is_empty()).and_then(|base| delta(content, base)) {
        if d.len() < content.len() / 2 {
            return (Codec::Delta, d);
        }
        if d.len() < best.1.len() {
            best = (Codec::Delta, d);
        }
    }
    if let Some(z) = compress(content)
        && z.len() < best.1.len()
    {
        best = (Codec::Zstd, z);
    }
    best
}

/// zstd of `content`, with this thread's context (made once: creating one
/// per blob was 5% of the collector's time at ingest).
fn compress(content: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(LEVEL).ok());
    }
    COMPRESSOR.with(|c| c.borrow_mut().as_mut()?.compress(content).ok())
}

/// zstd of `content` with `base` referenced as prefix: no dictionary is
/// built, so this costs about what plain compression does. With this
/// thread's context, made once (creating one per delta was 5.5% of the
/// collector's time at ingest).
fn delta(content: &[u8], base: &[u8]) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter, ResetDirective};
    thread_local! {
        static CCTX: std::cell::RefCell<Option<CCtx<'static>>> = const { std::cell::RefCell::new(None) };
    }
    CCTX.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = CCtx::try_create();
        }
        let cctx = cell.as_mut()?;
        cctx.set_parameter(CParameter::CompressionLevel(DELTA_LEVEL)).ok()?;
        // SAFETY: zstd references a prefix for the next frame only: the
        // `compress2` below, which ends before `base`'s borrow does; the
        // reset after it drops the reference whatever happened.
        let prefix: &'static [u8] = unsafe { std::mem::transmute::<&[u8], &'static [u8]>(base) };
        let out = cctx.ref_prefix(prefix).ok().and_then(|_| {
            let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(content.len()));
            cctx.compress2(&mut out, content).ok().map(|_| out)
        });
        let _ = cctx.reset(ResetDirective::SessionAndParameters);
        out
    })
}

fn undelta(data: &[u8], base: &[u8], size: usize) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::DCtx;
    let mut dctx = DCtx::try_create().ok_or("no zstd context")?;
    dctx.ref_prefix(base).map_err(|c| zstd::zstd_safe::get_error_name(c).to_owned())?;
    let mut out = Vec::with_capacity(size);
    dctx.decompress(&mut out, data).map_err(|c| zstd::zstd_safe::get_error_name(c).to_owned())?;
    Ok(out)
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
            undelta(data, base, size).map_err(|e| corrupt(format!("zstd delta: {e}")))?
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
    fn one_context_deltas_against_each_base_in_turn() {
        // The thread's context must forget each prefix: a delta made after
        // another decodes against its own base only.
        let bases = [config(300), config(301), config(40)];
        for (i, base) in bases.iter().enumerate() {
            let mut next = base.clone();
            next.extend_from_slice(format!("edit = {i}\n").as_bytes());
            let (codec, data) = encode(&next, Some(base));
            assert_eq!(codec, Codec::Delta);
            assert_eq!(decode(codec, &data, next.len(), Some(base)).unwrap(), next);
        }
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
