//! `collector restore`: put a version's content back.
//!
//! The file is written to a temporary file in the target's directory (never
//! following a symlink), given the recorded owner and mode, synced, and
//! renamed over the target, so readers see the old or the new file, never a
//! mix. The restore is recorded as a new version by the restoring user:
//! through the running collector (which verifies who we are like any other
//! client), or straight into the store when none is running.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use filetrail_wire::{
    ClientMsg, Meta, PROTOCOL_VERSION, Policy, ServerMsg, SnapState, Snapshot, WirePath, read_frame, write_frame,
};

use crate::cli::Cli;
use crate::identity;
use crate::model::{Action, Draft, NewVersion, Side};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version whose content to put back: what the file held after it
    /// (for a delete: what the file held before it was deleted).
    pub id: i64,
    /// Write here instead of the version's own path.
    #[arg(long, value_name = "PATH")]
    pub to: Option<PathBuf>,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    let store = Store::open_read(&cli.db)?;
    let v = store.version(args.id)?;
    // A delete is undone by putting back what the file held before it.
    let undelete = v.after.is_none();
    let content = store.content(args.id, undelete)?;
    let (mode, uid, gid) = store.restore_meta(args.id)?;
    drop(store);

    let target = match &args.to {
        Some(p) => std::path::absolute(p).context("resolving --to")?,
        None => PathBuf::from(std::ffi::OsStr::from_bytes(&filetrail_wire::policy::absolute(b"/", v.path.as_bytes()))),
    };
    let before = match std::fs::symlink_metadata(&target) {
        Ok(md) if md.file_type().is_symlink() => {
            bail!("{} is a symlink: refusing to follow it (use --to to restore elsewhere)", target.display())
        }
        Ok(md) if !md.is_file() => bail!("{} is not a regular file", target.display()),
        Ok(_) => Some(std::fs::read(&target).with_context(|| format!("reading {}", target.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("checking {}", target.display())),
    };
    if before.as_deref() == Some(&content[..]) {
        println!("{} already holds the content of version {}: nothing changed", target.display(), v.id);
        return Ok(ExitCode::SUCCESS);
    }
    let tmp = write_replacement(&target, &content, mode, uid, gid)?;
    let written = std::fs::symlink_metadata(&target).ok();
    let meta = written.map(|md| Meta {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        dev: md.dev(),
        ino: md.ino(),
        mtime_ns: 0,
    });

    let how = match record_via_collector(&cli.socket, &tmp, &target, before.as_deref(), &content, meta) {
        Ok(true) => "recorded as a new version by the running collector",
        Ok(false) => "not recorded: the target is not tracked",
        Err(why) => {
            let config = crate::config::Config::load(
                cli.config.as_deref().unwrap_or(std::path::Path::new(crate::config::DEFAULT_CONFIG)),
                cli.config.is_none(),
            )?;
            if !config.policy().is_ok_and(|p| p.is_tracked(target.as_os_str().as_bytes())) {
                "not recorded: the target is not tracked"
            } else {
                record_directly(&cli.db, &target, before, content, meta).with_context(|| {
                    format!("the collector is not answering ({why}) and the store cannot be written")
                })?;
                "recorded as a new version directly in the store; no collector is running"
            }
        }
    };
    let what = if undelete { "the content deleted by version" } else { "version" };
    println!("restored {what} {} to {}: {how}", v.id, target.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `content` next to `target` and renames it into place. Returns the
/// temporary name it used.
fn write_replacement(
    target: &Path,
    content: &[u8],
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> anyhow::Result<PathBuf> {
    let dir = target.parent().context("the target has no directory")?;
    let name = target.file_name().context("the target has no file name")?;
    let tmp = dir.join(format!(".{}.filetrail-restore.{}", name.to_string_lossy(), std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> anyhow::Result<()> {
        file.write_all(content)?;
        if let (Some(uid), Some(gid)) = (uid, gid) {
            // SAFETY: fchown on a descriptor we own.
            if unsafe { libc::fchown(file.as_raw_fd(), uid, gid) } != 0 {
                let e = std::io::Error::last_os_error();
                eprintln!("collector: warning: cannot give {} back to uid {uid} gid {gid}: {e}", target.display());
            }
        }
        if let Some(mode) = mode {
            // SAFETY: fchmod on a descriptor we own.
            if unsafe { libc::fchmod(file.as_raw_fd(), mode & 0o7777) } != 0 {
                return Err(std::io::Error::last_os_error()).context("setting the mode");
            }
        }
        file.sync_all()?;
        std::fs::rename(&tmp, target).with_context(|| format!("renaming over {}", target.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| tmp)
}

fn snapshot(bytes: Option<&[u8]>, meta: Option<Meta>) -> Snapshot {
    match bytes {
        None => Snapshot::absent(),
        Some(b) => Snapshot {
            state: SnapState::Stored,
            len: b.len() as u64,
            size: Some(b.len() as u64),
            meta,
            consistent: true,
            ..Default::default()
        },
    }
}

/// Reports the restore to the running collector exactly as the library
/// reports a temp-file-and-rename save. `Ok(false)`: the target is not
/// tracked; `Err`: no collector answered.
fn record_via_collector(
    socket: &Path,
    tmp: &Path,
    target: &Path,
    before: Option<&[u8]>,
    after: &[u8],
    meta: Option<Meta>,
) -> Result<bool, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let io = |e: std::io::Error| e.to_string();
    write_frame(&mut s, &ClientMsg::Hello { version: PROTOCOL_VERSION, claims: None }, &[]).map_err(io)?;
    let welcome = read_frame(&mut s, 0).and_then(|f| f.parse::<ServerMsg>()).map_err(|e| e.to_string())?;
    let ServerMsg::Welcome { track, ignore, max_size, .. } = welcome else { return Err("collector refused".into()) };
    let policy = Policy::new(&track, &ignore, max_size).map_err(|e| e.to_string())?;
    let (tmp_b, target_b) = (tmp.as_os_str().as_bytes().to_vec(), target.as_os_str().as_bytes().to_vec());
    if !policy.is_tracked(&target_b) {
        return Ok(false);
    }
    let before_payload: &[&[u8]] = match before {
        Some(b) => &[b, after],
        None => &[after],
    };
    let msgs = [
        (
            ClientMsg::Begin {
                token: 1,
                path: WirePath(tmp_b.clone()),
                named: None,
                file: None,
                flags: libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                before: Snapshot::absent(),
            },
            vec![],
        ),
        (ClientMsg::Close { token: 1, after: snapshot(Some(after), meta), shared: false }, vec![after]),
        (
            ClientMsg::Rename {
                old: WirePath(tmp_b),
                new: WirePath(target_b),
                before: snapshot(before, None),
                after: snapshot(Some(after), meta),
            },
            before_payload.to_vec(),
        ),
    ];
    for (msg, payload) in msgs {
        write_frame(&mut s, &msg, &payload).map_err(io)?;
    }
    Ok(true)
}

/// No collector: write the version into the store ourselves, attributed to
/// this process as the kernel sees it.
fn record_directly(
    db: &Path,
    target: &Path,
    before: Option<Vec<u8>>,
    after: Vec<u8>,
    meta: Option<Meta>,
) -> anyhow::Result<()> {
    // SAFETY: getpid/getuid/getgid cannot fail.
    let cred = unsafe { libc::ucred { pid: libc::getpid(), uid: libc::geteuid(), gid: libc::getegid() } };
    let who = Arc::new(identity::from_kernel(cred));
    let action = if before.is_some() { Action::Write } else { Action::Create };
    let draft = Draft::new(
        target.as_os_str().as_bytes().to_vec(),
        action,
        before.map(|b| Side::from_bytes(b, None, true)),
        Some(Side::from_bytes(after, meta, true)),
        jiff::Timestamp::now(),
    );
    let mut store = Store::open(db)?;
    store.insert(&[NewVersion { draft, who }])?;
    Ok(())
}
