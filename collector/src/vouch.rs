//! Vouching for a library's reading: a process that does not own a file it
//! snapshots may take no read lease, and without one nothing shows it that
//! another process stopped halfway through a store into a shared mapping
//! (two equal reads of a half-done state agree). The collector, root with
//! `CAP_LEASE`, reads the file under a lease of its own and answers the
//! SHA-256 of what it read ([`filetrail_wire::ServerMsg::Vouched`]); equal
//! to the library's, it makes that reading `consistent`
//! (`filetrail_wire::atomic`).
//!
//! What a user can make the collector do here, and its bounds:
//! - **Read**: only a tracked, canonical path, opened as the writer (the
//!   kernel decides with their credentials, `asuser`), never following a
//!   final symlink nor blocking on a FIFO, only the regular file the
//!   library named by device and inode, at most `max_size` bytes. The
//!   answer is a hash of what the writer could read themselves.
//! - **Lease**: on the collector's own descriptor (no one else can change
//!   its owner or signal), held only across that read and given up between
//!   pieces as soon as a writer opens the file (`atomic`): another user's
//!   writer waits at most one piece (1 MiB). A file open for writing
//!   anywhere gets no lease and no vouch.
//! - **Rate**: per user, at most [`BUSY_PER_SECOND`] of the collector's
//!   time a second on vouches and [`BYTES_PER_SECOND`] bytes read; beyond,
//!   the answer is "cannot say" (the reading is stored as not consistent,
//!   nothing else changes). An honest edit costs two asks of some 30 µs.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use filetrail_wire::atomic::{self, Lease, Outcome, Vouched};
use filetrail_wire::{Policy, ServerMsg};

use crate::asuser::{self, Creds};
use crate::who::Identity;

/// The collector's time one user's asks may take in a second.
pub const BUSY_PER_SECOND: Duration = Duration::from_millis(250);
/// Bytes the collector reads for one user's asks in a second.
pub const BYTES_PER_SECOND: u64 = 256 << 20;

/// What each user asked in the current second.
#[derive(Default)]
pub struct Vouches {
    per_uid: Mutex<HashMap<u32, Window>>,
}

struct Window {
    start: Instant,
    busy: Duration,
    bytes: u64,
    /// A refusal in this window was logged.
    told: bool,
}

impl Vouches {
    /// Counts one ask of `bytes` by `uid`; false when over the rate (said
    /// once a second in the log). The time it takes is added by [`Vouches::spent`].
    fn allow(&self, uid: u32, bytes: u64) -> bool {
        let mut map = self.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Old windows go (bounded by the users who asked in the last second).
        if map.len() > 1024 {
            map.retain(|_, w| now.duration_since(w.start).as_secs() < 1);
        }
        let fresh = Window { start: now, busy: Duration::ZERO, bytes: 0, told: false };
        let w = map.entry(uid).or_insert(fresh);
        if now.duration_since(w.start).as_secs() >= 1 {
            *w = Window { start: now, busy: Duration::ZERO, bytes: 0, told: false };
        }
        if w.busy >= BUSY_PER_SECOND || w.bytes.saturating_add(bytes) > BYTES_PER_SECOND {
            if !std::mem::replace(&mut w.told, true) {
                tracing::warn!(
                    euid = uid,
                    "vouches refused for the rest of a second: over {BUSY_PER_SECOND:?} of work or {BYTES_PER_SECOND} bytes"
                );
            }
            return false;
        }
        w.bytes += bytes;
        true
    }

    /// Charges `took` to `uid`'s current window.
    fn spent(&self, uid: u32, took: Duration) {
        let mut map = self.per_uid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = map.get_mut(&uid) {
            w.busy += took;
        }
    }
}

/// What a `Vouch` asks.
pub struct Ask<'a> {
    pub req: u64,
    pub path: &'a [u8],
    pub dev: u64,
    pub ino: u64,
}

/// The answer to `ask` from `who`.
pub fn answer(vouches: &Vouches, policy: &Policy, who: &Identity, ask: Ask, max_size: u64) -> ServerMsg {
    let started = Instant::now();
    let vouched = read(vouches, policy, who, &ask, max_size);
    vouches.spent(who.euid, started.elapsed());
    if vouched.is_none() {
        tracing::debug!(pid = who.pid, euid = who.euid, path = %filetrail_wire::path::quote(ask.path), "cannot vouch");
    }
    let (sha256, len) = vouched.map(|(d, len)| (Some(hex::encode(d)), len)).unwrap_or((None, 0));
    ServerMsg::Vouched { req: ask.req, sha256, len }
}

fn read(vouches: &Vouches, policy: &Policy, who: &Identity, ask: &Ask, max_size: u64) -> Option<Vouched> {
    if !filetrail_wire::path::canonical(ask.path) || !policy.is_tracked(ask.path) {
        return None;
    }
    let path = Path::new(OsStr::from_bytes(ask.path));
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
    };
    let file = asuser::as_user(&Creds::of(who), open).ok()?.ok()?;
    let md = file.metadata().ok()?;
    if !md.file_type().is_file() || md.dev() != ask.dev || md.ino() != ask.ino || md.len() > max_size {
        return None;
    }
    if !vouches.allow(who.euid, md.len()) {
        return None;
    }
    match atomic::read(file.as_raw_fd(), max_size, Lease::Try, &mut ()).ok()? {
        Outcome::Read(r) if r.leased => Some((r.sha256(), r.len)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_held_to_the_rate_others_are_not() {
        let v = Vouches::default();
        assert!(v.allow(1000, 1));
        v.spent(1000, BUSY_PER_SECOND);
        assert!(!v.allow(1000, 1));
        assert!(v.allow(1001, 1));
        assert!(!v.allow(1002, BYTES_PER_SECOND + 1));
        assert!(v.allow(1002, BYTES_PER_SECOND));
        assert!(!v.allow(1002, 1));
    }
}
