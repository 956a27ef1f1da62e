//! Who a peer is, from the kernel only.
//!
//! `SO_PEERCRED` gives the pid, effective uid and gid fixed at `connect()`;
//! the rest comes from `/proc/PID` while the peer is provably alive (it is
//! blocked waiting for our `Welcome` when we read it). What the kernel
//! states is labelled `verified`; what the process could have written itself
//! (its environment, its argv) is labelled `claimed`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub use crate::who::{Identity, Trust, user_name};
use crate::who::next_key;

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
    id.host = hostname();
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

impl Identity {
    /// Fills what the kernel could not tell (the process was gone before
    /// /proc was read) from what the process claimed, labelled claimed.
    pub fn or_claimed(mut self, claims: Option<filetrail_wire::Claims>) -> Identity {
        let Some(c) = claims else { return self };
        if self.exe.is_empty() {
            self.exe = c.exe;
            self.trust.insert("exe", Trust::Claimed);
        }
        if self.argv.is_empty() {
            self.argv = c.argv;
        }
        if self.cwd.is_none() && !c.cwd.is_empty() {
            self.cwd = Some(c.cwd);
            self.trust.insert("cwd", Trust::Claimed);
        }
        if self.trust.get("uid") == Some(&Trust::Claimed) {
            self.uid = c.uid;
        }
        self
    }

    /// This identity with `exe` and `argv` re-read from `pid` (same process,
    /// after an `exec`). Unchanged where /proc no longer answers.
    pub fn with_program_of(&self, pid: i32) -> Identity {
        let mut id = self.clone();
        id.key = next_key();
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            id.exe = exe.to_string_lossy().into_owned();
            if let Some(cmd) = read_proc(pid, "cmdline").filter(|c| !c.is_empty()) {
                id.argv = cmd.split(|&b| b == 0).filter(|a| !a.is_empty()).map(lossy).collect();
            }
        }
        id
    }
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

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned())
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
    fn a_gone_process_falls_back_to_its_claims_labelled_claimed() {
        // pid_max is far below this: no such process.
        let gone = libc::ucred { pid: i32::MAX - 1, uid: 1000, gid: 1000 };
        let claims = filetrail_wire::Claims {
            uid: 1000,
            euid: 1000,
            exe: "/usr/bin/vim".into(),
            argv: vec!["vim".into()],
            cwd: "/etc".into(),
        };
        let id = from_kernel(gone).or_claimed(Some(claims));
        assert_eq!(id.exe, "/usr/bin/vim");
        assert_eq!(id.trust["exe"], Trust::Claimed);
        assert_eq!(id.trust["cwd"], Trust::Claimed);
        assert_eq!(id.euid, 1000, "the kernel's euid is kept");
        assert_eq!(id.trust["euid"], Trust::Verified);
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
