//! Issue 10, the spool: edits made while no collector runs are written by
//! each process to its own spool file beside the socket and replayed when a
//! collector starts, with the owner of the file (kernel-verified) as the
//! writer, their original times and exact bytes; and what a user plants in
//! the spool directory is never followed, blocked on or believed beyond
//! what that user could have done.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, collector_bin, library, mallory};

/// Runs `program args...` under the library as `uid:gid` (no groups), in
/// the tracked directory.
fn run_as(c: &Collector, (uid, gid): (u32, u32), program: &str, args: &[&str]) -> Output {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", program])
        .args(args)
        .current_dir(&c.track)
        .env("LD_PRELOAD", library())
        .env("FILETRAIL_SOCKET", &c.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn spool_dir(c: &Collector) -> PathBuf {
    c.dir.path().join("spool")
}

/// Names in the spool directory ending with `suffix`.
fn spooled(c: &Collector, suffix: &str) -> Vec<String> {
    std::fs::read_dir(spool_dir(c))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli(c: &Collector, args: &[&str]) -> String {
    let out = Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Now, as RFC 3339 with microseconds (for `--until`).
fn utc_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A collector whose tracked directory anyone may write (as `/tmp`-like
/// shared config directories are), reachable by every user.
fn shared_collector() -> Collector {
    let c = Collector::start();
    c.open_to_all();
    std::fs::set_permissions(&c.track, std::fs::Permissions::from_mode(0o777)).unwrap();
    c
}

/// The outage test of issue 10: the collector is killed, 50 processes of
/// ft-mallory and 50 of root each edit a file, then a collector starts
/// with the same arguments: all 100 versions are there, each with its
/// writer's uid (verified: the spool file's owner), its original time
/// (before the collector started), its exact bytes, and every other
/// identity field labelled claimed.
#[test]
fn edits_made_while_no_collector_runs_are_replayed_on_start() {
    let Some(m) = mallory() else { return };
    let mut c = shared_collector();
    let spool = spool_dir(&c);
    let md = std::fs::symlink_metadata(&spool).unwrap();
    assert!(md.is_dir());
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o1733, 0), "spool directory: root, 1733");
    assert!(spool.join("policy").exists(), "the collector leaves its policy for libraries");
    c.kill();

    for i in 0..50 {
        c.sh(&format!("echo root {i} > r{i}"));
        run_as(&c, m, "sh", &["-c", &format!("echo mallory {i} > m{i}")]);
    }
    let files = spooled(&c, ".ftspool");
    assert_eq!(files.len(), 100, "one spool file per process: {files:?}");
    for f in &files {
        let md = std::fs::metadata(spool.join(f)).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600, "{f}");
        assert!(md.uid() == 0 || md.uid() == m.0, "{f} owned by {}", md.uid());
    }
    let outage_end = utc_now();

    c.start_prepared();
    let versions = c.wait_versions(100);
    assert_eq!(versions.len(), 100);
    for i in 0..50 {
        for (name, uid, user, text) in [
            (format!("r{i}"), 0, "root", format!("root {i}\n")),
            (format!("m{i}"), m.0, "ft-mallory", format!("mallory {i}\n")),
        ] {
            let path = c.path(&name).display().to_string();
            let v =
                versions.iter().find(|v| v["path"] == path.as_str()).unwrap_or_else(|| panic!("no version of {name}"));
            c.assert_version(v, "create", &name, None, Some(text.as_bytes()));
            assert_eq!((v["uid"].as_u64(), v["euid"].as_u64()), (Some(uid as u64), Some(uid as u64)), "{v}");
            assert_eq!(v["user"], user, "{v}");
            assert_eq!((&v["trust"]["uid"], &v["trust"]["euid"]), (&"verified".into(), &"verified".into()), "{v}");
            for claimed in ["pid", "exe", "loginuid", "session", "tty", "user", "argv"] {
                assert_eq!(v["trust"][claimed], "claimed", "{claimed} of {v}");
            }
        }
    }
    // Every version keeps the time it was made: all before the restart.
    let before = cli(&c, &["query", "--json", "--until", &outage_end]);
    assert_eq!(before.lines().count(), 100, "versions dated before the collector started");
    wait_for("the replayed spool files to be deleted", || spooled(&c, ".ftspool").is_empty());
    assert!(cli(&c, &["stats"]).contains("gaps:         none"));
    // And the collector serves as usual afterwards.
    c.sh("echo live > live");
    c.wait_versions(101);
}

/// A Python writer of spool files: `argv[1]` the path, `argv[2]` a JSON
/// list of `[header, payload as latin-1]`; created 0600, never through a
/// symlink.
const SPOOL_WRITER: &str = r#"
import json, os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
for h, p in json.loads(sys.argv[2]):
    p = p.encode('latin-1'); h = json.dumps(h).encode()
    os.write(fd, struct.pack('<IQ', len(h), len(p)) + h + p)
os.close(fd)
"#;

/// Frames of a spool file that edits `path` from `old` to `new`.
fn edit_frames(path: &Path, old: &str, new: &str) -> serde_json::Value {
    let path = path.display().to_string();
    let snap = |s: &str| serde_json::json!({"state": "stored", "len": s.len(), "size": s.len()});
    serde_json::json!([
        [{"kind": "hello", "version": 1}, ""],
        [{"kind": "clock", "time_us": 1_700_000_000_000_000i64}, ""],
        [{"kind": "begin", "token": 1, "path": path, "flags": 1, "before": snap(old)}, old],
        [{"kind": "clock", "time_us": 1_700_000_001_000_000i64}, ""],
        [{"kind": "close", "token": 1, "after": snap(new)}, new],
    ])
}

fn write_spool(file: &Path, frames: &serde_json::Value, as_user: Option<(u32, u32)>) {
    let out =
        filetrail_e2e::python(as_user).args(["-c", SPOOL_WRITER]).arg(file).arg(frames.to_string()).output().unwrap();
    assert!(out.status.success(), "spool writer: {}", String::from_utf8_lossy(&out.stderr));
}

/// ft-mallory writes a spool file of her own claiming a change of a file
/// only root may write, and one of a file she may write: the kernel's
/// check as the file's owner refuses the first, the second is recorded as
/// hers, with the time the file claims.
#[test]
fn a_spool_file_counts_only_for_what_its_owner_could_write() {
    let Some(m) = mallory() else { return };
    let c = shared_collector();
    let locked = c.track.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("conf"), "root only\n").unwrap();
    std::fs::write(c.path("open.conf"), "a\n").unwrap();
    std::fs::set_permissions(c.path("open.conf"), std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut frames = edit_frames(&locked.join("conf"), "root only\n", "pwned\n");
    let open = edit_frames(&c.path("open.conf"), "a\n", "b\n");
    // The second edit, on token 2, after the first.
    for f in open.as_array().unwrap()[1..].iter() {
        let mut f = f.clone();
        if f[0]["token"].is_number() {
            f[0]["token"] = 2.into();
        }
        frames.as_array_mut().unwrap().push(f);
    }
    write_spool(&spool_dir(&c).join("4242.1.ftspool"), &frames, Some(m));
    let v = c.wait_versions(1);
    wait_for("the spool file to be replayed", || spooled(&c, ".ftspool").is_empty());
    assert_eq!(c.versions().len(), 1, "only the edit mallory could make: {v:?}");
    c.assert_version(&v[0], "write", "open.conf", Some(b"a\n"), Some(b"b\n"));
    assert_eq!((v[0]["uid"].as_u64(), &v[0]["user"]), (Some(m.0 as u64), &"ft-mallory".into()));
    assert_eq!(v[0]["pid"], 4242);
    assert_eq!(v[0]["trust"]["pid"], "claimed");
    assert!(v[0]["time"].as_str().unwrap().starts_with("2023-11-14T22:13:21"), "the claimed time: {}", v[0]);
    assert!(c.log().contains("rejected a version"), "{}", c.log());
    assert_eq!(std::fs::read(locked.join("conf")).unwrap(), b"root only\n");
}

/// What ft-mallory plants in the spool directory: a symlink to a spool file
/// root wrote elsewhere (replayed as root if it were followed), a FIFO (a
/// reader would block), and garbage. Each is moved aside, none is replayed,
/// the garbage leaves a gap record, and the collector keeps serving.
#[test]
fn planted_symlinks_fifos_and_garbage_are_moved_aside() {
    let Some(m) = mallory() else { return };
    let c = shared_collector();
    let spool = spool_dir(&c);
    let locked = c.track.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("conf"), "root only\n").unwrap();
    // A valid spool file owned by root, outside the spool directory.
    let elsewhere = c.dir.path().join("root-owned.ftspool");
    write_spool(&elsewhere, &edit_frames(&locked.join("conf"), "root only\n", "pwned\n"), None);
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let plant = format!(
        "import os; os.symlink({:?}, '1.1.ftspool'); os.mkfifo('2.1.ftspool', 0o600); \
         open('3.1.ftspool', 'wb').write(b'\\x05\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00nope!')",
        elsewhere.display().to_string()
    );
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", m.0))
        .arg(format!("--regid={}", m.1))
        .args(["--clear-groups", "/usr/bin/python3", "-c", &plant])
        .current_dir(&spool)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the planted files to be moved aside", || spooled(&c, ".bad").len() == 3);
    assert!(spooled(&c, ".ftspool").is_empty());
    let link = std::fs::symlink_metadata(spool.join("1.1.ftspool.bad")).unwrap();
    assert!(link.file_type().is_symlink(), "moved as a symlink, never followed");
    assert!(std::fs::symlink_metadata(spool.join("2.1.ftspool.bad")).unwrap().file_type().is_fifo());
    assert!(elsewhere.exists(), "the symlink's target is left alone");
    // Nothing was replayed, and the collector still serves and replays.
    c.sh("echo live > live");
    c.wait_versions(1);
    std::fs::write(c.path("open.conf"), "a\n").unwrap();
    write_spool(&spool.join("5.1.ftspool"), &edit_frames(&c.path("open.conf"), "a\n", "b\n"), None);
    let v = c.wait_versions(2);
    assert!(v.iter().all(|v| !v["path"].as_str().unwrap().contains("locked")), "{v:?}");
    let stats = cli(&c, &["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let gaps = stats["gaps"].as_array().unwrap();
    assert!(gaps.iter().any(|g| g["what"] == "spool_malformed" && g["records"] == 1), "{stats}");
}

/// A `Lost` frame (events the library could neither send nor spool) becomes
/// a gap: `collector stats` shows it, `--json` carries it.
#[test]
fn what_the_library_lost_is_a_gap_in_stats() {
    let c = Collector::start();
    let frames = serde_json::json!([
        [{"kind": "hello", "version": 1}, ""],
        [{"kind": "clock", "time_us": 1_700_000_000_000_000i64}, ""],
        [{"kind": "lost", "versions": 3, "bytes": 300}, ""],
        [{"kind": "lost", "versions": 2, "bytes": 0}, ""],
    ]);
    write_spool(&spool_dir(&c).join("77.1.ftspool"), &frames, None);
    wait_for("the spool file to be replayed", || spooled(&c, ".ftspool").is_empty());
    let text = cli(&c, &["stats"]);
    assert!(text.contains("gaps:         lost_in_library: at least 5 versions not recorded (300 bytes"), "{text}");
    let stats: serde_json::Value = serde_json::from_str(&cli(&c, &["stats", "--json"])).unwrap();
    let g = &stats["gaps"][0];
    assert_eq!(
        (&g["what"], &g["versions"], &g["bytes"], &g["users"][0]),
        (&"lost_in_library".into(), &5.into(), &300.into(), &"root".into()),
        "{stats}"
    );
}
