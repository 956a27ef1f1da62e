//! The collector library's error type. The CLI adds context with `anyhow`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite store failed (open, migrate, read or write).
    #[error("store {path}")]
    Store { path: PathBuf, source: rusqlite::Error },
    /// A query against an open store failed.
    #[error("database error")]
    Sql(#[from] rusqlite::Error),
    /// The fleet store (PostgreSQL) failed: connect, migrate, read or write.
    #[error("fleet store: {0}")]
    Fleet(#[from] postgres::Error),
    /// The fleet store cannot be used as configured (URL, TLS, password).
    #[error("fleet store: {0}")]
    FleetSetup(String),
    /// The host's signing key cannot be used (`fleet/key.rs`): shipping waits.
    #[error("{0}")]
    HostKey(String),
    /// The fleet store at this URL (shown without its password) failed.
    #[error("fleet store {url}")]
    FleetAt { url: String, source: Box<Error> },
    /// The config file could not be read or parsed.
    #[error("config {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// No version has this id (`42`, or `HOST:42` in the fleet).
    #[error("no version with id {0}")]
    NoSuchVersion(String),
    /// The version exists but its content was not stored.
    #[error("version {id}: content not stored ({why})")]
    NoContent { id: i64, why: String },
    /// The version's content is redacted: it was never stored, whatever
    /// else the store holds.
    #[error("version {id} is redacted: its content was never stored")]
    Redacted { id: i64 },
    /// Stored content decodes to other bytes than the SHA-256 it is filed
    /// under (damaged store).
    #[error(
        "version {id}: the stored {side} content is damaged: it decodes to bytes with SHA-256 {got}, not the \
         recorded {want}; refusing to use it (`collector verify` lists every damaged content)"
    )]
    Damaged { id: i64, side: &'static str, want: String, got: String },
    /// Stored content does not decode (damaged store).
    #[error("corrupt content in the store: {0}")]
    Corrupt(String),
    /// A store, its `-wal`/`-shm` file or a directory holding it that
    /// someone else could control: the message says which and what to do.
    #[error("{0}")]
    UnsafeStore(String),
    /// A command-line argument that cannot be used (a bad glob): the
    /// message names it and says why.
    #[error("{0}")]
    Usage(String),
    /// `export-git` refuses the repository or the branch: the message says
    /// why and what to do.
    #[error("{0}")]
    Export(String),
    /// The git library failed while `export-git` read or wrote the repository.
    #[error("git repository {}: {what}", filetrail_wire::path::quote(dir.as_os_str().as_encoded_bytes()))]
    Git { dir: PathBuf, what: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    /// Filesystem or socket I/O failed.
    #[error("{what}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
