//! Property tests (a fuzz target run by `cargo test`) of the frame decoder:
//! `read_frame`, `Frame::parse::<ClientMsg>` and `split_payload` on arbitrary
//! bytes and on mutated valid frames never panic, and `read_frame` never
//! holds more memory than the bytes it received allow.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2000 per property).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use filetrail_wire::frame::READ_CHUNK;
use filetrail_wire::{ClientMsg, Meta, SnapState, Snapshot, WirePath, read_frame, write_frame};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Counts this thread's live heap bytes and their peak.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn add(n: usize) {
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

fn sub(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are const-initialised thread-locals without destructors, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        sub(layout.size());
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    // No regression files written into the source tree.
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Runs the whole decoder on `bytes`; must not panic.
fn decode(bytes: &[u8], max_payload: u64) {
    let mut r = bytes;
    while let Ok(frame) = read_frame(&mut r, max_payload) {
        if let Ok(msg) = frame.parse::<ClientMsg>() {
            let _ = msg.split_payload(&frame.payload);
        }
    }
}

fn path() -> impl Strategy<Value = WirePath> {
    prop_oneof![
        "/etc/[a-z.~]{1,12}".prop_map(|s| WirePath::from(s.as_str())),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(WirePath::from),
    ]
}

fn snapshot() -> impl Strategy<Value = (Snapshot, Vec<u8>)> {
    let meta = proptest::option::of(any::<(u32, u32, u64)>().prop_map(|(mode, uid, ino)| Meta {
        mode,
        uid,
        gid: uid,
        dev: 1,
        ino,
        mtime_ns: 0,
    }));
    (0..4u8, proptest::collection::vec(any::<u8>(), 0..48), meta, any::<bool>()).prop_map(
        |(kind, bytes, meta, consistent)| {
            let state =
                [SnapState::Absent, SnapState::Stored, SnapState::HashOnly, SnapState::Unreadable][kind as usize];
            let stored = state == SnapState::Stored;
            let snap = Snapshot {
                state,
                len: if stored { bytes.len() as u64 } else { 0 },
                size: (state != SnapState::Absent).then_some(bytes.len() as u64),
                sha256: (state == SnapState::HashOnly).then(|| "ab".repeat(32)),
                meta,
                consistent,
            };
            (snap, if stored { bytes } else { Vec::new() })
        },
    )
}

/// A valid frame of any client message kind, as bytes on the wire.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (0..8u8, any::<u64>(), path(), path(), snapshot(), snapshot(), any::<bool>()).prop_map(
        |(kind, token, p, q, (b, bb), (a, ab), shared)| {
            // `token` doubles as the event's number (any u64, 0 = none).
            let seq = token;
            let (msg, payload): (ClientMsg, Vec<&[u8]>) = match kind {
                0 => (ClientMsg::Hello { version: 1, image: token, start: 0 }, vec![]),
                1 => (
                    ClientMsg::Begin { seq, token, path: p, named: Some(q), file: b.meta, flags: 1, before: b },
                    vec![&bb],
                ),
                2 => (ClientMsg::Close { seq, token, after: a, shared }, vec![&ab]),
                3 => (ClientMsg::Rename { seq, old: p, new: q, before: b, after: a }, vec![&bb, &ab]),
                4 => (ClientMsg::Delete { seq, path: p, before: b }, vec![&bb]),
                5 => (ClientMsg::Truncate { seq, path: p, before: b, after: a }, vec![&bb, &ab]),
                6 => (ClientMsg::Attrib { seq, path: p, named: Some(q), before: b, after: a }, vec![&bb, &ab]),
                _ => (ClientMsg::Link { seq, new: p, after: a }, vec![&ab]),
            };
            let mut out = Vec::new();
            write_frame(&mut out, &msg, &payload).unwrap();
            out
        },
    )
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    /// Overwrites the payload length (bytes 4..12) with a claim.
    Claim(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        prop_oneof![any::<u64>(), 0..4096u64].prop_map(Mutation::Claim),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, x) => {
                if let Some(b) = bytes.get_mut(i % len) {
                    *b ^= x;
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Claim(n) => {
                if bytes.len() >= 12 {
                    bytes[4..12].copy_from_slice(&n.to_le_bytes());
                }
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]) {
        decode(&bytes, max);
    }

    #[test]
    fn valid_frames_decode_to_what_was_sent(frame in valid_frame()) {
        let f = read_frame(&mut &frame[..], u64::MAX).unwrap();
        let msg = f.parse::<ClientMsg>().unwrap();
        let parts = msg.split_payload(&f.payload).unwrap();
        prop_assert_eq!(parts.iter().flatten().map(|p| p.len()).sum::<usize>(), f.payload.len());
    }

    #[test]
    fn mutated_frames_never_panic(
        frames in proptest::collection::vec(valid_frame(), 1..4),
        mutations in proptest::collection::vec(mutation(), 0..6),
        max in prop_oneof![Just(u64::MAX), 0..256u64],
    ) {
        decode(&mutate(frames.concat(), &mutations), max);
    }

    /// Whatever length a frame claims, the reader holds at most 1.25 times
    /// the bytes it received plus one chunk ahead for the header and one
    /// for the payload; momentarily, while a growing buffer is copied, the
    /// old one too (counted here; glibc moves large buffers without a copy).
    #[test]
    fn memory_follows_received_bytes(frame in valid_frame(), claim in prop_oneof![any::<u64>(), 0..(1u64 << 24)], extra in 0..(1usize << 18)) {
        let mut bytes = mutate(frame, &[Mutation::Claim(claim)]);
        bytes.resize(bytes.len() + extra, 7);
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let result = read_frame(&mut &bytes[..], u64::MAX);
        let peak = PEAK.with(Cell::get) - base;
        prop_assert!(
            peak <= 2 * bytes.len() + bytes.len() / 4 + 2 * READ_CHUNK + 1024,
            "held {} bytes having received {}", peak, bytes.len()
        );
        drop(result);
    }
}
