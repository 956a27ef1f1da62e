//! Fleet shipping throughput (`cargo bench -p filetrail-collector --bench
//! fleet`): 8 simulated hosts, each a local store of generated versions
//! (one-line edits of configs, as `sed -i` makes them: delta-encoded
//! content, a few writers), shipped at once into one PostgreSQL by the
//! collector's own shipper (`fleet::ship::drain`: the batches `collector
//! serve` sends). Prints versions per second, aggregate and for one host
//! alone; asserts nothing.
//!
//! PostgreSQL: `FILETRAIL_PG_URL`, else a throwaway server started with
//! `scripts/pg-test-server` (skipped when PostgreSQL is not installed).
//! `FILETRAIL_BENCH_HOSTS` (8) and `FILETRAIL_BENCH_PER_HOST` (10,000)
//! change the sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use filetrail_collector::config::Fleet;
use filetrail_collector::fleet::ship;
use filetrail_collector::model::{Action, Draft, NewVersion, Side};
use filetrail_collector::store::Store;
use filetrail_collector::who::Identity;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(host: usize, file: usize, edit: usize) -> Vec<u8> {
    (0..40)
        .map(
            |i| {
                if i == edit % 40 {
                    format!("key_{i} = edit {edit}\n")
                } else {
                    format!("key_{i} = value {file} {i}\n")
                }
            },
        )
        .chain(std::iter::once(format!("host = {host}\n")))
        .collect::<String>()
        .into_bytes()
}

/// A store of `n` versions: 50 files, each edited in turn by its own process.
fn make_store(db: &Path, host: usize, n: usize) {
    let mut store = Store::open(db).unwrap();
    let mut last: Vec<Vec<u8>> = (0..50).map(|f| config(host, f, usize::MAX)).collect();
    let mut batch = Vec::new();
    for i in 0..n {
        let f = i % 50;
        let after = config(host, f, i);
        let path = format!("/etc/app{host}/conf{f}.conf").into_bytes();
        let side = |b: &[u8]| Some(Side::from_bytes(b.to_vec(), None, true));
        let t = jiff::Timestamp::from_microsecond(1_700_000_000_000_000 + i as i64 * 1000).unwrap();
        let draft = Draft::new(path, Action::Write, side(&last[f]), side(&after), t);
        last[f] = after;
        let who = Arc::new(Identity {
            key: (i / 20) as u64,
            pid: 1000 + (i / 20) as i32,
            user: "alice".into(),
            chain: vec!["alice".into(), "root".into()],
            exe: "/usr/bin/sed".into(),
            argv: vec!["sed".into(), "-i".into(), "s/a/b/".into()],
            ..Default::default()
        });
        batch.push(NewVersion { draft, who, delivery: None });
        if batch.len() == 500 {
            store.insert(&batch).unwrap();
            batch.clear();
        }
    }
    store.insert(&batch).unwrap();
}

struct Server(Option<PathBuf>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = Command::new(script()).arg("stop").arg(dir).status();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-server")
}

fn main() {
    let hosts = env("FILETRAIL_BENCH_HOSTS", 8);
    let per_host = env("FILETRAIL_BENCH_PER_HOST", 10_000);
    let work = std::env::temp_dir().join(format!("filetrail-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (url, _server) = match std::env::var("FILETRAIL_PG_URL") {
        Ok(url) => (url, Server(None)),
        Err(_) => {
            let dir = work.join("pg");
            let out = Command::new(script()).arg("start").arg(&dir).output().unwrap();
            if !out.status.success() {
                eprintln!("skipped: no PostgreSQL ({})", String::from_utf8_lossy(&out.stderr).trim());
                return;
            }
            (String::from_utf8(out.stdout).unwrap().trim().to_owned(), Server(Some(dir)))
        }
    };
    let t = Instant::now();
    let dbs: Vec<PathBuf> = (0..=hosts)
        .map(|h| {
            let dir = work.join(format!("h{h}"));
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join("trail.db");
            make_store(&db, h, per_host);
            db
        })
        .collect();
    println!("generated {} stores of {per_host} versions in {:.1} s", hosts + 1, t.elapsed().as_secs_f64());
    let fleet = |h: usize| Fleet {
        url: url.clone(),
        host: Some(format!("bench-{}-h{h}", std::process::id())),
        password_file: None,
    };

    // One host alone (store 0), then the 8 others at once.
    let t = Instant::now();
    let n = ship::drain(&fleet(0), &dbs[0]).unwrap();
    let one = n as f64 / t.elapsed().as_secs_f64();
    println!("one host:   {n} versions in {:.2} s = {one:.0} versions/s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let threads: Vec<_> = (1..=hosts)
        .map(|h| {
            let (f, db) = (fleet(h), dbs[h].clone());
            std::thread::spawn(move || ship::drain(&f, &db).unwrap())
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{hosts} hosts:    {total} versions in {secs:.2} s = {:.0} versions/s aggregate (target: 5,000)",
        total as f64 / secs
    );
    drop(_server);
    let _ = std::fs::remove_dir_all(&work);
}
