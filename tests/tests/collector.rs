//! The collector as an auditor uses it, and as an attacker would try it:
//! review commands, restore, forged and malformed input, quotas, redaction.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use filetrail_e2e::{Collector, collector_bin, sha256};

fn cli(c: &Collector, args: &[&str]) -> Output {
    Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).arg("--socket").arg(&c.socket).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn raw_client(c: &Collector, script: &str, as_nobody: bool) -> String {
    c.raw_client(script, as_nobody.then_some((65534, 65534)))
}

#[test]
fn diff_log_users_and_filters() {
    let c = Collector::start();
    std::fs::write(c.path("app.conf"), "port = 80\nhost = a\n").unwrap();
    c.sh("sed -i s/80/8080/ app.conf; echo 'debug = 1' >> app.conf");
    c.wait_versions(2);
    // diff exits 1: the contents differ.
    let differ = |args: &[&str]| {
        let out = cli(&c, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let diff = differ(&["diff", "1"]);
    assert!(diff.contains("-port = 80\n+port = 8080\n"), "{diff}");
    let between = differ(&["diff", "1", "2"]);
    assert!(between.contains("+debug = 1"), "{between}");
    let log = stdout(&cli(&c, &["log", c.path("app.conf").to_str().unwrap()]));
    assert!(log.find("version 2").unwrap() < log.find("version 1").unwrap(), "newest first: {log}");
    assert!(log.contains("Program: /usr/bin/sed"), "{log}");
    let users = stdout(&cli(&c, &["users", "--json"]));
    let u: serde_json::Value = serde_json::from_str(users.lines().next().unwrap()).unwrap();
    assert_eq!((u["user"].as_str(), u["versions"].as_i64(), u["files"].as_i64()), (Some("root"), Some(2), Some(1)));
    let user = stdout(&cli(&c, &["user", "root"]));
    assert!(user.contains("2 changes to 1 file in 1 session"), "{user}");
    assert!(stdout(&cli(&c, &["query", "--user", "nobody"])).is_empty());
    assert_eq!(stdout(&cli(&c, &["query", "--since", "1h", "--until", "now", "--json"])).lines().count(), 2);
    assert!(stdout(&cli(&c, &["query", "--until", "yesterday"])).is_empty());
    let bad = cli(&c, &["query", "--since", "whenever"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

#[test]
fn one_change_is_not_called_changes() {
    let c = Collector::start();
    c.sh("echo a > f");
    c.wait_versions(1);
    let user = stdout(&cli(&c, &["user", "root"]));
    assert!(user.starts_with("root: 1 change to 1 file in 1 session, "), "{user}");
    let session = user.lines().find(|l| l.trim_start().starts_with("session ")).unwrap();
    assert!(session.ends_with("  1 change"), "{user}");
}

#[test]
fn restore_puts_content_back_keeps_the_files_mode_and_is_recorded() {
    let c = Collector::start();
    let f = c.path("svc.conf");
    std::fs::write(&f, "good\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    c.sh("echo broken > svc.conf");
    let v = c.wait_versions(1);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Version 1's before is "good": restore the version that held it... it
    // is the before of 1, so record one more version holding it first.
    c.sh("printf 'good\\n' > svc.conf");
    c.wait_versions(2);
    c.sh("echo broken again > svc.conf");
    c.wait_versions(3);
    let out = stdout(&cli(&c, &["restore", "2"]));
    assert!(out.contains("recorded as a new version by the running collector"), "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"good\n");
    // The file's own mode now, not the one recorded (that is a client's word).
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o666);
    let v4 = c.wait_versions(4);
    c.assert_version(&v4[3], "write", "svc.conf", Some(b"broken again\n"), Some(b"good\n"));
    assert!(v4[3]["exe"].as_str().unwrap().ends_with("collector"));
    assert_eq!(v[0]["mode"], "0640");
    // A symlink at the target is refused, and nothing is written through it.
    let elsewhere = c.dir.path().join("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &f).unwrap();
    let refused = cli(&c, &["restore", "2"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("symlink"), "{refused:?}");
    assert_eq!(std::fs::read(&elsewhere).unwrap(), b"untouched");
}

#[test]
fn restore_without_a_collector_records_directly() {
    let mut c = Collector::start();
    std::fs::write(c.path("f"), "v1\n").unwrap();
    c.sh("echo v2 > f");
    c.wait_versions(1);
    // Killed: its serving file names a socket nobody answers on.
    c.kill();
    let restore = |to: &std::path::Path| {
        Command::new(collector_bin())
            .args(["restore", "1", "--db"])
            .arg(&c.db)
            .arg("--config")
            .arg(c.dir.path().join("config.toml"))
            .arg("--to")
            .arg(to)
            .output()
            .unwrap()
    };
    assert!(stdout(&restore(&c.path("copy"))).contains("recorded as a new version directly in the store"));
    assert_eq!(std::fs::read(c.path("copy")).unwrap(), b"v2\n");
    let v = c.wait_versions(2);
    c.assert_version(&v[1], "create", "copy", None, Some(b"v2\n"));
    // Outside the tracked tree: restored, not recorded.
    let outside = c.dir.path().join("outside");
    assert!(stdout(&restore(&outside)).contains("not recorded: the target is not tracked"));
    assert_eq!(std::fs::read(&outside).unwrap(), b"v2\n");
    assert_eq!(c.versions().len(), 2);
}

#[test]
fn a_deleted_file_is_restored_with_its_content_and_mode() {
    let c = Collector::start();
    let f = c.path("gone.conf");
    std::fs::write(&f, "keep me\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    c.sh("rm gone.conf");
    let v = c.wait_versions(1);
    assert_eq!(v[0]["action"], "delete");
    let out = stdout(&cli(&c, &["restore", &v[0]["id"].to_string()]));
    assert!(out.contains("the content deleted by version"), "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"keep me\n");
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o600);
    let v = c.wait_versions(2);
    c.assert_version(&v[1], "create", "gone.conf", None, Some(b"keep me\n"));
    // Restoring again changes nothing and says so.
    assert!(stdout(&cli(&c, &["restore", &v[0]["id"].to_string()])).contains("nothing changed"));
}

#[test]
fn a_process_cannot_forge_versions_of_files_it_could_not_write() {
    let c = Collector::start();
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&c.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let secret = c.path("secret.conf");
    std::fs::write(&secret, "root only\n").unwrap();
    let forged = format!(
        "p = b'forged\\n'\nsend({{'kind':'rename','old':'{0}.tmp','new':'{0}','before':{{'state':'absent'}},'after':{{'state':'stored','len':len(p),'size':len(p)}}}}, p)",
        secret.display()
    );
    let out = raw_client(&c, &forged, true);
    assert!(out.starts_with("welcome"), "{out}");
    // The same from root is accepted: the marker that the frame was read.
    let ok = forged.replace("secret.conf", "root.conf");
    raw_client(&c, &ok, false);
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["path"], c.path("root.conf").display().to_string());
    assert!(c.log().contains("rejected a version"), "{}", c.log());
}

#[test]
fn malformed_truncated_and_oversized_frames_close_only_that_connection() {
    let c = Collector::start_with("max_size = 1000\n");
    // Not JSON.
    let out = raw_client(&c, "s.sendall(struct.pack('<IQ', 5, 0) + b'{{{{{')", false);
    assert!(out.contains("\"kind\": \"error\"") && out.contains("malformed"), "{out}");
    // Lengths that do not add up.
    let out = raw_client(&c, "send({'kind':'delete','path':'/x','before':{'state':'stored','len':5}}, b'ab')", false);
    assert!(out.contains("\"kind\": \"error\""), "{out}");
    // Far over the limit: refused before anything is allocated.
    let out = raw_client(&c, "s.sendall(struct.pack('<IQ', 2, 1 << 40) + b'{}')", false);
    assert!(out.contains("exceeds the limit"), "{out}");
    // Cut off in the middle.
    raw_client(&c, "s.sendall(struct.pack('<IQ', 100, 0) + b'{\"kind\"'); s.shutdown(socket.SHUT_WR)", false);
    // The collector still serves everyone else.
    std::fs::write(c.path("f"), "a").unwrap();
    c.sh("echo b > f");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "f", Some(b"a"), Some(b"b\n"));
}

/// A flood cannot hide a change: beyond the quota, versions are recorded
/// without their content (issue 10's evasion recipe: 100 junk edits, then
/// the one that matters).
#[test]
fn over_quota_versions_are_recorded_without_content() {
    let c = Collector::start_with("[quota]\nversions_per_minute = 20\n");
    std::fs::write(c.path("sudoers"), "root ALL=(ALL) ALL\n").unwrap();
    for i in 1..=100 {
        std::fs::write(c.path(&format!("junk{i}")), "").unwrap();
    }
    c.sh("for i in $(seq 1 100); do echo junk $i > junk$i; done; echo 'mallory ALL=(ALL) NOPASSWD: ALL' >> sudoers");
    let v = c.wait_versions(101);
    assert_eq!(v.len(), 101, "every change leaves a trace");
    let sudoers = v.iter().find(|x| x["path"] == c.path("sudoers").display().to_string().as_str()).expect("sudoers");
    assert_eq!(sudoers["content"], "quota");
    assert_eq!(sudoers["after"], sha256(b"root ALL=(ALL) ALL\nmallory ALL=(ALL) NOPASSWD: ALL\n").as_str());
    assert_eq!(v.iter().filter(|x| x["content"] == "stored").count(), 20);
    assert!(c.log().contains("recorded without content"), "{}", c.log());
    let show = cli(&c, &["show", &sudoers["id"].to_string()]);
    assert!(!show.status.success() && String::from_utf8_lossy(&show.stderr).contains("quota"), "{show:?}");
}

#[test]
fn redacted_paths_keep_hashes_but_never_content() {
    let c = Collector::start_with("redact = [\"*.key\"]\n");
    std::fs::write(c.path("tls.key"), "PRIVATE 1\n").unwrap();
    let src = c.dir.path().join("new-key");
    std::fs::write(&src, "PRIVATE 2\n").unwrap();
    c.sh(&format!("cp {} tls.key", src.display()));
    let v = c.wait_versions(1);
    assert_eq!(v[0]["content"], "redacted");
    assert_eq!(v[0]["before"], sha256(b"PRIVATE 1\n").as_str());
    assert_eq!(v[0]["after"], sha256(b"PRIVATE 2\n").as_str());
    let show = cli(&c, &["show", &v[0]["id"].to_string()]);
    assert!(!show.status.success());
    assert!(String::from_utf8_lossy(&show.stderr).contains("redacted"));
    let db = std::fs::read(&c.db).unwrap_or_default();
    let wal = std::fs::read(c.db.with_extension("db-wal")).unwrap_or_default();
    for hay in [db, wal] {
        assert!(!hay.windows(9).any(|w| w == b"PRIVATE 2"), "content must not reach the store");
    }
}

#[test]
fn verify_finds_damaged_content() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "one\n").unwrap();
    c.sh("echo two > f; echo three > f");
    c.wait_versions(2);
    let ok = cli(&c, &["verify"]);
    assert!(stdout(&ok).contains("all good"));
    let db = rusqlite::Connection::open(&c.db).unwrap();
    db.execute("UPDATE blobs SET data = x'28b52ffd00' WHERE id = (SELECT max(id) FROM blobs)", []).unwrap();
    drop(db);
    let bad = cli(&c, &["verify"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("BAD  content"), "{bad:?}");
}
