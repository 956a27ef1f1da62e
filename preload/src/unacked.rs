//! Events sent (or to be sent) that the collector has not acknowledged yet,
//! kept to be sent again after a reconnect.
//!
//! Bounded: at most [`MAX_BYTES`] of content and [`MAX_FRAMES`] events. An
//! event whose content would go over the first is kept by hash only (its
//! snapshots become `hash_only`: the version still says what changed, by
//! hash, size and metadata — only if it must be sent again); beyond the
//! second an event is not kept at all (the caller counts it as lost should
//! the connection break before it is acknowledged). Nothing here waits or
//! talks to the collector.

use std::collections::VecDeque;

use filetrail_wire::{ClientMsg, SnapState};

use crate::snapshot::sha256_hex;

/// Most content bytes kept per process.
pub const MAX_BYTES: usize = 16 << 20;
/// Most events kept per process (a kept event without content is its
/// header: a few hundred bytes).
pub const MAX_FRAMES: usize = 16 * 1024;

/// One event: its header (with its `seq`) and the payload parts.
pub struct Kept {
    pub msg: ClientMsg,
    pub payload: Vec<Vec<u8>>,
}

pub struct Unacked {
    frames: VecDeque<Kept>,
    bytes: usize,
}

impl Unacked {
    pub const fn new() -> Self {
        Unacked { frames: VecDeque::new(), bytes: 0 }
    }

    /// Keeps an event; false when it could not be kept (over [`MAX_FRAMES`]).
    pub fn keep(&mut self, mut msg: ClientMsg, mut payload: Vec<Vec<u8>>) -> bool {
        if self.frames.len() >= MAX_FRAMES {
            return false;
        }
        let size: usize = payload.iter().map(Vec::len).sum();
        if self.bytes + size > MAX_BYTES {
            by_hash(&mut msg, &payload);
            payload = Vec::new();
        } else {
            self.bytes += size;
        }
        self.frames.push_back(Kept { msg, payload });
        true
    }

    /// The collector acknowledged every event up to `upto`.
    pub fn ack(&mut self, upto: u64) {
        while let Some(front) = self.frames.front()
            && front.msg.seq() <= upto
        {
            let gone = self.frames.pop_front().expect("front exists");
            self.bytes -= gone.payload.iter().map(Vec::len).sum::<usize>();
        }
    }

    /// What to send again, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Kept> {
        self.frames.iter()
    }

    /// The number of the newest event kept.
    pub fn last_seq(&self) -> Option<u64> {
        self.frames.back().map(|k| k.msg.seq())
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

/// Turns the stored snapshots of `msg` (whose bytes are `payload`, in
/// order) into hash-only ones.
fn by_hash(msg: &mut ClientMsg, payload: &[Vec<u8>]) {
    let mut parts = payload.iter();
    for snap in msg.snapshots_mut() {
        if snap.state == SnapState::Stored {
            let bytes = parts.next().map(Vec::as_slice).unwrap_or_default();
            snap.state = SnapState::HashOnly;
            snap.sha256 = Some(sha256_hex(bytes));
            snap.size = Some(bytes.len() as u64);
            snap.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use filetrail_wire::{Snapshot, WirePath};

    use super::*;

    fn close(seq: u64, bytes: &[u8]) -> (ClientMsg, Vec<Vec<u8>>) {
        let after = Snapshot {
            state: SnapState::Stored,
            len: bytes.len() as u64,
            size: Some(bytes.len() as u64),
            consistent: true,
            ..Default::default()
        };
        (ClientMsg::Close { seq, token: 1, after, shared: false }, vec![bytes.to_vec()])
    }

    #[test]
    fn acked_events_go_over_the_bound_they_keep_only_the_hash() {
        let mut u = Unacked::new();
        let big = vec![b'x'; MAX_BYTES - 10];
        let (m, p) = close(1, &big);
        assert!(u.keep(m, p));
        let (m, p) = close(2, b"more than ten bytes");
        assert!(u.keep(m, p));
        let kept: Vec<_> = u.iter().collect();
        assert_eq!(kept[0].payload[0].len(), big.len());
        assert!(kept[1].payload.is_empty());
        let snap = kept[1].msg.snapshots()[0].clone();
        assert_eq!((snap.state, snap.len, snap.size), (SnapState::HashOnly, 0, Some(19)));
        assert_eq!(snap.sha256, Some(sha256_hex(b"more than ten bytes")));
        // The header still parses with an empty payload.
        assert!(kept[1].msg.split_payload(&[]).is_ok());
        u.ack(1);
        assert_eq!(u.len(), 1);
        let (m, p) = close(3, &big);
        assert!(u.keep(m, p), "room again once acknowledged");
        assert_eq!(u.iter().last().unwrap().payload[0].len(), big.len());
        u.ack(3);
        assert_eq!((u.len(), u.bytes), (0, 0));
    }

    #[test]
    fn at_most_max_frames() {
        let mut u = Unacked::new();
        for seq in 1..=MAX_FRAMES as u64 {
            assert!(u.keep(ClientMsg::Delete { seq, path: WirePath::from("/a"), before: Snapshot::absent() }, vec![]));
        }
        assert!(!u.keep(ClientMsg::Delete { seq: 0, path: WirePath::from("/a"), before: Snapshot::absent() }, vec![]));
    }
}
