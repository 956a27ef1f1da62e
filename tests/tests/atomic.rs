//! Atomic snapshots (issue 16): a version labelled `consistent` holds, on
//! both sides, what the file was at one instant — never a mix of two
//! writes — while another process rewrites the file in place (`pwrite`) or
//! through a shared mapping; with nobody else writing, every snapshot is
//! consistent. As the file's owner (a read lease is possible: refused while
//! the other writer holds the file, so nothing is claimed) and as a user
//! who may write the file but does not own it (no lease of its own: the
//! collector vouches for the reading under its lease, or it is not
//! consistent).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use filetrail_e2e::{Collector, Reap, compile_c, library, mallory, sha256};

const SIZE: usize = 64 * 1024;

/// `writer pwrite|mmap PATH`: rewrites PATH with 64 KiB of `a`, then of `b`,
/// forever (one `pwrite` each, or a `memset` of a shared mapping); prints
/// `ready` after the first round. `capture PATH N touch|write`: opens PATH
/// for writing and closes it N times (`write`: truncating it and writing
/// 64 KiB of `a` or `b` in between), then writes `end` into the file `end`
/// of the current directory: the last version of its connection.
const PROGRAMS: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define SIZE (64 * 1024)
static char a[SIZE], b[SIZE];
int main(int argc, char **argv) {
    memset(a, 'a', SIZE); memset(b, 'b', SIZE);
    if (strcmp(argv[1], "writer") == 0) {
        int fd = open(argv[3], O_RDWR);
        if (fd < 0) return 1;
        char *m = strcmp(argv[2], "mmap") == 0 ? mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : 0;
        if (m == MAP_FAILED) return 1;
        for (long i = 0;; i++) {
            /* The barriers keep the compiler from dropping the first memset. */
            if (m) { memset(m, 'a', SIZE); __asm__ volatile("" ::: "memory"); memset(m, 'b', SIZE); __asm__ volatile("" ::: "memory"); }
            else if (pwrite(fd, a, SIZE, 0) != SIZE || pwrite(fd, b, SIZE, 0) != SIZE) return 1;
            if (i == 0) { puts("ready"); fflush(stdout); }
        }
    }
    int n = atoi(argv[3]), write_too = strcmp(argv[4], "write") == 0;
    for (int i = 0; i < n; i++) {
        int fd = open(argv[2], write_too ? O_WRONLY | O_TRUNC : O_WRONLY);
        if (fd < 0) return 1;
        if (write_too && write(fd, i % 2 ? b : a, SIZE) != SIZE) return 1;
        if (close(fd) != 0) return 1;
    }
    int end = open("end", O_WRONLY | O_TRUNC);
    return end < 0 || write(end, "end\n", 4) != 4 || close(end) != 0;
}
"#;

/// Who runs the capturing process.
#[derive(Clone, Copy)]
enum As {
    /// Root, the file's owner.
    Owner,
    /// ft-mallory, through the file's group (0664, group mallory's).
    GroupMember(u32, u32),
}

/// A tracked file `f` of 64 KiB of `a`, owned by root; in the group case
/// group-writable by that group. Returns (collector, programs binary).
fn setup(who: As) -> (Collector, std::path::PathBuf) {
    let c = Collector::start();
    let bin = compile_c(c.dir.path(), "atomic", PROGRAMS);
    std::fs::write(c.path("f"), vec![b'a'; SIZE]).unwrap();
    std::fs::write(c.path("end"), "start\n").unwrap();
    if let As::GroupMember(_, gid) = who {
        use std::os::unix::fs::PermissionsExt;
        c.open_to_all();
        for name in ["f", "end"] {
            std::os::unix::fs::chown(c.path(name), Some(0), Some(gid)).unwrap();
            std::fs::set_permissions(c.path(name), std::fs::Permissions::from_mode(0o664)).unwrap();
        }
    }
    (c, bin)
}

/// Runs the capturing process under the library, as `who`.
fn capture(c: &Collector, bin: &Path, who: As, n: u32, mode: &str) {
    let mut cmd = match who {
        As::Owner => Command::new(bin),
        As::GroupMember(uid, gid) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(bin);
            cmd
        }
    };
    let out = cmd
        .arg("capture")
        .arg(c.path("f"))
        .arg(n.to_string())
        .arg(mode)
        .current_dir(&c.track)
        .env("LD_PRELOAD", library())
        .env("FILETRAIL_SOCKET", &c.socket)
        // Never spool for lack of time: every version goes through the socket.
        .env("FILETRAIL_TIMEOUT_MS", "600000")
        .output()
        .unwrap();
    assert!(out.status.success(), "capture: {out:?}");
}

/// The versions of `f`, once the store has taken everything the capture
/// reported: its last version (of `end`) is stored last (one connection's
/// versions are committed in order).
fn settled(c: &Collector) -> Vec<serde_json::Value> {
    let end = c.path("end");
    c.wait_until(|| !c.versions_of(&[&end]).is_empty(), "the capture's last version");
    c.versions_of(&[&c.path("f")])
}

/// (versions labelled consistent, of them torn, versions not consistent).
fn tally(versions: &[serde_json::Value]) -> (usize, usize, usize) {
    let whole = [sha256(&[b'a'; SIZE]), sha256(&[b'b'; SIZE])];
    let torn = |v: &serde_json::Value| {
        ["before", "after"].iter().any(|side| v[side].as_str().is_some_and(|h| !whole.iter().any(|w| w == h)))
    };
    let consistent: Vec<_> = versions.iter().filter(|v| v["consistent"] == true).collect();
    (consistent.len(), consistent.iter().filter(|v| torn(v)).count(), versions.len() - consistent.len())
}

/// A concurrent writer (`pwrite` or `mmap`) against 300 opens and closes.
fn against_writer(who: As, writer: &str) {
    let (c, bin) = setup(who);
    let mut child =
        Command::new(&bin).args(["writer", writer]).arg(c.path("f")).stdout(Stdio::piped()).spawn().unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let reap = Reap(vec![child]);
    assert_eq!(ready, "ready\n", "the writer started");
    capture(&c, &bin, who, 300, "touch");
    drop(reap);
    let versions = settled(&c);
    let (consistent, torn, not) = tally(&versions);
    eprintln!("{writer}: {} versions, {consistent} consistent ({torn} torn), {not} not consistent", versions.len());
    assert!(!versions.is_empty(), "the writer changed the file between opens and closes");
    assert_eq!(torn, 0, "{torn} of {consistent} versions labelled consistent hold a mix of two writes");
}

/// Nobody else writing: 300 rewrites of the file, all consistent.
fn quiet(who: As) {
    let (c, bin) = setup(who);
    capture(&c, &bin, who, 300, "write");
    let versions = settled(&c);
    let (consistent, torn, not) = tally(&versions);
    // The first write leaves the file as it was (64 KiB of `a`): no version.
    assert_eq!(versions.len(), 299, "one version per change");
    assert_eq!((consistent, torn, not), (299, 0, 0), "every snapshot consistent, none torn");
}

#[test]
fn in_place_writer_owner() {
    against_writer(As::Owner, "pwrite");
}

#[test]
fn shared_mapping_writer_owner() {
    against_writer(As::Owner, "mmap");
}

#[test]
fn in_place_writer_not_owner() {
    let Some((uid, gid)) = mallory() else { return };
    against_writer(As::GroupMember(uid, gid), "pwrite");
}

/// A reader who does not own the file can take no lease, and two reads
/// agree on the half-done state of a mapping writer preempted halfway
/// through a `memset`: the collector vouches (its own lease) or the
/// reading is not consistent.
#[test]
fn shared_mapping_writer_not_owner() {
    let Some((uid, gid)) = mallory() else { return };
    against_writer(As::GroupMember(uid, gid), "mmap");
}

#[test]
fn quiet_owner() {
    quiet(As::Owner);
}

#[test]
fn quiet_not_owner() {
    let Some((uid, gid)) = mallory() else { return };
    quiet(As::GroupMember(uid, gid));
}
