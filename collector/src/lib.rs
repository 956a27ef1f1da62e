//! The filetrail collector: a daemon that receives file-change events from
//! the preload library, attributes them to the real human using only what
//! the kernel says, and stores versions in SQLite; and the CLI that reviews
//! them. See docs/architecture.md for the flow.
//!
//! - [`cli`] and [`cmd`] — argument parsing and one module per subcommand.
//! - [`config`] — the collector's TOML config: what is tracked.
//! - [`server`] — the socket, one thread per client connection.
//! - [`lifecycle`] — stopping without losing anything (drain, then commit).
//! - [`activation`] — the listening socket across restarts (signals,
//!   `LISTEN_FDS`, re-exec on SIGHUP).
//! - [`handoff`] — opens still held at a stop, finished by the next collector.
//! - [`serving`] — which collector serves a store (`restore` reports to it only).
//! - [`who`] — who made a change, as plain data (identity and trust labels).
//! - [`identity`] — how we learn it: SO_PEERCRED, pidfd, /proc.
//! - [`access`] — could that peer have made the change it reports?
//! - [`asuser`] — file-system work done with a writer's credentials, never as root.
//! - [`registry`] — which audit sessions are real logins (registered by PAM).
//! - [`quota`] — per-uid limits on versions and bytes.
//! - [`limits`] — per-user caps on connections and content held in memory.
//! - [`secrets`] — which contents are redacted: by name, and by hash under any name.
//! - [`intake`] — the gate applying those checks and redaction before the store.
//! - [`assemble`] — turns a connection's events into versions (temp-file
//!   saves, backup renames, deletes): the rules of "what one version is".
//! - [`spool`] — replays what libraries spooled while no collector answered.
//! - [`finisher`] — completes versions whose writer exited without closing.
//! - [`holders`] — other processes still holding a file open for writing.
//! - [`delivery`] — acknowledgements, and the origin that keeps a version
//!   sent twice stored once.
//! - [`watch`] — the kernel watch (fanotify, [`fanotify`]): changes no library
//!   reported, the baseline of tracked files.
//! - [`gitexport`] — `export-git`: the store as a git history (one commit per version).
//! - [`writer`] — the single thread that writes batches in transactions.
//! - [`history`] — what review commands read, from a host's store or the fleet's PostgreSQL store.
//! - [`hostname`] — this host's name as versions carry it (`[fleet] host`, else the kernel's).
//! - [`fleet`] — shipping to a central PostgreSQL (connection, schema, shipper).
//! - [`chain`] — the tamper-evident chain of a host's versions: what a record hash covers.
//! - [`store`] — the SQLite schema, migrations, blobs and queries.
//! - [`model`] — the version record shared by all of the above.
//! - [`print`] — table, JSON-lines and diff output; [`pager`] — through `$PAGER` on a terminal;
//!   [`fit`] — widths, cut paths and human sizes for tables that fit the terminal.
//! - [`pathglob`] — path globs on the review command line (`'/etc/**/*.conf'`), matched on bytes.
//! - [`when`] — times read and shown in one zone (`--since`, `--until`, `--utc`).

pub mod access;
pub mod activation;
pub mod assemble;
pub mod asuser;
pub mod chain;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod delivery;
pub mod error;
pub mod fanotify;
pub mod finisher;
pub mod fit;
pub mod fleet;
pub mod fold;
pub mod gitexport;
pub mod handoff;
pub mod history;
pub mod holders;
pub mod hostname;
pub mod identity;
pub mod intake;
pub mod lifecycle;
pub mod limits;
pub mod locale;
pub mod model;
pub mod pager;
pub mod pathglob;
pub mod print;
pub mod quota;
pub mod registry;
pub mod secrets;
pub mod server;
pub mod serving;
pub mod spool;
pub mod store;
pub mod unrecorded;
pub mod vouch;
pub mod watch;
pub mod when;
pub mod who;
pub mod writer;
