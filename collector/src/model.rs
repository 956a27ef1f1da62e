//! The version record: what the assembler produces, the writer stores and
//! the CLI prints.

use std::sync::Arc;

use filetrail_wire::{Meta, SnapState, Snapshot};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::delivery::Delivery;
use crate::who::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Write,
    Rename,
    Delete,
    Truncate,
    /// Mode or owner changed, content unchanged (`chmod`, `chown`).
    Attrib,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Write => "write",
            Action::Rename => "rename",
            Action::Delete => "delete",
            Action::Truncate => "truncate",
            Action::Attrib => "attrib",
        }
    }
}

/// How much of a side's content the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The bytes are in the store.
    Stored,
    /// Over `max_size`: hash and size only.
    HashOnly,
    /// The writer could not read it: nothing but its metadata.
    Unreadable,
    /// The path matches a `redact` glob: hash and metadata only.
    Redacted,
    /// Over the user's quota: hash and metadata only.
    Quota,
}

impl Stored {
    pub fn as_str(self) -> &'static str {
        match self {
            Stored::Stored => "stored",
            Stored::HashOnly => "hash_only",
            Stored::Unreadable => "unreadable",
            Stored::Redacted => "redacted",
            Stored::Quota => "quota",
        }
    }
}

/// What a path held at one moment (the before or after of a version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub sha256: Option<String>,
    pub size: u64,
    pub stored: Stored,
    pub bytes: Option<Arc<Vec<u8>>>,
    pub meta: Option<Meta>,
    pub consistent: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Side {
    /// A side from content the collector holds in full.
    pub fn from_bytes(bytes: Vec<u8>, meta: Option<Meta>, consistent: bool) -> Side {
        Side {
            sha256: Some(sha256_hex(&bytes)),
            size: bytes.len() as u64,
            stored: Stored::Stored,
            bytes: Some(Arc::new(bytes)),
            meta,
            consistent,
        }
    }

    /// A side from the collector's own reading of a file.
    pub fn from_reading(r: filetrail_wire::atomic::Reading) -> Side {
        let meta = Some(Meta::of(&r.stat));
        match r.content {
            filetrail_wire::atomic::Content::Bytes(bytes) => Side::from_bytes(bytes, meta, r.consistent),
            filetrail_wire::atomic::Content::Sha256(digest) => Side {
                sha256: Some(hex::encode(digest)),
                size: r.len,
                stored: Stored::HashOnly,
                bytes: None,
                meta,
                consistent: r.consistent,
            },
        }
    }

    /// A side from a library snapshot; `None` when the path did not exist
    /// (or was not a regular file). Hashes of stored bytes are computed
    /// here, never taken from the client.
    pub fn from_wire(snap: &Snapshot, bytes: Option<&[u8]>) -> Option<Side> {
        match snap.state {
            SnapState::Absent | SnapState::NotRegular => None,
            SnapState::Stored => Some(Side::from_bytes(bytes.unwrap_or_default().to_vec(), snap.meta, snap.consistent)),
            SnapState::HashOnly => Some(Side {
                sha256: snap.sha256.clone().filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
                size: snap.size.unwrap_or(0),
                stored: Stored::HashOnly,
                bytes: None,
                meta: snap.meta,
                consistent: snap.consistent,
            }),
            SnapState::Unreadable => Some(Side {
                sha256: None,
                size: snap.size.unwrap_or(0),
                stored: Stored::Unreadable,
                bytes: None,
                meta: snap.meta,
                consistent: snap.consistent,
            }),
        }
    }
}

impl Side {
    /// The same side without its content (hash and metadata stay).
    pub fn redacted(self) -> Side {
        self.without_content(Stored::Redacted)
    }

    /// The same side without its content, labelled `why`, where it had some.
    pub fn without_content(mut self, why: Stored) -> Side {
        if self.stored == Stored::Stored {
            self.stored = why;
        }
        self.bytes = None;
        self
    }
}

/// The metadata the collector observed on a file it opened itself.
pub fn meta_of(md: &std::fs::Metadata) -> Meta {
    use std::os::unix::fs::MetadataExt;
    Meta {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        dev: md.dev(),
        ino: md.ino(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
    }
}

/// A version before it is attributed and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub path: Vec<u8>,
    /// The path as the program named it, when a symlink led to `path`.
    pub named_path: Option<Vec<u8>>,
    pub action: Action,
    pub old_path: Option<Vec<u8>>,
    /// The temp file this process renamed over `path` to make this version
    /// (`action` is then `write` or `create`).
    pub via: Option<Vec<u8>>,
    pub before: Option<Side>,
    pub after: Option<Side>,
    pub time: jiff::Timestamp,
    /// The event this version is named after, for the store to keep it once
    /// (see `delivery.rs`): the open's `Begin` for a version that completes
    /// an open (whether its `Close` or the collector finished it), else the
    /// event that made it. 0: none (an older client, or `restore`).
    pub seq: u64,
    /// The first event this version depends on (its connection is not
    /// acknowledged past it until the version is committed). 0: none.
    pub pin: u64,
    /// Who reported the change: the library, or the collector's kernel watch.
    pub seen_by: SeenBy,
}

/// Who reported a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeenBy {
    /// The preload library in the writing process.
    #[default]
    Library,
    /// The collector's kernel watch ([`crate::watch`]): a process without the library.
    Kernel,
}

impl SeenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SeenBy::Library => "library",
            SeenBy::Kernel => "kernel",
        }
    }
}

impl Draft {
    /// Both sides without content (redaction).
    pub fn redacted(mut self) -> Draft {
        self.before = self.before.map(Side::redacted);
        self.after = self.after.map(Side::redacted);
        self
    }

    /// Both sides without content, over the user's quota: the version is
    /// still recorded (who, when, path, hashes).
    pub fn over_quota(mut self) -> Draft {
        self.before = self.before.map(|s| s.without_content(Stored::Quota));
        self.after = self.after.map(|s| s.without_content(Stored::Quota));
        self
    }

    /// Bytes of content this version adds to the store (before quotas).
    pub fn content_bytes(&self) -> u64 {
        [&self.before, &self.after].into_iter().flatten().filter_map(|s| s.bytes.as_ref()).map(|b| b.len() as u64).sum()
    }

    pub fn new(
        path: Vec<u8>,
        action: Action,
        before: Option<Side>,
        after: Option<Side>,
        time: jiff::Timestamp,
    ) -> Draft {
        Draft {
            path,
            named_path: None,
            action,
            old_path: None,
            via: None,
            before,
            after,
            time,
            seq: 0,
            pin: 0,
            seen_by: SeenBy::Library,
        }
    }

    /// True when the content is the same before and after (known by hash).
    pub fn same_content(&self) -> bool {
        self.old_path.is_none()
            && matches!((&self.before, &self.after), (Some(b), Some(a)) if b.sha256.is_some() && b.sha256 == a.sha256)
    }

    /// True when the mode or owner differ between the sides (both known).
    pub fn attrs_changed(&self) -> bool {
        let attrs = |s: &Option<Side>| s.as_ref().and_then(|s| s.meta).map(|m| (m.mode & 0o7777, m.uid, m.gid));
        matches!((attrs(&self.before), attrs(&self.after)), (Some(b), Some(a)) if b != a)
    }

    /// True when nothing changed: the same content, mode and owner.
    pub fn is_noop(&self) -> bool {
        self.same_content() && !self.attrs_changed()
    }
}

/// A version ready to store: the draft, who made it, and (from a client
/// that numbers its events) its origin and claim on the connection's ack.
#[derive(Debug)]
pub struct NewVersion {
    pub draft: Draft,
    pub who: Arc<Identity>,
    pub delivery: Option<Delivery>,
}

/// A stored version as the CLI shows it; field names are the `query --json`
/// contract (shared/CONTRACTS.md).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionRow {
    /// `path`, `named_path` and `old_path` as stored: human output quotes
    /// these (`wire::path::quote`), never the JSON spellings.
    #[serde(skip)]
    pub raw: RawPaths,
    /// `time` in µs since the epoch (to order versions and gaps).
    #[serde(skip)]
    pub time_us: i64,
    pub id: i64,
    pub time: String,
    /// Exact when the path is UTF-8; else a readable spelling (`\xNN` for
    /// each byte that is not UTF-8), and `path_b64` holds the bytes.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    pub named_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_path_b64: Option<String>,
    pub action: String,
    pub old_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path_b64: Option<String>,
    /// The temp file renamed over `path` to make this version (`write` or
    /// `create`): its own versions are folded into this one (`fold.rs`).
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_b64: Option<String>,
    /// A step folded into that version (shown by `query --all` only); its
    /// own id: a scratch file's delete, or a rename that changed nothing.
    pub folded_into: Option<i64>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub size: Option<u64>,
    /// Permission bits as an octal string (`"0644"`), after the change.
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub owner_uid: Option<u32>,
    pub group_gid: Option<u32>,
    /// Mode and owner before the change, where known.
    pub before_mode: Option<String>,
    pub before_owner_uid: Option<u32>,
    pub before_group_gid: Option<u32>,
    /// `library` or `kernel` (the collector's kernel watch saw a change
    /// that no library reported).
    pub seen_by: String,
    /// The content before this change is not what the last version (or
    /// the baseline) left: a change in between went unseen.
    pub gap_before: bool,
    pub content: String,
    pub consistent: bool,
    pub user: String,
    pub uid: u32,
    pub euid: u32,
    pub chain: Vec<String>,
    pub sudo_user: Option<String>,
    pub session: Option<String>,
    /// The writer has an audit session that no PAM login registered: its
    /// loginuid (and so `user`) is only claimed.
    pub unregistered_session: bool,
    pub tty: Option<String>,
    pub ssh_client: Option<String>,
    pub host: Option<String>,
    pub cwd: Option<String>,
    pub pid: i32,
    pub exe: String,
    pub argv: Vec<String>,
    pub trust: serde_json::Value,
}

/// One record of `query` and `log`: a version, or a gap among them
/// (`store/gaps.rs`). In JSON a gap says `"kind": "gap"`; a version keeps
/// its fields as they are.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
// Most records are versions: boxing them would only add an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Version(VersionRow),
    Gap(crate::store::gaps::GapRow),
}

impl Record {
    pub fn time_us(&self) -> i64 {
        match self {
            Record::Version(v) => v.time_us,
            Record::Gap(g) => g.time_us,
        }
    }
}

/// A version's paths as raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPaths {
    pub path: Vec<u8>,
    pub named_path: Option<Vec<u8>>,
    pub old_path: Option<Vec<u8>>,
    pub via: Option<Vec<u8>>,
}
