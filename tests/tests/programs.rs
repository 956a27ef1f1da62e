//! Every way a program saves a file ends up as one version of the real path,
//! with exact before and after bytes, and leaves no temp or backup versions.

use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, library};

#[test]
fn tee_writes() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "old\n").unwrap();
    c.sh("echo new | tee f > /dev/null");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "f", Some(b"old\n"), Some(b"new\n"));
}

#[test]
fn truncate_shrinks() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "0123456789").unwrap();
    c.sh("truncate -s 4 f");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "f", Some(b"0123456789"), Some(b"0123"));
}

#[test]
fn dd_conv_notrunc_overwrites_in_place() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "abcdef").unwrap();
    c.sh("printf XY | dd of=f conv=notrunc status=none");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "f", Some(b"abcdef"), Some(b"XYcdef"));
}

#[test]
fn install_unlinks_and_recreates_as_one_version() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "old").unwrap();
    let src = c.dir.path().join("src");
    std::fs::write(&src, "installed\n").unwrap();
    c.sh(&format!("install -m 600 {} f", src.display()));
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"old"), Some(b"installed\n"));
    assert_eq!(v[0]["mode"], "0600");
}

#[test]
fn rsync_temp_file_and_rename_is_one_version() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "old contents\n").unwrap();
    let src = c.dir.path().join("src");
    std::fs::write(&src, "synced contents, longer\n").unwrap();
    c.sh(&format!("rsync {} f", src.display()));
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "the rsync temp file must leave no version: {v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"old contents\n"), Some(b"synced contents, longer\n"));
}

#[test]
fn python_tempfile_and_replace_is_one_version() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "v1").unwrap();
    let script =
        "import os,tempfile\nfd,p=tempfile.mkstemp(dir='.')\nos.write(fd,b'v2')\nos.close(fd)\nos.replace(p,'f')";
    let out = c.command("python3").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"v1"), Some(b"v2"));
}

#[test]
fn python_fdopen_and_reopen() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "a").unwrap();
    let script = "with open('f','a') as h: h.write('b')\nwith open('f','r+') as h: h.seek(0); h.write('X')";
    let out = c.command("python3").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = c.wait_versions(2);
    c.assert_version(&v[0], "write", "f", Some(b"a"), Some(b"ab"));
    c.assert_version(&v[1], "write", "f", Some(b"ab"), Some(b"Xb"));
}

/// vim in ex mode, no user config. `backupskip=` because the test files
/// live under /tmp, where vim's default skips the backup path real users hit
/// in /etc (shared/FACTS.md).
fn vim(c: &Collector, settings: &str, keys: &str) {
    let out = c
        .command("vim")
        .args(["-u", "NONE", "-N", "-es", "-c", &format!("set backupskip= {settings}"), "-c", keys, "-c", "wq", "f"])
        .output()
        .unwrap();
    assert!(out.status.success(), "vim failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn vim_default_save_is_one_write() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "line 1\n").unwrap();
    vim(&c, "", "normal Goline 2");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "no versions of 4913 or f~: {v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"line 1\n"), Some(b"line 1\nline 2\n"));
    assert_eq!(v[0]["exe"], "/usr/bin/vim.basic");
}

#[test]
fn vim_backup_rename_save_is_one_write() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "line 1\n").unwrap();
    vim(&c, "backup backupcopy=no", "normal Goline 2");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"line 1\n"), Some(b"line 1\nline 2\n"));
    // The backup really was made by renaming (vim keeps it with `backup`).
    assert_eq!(std::fs::read(c.path("f~")).unwrap(), b"line 1\n");
}

#[test]
fn vim_two_saves_are_two_versions() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "a\n").unwrap();
    let out = c
        .command("vim")
        .args([
            "-u",
            "NONE",
            "-N",
            "-es",
            "-c",
            "set backupskip=",
            "-c",
            "normal Gob",
            "-c",
            "w",
            "-c",
            "normal Goc",
            "-c",
            "wq",
            "f",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = c.wait_versions(2);
    assert_eq!(v.len(), 2, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"a\n"), Some(b"a\nb\n"));
    c.assert_version(&v[1], "write", "f", Some(b"a\nb\n"), Some(b"a\nb\nc\n"));
}

#[test]
fn nano_driven_through_tmux() {
    if which("nano").is_none() || which("tmux").is_none() {
        panic!("nano and tmux are needed (.ci/run installs them)");
    }
    let c = Collector::start();
    std::fs::write(c.path("f"), "hello\n").unwrap();
    let session = format!("ft{}", std::process::id());
    let socket = c.dir.path().join("tmux.sock");
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux").arg("-S").arg(&socket).args(args).output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cmd = format!(
        "cd {} && env LD_PRELOAD={} FILETRAIL_SOCKET={} nano --ignorercfiles f",
        c.track.display(),
        library().display(),
        c.socket.display()
    );
    tmux(&["new-session", "-d", "-s", &session, "-x", "80", "-y", "24", &cmd]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tmux(&["capture-pane", "-p", "-t", &session]).contains("hello") {
        assert!(Instant::now() < deadline, "nano did not show the file");
        std::thread::sleep(Duration::from_millis(50));
    }
    tmux(&["send-keys", "-t", &session, "world ", ""]);
    tmux(&["send-keys", "-t", &session, "C-o"]);
    tmux(&["send-keys", "-t", &session, "Enter"]);
    let v = c.wait_versions(1);
    tmux(&["send-keys", "-t", &session, "C-x"]);
    let _ = std::process::Command::new("tmux").arg("-S").arg(&socket).arg("kill-server").output();
    c.assert_version(&v[0], "write", "f", Some(b"hello\n"), Some(b"world hello\n"));
    assert!(v[0]["exe"].as_str().unwrap().ends_with("nano"));
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| p.exists())
}
