//! A real PostgreSQL for the fleet tests: `scripts/pg-test-server` in a
//! temporary directory (initdb, trust auth, a free port on 127.0.0.1),
//! stopped and deleted on drop. Tests skip (with a message) where
//! PostgreSQL is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    dir: tempfile::TempDir,
    /// `postgresql://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-server")
}

impl PgServer {
    /// Starts a fresh server; None (after saying so) when PostgreSQL is not installed.
    pub fn start() -> Option<PgServer> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(script()).arg("start").arg(dir.path()).output().unwrap();
        if out.status.code() == Some(3) {
            eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr).trim());
            return None;
        }
        assert!(out.status.success(), "pg-test-server start: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Some(PgServer { dir, url })
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        let out = Command::new(script()).arg("stop").arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "pg-test-server stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts it again on the same data and port.
    pub fn restart(&self) {
        let out = Command::new(script()).arg("start").arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "pg-test-server start: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), self.url, "restarted on another port");
    }

    /// Turns TLS on with a new self-signed certificate for 127.0.0.1 (the
    /// server restarts on the same port); returns the certificate's path.
    pub fn enable_tls(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        let (key, crt) = (data.join("server.key"), data.join("server.crt"));
        let out = Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "1", "-nodes", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        let owner = std::fs::metadata(&data).unwrap();
        for f in [&key, &crt] {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid())).unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\n");
        std::fs::write(&conf, text).unwrap();
        self.stop();
        self.restart();
        let ca = self.dir.path().join("ca.crt");
        std::fs::copy(&crt, &ca).unwrap();
        ca
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }

    /// The URL of database `db` on this server.
    pub fn url_of(&self, db: &str) -> String {
        let server = self.url.rsplit_once('/').map_or(self.url.as_str(), |(s, _)| s);
        format!("{server}/{db}")
    }

    pub fn client_of(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url_of(db), postgres::NoTls).unwrap()
    }

    /// A new database with the fleet schema (every
    /// `collector/migrations-pg/*.sql`, in order, as a collector would
    /// apply them); its URL. For tests that fill it themselves.
    pub fn fleet_db(&self, name: &str) -> String {
        self.client().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/migrations-pg");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let mut client = self.client_of(name);
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")) {
            client.batch_execute(&std::fs::read_to_string(f).unwrap()).unwrap();
        }
        self.url_of(name)
    }

    /// The `[fleet]` section a collector of host `host` ships with.
    pub fn fleet_config(&self, host: &str) -> String {
        format!("[fleet]\nurl = {:?}\nhost = {host:?}\n", self.url)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path()).output();
    }
}
