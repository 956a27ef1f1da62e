//! Issue 12: `collector export-git` writes the store as a git history —
//! one commit per version, oldest first, the human as author at the
//! version's time, the exact content in the tree, nothing of what the store
//! does not hold — and a later run adds only what was stored since. Every
//! check goes through the real `git` CLI.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use filetrail_e2e::{Collector, collector_bin, raw_path};
use serde_json::Value;

/// `collector export-git --db <c's store> DIR`, with `env`.
fn export(c: &Collector, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(collector_bin());
    cmd.args(["export-git", "--db"]).arg(&c.db).arg(dir).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn exported(c: &Collector, dir: &Path, env: &[(&str, &str)]) -> String {
    let out = export(c, dir, env);
    assert!(out.status.success(), "export-git failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `git -C DIR ARGS`, without the host's or the user's git config.
fn git_cmd(dir: &Path, args: &[&OsStr]) -> Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "someone")
        .env("GIT_AUTHOR_EMAIL", "someone@example.org")
        .env("GIT_COMMITTER_NAME", "someone")
        .env("GIT_COMMITTER_EMAIL", "someone@example.org")
        .output()
        .unwrap()
}

/// `git -C DIR ARGS`'s stdout; panics unless it succeeds.
fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = git_cmd(dir, &args);
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args)).unwrap().trim_end().to_owned()
}

/// The content of `path` (raw bytes, relative to the tree's root) at `commit`, if any.
fn file_at(dir: &Path, commit: &str, path: &[u8]) -> Option<Vec<u8>> {
    let spec = [commit.as_bytes(), b":", path].concat();
    let out = git_cmd(dir, &[OsStr::new("cat-file"), OsStr::new("blob"), OsStr::from_bytes(&spec)]);
    out.status.success().then_some(out.stdout)
}

/// The names in `commit`'s tree (raw bytes), sorted.
fn tree(dir: &Path, commit: &str) -> Vec<Vec<u8>> {
    let out = git(dir, &["ls-tree", "-r", "-z", "--name-only", commit]);
    out.split(|&b| b == 0).filter(|n| !n.is_empty()).map(<[u8]>::to_vec).collect()
}

#[derive(Debug)]
struct Commit {
    id: String,
    author: String,
    email: String,
    at: i64,
    date: String,
    committer: String,
    message: String,
}

impl Commit {
    fn version(&self) -> i64 {
        trailer(&self.message, "Filetrail-Version")
    }
}

fn trailer(message: &str, key: &str) -> i64 {
    let prefix = format!("{key}: ");
    let line = message.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
    line.unwrap_or_else(|| panic!("no {key} in {message}")).parse().unwrap()
}

/// The branch's commits, oldest first.
fn commits(dir: &Path) -> Vec<Commit> {
    let out = git(dir, &["log", "--reverse", "-z", "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%ai%x1f%cn%x1f%B"]);
    let text = String::from_utf8(out).unwrap();
    text.split('\0')
        .filter(|r| !r.is_empty())
        .map(|record| {
            let f: Vec<&str> = record.splitn(7, '\x1f').collect();
            Commit {
                id: f[0].into(),
                author: f[1].into(),
                email: f[2].into(),
                at: f[3].parse().unwrap(),
                date: f[4].into(),
                committer: f[5].into(),
                message: f[6].into(),
            }
        })
        .collect()
}

/// A version's time in whole seconds since the epoch.
fn seconds(v: &Value) -> i64 {
    let out = Command::new("date").args(["-u", "+%s", "-d"]).arg(v["time"].as_str().unwrap()).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// Where a tracked file sits in the exported tree: its path without the leading slash.
fn in_tree(path: &[u8]) -> Vec<u8> {
    path.strip_prefix(b"/").unwrap().to_vec()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}

#[test]
fn every_version_is_a_commit_with_its_exact_content_author_and_time() {
    let c = Collector::start_with("max_size = 64\n");
    // The secret comes from an untracked file: argv (in the message) must not hold it.
    std::fs::write(c.dir.path().join("secret"), "TOPSECRET-4711\n").unwrap();
    c.sh(concat!(
        "printf 'port 80\\n' > app.conf; printf 'port 8080\\n' > app.conf; ",
        r#"printf 'raw name\n' > "$(printf 'caf\351.conf')"; "#,
        "cat ../secret > tls.key; ",
        "printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod 755 run.sh; ",
        "head -c 100 /dev/zero | tr '\\0' x > big.conf; ",
        "mkdir .git && printf 'hooked\\n' > .git/config; ",
        "mv app.conf srv.conf; rm big.conf",
    ));
    let versions = c.wait_versions(10);
    assert_eq!(versions.len(), 10, "{versions:#?}");
    let repo = c.dir.path().join("export");
    let said = exported(&c, &repo, &[("TZ", "Asia/Tokyo")]);
    assert!(said.contains("10 commits on branch filetrail, through version 10"), "{said}");
    assert_eq!(git_text(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/filetrail");
    let fsck = git_cmd(&repo, &[OsStr::new("fsck"), OsStr::new("--strict")]);
    assert!(fsck.status.success(), "git fsck: {}", String::from_utf8_lossy(&fsck.stderr));

    // One commit per version, in the order `query` lists them (by time).
    let log = commits(&repo);
    let ids: Vec<i64> = versions.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(log.iter().map(Commit::version).collect::<Vec<_>>(), ids);
    for (v, commit) in versions.iter().zip(&log) {
        let user = v["user"].as_str().unwrap();
        let host = v["host"].as_str().map(str::to_owned).unwrap_or_else(hostname);
        assert_eq!((commit.author.as_str(), commit.email.clone()), (user, format!("{user}@{host}")), "{v}");
        assert_eq!(commit.committer, "filetrail");
        assert_eq!(commit.at, seconds(v), "author date of {v}");
        assert!(commit.date.ends_with("+0900"), "the zone of the review (TZ): {}", commit.date);
        let path = raw_path(v);
        let subject = commit.message.lines().next().unwrap();
        assert!(subject.starts_with(v["action"].as_str().unwrap()), "{subject}");
        assert!(commit.message.contains("Program: "), "{}", commit.message);
        assert_eq!(trailer(&commit.message, "Filetrail-Exported-Through"), 10);
        // The exact bytes the store holds, at the file's place in the tree.
        let here = file_at(&repo, &commit.id, &in_tree(&path));
        match (v["content"].as_str().unwrap(), v["action"].as_str().unwrap()) {
            (_, "delete") => assert_eq!(here, None, "{v}"),
            ("stored", _) if !path.windows(6).any(|w| w == b"/.git/") => {
                assert_eq!(here.as_deref(), Some(&c.show(&v["id"], false)[..]), "content of {v}")
            }
            _ => assert_eq!(here, None, "a file whose content is not exported stays out of the tree: {v}"),
        }
    }

    let version = |name: &str, action: &str| {
        let path = c.path(name).display().to_string();
        let i = versions.iter().position(|v| v["path"] == path.as_str() && v["action"] == action);
        &log[i.unwrap_or_else(|| panic!("no {action} of {name}"))]
    };
    // A redacted file: never in a tree, the message says why, and neither
    // its content nor its hash is anywhere in the repository.
    let secret = version("tls.key", "create");
    assert!(secret.message.contains("redacted"), "{}", secret.message);
    let key = versions.iter().find(|v| v["path"].as_str().unwrap().ends_with("tls.key")).unwrap();
    let everything = git(&repo, &["cat-file", "--batch-all-objects", "--batch"]);
    let everything = String::from_utf8_lossy(&everything);
    assert!(!everything.contains("TOPSECRET"), "the secret reached the repository");
    assert!(!everything.contains(key["after"].as_str().unwrap()), "the secret's hash reached the repository");
    // Larger than max_size: only a hash was recorded.
    assert!(version("big.conf", "create").message.contains("max_size"), "{}", version("big.conf", "create").message);
    // A name git must not hold (a checkout would obey it): left out, and said.
    let hook = version(".git/config", "create");
    assert!(hook.message.contains("cannot hold"), "{}", hook.message);
    // The rename moved the file; the non-UTF-8 name is its bytes, quoted in the subject.
    let rename = version("srv.conf", "rename");
    let app = in_tree(c.path("app.conf").as_os_str().as_bytes());
    let srv = in_tree(c.path("srv.conf").as_os_str().as_bytes());
    assert_eq!(file_at(&repo, &rename.id, &app), None);
    assert_eq!(file_at(&repo, &rename.id, &srv).as_deref(), Some(&b"port 8080\n"[..]));
    assert!(rename.message.contains("mv app.conf srv.conf"), "{}", rename.message);
    let raw = [c.track.as_os_str().as_bytes(), b"/caf\xe9.conf"].concat();
    let head = tree(&repo, "HEAD");
    let run = in_tree(c.path("run.sh").as_os_str().as_bytes());
    assert_eq!(head, [in_tree(&raw), run.clone(), srv], "HEAD's tree");
    let mode = git(&repo, &["ls-tree", "HEAD", std::str::from_utf8(&run).unwrap()]);
    assert!(mode.starts_with(b"100755 "), "chmod 755 makes it executable: {}", String::from_utf8_lossy(&mode));
    let subject = |l: &&Commit| l.message.lines().next().unwrap().ends_with(r#"/caf\351.conf""#);
    let raw_commit = log.iter().find(subject).expect("a subject with the non-UTF-8 name, C-quoted");
    assert_eq!(file_at(&repo, &raw_commit.id, &in_tree(&raw)).as_deref(), Some(&b"raw name\n"[..]));
}

#[test]
fn a_second_export_adds_only_what_was_stored_since() {
    let c = Collector::start();
    c.sh("echo 1 > a.conf; echo 2 > b.conf");
    c.wait_versions(2);
    let repo = c.dir.path().join("export");
    assert!(exported(&c, &repo, &[]).contains("2 commits"));
    let first = git_text(&repo, &["rev-parse", "HEAD"]);
    // Nothing new: nothing written.
    let again = exported(&c, &repo, &[]);
    assert!(again.contains("nothing new"), "{again}");
    assert_eq!(git_text(&repo, &["rev-parse", "HEAD"]), first);

    c.sh("echo 3 >> a.conf; rm b.conf");
    let versions = c.wait_versions(4);
    assert!(exported(&c, &repo, &[]).contains("2 commits on branch filetrail, through version 4"));
    let second = git_text(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["merge-base", "--is-ancestor", &first, &second]);
    assert_eq!(git_text(&repo, &["rev-list", "--count", &format!("{first}..{second}")]), "2");
    let added: Vec<i64> = commits(&repo).iter().skip(2).map(Commit::version).collect();
    let want: Vec<i64> = versions.iter().skip(2).map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(added, want);
    let a = in_tree(c.path("a.conf").as_os_str().as_bytes());
    let b = in_tree(c.path("b.conf").as_os_str().as_bytes());
    assert_eq!(file_at(&repo, "HEAD", &a).as_deref(), Some(&b"1\n3\n"[..]));
    assert_eq!(file_at(&repo, "HEAD", &b), None);
    assert_eq!(file_at(&repo, &first, &b).as_deref(), Some(&b"2\n"[..]));
    // The same files as one export of everything.
    let once = c.dir.path().join("once");
    exported(&c, &once, &[]);
    assert_eq!(git_text(&repo, &["rev-parse", "HEAD^{tree}"]), git_text(&once, &["rev-parse", "HEAD^{tree}"]));
    let fsck = git_cmd(&repo, &[OsStr::new("fsck"), OsStr::new("--strict")]);
    assert!(fsck.status.success(), "git fsck: {}", String::from_utf8_lossy(&fsck.stderr));
}

/// One commit per real change, as `collector log` shows them: a temp file
/// filled by several processes and renamed over its target (add-shell's
/// shape) is one commit of the target that says `Via:`, and no tree ever
/// holds the temp file; a temp file that may still be renamed holds back
/// what was stored after it, and the run says so.
#[test]
fn a_temp_file_renamed_over_its_target_is_one_commit_and_a_young_one_waits() {
    let c = Collector::start();
    c.sh("printf 'one\\n' > shells");
    c.wait_versions(1);
    for step in ["cp shells shells.tmp", "echo two >> shells.tmp", "mv shells.tmp shells"] {
        c.sh(step);
    }
    let shown = c.wait_for("shells", |v| v.len() == 2 && v[1]["via"].is_string());
    let repo = c.dir.path().join("export");
    let out = exported(&c, &repo, &[]);
    assert!(out.contains("2 commits"), "{out}");
    assert!(!out.contains("wait"), "{out}");
    let log = commits(&repo);
    let ids: Vec<i64> = log.iter().map(Commit::version).collect();
    let want: Vec<i64> = shown.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, want);
    let temp = c.path("shells.tmp").display().to_string();
    assert!(log[1].message.contains(&format!("Via:     {temp}")), "{}", log[1].message);
    let shells = in_tree(c.path("shells").as_os_str().as_bytes());
    assert_eq!(file_at(&repo, "HEAD", &shells).as_deref(), Some(&b"one\ntwo\n"[..]));
    for commit in &log {
        assert!(tree(&repo, &commit.id).iter().all(|p| !p.ends_with(b"shells.tmp")), "{:?}", tree(&repo, &commit.id));
    }
    // A temp file left in place may still be renamed over its target: what
    // was stored after it waits for a later run.
    c.sh("echo draft > other.tmp");
    c.sh("echo later > later.conf");
    c.wait_for("later.conf", |v| v.len() == 1);
    let out = exported(&c, &repo, &[]);
    assert!(out.contains("nothing new") && out.contains("wait for a later run"), "{out}");
    assert_eq!(commits(&repo).len(), 2);
}

/// A file that existed before its first recorded change enters the history
/// as it was then (a `baseline` commit), so that the change's commit shows
/// only what the change did; a file a version created gets none.
#[test]
fn a_file_that_existed_before_its_first_change_enters_as_it_was() {
    let c = Collector::start();
    std::fs::write(c.path("hosts"), "127.0.0.1 localhost\n").unwrap();
    c.sh("echo '10.0.0.1 db' >> hosts; echo new > new.conf");
    c.wait_versions(2);
    let repo = c.dir.path().join("export");
    let out = exported(&c, &repo, &[]);
    assert!(out.contains("3 commits"), "{out}");
    let log = git_text(&repo, &["log", "--reverse", "--format=%an|%s"]);
    let hosts = c.path("hosts").display().to_string();
    let lines: Vec<&str> = log.lines().collect();
    let baseline = lines.iter().position(|l| *l == format!("filetrail|baseline {hosts}")).expect(&log);
    assert!(lines[baseline + 1].ends_with(&format!("write {hosts}")), "{log}");
    assert_eq!(lines.iter().filter(|l| l.contains("baseline")).count(), 1, "none for the created file: {log}");
    let in_hosts = in_tree(hosts.as_bytes());
    let rev = format!("HEAD~{}", lines.len() - 1 - baseline);
    assert_eq!(file_at(&repo, &rev, &in_hosts).as_deref(), Some(&b"127.0.0.1 localhost\n"[..]));
    let message = git_text(&repo, &["log", "-1", "--format=%B", &rev]);
    assert!(message.contains("Filetrail-Baseline-Of: "), "{message}");
    let change = format!("HEAD~{}", lines.len() - 2 - baseline);
    let diff = git_text(&repo, &["show", "--format=", "--numstat", &change]);
    assert_eq!(diff, format!("1\t0\t{}", String::from_utf8(in_hosts).unwrap()), "the change adds one line");
}

#[test]
fn export_refuses_a_directory_others_could_read_and_a_branch_it_did_not_write() {
    let c = Collector::start();
    c.sh("echo 1 > a.conf");
    c.wait_versions(1);
    let refused = |dir: &Path, why: &str| {
        let out = export(&c, dir, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(why), "{err}");
    };
    // Readable by others: the history would show them every file's content.
    let open = c.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    refused(&open, "chmod 700");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0, "nothing written");
    // A branch someone else's commit ends.
    let theirs = c.dir.path().join("theirs");
    git(c.dir.path(), &["init", "--quiet", "--bare", theirs.to_str().unwrap()]);
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let empty = git_text(&theirs, &["hash-object", "-t", "tree", "-w", "/dev/null"]);
    let commit = git_text(&theirs, &["commit-tree", &empty, "-m", "mine"]);
    git(&theirs, &["update-ref", "refs/heads/filetrail", &commit]);
    refused(&theirs, "did not write");
    assert_eq!(git_text(&theirs, &["rev-parse", "refs/heads/filetrail"]), commit);
    // Someone else's directory: the export would write there as root.
    if let Some((uid, gid)) = filetrail_e2e::mallory() {
        let foreign = c.dir.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&foreign, Some(uid), Some(gid)).unwrap();
        refused(&foreign, "belongs to uid");
    }
}

#[test]
fn completions_and_man_pages_come_from_the_cli() {
    let out = Command::new(collector_bin()).args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && script.contains("complete -F _collector") && script.contains("export-git"));
    let check = Command::new("bash").arg("-n").arg("-c").arg(&script).status().unwrap();
    assert!(check.success(), "bash -n of the completion script");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(collector_bin()).arg("man").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["collector.1", "collector-query.1", "collector-log.1", "collector-export-git.1", "collector-restore.1"]
    {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is a man page");
    }
    let export = std::fs::read_to_string(dir.path().join("collector-export-git.1")).unwrap();
    assert!(export.contains("Filetrail\\-Version") || export.contains("Filetrail-Version"), "{export}");
}
