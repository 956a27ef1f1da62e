//! The collector's config (TOML): which paths are tracked. This is the only
//! place that decides it; clients learn it in `Welcome`.
//!
//! ```toml
//! track = ["/etc", "/srv/app"]
//! ignore = ["*.swp", "/etc/mtab"]   # globs; without '/' they match the name
//! max_size = 16777216                 # larger files: hash only
//! redact = ["/etc/shadow", "*.key"]  # hash and metadata only, never content
//!
//! max_connections_per_uid = 64        # root: 4x; see limits.rs
//! max_held_bytes_per_uid = 268435456  # content held in memory; root: 4x
//! idle_timeout_secs = 600             # idle connections give way only at the cap
//! spool_dir = "/var/spool/filetrail"  # one more spool directory to replay (see spool.rs)
//! kernel_watch = true                 # fanotify marks on the tracked directories (watch.rs)
//! max_watched_dirs = 10000            # beyond it, deeper directories are not watched
//!
//! [fleet]                             # ship to a central PostgreSQL (fleet/)
//! url = "postgresql://filetrail@db.example:5432/filetrail?sslmode=require"
//! host = "web1"                       # default: the system's host name
//! password_file = "/etc/filetrail/pgpass"  # else PGPASSFILE / ~/.pgpass
//!
//! [quota]                             # per uid; root too
//! versions_per_minute = 6000
//! bytes_per_day = 1073741824
//! ```

use std::path::{Path, PathBuf};

use filetrail_wire::Policy;
use filetrail_wire::policy::Globs;
use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_CONFIG: &str = "/etc/filetrail/config.toml";
pub const DEFAULT_DB: &str = "/var/lib/filetrail/trail.db";

/// Names editors and tools use for swap, backup, lock and probe files.
pub const DEFAULT_IGNORE: &[&str] =
    &["*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", "/etc/mtab", "/etc/ld.so.cache", "/etc/adjtime"];

/// Secrets whose content is never stored.
pub const DEFAULT_REDACT: &[&str] =
    &["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh/ssh_host_*_key", "*.key"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_track")]
    pub track: Vec<String>,
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    #[serde(default = "default_max_size")]
    pub max_size: u64,
    #[serde(default = "default_redact")]
    pub redact: Vec<String>,
    #[serde(default)]
    pub quota: Quota,
    /// Connections one user (by the kernel's euid) may hold at once; root
    /// gets 4 times as many. Over it a new connection is refused.
    #[serde(default = "default_max_connections_per_uid")]
    pub max_connections_per_uid: usize,
    /// Content bytes one user's processes may make the collector hold in
    /// memory (opens not yet closed, versions not yet stored); root gets 4
    /// times as much. Beyond it content is kept as a hash only.
    #[serde(default = "default_max_held_bytes_per_uid")]
    pub max_held_bytes_per_uid: u64,
    /// A connection silent this long gives way to a new connection of the
    /// same user when that user is at their cap (never otherwise: a
    /// process keeps its connection for life, and idle shells are normal).
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// One more spool directory the collector creates (root, 1733) and
    /// replays, besides `spool/` beside the socket. Libraries always write
    /// beside the socket (they cannot ask a collector that is not running);
    /// this is for spool files placed there some other way.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Watch the tracked directories with fanotify, so that changes made
    /// by programs without the library (static, setuid, daemons) and
    /// attribute changes become versions too ([`crate::watch`]).
    #[serde(default = "default_true")]
    pub kernel_watch: bool,
    /// Most directories the kernel watch marks; beyond it, one log line.
    #[serde(default = "default_max_watched_dirs")]
    pub max_watched_dirs: usize,
    /// Ship versions to a central PostgreSQL ([`crate::fleet`]); none: local only.
    #[serde(default)]
    pub fleet: Option<Fleet>,
}

/// `[fleet]`: where this host's versions are shipped, and under which name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// A libpq URL: `postgresql://USER@HOST:PORT/DB?sslmode=...`.
    pub url: String,
    /// This host's name in the fleet store (default: the system's host name).
    #[serde(default)]
    pub host: Option<String>,
    /// A file holding the password (else the URL's, else `PGPASSFILE` or `~/.pgpass`).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// Per-uid limits on what one user's processes may add.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default = "default_versions_per_minute")]
    pub versions_per_minute: u64,
    #[serde(default = "default_bytes_per_day")]
    pub bytes_per_day: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { versions_per_minute: default_versions_per_minute(), bytes_per_day: default_bytes_per_day() }
    }
}

/// 100 versions a second, sustained for a minute: far above any human,
/// scripted `sed -i` loops over /etc included; a runaway loop is stopped.
fn default_versions_per_minute() -> u64 {
    6000
}
fn default_bytes_per_day() -> u64 {
    1 << 30
}
/// A user's sessions: shells, editors, a build's parallel jobs. A process
/// holds its connection from its first tracked write to its exit.
fn default_max_connections_per_uid() -> usize {
    64
}
/// Sixteen concurrent saves of a `max_size` (16 MiB) file.
fn default_max_held_bytes_per_uid() -> u64 {
    256 << 20
}
fn default_idle_timeout_secs() -> u64 {
    600
}
fn default_true() -> bool {
    true
}
fn default_max_watched_dirs() -> usize {
    10_000
}
fn default_redact() -> Vec<String> {
    DEFAULT_REDACT.iter().map(|s| s.to_string()).collect()
}

fn default_track() -> Vec<String> {
    vec!["/etc".into()]
}
fn default_ignore() -> Vec<String> {
    DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect()
}
fn default_max_size() -> u64 {
    16 * 1024 * 1024
}

impl Default for Config {
    fn default() -> Self {
        Config {
            track: default_track(),
            ignore: default_ignore(),
            max_size: default_max_size(),
            redact: default_redact(),
            quota: Quota::default(),
            max_connections_per_uid: default_max_connections_per_uid(),
            max_held_bytes_per_uid: default_max_held_bytes_per_uid(),
            idle_timeout_secs: default_idle_timeout_secs(),
            spool_dir: None,
            kernel_watch: true,
            max_watched_dirs: default_max_watched_dirs(),
            fleet: None,
        }
    }
}

impl Config {
    /// Reads `path`. A missing file is an error unless `missing_ok` (the
    /// default path on a host where nothing was installed yet).
    pub fn load(path: &Path, missing_ok: bool) -> Result<Config> {
        let err = |message: String| Error::Config { path: path.to_path_buf(), message };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && missing_ok => return Ok(Config::default()),
            Err(e) => return Err(err(e.to_string())),
        };
        let config: Config = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for root in &config.track {
            if !root.starts_with('/') {
                return Err(err(format!("track entry {root:?} is not an absolute path")));
            }
        }
        config.policy().map_err(|e| err(format!("bad ignore glob: {e}")))?;
        config.redactions().map_err(|e| err(format!("bad redact glob: {e}")))?;
        Ok(config)
    }

    pub fn policy(&self) -> Result<Policy, glob::PatternError> {
        Policy::new(&self.track, &self.ignore, self.max_size)
    }

    pub fn redactions(&self) -> Result<Globs, glob::PatternError> {
        Globs::new(&self.redact)
    }
}

pub fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "track = [\"/srv\"]\n").unwrap();
        let c = Config::load(&p, false).unwrap();
        assert_eq!(c.track, vec!["/srv"]);
        assert!(c.ignore.contains(&"*.swp".to_string()));
        assert_eq!(c.max_size, 16 << 20);
    }

    #[test]
    fn rejects_relative_roots_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "track = [\"etc\"]\n").unwrap();
        assert!(Config::load(&p, false).is_err());
        std::fs::write(&p, "trak = [\"/etc\"]\n").unwrap();
        assert!(Config::load(&p, false).is_err());
    }

    #[test]
    fn missing_file() {
        assert!(Config::load(Path::new("/nonexistent/c.toml"), false).is_err());
        assert!(Config::load(Path::new("/nonexistent/c.toml"), true).is_ok());
    }
}
