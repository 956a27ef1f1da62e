//! TEST SUPPORT, private to the fleet-review tests: a throwaway PostgreSQL
//! server (Debian's binaries, `initdb` into a temp dir, trust auth, a free
//! port on 127.0.0.1, run as the `postgres` user when we are root) with the
//! fleet schema applied. Meant to be replaced by the shared PostgreSQL test
//! helper of the shipping side (`scripts/pg-test-server`) at merge; nothing
//! else depends on it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The newest installed PostgreSQL's binaries, if any.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| d.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()));
    dirs.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Pg {
    /// Starts a server; None (the test returns early) when PostgreSQL is not installed.
    pub fn start() -> Option<Pg> {
        let Some(bin) = bin_dir() else {
            eprintln!("skipped: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("filetrail-pg").tempdir().unwrap();
        if is_root() {
            // initdb refuses root: the cluster belongs to `postgres`.
            let ok = Command::new("chown").arg("postgres:").arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        let mut pg = Pg { dir, bin, port: 0 };
        let data = pg.data();
        let out = pg.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        // A port taken between our probe and the server's bind: try another.
        for _ in 0..5 {
            pg.port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off",
                pg.port,
                pg.dir.path().display()
            );
            let log = pg.dir.path().join("pg.log").display().to_string();
            let out = pg.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "30", "start"]);
            if out.status.success() {
                return Some(pg);
            }
        }
        panic!("pg_ctl start failed: {}", std::fs::read_to_string(pg.dir.path().join("pg.log")).unwrap_or_default());
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir("/").output().unwrap()
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls).unwrap()
    }

    /// A new database with the fleet schema (every `collector/migrations-pg/*.sql`, in order); its URL.
    pub fn fleet_db(&self, name: &str) -> String {
        self.client("postgres").batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/migrations-pg");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let mut client = self.client(name);
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
            client.batch_execute(&std::fs::read_to_string(f).unwrap()).unwrap();
        }
        self.url(name)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
