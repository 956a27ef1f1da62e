//! Store benchmarks (`cargo bench -p filetrail-collector --bench store`):
//!
//! 1. size: 1,000 successive one-line edits of a 10 KiB config, each by its
//!    own process (as `sed -i` would be), against a git repository holding
//!    the same 1,000 commits after `git gc --aggressive`;
//! 2. queries on a store of 1,000,000 generated versions: by path, by
//!    directory prefix, by user, by time range.
//!
//! Prints figures and ratios measured in this run; asserts nothing.
//! `FILETRAIL_BENCH_VERSIONS` changes the size of the query store.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use filetrail_collector::model::{Action, Draft, NewVersion, Side};
use filetrail_collector::store::query::PathSpec;
use filetrail_collector::store::{QueryFilter, Store};
use filetrail_collector::who::{Identity, Trust};

fn config(lines: usize, edit: usize) -> Vec<u8> {
    let mut text = String::new();
    for i in 0..lines {
        if i == edit % lines {
            text.push_str(&format!("setting_{i:03} = edited value {edit}\n"));
        } else {
            text.push_str(&format!("setting_{i:03} = the default value of setting number {i}\n"));
        }
    }
    text.into_bytes()
}

fn identity(n: usize, user: &str) -> Arc<Identity> {
    let mut id = Identity {
        key: n as u64 + 1,
        pid: 10_000 + n as i32,
        uid: 0,
        euid: 0,
        gid: 0,
        loginuid: Some(1000),
        session: Some(7 + (n / 50) as u32),
        user: user.into(),
        chain: vec![user.into(), "root".into()],
        exe: "/usr/bin/sed".into(),
        argv: vec!["sed".into(), "-i".into(), format!("s/value/value {n}/"), "/etc/app/app.conf".into()],
        cwd: Some("/root".into()),
        tty: Some("/dev/pts/0".into()),
        sudo_user: Some(user.into()),
        ssh_client: Some("192.0.2.10:51234".into()),
        host: Some("web01".into()),
        ..Default::default()
    };
    for f in ["pid", "euid", "uid", "loginuid", "session", "exe", "cwd", "tty", "user", "chain"] {
        id.trust.insert(f, Trust::Verified);
    }
    for f in ["argv", "sudo_user", "ssh_client"] {
        id.trust.insert(f, Trust::Claimed);
    }
    Arc::new(id)
}

fn dir_size(p: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(p).output().expect("du");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn store_size(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;").unwrap();
    std::fs::metadata(db).unwrap().len()
}

fn size_vs_git(dir: &Path) {
    const EDITS: usize = 1000;
    let db = dir.join("size.db");
    let mut store = Store::open(&db).unwrap();
    let t = Instant::now();
    let mut prev = config(200, usize::MAX);
    assert!((10_000..12_000).contains(&prev.len()), "a 10 KiB config: {}", prev.len());
    for n in 0..EDITS {
        let next = config(200, n);
        let draft = Draft::new(
            b"/etc/app/app.conf".to_vec(),
            Action::Write,
            Some(Side::from_bytes(prev.clone(), None, true)),
            Some(Side::from_bytes(next.clone(), None, true)),
            jiff::Timestamp::now(),
        );
        store.insert(&[NewVersion { draft, who: identity(n, "alice"), delivery: None }]).unwrap();
        prev = next;
    }
    let insert = t.elapsed();
    drop(store);
    let ours = store_size(&db);

    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git").args(args).current_dir(&repo).output().unwrap().status.success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["config", "user.email", "bench@example.com"]);
    git(&["config", "user.name", "bench"]);
    let t = Instant::now();
    std::fs::write(repo.join("app.conf"), config(200, usize::MAX)).unwrap();
    git(&["add", "app.conf"]);
    git(&["commit", "-qm", "initial"]);
    for n in 0..EDITS {
        std::fs::write(repo.join("app.conf"), config(200, n)).unwrap();
        git(&["commit", "-qam", &format!("edit {n} by alice via sed")]);
    }
    let git_time = t.elapsed();
    git(&["gc", "-q", "--aggressive", "--prune=now"]);
    let theirs = dir_size(&repo.join(".git/objects"));
    println!("store size, {EDITS} one-line edits of a 10 KiB config (each by its own process):");
    println!("  filetrail store (after VACUUM)     {ours:>9} bytes   ({insert:.2?} to insert)");
    println!("  git objects (gc --aggressive)      {theirs:>9} bytes   ({git_time:.2?} to commit)");
    println!("  ratio filetrail / git              {:>9.2}x   (target <= 1.00x)", ours as f64 / theirs as f64);
}

fn queries(dir: &Path) {
    let total: usize = std::env::var("FILETRAIL_BENCH_VERSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let db = dir.join("query.db");
    let mut store = Store::open(&db).unwrap();
    let users: Vec<String> = (0..200).map(|u| format!("user{u:03}")).collect();
    let ids: Vec<Arc<Identity>> = (0..2000).map(|n| identity(n, &users[n % users.len()])).collect();
    let t0 = jiff::Timestamp::from_second(1_750_000_000).unwrap();
    let t = Instant::now();
    let batch = 10_000;
    for start in (0..total).step_by(batch) {
        let mut versions = Vec::with_capacity(batch);
        for n in start..(start + batch).min(total) {
            // 100 directories x 100 files; one version every 3 s.
            let path = format!("/etc/dir{:02}/file{:02}.conf", n % 100, (n / 100) % 100).into_bytes();
            let content = format!("version {n} of {}\n", String::from_utf8_lossy(&path)).into_bytes();
            let draft = Draft::new(
                path,
                Action::Write,
                None,
                Some(Side::from_bytes(content, None, true)),
                t0.checked_add(jiff::SignedDuration::from_secs(3 * n as i64)).unwrap(),
            );
            versions.push(NewVersion { draft, who: ids[(n / 7) % ids.len()].clone(), delivery: None });
        }
        store.insert(&versions).unwrap();
    }
    let fill = t.elapsed();
    drop(store);
    let store = Store::open_read(&db).unwrap();
    println!(
        "\nqueries on a store of {total} versions ({fill:.1?} to generate, {:.0} versions/s):",
        total as f64 / fill.as_secs_f64()
    );
    let spec = |p: &str, under| PathSpec { path: p.as_bytes().to_vec(), under, glob: None };
    let cases = [
        (
            "one file's history",
            QueryFilter { paths: vec![spec("/etc/dir42/file17.conf", false)], ..Default::default() },
        ),
        (
            "a directory (prefix)",
            QueryFilter {
                paths: vec![spec("/etc/dir42", true)],
                newest_first: true,
                limit: Some(1000),
                ..Default::default()
            },
        ),
        (
            "one user (newest 1000)",
            QueryFilter { user: Some("user123".into()), newest_first: true, limit: Some(1000), ..Default::default() },
        ),
        (
            "a 1-hour time range",
            QueryFilter {
                since: Some(t0.checked_add(jiff::SignedDuration::from_secs(3 * total as i64 / 2)).unwrap()),
                until: Some(t0.checked_add(jiff::SignedDuration::from_secs(3 * total as i64 / 2 + 3600)).unwrap()),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in cases {
        let _ = store.versions(&filter).unwrap(); // warm the cache once
        let reps = 5;
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..reps {
            n = store.versions(&filter).unwrap().len();
        }
        let per = t.elapsed() / reps;
        println!("  {name:<26} {n:>6} rows  {:>8.2} ms   (target <= 50 ms)", per.as_secs_f64() * 1000.0);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list
    }
    let dir = tempfile::tempdir().unwrap();
    size_vs_git(dir.path());
    if std::env::var_os("FILETRAIL_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
        return;
    }
    queries(dir.path());
}
