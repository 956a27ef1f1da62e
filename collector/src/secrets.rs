//! Which contents are secret, so the intake redacts them (hash and metadata
//! only, never bytes). A side of a version is redacted when:
//!
//! - its path, or the name a program used for it, matches a `redact` glob
//!   (both sides: that file's contents);
//! - it is the after of a rename whose source (`old_path`, or the temp file
//!   `via` which it was written) matches one (the content moved away from the
//!   secret name);
//! - its SHA-256 equals a content known to be secret: `cp tls.key
//!   tls.key.bak` or a copy under any other name stores nothing either.
//!
//! Known-secret hashes: those the store marks redacted, those of the files
//! matching a `redact` glob under the tracked roots when the collector
//! starts (root reads them only to hash them; nothing of them is stored),
//! and every redacted content that passes the intake. Only hashes the
//! collector computed itself count: never one a client claimed. Empty
//! content hides nothing and is never secret.
//!
//! Limits: a secret file that appears after start without a tracked write
//! (a program not under the library) is unknown until it is; and a user who
//! may write a name matching a glob can make any content they can read
//! secret, i.e. no longer stored (it stays hashed and versioned).

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use filetrail_wire::policy::Globs;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{Draft, Side, Stored};
use crate::store::{Hash, Store};

/// Most directory entries the start-up walk looks at, all roots together.
const MAX_ENTRIES: usize = 1_000_000;
/// Deepest directory level the walk descends to.
const MAX_DEPTH: usize = 64;

/// Cheap to clone: clones share the hashes learned (the kernel watch and
/// the socket's intake both redact).
#[derive(Clone)]
pub struct Secrets {
    globs: Globs,
    hashes: Arc<Mutex<HashSet<Hash>>>,
}

impl Secrets {
    pub fn new(globs: Globs, hashes: HashSet<Hash>) -> Secrets {
        Secrets { globs, hashes: Arc::new(Mutex::new(hashes)) }
    }

    /// At collector start: the store's secret hashes and those of the
    /// redacted files under the tracked roots. A content the store holds
    /// under another name that turns out to be one of those is purged.
    pub fn load(config: &Config, store: &mut Store) -> Result<Secrets> {
        let globs = config
            .redactions()
            .map_err(|e| Error::Config { path: PathBuf::new(), message: format!("bad redact glob: {e}") })?;
        let started = std::time::Instant::now();
        let (found, walked) = hash_files(&config.track, &globs, config.max_size);
        let purged = store.purge_hashes(&found)?;
        let mut hashes = store.redacted_hashes()?;
        tracing::info!(
            files = found.len(),
            entries = walked,
            purged,
            known = hashes.len(),
            ms = started.elapsed().as_millis() as u64,
            "hashed the redacted files under the tracked roots"
        );
        hashes.extend(found);
        Ok(Secrets::new(globs, hashes))
    }

    /// `draft` with every secret side redacted; learns the hashes of the
    /// sides it redacts.
    pub fn redact(&self, mut draft: Draft) -> Draft {
        let named = |p: Option<&Vec<u8>>| p.is_some_and(|p| self.globs.matches(p));
        let by_name = named(Some(&draft.path)) || named(draft.named_path.as_ref());
        let moved_away = named(draft.old_path.as_ref()) || named(draft.via.as_ref());
        let mut known = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
        let mut side = |s: Option<Side>, secret_name: bool| {
            let s = s?;
            let hash = s.sha256.as_deref().and_then(parse_hash).filter(|_| s.size > 0);
            if !(secret_name || hash.is_some_and(|h| known.contains(&h))) {
                return Some(s);
            }
            let s = s.redacted();
            if let Some(h) = hash.filter(|_| s.stored == Stored::Redacted) {
                known.insert(h);
            }
            Some(s)
        };
        draft.before = side(draft.before.take(), by_name);
        draft.after = side(draft.after.take(), by_name || moved_away);
        draft
    }
}

fn parse_hash(hex_sha: &str) -> Option<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(hex_sha, &mut h).ok().map(|_| h)
}

/// Hashes of the non-empty regular files of at most `max_size` bytes under
/// `roots` whose path matches `globs`, and how many entries were looked at.
/// Symlinks are not followed; special files are skipped.
fn hash_files(roots: &[String], globs: &Globs, max_size: u64) -> (HashSet<Hash>, usize) {
    let mut found = HashSet::new();
    let mut entries = 0;
    let mut stack: Vec<(PathBuf, usize)> = roots.iter().map(|r| (PathBuf::from(r), 0)).collect();
    while let Some((path, depth)) = stack.pop() {
        entries += 1;
        if entries > MAX_ENTRIES {
            tracing::warn!("the tracked roots hold more than {MAX_ENTRIES} entries: stopped hashing redacted files");
            break;
        }
        let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
        let kind = md.file_type();
        if kind.is_dir() && depth < MAX_DEPTH {
            if let Ok(dir) = std::fs::read_dir(&path) {
                stack.extend(dir.flatten().map(|e| (e.path(), depth + 1)));
            }
        } else if kind.is_file() && md.len() > 0 && md.len() <= max_size {
            use std::os::unix::ffi::OsStrExt;
            if globs.matches(path.as_os_str().as_bytes())
                && let Some(h) = hash_file(&path, max_size)
            {
                found.insert(h);
            }
        }
    }
    (found, entries)
}

/// SHA-256 of the regular file at `path` (opened without following a
/// symlink, without blocking, without touching its atime), if it is still
/// a regular file of at most `max_size` bytes.
fn hash_file(path: &Path, max_size: u64) -> Option<Hash> {
    let open = |flags| std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    let safe = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    // O_NOATIME needs the file's owner or CAP_FOWNER.
    let file = open(safe | libc::O_NOATIME).or_else(|_| open(safe)).ok()?;
    let md = file.metadata().ok()?;
    if !md.is_file() || md.len() > max_size {
        return None;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let mut file = file.take(max_size + 1);
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                hasher.update(&buf[..n]);
            }
            Err(_) => return None,
        }
    }
    (total > 0 && total <= max_size).then(|| hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Action;

    fn side(bytes: &[u8]) -> Option<Side> {
        Some(Side::from_bytes(bytes.to_vec(), None, true))
    }

    fn secrets() -> Secrets {
        Secrets::new(Globs::new(&["*.key"]).unwrap(), HashSet::new())
    }

    fn draft(path: &str, before: &[u8], after: &[u8]) -> Draft {
        Draft::new(path.into(), Action::Write, side(before), side(after), jiff::Timestamp::UNIX_EPOCH)
    }

    fn states(d: &Draft) -> (Stored, Stored) {
        (d.before.as_ref().unwrap().stored, d.after.as_ref().unwrap().stored)
    }

    #[test]
    fn by_name_then_by_hash_under_any_name() {
        let s = secrets();
        let d = s.redact(draft("/etc/tls.key", b"old key", b"new key"));
        assert_eq!(states(&d), (Stored::Redacted, Stored::Redacted));
        assert!(d.after.as_ref().unwrap().bytes.is_none());
        // The same bytes under another name, on either side.
        let d = s.redact(draft("/etc/tls.key.bak", b"plain", b"new key"));
        assert_eq!(states(&d), (Stored::Stored, Stored::Redacted));
        let d = s.redact(draft("/etc/notes", b"old key", b"plain"));
        assert_eq!(states(&d), (Stored::Redacted, Stored::Stored));
    }

    #[test]
    fn a_rename_away_from_a_secret_name_redacts_what_moved() {
        let s = secrets();
        let mut d = draft("/etc/tls.old", b"what tls.old held", b"key");
        d.old_path = Some(b"/etc/tls.key".to_vec());
        let d = s.redact(d);
        assert_eq!(states(&d), (Stored::Stored, Stored::Redacted));
        // The named path counts like the path.
        let mut d = draft("/etc/real", b"a", b"b");
        d.named_path = Some(b"/etc/link.key".to_vec());
        assert_eq!(states(&s.redact(d)), (Stored::Redacted, Stored::Redacted));
    }

    #[test]
    fn empty_content_and_claimed_hashes_never_become_secret() {
        let s = secrets();
        s.redact(draft("/etc/empty.key", b"", b""));
        assert_eq!(states(&s.redact(draft("/etc/plain", b"", b"x"))), (Stored::Stored, Stored::Stored));
        // A hash-only side's hash is the client's word: it is not learned.
        let claimed = Side { stored: Stored::HashOnly, bytes: None, ..side(b"public").unwrap() };
        let d = Draft::new(b"/etc/big.key".to_vec(), Action::Create, None, Some(claimed), jiff::Timestamp::UNIX_EPOCH);
        s.redact(d);
        assert_eq!(states(&s.redact(draft("/etc/plain", b"public", b"x"))), (Stored::Stored, Stored::Stored));
    }

    #[test]
    fn walk_hashes_matching_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("ssl");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("tls.key"), "secret").unwrap();
        std::fs::write(sub.join("big.key"), "x".repeat(100)).unwrap();
        std::fs::write(sub.join("plain.conf"), "plain").unwrap();
        std::os::unix::fs::symlink(sub.join("plain.conf"), sub.join("link.key")).unwrap();
        let fifo = std::ffi::CString::new(sub.join("pipe.key").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let root = dir.path().display().to_string();
        let (found, entries) = hash_files(&[root], &Globs::new(&["*.key"]).unwrap(), 50);
        assert_eq!(found, HashSet::from([Sha256::digest(b"secret").into()]));
        assert_eq!(entries, 7);
    }
}
