//! The connection to the collector.
//!
//! Invariants: the library talks only to a collector run by root or by the
//! process's own user, checked (`SO_PEERCRED`) before it sends a byte; the
//! socket is close-on-exec and lives at a high descriptor number; every
//! send uses `MSG_NOSIGNAL`; no call blocks in the kernel beyond the
//! process's time budget ([`Budget`]: `FILETRAIL_TIMEOUT_MS`, 1 s by
//! default, refilled at that much per minute), which every wait — connect,
//! `Welcome`, room in the socket buffer — draws from; a reconnect attempt
//! waits at most what its caller allows of it. Acks are read only when
//! they have arrived, never waited for. Before each send or read the
//! descriptor is checked to still be our socket, so a program that closed
//! or replaced it never receives our bytes nor loses its own.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use filetrail_wire::atomic::Vouched;
use filetrail_wire::{ClientMsg, PROTOCOL_VERSION, Policy, ServerMsg, WirePath, frame_prefix, read_frame};

use crate::sys::{self, Errno};

/// The library's socket is moved to the first free descriptor at or above
/// this, out of the way of programs that expect low numbers to be free.
const HIGH_FD: i32 = 900;
/// Largest `Welcome` the library accepts.
const MAX_REPLY: u64 = 0; // a Welcome has no payload
/// Largest reply header read after `Welcome` (an `Ack`, an `Error`).
const MAX_REPLY_HEADER: usize = 64 * 1024;
/// A spent budget is whole again after this long.
const REFILL_NS: u64 = 60_000_000_000;

/// Time this process may spend waiting on the collector: a bucket of
/// `FILETRAIL_TIMEOUT_MS` that refills at that much per minute. A collector
/// that hangs costs a long-lived process at most the bucket at first and
/// then that much per minute.
pub struct Budget {
    left_ns: u64,
    cap_ns: u64,
    /// When the bucket was last refilled (0: not yet).
    at_ns: u64,
}

impl Budget {
    pub const fn new(ms: u64) -> Self {
        let cap_ns = ms.saturating_mul(1_000_000);
        Budget { left_ns: cap_ns, cap_ns, at_ns: 0 }
    }
    pub fn exhausted(&self) -> bool {
        self.left_ns == 0
    }
    /// Adds what the time since the last refill earned.
    fn refill(&mut self) {
        let now = sys::now_ns();
        if self.at_ns == 0 || self.left_ns >= self.cap_ns {
            self.at_ns = now;
            return;
        }
        let earned = u128::from(now.saturating_sub(self.at_ns)) * u128::from(self.cap_ns) / u128::from(REFILL_NS);
        if earned > 0 {
            self.left_ns = self.cap_ns.min(self.left_ns.saturating_add(earned as u64));
            self.at_ns = now;
        }
    }
    /// Runs `op` with at most `cap_ns` of this budget and charges what it spent.
    fn within<T>(&mut self, cap_ns: u64, op: impl FnOnce(&mut Budget) -> T) -> T {
        self.refill();
        let mut part = Budget { left_ns: self.left_ns.min(cap_ns), cap_ns: 0, at_ns: 0 };
        let given = part.left_ns;
        let r = op(&mut part);
        self.left_ns -= given - part.left_ns;
        r
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
    /// Bytes of replies received but not yet a whole frame.
    inbox: Vec<u8>,
    /// The collector acknowledges events (protocol 2): keep them until it does.
    pub acks: bool,
    /// The collector vouches for readings (protocol 3).
    vouches: bool,
    /// The last `Vouched` answer read: its `req`, and what it vouched for.
    vouched: Option<(u64, Option<Vouched>)>,
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

/// Why a connection is unusable.
pub struct Failure {
    pub why: String,
    /// The collector refused what this process sent (an `Error` reply):
    /// sending it again would not help.
    pub refused: bool,
}

impl Failure {
    fn broken(why: String) -> Failure {
        Failure { why, refused: false }
    }
}

/// A random number naming this process image to the collector (drawn once;
/// an `exec` loads the library anew and draws another). Never 0.
pub(crate) fn image() -> u64 {
    static IMAGE: AtomicU64 = AtomicU64::new(0);
    let drawn = IMAGE.load(Relaxed);
    if drawn != 0 {
        return drawn;
    }
    let fresh = sys::random_u64().unwrap_or_else(|| sys::now_ns() ^ (sys::getpid() as u64).rotate_left(32)) | 1;
    match IMAGE.compare_exchange(0, fresh, Relaxed, Relaxed) {
        Ok(_) => fresh,
        Err(other) => other,
    }
}

impl Conn {
    /// Connects, checks who listens, says hello and learns what to track,
    /// waiting at most `cap_ns` of the budget.
    pub fn open(socket: &[u8], budget: &mut Budget, cap_ns: u64) -> Result<(Conn, Policy), String> {
        budget.within(cap_ns, |budget| Conn::open_within(socket, budget))
    }

    fn open_within(socket: &[u8], budget: &mut Budget) -> Result<(Conn, Policy), String> {
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
        let mut conn = Conn { fd, ino, inbox: Vec::new(), acks: false, vouches: false, vouched: None };
        let mut io = SockIo { fd, budget };
        let hello = io.send_frame(&ClientMsg::Hello { version: PROTOCOL_VERSION, image: image(), start: 0 }, &[]);
        let reply = hello.map_err(|e| e.to_string()).and_then(|()| {
            read_frame(&mut io, MAX_REPLY).and_then(|f| f.parse::<ServerMsg>()).map_err(|e| e.to_string())
        });
        let policy = match reply {
            Ok(ServerMsg::Welcome { version, track, ignore, max_size }) => {
                conn.acks = version >= 2;
                conn.vouches = version >= 3;
                Policy::new(&track, &ignore, max_size).map_err(|e| format!("bad ignore glob: {e}"))
            }
            Ok(ServerMsg::Error { message }) => Err(format!("collector refused: {message}")),
            Ok(ServerMsg::Ack { .. } | ServerMsg::Vouched { .. } | ServerMsg::Unknown) => {
                Err("collector sent an unknown reply".into())
            }
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

    /// Sends one event, after reading the acks that have arrived; returns
    /// the highest one. On failure the connection is unusable. A send that
    /// fits the socket buffer costs one `fstat`, one `recvfrom` (usually
    /// `EAGAIN`) and one `sendmsg`; only room in a full socket buffer is
    /// waited for (from the budget).
    pub fn send(&mut self, msg: &ClientMsg, payload: &[&[u8]], budget: &mut Budget) -> Result<Option<u64>, Failure> {
        if !self.is_ours() {
            return Err(Failure::broken("socket descriptor was closed or replaced by the program".into()));
        }
        let acked = self.read_acks()?;
        budget.refill();
        SockIo { fd: self.fd, budget }
            .send_frame(msg, payload)
            .map_err(|e| Failure::broken(format!("send failed: {e}")))?;
        Ok(acked)
    }

    /// Reads what replies have arrived, without waiting: the highest `Ack`.
    /// An error when the collector closed the connection or refused us.
    fn read_acks(&mut self) -> Result<Option<u64>, Failure> {
        let mut buf = [0u8; 512];
        loop {
            match sys::recv(self.fd, &mut buf, || Err(libc::EAGAIN)) {
                Ok(0) => break,
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(libc::EAGAIN) => return self.parse_replies(),
                Err(e) => return Err(Failure::broken(format!("reading from the collector: {}", io_error(e)))),
            }
        }
        // The collector closed the connection: an `Error` may say why.
        self.parse_replies()?;
        Err(Failure::broken("the collector closed the connection".into()))
    }

    fn parse_replies(&mut self) -> Result<Option<u64>, Failure> {
        let unexpected = || Failure::broken("the collector sent an unexpected reply".into());
        let mut acked = None;
        while self.inbox.len() >= 12 {
            let header_len = u32::from_le_bytes(self.inbox[..4].try_into().expect("4 bytes")) as usize;
            if header_len > MAX_REPLY_HEADER || self.inbox[4..12] != [0; 8] {
                return Err(unexpected());
            }
            if self.inbox.len() < 12 + header_len {
                break;
            }
            let reply = read_frame(&mut &self.inbox[..12 + header_len], 0).and_then(|f| f.parse::<ServerMsg>());
            self.inbox.drain(..12 + header_len);
            match reply {
                Ok(ServerMsg::Ack { upto }) => acked = acked.max(Some(upto)),
                Ok(ServerMsg::Vouched { req, sha256, len }) => {
                    let digest = sha256.as_deref().and_then(unhex);
                    self.vouched = Some((req, digest.map(|d| (d, len))));
                }
                Ok(ServerMsg::Error { message }) => {
                    return Err(Failure { why: format!("collector refused: {message}"), refused: true });
                }
                Ok(_) => {}
                Err(_) => return Err(unexpected()),
            }
        }
        Ok(acked)
    }

    /// Asks the collector to vouch for what file `path` (`dev`, `ino`) holds
    /// ([`ClientMsg::Vouch`]) and waits for its answer, at most `cap_ns` of
    /// the budget: what it read under its lease (SHA-256, length) or `None`
    /// (also from a collector that vouches for nothing: never asked), and
    /// the highest ack read meanwhile. On failure the connection is
    /// unusable.
    pub fn vouch(
        &mut self,
        req: u64,
        (path, dev, ino): (Vec<u8>, u64, u64),
        budget: &mut Budget,
        cap_ns: u64,
    ) -> Result<(Option<Vouched>, Option<u64>), Failure> {
        if !self.vouches {
            return Ok((None, None));
        }
        let mut acked = self.send(&ClientMsg::Vouch { req, path: WirePath(path), dev, ino }, &[], budget)?;
        let fd = self.fd;
        budget.within(cap_ns, |budget| {
            let mut buf = [0u8; 512];
            loop {
                if let Some((got, vouched)) = self.vouched.take()
                    && got == req
                {
                    return Ok((vouched, acked));
                }
                // A slow collector: the reading is just not vouched for.
                let n = match sys::recv(fd, &mut buf, || budget.wait(fd, libc::POLLIN)) {
                    Ok(n) => n,
                    Err(libc::ETIMEDOUT) => return Ok((None, acked)),
                    Err(e) => return Err(Failure::broken(format!("reading from the collector: {}", io_error(e)))),
                };
                if n == 0 {
                    return Err(Failure::broken("the collector closed the connection".into()));
                }
                self.inbox.extend_from_slice(&buf[..n]);
                acked = acked.max(self.parse_replies()?);
            }
        })
    }

    /// The process is exiting: tells the collector nothing more will come
    /// (half-close), then reads its acks until `last` is acknowledged, the
    /// collector closes, or `cap_ns` of the budget is spent. The highest
    /// ack read.
    pub fn finish(&mut self, last: u64, budget: &mut Budget, cap_ns: u64) -> Option<u64> {
        if !self.is_ours() {
            return None;
        }
        sys::shutdown_write(self.fd);
        let fd = self.fd;
        let mut best = None;
        budget.within(cap_ns, |budget| {
            let mut buf = [0u8; 512];
            while best < Some(last) {
                let n = sys::recv(fd, &mut buf, || budget.wait(fd, libc::POLLIN)).unwrap_or(0);
                self.inbox.extend_from_slice(&buf[..n]);
                match self.parse_replies() {
                    Ok(acked) => best = best.max(acked),
                    Err(_) => break,
                }
                if n == 0 {
                    break; // closed, failed or out of time
                }
            }
        });
        best
    }

    fn is_ours(&self) -> bool {
        sys::fstat(self.fd).is_ok_and(|st| st.st_ino == self.ino && st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
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

/// The 32 bytes a hex SHA-256 spells.
fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok().map(|()| out)
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
