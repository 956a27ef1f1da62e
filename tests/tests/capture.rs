//! Real programs under the library, recorded byte for byte.

use std::process::Command;

use filetrail_e2e::{Collector, library};

#[test]
fn shell_redirects_overwrite_and_append() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "orig\n").unwrap();
    c.sh("echo one > f; echo two >> f");
    let v = c.wait_versions(2);
    assert_eq!(v.len(), 2, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"orig\n"), Some(b"one\n"));
    c.assert_version(&v[1], "write", "f", Some(b"one\n"), Some(b"one\ntwo\n"));
    assert_eq!(v[0]["exe"], "/usr/bin/dash");
    assert_eq!(v[0]["user"], "root");
    assert_eq!(v[0]["trust"]["pid"], "verified");
}

#[test]
fn bash_redirect_creates_and_appends() {
    let c = Collector::start();
    let out = c.command("bash").args(["-c", "printf 'a\\0b\\xff' > new; echo more >> new"]).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_versions(2);
    c.assert_version(&v[0], "create", "new", None, Some(b"a\0b\xff"));
    c.assert_version(&v[1], "write", "new", Some(b"a\0b\xff"), Some(b"a\0b\xffmore\n"));
}

#[test]
fn cp_onto_existing_and_new_files() {
    let c = Collector::start();
    let src = c.dir.path().join("src.bin");
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(&src, &content).unwrap();
    std::fs::write(c.path("existing"), "old").unwrap();
    c.sh(&format!("cp {0} existing && cp {0} fresh", src.display()));
    let v = c.wait_versions(2);
    assert_eq!(v.len(), 2, "{v:?}");
    c.assert_version(&v[0], "write", "existing", Some(b"old"), Some(&content));
    c.assert_version(&v[1], "create", "fresh", None, Some(&content));
    assert_eq!(v[1]["size"], 70_000);
}

#[test]
fn mv_over_an_existing_file_is_a_rename() {
    let c = Collector::start();
    std::fs::write(c.path("a"), "A content").unwrap();
    std::fs::write(c.path("b"), "B content").unwrap();
    c.sh("mv a b");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    c.assert_version(&v[0], "rename", "b", Some(b"B content"), Some(b"A content"));
    assert_eq!(v[0]["old_path"], c.path("a").display().to_string());
    // The history of `a` ends with it being renamed away.
    assert_eq!(c.versions_of(&[&c.path("a")]).len(), 1);
}

#[test]
fn sed_in_place_is_one_write_and_no_temp_file() {
    let c = Collector::start();
    std::fs::write(c.path("conf"), "port = 80\nhost = x\n").unwrap();
    c.sh("sed -i 's/80/8080/' conf");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "the sed temp file must leave no version: {v:?}");
    c.assert_version(&v[0], "write", "conf", Some(b"port = 80\nhost = x\n"), Some(b"port = 8080\nhost = x\n"));
    assert_eq!(v[0]["exe"], "/usr/bin/sed");
    assert_eq!(v[0]["argv"], serde_json::json!(["sed", "-i", "s/80/8080/", "conf"]));
}

#[test]
fn rm_is_a_delete() {
    let c = Collector::start();
    std::fs::write(c.path("gone"), "last words\n").unwrap();
    c.sh("rm gone");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "delete", "gone", Some(b"last words\n"), None);
    assert!(v[0]["size"].is_null());
}

#[test]
fn python_open_for_writing() {
    let c = Collector::start();
    std::fs::write(c.path("p"), "before").unwrap();
    let out = c.command("python3").args(["-c", "open('p','w').write('after')"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "p", Some(b"before"), Some(b"after"));
}

#[test]
fn redirect_into_an_execd_program_is_finished_by_the_collector() {
    // The shell opens the file and execs cat: the library that saw the open
    // is gone before cat writes. The collector completes the version.
    let c = Collector::start();
    std::fs::write(c.path("dst"), "old\n").unwrap();
    let src = c.dir.path().join("src");
    std::fs::write(&src, "from cat\n").unwrap();
    c.sh(&format!("exec cat {} > dst", src.display()));
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "dst", Some(b"old\n"), Some(b"from cat\n"));
}

#[test]
fn reads_and_untracked_writes_send_nothing() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "x").unwrap();
    std::fs::write(c.path("marker"), "0").unwrap();
    let outside = c.dir.path().join("outside");
    c.sh(&format!("cat f > /dev/null; echo y > {0}; rm {0}; echo 1 > marker", outside.display()));
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "only the marker: {v:?}");
    c.assert_version(&v[0], "write", "marker", Some(b"0"), Some(b"1\n"));
}

#[test]
fn ignored_names_are_not_recorded() {
    let c = Collector::start();
    std::fs::write(c.path("marker"), "0").unwrap();
    c.sh("echo x > .f.swp; echo y > f~; echo 1 > marker");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
}

#[test]
fn dead_collector_changes_nothing_for_the_program() {
    let script = "echo out; echo err >&2; echo data > f; cat f; exit 3";
    let dir = tempfile::tempdir().unwrap();
    let run = |preload: bool| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).current_dir(dir.path());
        if preload {
            cmd.env("LD_PRELOAD", library()).env("FILETRAIL_SOCKET", dir.path().join("nobody-listens.sock"));
        }
        let out = cmd.output().unwrap();
        (out.status.code(), out.stdout, out.stderr)
    };
    assert_eq!(run(true), run(false));
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"data\n");
}
