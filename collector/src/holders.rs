//! Which other processes still hold a file open for writing.
//!
//! A descriptor outlives the close that the library reports when the writer
//! passed it to a child (`fork`, a redirect the child inherits, `Popen`
//! with `stdout=f`). Before a version is closed, the collector looks at the
//! writer's descendants in `/proc`; if any still holds the same file (device
//! and inode) open for writing, the version is finished only when they have
//! all exited.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use crate::assemble::FileId;
use crate::identity::pidfd_open;

/// Direct children of `pid` (all its threads'), from `/proc/PID/task/*/children`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
        }
    }
    out
}

/// All descendants of `pid`, breadth first (bounded against cycles and huge trees).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        for c in children(p) {
            if !out.contains(&c) && out.len() < 4096 {
                out.push(c);
                queue.push(c);
            }
        }
    }
    out
}

/// True when `pid` has `file` open with write access.
pub fn holds_for_write(pid: i32, file: FileId) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        let same = std::fs::metadata(fd.path()).is_ok_and(|m| (m.dev(), m.ino()) == file);
        same && writable(pid, &fd.file_name().to_string_lossy())
    })
}

/// The `flags:` line of `/proc/PID/fdinfo/FD` (octal) has write access.
fn writable(pid: i32, fd: &str) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else { return false };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & libc::O_ACCMODE != libc::O_RDONLY)
}

/// Every process but `pid` (all of /proc). Used only when the writer
/// forked while the file was open: its children may have outlived it and
/// been re-parented, out of reach of [`descendants`].
pub fn all_but(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).filter(|&p| p != pid).collect()
}

/// Pidfds of the processes among `candidates` that hold `file` open for writing.
pub fn writers_among(candidates: Vec<i32>, file: FileId) -> Vec<OwnedFd> {
    candidates
        .into_iter()
        .filter(|&c| holds_for_write(c, file))
        .filter_map(|c| {
            // Re-check after taking the pidfd: the pid cannot be reused now.
            let fd = pidfd_open(c).ok()?;
            holds_for_write(c, file).then_some(fd)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_a_child_holding_our_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"x").unwrap();
        let md = std::fs::metadata(&path).unwrap();
        let id = (md.dev(), md.ino());
        assert!(holds_for_write(std::process::id() as i32, id));
        let mut child = std::process::Command::new("sleep").arg("5").stdout(f.try_clone().unwrap()).spawn().unwrap();
        let me = std::process::id() as i32;
        assert!(descendants(me).contains(&(child.id() as i32)));
        assert_eq!(writers_among(descendants(me), id).len(), 1);
        assert_eq!(writers_among(all_but(me), id).len(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(writers_among(descendants(me), id).is_empty());
    }
}
