//! What one local user may hold in the collector at once, so that no user
//! can starve the others: connections (each is a thread and two
//! descriptors) and content bytes in memory.
//!
//! Everything is keyed by the kernel's euid of the peer (`SO_PEERCRED`),
//! never by anything the client says. Each user has their own locks; the
//! shared map is locked only to find a user's entry, so a user at their caps
//! never waits on, or delays, another.
//!
//! - **Connections.** A user has at most `max_connections_per_uid` slots
//!   (root 4×). A slot is a live connection, or a connection that ended with
//!   opens still unfinished, until the processes the finisher waits on have
//!   exited. Non-root users together share a global cap derived from
//!   `RLIMIT_NOFILE` (root's slots are reserved beyond it). Over a cap the new
//!   connection is refused with an `Error` frame, logged once per user per
//!   minute.
//! - **Idle connections.** The library keeps one connection for the whole
//!   life of a process, so an idle shell is normal and is never closed for
//!   being idle. Only when a user is at their cap does the connection of
//!   theirs that has been idle longest (at least `idle_timeout_secs`) make
//!   room for the new one. A user who keeps all their connections busy only
//!   shuts out their own new processes.
//! - **Content in memory.** Content a client sends is charged to its user
//!   for as long as the collector holds it: while the frame is read, in the
//!   assembler until the open closes, in a finisher, in the writer's queue.
//!   The charge follows the bytes themselves (the registry keeps a weak
//!   reference and its length), so it is released wherever they are freed.
//!   A frame that would take the user over `max_held_bytes_per_uid` (root 4×)
//!   is read through a hash instead: its sides become `hash_only`, the
//!   versions are still recorded.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Descriptors one connection costs: its socket and the writer's pidfd.
pub const FDS_PER_CONN: u64 = 2;
/// Descriptors kept out of the connections' share: the store (database,
/// WAL, shared memory), the listener, logs, files finishers read, and the
/// pidfds of processes that still hold a file after its writer's close.
pub const FD_HEADROOM: u64 = 512;
/// Connections are threads: beyond a few thousand, threads (pid_max is
/// 32768 on many hosts) run out long before descriptors.
pub const MAX_CONNECTIONS: usize = 4096;
/// Root's caps are this many times a user's (see [`Limits::new`]).
pub const ROOT_FACTOR: u64 = 4;
/// How often the same user's cap is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft
/// limit now in force.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: lim is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: raised is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This user holds all their slots, none idle long enough to give up.
    UserCap(usize),
    /// All non-root users together hold the global number of connections.
    GlobalCap(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::UserCap(n) => write!(f, "too many connections from this user (cap {n})"),
            Refused::GlobalCap(n) => write!(f, "too many connections to the collector (cap {n})"),
        }
    }
}

pub struct Limits {
    conns_per_uid: usize,
    held_per_uid: u64,
    global: usize,
    idle_ms: u64,
    /// Non-root slots in use.
    total: AtomicUsize,
    next_id: AtomicU64,
    epoch: Instant,
    users: Mutex<HashMap<u32, Arc<User>>>,
    global_logged: Mutex<Option<Instant>>,
}

struct User {
    uid: u32,
    slots: Mutex<Vec<Arc<SlotState>>>,
    ledger: Mutex<Ledger>,
    conn_logged: Mutex<Option<Instant>>,
    held_logged: Mutex<Option<Instant>>,
}

struct SlotState {
    id: u64,
    /// The live connection's socket (to close it for a newcomer); `None`
    /// once the connection ended and the slot waits for a finisher.
    stream: Mutex<Option<Arc<UnixStream>>>,
    /// Milliseconds since [`Limits::epoch`] of the last frame received.
    active_ms: AtomicU64,
}

/// Content bytes a user makes the collector hold.
#[derive(Default)]
struct Ledger {
    /// Reserved for frames being read.
    pending: u64,
    /// Bytes kept after reading, by weak reference: dead entries are pruned.
    kept: Vec<(Weak<Vec<u8>>, u64)>,
    /// Sum of `kept` lengths, dead entries included until the next prune.
    kept_bytes: u64,
    /// `kept.len()` after the last prune (pruning again when it doubles).
    kept_after_prune: usize,
}

impl Ledger {
    fn prune(&mut self) {
        self.kept.retain(|(w, _)| w.strong_count() > 0);
        self.kept_bytes = self.kept.iter().map(|(_, n)| n).sum();
        self.kept_after_prune = self.kept.len();
    }
}

impl Limits {
    /// Caps from the config; `nofile` is the descriptor limit in force.
    ///
    /// Root gets [`ROOT_FACTOR`] times a user's caps, reserved beyond the
    /// global one: root's processes are the admin's (root could stop the
    /// collector anyway, so it has nothing to gain by starving it), sudo'd
    /// scripts and parallel jobs run many processes at once, and root's
    /// versions are the ones an audit needs most. The caps stay finite so
    /// that a runaway root script cannot take the host's memory with it.
    pub fn new(config: &Config, nofile: u64) -> Limits {
        let root_conns = config.max_connections_per_uid.saturating_mul(ROOT_FACTOR as usize);
        let by_fds = (nofile.saturating_sub(FD_HEADROOM) / FDS_PER_CONN) as usize;
        Limits {
            conns_per_uid: config.max_connections_per_uid,
            held_per_uid: config.max_held_bytes_per_uid,
            global: by_fds.min(MAX_CONNECTIONS).saturating_sub(root_conns).max(1),
            idle_ms: config.idle_timeout_secs.saturating_mul(1000),
            total: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            users: Mutex::new(HashMap::new()),
            global_logged: Mutex::new(None),
        }
    }

    /// Connections all non-root users together may hold.
    pub fn global(&self) -> usize {
        self.global
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn user(&self, uid: u32) -> Arc<User> {
        let mut users = lock(&self.users);
        users
            .entry(uid)
            .or_insert_with(|| {
                Arc::new(User {
                    uid,
                    slots: Mutex::default(),
                    ledger: Mutex::default(),
                    conn_logged: Mutex::default(),
                    held_logged: Mutex::default(),
                })
            })
            .clone()
    }

    fn conn_cap(&self, uid: u32) -> usize {
        if uid == 0 { self.conns_per_uid.saturating_mul(ROOT_FACTOR as usize) } else { self.conns_per_uid }
    }

    fn held_cap(&self, uid: u32) -> u64 {
        if uid == 0 { self.held_per_uid.saturating_mul(ROOT_FACTOR) } else { self.held_per_uid }
    }

    /// A slot for a new connection of `uid` on `stream`, making room by
    /// closing the user's longest-idle connection if they are at their cap.
    pub fn admit(self: &Arc<Self>, uid: u32, stream: &Arc<UnixStream>) -> Result<Slot, Refused> {
        let user = self.user(uid);
        let cap = self.conn_cap(uid);
        let mut slots = lock(&user.slots);
        if slots.len() >= cap {
            match self.evict_idle(&mut slots) {
                Some(idle_s) => tracing::info!(
                    uid,
                    idle_s,
                    "user at their connection cap ({cap}): closed their longest-idle connection for a new one"
                ),
                None => {
                    if once_a_minute(&user.conn_logged) {
                        tracing::warn!(uid, "connection cap of {cap} reached for this user: refusing new connections");
                    }
                    return Err(Refused::UserCap(cap));
                }
            }
        } else if uid != 0 && self.total.fetch_add(1, Relaxed) >= self.global {
            self.total.fetch_sub(1, Relaxed);
            if once_a_minute(&self.global_logged) {
                tracing::warn!(uid, "global connection cap of {} reached: refusing new connections", self.global);
            }
            return Err(Refused::GlobalCap(self.global));
        }
        let state = Arc::new(SlotState {
            id: self.next_id.fetch_add(1, Relaxed),
            stream: Mutex::new(Some(stream.clone())),
            active_ms: AtomicU64::new(self.now_ms()),
        });
        slots.push(state.clone());
        drop(slots);
        Ok(Slot { limits: self.clone(), user, state })
    }

    /// Takes the longest-idle live connection (idle at least the timeout)
    /// out of `slots` and shuts it down; returns how long it was idle.
    fn evict_idle(&self, slots: &mut Vec<Arc<SlotState>>) -> Option<u64> {
        let now = self.now_ms();
        let (i, idle) = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| lock(&s.stream).is_some())
            .map(|(i, s)| (i, now.saturating_sub(s.active_ms.load(Relaxed))))
            .filter(|(_, idle)| *idle >= self.idle_ms)
            .max_by_key(|(_, idle)| *idle)?;
        let state = slots.remove(i);
        if let Some(stream) = lock(&state.stream).take() {
            // Wakes its thread, which ends the connection as if the peer had.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Some(idle / 1000)
    }

    /// One more slot for `uid` without a connection (a finisher waiting on
    /// processes); `None` at the user's or the global cap.
    pub fn extra(self: &Arc<Self>, uid: u32) -> Option<Slot> {
        let user = self.user(uid);
        let mut slots = lock(&user.slots);
        if slots.len() >= self.conn_cap(uid) {
            return None;
        }
        if uid != 0 && self.total.fetch_add(1, Relaxed) >= self.global {
            self.total.fetch_sub(1, Relaxed);
            return None;
        }
        let state = Arc::new(SlotState {
            id: self.next_id.fetch_add(1, Relaxed),
            stream: Mutex::new(None),
            active_ms: AtomicU64::new(self.now_ms()),
        });
        slots.push(state.clone());
        drop(slots);
        Some(Slot { limits: self.clone(), user, state })
    }
}

/// One of a user's connection slots; freed when dropped.
pub struct Slot {
    limits: Arc<Limits>,
    user: Arc<User>,
    state: Arc<SlotState>,
}

impl Slot {
    /// The connection just received a frame.
    pub fn touch(&self) {
        self.state.active_ms.store(self.limits.now_ms(), Relaxed);
    }

    /// The connection ended: its socket is no longer kept (the slot may live
    /// on while a finisher waits).
    pub fn release_stream(&self) {
        lock(&self.state.stream).take();
    }

    /// Reserves `bytes` of content for a frame being read; `None` when that
    /// would take the user over their cap (the frame is then hashed, not
    /// kept). Logged once per user per minute.
    pub fn reserve(&self, bytes: u64) -> Option<Reservation> {
        let (uid, cap) = (self.user.uid, self.limits.held_cap(self.user.uid));
        let mut ledger = lock(&self.user.ledger);
        let over = |l: &Ledger| l.pending.saturating_add(l.kept_bytes).saturating_add(bytes) > cap;
        if over(&ledger) {
            ledger.prune();
            if over(&ledger) {
                let held = ledger.pending + ledger.kept_bytes;
                drop(ledger);
                if once_a_minute(&self.user.held_logged) {
                    tracing::warn!(
                        uid,
                        held,
                        "content this user's processes sent and the collector holds reached the cap of {cap} \
                         bytes: keeping only hashes of further content until it is stored"
                    );
                }
                return None;
            }
        }
        ledger.pending += bytes;
        Some(Reservation { user: self.user.clone(), bytes })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = lock(&self.user.slots);
        if let Some(i) = slots.iter().position(|s| s.id == self.state.id) {
            slots.swap_remove(i);
            if self.user.uid != 0 {
                self.limits.total.fetch_sub(1, Relaxed);
            }
        }
        // Otherwise it was taken out to make room, and the newcomer took its
        // place in `total`.
    }
}

/// Content bytes reserved for one frame; released when dropped, or turned
/// into a charge on the content kept with [`Reservation::keep`].
pub struct Reservation {
    user: Arc<User>,
    bytes: u64,
}

impl Reservation {
    /// Charges the user for `bytes` for as long as anyone holds them.
    pub fn keep(&self, bytes: &Arc<Vec<u8>>) {
        if bytes.is_empty() {
            return;
        }
        let mut ledger = lock(&self.user.ledger);
        if ledger.kept.len() >= (2 * ledger.kept_after_prune).max(64) {
            ledger.prune();
        }
        ledger.kept.push((Arc::downgrade(bytes), bytes.len() as u64));
        ledger.kept_bytes += bytes.len() as u64;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut ledger = lock(&self.user.ledger);
        ledger.pending = ledger.pending.saturating_sub(self.bytes);
    }
}

/// True (and remembers now) when `last` is unset or a minute old.
fn once_a_minute(last: &Mutex<Option<Instant>>) -> bool {
    let mut last = lock(last);
    if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_uid: usize, held: u64, idle_secs: u64) -> Arc<Limits> {
        let config = Config {
            max_connections_per_uid: per_uid,
            max_held_bytes_per_uid: held,
            idle_timeout_secs: idle_secs,
            ..Config::default()
        };
        Arc::new(Limits::new(&config, 1 << 20))
    }

    fn stream() -> Arc<UnixStream> {
        Arc::new(UnixStream::pair().unwrap().0)
    }

    #[test]
    fn user_cap_refuses_without_touching_other_users() {
        let l = limits(2, 100, 600);
        let (a, b) = (l.admit(1000, &stream()).unwrap(), l.admit(1000, &stream()).unwrap());
        assert_eq!(l.admit(1000, &stream()).err(), Some(Refused::UserCap(2)));
        let other = l.admit(1001, &stream()).unwrap();
        let roots: Vec<_> = (0..8).map(|_| l.admit(0, &stream()).unwrap()).collect();
        assert!(l.admit(0, &stream()).is_err(), "root: 4x");
        drop(a);
        assert!(l.admit(1000, &stream()).is_ok(), "a freed slot is reusable");
        drop((b, other, roots));
        assert_eq!(l.total.load(Relaxed), 0);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let l = limits(2, 100, 0);
        let (s1, s2) = (stream(), stream());
        let first = l.admit(1000, &s1).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = l.admit(1000, &s2).unwrap();
        let third = l.admit(1000, &stream()).unwrap();
        // The first (longest idle) was shut down: reading it gives EOF.
        use std::io::Read;
        assert_eq!((&*s1).read(&mut [0u8; 1]).unwrap(), 0);
        drop(first);
        assert_eq!(lock(&l.user(1000).slots).len(), 2);
        assert_eq!(l.total.load(Relaxed), 2);
        drop((second, third));
        assert_eq!(l.total.load(Relaxed), 0);
    }

    #[test]
    fn held_bytes_follow_the_content() {
        let l = limits(4, 100, 600);
        let slot = l.admit(1000, &stream()).unwrap();
        let r = slot.reserve(60).unwrap();
        let kept = Arc::new(vec![0u8; 60]);
        r.keep(&kept);
        drop(r);
        assert!(slot.reserve(60).is_none(), "60 kept + 60 > 100");
        assert!(l.admit(0, &stream()).unwrap().reserve(60).is_some(), "root has its own budget");
        let copy = kept.clone();
        drop(kept);
        assert!(slot.reserve(60).is_none(), "still held elsewhere");
        drop(copy);
        assert!(slot.reserve(60).is_some(), "freed wherever it was dropped");
    }
}
