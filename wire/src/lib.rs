//! The filetrail wire format, shared by the preload library (client) and the
//! collector (server), and the tracking [`policy`] both of them apply.
//!
//! # Frames
//! Every message is one frame on a Unix stream socket:
//!
//! ```text
//! u32 LE  header length H   (at most MAX_HEADER)
//! u64 LE  payload length P  (at most what the reader allows)
//! H bytes header: one JSON object, a ClientMsg or ServerMsg
//! P bytes payload: raw file content, never re-encoded as text
//! ```
//!
//! The payload of a message is the concatenation of the bytes of its
//! snapshots whose `state` is `stored`, in the order the snapshots appear in
//! the message (`before` then `after`); each snapshot says its own `len`.
//!
//! # Conversation
//! 1. The client connects and sends [`ClientMsg::Hello`].
//! 2. The server answers [`ServerMsg::Welcome`] with the tracked roots and
//!    ignore globs (the collector's config decides what is tracked, never the
//!    session's environment), or [`ServerMsg::Error`].
//! 3. The client sends events: [`ClientMsg::Begin`] when a tracked file is
//!    opened for writing (with what the path held before), [`ClientMsg::Close`]
//!    when the last descriptor of that open is closed (with what it holds
//!    now), [`ClientMsg::Rename`], [`ClientMsg::Delete`], [`ClientMsg::Truncate`],
//!    [`ClientMsg::Attrib`] (a mode or owner change).
//!    Each event carries `seq`: 1 for the process image's first event, then
//!    one more for each, never reused in that image (across reconnects too).
//! 4. The server acknowledges events with [`ServerMsg::Ack`] `{ upto }`:
//!    every version made of events up to `upto` is committed to the store,
//!    and the collector no longer needs those events (an open still waiting
//!    for its `Close`, or a created file held back to see whether it was a
//!    temp file, holds back the ack of its `Begin`). Acks are cumulative and
//!    sent when that mark moves (a burst of events gets one), only to a
//!    client that sent `image` in `Hello` and `seq` in its events. The
//!    client keeps what is not acknowledged and, after reconnecting, sends
//!    it again with the same `seq` first: the store keeps one version per
//!    (boot, process, `image`, `seq` of the event that made it) and ignores
//!    a repeat. The client never waits for an ack; it reads them when it
//!    next sends.
//! 5. A client that may not take a read lease on a file it snapshots (it
//!    does not own it) asks the collector to vouch for its reading
//!    ([`ClientMsg::Vouch`], protocol 3) and waits for the answer
//!    ([`ServerMsg::Vouched`]), reading acks that arrive meanwhile. The
//!    collector opens the path as the writer, reads it under a lease of its
//!    own (root holds `CAP_LEASE`) and answers the SHA-256 of what it read,
//!    or none: equal hashes show the client's bytes were the file's content
//!    at one instant ([`atomic`]).
//! 6. The connection ends when the process exits or `exec`s (the socket is
//!    close-on-exec). Opens still without a `Close` are finished by the
//!    collector itself once the process has exited.
//!
//! Unknown message kinds are skipped by the reader ([`ClientMsg::Unknown`]),
//! so a newer library can talk to an older collector.
//!
//! # Spool files
//! When no collector answers (none at connect, the connection broke, or the
//! process's time budget is spent), the library appends what it would have
//! sent to a spool file instead, which the collector replays later
//! ([`spool`] has the names and places). A spool file is the same frames as
//! the socket: a [`ClientMsg::Hello`], then each event preceded by a
//! [`ClientMsg::Clock`] (so a replayed version keeps the time it was made),
//! and a [`ClientMsg::Lost`] wherever events could not even be spooled.
//! Content over the library's spool bounds is written as `hash_only`
//! snapshots: the fact that a version existed is kept, its bytes are not.

pub mod atomic;
pub mod frame;
pub mod path;
pub mod policy;
pub mod spool;
pub mod sys;

use serde::{Deserialize, Serialize};

pub use frame::{Frame, FrameError, MAX_HEADER, frame_prefix, read_frame, write_frame};
pub use path::WirePath;
pub use policy::Policy;

/// Version of the conversation described above. 2: `image`, `seq` and
/// [`ServerMsg::Ack`] (a version-1 peer sends or expects none of them).
/// 3: [`ClientMsg::Vouch`] (a client asks it only of a version-3 collector).
pub const PROTOCOL_VERSION: u32 = 3;

/// Where the collector listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/filetrail/collector.sock";

/// Messages from the library to the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First frame of every connection. Nothing a process says about
    /// itself is asked for: the collector reads the kernel's answer while
    /// the process waits for `Welcome` (older libraries sent a `claims`
    /// object here; it is ignored). `image`: a random number the library
    /// drew for this process image (it changes at `exec`, which keeps the
    /// pid): with the kernel's pid and start time it names the image whose
    /// `seq` numbers follow; 0 (or absent) for a client that numbers none.
    Hello {
        version: u32,
        #[serde(default, skip_serializing_if = "is_zero")]
        image: u64,
        /// Spool files only: the process's start time (clock ticks since
        /// boot, `/proc/self/stat` field 22) as the process says, so a
        /// replayed version is named like the one its live connection
        /// would have made and is stored once. A claim, like the rest of a
        /// spool file; on a socket the collector asks the kernel instead.
        #[serde(default, skip_serializing_if = "is_zero")]
        start: u64,
    },
    /// A tracked path was opened for writing; `before` is what it held just
    /// before the open. `token` names this open until its `Close`. `path` is
    /// the file actually opened (symlinks resolved); `named` is the path as
    /// the program named it, when that differs. `file` is the `stat` of the
    /// opened descriptor (device and inode identify it to the collector).
    Begin {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        token: u64,
        path: WirePath,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        named: Option<WirePath>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<Meta>,
        flags: i32,
        before: Snapshot,
    },
    /// The last descriptor of open `token` was closed; `after` is what the
    /// file held at that moment. `shared`: the process forked while the
    /// file was open, so other processes may still hold it.
    Close {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        token: u64,
        after: Snapshot,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shared: bool,
    },
    /// `old` was renamed to `new`. `before` is what `new` held before the
    /// rename, `after` what it holds now.
    Rename {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        old: WirePath,
        new: WirePath,
        before: Snapshot,
        after: Snapshot,
    },
    /// `path` was unlinked; `before` is what it held.
    Delete {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        path: WirePath,
        before: Snapshot,
    },
    /// `path` was truncated by name (`truncate(2)`).
    Truncate {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        path: WirePath,
        before: Snapshot,
        after: Snapshot,
    },
    /// A new name `new` was linked to an existing file (`link`, `linkat`,
    /// including an `O_TMPFILE` file made visible); `after` is its content.
    Link {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        new: WirePath,
        after: Snapshot,
    },
    /// The mode or owner of `path` changed (`chmod`, `chown` and their
    /// `f`/`l`/`at` variants). `before` and `after` are what the file held
    /// around the call: the same content, other `meta`. `path` is the file
    /// changed (symlinks resolved), `named` the name used, when different.
    /// A collector that does not know it skips it (its kernel watch, if on,
    /// records the change instead).
    Attrib {
        #[serde(default, skip_serializing_if = "is_zero")]
        seq: u64,
        path: WirePath,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        named: Option<WirePath>,
        before: Snapshot,
        after: Snapshot,
    },
    /// Not an event: asks the collector to read `path` (which must be the
    /// file `dev`/`ino`) as this process's user under a read lease of its
    /// own and answer [`ServerMsg::Vouched`] with the same `req`. Sent by a
    /// client that may not lease the file itself, only to a collector that
    /// welcomed it with version 3 or later.
    Vouch { req: u64, path: WirePath, dev: u64, ino: u64 },
    /// Spool files only: the wall-clock time (microseconds since the epoch)
    /// at which the library made the event that follows. A claim of the
    /// writer, like everything in a spool file but its owner.
    Clock { time_us: i64 },
    /// Events the library could not deliver nor spool (spool bound reached,
    /// disk full): how many, and how many content bytes they carried. Counts
    /// add up; the collector records them as a gap.
    Lost { versions: u64, bytes: u64 },
    /// A kind this reader does not know; skipped.
    #[serde(other)]
    Unknown,
}

/// Messages from the collector to the library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `Hello`: what this client must report.
    Welcome {
        version: u32,
        /// Absolute directories (or files) whose changes are recorded.
        track: Vec<String>,
        /// Globs of paths never recorded; see [`Policy`].
        ignore: Vec<String>,
        /// Files larger than this are reported by hash only.
        max_size: u64,
    },
    /// The collector refuses this client; it should stay quiet.
    Error { message: String },
    /// Every event with `seq <= upto` is done with: its versions are
    /// committed and the collector needs it no more (see the conversation
    /// above). Cumulative; an older library skips it as unknown.
    Ack { upto: u64 },
    /// Answer to [`ClientMsg::Vouch`] `req`: `len` and lowercase hex
    /// `sha256` of what the file held while the collector's read lease was
    /// never broken; `sha256` absent when it cannot say (a writer holds the
    /// file, not the file named, larger than `max_size`, too many asks).
    Vouched {
        req: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        #[serde(default)]
        len: u64,
    },
    #[serde(other)]
    Unknown,
}

/// What a path held at one moment, as seen by the library.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: SnapState,
    /// Bytes of this snapshot in the frame payload (0 unless `stored`).
    #[serde(default)]
    pub len: u64,
    /// File size in bytes, when the path existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Lowercase hex SHA-256 computed by the library (only for `hash_only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// True only when the content (or hash) is what the file held at one
    /// instant: read under a read lease, or read twice with equal bytes and
    /// the same size, mtime and ctime around both ([`atomic`]).
    #[serde(default = "yes")]
    pub consistent: bool,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `stat` fields of a snapshotted file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
}

impl Meta {
    /// The fields of an `fstat`.
    pub fn of(st: &libc::stat) -> Meta {
        Meta {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            dev: st.st_dev,
            ino: st.st_ino,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        }
    }
}

/// Whether and how a snapshot carries content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapState {
    /// The path did not exist.
    #[default]
    Absent,
    /// The content follows in the payload (`len` bytes).
    Stored,
    /// Too large: only `size` and `sha256`.
    HashOnly,
    /// Exists but is not a regular file (FIFO, device, directory…): never read.
    NotRegular,
    /// Exists but could not be read by the writing process.
    Unreadable,
}

impl Snapshot {
    pub fn absent() -> Self {
        Snapshot { consistent: true, ..Snapshot::default() }
    }
    pub fn exists(&self) -> bool {
        self.state != SnapState::Absent
    }
}

impl ClientMsg {
    /// The event's sequence number (0: none, as from a version-1 client).
    pub fn seq(&self) -> u64 {
        match self {
            ClientMsg::Begin { seq, .. }
            | ClientMsg::Close { seq, .. }
            | ClientMsg::Rename { seq, .. }
            | ClientMsg::Delete { seq, .. }
            | ClientMsg::Truncate { seq, .. }
            | ClientMsg::Attrib { seq, .. }
            | ClientMsg::Link { seq, .. } => *seq,
            ClientMsg::Hello { .. }
            | ClientMsg::Vouch { .. }
            | ClientMsg::Clock { .. }
            | ClientMsg::Lost { .. }
            | ClientMsg::Unknown => 0,
        }
    }

    /// Numbers an event (no effect on `Hello`).
    pub fn set_seq(&mut self, n: u64) {
        match self {
            ClientMsg::Begin { seq, .. }
            | ClientMsg::Close { seq, .. }
            | ClientMsg::Rename { seq, .. }
            | ClientMsg::Delete { seq, .. }
            | ClientMsg::Truncate { seq, .. }
            | ClientMsg::Attrib { seq, .. }
            | ClientMsg::Link { seq, .. } => *seq = n,
            ClientMsg::Hello { .. }
            | ClientMsg::Vouch { .. }
            | ClientMsg::Clock { .. }
            | ClientMsg::Lost { .. }
            | ClientMsg::Unknown => {}
        }
    }

    /// The snapshots whose bytes travel in the payload, in payload order.
    pub fn snapshots(&self) -> Vec<&Snapshot> {
        match self {
            ClientMsg::Begin { before, .. } | ClientMsg::Delete { before, .. } => vec![before],
            ClientMsg::Close { after, .. } | ClientMsg::Link { after, .. } => vec![after],
            ClientMsg::Rename { before, after, .. }
            | ClientMsg::Truncate { before, after, .. }
            | ClientMsg::Attrib { before, after, .. } => {
                vec![before, after]
            }
            ClientMsg::Hello { .. }
            | ClientMsg::Vouch { .. }
            | ClientMsg::Clock { .. }
            | ClientMsg::Lost { .. }
            | ClientMsg::Unknown => vec![],
        }
    }

    /// The same snapshots as [`ClientMsg::snapshots`], to change them.
    pub fn snapshots_mut(&mut self) -> Vec<&mut Snapshot> {
        match self {
            ClientMsg::Begin { before, .. } | ClientMsg::Delete { before, .. } => vec![before],
            ClientMsg::Close { after, .. } | ClientMsg::Link { after, .. } => vec![after],
            ClientMsg::Rename { before, after, .. }
            | ClientMsg::Truncate { before, after, .. }
            | ClientMsg::Attrib { before, after, .. } => {
                vec![before, after]
            }
            ClientMsg::Hello { .. }
            | ClientMsg::Vouch { .. }
            | ClientMsg::Clock { .. }
            | ClientMsg::Lost { .. }
            | ClientMsg::Unknown => vec![],
        }
    }

    /// Splits a frame payload into the content of each snapshot, `None` for
    /// snapshots that carry no bytes. Fails when the lengths do not add up.
    pub fn split_payload<'a>(&self, payload: &'a [u8]) -> Result<Vec<Option<&'a [u8]>>, FrameError> {
        let mut out = Vec::new();
        let mut at: usize = 0;
        for snap in self.snapshots() {
            if snap.state == SnapState::Stored {
                let len = usize::try_from(snap.len).map_err(|_| FrameError::PayloadMismatch)?;
                let end = at.checked_add(len).ok_or(FrameError::PayloadMismatch)?;
                let bytes = payload.get(at..end).ok_or(FrameError::PayloadMismatch)?;
                out.push(Some(bytes));
                at = end;
            } else {
                out.push(None);
            }
        }
        if at != payload.len() {
            return Err(FrameError::PayloadMismatch);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u64) -> Snapshot {
        Snapshot { state: SnapState::Stored, len: n, size: Some(n), consistent: true, ..Default::default() }
    }

    #[test]
    fn unknown_kind_is_skipped_not_fatal() {
        let m: ClientMsg = serde_json::from_str(r#"{"kind":"from_the_future","x":1}"#).unwrap();
        assert_eq!(m, ClientMsg::Unknown);
    }

    #[test]
    fn payload_splits_in_snapshot_order() {
        let m = ClientMsg::Rename {
            seq: 1,
            old: WirePath::from("/a"),
            new: WirePath::from("/b"),
            before: stored(2),
            after: stored(3),
        };
        let parts = m.split_payload(b"xxyyy").unwrap();
        assert_eq!(parts, vec![Some(&b"xx"[..]), Some(&b"yyy"[..])]);
        assert!(m.split_payload(b"xxyy").is_err());
        assert!(m.split_payload(b"xxyyyz").is_err());
    }

    #[test]
    fn absent_snapshot_carries_nothing() {
        let m = ClientMsg::Begin {
            seq: 0,
            token: 1,
            path: WirePath::from("/a"),
            named: None,
            file: None,
            flags: 0,
            before: Snapshot::absent(),
        };
        assert_eq!(m.split_payload(b"").unwrap(), vec![None]);
        let json = serde_json::to_string(&m).unwrap();
        let back: ClientMsg = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn seq_and_image_are_optional_and_ack_is_a_reply() {
        // A version-1 client numbers nothing.
        let old: ClientMsg =
            serde_json::from_str(r#"{"kind":"delete","path":"/a","before":{"state":"absent"}}"#).unwrap();
        assert_eq!(old.seq(), 0);
        let hello: ClientMsg = serde_json::from_str(r#"{"kind":"hello","version":1}"#).unwrap();
        assert_eq!(hello, ClientMsg::Hello { version: 1, image: 0, start: 0 });
        let mut m = old.clone();
        m.set_seq(42);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""seq":42"#), "{json}");
        assert_eq!(serde_json::from_str::<ClientMsg>(&json).unwrap().seq(), 42);
        assert!(!serde_json::to_string(&old).unwrap().contains("seq"));
        let ack: ServerMsg = serde_json::from_str(r#"{"kind":"ack","upto":7}"#).unwrap();
        assert_eq!(ack, ServerMsg::Ack { upto: 7 });
    }
}
