//! A thin, safe layer over Linux fanotify for the kernel watch
//! ([`crate::watch`]): a notification group that reports the directory and
//! name of each event (`FAN_REPORT_DFID_NAME`) and, where the kernel can, a
//! pidfd of the process that caused it (`FAN_REPORT_PIDFD`, 5.15+); marks on
//! single directories; reading and parsing events; and turning a directory's
//! file handle back into an open directory (`open_by_handle_at`).
//!
//! The `nix` crate's fanotify (0.32) neither sets `FAN_REPORT_DFID_NAME` nor
//! parses info records, so the records are parsed here, from bytes, by
//! [`parse`] (unit tested). Root only (`CAP_SYS_ADMIN`, and
//! `CAP_DAC_READ_SEARCH` for `open_by_handle_at`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Events the watch asks for on each directory: entries created, deleted
/// and moved, directories included. No `FAN_EVENT_ON_CHILD`: with it, every
/// open and close of any entry would go through the parent's marks
/// (measured here: open+close 1.12x); content and attribute events come
/// from marks on the tracked files themselves ([`FILE_MASK`]: 1.02–1.04x on
/// open+close of a marked file, nothing on other files).
pub const DIR_MASK: u64 =
    libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO | libc::FAN_ONDIR;

/// Events the watch asks for on each tracked file: content and attributes.
pub const FILE_MASK: u64 = libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE | libc::FAN_ATTRIB;

/// A notification group.
pub struct Fanotify {
    fd: OwnedFd,
    /// Events carry a pidfd of their process (`FAN_REPORT_PIDFD`).
    pub pidfds: bool,
    /// Marks also ask for `FAN_RENAME` (5.17+): one event with both names.
    pub renames: bool,
}

/// A directory entry an event names: the directory's file system, its
/// file handle (as `struct file_handle`: size, type, bytes) and the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub fsid: [i32; 2],
    pub handle: Vec<u8>,
    pub name: Vec<u8>,
}

/// One event as read: what happened (`mask`), to which entry (`dir`, or for
/// `FAN_RENAME` `old` and `new`), by which process.
#[derive(Debug, Default)]
pub struct Event {
    pub mask: u64,
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    pub dir: Option<Entry>,
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

/// An event as parsed from bytes: the pidfd is still a bare number.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RawEvent {
    pub mask: u64,
    pub pid: i32,
    pub pidfd: Option<RawFd>,
    pub dir: Option<Entry>,
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

const META_LEN: usize = std::mem::size_of::<libc::fanotify_event_metadata>();

impl Fanotify {
    /// A notification group reporting directory handles and names, with
    /// pidfds where the kernel supports them.
    pub fn new() -> io::Result<Fanotify> {
        let base = libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_REPORT_DFID_NAME | libc::FAN_UNLIMITED_MARKS;
        let init = |flags| {
            // SAFETY: fanotify_init takes two flag words and returns a new descriptor or -1.
            let fd = unsafe { libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint) };
            if fd < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: the kernel returned a new descriptor we now own.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        };
        let (fd, pidfds) = match init(base | libc::FAN_REPORT_PIDFD) {
            Ok(fd) => (fd, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (init(base)?, false),
            Err(e) => return Err(e),
        };
        Ok(Fanotify { fd, pidfds, renames: true })
    }

    /// Marks the directory `dir` (an open descriptor) for changes of its
    /// entries. `FAN_RENAME` is dropped for good the first time the kernel
    /// refuses it.
    pub fn mark_dir(&mut self, dir: BorrowedFd) -> io::Result<()> {
        let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_ONLYDIR;
        let mark = |mask: u64| {
            // SAFETY: a null path with a directory descriptor marks that directory.
            let r = unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, mask, dir.as_raw_fd(), std::ptr::null()) };
            if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
        };
        if self.renames {
            match mark(DIR_MASK | libc::FAN_RENAME) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.renames = false,
                r => return r,
            }
        }
        mark(DIR_MASK)
    }

    /// Marks the entry `name` of `dir` (not following a symlink) for
    /// content and attribute changes.
    pub fn mark_file(&self, dir: BorrowedFd, name: &[u8]) -> io::Result<()> {
        let name = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_DONT_FOLLOW;
        // SAFETY: name is a valid NUL-terminated name relative to dir.
        let r = unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, FILE_MASK, dir.as_raw_fd(), name.as_ptr()) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// Reads the events ready now (blocks until there is at least one).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Vec<Event>> {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(parse(&buf[..n as usize])
            .into_iter()
            .map(|e| Event {
                mask: e.mask,
                pid: e.pid,
                // SAFETY: the kernel put a new descriptor in this record for us;
                // parse returns each one once.
                pidfd: e.pidfd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                dir: e.dir,
                old: e.old,
                new: e.new,
            })
            .collect())
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Parses a buffer of events. Malformed records end the parse (what was
/// parsed before them is kept); records of unknown types are skipped.
pub fn parse(buf: &[u8]) -> Vec<RawEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while buf.len() - at >= META_LEN {
        let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap());
        let event_len = u32_at(at) as usize;
        let (vers, metadata_len) = (buf[at + 4], u16::from_ne_bytes([buf[at + 6], buf[at + 7]]) as usize);
        if event_len < META_LEN || at + event_len > buf.len() || metadata_len < META_LEN || metadata_len > event_len {
            break;
        }
        if vers != libc::FANOTIFY_METADATA_VERSION {
            break;
        }
        let mask = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let fd = u32_at(at + 16) as i32;
        let pid = u32_at(at + 20) as i32;
        let mut ev = RawEvent { mask, pid, ..Default::default() };
        // A group reporting file ids gets no event descriptor; close any.
        if fd >= 0 {
            // SAFETY: the kernel opened this descriptor for us; we never use it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let mut info = at + metadata_len;
        let end = at + event_len;
        while end - info >= 4 {
            let kind = buf[info];
            let len = u16::from_ne_bytes([buf[info + 2], buf[info + 3]]) as usize;
            if len < 4 || info + len > end {
                break;
            }
            let body = &buf[info + 4..info + len];
            match kind {
                libc::FAN_EVENT_INFO_TYPE_DFID_NAME
                | libc::FAN_EVENT_INFO_TYPE_DFID
                | libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
                | libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => {
                    let named = kind != libc::FAN_EVENT_INFO_TYPE_DFID;
                    if let Some(entry) = entry(body, named) {
                        match kind {
                            libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => ev.old = Some(entry),
                            libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => ev.new = Some(entry),
                            _ => ev.dir = Some(entry),
                        }
                    }
                }
                libc::FAN_EVENT_INFO_TYPE_PIDFD if body.len() >= 4 => {
                    let fd = i32::from_ne_bytes(body[..4].try_into().unwrap());
                    ev.pidfd = (fd >= 0).then_some(fd);
                }
                _ => {}
            }
            info += len;
        }
        out.push(ev);
        at += event_len;
    }
    out
}

/// An fsid, a `struct file_handle` and (when `named`) a NUL-terminated name.
fn entry(body: &[u8], named: bool) -> Option<Entry> {
    let fsid =
        [i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?), i32::from_ne_bytes(body.get(4..8)?.try_into().ok()?)];
    let handle_bytes = u32::from_ne_bytes(body.get(8..12)?.try_into().ok()?) as usize;
    let handle = body.get(8..16usize.checked_add(handle_bytes)?)?.to_vec();
    let name = if named {
        let rest = &body[16 + handle_bytes..];
        rest[..rest.iter().position(|&b| b == 0)?].to_vec()
    } else {
        Vec::new()
    };
    Some(Entry { fsid, handle, name })
}

/// The file system id of the file system holding `fd` (as events report it).
pub fn fsid(fd: BorrowedFd) -> io::Result<[i32; 2]> {
    // SAFETY: statfs is plain data; fstatfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-parameter.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsid_t is two ints; its fields are private in libc.
    Ok(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(st.f_fsid) })
}

/// Opens the directory `handle` names (`O_PATH`), on the file system of `mount_fd`.
pub fn open_by_handle(mount_fd: BorrowedFd, handle: &[u8]) -> io::Result<OwnedFd> {
    // struct file_handle needs 4-byte alignment: copy into u32s.
    let mut aligned = vec![0u32; handle.len().div_ceil(4)];
    // SAFETY: aligned has at least handle.len() bytes.
    unsafe { std::ptr::copy_nonoverlapping(handle.as_ptr(), aligned.as_mut_ptr().cast::<u8>(), handle.len()) };
    if handle.len() < 8 || aligned[0] as usize + 8 > handle.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: aligned holds a complete struct file_handle (checked above); the
    // kernel only reads it.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            aligned.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, fsid: [i32; 2], handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(fsid[0].to_ne_bytes());
        body.extend(fsid[1].to_ne_bytes());
        body.extend((handle.len() as u32).to_ne_bytes());
        body.extend(1i32.to_ne_bytes());
        body.extend(handle);
        body.extend(name);
        body.push(0);
        while (body.len() + 4) % 4 != 0 {
            body.push(0);
        }
        let mut r = vec![kind, 0];
        r.extend(((body.len() + 4) as u16).to_ne_bytes());
        r.extend(body);
        r
    }

    fn event(mask: u64, pid: i32, infos: &[Vec<u8>]) -> Vec<u8> {
        let len = META_LEN + infos.iter().map(Vec::len).sum::<usize>();
        let mut e = Vec::new();
        e.extend((len as u32).to_ne_bytes());
        e.push(libc::FANOTIFY_METADATA_VERSION);
        e.push(0);
        e.extend((META_LEN as u16).to_ne_bytes());
        e.extend(mask.to_ne_bytes());
        e.extend((-1i32).to_ne_bytes());
        e.extend(pid.to_ne_bytes());
        infos.iter().for_each(|i| e.extend(i));
        e
    }

    #[test]
    fn parses_names_renames_and_pidfds() {
        let mut pidfd = vec![libc::FAN_EVENT_INFO_TYPE_PIDFD, 0, 8, 0];
        pidfd.extend((-1i32).to_ne_bytes()); // FAN_NOPIDFD: the process was gone
        let mut buf = event(
            libc::FAN_CLOSE_WRITE,
            42,
            &[record(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, [1, 2], b"12345678", b"app.conf"), pidfd],
        );
        buf.extend(event(
            libc::FAN_RENAME,
            43,
            &[
                record(libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, [1, 2], b"abcd", b"a"),
                record(libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, [1, 2], b"efgh", b"b"),
            ],
        ));
        let got = parse(&buf);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].mask, got[0].pid, got[0].pidfd), (libc::FAN_CLOSE_WRITE, 42, None));
        let dir = got[0].dir.as_ref().unwrap();
        assert_eq!((dir.fsid, &dir.name[..]), ([1, 2], &b"app.conf"[..]));
        assert_eq!(&dir.handle[..4], &8u32.to_ne_bytes());
        assert_eq!(&dir.handle[8..], b"12345678");
        assert_eq!(got[1].old.as_ref().unwrap().name, b"a");
        assert_eq!(got[1].new.as_ref().unwrap().handle[8..], *b"efgh");
    }

    #[test]
    fn truncated_or_lying_records_stop_the_parse_without_panicking() {
        let good = event(libc::FAN_MODIFY, 1, &[record(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, [0, 0], b"h", b"n")]);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[META_LEN + 2] = 0xff; // an info record longer than its event
        assert_eq!(parse(&lying)[0].dir, None);
        let mut handle_lies = good.clone();
        handle_lies[META_LEN + 12] = 0xff; // handle_bytes beyond the record
        assert_eq!(parse(&handle_lies)[0].dir, None);
        assert_eq!(parse(&good).len(), 1);
    }
}
