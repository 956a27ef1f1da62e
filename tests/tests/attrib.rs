//! Mode and owner changes reported by the library (issue 11): a session's
//! `chmod`, `chown` and `fchmod` of a tracked file are versions with
//! `action: "attrib"`, the mode and owner before and after, `seen_by:
//! "library"` and the writer's full attribution; untracked files cost and
//! record nothing; with the kernel watch on, the change is stored once; and
//! an ordinary user cannot make the collector record a mode change of a
//! file they do not own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, mallory};
use serde_json::Value;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn root() -> bool {
    filetrail_e2e::root_or_skip("chown to another user and the kernel watch need root")
}

/// A tracked file holding `content`, mode `mode`, made before the session.
fn fixture(c: &Collector, name: &str, content: &[u8], mode: u32) {
    std::fs::write(c.path(name), content).unwrap();
    chmod(&c.path(name), mode);
}

fn modes(v: &Value) -> (Option<&str>, Option<&str>) {
    (v["before_mode"].as_str(), v["mode"].as_str())
}

#[test]
fn chmod_in_a_session_is_a_library_attrib_version_attributed_to_the_writer() {
    let c = Collector::start();
    fixture(&c, "app.conf", b"port = 80\n", 0o644);
    c.sh("chmod 600 app.conf");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:#?}");
    c.assert_version(&v[0], "attrib", "app.conf", Some(b"port = 80\n"), Some(b"port = 80\n"));
    assert_eq!(modes(&v[0]), (Some("0644"), Some("0600")), "{:#}", v[0]);
    assert_eq!(v[0]["seen_by"], "library");
    assert_eq!(v[0]["exe"], "/usr/bin/chmod", "{:#}", v[0]);
    assert_eq!(v[0]["trust"]["exe"], "verified");
    // chmod to the mode it has: nothing changed, no version.
    c.sh("chmod 600 app.conf; echo m > marker.conf");
    c.wait_for("marker.conf", |v| !v.is_empty());
    assert_eq!(c.versions_of(&[&c.path("app.conf")]).len(), 1);
}

#[test]
fn chown_by_root_to_another_user_records_the_owner_before_and_after() {
    if !root() {
        return;
    }
    let c = Collector::start();
    fixture(&c, "owned.conf", b"x = 1\n", 0o640);
    c.sh("chown 65534:65534 owned.conf");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "attrib", "owned.conf", Some(b"x = 1\n"), Some(b"x = 1\n"));
    let owners = |v: &Value| {
        let n = |k: &str| v[k].as_u64();
        (n("before_owner_uid"), n("before_group_gid"), n("owner_uid"), n("group_gid"))
    };
    assert_eq!(owners(&v[0]), (Some(0), Some(0), Some(65534), Some(65534)), "{:#}", v[0]);
    assert_eq!(modes(&v[0]), (Some("0640"), Some("0640")));
    assert_eq!((v[0]["seen_by"].as_str(), v[0]["euid"].as_u64()), (Some("library"), Some(0)));
    assert_eq!(v[0]["exe"], "/usr/bin/chown");
}

#[test]
fn fchmod_of_a_descriptor_is_recorded_and_of_a_file_being_written_is_part_of_its_write() {
    let c = Collector::start();
    fixture(&c, "fd.conf", b"by fd\n", 0o644);
    fixture(&c, "w.conf", b"old\n", 0o644);
    let script = "import os\n\
                  fd = os.open('fd.conf', os.O_RDONLY); os.fchmod(fd, 0o640); os.close(fd)\n\
                  fd = os.open('w.conf', os.O_WRONLY | os.O_TRUNC); os.write(fd, b'new\\n')\n\
                  os.fchmod(fd, 0o600); os.close(fd)\n";
    let out = c.command("/usr/bin/python3").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v = c.wait_for("fd.conf", |v| !v.is_empty());
    c.assert_version(&v[0], "attrib", "fd.conf", Some(b"by fd\n"), Some(b"by fd\n"));
    assert_eq!(modes(&v[0]), (Some("0644"), Some("0640")));
    assert!(v[0]["exe"].as_str().is_some_and(|e| e.starts_with("/usr/bin/python3")), "{:#}", v[0]);
    // The open for writing carries the mode change: one write, 0644 -> 0600.
    let v = c.wait_for("w.conf", |v| !v.is_empty());
    assert_eq!(v.len(), 1, "{v:#?}");
    c.assert_version(&v[0], "write", "w.conf", Some(b"old\n"), Some(b"new\n"));
    assert_eq!(modes(&v[0]), (Some("0644"), Some("0600")));
    assert_eq!(c.versions().len(), 2, "{:#?}", c.versions());
}

#[test]
fn chmod_and_chown_of_untracked_files_record_nothing() {
    let c = Collector::start();
    let outside = c.dir.path().join("outside.conf");
    std::fs::write(&outside, "not tracked\n").unwrap();
    let script = format!(
        "chmod 600 {o} && chown 0:0 {o} && /usr/bin/python3 -c \"import os; fd = os.open('{o}', os.O_RDONLY); \
         os.fchmod(fd, 0o644)\" && echo m > marker.conf",
        o = outside.display()
    );
    c.sh(&script);
    let v = c.wait_for("marker.conf", |v| !v.is_empty());
    assert_eq!(v.len(), 1);
    assert_eq!(c.versions().len(), 1, "only the tracked write: {:#?}", c.versions());
    assert_eq!(std::fs::metadata(&outside).unwrap().permissions().mode() & 0o7777, 0o644);
}

#[test]
fn errors_are_those_of_libc_and_nothing_is_recorded_for_a_failed_call() {
    let c = Collector::start();
    fixture(&c, "e.conf", b"e\n", 0o644);
    // A missing file, a bad descriptor: errno as without the library.
    let script = r#"
import errno, os
for f in (lambda: os.chmod('missing.conf', 0o600), lambda: os.fchmod(987, 0o600),
          lambda: os.chown('missing.conf', 0, 0)):
    try: f(); print('no error')
    except OSError as e: print(errno.errorcode[e.errno])
os.chmod('e.conf', 0o600); open('marker.conf', 'w').write('m')
"#;
    let out = c.command("/usr/bin/python3").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ENOENT\nEBADF\nENOENT\n");
    c.wait_for("marker.conf", |v| !v.is_empty());
    let v = c.versions_of(&[&c.path("e.conf")]);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(c.versions().len(), 2, "{:#?}", c.versions());
}

#[test]
fn with_the_kernel_watch_on_a_session_chmod_is_stored_once_as_the_library_saw_it() {
    if !root() {
        return;
    }
    let c = Collector::start_with_files("kernel_watch = true\n", &[("both.conf", b"b\n"), ("marker.conf", b"m\n")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log().contains("kernel watch on the tracked directories") {
        assert!(Instant::now() < deadline, "the kernel watch did not start; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    c.sh("chmod 600 both.conf; chown 65534 both.conf");
    c.wait_for("both.conf", |v| v.len() >= 2);
    // A later change only the kernel sees: once it is recorded, the watch
    // has looked at both.conf too (it was due first).
    let out =
        Command::new("env").args(["-i", "sh", "-c", "echo n > marker.conf"]).current_dir(&c.track).output().unwrap();
    assert!(out.status.success());
    let m = c.wait_for("marker.conf", |v| !v.is_empty());
    assert_eq!(m[0]["seen_by"], "kernel");
    let v = c.versions_of(&[&c.path("both.conf")]);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v.iter().all(|v| v["action"] == "attrib" && v["seen_by"] == "library" && v["gap_before"] == false));
    assert_eq!(modes(&v[0]), (Some("0644"), Some("0600")));
    assert_eq!((v[1]["before_owner_uid"].as_u64(), v[1]["owner_uid"].as_u64()), (Some(0), Some(65534)));
}

#[test]
fn an_ordinary_user_cannot_record_a_mode_change_of_a_file_they_do_not_own() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    chmod(&c.track, 0o777);
    // Root's file that anyone may write, and mallory's own.
    let (roots, own) = (c.path("root.conf"), c.path("mallory.conf"));
    fixture(&c, "root.conf", b"r\n", 0o666);
    fixture(&c, "mallory.conf", b"m\n", 0o644);
    std::os::unix::fs::chown(&own, Some(m.0), Some(m.1)).unwrap();
    let forge = |path: &Path, content: &str| {
        format!(
            "p = b'{content}\\n'\n\
             snap = lambda mode: {{'state':'stored','len':len(p),'size':len(p),'meta':{{'mode':mode,'uid':0,'gid':0,'dev':0,'ino':0,'mtime_ns':0}}}}\n\
             send({{'kind':'attrib','path':{path:?},'before':snap(0o100644),'after':snap(0o100600)}}, p + p)",
            path = path.display().to_string()
        )
    };
    c.raw_client(&forge(&roots, "r"), Some(m));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.log().contains("rejected a version") {
        assert!(Instant::now() < deadline, "no refusal in the log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Her own file: accepted (the refusal is about ownership, not the frame).
    c.raw_client(&forge(&own, "m"), Some(m));
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!((v[0]["path"].as_str(), v[0]["action"].as_str()), (own.to_str(), Some("attrib")));
    assert_eq!(v[0]["euid"].as_u64(), Some(m.0.into()));
}
