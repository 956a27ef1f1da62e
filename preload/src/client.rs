//! The connection to the collector.
//!
//! Invariants: the library talks only to a collector run by root or by the
//! process's own user, checked (`SO_PEERCRED`) before it sends a byte; the
//! socket is close-on-exec and lives at a high descriptor
//! number; every send uses `MSG_NOSIGNAL`; every wait is bounded by the
//! process's remaining time budget (`FILETRAIL_TIMEOUT_MS`, 1 s by default),
//! and once the budget is spent the process stops talking to the collector.
//! Before each send the descriptor is checked to still be our socket, so a
//! program that closed or replaced it never receives our bytes.

use std::io::{self, Read};

use filetrail_wire::{Claims, ClientMsg, PROTOCOL_VERSION, Policy, ServerMsg, frame_prefix, read_frame};

use crate::sys;

/// The library's socket is moved to the first free descriptor at or above
/// this, out of the way of programs that expect low numbers to be free.
const HIGH_FD: i32 = 900;
/// Largest `Welcome` the library accepts.
const MAX_REPLY: u64 = 0; // a Welcome has no payload

/// Time this process may still spend waiting on the collector.
pub struct Budget {
    left_ms: u64,
}

impl Budget {
    pub const fn new(ms: u64) -> Self {
        Budget { left_ms: ms }
    }
    pub fn exhausted(&self) -> bool {
        self.left_ms == 0
    }
    fn charge(&mut self, since_ms: u64) {
        self.left_ms = self.left_ms.saturating_sub(sys::now_ms().saturating_sub(since_ms));
    }
}

pub struct Conn {
    fd: i32,
    ino: u64,
}

struct SockIo(i32);

impl SockIo {
    /// One frame in one `sendmsg`: prefix and header, then the payload parts.
    fn send_frame(&self, msg: &ClientMsg, payload: &[&[u8]]) -> io::Result<()> {
        let head = frame_prefix(msg, payload)?;
        let mut parts = Vec::with_capacity(payload.len() + 1);
        parts.push(&head[..]);
        parts.extend_from_slice(payload);
        sys::send_parts(self.0, &parts).map_err(io::Error::from_raw_os_error)
    }
}

impl Read for SockIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.0, buf).map_err(io::Error::from_raw_os_error)
    }
}

impl Conn {
    /// Connects, checks who listens, says hello and learns what to track.
    pub fn open(socket: &[u8], budget: &mut Budget) -> Result<(Conn, Policy), String> {
        if budget.exhausted() {
            return Err("time budget spent".into());
        }
        let start = sys::now_ms();
        let result = Self::handshake(socket, budget.left_ms);
        budget.charge(start);
        result
    }

    fn handshake(socket: &[u8], timeout_ms: u64) -> Result<(Conn, Policy), String> {
        let fd = sys::connect_unix(socket, timeout_ms).map_err(|e| {
            format!("cannot connect to {}: {}", String::from_utf8_lossy(socket), io::Error::from_raw_os_error(e))
        })?;
        check_listener(fd.raw()).map_err(|why| format!("not talking to {}: {why}", String::from_utf8_lossy(socket)))?;
        // Move out of the low numbers; keep the original if that fails.
        let fd = match sys::dup_cloexec_at_least(fd.raw(), HIGH_FD) {
            Ok(high) => high.into_raw(),
            Err(_) => fd.into_raw(),
        };
        let ino = sys::fstat(fd).map(|st| st.st_ino).unwrap_or(0);
        let conn = Conn { fd, ino };
        let mut io = SockIo(fd);
        let hello = io.send_frame(&ClientMsg::Hello { version: PROTOCOL_VERSION, claims: Some(claims()) }, &[]);
        let reply = hello.map_err(|e| e.to_string()).and_then(|()| {
            read_frame(&mut io, MAX_REPLY).and_then(|f| f.parse::<ServerMsg>()).map_err(|e| e.to_string())
        });
        match reply {
            Ok(ServerMsg::Welcome { track, ignore, max_size, .. }) => {
                let policy = Policy::new(&track, &ignore, max_size).map_err(|e| format!("bad ignore glob: {e}"))?;
                Ok((conn, policy))
            }
            Ok(ServerMsg::Error { message }) => Err(format!("collector refused: {message}")),
            Ok(ServerMsg::Unknown) => Err("collector sent an unknown reply".into()),
            Err(e) => Err(format!("handshake failed: {e}")),
        }
    }

    /// The descriptor number, so hooks can notice when a program closes it.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Sends one event. On failure the connection is unusable.
    pub fn send(&mut self, msg: &ClientMsg, payload: &[&[u8]], budget: &mut Budget) -> Result<(), String> {
        if budget.exhausted() {
            return Err("time budget spent".into());
        }
        if !sys::fstat(self.fd).is_ok_and(|st| st.st_ino == self.ino && st.st_mode & libc::S_IFMT == libc::S_IFSOCK) {
            return Err("socket descriptor was closed or replaced by the program".into());
        }
        let start = sys::now_ms();
        let r = SockIo(self.fd).send_frame(msg, payload).map_err(|e| format!("send failed: {e}"));
        budget.charge(start);
        r
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

/// What this process says about itself, for the collector's fallback when
/// it cannot read /proc (the process exited before it looked).
fn claims() -> Claims {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let argv = crate::snapshot::of_path(b"/proc/self/cmdline", 64 * 1024, crate::snapshot::Follow::Yes).bytes;
    Claims {
        // SAFETY: getuid/geteuid cannot fail.
        uid: unsafe { libc::getuid() },
        // SAFETY: as above.
        euid: unsafe { libc::geteuid() },
        exe: sys::readlink(c"/proc/self/exe").map(text).unwrap_or_default(),
        argv: argv.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| text(a.to_vec())).collect(),
        cwd: sys::getcwd().map(text).unwrap_or_default(),
    }
}
