//! The session registry: which audit sessions are real logins.
//!
//! The kernel's loginuid and audit session id survive every sudo and su,
//! but they are not proof of a login on their own: a process whose
//! loginuid is unset may set it (once, to any uid, even unprivileged) and
//! gets a fresh session id. So the PAM stacks that start human sessions
//! (`sshd`, `login`: the ones running `pam_loginuid`) run `collector
//! session` through `pam_exec` at session open and close. It reports, over a
//! socket only root can reach (mode 0600, and the peer must be root), the
//! PAM items: user, service, tty, remote host. The collector takes the
//! session id and loginuid from the kernel (`/proc` of the registering
//! process, which inherited them from the PAM application) and accepts the
//! registration only when the loginuid is PAM_USER's uid — what
//! `pam_loginuid` sets — so an `su` from a self-made session cannot vouch
//! for it.
//!
//! A writer whose session is registered with its loginuid gets `loginuid`,
//! `session`, `user` and `chain` labelled verified, and the session's
//! remote host as a verified ssh client (also under sudo, which drops
//! `SSH_CONNECTION`). A writer with an unregistered session gets them
//! labelled claimed (`unregistered_session` in `query --json`). Registrations
//! are kept in the store (`sessions`, keyed by boot id), so a restarted
//! collector still knows the sessions opened before.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use filetrail_wire::{read_frame, write_frame};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::{self, Peer};
use crate::who::{Identity, Trust};

/// The registry socket beside the collector's socket.
pub fn socket_path(collector_socket: &Path) -> PathBuf {
    collector_socket.with_file_name("registry.sock")
}

/// What `collector session` sends (one frame, JSON header, no payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionEvent {
    /// `open_session` or `close_session` (PAM_TYPE).
    pub event: String,
    pub user: String,
    pub service: String,
    pub tty: Option<String>,
    pub rhost: Option<String>,
}

/// The answer: `ok`, or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// A registration to keep in the store.
#[derive(Debug)]
enum Record {
    Open { session: u32, loginuid: u32, event: SessionEvent, at: i64 },
    Close { session: u32, at: i64 },
}

impl Record {
    fn session(&self) -> u32 {
        match self {
            Record::Open { session, .. } | Record::Close { session, .. } => *session,
        }
    }
}

/// A registered login session.
#[derive(Debug, Clone)]
pub struct Registered {
    pub loginuid: u32,
    pub rhost: Option<String>,
}

pub struct Registry {
    boot: String,
    sessions: RwLock<HashMap<u32, Registered>>,
    db: Mutex<Connection>,
}

pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|b| b.trim().to_owned()).unwrap_or_default()
}

impl Registry {
    /// Loads this boot's registrations from the store at `db` (migrated).
    pub fn open(db: &Path) -> Result<Registry> {
        let wrap = |source| Error::Store { path: db.to_path_buf(), source };
        let conn = Connection::open(db).map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(wrap)?;
        let boot = boot_id();
        let mut sessions = HashMap::new();
        {
            let mut stmt =
                conn.prepare("SELECT session, loginuid, rhost FROM sessions WHERE boot_id = ?1").map_err(wrap)?;
            let rows = stmt
                .query_map(params![boot], |r| {
                    Ok((r.get::<_, u32>(0)?, Registered { loginuid: r.get(1)?, rhost: r.get(2)? }))
                })
                .map_err(wrap)?;
            for row in rows {
                let (s, reg) = row.map_err(wrap)?;
                sessions.insert(s, reg);
            }
        }
        Ok(Registry { boot, sessions: RwLock::new(sessions), db: Mutex::new(conn) })
    }

    /// Labels `who`'s login fields by whether its session is registered.
    pub fn vouch(&self, who: &mut Identity) {
        let Some(session) = who.session else { return };
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        let registered = sessions.get(&session).filter(|r| Some(r.loginuid) == who.loginuid);
        let label = if registered.is_some() { Trust::Verified } else { Trust::Claimed };
        for f in ["loginuid", "session", "user", "chain"] {
            if who.trust.get(f) == Some(&Trust::Verified) || label == Trust::Claimed {
                who.trust.insert(f, label);
            }
        }
        if let Some(rhost) = registered.and_then(|r| r.rhost.clone()) {
            // The environment's "ip:port" when its address is the one PAM
            // saw; else PAM's address alone.
            let env_host = who.ssh_client.as_deref().and_then(|c| c.rsplit_once(':')).map(|(h, _)| h);
            if env_host != Some(rhost.as_str()) {
                who.ssh_client = Some(rhost);
            }
            who.trust.insert("ssh_client", Trust::Verified);
        }
    }

    /// Checks a registration and applies it to what [`Registry::vouch`]
    /// reads at once; returns the row to keep in the store, which
    /// [`Registry::persist`] writes off the registering path (a store busy
    /// with a long write must not leave a login unregistered while its
    /// first commands run, nor time out `collector session`).
    fn handle(&self, event: &SessionEvent, session: u32, loginuid: u32) -> std::result::Result<Record, String> {
        let at = jiff::Timestamp::now().as_microsecond();
        match event.event.as_str() {
            "open_session" => {
                let uid = uzers::get_user_by_name(&event.user).map(|u| u.uid());
                if uid != Some(loginuid) {
                    return Err(format!(
                        "PAM_USER {:?} is not the login uid {loginuid} of this session: not a login",
                        event.user
                    ));
                }
                let rhost = event.rhost.clone().filter(|s| !s.is_empty());
                let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
                // The first registration of a session (the login) wins.
                sessions.entry(session).or_insert(Registered { loginuid, rhost });
                Ok(Record::Open { session, loginuid, event: event.clone(), at })
            }
            "close_session" => Ok(Record::Close { session, at }),
            other => Err(format!("unknown PAM_TYPE {other:?}")),
        }
    }

    /// Keeps a registration in the store, for a restarted collector.
    fn persist(&self, record: &Record) -> std::result::Result<(), String> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        match record {
            Record::Open { session, loginuid, event, at } => db.execute(
                "INSERT OR IGNORE INTO sessions (boot_id, session, loginuid, user, service, tty, rhost, opened_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    self.boot,
                    session,
                    loginuid,
                    event.user,
                    event.service,
                    nonempty(&event.tty),
                    nonempty(&event.rhost),
                    at
                ],
            ),
            Record::Close { session, at } => db.execute(
                "UPDATE sessions SET closed_us = ?3 WHERE boot_id = ?1 AND session = ?2 AND closed_us IS NULL",
                params![self.boot, session, at],
            ),
        }
        .map(drop)
        .map_err(|e| format!("storing session {}: {e}", record.session()))
    }

    fn serve_one(&self, mut stream: UnixStream) -> Option<Record> {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let result = (|| {
            let peer = Peer::of(&stream).map_err(|e| format!("no peer credentials: {e}"))?;
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if peer.cred.uid != 0 && peer.cred.uid != me {
                return Err(format!("uid {} may not register sessions", peer.cred.uid));
            }
            let event: SessionEvent = read_frame(&mut stream, 0).and_then(|f| f.parse()).map_err(|e| e.to_string())?;
            let (loginuid, session) = identity::audit_ids(peer.cred.pid);
            if !peer.alive() {
                return Err("the registering process is gone".into());
            }
            let (Some(loginuid), Some(session)) = (loginuid, session) else {
                return Err("the registering process has no login uid or audit session".into());
            };
            let record = self.handle(&event, session, loginuid)?;
            tracing::info!(session, loginuid, user = %event.user.escape_debug(), service = %event.service.escape_debug(), rhost = ?event.rhost, "{}", event.event);
            Ok(record)
        })();
        let (reply, record) = match result {
            Ok(record) => (Reply { ok: true, message: String::new() }, Some(record)),
            Err(message) => {
                tracing::warn!("session registration refused: {message}");
                (Reply { ok: false, message }, None)
            }
        };
        let _ = write_frame(&mut stream, &reply, &[]);
        record
    }
}

/// Binds the registry socket (root only) and serves it on its own thread;
/// returns the socket file, to remove at a stop.
pub fn serve(socket: &Path, registry: Arc<Registry>) -> Result<crate::activation::Bound> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(|e| Error::io(format!("binding {}", socket.display()), e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod {}", socket.display()), e))?;
    let (tx, rx) = crossbeam_channel::unbounded::<Record>();
    let keeper = registry.clone();
    std::thread::Builder::new()
        .name("registry-store".into())
        .spawn(move || {
            for record in rx {
                if let Err(e) = keeper.persist(&record) {
                    tracing::error!("session registry: {e} (known until the collector restarts)");
                }
            }
        })
        .map_err(|e| Error::io("starting the registry thread", e))?;
    std::thread::Builder::new()
        .name("registry".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(record) = registry.serve_one(stream) {
                    let _ = tx.send(record);
                }
            }
        })
        .map_err(|e| Error::io("starting the registry thread", e))?;
    Ok(crate::activation::Bound::at(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        crate::store::Store::open(&db).unwrap();
        let r = Registry::open(&db).unwrap();
        (dir, r)
    }

    fn who(loginuid: u32, session: u32) -> Identity {
        let mut id = Identity { loginuid: Some(loginuid), session: Some(session), ..Default::default() };
        for f in ["loginuid", "session", "user", "chain"] {
            id.trust.insert(f, Trust::Verified);
        }
        id.ssh_client = Some("10.0.0.9:5555".into());
        id
    }

    fn register(r: &Registry, event: &SessionEvent, session: u32, loginuid: u32) -> std::result::Result<(), String> {
        r.persist(&r.handle(event, session, loginuid)?)
    }

    fn open(user: &str, rhost: Option<&str>) -> SessionEvent {
        SessionEvent {
            event: "open_session".into(),
            user: user.into(),
            service: "sshd".into(),
            tty: None,
            rhost: rhost.map(Into::into),
        }
    }

    #[test]
    fn only_registered_sessions_are_verified() {
        let (_d, r) = registry();
        let mut w = who(0, 7);
        r.vouch(&mut w);
        assert_eq!(w.trust["loginuid"], Trust::Claimed);
        assert_eq!(w.trust["user"], Trust::Claimed);
        register(&r, &open("root", Some("10.0.0.9")), 7, 0).unwrap();
        let mut w = who(0, 7);
        r.vouch(&mut w);
        assert_eq!(w.trust["loginuid"], Trust::Verified);
        assert_eq!(w.trust["ssh_client"], Trust::Verified);
        assert_eq!(w.ssh_client.as_deref(), Some("10.0.0.9:5555"), "env agrees with PAM: port kept");
        // Same session id, another loginuid: not vouched for.
        let mut w = who(1000, 7);
        r.vouch(&mut w);
        assert_eq!(w.trust["loginuid"], Trust::Claimed);
    }

    #[test]
    fn a_registration_must_be_a_login_of_pam_user() {
        let (_d, r) = registry();
        assert!(r.handle(&open("root", None), 8, 1000).is_err(), "su root from a session of uid 1000");
        let mut w = who(1000, 8);
        r.vouch(&mut w);
        assert_eq!(w.trust["session"], Trust::Claimed);
    }

    #[test]
    fn the_ssh_client_comes_from_pam_when_the_environment_disagrees() {
        let (_d, r) = registry();
        register(&r, &open("root", Some("192.0.2.1")), 9, 0).unwrap();
        let mut w = who(0, 9);
        r.vouch(&mut w);
        assert_eq!(w.ssh_client.as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn registrations_survive_a_restart() {
        let (d, r) = registry();
        register(&r, &open("root", None), 10, 0).unwrap();
        drop(r);
        let r = Registry::open(&d.path().join("t.db")).unwrap();
        let mut w = who(0, 10);
        r.vouch(&mut w);
        assert_eq!(w.trust["loginuid"], Trust::Verified);
    }
}
