//! The kernel watch (issue 11): changes to tracked files that the library
//! cannot see — a static binary, a process without the library, a setuid
//! program, `chmod` — become versions `seen_by: "kernel"` with the exact
//! bytes and the baseline as before; a library write is still stored once;
//! a change nobody saw leaves `gap_before` on the next version.
//!
//! The watch needs root (fanotify): every test returns early, saying so,
//! when not root.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, compile_c, compile_c_static, mallory};
use serde_json::Value;

fn root() -> bool {
    filetrail_e2e::root_or_skip("the kernel watch needs root")
}

const WATCH: &str = "kernel_watch = true\n";

/// Waits until the watch has placed its marks (it logs a line).
fn watching(c: &Collector) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log().contains("kernel watch on the tracked directories") {
        assert!(Instant::now() < deadline, "the kernel watch did not start; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes argv[2] into argv[1] (truncating), closes it, then stays alive
/// argv[3] milliseconds (so that the collector can read who it is).
const WRITER: &str = r#"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, argv[2], strlen(argv[2])) != (ssize_t)strlen(argv[2]) || close(fd) != 0) return 1;
    long ms = atol(argv[3]);
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, 0);
    return 0;
}
"#;

#[test]
fn a_static_binary_writing_a_tracked_file_is_a_kernel_version_with_the_baseline_as_before() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("app.conf", b"port = 80\n")]);
    watching(&c);
    let writer = compile_c_static(c.dir.path(), "static-writer", WRITER);
    // Run under the library's environment: a static binary never loads it.
    let out = c
        .command(writer.to_str().unwrap())
        .args([c.path("app.conf").to_str().unwrap(), "port = 8080\n", "500"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = c.wait_for("app.conf", |v| !v.is_empty());
    assert_eq!(v.len(), 1, "{v:#?}");
    c.assert_version(&v[0], "write", "app.conf", Some(b"port = 80\n"), Some(b"port = 8080\n"));
    assert_eq!(v[0]["seen_by"], "kernel");
    assert_eq!(v[0]["gap_before"], false);
    // It was alive when the event was read: the kernel named it.
    assert_eq!(v[0]["exe"], writer.to_str().unwrap(), "{:#}", v[0]);
    assert_eq!(v[0]["trust"]["exe"], "verified");
}

#[test]
fn a_process_without_the_library_writes_creates_renames_and_deletes() {
    if !root() {
        return;
    }
    let files: &[(&str, &[u8])] = &[("a.conf", b"a\n"), ("gone.conf", b"to delete\n"), ("old.conf", b"moving\n")];
    let c = Collector::start_with_files(WATCH, files);
    watching(&c);
    let script = "echo x > a.conf; echo new > new.conf; rm gone.conf; mv old.conf moved.conf";
    let out = Command::new("env").args(["-i", "sh", "-c", script]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_for("a.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "write", "a.conf", Some(b"a\n"), Some(b"x\n"));
    let v = c.wait_for("new.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "create", "new.conf", None, Some(b"new\n"));
    let v = c.wait_for("gone.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "delete", "gone.conf", Some(b"to delete\n"), None);
    let v = c.wait_for("moved.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "rename", "moved.conf", None, Some(b"moving\n"));
    assert_eq!(v[0]["old_path"], c.path("old.conf").to_str().unwrap());
    // A file that appeared after start is watched for content too.
    let out =
        Command::new("env").args(["-i", "sh", "-c", "echo newer >> new.conf"]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_for("new.conf", |v| v.len() == 2);
    c.assert_version(&v[1], "write", "new.conf", Some(b"new\n"), Some(b"new\nnewer\n"));
    // The rename's source is no separate delete.
    let all = c.versions();
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all.iter().all(|v| v["seen_by"] == "kernel"), "{all:#?}");
}

#[test]
fn chmod_and_chown_of_a_tracked_file_are_attrib_versions_with_before_and_after() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("secret.conf", b"pw = 1\n")]);
    watching(&c);
    let was = std::fs::metadata(c.path("secret.conf")).unwrap().permissions().mode() & 0o7777;
    assert_ne!(was, 0o600);
    let out = Command::new("chmod").arg("600").arg(c.path("secret.conf")).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_for("secret.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "attrib", "secret.conf", Some(b"pw = 1\n"), Some(b"pw = 1\n"));
    assert_eq!(
        (v[0]["before_mode"].as_str(), v[0]["mode"].as_str()),
        (Some(format!("{was:04o}").as_str()), Some("0600")),
        "{:#}",
        v[0]
    );
    assert_eq!(v[0]["seen_by"], "kernel");
    // And an owner change.
    let out = Command::new("chown").arg("65534:65534").arg(c.path("secret.conf")).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_for("secret.conf", |v| v.len() == 2);
    c.assert_version(&v[1], "attrib", "secret.conf", Some(b"pw = 1\n"), Some(b"pw = 1\n"));
    let owners = |v: &Value| (v["before_owner_uid"].as_u64(), v["owner_uid"].as_u64(), v["group_gid"].as_u64());
    assert_eq!(owners(&v[1]), (Some(0), Some(65534), Some(65534)), "{:#}", v[1]);
}

#[test]
fn a_setuid_root_program_run_by_an_ordinary_user_is_recorded_and_attributed_to_them() {
    let Some((uid, gid)) = mallory() else { return };
    let c = Collector::start_with_files(WATCH, &[("shadow.conf", b"mallory:old\n")]);
    c.open_to_all();
    watching(&c);
    let prog = compile_c(c.dir.path(), "suid-writer", WRITER);
    std::os::unix::fs::chown(&prog, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(&prog)
        .args([c.path("shadow.conf").to_str().unwrap(), "mallory:new\n", "500"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v = c.wait_for("shadow.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "write", "shadow.conf", Some(b"mallory:old\n"), Some(b"mallory:new\n"));
    assert_eq!(v[0]["seen_by"], "kernel");
    // Root's rights, mallory's doing: the real uid names the user.
    assert_eq!((v[0]["euid"].as_u64(), v[0]["uid"].as_u64()), (Some(0), Some(uid.into())), "{:#}", v[0]);
    assert_eq!(v[0]["user"], "ft-mallory");
    assert_eq!(v[0]["session"], Value::Null);
}

/// sudoedit's copy-back, at its quickest: a root process (real uid 0, no
/// library) in mallory's login writes a tracked file, and the login's
/// registration (`collector session` under pam_exec, slow at a busy moment)
/// reaches the collector only after that write. The version is mallory's:
/// the watch labels a change when it makes the version, not when its event
/// came. Without the registration it would be root's (not a login).
#[test]
fn a_login_registered_just_after_its_first_write_is_still_the_human_behind_it() {
    let Some((uid, _)) = mallory() else { return };
    if std::fs::read_to_string("/proc/self/loginuid").map_or(true, |l| l.trim() != "4294967295") {
        eprintln!("this test runs inside a login session (loginuid set) or without audit: skipped");
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("sudoers.conf", b"old\n")]);
    watching(&c);
    let writer = compile_c_static(c.dir.path(), "copy-back", WRITER);
    let script = format!(
        "echo {uid} > /proc/self/loginuid || exit 99\n\
         {writer} sudoers.conf 'new\n' 300 || exit 3\n\
         PAM_TYPE=open_session PAM_USER=ft-mallory PAM_SERVICE=sshd {collector} session --socket {socket}",
        writer = writer.display(),
        collector = filetrail_e2e::collector_bin().display(),
        socket = c.socket.display()
    );
    let out = Command::new("sh").args(["-c", &script]).current_dir(&c.track).env_remove("LD_PRELOAD").output().unwrap();
    if out.status.code() == Some(99) {
        eprintln!("cannot set the login uid here: skipped");
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let v = c.wait_for("sudoers.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "write", "sudoers.conf", Some(b"old\n"), Some(b"new\n"));
    assert_eq!((v[0]["seen_by"].as_str(), v[0]["uid"].as_u64()), (Some("kernel"), Some(0)), "{:#}", v[0]);
    assert_eq!(
        (v[0]["user"].as_str(), v[0]["unregistered_session"].as_bool()),
        (Some("ft-mallory"), Some(false)),
        "{:#}\n{out:?}\n{}",
        v[0],
        c.log()
    );
}

#[test]
fn a_library_write_is_stored_once_although_the_kernel_saw_it_too() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("lib.conf", b"one\n"), ("marker.conf", b"m\n")]);
    watching(&c);
    c.sh("echo two > lib.conf; sed -i s/two/three/ lib.conf");
    let v = c.wait_for("lib.conf", |v| v.len() >= 2);
    // A later kernel-only change: once it is recorded, the watch has looked
    // at lib.conf too (it was due first).
    let out =
        Command::new("env").args(["-i", "sh", "-c", "echo n > marker.conf"]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    c.wait_for("marker.conf", |v| !v.is_empty());
    let after = c.versions_of(&[&c.path("lib.conf")]);
    assert_eq!(after.len(), 2, "{after:#?}");
    c.assert_version(&after[0], "write", "lib.conf", Some(b"one\n"), Some(b"two\n"));
    c.assert_version(&after[1], "write", "lib.conf", Some(b"two\n"), Some(b"three\n"));
    assert!(after.iter().all(|v| v["seen_by"] == "library" && v["gap_before"] == false), "{after:#?}");
    assert_eq!(v[0]["id"], after[0]["id"]);
}

#[test]
fn a_change_nobody_saw_flags_the_next_version_gap_before() {
    let c = Collector::start_with("kernel_watch = false\n");
    c.sh("echo a > g.conf");
    c.wait_versions(1);
    // Not under the library, and no watch: nobody sees this one.
    std::fs::write(c.path("g.conf"), "b\n").unwrap();
    c.sh("echo c > g.conf");
    let v = c.wait_versions(2);
    c.assert_version(&v[1], "write", "g.conf", Some(b"b\n"), Some(b"c\n"));
    assert_eq!((v[0]["gap_before"].as_bool(), v[1]["gap_before"].as_bool()), (Some(false), Some(true)));
    let table = Command::new(filetrail_e2e::collector_bin()).args(["query", "--db"]).arg(&c.db).output().unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.lines().nth(2).is_some_and(|l| l.contains(" gap ")), "{table}");
    let log = Command::new(filetrail_e2e::collector_bin())
        .args(["log", "--db"])
        .arg(&c.db)
        .arg(c.path("g.conf"))
        .output()
        .unwrap();
    assert!(String::from_utf8(log.stdout).unwrap().contains("Gap:"));
    // stats counts it too, though no gap record does.
    let stats = |json: &[&str]| {
        let out = Command::new(filetrail_e2e::collector_bin()).arg("stats").args(json).arg("--db").arg(&c.db).output();
        String::from_utf8(out.unwrap().stdout).unwrap()
    };
    let text = stats(&[]);
    assert!(text.contains("gaps:         1 version after a change nobody saw (gap_before"), "{text}");
    assert!(!text.contains("gaps:         none"), "{text}");
    let json: Value = serde_json::from_str(&stats(&["--json"])).unwrap();
    assert_eq!((json["gap_before_versions"].as_i64(), json["gaps"].as_array().map(Vec::len)), (Some(1), Some(0)));
    assert!(c.log().contains("kernel watch off"), "{}", c.log());
}

#[test]
fn directories_made_after_start_are_watched_too() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[]);
    watching(&c);
    // The file may be written before the watch marks the new directories:
    // it is found when they are marked.
    let script = "mkdir -p conf.d/deep && echo early > conf.d/deep/early.conf";
    let out = Command::new("env").args(["-i", "sh", "-c", script]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_for("conf.d/deep/early.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "create", "conf.d/deep/early.conf", None, Some(b"early\n"));
    let out = Command::new("env")
        .args(["-i", "sh", "-c", "echo later > conf.d/deep/early.conf"])
        .current_dir(&c.track)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = c.wait_for("conf.d/deep/early.conf", |v| v.len() == 2);
    c.assert_version(&v[1], "write", "conf.d/deep/early.conf", Some(b"early\n"), Some(b"later\n"));
    assert!(v.iter().all(|v| v["seen_by"] == "kernel"));
}

#[test]
fn a_burst_of_kernel_only_writes_is_one_version_per_file_with_the_last_bytes() {
    if !root() {
        return;
    }
    let names = ["b1.conf", "b2.conf", "b3.conf"];
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, &b"0\n"[..])).collect();
    let c = Collector::start_with_files(WATCH, &files);
    watching(&c);
    // The watch reads the queue at most every 20 ms while events keep
    // coming, so the kernel merges this burst's events; each file still
    // ends as one version holding what was written last.
    let script = "i=1; while [ $i -le 300 ]; do for f in b1 b2 b3; do echo $i > $f.conf; done; i=$((i+1)); done";
    let out = Command::new("env").args(["-i", "sh", "-c", script]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    for name in names {
        let v = c.wait_for(name, |v| !v.is_empty());
        assert_eq!(v.len(), 1, "{v:#?}");
        c.assert_version(&v[0], "write", name, Some(b"0\n"), Some(b"300\n"));
        assert_eq!(v[0]["seen_by"], "kernel");
    }
}

/// Runs `sh -c script` in the tracked directory without the library: only
/// the kernel watch sees what it does.
fn uncaptured(c: &Collector, script: &str) {
    let out = Command::new("env").args(["-i", "sh", "-c", script]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Once a kernel-only change to a file touched after `name` is recorded,
/// the watch has looked at `name` too (it was due first): returns `name`'s
/// versions then.
fn settled(c: &Collector, name: &str) -> Vec<Value> {
    uncaptured(c, "echo settle >> marker.conf");
    c.wait_for("marker.conf", |v| !v.is_empty());
    c.versions_of(&[&c.path(name)])
}

/// A change no library saw, followed within a second by a library's
/// change of the same file (the watch still waits for quiet on it): the
/// unseen change is a kernel version of its own — before what the store
/// knew, after what the library found before its own change — stored
/// first; the library's version follows it with no gap.
fn assert_kernel_then_library(
    c: &Collector,
    v: &[Value],
    name: &str,
    kernel: (&str, Option<&[u8]>, &[u8]),
    library: &[u8],
) {
    assert_eq!(v.len(), 2, "{v:#?}\nlog:\n{}", c.log());
    let (action, before, middle) = kernel;
    c.assert_version(&v[0], action, name, before, Some(middle));
    c.assert_version(&v[1], "write", name, Some(middle), Some(library));
    assert_eq!((v[0]["seen_by"].as_str(), v[1]["seen_by"].as_str()), (Some("kernel"), Some("library")), "{v:#?}");
    // Listed by time: the kernel's first; and stored first.
    assert!(v[0]["id"].as_i64() < v[1]["id"].as_i64(), "{v:#?}");
    assert_eq!((v[0]["gap_before"].as_bool(), v[1]["gap_before"].as_bool()), (Some(false), Some(false)), "{v:#?}");
}

#[test]
fn a_file_created_without_the_library_then_appended_to_by_a_session_keeps_its_create() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("marker.conf", b"m\n")]);
    watching(&c);
    uncaptured(&c, "install -m 664 -g 65534 /dev/null x.conf");
    c.sh("echo q=1 >> x.conf");
    let v = settled(&c, "x.conf");
    assert_kernel_then_library(&c, &v, "x.conf", ("create", None, b""), b"q=1\n");
    assert_eq!((v[0]["mode"].as_str(), v[0]["group_gid"].as_u64()), (Some("0664"), Some(65534)), "{:#}", v[0]);
}

#[test]
fn a_file_created_and_chmodded_without_the_library_then_appended_to_keeps_content_and_mode() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("marker.conf", b"m\n")]);
    watching(&c);
    uncaptured(&c, "printf 'secret_setting = 1\\n' > y.conf; chmod 666 y.conf");
    c.sh("echo more=2 >> y.conf");
    let v = settled(&c, "y.conf");
    let created = b"secret_setting = 1\n";
    assert_kernel_then_library(&c, &v, "y.conf", ("create", None, created), b"secret_setting = 1\nmore=2\n");
    assert_eq!(v[0]["mode"], "0666", "{:#}", v[0]);
}

#[test]
fn an_unseen_write_of_a_tracked_file_then_a_session_write_are_two_versions() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("marker.conf", b"m\n"), ("z.conf", b"z=0\n")]);
    watching(&c);
    let was = std::fs::metadata(c.path("z.conf")).unwrap().permissions().mode() & 0o7777;
    assert_ne!(was, 0o640);
    uncaptured(&c, "echo z=1 > z.conf; chmod 640 z.conf");
    c.sh("echo z=2 > z.conf");
    let v = settled(&c, "z.conf");
    assert_kernel_then_library(&c, &v, "z.conf", ("write", Some(b"z=0\n"), b"z=1\n"), b"z=2\n");
    let modes = (v[0]["before_mode"].as_str(), v[0]["mode"].as_str());
    assert_eq!(modes, (Some(format!("{was:04o}").as_str()), Some("0640")), "{:#}", v[0]);
}

/// A session's create is held back (it may be a temp file) while its next
/// change, by another process, is stored: that change's before looks like
/// a create nobody reported, and a kernel row of it is made; when the
/// create's report comes, that row is folded into it. One create shown,
/// the library's. And no kernel `write` a=1 -> a=2 of the watch's own: the
/// path's last known content is its newest row by time (sed's), not by id
/// (the held-back create).
#[test]
fn a_session_creating_then_editing_a_file_shows_one_create_the_librarys() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files(WATCH, &[("marker.conf", b"m\n")]);
    watching(&c);
    c.sh("echo a=1 > new.conf; sed -i s/1/2/ new.conf");
    c.wait_for("new.conf", |v| v.len() >= 2);
    let v = settled(&c, "new.conf");
    let creates: Vec<&Value> = v.iter().filter(|v| v["action"] == "create").collect();
    assert_eq!(creates.len(), 1, "{v:#?}");
    c.assert_version(creates[0], "create", "new.conf", None, Some(b"a=1\n"));
    assert_eq!(creates[0]["seen_by"], "library");
    let edit = v.iter().find(|v| v["seen_by"] == "library" && v["action"] == "write").expect("sed's version");
    c.assert_version(edit, "write", "new.conf", Some(b"a=1\n"), Some(b"a=2\n"));
    assert_eq!(edit["gap_before"], false);
    // The kernel's row of the create stays, folded into the library's.
    let out = Command::new(filetrail_e2e::collector_bin())
        .args(["query", "--all", "--json", "--db"])
        .arg(&c.db)
        .arg(c.path("new.conf"))
        .output()
        .unwrap();
    let all: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kernel: Vec<&Value> = all.iter().filter(|v| v["seen_by"] == "kernel" && v["action"] == "create").collect();
    assert!(kernel.iter().all(|k| k["folded_into"] == creates[0]["id"]), "{all:#?}");
    assert_eq!(v.len(), 2, "one create, one write, nothing made up: {v:#?}");
}
