//! The connection to the collector.
//!
//! Invariants: the library talks only to a collector run by root or by the
//! process's own user, checked (`SO_PEERCRED`) before it sends a byte; the
//! socket is close-on-exec and lives at a high descriptor number; every
//! send uses `MSG_NOSIGNAL`; no call blocks in the kernel beyond the
//! process's remaining time budget (`FILETRAIL_TIMEOUT_MS`, 1 s by
//! default), which every wait — connect, `Welcome`, room in the socket
//! buffer — draws from, and once the budget is spent the process stops
//! talking to the collector. Before each send the descriptor is checked to
//! still be our socket, so a program that closed or replaced it never
//! receives our bytes.

use std::io::{self, Read};

use filetrail_wire::{ClientMsg, PROTOCOL_VERSION, Policy, ServerMsg, frame_prefix, read_frame};

use crate::sys::{self, Errno};

/// The library's socket is moved to the first free descriptor at or above
/// this, out of the way of programs that expect low numbers to be free.
const HIGH_FD: i32 = 900;
/// Largest `Welcome` the library accepts.
const MAX_REPLY: u64 = 0; // a Welcome has no payload

/// Time this process may still spend waiting on the collector, in total.
pub struct Budget {
    left_ns: u64,
}

impl Budget {
    pub const fn new(ms: u64) -> Self {
        Budget { left_ns: ms.saturating_mul(1_000_000) }
    }
    pub fn exhausted(&self) -> bool {
        self.left_ns == 0
    }
    /// Runs `op`, which may block for the time left (its argument, in ns),
    /// and charges the time it took.
    fn charged<T>(&mut self, op: impl FnOnce(u64) -> T) -> T {
        let start = sys::now_ns();
        let r = op(self.left_ns);
        self.left_ns = self.left_ns.saturating_sub(sys::now_ns().saturating_sub(start));
        r
    }
    /// Waits until `fd` is ready for `events`; `ETIMEDOUT` once the budget
    /// is spent. A signal ends the wait early (the caller tries again).
    fn wait(&mut self, fd: i32, events: i16) -> Result<(), Errno> {
        if self.exhausted() {
            return Err(libc::ETIMEDOUT);
        }
        match self.charged(|left| sys::poll(fd, events, left)) {
            Ok(true) | Err(libc::EINTR) => Ok(()),
            Ok(false) => {
                self.left_ns = 0;
                Err(libc::ETIMEDOUT)
            }
            Err(e) => Err(e),
        }
    }
}

pub struct Conn {
    fd: i32,
    ino: u64,
}

/// The socket, with the budget its waits draw from.
struct SockIo<'a> {
    fd: i32,
    budget: &'a mut Budget,
}

impl SockIo<'_> {
    /// One frame in one `sendmsg` when it fits: prefix and header, then the
    /// payload parts.
    fn send_frame(&mut self, msg: &ClientMsg, payload: &[&[u8]]) -> io::Result<()> {
        let head = frame_prefix(msg, payload)?;
        let mut parts = Vec::with_capacity(payload.len() + 1);
        parts.push(&head[..]);
        parts.extend_from_slice(payload);
        let (fd, budget) = (self.fd, &mut *self.budget);
        sys::send_parts(fd, &parts, || budget.wait(fd, libc::POLLOUT)).map_err(io_error)
    }
}

impl Read for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (fd, budget) = (self.fd, &mut *self.budget);
        sys::recv(fd, buf, || budget.wait(fd, libc::POLLIN)).map_err(io_error)
    }
}

fn io_error(e: Errno) -> io::Error {
    match e {
        libc::ETIMEDOUT => io::Error::new(io::ErrorKind::TimedOut, "time budget spent waiting on the collector"),
        e => io::Error::from_raw_os_error(e),
    }
}

impl Conn {
    /// Connects, checks who listens, says hello and learns what to track.
    pub fn open(socket: &[u8], budget: &mut Budget) -> Result<(Conn, Policy), String> {
        if budget.exhausted() {
            return Err("time budget spent".into());
        }
        let name = || String::from_utf8_lossy(socket);
        let fd = budget
            .charged(|left| sys::connect_unix(socket, left))
            .map_err(|e| format!("cannot connect to {}: {}", name(), io_error(e)))?;
        check_listener(fd.raw()).map_err(|why| format!("not talking to {}: {why}", name()))?;
        // Move out of the low numbers; keep the original if that fails.
        let fd = match sys::dup_cloexec_at_least(fd.raw(), HIGH_FD) {
            Ok(high) => high.into_raw(),
            Err(_) => fd.into_raw(),
        };
        let ino = sys::fstat(fd).map(|st| st.st_ino).unwrap_or(0);
        let conn = Conn { fd, ino };
        let mut io = SockIo { fd, budget };
        let hello = io.send_frame(&ClientMsg::Hello { version: PROTOCOL_VERSION }, &[]);
        let reply = hello.map_err(|e| e.to_string()).and_then(|()| {
            read_frame(&mut io, MAX_REPLY).and_then(|f| f.parse::<ServerMsg>()).map_err(|e| e.to_string())
        });
        let policy = match reply {
            Ok(ServerMsg::Welcome { track, ignore, max_size, .. }) => {
                Policy::new(&track, &ignore, max_size).map_err(|e| format!("bad ignore glob: {e}"))
            }
            Ok(ServerMsg::Error { message }) => Err(format!("collector refused: {message}")),
            Ok(ServerMsg::Unknown) => Err("collector sent an unknown reply".into()),
            Err(e) => Err(format!("handshake failed: {e}")),
        };
        match policy {
            Ok(policy) => Ok((conn, policy)),
            Err(why) => {
                conn.close();
                Err(why)
            }
        }
    }

    /// The descriptor number, so hooks can notice when a program closes it.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Sends one event. On failure the connection is unusable. A send that
    /// fits the socket buffer costs one `fstat` and one `sendmsg`.
    pub fn send(&mut self, msg: &ClientMsg, payload: &[&[u8]], budget: &mut Budget) -> Result<(), String> {
        if budget.exhausted() {
            return Err("time budget spent".into());
        }
        if !sys::fstat(self.fd).is_ok_and(|st| st.st_ino == self.ino && st.st_mode & libc::S_IFMT == libc::S_IFSOCK) {
            return Err("socket descriptor was closed or replaced by the program".into());
        }
        SockIo { fd: self.fd, budget }.send_frame(msg, payload).map_err(|e| format!("send failed: {e}"))
    }

    /// Closes the socket (only ours: checked like `send`).
    pub fn close(self) {
        if sys::fstat(self.fd).is_ok_and(|st| st.st_ino == self.ino) {
            sys::close(self.fd);
        }
    }

    /// Forgets the socket without closing: the program already closed it.
    pub fn abandon(self) {}
}

/// Only a collector run by root, or by this process's own user (which
/// learns nothing that user could not read anyway: tests and `scripts/try`
/// run collectors so), may hear what this process changes. Anyone else may
/// have bound the socket path first: a stale path, a `FILETRAIL_SOCKET` in
/// /tmp.
fn check_listener(fd: i32) -> Result<(), String> {
    let euid = sys::geteuid();
    match sys::peer_uid(fd) {
        Ok(uid) if uid == 0 || uid == euid => Ok(()),
        Ok(uid) => Err(format!("it is served by uid {uid}, neither root nor this process's user (uid {euid})")),
        Err(e) => Err(format!("cannot tell who serves it: {}", io::Error::from_raw_os_error(e))),
    }
}
