//! Issue 9, items 1, 2 and 11, played by an ordinary local user
//! (`ft-mallory`): restore must not hand her a setuid or root-owned file,
//! must not write outside the path it names, and the collector must not use
//! a store she could have prepared. Every test skips when not run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, as_user, collector_bin, mallory};

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

/// Starts `collector serve --db db` and waits (up to 5 s) for it to exit;
/// `None` (after killing it) if it is still serving.
fn serve_exit(c: &Collector, db: &Path) -> Option<Output> {
    let mut child = Command::new(collector_bin())
        .args(["serve", "--socket"])
        .arg(c.dir.path().join("second.sock"))
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(c.dir.path().join("config.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if c.dir.path().join("second.sock").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn the_collector_refuses_a_store_someone_else_could_control() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start();
    // The store file is 0600 from its first byte, and so are its WAL files.
    for suffix in ["", "-wal", "-shm"] {
        let f = format!("{}{suffix}", c.db.display());
        let mode = std::fs::metadata(&f).map(|m| m.mode() & 0o7777);
        assert!(matches!(mode, Ok(0o600)), "{f}: {mode:?}");
    }
    c.open_to_all();

    // --db in a world-writable directory where mallory made trail.db first.
    let tmp = world_writable(&c, "tmp");
    as_user(mallory, &tmp, "touch trail.db && chmod 666 trail.db");
    let out = serve_exit(&c, &tmp.join("trail.db")).expect("the collector served on mallory's store");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("refusing the store") && err.contains(tmp.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::metadata(tmp.join("trail.db")).unwrap().len(), 0, "nothing written into it");

    // In a directory of root's: her file, a symlink, a group-writable
    // WAL are refused too.
    let safe = c.dir.path().join("safe");
    std::fs::create_dir(&safe).unwrap();
    let db = safe.join("trail.db");
    std::fs::write(&db, "").unwrap();
    std::os::unix::fs::chown(&db, Some(mallory.0), Some(mallory.1)).unwrap();
    let out = serve_exit(&c, &db).expect("served on a store owned by another user");
    assert!(stderr(&out).contains("is owned by uid"), "{}", stderr(&out));
    std::fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink(c.dir.path().join("elsewhere.db"), &db).unwrap();
    let out = serve_exit(&c, &db).expect("served through a symlink");
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert!(!c.dir.path().join("elsewhere.db").exists());
    std::fs::remove_file(&db).unwrap();
    std::fs::write(safe.join("trail.db-wal"), "").unwrap();
    std::fs::set_permissions(safe.join("trail.db-wal"), std::fs::Permissions::from_mode(0o660)).unwrap();
    let out = serve_exit(&c, &db).expect("served with a group-writable WAL");
    assert!(stderr(&out).contains("trail.db-wal is writable by group or others"), "{}", stderr(&out));
}
