//! `collector restore`: put a version's content back: `restore ID`, or
//! `restore PATH --at TIME`, the version of PATH current at that time (its
//! newest version at or before it). `--dry-run` prints the diff the restore
//! would apply to the file as it is now and changes nothing.
//!
//! **Where.** The version's own path, which must be absolute and canonical
//! (`wire::path::canonical`: no `.`, `..`, `//`, NUL or trailing `/`), else
//! restore refuses; or `--to PATH`, made absolute, whose directory is
//! resolved the ordinary way (the admin chose it). That directory is then
//! opened without following any symlink (`openat2` with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`; one `O_NOFOLLOW` component
//! at a time where `openat2` is missing), and every later step goes through
//! that descriptor: the current file is read with `O_NOFOLLOW`, the content
//! is written to a temporary file created there with `O_EXCL | O_NOFOLLOW`,
//! given its owner and mode, synced, renamed over the target in the same
//! directory, and the directory synced. Readers see the old or the new file,
//! never a mix; a directory of the path that became a symlink since the
//! version was recorded makes restore refuse instead of writing elsewhere.
//!
//! **Owner and mode never come from what a client sent.** A version's
//! recorded mode and owner are the writer's own report (`after.meta`), which
//! a raw client can fill with `{mode: 0o104755, uid: 0}`, and restore runs as
//! root. So: if the target exists, it keeps the owner, group and mode that
//! `fstat` shows on the descriptor restore opened (seen on the file itself);
//! if it does not (an undelete, a new `--to` path), it gets the writing
//! process's euid and egid as the kernel stated them at `connect()` (that
//! process could have created such a file itself) and the recorded
//! permission bits masked with 0o777: never setuid, setgid or sticky.
//!
//! The restore is recorded as a new version by the restoring user: through
//! the collector that serves `--db` (found by `serving.rs`; it verifies who
//! we are like any other client), or straight into the store when none
//! does. A `--socket` naming another collector is refused before anything
//! is written.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use filetrail_wire::path::{canonical, quote};
use filetrail_wire::{
    ClientMsg, Meta, PROTOCOL_VERSION, Policy, ServerMsg, SnapState, Snapshot, WirePath, read_frame, write_frame,
};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;

use crate::cli::Cli;
use crate::identity;
use crate::model::{Action, Draft, NewVersion, Side};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version whose content to put back: what the file held after it
    /// (for a delete: what the file held before it was deleted). With --at: a file's path.
    #[arg(value_name = "ID|PATH")]
    pub version: OsString,
    /// Put back the content PATH had at this time (its newest version at or before it; before its first
    /// recorded change, what that change found): 2026-11-25 14:30, yesterday 10:00, 7d (ago), @EPOCH; in
    /// the local zone unless --utc. A time to the second, as review output shows it, covers that second.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Put back what the file held before version ID, not after it.
    #[arg(long, conflicts_with = "at")]
    pub before: bool,
    /// Write here instead of the version's own path.
    #[arg(long, value_name = "PATH")]
    pub to: Option<PathBuf>,
    /// Print the diff the restore would apply (the file now against what it would hold) and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// The version `restore` puts back, and whether its before side: the id
/// given, or the one current `--at`.
fn chosen_version(cli: &Cli, store: &Store, args: &Args) -> anyhow::Result<(i64, bool)> {
    let shown = || quote(args.version.as_bytes()).into_owned();
    let Some(at) = &args.at else {
        let id = args.version.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
            anyhow::anyhow!("{}: not a version id (to restore a file as it was at a time: PATH --at TIME)", shown())
        })?;
        return Ok((id, args.before));
    };
    let clock = cli.clock();
    let t = clock.parse_through(at).map_err(|e| anyhow::anyhow!("--at: {e}"))?;
    let spec = super::query::checked_path_spec(store, Path::new(&args.version))?;
    if spec.under {
        bail!("{}: a directory; --at restores one file", shown());
    }
    let when = format!("{} ({})", clock.show(t), clock.zone());
    let filter = crate::store::QueryFilter {
        paths: vec![crate::store::query::PathSpec::exact(spec.path.clone())],
        // At or before: the store's bound is exclusive.
        until: Some(t.checked_add(jiff::SignedDuration::from_micros(1))?),
        newest_first: true,
        limit: Some(1),
        ..Default::default()
    };
    let Some(v) = store.versions(&filter)?.pop() else {
        // Before its first recorded change: what that change found there.
        let first = crate::store::QueryFilter {
            paths: filter.paths.clone(),
            since: Some(t),
            limit: Some(1),
            ..Default::default()
        };
        let Some(v) = store.versions(&first)?.pop() else {
            bail!("{}: no version recorded (see `collector log`)", quote(&spec.path));
        };
        if v.before.is_none() || v.raw.path != spec.path {
            bail!(
                "{} did not exist at {when}: its first recorded change after it, version {}, created it",
                quote(&spec.path),
                v.id
            );
        }
        println!(
            "{} held at {when} what version {} ({}, by {}) found before its change",
            quote(&spec.path),
            v.id,
            clock.show_text(&v.time),
            crate::print::q(&v.user)
        );
        return Ok((v.id, true));
    };
    if v.raw.path != spec.path {
        bail!(
            "{} did not exist at {when}: version {} had renamed it to {}",
            quote(&spec.path),
            v.id,
            quote(&v.raw.path)
        );
    }
    if v.after.is_none() && v.action == "delete" {
        bail!(
            "{} did not exist at {when}: version {} had deleted it (`collector restore {}` puts back what it deleted)",
            quote(&spec.path),
            v.id,
            v.id
        );
    }
    println!(
        "version {} ({}, by {}) is the one current at {when}",
        v.id,
        clock.show_text(&v.time),
        crate::print::q(&v.user)
    );
    Ok((v.id, false))
}

/// A file to restore: its directory (absolute, canonical) and its name.
struct Target {
    dir: PathBuf,
    name: OsString,
}

impl Target {
    /// The path a version was recorded under, if it is canonical.
    fn recorded(id: i64, path: &[u8]) -> anyhow::Result<Target> {
        if !canonical(path) {
            bail!(
                "version {id} is of {}, which is not an absolute canonical path (it has `.`, `..`, `//`, NUL or a \
                 trailing `/`): refusing to restore it there (use --to to choose where)",
                quote(path)
            );
        }
        let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let dir = if cut == 0 { &b"/"[..] } else { &path[..cut] };
        Ok(Target { dir: PathBuf::from(OsStr::from_bytes(dir)), name: OsStr::from_bytes(&path[cut + 1..]).into() })
    }

    /// `--to`: absolute, its directory resolved as the admin's shell would.
    fn chosen(to: &Path) -> anyhow::Result<Target> {
        let abs = std::path::absolute(to).context("resolving --to")?;
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            bail!("--to {}: not a file name", quote(to.as_os_str().as_bytes()));
        };
        let dir = std::fs::canonicalize(dir).with_context(|| format!("--to: {}", quote(dir.as_os_str().as_bytes())))?;
        Ok(Target { dir, name: name.to_owned() })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn shown(&self) -> String {
        quote(self.path().as_os_str().as_bytes()).into_owned()
    }
}

/// Owner, group and permission bits to give the restored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
}

pub fn run(cli: &Cli, args: &Args) -> anyhow::Result<ExitCode> {
    crate::history::local_only(&cli.db, "restore")?;
    let store = Store::open_read(&cli.db)?;
    let (id, before_side) = chosen_version(cli, &store, args)?;
    let v = store.version(id)?;
    // A delete is undone by putting back what the file held before it.
    let undelete = v.after.is_none();
    let side_before = before_side || undelete;
    if side_before && v.before.is_none() {
        bail!("version {id} created {}: there was nothing before it to put back", quote(&v.raw.path));
    }
    // Checked against its SHA-256: a damaged store writes nothing.
    let content = store.content(id, side_before)?;
    let source = store.restore_source(id)?;
    drop(store);
    // Decided before anything is written (a dry run writes nothing).
    let collector = if args.dry_run { None } else { collector_of_store(cli)? };

    let target = match &args.to {
        Some(p) => Target::chosen(p)?,
        None => Target::recorded(v.id, &source.path)?,
    };
    let dir = open_dir(&target.dir)?;
    let current = read_current(&dir, &target)?;
    let owner = match &current {
        Some((_, st)) => Owner { uid: st.st_uid, gid: st.st_gid, mode: st.st_mode & 0o7777 },
        None => Owner { uid: source.euid, gid: source.egid, mode: source.mode.map_or(0o600, |m| m & 0o777) },
    };
    let before = current.map(|(bytes, _)| bytes);
    if before.as_deref() == Some(&content[..]) {
        println!("{} already holds the content of version {}: nothing changed", target.shown(), v.id);
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        println!("would restore version {} to {} (nothing changed: --dry-run):", v.id, target.shown());
        let mut out = std::io::stdout().lock();
        let (now, then) = (format!("{} (now)", target.shown()), format!("{} (version {})", target.shown(), v.id));
        crate::print::diff(
            &mut out,
            before.as_deref(),
            Some(&content),
            &now,
            &then,
            crate::print::Color::Auto.enabled(),
        )?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (tmp, written) = write_replacement(&dir, &target, &content, owner)?;
    let meta = Some(Meta {
        mode: written.st_mode,
        uid: written.st_uid,
        gid: written.st_gid,
        dev: written.st_dev,
        ino: written.st_ino,
        mtime_ns: 0,
    });

    let path = target.path();
    let reported = match collector {
        Some(stream) => record_via_collector(stream, &target.dir.join(&tmp), &path, before.as_deref(), &content, meta),
        None => Err("no collector serves this store".to_owned()),
    };
    let how = match reported {
        Ok(true) => "recorded as a new version by the running collector of the store",
        Ok(false) => "not recorded: the target is not tracked",
        Err(why) => {
            let config = crate::config::Config::load(
                cli.config.as_deref().unwrap_or(std::path::Path::new(crate::config::DEFAULT_CONFIG)),
                cli.config.is_none(),
            )?;
            if !config.policy().is_ok_and(|p| p.is_tracked(path.as_os_str().as_bytes())) {
                "not recorded: the target is not tracked"
            } else {
                record_directly(&cli.db, &path, before, content, meta)
                    .with_context(|| format!("{why}, and the store cannot be written"))?;
                "recorded as a new version directly in the store; no collector serves it"
            }
        }
    };
    let what = match (undelete, before_side) {
        (true, _) => "the content deleted by version",
        (false, true) => "what the file held before version",
        (false, false) => "version",
    };
    println!("restored {what} {} to {}: {how}", v.id, target.shown());
    Ok(ExitCode::SUCCESS)
}

/// What the file a version was recorded under holds now (`None`: there is
/// no such file), read the way restore reads it: its directory opened
/// without following any symlink, the file with `O_NOFOLLOW`, regular files
/// only; as the invoking user (`diff --current`).
pub fn on_disk(id: i64, path: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    let target = Target::recorded(id, path)?;
    if std::fs::symlink_metadata(&target.dir).is_err() {
        return Ok(None);
    }
    let dir = open_dir(&target.dir)?;
    Ok(read_current(&dir, &target)?.map(|(bytes, _)| bytes))
}

/// Opens `dir` (absolute) for the restore without following any symlink.
fn open_dir(dir: &Path) -> anyhow::Result<OwnedFd> {
    let shown = || quote(dir.as_os_str().as_bytes()).into_owned();
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let opened = match rustix::fs::openat2(rustix::fs::CWD, dir, flags, Mode::empty(), resolve) {
        // No openat2 (before Linux 5.6, or filtered by seccomp): the same
        // walk by hand.
        Err(Errno::NOSYS | Errno::PERM) => open_dir_by_components(dir),
        other => other,
    };
    opened.map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR | Errno::XDEV => anyhow::anyhow!(
            "{}: a component is a symlink or not a directory: refusing to follow it (use --to to restore elsewhere)",
            shown()
        ),
        e => anyhow::Error::from(std::io::Error::from(e)).context(format!("opening the directory {}", shown())),
    })
}

/// `openat(O_NOFOLLOW | O_DIRECTORY)` one component at a time from `/`.
fn open_dir_by_components(dir: &Path) -> rustix::io::Result<OwnedFd> {
    let mut fd = rustix::fs::open("/", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let parts: Vec<&[u8]> = dir.as_os_str().as_bytes().split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        // Search permission is enough on the way; the last one is read.
        let how = if i + 1 == parts.len() { OFlags::RDONLY } else { OFlags::PATH };
        let flags = how | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
        fd = rustix::fs::openat(&fd, OsStr::from_bytes(part), flags, Mode::empty())?;
    }
    Ok(fd)
}

/// What the target holds now, with its `fstat`; `None` when it does not
/// exist. A symlink or anything but a regular file is refused.
fn read_current(dir: &OwnedFd, target: &Target) -> anyhow::Result<Option<(Vec<u8>, Stat)>> {
    let symlink =
        || anyhow::anyhow!("{} is a symlink: refusing to follow it (use --to to restore elsewhere)", target.shown());
    match rustix::fs::statat(dir, &target.name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(std::io::Error::from(e)).with_context(|| format!("checking {}", target.shown())),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => return Err(symlink()),
        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
            bail!("{} is not a regular file", target.shown())
        }
        Ok(_) => {}
    }
    // O_NONBLOCK: should it have become a FIFO meanwhile, do not hang on it.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, &target.name, flags, Mode::empty()) {
        Err(Errno::LOOP) => return Err(symlink()),
        r => r.map_err(std::io::Error::from).with_context(|| format!("opening {}", target.shown()))?,
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        bail!("{} is not a regular file", target.shown());
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut bytes).with_context(|| format!("reading {}", target.shown()))?;
    Ok(Some((bytes, st)))
}

/// Writes `content` to a new file in `dir`, gives it `owner`, and renames
/// it over the target. Returns the temporary name it used and the new
/// file's `fstat`.
fn write_replacement(dir: &OwnedFd, target: &Target, content: &[u8], owner: Owner) -> anyhow::Result<(OsString, Stat)> {
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(target.name.as_bytes());
    tmp.extend_from_slice(format!(".filetrail-restore.{}", std::process::id()).as_bytes());
    if tmp.len() > 255 {
        tmp = format!(".filetrail-restore.{}", std::process::id()).into_bytes();
    }
    let tmp = OsString::from_vec(tmp);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, &tmp, flags, Mode::from_raw_mode(0o600))
        .map_err(std::io::Error::from)
        .with_context(|| format!("creating a temporary file next to {}", target.shown()))?;
    let result = (|| -> anyhow::Result<Stat> {
        let mut file = std::fs::File::from(fd);
        file.write_all(content)?;
        // Owner first: a chown clears setuid/setgid, the chmod after sets
        // exactly the bits chosen.
        if let Err(e) = rustix::fs::fchown(&file, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid))) {
            eprintln!(
                "collector: warning: cannot give {} to uid {} gid {}: {}",
                target.shown(),
                owner.uid,
                owner.gid,
                std::io::Error::from(e)
            );
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(owner.mode)).context("setting the mode")?;
        file.sync_all()?;
        let st = rustix::fs::fstat(&file)?;
        rustix::fs::renameat(dir, &tmp, dir, &target.name)
            .map_err(std::io::Error::from)
            .with_context(|| format!("renaming over {}", target.shown()))?;
        let _ = rustix::fs::fsync(dir);
        Ok(st)
    })();
    match result {
        Ok(st) => Ok((tmp, st)),
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
            Err(e)
        }
    }
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

/// A connection to the collector that serves `--db` (`serving.rs`), or
/// `None` when none does. A `--socket` naming another collector is refused:
/// a restore recorded in another store would be lost from this one's history.
fn collector_of_store(cli: &Cli) -> anyhow::Result<Option<UnixStream>> {
    let db = quote(cli.db.as_os_str().as_bytes()).into_owned();
    let serving = crate::serving::connect(&cli.db);
    let Some(asked) = &cli.socket else { return Ok(serving.map(|(_, stream)| stream)) };
    let asked_abs = std::path::absolute(asked).unwrap_or_else(|_| asked.clone());
    let shown = quote(asked.as_os_str().as_bytes()).into_owned();
    match serving {
        Some((s, stream)) if s.socket() == asked_abs => Ok(Some(stream)),
        Some((s, _)) => bail!(
            "--socket {shown} is not the collector serving the store {db}: that one listens on {} (pid {}); \
             leave out --socket",
            quote(s.socket.as_bytes()),
            s.pid
        ),
        None if UnixStream::connect(asked).is_ok() => bail!(
            "the collector at --socket {shown} does not serve the store {db} (no collector does): a restore \
             reported there would be recorded in another store; leave out --socket to record it in {db} directly"
        ),
        None => Ok(None),
    }
}

/// Reports the restore to the collector on `s` exactly as the library
/// reports a temp-file-and-rename save. `Ok(false)`: the target is not
/// tracked; `Err`: the collector did not answer.
fn record_via_collector(
    mut s: UnixStream,
    tmp: &Path,
    target: &Path,
    before: Option<&[u8]>,
    after: &[u8],
    meta: Option<Meta>,
) -> Result<bool, String> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let io = |e: std::io::Error| e.to_string();
    write_frame(&mut s, &ClientMsg::Hello { version: PROTOCOL_VERSION, image: 0, start: 0 }, &[]).map_err(io)?;
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
            // Unnumbered (seq 0): restore sends once and waits for no ack.
            ClientMsg::Begin {
                seq: 0,
                token: 1,
                path: WirePath(tmp_b.clone()),
                named: None,
                file: None,
                flags: libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                before: Snapshot::absent(),
            },
            vec![],
        ),
        (ClientMsg::Close { seq: 0, token: 1, after: snapshot(Some(after), meta), shared: false }, vec![after]),
        (
            ClientMsg::Rename {
                seq: 0,
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
    store.insert(&[NewVersion { draft, who, delivery: None }])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_walks_open_real_directories_and_refuse_symlinked_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap().join("a/b");
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(real.parent().unwrap(), real.with_file_name("link")).unwrap();
        let through_link = real.with_file_name("link").join("b");
        assert!(open_dir_by_components(&real).is_ok());
        assert!(open_dir(&real).is_ok());
        assert!(open_dir_by_components(&through_link).is_err());
        assert!(open_dir_by_components(&real.with_file_name("link")).is_err());
        let err = open_dir(&through_link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn only_canonical_recorded_paths_are_targets() {
        let t = Target::recorded(1, b"/etc/hosts").unwrap();
        assert_eq!((t.dir.as_path(), t.name.as_os_str()), (Path::new("/etc"), OsStr::new("hosts")));
        let t = Target::recorded(1, b"/x").unwrap();
        assert_eq!((t.dir.as_path(), t.name.as_os_str()), (Path::new("/"), OsStr::new("x")));
        let err = Target::recorded(7, b"/home/u/l/../../../etc/\x1b[2Jpasswd").err().unwrap().to_string();
        assert!(err.contains("version 7") && err.contains("\\033[2J") && !err.contains('\x1b'), "{err}");
    }
}
