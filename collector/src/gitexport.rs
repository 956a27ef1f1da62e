//! `collector export-git`: the store as a git history, for the tools admins
//! already use (`git log -p`, `git blame`, `git show`, a web viewer),
//! written with a git library (gix), never by string-built plumbing calls.
//!
//! One commit per version on one branch (`filetrail` by default; a new
//! repository is bare, mode 0700, with `HEAD` on that branch). The tree
//! holds each tracked file at its absolute path without the leading slash,
//! names as raw bytes (git trees hold bytes); a delete removes it, a
//! rename moves it, a mode with the owner's execute bit makes it 100755.
//! Author: the human (`user`, `user@host`), at the version's time in the
//! review zone (local, or UTC with `--utc`); committer: `filetrail`, at the
//! same time, so the same runs over the same store give the same commits.
//! The message says the action, program and arguments, who, tty, ssh
//! client, session, and ends in trailers: `Filetrail-Version: ID` and
//! `Filetrail-Exported-Through: N` (every version up to id N is in the
//! history up to the run that wrote it). A later run starts after N and
//! adds only what was stored since; the branch moves once, at the end of a
//! run (a run that fails leaves it where it was).
//!
//! Content that is not stored (redacted, over quota, hash only, unreadable,
//! damaged in the store) never reaches the repository: the file is left
//! out of the tree from that version on, and the message says why; no hash
//! of it is written either. A name git cannot hold safely (`.git` and its
//! NTFS/HFS spellings, which `git fsck` rejects and a checkout would obey)
//! is left out the same way. A version stored after a later change of its
//! file was already exported (see `store/export.rs`) leaves the tree as
//! it is.
//!
//! A file that existed before its first recorded change (filetrail was
//! installed after it) enters with a commit of its own, `baseline PATH`,
//! author and committer `filetrail`, at that change's time, holding what
//! the change found (trailer `Filetrail-Baseline-Of: ID`): the change's
//! commit then shows only what it did.
//!
//! One commit per real change, as `collector log` shows them: the steps of
//! a temp file renamed over its target (folded, issue 15) are not
//! exported, the change of the target says `Via:`, and a run stops before
//! a temp file's version that may still fold (the rest waits for a later
//! run, at most the fold window, 10 minutes).
//!
//! The repository holds the content of tracked files, which the store keeps
//! root-only: the directory must belong to the user running the export and
//! be closed to everyone else (mode 0700), or the export refuses.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use filetrail_wire::path::quote;
use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};

use crate::error::{Error, Result};
use crate::model::VersionRow;
use crate::print::{q, shell_words};
use crate::store::Store;
use crate::when::Clock;

/// The trailer naming the version a commit records.
pub const VERSION: &str = "Filetrail-Version";
/// The trailer saying every version up to this id is in the history.
pub const THROUGH: &str = "Filetrail-Exported-Through";
/// The trailer of a baseline commit: what the file held before this
/// version, its first recorded change.
pub const BASELINE: &str = "Filetrail-Baseline-Of";

/// What one run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Commits added (one per version).
    pub commits: u64,
    /// The last version id the history now covers.
    pub through: i64,
    /// Versions whose file is left out of the tree (content not stored, or
    /// a name git cannot hold).
    pub left_out: u64,
    /// Of those, contents the store holds but that fail their hash check.
    pub damaged: u64,
    /// Versions left for a later run: stored after a temp file's version
    /// that may still fold into a rename.
    pub waiting: u64,
}

/// Exports the versions of `store` not yet in `dir`'s `branch`.
pub fn export(store: &Store, dir: &Path, branch: &str, clock: &Clock) -> Result<Report> {
    let branch_ref: FullName = format!("refs/heads/{branch}")
        .try_into()
        .map_err(|_| Error::Export(format!("{}: not a valid branch name", quote(branch.as_bytes()))))?;
    // Objects are gathered in memory and written as packs (`flush`): one
    // file per object would be tens of thousands of files.
    let mut repo = open_or_init(dir, &branch_ref)?.with_object_memory();
    repo.object_cache_size(4 << 20);
    let here = crate::hostname::get().unwrap_or_else(|| "localhost".into());
    let committer_name = format!("filetrail@{here}");

    // Where the last run stopped.
    let mut report = Report::default();
    let (mut parent, tree, after) = match repo.try_find_reference(branch_ref.as_ref()).map_err(git(dir, "read"))? {
        None => (None, ObjectId::empty_tree(repo.object_hash()), 0),
        Some(tip) => {
            let id = tip.id().detach();
            let commit = repo.find_commit(id).map_err(git(dir, "read the branch's last commit"))?;
            let message = commit.message_raw().map_err(git(dir, "read the branch's last commit"))?;
            let (Some(version), Some(through)) = (trailer(message, VERSION), trailer(message, THROUGH)) else {
                return Err(Error::Export(format!(
                    "{}: branch {branch} ends in commit {id}, which filetrail did not write (no {THROUGH} \
                     trailer); export into a new directory or choose another --branch",
                    quote(dir.as_os_str().as_encoded_bytes())
                )));
            };
            let seconds = commit.author().and_then(|a| a.time()).map_err(git(dir, "read"))?.seconds;
            if store.version_time_us(version)?.map(|us| us.div_euclid(1_000_000)) != Some(seconds) {
                return Err(Error::Export(format!(
                    "{}: branch {branch} was exported from another store (its version {version} is not this \
                     store's); export into a new directory or choose another --branch",
                    quote(dir.as_os_str().as_encoded_bytes())
                )));
            }
            let tree = commit.tree_id().map_err(git(dir, "read"))?.detach();
            (Some(id), tree, through)
        }
    };
    let previous = parent;
    report.through = after;
    let (through, waiting) = store.export_limit(after, jiff::Timestamp::now().as_microsecond())?;
    report.waiting = waiting;
    let ids = store.export_ids(after, through)?;
    if ids.is_empty() {
        return Ok(report);
    }

    let mut editor = repo.edit_tree(tree).map_err(git(dir, "read the tree"))?.detach();
    let committer_email = committer_name.clone();
    let mut held = 0;
    let mut packs = Vec::new();
    for id in ids {
        let v = store.version(id)?;
        let time_us = v.time.parse::<jiff::Timestamp>().map(|t| t.as_microsecond()).unwrap_or(0);
        let mut notes = Vec::new();
        let late = if after > 0 { store.exported_later(&v.raw.path, after, time_us)? } else { None };
        if let Some(later) = late {
            notes.push(format!(
                "recorded after version {later}, a later change of this file, was exported: the tree keeps that \
                 version's content"
            ));
        } else {
            // A file that existed before its first recorded change enters the
            // history as it was then, in a commit of its own, so that the
            // change's commit shows only what the change did.
            if let Some(found) = baseline(store, &v)?
                && let Ok(path) = git_path(&v.raw.path)
            {
                held += found.len();
                let blob = repo.write_blob(&found).map_err(git(dir, "write a blob"))?.detach();
                let kind = blob_kind(v.before_mode.as_deref());
                editor.upsert(path.iter().map(|c| c.as_bstr()), kind, blob).map_err(git(dir, "edit the tree"))?;
                let tree = write_tree(&repo, &mut editor, &mut held).map_err(git(dir, "write a tree"))?;
                let time = commit_time(clock, time_us);
                let who = gix::actor::Signature { name: "filetrail".into(), email: ident(&committer_email), time };
                let commit = gix::objs::Commit {
                    tree,
                    parents: parent.into_iter().collect(),
                    author: who.clone(),
                    committer: who,
                    encoding: None,
                    message: format!(
                        "baseline {}\n\nWhat the file held before its first recorded change, version {}.\n\n\
                         {BASELINE}: {}\n{THROUGH}: {after}\n",
                        quote(&v.raw.path),
                        v.id,
                        v.id
                    )
                    .into(),
                    extra_headers: Vec::new(),
                };
                parent = Some(repo.write_object(&commit).map_err(git(dir, "write a commit"))?.detach());
                report.commits += 1;
            }
            // A rename moves the file; a temp file renamed over the target
            // leaves its name (a step exported before it folded).
            for old in [&v.raw.old_path, &v.raw.via].into_iter().flatten() {
                if let Ok(old) = git_path(old) {
                    editor.remove(old.iter().map(|c| c.as_bstr())).map_err(git(dir, "edit the tree"))?;
                }
            }
            let content = content(store, &v, &mut report, &mut notes)?;
            match git_path(&v.raw.path) {
                Err(why) => {
                    if content.is_some() {
                        notes.push(format!("a git tree cannot hold this name ({why}): the file is left out"));
                        report.left_out += 1;
                    }
                }
                Ok(path) => {
                    let path = path.iter().map(|c| c.as_bstr());
                    match content {
                        Some(bytes) => {
                            held += bytes.len();
                            let blob = repo.write_blob(&bytes).map_err(git(dir, "write a blob"))?.detach();
                            editor
                                .upsert(path, blob_kind(v.mode.as_deref()), blob)
                                .map_err(git(dir, "edit the tree"))?;
                        }
                        None => {
                            editor.remove(path).map_err(git(dir, "edit the tree"))?;
                        }
                    }
                }
            }
        }
        let tree = write_tree(&repo, &mut editor, &mut held).map_err(git(dir, "write a tree"))?;
        let time = commit_time(clock, time_us);
        let host = v.host.as_deref().unwrap_or(&here);
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: gix::actor::Signature {
                name: ident(&v.user),
                email: ident(&format!("{}@{host}", v.user)).replace(" ", "_").into(),
                time,
            },
            committer: gix::actor::Signature { name: "filetrail".into(), email: ident(&committer_email), time },
            encoding: None,
            message: message(&v, &notes, through).into(),
            extra_headers: Vec::new(),
        };
        held += commit.message.len() + 256;
        parent = Some(repo.write_object(&commit).map_err(git(dir, "write a commit"))?.detach());
        report.commits += 1;
        if held > FLUSH_BYTES {
            packs.extend(flush(&repo)?);
            held = 0;
        }
    }
    packs.extend(flush(&repo)?);

    // The branch moves once, and only from where this run found it.
    let tip = parent.expect("at least one commit");
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("filetrail export-git: {} versions, through {through}", report.commits).into(),
            },
            expected: match previous {
                Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
                None => PreviousValue::MustNotExist,
            },
            new: Target::Object(tip),
        },
        name: branch_ref,
        deref: false,
    };
    let now = gix::date::Time { seconds: jiff::Timestamp::now().as_second(), offset: 0 };
    let me = gix::actor::Signature { name: "filetrail".into(), email: ident(&committer_name), time: now };
    let mut buf = gix::date::parse::TimeBuf::default();
    repo.edit_references_as([edit], Some(me.to_ref(&mut buf))).map_err(git(dir, "move the branch"))?;
    // The branch holds the packs now: `git gc` may treat them as any other.
    for keep in packs {
        let _ = std::fs::remove_file(keep);
    }
    report.through = through;
    Ok(report)
}

/// Content gathered in memory before it is written as a pack.
const FLUSH_BYTES: usize = 64 << 20;

/// Writes the objects gathered in memory as one pack (with its index) into
/// the repository; the path of its `.keep` file, which protects it from a
/// concurrent `git gc` until the branch points into it.
fn flush(repo: &gix::Repository) -> Result<Option<std::path::PathBuf>> {
    use gix_pack::data::output;
    let dir = repo.git_dir();
    let Some(objects) = repo.objects.reset_object_memory().filter(|o| !o.is_empty()) else { return Ok(None) };
    let hash = repo.object_hash();
    // Compressed one at a time as the pack is written: all of them at once
    // would hold every object twice.
    let entries = objects.iter().map(|(id, (kind, data))| {
        let data = gix::objs::Data::new(data, *kind, hash);
        output::Entry::from_data(&output::Count::from_data(*id, None), &data, gix::zlib::Compression::DEFAULT)
            .map(|entry| vec![entry])
    });
    let mut pack = Vec::new();
    let mut writer = output::bytes::FromEntriesIter::new(
        entries,
        &mut pack,
        objects.len() as u32,
        gix_pack::data::Version::V2,
        hash,
    );
    for written in &mut writer {
        written.map_err(git(dir, "write a pack"))?;
    }
    drop(writer);
    let outcome = gix_pack::Bundle::write_to_directory(
        &mut pack.as_slice(),
        Some(&repo.common_dir().join("objects").join("pack")),
        &mut gix::progress::Discard,
        &std::sync::atomic::AtomicBool::new(false),
        None::<gix::objs::find::Never>,
        hash,
        gix_pack::bundle::write::Options::default(),
    )
    .map_err(git(dir, "index a pack"))?;
    Ok(outcome.keep_path)
}

/// A tree entry's kind for a file of `mode` (octal): executable when the
/// owner may execute it.
fn blob_kind(mode: Option<&str>) -> EntryKind {
    let executable = mode.and_then(|m| u32::from_str_radix(m, 8).ok()).is_some_and(|m| m & 0o100 != 0);
    if executable { EntryKind::BlobExecutable } else { EntryKind::Blob }
}

/// Writes the edited tree (its subtrees too), adding what it holds in
/// memory to `held`.
fn write_tree(
    repo: &gix::Repository,
    editor: &mut gix::objs::tree::Editor<'_>,
    held: &mut usize,
) -> std::result::Result<ObjectId, gix::Error> {
    editor.write(|tree| {
        *held += tree.entries.iter().map(|e| e.filename.len() + 28).sum::<usize>();
        repo.write_object(tree).map(|id| id.detach())
    })
}

/// A commit's time: the version's second, with the review zone's offset.
fn commit_time(clock: &Clock, time_us: i64) -> gix::date::Time {
    let seconds = time_us.div_euclid(1_000_000);
    gix::date::Time {
        seconds,
        offset: jiff::Timestamp::from_second(seconds).map(|t| clock.offset_seconds(t)).unwrap_or(0),
    }
}

/// What the file of `v` held before it, when `v` is its first recorded
/// change (no earlier version of the path, not a step folded into
/// another) and found the file there with its content stored.
fn baseline(store: &Store, v: &VersionRow) -> Result<Option<Vec<u8>>> {
    if v.before.is_none() || store.earlier_version_of(&v.raw.path, v.id)? {
        return Ok(None);
    }
    match store.content(v.id, true) {
        Ok(bytes) => Ok(Some(bytes)),
        // Not stored (redacted, over quota, hash only, damaged): the file
        // enters with the change, as a new file.
        Err(_) => Ok(None),
    }
}

/// The after content of `v` to put in the tree, or `None` (the file leaves
/// the tree), with a note saying why when it existed but is not stored.
fn content(store: &Store, v: &VersionRow, report: &mut Report, notes: &mut Vec<String>) -> Result<Option<Vec<u8>>> {
    let why = match v.content.as_str() {
        "none" => return Ok(None),
        "stored" => match store.content(v.id, false) {
            Ok(bytes) => return Ok(Some(bytes)),
            Err(Error::Redacted { .. }) => "redacted: its name or content is secret".to_owned(),
            Err(Error::Damaged { .. } | Error::Corrupt(_)) => {
                report.damaged += 1;
                tracing::warn!(version = v.id, "stored content is damaged (collector verify): left out of the export");
                "damaged in the store (`collector verify`)".to_owned()
            }
            Err(e @ Error::NoContent { .. }) => e.to_string(),
            Err(e) => return Err(e),
        },
        "redacted" => "redacted: its name or content is secret".to_owned(),
        "quota" => "over the writer's quota".to_owned(),
        "hash_only" => "larger than max_size: only its hash was recorded".to_owned(),
        "unreadable" => "the writing process could not read it".to_owned(),
        other => other.to_owned(),
    };
    report.left_out += 1;
    notes.push(format!("not stored ({why}): the file is left out of the tree"));
    Ok(None)
}

/// A stored absolute path as tree components, each one a name a git tree
/// may hold (`git fsck` clean, safe to check out on Linux, NTFS and HFS+).
fn git_path(path: &[u8]) -> Result<Vec<&[u8]>, String> {
    let rest = path.strip_prefix(b"/").ok_or("not absolute")?;
    let options =
        gix::validate::path::component::Options { protect_windows: false, protect_hfs: true, protect_ntfs: true };
    rest.split(|&b| b == b'/')
        .map(|c| {
            gix::validate::path::component(c.as_bstr(), None, options)
                .map(|_| c)
                .map_err(|e| format!("{}: {e}", quote(c)))
        })
        .collect()
}

/// A name or email for a git identity: no `<`, `>`, newline or other
/// control character (`git fsck` checks them).
fn ident(s: &str) -> BString {
    let clean: String = s.chars().map(|c| if c == '<' || c == '>' || c.is_control() { '?' } else { c }).collect();
    if clean.trim().is_empty() { "unknown".into() } else { clean.into() }
}

/// The commit message: subject, who and how, notes, trailers.
fn message(v: &VersionRow, notes: &[String], through: i64) -> String {
    use std::fmt::Write;
    let mut m = match &v.raw.old_path {
        Some(old) => format!("{} {} -> {}\n\n", v.action, quote(old), quote(&v.raw.path)),
        None => format!("{} {}\n\n", v.action, quote(&v.raw.path)),
    };
    if let Some(via) = &v.raw.via {
        let _ = writeln!(m, "Via:     {} (written there, then renamed over this file)", quote(via));
    }
    let _ = writeln!(m, "Program: {} (pid {})  {}", q(&v.exe), v.pid, shell_words(&v.argv));
    let chain: Vec<String> = v.chain.iter().map(|u| q(u).into_owned()).collect();
    let claimed = if v.unregistered_session { " [session not registered by a login: user claimed]" } else { "" };
    let _ = writeln!(m, "User:    {} (uid {}, euid {}){claimed}", chain.join(" -> "), v.uid, v.euid);
    if let Some(tty) = &v.tty {
        let _ = writeln!(m, "TTY:     {}", q(tty));
    }
    if let Some(ssh) = &v.ssh_client {
        let _ = writeln!(m, "SSH:     {}", q(ssh));
    }
    if let Some(session) = &v.session {
        let _ = writeln!(m, "Session: {}", q(session));
    }
    let _ = writeln!(m, "Time:    {}", v.time);
    if v.seen_by == "kernel" {
        let _ = writeln!(m, "Seen by: the kernel watch (no library reported this change)");
    }
    if v.gap_before {
        let _ = writeln!(m, "Gap:     the file held other content before this change than the last version recorded");
    }
    if v.action == "attrib" || v.before_mode.as_ref().is_some_and(|b| Some(b) != v.mode.as_ref()) {
        let who = |mode: &Option<String>, u: Option<u32>, g: Option<u32>| {
            let n = |x: Option<u32>| x.map_or("?".into(), |x| x.to_string());
            format!("{} {}:{}", mode.as_deref().unwrap_or("?"), n(u), n(g))
        };
        let _ = writeln!(
            m,
            "Mode:    {} -> {}",
            who(&v.before_mode, v.before_owner_uid, v.before_group_gid),
            who(&v.mode, v.owner_uid, v.group_gid)
        );
    }
    for note in notes {
        let _ = writeln!(m, "Content: {note}");
    }
    let _ = write!(m, "\n{VERSION}: {}\n{THROUGH}: {through}\n", v.id);
    m
}

/// The number after `key: ` in the message's last paragraph.
fn trailer(message: &BStr, key: &str) -> Option<i64> {
    let last = message.trim_end().rsplit_str("\n\n").next()?;
    last.lines().find_map(|line| line.strip_prefix(key.as_bytes())?.strip_prefix(b": ")?.to_str().ok()?.parse().ok())
}

/// Opens `dir`, or creates it (0700) as a new bare repository whose `HEAD`
/// is `branch`. Refuses a directory others could read or change.
fn open_or_init(dir: &Path, branch: &FullName) -> Result<gix::Repository> {
    let shown = || quote(dir.as_os_str().as_encoded_bytes()).into_owned();
    let md = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("create {}", shown()), e))?;
            std::fs::symlink_metadata(dir).map_err(|e| Error::io(shown(), e))?
        }
        Err(e) => return Err(Error::io(shown(), e)),
        Ok(md) => md,
    };
    if !md.is_dir() {
        return Err(Error::Export(format!("{} is not a directory (a symlink is not followed)", shown())));
    }
    let me = uzers::get_effective_uid();
    if md.uid() != me {
        return Err(Error::Export(format!(
            "{} belongs to uid {}, not to you (uid {me}): the export writes there as you",
            shown(),
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(Error::Export(format!(
            "{} is open to others (mode {:04o}): its history holds the content of every exported file, which \
             the store keeps from them; `chmod 700` it first",
            shown(),
            md.mode() & 0o7777
        )));
    }
    let empty = std::fs::read_dir(dir).map_err(|e| Error::io(shown(), e))?.next().is_none();
    if !empty {
        return gix::open(dir).map_err(|e| Error::Export(format!("{} is not a git repository: {e}", shown())));
    }
    let repo = gix::init_bare(dir).map_err(git(dir, "create a repository"))?;
    let head = RefEdit {
        change: Change::Update {
            log: LogChange { mode: RefLog::AndReference, force_create_reflog: false, message: "".into() },
            expected: PreviousValue::Any,
            new: Target::Symbolic(branch.clone()),
        },
        name: "HEAD".try_into().expect("a valid name"),
        deref: false,
    };
    repo.edit_references_as([head], None).map_err(git(dir, "point HEAD to the branch"))?;
    Ok(repo)
}

/// An error of the git library, with what was being done where.
fn git<E: std::error::Error + Send + Sync + 'static>(dir: &Path, what: &'static str) -> impl Fn(E) -> Error {
    let dir = dir.to_owned();
    move |e| Error::Git { dir: dir.clone(), what, source: Box::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_read_from_the_last_paragraph() {
        let m = BStr::new(b"write /etc/a\n\nProgram: x\nFiletrail-Version: 9\n\nFiletrail-Version: 12\nFiletrail-Exported-Through: 40\n");
        assert_eq!(trailer(m, VERSION), Some(12));
        assert_eq!(trailer(m, THROUGH), Some(40));
        assert_eq!(trailer(BStr::new(b"hand-made commit\n"), THROUGH), None);
    }

    #[test]
    fn names_git_must_not_hold_are_refused() {
        assert_eq!(git_path(b"/etc/caf\xe9.conf").unwrap(), [&b"etc"[..], b"caf\xe9.conf"]);
        assert!(git_path(b"/etc/back\\slash:colon").is_ok());
        for bad in [&b"/srv/x/.git/config"[..], b"/srv/x/.GIT/config", b"/srv/x/git~1/config", b"/srv/.git./a"] {
            assert!(git_path(bad).is_err(), "{}", quote(bad));
        }
    }

    /// One version of `path` at `second`, by a user named "alice".
    fn version(path: &str, after: &[u8], second: i64) -> crate::model::NewVersion {
        use crate::model::{Action, Draft, Side};
        let after = Some(Side::from_bytes(after.to_vec(), None, true));
        let time = jiff::Timestamp::from_second(second).unwrap();
        let draft = Draft::new(path.as_bytes().to_vec(), Action::Write, None, after, time);
        let who = crate::who::Identity { pid: 7, key: 7, user: "alice".into(), ..Default::default() };
        crate::model::NewVersion { draft, who: std::sync::Arc::new(who), delivery: None }
    }

    fn show(repo: &Path, spec: &str) -> String {
        let out = std::process::Command::new("git").arg("-C").arg(repo).args(["show", spec]).output().unwrap();
        assert!(out.status.success(), "git show {spec}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_run_commits_in_time_order_and_a_late_version_leaves_the_newer_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let repo = dir.path().join("repo");
        let clock = Clock::new(true);
        // Stored out of time order (as a held-back create is): ids 1, 2.
        store.insert(&[version("/srv/a", b"second\n", 200), version("/srv/a", b"first\n", 100)]).unwrap();
        let report = export(&store, &repo, "filetrail", &clock).unwrap();
        assert_eq!((report.commits, report.through), (2, 2));
        assert_eq!(show(&repo, "filetrail:srv/a"), "second\n");
        assert_eq!(show(&repo, "filetrail~1:srv/a"), "first\n");
        // Stored after the run, but earlier than what the run exported.
        store.insert(&[version("/srv/a", b"late\n", 150), version("/srv/b", b"b\n", 300)]).unwrap();
        let report = export(&store, &repo, "filetrail", &clock).unwrap();
        assert_eq!((report.commits, report.through), (2, 4));
        let late = show(&repo, "filetrail~1");
        assert!(late.contains("recorded after version 1") && late.contains("Filetrail-Version: 3"), "{late}");
        assert_eq!(show(&repo, "filetrail:srv/a"), "second\n");
        assert_eq!(show(&repo, "filetrail:srv/b"), "b\n");
        assert_eq!(export(&store, &repo, "filetrail", &clock).unwrap().commits, 0);
    }

    #[test]
    fn identities_lose_what_git_fsck_rejects() {
        assert_eq!(ident("ali<ce>\n"), "ali?ce??");
        assert_eq!(ident(""), "unknown");
    }
}
