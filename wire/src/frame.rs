//! Length-prefixed frames: a JSON header and raw payload bytes.
//!
//! Readers enforce limits before allocating: a header over [`MAX_HEADER`] or
//! a payload over the caller's limit is an error, never a large allocation;
//! within the limits, buffers grow with the bytes actually received (a
//! declared length is a claim, not a reason to allocate).

use std::io::{self, Read, Write};

use serde::Serialize;

/// Largest header a reader accepts.
pub const MAX_HEADER: u32 = 64 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Eof,
    /// The connection broke or closed in the middle of a frame.
    #[error("i/o error reading frame: {0}")]
    Io(#[from] io::Error),
    /// The header length exceeds [`MAX_HEADER`].
    #[error("frame header of {0} bytes exceeds the limit of {MAX_HEADER}")]
    HeaderTooLarge(u32),
    /// The payload length exceeds what this reader accepts.
    #[error("frame payload of {got} bytes exceeds the limit of {limit}")]
    PayloadTooLarge { got: u64, limit: u64 },
    /// The header is not a JSON message of the expected type.
    #[error("malformed frame header: {0}")]
    BadHeader(#[from] serde_json::Error),
    /// The snapshot lengths in the header do not add up to the payload.
    #[error("snapshot lengths do not match the payload length")]
    PayloadMismatch,
}

/// One frame as read from the wire.
#[derive(Debug)]
pub struct Frame {
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decodes the header as message type `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FrameError> {
        Ok(serde_json::from_slice(&self.header)?)
    }
}

/// The start of a frame: both lengths and the JSON header. The payload
/// parts follow it on the wire.
pub fn frame_prefix<H: Serialize>(header: &H, payload: &[&[u8]]) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let payload_len: u64 = payload.iter().map(|p| p.len() as u64).sum();
    let mut prefix = Vec::with_capacity(12 + json.len());
    prefix.extend_from_slice(&(json.len() as u32).to_le_bytes());
    prefix.extend_from_slice(&payload_len.to_le_bytes());
    prefix.extend_from_slice(&json);
    Ok(prefix)
}

/// Writes one frame: `header` as JSON, then the payload parts back to back.
pub fn write_frame<W: Write, H: Serialize>(w: &mut W, header: &H, payload: &[&[u8]]) -> io::Result<()> {
    w.write_all(&frame_prefix(header, payload)?)?;
    for part in payload {
        w.write_all(part)?;
    }
    w.flush()
}

/// The most a reader allocates ahead of the bytes it has received.
pub const READ_CHUNK: usize = 64 * 1024;

/// The start of a frame as read: its JSON header and how many payload bytes
/// follow it on the wire (already checked against the reader's limit).
#[derive(Debug)]
pub struct Head {
    pub header: Vec<u8>,
    pub payload_len: u64,
}

impl Head {
    /// Decodes the header as message type `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, FrameError> {
        Ok(serde_json::from_slice(&self.header)?)
    }
}

/// Reads one frame, refusing payloads over `max_payload` bytes.
pub fn read_frame<R: Read>(r: &mut R, max_payload: u64) -> Result<Frame, FrameError> {
    let head = read_head(r, max_payload)?;
    let payload = read_bytes(r, head.payload_len)?;
    Ok(Frame { header: head.header, payload })
}

/// Reads the lengths and the header of one frame; the caller reads (or
/// discards) the `payload_len` bytes that follow.
pub fn read_head<R: Read>(r: &mut R, max_payload: u64) -> Result<Head, FrameError> {
    let mut prefix = [0u8; 12];
    // A clean EOF is only clean before the first byte of a frame.
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Eof),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let header_len = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes"));
    let payload_len = u64::from_le_bytes(prefix[4..].try_into().expect("8 bytes"));
    if header_len > MAX_HEADER {
        return Err(FrameError::HeaderTooLarge(header_len));
    }
    if payload_len > max_payload {
        return Err(FrameError::PayloadTooLarge { got: payload_len, limit: max_payload });
    }
    Ok(Head { header: read_bytes(r, u64::from(header_len))?, payload_len })
}

/// Reads exactly `len` bytes. The buffer grows as bytes arrive (by a
/// quarter of what it holds, at least [`READ_CHUNK`]), so a peer that
/// declares a large length and sends little makes the reader hold little:
/// 1.25 times what was received plus [`READ_CHUNK`] (and, for the moment a
/// growing buffer is copied, the old one too).
pub fn read_bytes<R: Read>(r: &mut R, len: u64) -> Result<Vec<u8>, FrameError> {
    let too_large = || FrameError::PayloadTooLarge { got: len, limit: usize::MAX as u64 };
    let len = usize::try_from(len).map_err(|_| too_large())?;
    let mut buf = Vec::new();
    while buf.len() < len {
        let want = (len - buf.len()).min((buf.len() / 4).max(READ_CHUNK));
        buf.try_reserve_exact(want).map_err(|_| too_large())?;
        // `take` stops at the capacity just reserved: read_to_end never grows it.
        let got = r.by_ref().take(want as u64).read_to_end(&mut buf)?;
        if got < want {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMsg, SnapState, Snapshot, WirePath};

    #[test]
    fn round_trip_keeps_bytes_exact() {
        let content: Vec<u8> = (0..=255u8).collect();
        let msg = ClientMsg::Close {
            seq: 3,
            shared: false,
            token: 7,
            after: Snapshot {
                state: SnapState::Stored,
                len: 256,
                size: Some(256),
                consistent: true,
                ..Default::default()
            },
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &msg, &[&content[..100], &content[100..]]).unwrap();
        let frame = read_frame(&mut &buf[..], 1 << 20).unwrap();
        assert_eq!(frame.parse::<ClientMsg>().unwrap(), msg);
        assert_eq!(frame.payload, content);
    }

    #[test]
    fn clean_eof_only_between_frames() {
        assert!(matches!(read_frame(&mut &b""[..], 10), Err(FrameError::Eof)));
        assert!(matches!(read_frame(&mut &b"\x01\x00"[..], 10), Err(FrameError::Io(_))));
    }

    #[test]
    fn limits_are_checked_before_allocating() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        buf.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(read_frame(&mut &buf[..], 10), Err(FrameError::HeaderTooLarge(_))));

        let mut buf = Vec::new();
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(read_frame(&mut &buf[..], 10), Err(FrameError::PayloadTooLarge { .. })));
    }

    #[test]
    fn malformed_header_is_an_error() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &"not a message", &[]).unwrap();
        let frame = read_frame(&mut &buf[..], 10).unwrap();
        assert!(matches!(frame.parse::<ClientMsg>(), Err(FrameError::BadHeader(_))));
        let _ = WirePath::from("/x");
    }
}
