//! Where spool files live and what they are called: the library and the
//! collector apply the same rule, so a collector restarted with the same
//! `--socket` finds what was spooled without any other setting.
//!
//! - The spool directory is `spool/` beside the collector's socket
//!   ([`dir_of`]): `/run/filetrail/spool` for the default socket. The
//!   library cannot ask a collector that is not there, so this is the only
//!   place it writes to (a collector's `spool_dir` setting is one more
//!   directory the collector scans, never one the library uses).
//! - `collector serve` creates it at start, owned by root, mode 1733:
//!   anyone may create a file in it, nobody but root may list it, and the
//!   sticky bit keeps each file to its owner.
//! - It also writes the tracking policy there, as [`POLICY_FILE`]: one
//!   `Welcome` frame. A process that never reached a collector reads it to
//!   know which paths to spool; without it (no collector ever ran with this
//!   socket) the process records nothing.
//! - A process that spools creates `<pid>.<nanoseconds>.ftspool`
//!   ([`file_name`]) with `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600, owned by
//!   its euid (the only fact about the writer the collector can verify: the
//!   kernel sets a new file's owner), and holds `flock(LOCK_EX)` on it until
//!   it exits or `exec`s. The collector replays a file once it can take that
//!   lock, then deletes it.

/// Name of the spool directory beside the socket.
pub const DIR_NAME: &str = "spool";
/// The policy a process uses when no collector answers.
pub const POLICY_FILE: &str = "policy";
/// How spool file names end.
pub const SUFFIX: &str = ".ftspool";
/// The largest spool file a collector replays (a library writes at most
/// about half of it); a larger one is moved aside as malformed.
pub const MAX_FILE: u64 = 64 << 20;

/// The spool directory for collector socket `socket`: `dirname(socket)/spool`.
pub fn dir_of(socket: &[u8]) -> Vec<u8> {
    let mut dir = match socket.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/".to_vec(),
        Some(i) => socket[..i].to_vec(),
        None => b".".to_vec(),
    };
    if dir.last() != Some(&b'/') {
        dir.push(b'/');
    }
    dir.extend_from_slice(DIR_NAME.as_bytes());
    dir
}

/// The name of a spool file written by process `pid`, unique with `nanos`.
pub fn file_name(pid: i32, nanos: u64) -> String {
    format!("{pid}.{nanos}{SUFFIX}")
}

/// The pid a spool file name claims, or `None` when `name` is not a spool
/// file name.
pub fn pid_of(name: &str) -> Option<i32> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (pid, nanos) = stem.split_once('.')?;
    nanos.parse::<u64>().ok()?;
    pid.parse().ok().filter(|p: &i32| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_is_beside_the_socket() {
        assert_eq!(dir_of(b"/run/filetrail/collector.sock"), b"/run/filetrail/spool");
        assert_eq!(dir_of(b"/c.sock"), b"/spool");
        assert_eq!(dir_of(b"c.sock"), b"./spool");
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(pid_of(&file_name(42, 7)), Some(42));
        assert_eq!(pid_of("42.7.ftspool.bad"), None);
        assert_eq!(pid_of("policy"), None);
        assert_eq!(pid_of("-1.7.ftspool"), None);
        assert_eq!(pid_of("1.x.ftspool"), None);
    }
}
