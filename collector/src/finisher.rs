//! Finishing versions whose writer went away without reporting its last
//! close: the shell opened a redirect and `exec`'d the program, or the
//! program left through `_exit` or a crash. The collector waits on the
//! writer's pidfd, then reads the file itself — with the writer's
//! credentials ([`crate::asuser`]), never as root: what the writer could not
//! read is recorded as unreadable, whatever was swapped under the path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use filetrail_wire::atomic::{self, Lease, Outcome};

use crate::assemble::{Unfinished, complete};
use crate::asuser::{Creds, as_user};
use crate::delivery::{Delivery, Origin, Receipt};
use crate::intake::Intake;
use crate::model::{Draft, Side, Stored};
use crate::who::Identity;
use crate::{handoff, identity, lifecycle};

/// Waits (on its own thread) for the writer (`writer`, its pidfd, when its
/// connection ended) and every process behind `others` to exit, then
/// completes each unfinished open from what its file holds. If the
/// collector stops first, the opens are [`handoff::keep`]-ed for the next.
/// A version is named (`origin`) after its open's `Begin`, like the one its
/// `Close` would have made; `held`, the connection's claim on its ack, is
/// settled once they are all stored.
pub fn spawn(
    writer: Option<OwnedFd>,
    others: Vec<OwnedFd>,
    unfinished: Vec<Unfinished>,
    who: Arc<Identity>,
    max_size: u64,
    intake: Arc<Intake>,
    (origin, held): (Option<Origin>, Option<Receipt>),
) {
    let task = lifecycle::task();
    let spawned = std::thread::Builder::new().name("finisher".into()).spawn(move || {
        let _task = task;
        // The writer may have exec'd the program that really writes
        // (`sh -c 'exec cat src > f'`): name that program, read while it lives.
        let who = match &writer {
            Some(fd) => Arc::new(identity::with_program_now(&who, fd)),
            None => who,
        };
        let all: Vec<&OwnedFd> = writer.iter().chain(&others).collect();
        if !lifecycle::wait_exit(&all) {
            // The collector stops while they live: the next one finishes.
            handoff::keep(writer.as_ref(), &others, unfinished, &who, origin.as_ref());
            return;
        }
        let creds = Creds::of(&who);
        let drafts: Vec<Draft> = unfinished
            .into_iter()
            .filter_map(|u| {
                let after = as_user(&creds, || snapshot(&u.path, max_size)).ok().flatten();
                complete(u, after, jiff::Timestamp::now())
            })
            .collect();
        // The writer commits in order: the last one stored means all are.
        let mut held = held;
        let last = drafts.len().saturating_sub(1);
        for (i, draft) in drafts.into_iter().enumerate() {
            let delivery = origin.as_ref().filter(|_| draft.seq != 0).map(|o| Delivery {
                origin: o.key(draft.seq),
                receipt: if i == last { held.take() } else { None },
                live: Some(Arc::new(o.live())),
            });
            intake.submit(draft, &who, delivery);
        }
        if let Some(r) = held {
            r.done();
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start a finisher thread: {e}");
    }
}

/// What `path` holds, read by the collector with the calling thread's
/// credentials: never follows a final symlink, never blocks on a FIFO, reads
/// at most `max_size` bytes, `consistent` as the library's
/// (`filetrail_wire::atomic`). A file these credentials may not open is
/// `unreadable` (content and metadata unknown).
pub fn snapshot(path: &[u8], max_size: u64) -> Option<Side> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        // There, but not for this writer to read: say so, nothing more.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Some(Side {
                sha256: None,
                size: 0,
                stored: Stored::Unreadable,
                bytes: None,
                meta: None,
                consistent: true,
            });
        }
        Err(_) => return None,
    };
    match atomic::read(file.as_raw_fd(), max_size, Lease::Try, &mut ()).ok()? {
        Outcome::Read(r) => Some(Side::from_reading(r)),
        Outcome::NotRegular(_) => None,
    }
}
