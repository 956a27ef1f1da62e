//! Reading a file's content at one instant: the one way the library and the
//! collector read a file for a version, and what makes a reading
//! `consistent`.
//!
//! A reading is `consistent` only when its bytes were the file's content at
//! one instant, shown by one of:
//! - **A read lease** (`fcntl(F_SETLEASE, F_RDLCK)`), whenever the caller
//!   allows it and the reader may take one (root, or the file's owner). The
//!   kernel grants it only while nobody has the file open for writing or
//!   mapped writable, and while it is held a writer's `open` or `truncate`
//!   waits (or fails with `O_NONBLOCK`): one read under a lease that was
//!   never broken is the content. Held only across the read; a large file
//!   is read in pieces and the lease is given up as soon as a writer asks
//!   for the file (checked between pieces), so a writer waits at most one
//!   piece, far below `lease-break-time`. Refused with `EAGAIN` (a writer
//!   holds the file, maybe through a mapping): the two reads below are
//!   taken but the reading is not consistent.
//! - **Two reads** when no lease can be had (the file system has no leases,
//!   or the caller holds the file open for writing itself; for a reader that
//!   does not own the file, see the witness below): both
//!   passes equal byte for byte (by SHA-256 above `max_size`), their length
//!   the size, and size, mtime and ctime the same before the first and after
//!   the second. A `write(2)` changes ctime when it starts (the kernel makes
//!   a change after a query visibly newer, "multigrain" timestamps, Linux
//!   6.13+ on ext4, xfs, btrfs, tmpfs), so no write started in between; one
//!   already running when the first `fstat` ran is waited for before the
//!   first pass (`lseek(SEEK_DATA)` takes the inode lock a buffered write
//!   holds, on ext4, tmpfs and btrfs), so a writer preempted halfway through
//!   a `write` is never read half-done. The second pass is for writes
//!   through a shared mapping, which take no lock and change no time; it
//!   cannot see one stopped halfway (docs/architecture.md).
//!
//! Cost (the `cost` test; a 2-core VM shared with other builds, so only
//! the proportions mean much): on a quiet 4 KiB file two passes took
//! 2.9 µs, under a lease 4.8 µs (nine more system calls: the lease, its
//! release, the signal set-up below); at 64 KiB 8.7 µs and 7.3 µs; at
//! 1 MiB 126 µs and 61 µs.
//!
//! - **A witness's lease**, when the reader may take none because it does
//!   not own the file: the two reads above cannot see a writer stopped
//!   halfway through a store into a shared mapping, so their agreement
//!   proves nothing alone. The reader asks a [`Witness`] (the library asks
//!   the collector, which runs as root and may lease any file) for the
//!   SHA-256 of what the file held under the witness's own lease; the
//!   reading is consistent when it equals the reader's bytes. Without a
//!   witness (none connected, one that may not lease either, a file larger
//!   than it reads) such a reading is not consistent.
//!
//! Neither: tried again (at most [`ATTEMPTS`] times within [`RETRY_NS`]),
//! then the last reading with `consistent: false`.
//!
//! **Signals.** A lease break makes the kernel signal the lease's owner
//! (`SIGIO` unless `F_SETSIG`; `SIGIO` kills a program that does not handle
//! it). No handler is installed or replaced: before the lease, the reader
//! sets the descriptor's signal to [`lease_signal`] (`SIGRTMAX`) and its
//! owner to the calling *thread* (`F_SETOWN_EX`, `F_OWNER_TID`; the kernel
//! keeps an owner already set), and blocks that signal in this thread
//! while the lease is held. After the release, the instance the kernel
//! queued (`si_code == POLL_MSG`, `si_fd` the reader's descriptor) is taken
//! with `sigtimedwait` — that is also how a break is noticed — and any
//! other pending instance of the signal is queued again; then the mask is
//! put back. Other threads never see it; the host sees no signal of ours.

use sha2::{Digest, Sha256};

use crate::sys;
pub use crate::sys::Errno;

/// Most readings of one file before it is reported inconsistent.
pub const ATTEMPTS: usize = 8;
/// Retries stop once a reading has taken this long (the first attempt
/// always completes).
pub const RETRY_NS: u64 = 2_000_000;
/// Read size when hashing.
const CHUNK: usize = 64 * 1024;
/// Under a lease: read in pieces of this much, asking between them whether
/// a writer waits.
const LEASE_PIECE: u64 = 1 << 20;

/// What a reading holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The whole content (the file was at most `max_size`).
    Bytes(Vec<u8>),
    /// Larger: its SHA-256 only.
    Sha256([u8; 32]),
}

/// One reading of a regular file.
#[derive(Debug, Clone)]
pub struct Reading {
    /// `fstat` at the reading (before the first pass).
    pub stat: libc::stat,
    pub content: Content,
    /// Bytes read (or hashed).
    pub len: u64,
    /// The bytes were the file's content at one instant (module comment).
    pub consistent: bool,
    /// Read under this reader's own lease, never broken.
    pub leased: bool,
}

impl Reading {
    /// SHA-256 of what was read.
    pub fn sha256(&self) -> [u8; 32] {
        match &self.content {
            Content::Bytes(b) => Sha256::digest(b).into(),
            Content::Sha256(d) => *d,
        }
    }
}

/// What a witness vouches for: the SHA-256 and length of a content.
pub type Vouched = ([u8; 32], u64);

/// One who may take a read lease where the reader may not.
pub trait Witness {
    /// The SHA-256 and length of what the file open as `fd` held while the
    /// witness's own read lease on it was never broken; `None` when it
    /// cannot say.
    fn vouch(&mut self, fd: i32) -> Option<Vouched>;
}

/// No witness.
impl Witness for () {
    fn vouch(&mut self, _fd: i32) -> Option<Vouched> {
        None
    }
}

pub enum Outcome {
    Read(Reading),
    /// Not a regular file: never read.
    NotRegular(libc::stat),
}

/// Whether the reader may try a lease.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lease {
    Try,
    /// The caller knows it holds the file open for writing (a lease cannot
    /// be granted) and saves the system calls.
    Never,
}

/// Reads regular file `fd` (opened read-only by the caller, who keeps it),
/// whole when at most `max_size` bytes, else by hash. `witness` is asked
/// only when `lease` allows one and this reader may not take it.
pub fn read(fd: i32, max_size: u64, lease: Lease, witness: &mut dyn Witness) -> Result<Outcome, Errno> {
    let start = sys::now_ns();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let st = sys::fstat(fd)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(Outcome::NotRegular(st));
        }
        let mut writer = false;
        let mut not_ours = lease == Lease::Try && !may_lease(&st);
        if lease == Lease::Try && !not_ours {
            match Held::take(fd) {
                Ok(held) => {
                    if let Some(r) = leased(fd, held, max_size)? {
                        return Ok(Outcome::Read(r));
                    }
                }
                // Someone holds the file open for writing or mapped
                // writable: two equal reads cannot rule out the mapping.
                Err(libc::EAGAIN) => writer = true,
                // Not ours to lease after all (the kernel's rule).
                Err(libc::EACCES | libc::EPERM) => not_ours = true,
                // No leases here (a filesystem without them): two reads decide.
                Err(_) => {}
            }
        }
        let mut r = twice(fd, st, max_size)?;
        r.consistent &= !writer;
        if r.consistent && not_ours {
            match witness.vouch(fd) {
                Some((digest, len)) => r.consistent = len == r.len && digest == r.sha256(),
                // Nobody can say: retrying would not change that.
                None => return Ok(Outcome::Read(Reading { consistent: false, ..r })),
            }
        }
        if r.consistent || attempt >= ATTEMPTS || sys::now_ns().saturating_sub(start) >= RETRY_NS {
            return Ok(Outcome::Read(r));
        }
    }
}

/// Root, or the file's owner (the kernel's rule, `CAP_LEASE` aside).
fn may_lease(st: &libc::stat) -> bool {
    let me = sys::geteuid();
    me == 0 || me == st.st_uid
}

/// One pass under `held`: `Some` only when the lease was never broken.
fn leased(fd: i32, held: Held, max_size: u64) -> Result<Option<Reading>, Errno> {
    let pass = sys::fstat(fd).and_then(|st| Ok((st, pass(fd, st.st_size as u64, max_size, Some(&held))?)));
    let intact = held.release();
    let (stat, got) = pass?;
    Ok(got.filter(|_| intact).filter(|(_, len)| *len == stat.st_size as u64).map(|(content, len)| Reading {
        stat,
        content,
        len,
        consistent: true,
        leased: true,
    }))
}

/// Two passes with size, mtime and ctime around both.
fn twice(fd: i32, st: libc::stat, max_size: u64) -> Result<Reading, Errno> {
    let size = st.st_size as u64;
    // Waits for a `write(2)` already running: ext4, tmpfs and btrfs take the
    // inode lock (which a buffered write holds throughout) for SEEK_DATA.
    sys::seek_data(fd);
    let (content, len) = pass(fd, size, max_size, None)?.ok_or(libc::EIO)?;
    let again = pass(fd, size, max_size, None)?;
    let after = sys::fstat(fd)?;
    let same = |a: &libc::stat| (a.st_size, a.st_mtime, a.st_mtime_nsec, a.st_ctime, a.st_ctime_nsec);
    let consistent = again.is_some_and(|(c, l)| c == content && l == len) && len == size && same(&st) == same(&after);
    Ok(Reading { stat: st, content, len, consistent, leased: false })
}

/// One pass over the file: the bytes, expecting about `size` and never
/// holding more than `max_size` (then a hash), or `None` when `lease` was
/// broken before the end (the rest is not read: the writer goes on now).
fn pass(fd: i32, size: u64, max_size: u64, lease: Option<&Held>) -> Result<Option<(Content, u64)>, Errno> {
    if size > max_size {
        return hash(fd, lease);
    }
    let piece = if lease.is_some() { LEASE_PIECE } else { u64::MAX };
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let at = bytes.len() as u64;
        if at == size && size > 0 {
            break; // the size fstat gave; the caller checks it still holds
        }
        if at > 0 && lease.is_some_and(Held::broken) {
            return Ok(None);
        }
        // What is left of the expected size (in pieces under a lease), then by chunks.
        let want = if at < size { (size - at).min(piece) as usize } else { CHUNK };
        bytes.resize(at as usize + want, 0);
        let n = sys::pread(fd, &mut bytes[at as usize..], at)?;
        bytes.truncate(at as usize + n);
        if n == 0 {
            break;
        }
        if bytes.len() as u64 > max_size {
            // Grew past the cap while we read: by hash instead.
            return hash(fd, lease);
        }
    }
    let len = bytes.len() as u64;
    Ok(Some((Content::Bytes(bytes), len)))
}

fn hash(fd: i32, lease: Option<&Held>) -> Result<Option<(Content, u64)>, Errno> {
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut at = 0u64;
    loop {
        if at > 0 && at.is_multiple_of(LEASE_PIECE) && lease.is_some_and(Held::broken) {
            return Ok(None);
        }
        let n = sys::pread(fd, &mut chunk, at)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
        at += n as u64;
    }
    Ok(Some((Content::Sha256(hasher.finalize().into()), at)))
}

/// The signal a lease break is sent as, to the reading thread only.
pub fn lease_signal() -> i32 {
    libc::SIGRTMAX()
}

/// A read lease on a descriptor, with its break signal blocked in this thread.
struct Held {
    fd: i32,
    sig: i32,
    /// This thread's signal mask before.
    mask: u64,
}

impl Held {
    /// `Err(EAGAIN)`: the file is open for writing (or mapped writable)
    /// somewhere, this process included.
    fn take(fd: i32) -> Result<Held, Errno> {
        let sig = lease_signal();
        let mask = sys::block(sig)?;
        let held = Held { fd, sig, mask };
        let owner = sys::OwnerEx { kind: sys::F_OWNER_TID, pid: sys::gettid() };
        let taken = sys::fcntl(fd, sys::F_SETSIG, sig as libc::c_long)
            .and_then(|_| sys::fcntl(fd, sys::F_SETOWN_EX, &owner as *const sys::OwnerEx as libc::c_long))
            .and_then(|_| sys::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK as libc::c_long));
        match taken {
            Ok(_) => Ok(held),
            Err(e) => {
                sys::set_mask(held.mask);
                Err(e)
            }
        }
    }

    /// A writer asked for the file (the lease is being broken or is gone).
    fn broken(&self) -> bool {
        sys::fcntl(self.fd, libc::F_GETLEASE, 0) != Ok(libc::F_RDLCK as libc::c_long)
    }

    /// Gives the lease up; true when it was never broken.
    fn release(self) -> bool {
        // After this no break can signal: the kernel signals under the same
        // lock that removes the lease. Err: already gone (a break timed out).
        let unlocked = sys::fcntl(self.fd, libc::F_SETLEASE, libc::F_UNLCK as libc::c_long).is_ok();
        let broken = sys::take_lease_signal(self.sig, self.fd);
        sys::set_mask(self.mask);
        unlocked && !broken
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    /// A file holding `content`, nobody writing, and a read-only descriptor.
    fn file(content: &[u8]) -> (tempfile::TempPath, std::fs::File) {
        let f = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::write(&f, content).unwrap();
        let r = std::fs::File::open(&f).unwrap();
        (f, r)
    }

    fn reading(o: Outcome) -> Reading {
        match o {
            Outcome::Read(r) => r,
            Outcome::NotRegular(_) => panic!("not regular"),
        }
    }

    #[test]
    fn quiet_files_read_consistent_with_and_without_lease() {
        let content: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let (_f, r) = file(&content);
        for lease in [Lease::Try, Lease::Never] {
            let got = reading(read(r.as_raw_fd(), 1 << 20, lease, &mut ()).unwrap());
            assert_eq!(got.content, Content::Bytes(content.clone()));
            assert!(got.consistent);
            let big = reading(read(r.as_raw_fd(), 10, lease, &mut ()).unwrap());
            assert_eq!(big.content, Content::Sha256(Sha256::digest(&content).into()));
            assert_eq!(big.len, content.len() as u64);
            assert!(big.consistent);
        }
    }

    #[test]
    fn no_lease_while_open_for_writing_and_nothing_pending_after() {
        let (f, r) = file(b"abc");
        let w = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        assert_eq!(Held::take(r.as_raw_fd()).err(), Some(libc::EAGAIN));
        drop(w);
        let held = Held::take(r.as_raw_fd()).expect("lease granted with no writer");
        assert!(!held.broken());
        assert!(held.release());
        let mut pending = 0u64;
        // SAFETY: pending is a writable kernel sigset.
        unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut pending as *mut u64, 8) };
        assert_eq!(pending & (1 << (lease_signal() - 1)), 0);
    }

    #[test]
    fn a_writer_breaks_the_lease_and_the_signal_is_taken() {
        let (f, r) = file(b"abc");
        let held = Held::take(r.as_raw_fd()).unwrap();
        // A writer that does not wait (O_NONBLOCK) starts the break and fails.
        let e = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&f).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EWOULDBLOCK));
        assert!(held.broken());
        assert!(!held.release(), "a broken lease proves nothing");
        let mut pending = 0u64;
        // SAFETY: pending is a writable kernel sigset.
        unsafe { libc::syscall(libc::SYS_rt_sigpending, &mut pending as *mut u64, 8) };
        assert_eq!(pending & (1 << (lease_signal() - 1)), 0, "the break signal was taken");
    }

    /// Cost of one reading of a quiet file, each way (`cargo test
    /// --release -p filetrail-wire cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn cost() {
        for size in [4096, 64 * 1024, 1 << 20] {
            let (_f, r) = file(&vec![b'x'; size]);
            let fd = r.as_raw_fd();
            let n = 5_000;
            let time = |what: &str, f: &dyn Fn()| {
                let t = std::time::Instant::now();
                (0..n).for_each(|_| f());
                eprintln!("{size} bytes, {what}: {:?} per reading", t.elapsed() / n);
            };
            time("one pass (before issue 16)", &|| {
                let st = sys::fstat(fd).unwrap();
                pass(fd, st.st_size as u64, 1 << 30, None).unwrap().unwrap();
                sys::fstat(fd).unwrap();
            });
            time("two passes", &|| assert!(twice(fd, sys::fstat(fd).unwrap(), 1 << 30).unwrap().consistent));
            time("under a lease", &|| {
                let st = sys::fstat(fd).unwrap();
                assert!(
                    leased(fd, Held::take(fd).unwrap(), 1 << 30).unwrap().is_some_and(|r| r.stat.st_size == st.st_size)
                );
            });
        }
    }
}
