//! Who a peer is, from the kernel only.
//!
//! `SO_PEERCRED` gives the pid, effective uid and gid fixed at `connect()`;
//! the rest comes from `/proc/PID` while the peer is provably alive (it is
//! blocked waiting for our `Welcome` when we read it). What the kernel
//! states is labelled `verified`; what the process could have written itself
//! (its environment, its argv) is labelled `claimed`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::who::next_key;
pub use crate::who::{Identity, Trust, user_name};

/// The peer's credentials as the kernel recorded them at `connect()`.
pub fn peer_cred(sock: &impl AsRawFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred/len are valid out-parameters of the sizes given.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(cred) }
}

/// A pidfd for `pid`: stays bound to that process even if the pid is reused.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// True while the process behind `pidfd` has not exited (a pidfd is
/// readable once it has).
pub fn is_alive(pidfd: &impl std::os::fd::AsFd) -> bool {
    let mut pfd = libc::pollfd { fd: pidfd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is a valid pollfd array of length 1.
    unsafe { libc::poll(&mut pfd, 1, 0) == 0 }
}

/// `SO_PEERPIDFD` (Linux 6.5+; not in every libc's headers).
const SO_PEERPIDFD: libc::c_int = 77;

/// What the kernel fixed about a peer at `connect()`: its pid, euid and
/// egid, its supplementary groups, and a pidfd bound to that very process.
#[derive(Debug)]
pub struct Peer {
    pub cred: libc::ucred,
    pub groups: Vec<u32>,
    pidfd: Option<OwnedFd>,
    /// Start time of the process at `cred.pid` when we first looked.
    start: Option<u64>,
}

impl Peer {
    /// Reads the peer of a connected socket.
    pub fn of(sock: &impl AsRawFd) -> io::Result<Peer> {
        let cred = peer_cred(sock)?;
        let groups = peer_groups(sock)?;
        // SO_PEERPIDFD names the process that connected even if it has
        // exited and its pid was reused since; older kernels: pidfd_open
        // and the start-time check below.
        let pidfd = peer_pidfd(sock).or_else(|_| pidfd_open(cred.pid)).ok();
        Ok(Peer { cred, groups, start: start_time(cred.pid), pidfd })
    }

    /// True while the process that connected is alive and is the process
    /// `/proc/PID` shows: check it *after* reading `/proc`, so what was
    /// read belongs to the peer.
    pub fn alive(&self) -> bool {
        let Some(fd) = &self.pidfd else { return false };
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: pfd is a valid pollfd array of length 1. A pidfd is
        // readable once its process has exited.
        let exited = unsafe { libc::poll(&mut pfd, 1, 0) } != 0;
        !exited && self.start.is_some() && start_time(self.cred.pid) == self.start
    }

    /// The process's start time (clock ticks since boot) when we first
    /// looked; with the pid it names one process for the life of the host
    /// (check [`Peer::alive`] after using it).
    pub fn start(&self) -> Option<u64> {
        self.start
    }

    /// The pidfd, to wait for the peer's exit.
    pub fn into_pidfd(self) -> Option<OwnedFd> {
        self.pidfd
    }
}

fn getsockopt_into<T>(sock: &impl AsRawFd, opt: libc::c_int, buf: &mut [T]) -> io::Result<usize> {
    let mut len = std::mem::size_of_val(buf) as libc::socklen_t;
    // SAFETY: buf/len describe writable memory of that many bytes.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, opt, buf.as_mut_ptr().cast(), &mut len) };
    if r != 0 { Err(io::Error::last_os_error()) } else { Ok(len as usize) }
}

/// The peer's supplementary groups as of `connect()` (`SO_PEERGROUPS`).
fn peer_groups(sock: &impl AsRawFd) -> io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 64];
    loop {
        match getsockopt_into(sock, libc::SO_PEERGROUPS, &mut groups) {
            Ok(bytes) => {
                groups.truncate(bytes / 4);
                return Ok(groups);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && groups.len() < 65_536 => {
                groups.resize(groups.len() * 4, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

fn peer_pidfd(sock: &impl AsRawFd) -> io::Result<OwnedFd> {
    let mut fd = [-1i32; 1];
    getsockopt_into(sock, SO_PEERPIDFD, &mut fd)?;
    if fd[0] < 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    // SAFETY: the kernel returned a new descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd[0]) })
}

/// Field 22 of `/proc/PID/stat`: when the process started (clock ticks
/// since boot); with the pid it names one process for the life of the host.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = read_proc(pid, "stat")?;
    let stat = lossy(&stat);
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

fn read_proc(pid: i32, what: &str) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/{what}")).ok()
}

/// `/proc/PID/loginuid` or `sessionid`; `None` when unset (u32::MAX).
fn audit_id(pid: i32, what: &str) -> Option<u32> {
    read_proc(pid, what).and_then(|v| lossy(&v).trim().parse().ok()).filter(|&u| u != u32::MAX)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The login uid and audit session of `pid` (`None` when unset).
pub fn audit_ids(pid: i32) -> (Option<u32>, Option<u32>) {
    (audit_id(pid, "loginuid"), audit_id(pid, "sessionid"))
}

/// Reads the peer's identity from the kernel. Fields that cannot be read
/// (the process is gone) stay empty and are labelled claimed.
pub fn from_kernel(cred: libc::ucred) -> Identity {
    use Trust::*;
    let pid = cred.pid;
    let mut id = Identity { key: next_key(), pid, euid: cred.uid, uid: cred.uid, gid: cred.gid, ..Default::default() };
    id.trust.insert("pid", Verified);
    id.trust.insert("euid", Verified);

    let status = read_proc(pid, "status").map(|s| lossy(&s)).unwrap_or_default();
    match status_ids(&status, "Uid:").first().copied() {
        Some(uid) => {
            id.uid = uid;
            id.trust.insert("uid", Verified);
        }
        None => {
            id.trust.insert("uid", Claimed);
        }
    }
    id.loginuid = audit_id(pid, "loginuid");
    // The writer and its ancestors (the writer first): its session and tty
    // are read there, once.
    let line = ancestry(pid);
    id.session = line.first().and_then(|l| l.session);
    id.exe =
        std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    id.cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned());
    id.tty = line.first().and_then(|l| l.tty.clone());
    let verified = if id.exe.is_empty() { Claimed } else { Verified };
    for f in ["loginuid", "session", "exe", "cwd", "tty", "user"] {
        id.trust.insert(f, verified);
    }

    id.argv = read_proc(pid, "cmdline")
        .map(|c| c.split(|&b| b == 0).filter(|a| !a.is_empty()).map(lossy).collect())
        .unwrap_or_default();
    // The effective gid (second on the Gid: line) and the supplementary groups.
    id.groups = status_ids(&status, "Gid:").into_iter().skip(1).take(1).chain(status_ids(&status, "Groups:")).collect();

    // Walk up from the writer to the login: the users it went through
    // (sudo, su), and environment that sudo's env_reset dropped.
    // Walk up from the writer, within its login session: the users it went
    // through (sudo, su), the terminal the human typed on (sudo runs
    // commands on a private pty), and environment that sudo's env_reset
    // dropped (SSH_CONNECTION).
    let session_line: &[Link] = match id.session {
        Some(s) => {
            let n = line.iter().position(|l| l.session != Some(s)).unwrap_or(line.len());
            &line[..n]
        }
        None => &line,
    };
    // The writer by its effective uid (kernel), its ancestors by their real
    // uid: a setuid su or sudo runs as root but acts for the user who ran it.
    let uids: Vec<u32> = std::iter::once(id.euid).chain(session_line.iter().skip(1).map(|l| l.ruid)).collect();
    id.chain = chain(id.loginuid, &uids).into_iter().map(user_name).collect();
    id.chain.dedup();
    if id.session.is_some()
        && let Some(tty) = session_line.iter().rev().find_map(|l| l.tty.clone())
    {
        id.tty = Some(tty);
    }
    let upto = session_line.iter().position(|l| Some(l.ruid) == id.loginuid).map_or(session_line.len(), |i| i + 1);
    id.sudo_user = session_line[..upto].iter().find_map(|l| env_var(l.pid, "SUDO_USER"));
    id.ssh_client = session_line
        .iter()
        .find_map(|l| env_var(l.pid, "SSH_CONNECTION").or_else(|| env_var(l.pid, "SSH_CLIENT")))
        .and_then(|c| {
            let mut parts = c.split_whitespace();
            Some(format!("{}:{}", parts.next()?, parts.next()?))
        });
    for f in ["argv", "sudo_user", "ssh_client"] {
        id.trust.insert(f, Claimed);
    }
    id.trust.insert("chain", if id.exe.is_empty() { Claimed } else { Verified });
    id.host = crate::hostname::get();
    id.user = user_name(id.loginuid.unwrap_or(id.uid));
    id
}

/// The numbers on a `/proc/PID/status` line (`Gid:`, `Groups:`).
fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

fn env_var(pid: i32, name: &str) -> Option<String> {
    let env = read_proc(pid, "environ")?;
    env.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(name.as_bytes())?.strip_prefix(b"=").map(lossy))
}

/// One process on the way from the writer up to init.
#[derive(Debug, Clone)]
struct Link {
    pid: i32,
    ruid: u32,
    session: Option<u32>,
    tty: Option<String>,
}

/// The writer and its ancestors, nearest first (at most 64, never pid 1).
fn ancestry(pid: i32) -> Vec<Link> {
    let mut out = Vec::new();
    let mut next = pid;
    while next > 1 && out.len() < 64 {
        let Some(status) = read_proc(next, "status").map(|s| lossy(&s)) else { break };
        let first = |key: &str| status_ids(&status, key).first().copied();
        let (Some(ruid), Some(ppid)) = (first("Uid:"), first("PPid:")) else { break };
        let session = audit_id(next, "sessionid");
        let tty = read_proc(next, "stat").and_then(|s| tty_of_stat(&lossy(&s)));
        out.push(Link { pid: next, ruid, session, tty });
        next = ppid as i32;
    }
    out
}

/// The users from the login to the writer: the login user, then each uid
/// on the way down from the nearest ancestor acting as the login user to
/// the writer (`uids` is writer first). Without a login uid, the writer's.
pub fn chain(loginuid: Option<u32>, uids: &[u32]) -> Vec<u32> {
    let Some(login) = loginuid else { return uids.first().copied().into_iter().collect() };
    let upto = uids.iter().position(|&e| e == login).unwrap_or(uids.len());
    let mut out = vec![login];
    for &e in uids[..upto].iter().rev() {
        if out.last() != Some(&e) {
            out.push(e);
        }
    }
    out
}

/// `who` with `exe` and `argv` re-read from its process (the same process,
/// after an `exec`), which `pidfd` must still name after the read; else
/// `who` unchanged.
pub fn with_program_now(who: &Identity, pidfd: &OwnedFd) -> Identity {
    let pid = who.pid;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    let cmd = read_proc(pid, "cmdline").filter(|c| !c.is_empty());
    let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is a valid pollfd array of length 1.
    let alive = unsafe { libc::poll(&mut pfd, 1, 0) } == 0;
    let (Ok(exe), Some(cmd), true) = (exe, cmd, alive) else { return who.clone() };
    let mut id = who.clone();
    id.key = next_key();
    id.exe = exe.to_string_lossy().into_owned();
    id.argv = cmd.split(|&b| b == 0).filter(|a| !a.is_empty()).map(lossy).collect();
    id
}

/// The controlling terminal's name from `/proc/PID/stat` field 7.
fn tty_of_stat(stat: &str) -> Option<String> {
    // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let tty_nr: u32 = rest.split_whitespace().nth(4)?.parse().ok()?;
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        136..=143 => format!("/dev/pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("/dev/tty{minor}"),
        4 => format!("/dev/ttyS{}", minor - 64),
        _ => format!("tty({major}:{minor})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tty_numbers_decode() {
        let stat = |nr: u32| format!("1 (a b) c) S 1 1 1 {nr} 1 0");
        assert_eq!(tty_of_stat(&stat(0)), None);
        assert_eq!(tty_of_stat(&stat(136 << 8 | 3)).as_deref(), Some("/dev/pts/3"));
        assert_eq!(tty_of_stat(&stat(4 << 8 | 1)).as_deref(), Some("/dev/tty1"));
    }

    #[test]
    fn chain_follows_sudo_and_su() {
        // Writer by euid, ancestors by real uid (a setuid su runs as root
        // but its real uid is the user who ran it).
        // ssh as alice (1000), writer is alice's shell
        assert_eq!(chain(Some(1000), &[1000, 1000, 0]), vec![1000]);
        // alice: sudo sed: sed(0), sudo(ruid 1000)
        assert_eq!(chain(Some(1000), &[0, 1000, 0]), vec![1000, 0]);
        // alice: su - bob: bash(1001), su(ruid 1000)
        assert_eq!(chain(Some(1000), &[1001, 1000]), vec![1000, 1001]);
        // alice: sudo su - bob: bash(1001), su(ruid 0), sudo(ruid 1000)
        assert_eq!(chain(Some(1000), &[1001, 0, 1000]), vec![1000, 0, 1001]);
        // no login: just the writer
        assert_eq!(chain(None, &[0, 0]), vec![0]);
        // the login user never appears in the ancestry (login -f as root)
        assert_eq!(chain(Some(1000), &[0]), vec![1000, 0]);
    }

    #[test]
    fn own_identity_is_verified() {
        let me = libc::ucred { pid: std::process::id() as i32, uid: unsafe { libc::geteuid() }, gid: 0 };
        let id = from_kernel(me);
        assert_eq!(id.trust["exe"], Trust::Verified);
        assert!(!id.exe.is_empty());
        assert!(!id.argv.is_empty());
    }
}
