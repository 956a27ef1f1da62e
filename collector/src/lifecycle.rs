//! Stopping without losing anything: the process-wide "stopping" state that
//! every thread of `collector serve` waits on alongside its own work.
//!
//! A stop (SIGTERM, SIGINT, or SIGHUP before a re-exec: see
//! [`activation`](crate::activation)) sets a drain deadline and makes one
//! descriptor readable for good. Connection threads poll it next to their
//! socket: they read what their peer has already sent (until the socket has
//! nothing more, or the deadline) and end as if the peer had closed.
//! Finishers poll it next to the pidfds they wait on: what they cannot
//! finish goes to the [`handoff`](crate::handoff) file. Both count as
//! [`Task`]s, which the main thread waits for (bounded) before it lets the
//! writer commit its queue and checkpoint the store.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

struct State {
    stopping: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    /// `.0` is polled by every waiting thread; a byte written to `.1` (never
    /// read back) makes it readable from then on.
    wake: (UnixStream, UnixStream),
    tasks: Mutex<usize>,
    idle: Condvar,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| State {
        stopping: AtomicBool::new(false),
        deadline: Mutex::new(None),
        wake: UnixStream::pair().expect("creating the collector's stop socket pair"),
        tasks: Mutex::new(0),
        idle: Condvar::new(),
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks every thread to stop: reads may go on until `now + drain`.
pub fn stop(drain: Duration) {
    let s = state();
    lock(&s.deadline).get_or_insert(Instant::now() + drain);
    s.stopping.store(true, Ordering::SeqCst);
    let _ = (&s.wake.1).write(&[1]);
}

/// True once [`stop`] was called.
pub fn stopping() -> bool {
    state().stopping.load(Ordering::SeqCst)
}

/// Until when a stopping collector still reads what peers sent.
pub fn deadline() -> Option<Instant> {
    // Read on every socket read: no lock until a stop.
    if stopping() { *lock(&state().deadline) } else { None }
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
    loop {
        // SAFETY: fds is a valid, exclusively borrowed array of pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return r;
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// Waits up to `timeout_ms` for `fd` to be readable; returns at once (with
/// what `fd` says now) when the collector is stopping.
pub fn readable(fd: &impl AsRawFd, timeout_ms: i32) -> bool {
    let mut fds = [pollfd(fd.as_raw_fd()), pollfd(state().wake.0.as_raw_fd())];
    if poll(&mut fds, timeout_ms) > 0 && fds[0].revents != 0 {
        return true;
    }
    fds[0].revents = 0;
    stopping() && poll(&mut fds[..1], 0) > 0
}

/// Waits until every process behind `pidfds` has exited (true), or the
/// collector stops first (false; true if they have all exited by then).
pub fn wait_exit<F: AsFd>(pidfds: &[F]) -> bool {
    let mut fds: Vec<_> = pidfds.iter().map(|f| pollfd(f.as_fd().as_raw_fd())).collect();
    fds.push(pollfd(state().wake.0.as_raw_fd()));
    loop {
        let n = fds.len() - 1;
        if n == 0 {
            return true;
        }
        if poll(&mut fds, -1) < 0 {
            return false;
        }
        let stop = fds[n].revents != 0;
        // A pidfd is readable once its process has exited.
        fds.retain(|f| f.revents == 0 || f.fd == state().wake.0.as_raw_fd());
        fds.iter_mut().for_each(|f| f.revents = 0);
        if stop {
            let n = fds.len() - 1;
            return n == 0 || poll(&mut fds[..n], 0) == n as i32;
        }
    }
}

/// A thread whose work a stop waits for (a connection, a finisher).
pub struct Task(());

/// Counts a task until the returned guard drops: take it before spawning.
pub fn task() -> Task {
    *lock(&state().tasks) += 1;
    Task(())
}

impl Drop for Task {
    fn drop(&mut self) {
        let s = state();
        let mut n = lock(&s.tasks);
        *n -= 1;
        if *n == 0 {
            s.idle.notify_all();
        }
    }
}

/// Waits until no task is left or `until`; returns how many are left.
pub fn wait_tasks(until: Instant) -> usize {
    let s = state();
    let mut n = lock(&s.tasks);
    while *n > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        n = s.idle.wait_timeout(n, left).unwrap_or_else(|e| e.into_inner()).0;
    }
    *n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stop state is process-wide and a stop cannot be undone: the test
    /// runs in a child process of its own, not to stop the other tests.
    #[test]
    fn a_stop_wakes_waiters_and_tasks_are_awaited() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lifecycle::tests::stop_in_this_process", "--ignored", "--test-threads=1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    #[ignore = "run by a_stop_wakes_waiters_and_tasks_are_awaited in a child process"]
    fn stop_in_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pidfd = crate::identity::pidfd_open(child.id() as i32).unwrap();
        let task = task();
        let waiter = std::thread::spawn(move || {
            let _task = task;
            (readable(&a, -1), wait_exit(&[pidfd]))
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!stopping());
        stop(Duration::from_millis(100));
        assert!(stopping() && deadline().is_some());
        assert_eq!(wait_tasks(Instant::now() + Duration::from_secs(5)), 0);
        assert_eq!(waiter.join().unwrap(), (false, false), "nothing to read; the sleeper lives");
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
}
