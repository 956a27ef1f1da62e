//! Issue 9, items 1, 2 and 11, played by an ordinary local user
//! (`ft-mallory`): restore must not hand her a setuid or root-owned file,
//! must not write outside the path it names, and the collector must not use
//! a store she could have prepared. Every test skips when not run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use filetrail_e2e::{Collector, collector_bin, mallory};

fn cli(c: &Collector, args: &[&str]) -> Output {
    Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).arg("--socket").arg(&c.socket).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory anyone may create files in, like /tmp (mode 1777).
fn world_writable(c: &Collector, name: &str) -> PathBuf {
    let d = c.path(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// Runs `sh -c script` as `who` (no library: these are her own moves).
fn as_user(who: (u32, u32), dir: &Path, script: &str) {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", who.0))
        .arg(format!("--regid={}", who.1))
        .args(["--clear-groups", "sh", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
}

/// Raw-client lines reporting that `path` was created holding `content`,
/// with `meta` (a Python dict) as the file's claimed stat.
fn forged_create(path: &Path, content: &str, meta: &str) -> String {
    format!(
        "p = {content:?}.encode()\n\
         send({{'kind':'begin','token':1,'path':'{0}','flags':65,'before':{{'state':'absent'}}}})\n\
         send({{'kind':'close','token':1,'after':{{'state':'stored','len':len(p),'size':len(p),'meta':{meta}}}}}, p)\n",
        path.display()
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_forged_setuid_root_mode_never_reaches_a_restored_file() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start();
    let public = world_writable(&c, "pub");
    let tool = public.join("tool");
    // Mallory reports that she created `tool` with her bytes, and that it
    // is setuid root. Nothing is on disk: only the report.
    let meta = "{'mode':0o104755,'uid':0,'gid':0,'dev':0,'ino':0,'mtime_ns':0}";
    c.raw_client(&forged_create(&tool, "#!/bin/sh\nid\n", meta), Some(mallory));
    let v = c.wait_versions(1);
    assert_eq!(v[0]["path"], tool.to_str().unwrap(), "{v:?}");
    let id = v[0]["id"].to_string();

    // Root restores it: to its own path (which does not exist), then
    // elsewhere with --to. Both times the file is hers, without the bits.
    let copy = c.dir.path().join("copy");
    for (target, extra) in [(&tool, None), (&copy, Some(copy.to_str().unwrap()))] {
        let mut args = vec!["restore", id.as_str()];
        args.extend(extra.map(|to| ["--to", to]).into_iter().flatten());
        let out = cli(&c, &args);
        assert!(out.status.success(), "restore {args:?}: {}", stderr(&out));
        let md = std::fs::symlink_metadata(target).unwrap();
        assert_eq!(std::fs::read(target).unwrap(), b"#!/bin/sh\nid\n");
        assert_eq!(md.mode() & 0o7000, 0, "{} came back with mode {:o}", target.display(), md.mode());
        assert_eq!(md.mode() & 0o777, 0o755, "the permission bits recorded are kept");
        assert_eq!((md.uid(), md.gid()), mallory, "{} belongs to the writer, never root", target.display());
    }

    // Over a file that exists: the file keeps its own owner and mode.
    as_user(mallory, &public, "printf 'now\\n' > tool && chmod 640 tool");
    let out = cli(&c, &["restore", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let md = std::fs::symlink_metadata(&tool).unwrap();
    assert_eq!(std::fs::read(&tool).unwrap(), b"#!/bin/sh\nid\n");
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o640, mallory.0, mallory.1));
}

#[test]
fn a_path_with_dot_dot_is_never_restored_outside() {
    let c = Collector::start();
    let outside = c.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::create_dir(c.path("l")).unwrap();
    c.sh("printf 'mallory::0:0::/:/bin/sh\\n' > victim");
    c.wait_versions(1);
    // The version says it is of a path that, read as text, leads outside the
    // tracked tree. (Intake refuses such paths; the store is written
    // directly so that restore is tested on its own.)
    let track = c.track.to_str().unwrap();
    let forged = [
        format!("{track}/l/../../outside/passwd"),
        format!("{track}/./../outside/passwd"),
        format!("{track}//..//outside/passwd"),
        "outside/passwd".to_owned(),
    ];
    let db = rusqlite::Connection::open(&c.db).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    for path in &forged {
        db.execute("UPDATE versions SET path = ?1 WHERE id = 1", [path.as_bytes()]).unwrap();
        let out = cli(&c, &["restore", "1"]);
        assert!(!out.status.success(), "restore of {path} succeeded");
        assert!(stderr(&out).contains("not an absolute canonical path"), "{}", stderr(&out));
        assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
        assert_eq!(files_in(&outside), ["passwd"]);
        assert_eq!(files_in(&c.path("l")), Vec::<String>::new());
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_makes_restore_refuse() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start();
    let public = world_writable(&c, "pub");
    // Root's directories that mallory would like to write into.
    let outside = c.dir.path().join("outside");
    std::fs::create_dir_all(outside.join("deeper")).unwrap();
    std::fs::write(outside.join("cron"), "root's\n").unwrap();
    std::fs::write(outside.join("deeper/cron"), "root's\n").unwrap();
    as_user(mallory, &public, "mkdir -p sub/deeper");
    let meta = format!("{{'mode':0o100644,'uid':{0},'gid':{1},'dev':0,'ino':0,'mtime_ns':0}}", mallory.0, mallory.1);
    let mut script = forged_create(&public.join("sub/cron"), "* * * * * root sh /tmp/x\n", &meta);
    script.push_str(&forged_create(&public.join("sub/deeper/cron"), "evil\n", &meta).replace("'token':1", "'token':2"));
    c.raw_client(&script, Some(mallory));
    let v = c.wait_versions(2);
    // After recording, `sub` becomes a symlink to root's directory: both
    // paths, followed, would now lead into it (the last component of the
    // directory, and one further up).
    as_user(mallory, &public, &format!("mv sub sub.old && ln -s {} sub", outside.display()));
    for version in &v {
        let out = cli(&c, &["restore", &version["id"].to_string()]);
        assert!(!out.status.success(), "restore of {} succeeded", version["path"]);
        assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(outside.join("cron")).unwrap(), b"root's\n");
    assert_eq!(std::fs::read(outside.join("deeper/cron")).unwrap(), b"root's\n");
    assert_eq!(files_in(&outside), ["cron", "deeper"], "nothing written, no temporary file left");
    assert_eq!(files_in(&outside.join("deeper")), ["cron"]);
    assert_eq!(c.versions().len(), 2, "nothing recorded");
}
