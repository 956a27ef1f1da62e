//! Package managers and admin scripts: one change, one version (issue 15).
//! A temp file renamed over its target by other processes, seconds or
//! minutes later, is one `write` of the target `via` the temp name; temp
//! files deleted unrenamed leave nothing in the default view; `query --all`
//! keeps every step. The last test installs and purges a real Debian
//! package (`mksh`: conffiles, and the `add-shell` shape on /etc/shells)
//! under a collector tracking the real /etc, and puts the host back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use filetrail_e2e::{Collector, collector_bin, library, sha256};
use serde_json::Value;

fn query(c: &Collector, args: &[&str]) -> Vec<Value> {
    let out = Command::new(collector_bin()).args(["query", "--json", "--db"]).arg(&c.db).args(args).output().unwrap();
    assert!(out.status.success(), "query failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|r| r["kind"] != "gap").collect()
}

fn summary(vs: &[Value]) -> Vec<String> {
    vs.iter().map(|v| format!("{} {} via {} folded {}", v["action"], v["path"], v["via"], v["folded_into"])).collect()
}

#[test]
fn cp_append_from_several_processes_then_mv_is_one_write_via_the_temp() {
    let c = Collector::start();
    std::fs::write(c.path("shells"), "/bin/sh\n").unwrap();
    // add-shell's shape: cp, appends by the shell and by another process,
    // chmod by another, mv by another; then an interrupted one (rm), and a
    // real file made and removed by two commands.
    c.sh("cp shells shells.tmp && echo /bin/a >> shells.tmp && sh -c 'echo /bin/b >> shells.tmp' \
          && chmod 600 shells.tmp && mv shells.tmp shells \
          && cp shells other.tmp && echo x >> other.tmp && rm other.tmp \
          && echo hi > note && rm note");
    let mut all = Vec::new();
    c.wait_until(
        || {
            all = query(&c, &["--all"]);
            all.iter().filter(|v| v["action"] == "delete").count() == 2 && all.len() >= 10
        },
        "every step in query --all",
    );
    let shown = c.versions();
    assert_eq!(shown.len(), 3, "{:#?}", summary(&shown));
    c.assert_version(&shown[0], "write", "shells", Some(b"/bin/sh\n"), Some(b"/bin/sh\n/bin/a\n/bin/b\n"));
    assert_eq!(shown[0]["via"], c.path("shells.tmp").display().to_string().as_str());
    assert_eq!(shown[0]["mode"], "0600", "the temp file's mode came with it");
    c.assert_version(&shown[1], "create", "note", None, Some(b"hi\n"));
    c.assert_version(&shown[2], "delete", "note", Some(b"hi\n"), None);
    // Nothing lost: every step of the temp files, with its bytes, points at
    // the version that stands for it.
    let steps: Vec<&Value> = all.iter().filter(|v| v["path"] == c.path("shells.tmp").display().to_string()).collect();
    assert_eq!(steps.len(), 4, "cp, two appends, chmod: {:#?}", summary(&all));
    assert!(steps.iter().all(|s| s["folded_into"] == shown[0]["id"]), "{:#?}", summary(&all));
    assert_eq!(c.show(&steps[1]["id"], false), b"/bin/sh\n/bin/a\n");
    let scratch: Vec<&Value> = all.iter().filter(|v| v["path"] == c.path("other.tmp").display().to_string()).collect();
    assert_eq!(scratch.len(), 3, "{:#?}", summary(&all));
    assert!(scratch.iter().all(|s| !s["folded_into"].is_null()));
    // `log` names the temp file; asking for the temp file finds the write.
    let log = Command::new(collector_bin()).args(["log", "--db"]).arg(&c.db).arg(c.path("shells")).output().unwrap();
    let log = String::from_utf8(log.stdout).unwrap();
    assert!(log.contains(&format!("Via:     {}", c.path("shells.tmp").display())), "{log}");
    assert_eq!(c.versions_of(&[&c.path("shells.tmp")]).len(), 1);
}

#[test]
fn vipw_style_lock_temp_editor_rename_is_one_write() {
    let c = Collector::start();
    std::fs::write(c.path("shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    // As vipw -s: lock (shadow.PID linked to shadow.lock), a backup, a copy
    // to edit, an editor in another process that takes longer than the
    // collector holds a created file back (2 s), the rename, the unlock.
    let script = r#"
import os, subprocess
pid = os.getpid()
with open(f"shadow.{pid}", "w") as f: f.write(str(pid))
os.link(f"shadow.{pid}", "shadow.lock"); os.unlink(f"shadow.{pid}")
old = open("shadow").read()
with open("shadow-", "w") as f: f.write(old)
with open("shadow.edit", "w") as f: f.write(old)
subprocess.run(["sh", "-c", "sleep 2.5; echo 'alice:!:19001:0:99999:7:::' >> shadow.edit"], check=True)
os.rename("shadow.edit", "shadow")
os.unlink("shadow.lock")
"#;
    let out = c.command("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut all = Vec::new();
    c.wait_until(
        || {
            all = query(&c, &["--all"]);
            all.iter().any(|v| v["action"] == "delete" && v["path"] == c.path("shadow.lock").display().to_string())
        },
        "the unlock",
    );
    let shown = c.versions();
    assert_eq!(shown.len(), 2, "{:#?}\nall: {:#?}", summary(&shown), summary(&all));
    let old: &[u8] = b"root:*:19000:0:99999:7:::\n";
    c.assert_version(&shown[0], "create", "shadow-", None, Some(old));
    c.assert_version(
        &shown[1],
        "write",
        "shadow",
        Some(old),
        Some(b"root:*:19000:0:99999:7:::\nalice:!:19001:0:99999:7:::\n"),
    );
    assert_eq!(shown[1]["via"], c.path("shadow.edit").display().to_string().as_str());
}

/// Every regular file under `root` (no symlink followed) and its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file()
                && let Ok(bytes) = std::fs::read(e.path())
            {
                files.insert(e.path(), bytes);
            }
        }
    }
    files
}

const PACKAGE: &str = "mksh";

fn apt(args: &[&str], captured: Option<&Collector>) -> Output {
    let mut cmd = match captured {
        Some(c) => c.command("apt-get"),
        None => Command::new("apt-get"),
    };
    cmd.args(["-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd.output().expect("running apt-get")
}

fn installed() -> bool {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("ok installed")
        || String::from_utf8_lossy(&out.stdout).contains("config-files")
}

/// Purges the package when the test ends, however it ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed() {
            let out = apt(&["remove", "--purge", PACKAGE], None);
            if !out.status.success() {
                eprintln!("could not purge {PACKAGE}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
}

/// Checks one package operation: the default view since `after_id` holds
/// exactly one version per changed path that the collector recorded (and
/// one for each of `must`), with exact bytes; none of a path that is gone
/// unless it is that path's delete; none of an unchanged path.
fn check_phase(
    c: &Collector,
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    after_id: i64,
    must: &[&str],
) -> i64 {
    let changed: std::collections::BTreeSet<&PathBuf> =
        before.keys().chain(after.keys()).filter(|p| before.get(*p) != after.get(*p)).collect();
    for m in must {
        assert!(changed.iter().any(|p| p.as_os_str() == *m), "{m} did not change: {changed:?}");
    }
    // The processes have exited (each waited for its acks): poll briefly for
    // every path that must be there.
    let mut shown = Vec::new();
    c.wait_until(
        || {
            shown = c.versions_of(&[Path::new("/etc")]);
            shown.retain(|v| v["id"].as_i64().unwrap() > after_id);
            must.iter().all(|m| shown.iter().any(|v| v["path"] == *m))
        },
        "the package's versions",
    );
    let all: Vec<Value> =
        query(c, &["--all", "/etc"]).into_iter().filter(|v| v["id"].as_i64().unwrap() > after_id).collect();
    let recorded: std::collections::BTreeSet<String> =
        all.iter().map(|v| v["path"].as_str().unwrap().to_owned()).collect();
    for v in &shown {
        let path = PathBuf::from(v["path"].as_str().unwrap());
        assert!(changed.contains(&path), "a version of {path:?}, which did not change: {:#?}", summary(&shown));
    }
    for path in changed {
        let name = path.to_str().unwrap();
        if !recorded.contains(name) && !must.contains(&name) {
            continue; // changed by a process outside this test (not under its library)
        }
        let of: Vec<&Value> = shown.iter().filter(|v| v["path"] == name).collect();
        assert_eq!(of.len(), 1, "{name}: {:#?}\nall steps: {:#?}", summary(&shown), summary(&all));
        let v = of[0];
        let (was, is) = (before.get(path), after.get(path));
        let hash = |b: Option<&Vec<u8>>| b.map_or(Value::Null, |b| Value::from(sha256(b)));
        assert_eq!((&v["before"], &v["after"]), (&hash(was), &hash(is)), "{name}: {v}");
        if let Some(was) = was {
            assert_eq!(&c.show(&v["id"], true), was, "{name}: before bytes");
        }
        if let Some(is) = is {
            assert_eq!(&c.show(&v["id"], false), is, "{name}: after bytes");
        } else {
            assert_eq!(v["action"], "delete", "{name} is gone: only its delete may show");
        }
    }
    all.iter().map(|v| v["id"].as_i64().unwrap()).max().unwrap_or(after_id)
}

#[test]
fn apt_get_install_and_purge_of_a_package_with_conffiles_one_version_per_file() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    if !root || Command::new("apt-get").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and apt-get");
        return;
    }
    if installed() {
        eprintln!("skipped: {PACKAGE} is installed on this host already (the test would remove it)");
        return;
    }
    // Fetch the package first, outside the captured run.
    let mut fetched = apt(&["install", "--download-only", PACKAGE], None);
    if !fetched.status.success() {
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        fetched = apt(&["install", "--download-only", PACKAGE], None);
    }
    if !fetched.status.success() {
        eprintln!("skipped: apt cannot download {PACKAGE}: {}", String::from_utf8_lossy(&fetched.stderr));
        return;
    }
    let _purge = Purge;
    let all_rows = |c: &Collector| {
        let out = Command::new(filetrail_e2e::collector_bin())
            .args(["query", "--all", "--json", "--db"])
            .arg(&c.db)
            .arg("/etc")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let etc = Path::new("/etc");
    let c = Collector::start_tracking(&[etc], "");
    assert!(library().exists(), "scripts/build first");

    let s0 = snapshot(etc);
    let out = apt(&["install", PACKAGE], Some(&c));
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
    let s1 = snapshot(etc);
    let last = check_phase(&c, &s0, &s1, 0, &["/etc/mkshrc", "/etc/skel/.mkshrc", "/etc/shells"]);
    // The shells change names its temp file; no .dpkg-new is left in view.
    let shown = c.versions_of(&[etc]);
    let shells = shown.iter().find(|v| v["path"] == "/etc/shells").unwrap();
    assert_eq!(shells["via"], "/etc/shells.tmp", "{shells}\nall rows of /etc:\n{}", all_rows(&c));
    let rc = shown.iter().find(|v| v["path"] == "/etc/mkshrc").unwrap();
    assert_eq!((&rc["action"], &rc["via"]), (&Value::from("create"), &Value::from("/etc/mkshrc.dpkg-new")), "{rc}");

    let out = apt(&["remove", "--purge", PACKAGE], Some(&c));
    assert!(out.status.success(), "purge: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!installed(), "{PACKAGE} is purged");
    let s2 = snapshot(etc);
    check_phase(&c, &s1, &s2, last, &["/etc/mkshrc", "/etc/skel/.mkshrc", "/etc/shells"]);
    assert_eq!(s2.get(Path::new("/etc/shells")), s0.get(Path::new("/etc/shells")), "/etc/shells is as it was");
}
