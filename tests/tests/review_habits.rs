//! Issue 12, "what admins expect": the habits admins bring from git,
//! journalctl and ls — `diff --current`, `log --follow`, path globs,
//! tables that fit the terminal with human sizes, `restore PATH --at TIME`
//! and `--dry-run`, and a login session as a unit (`log --session ID|self`).

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

use filetrail_e2e::{Collector, as_user, collector_bin, mallory, raw_path};
use serde_json::Value;

/// `collector ARGS --db <c's store>` (restore finds c's collector itself).
fn cli(c: &Collector, args: &[&str]) -> Output {
    Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).current_dir(&c.track).output().unwrap()
}

fn stdout(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed: {}", stderr(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(c: &Collector, name: &str) -> String {
    c.path(name).to_str().unwrap().to_owned()
}

/// The version ids `collector log ARGS` shows, in its order.
fn log_ids(c: &Collector, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["log"];
    all.extend_from_slice(args);
    let text = stdout(&format!("log {args:?}"), &cli(c, &all));
    text.lines()
        .filter_map(|l| l.strip_prefix("version "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// The `path`s (exact bytes) of the versions `query --json ARGS` lists.
fn query_paths(c: &Collector, args: &[&str]) -> Vec<Vec<u8>> {
    let mut all = vec!["query", "--json"];
    all.extend_from_slice(args);
    let text = stdout(&format!("query {args:?}"), &cli(c, &all));
    let mut paths: Vec<Vec<u8>> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).map(|v| raw_path(&v)).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The id of the only version of `name` with `action`.
fn id_of(c: &Collector, name: &str, action: &str) -> String {
    let p = path(c, name);
    let all = c.versions();
    let found: Vec<&Value> = all.iter().filter(|v| v["path"] == p.as_str() && v["action"] == action).collect();
    assert_eq!(found.len(), 1, "{action} of {name} in {all:?}");
    found[0]["id"].to_string()
}

/// A version's time as `@SECONDS.MICROS` (what `--at` reads exactly).
fn at(v: &Value) -> String {
    let out = Command::new("date").args(["-u", "+@%s.%6N", "-d"]).arg(v["time"].as_str().unwrap()).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `collector ARGS` on a terminal `cols` wide; what it received (it must succeed).
fn on_terminal(c: &Collector, cols: u16, args: &[&str]) -> String {
    let (text, code) = filetrail_e2e::on_terminal(c, cols, args, &[]);
    assert_eq!(code, 0, "{args:?} on a terminal: {text}");
    text.replace("\r\n", "\n")
}

#[test]
fn diff_current_compares_a_version_with_the_file_on_disk_now() {
    let c = Collector::start();
    c.sh("echo one > app.conf; echo two > app.conf");
    c.wait_versions(2);
    let write = id_of(&c, "app.conf", "write");
    // Someone changed it since, outside any tracked session.
    std::fs::write(c.path("app.conf"), "three\n").unwrap();
    let out = cli(&c, &["diff", &write, "--current"]);
    assert_eq!(out.status.code(), Some(1), "contents differ: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(on disk now)") && text.contains("\n-two\n+three\n"), "{text}");
    // Back as the version left it: equal, no diff, exit 0.
    std::fs::write(c.path("app.conf"), "two\n").unwrap();
    let out = cli(&c, &["diff", &write, "--current"]);
    assert_eq!((out.status.code(), out.stdout.is_empty()), (Some(0), true), "{}", stderr(&out));
    // Deleted since: the whole content goes.
    std::fs::remove_file(c.path("app.conf")).unwrap();
    let text = String::from_utf8(cli(&c, &["diff", &write, "--current"]).stdout).unwrap();
    assert!(text.contains("+++ /dev/null") && text.contains("-two"), "{text}");
    // --current is against the file, not a second version.
    assert_eq!(cli(&c, &["diff", &write, "1", "--current"]).status.code(), Some(2));
}

#[test]
fn diff_current_never_follows_a_symlink_swapped_in() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    // A directory anyone may create files in, like /tmp.
    let public = c.path("pub");
    std::fs::create_dir(&public).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let secret_dir = c.dir.path().join("secret");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("notes"), "root's secret\n").unwrap();
    std::fs::set_permissions(secret_dir.join("notes"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // Mallory's own files: pub/sub/notes and pub/notes, recorded.
    as_user(mallory, &public, "mkdir sub && echo mine > sub/notes && echo mine > notes");
    let script = ["sub/notes", "notes"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "send({{'kind':'begin','token':{t},'path':'{p}','flags':65,'before':{{'state':'absent'}}}})\n\
                 send({{'kind':'close','token':{t},'after':{{'state':'stored','len':5,'size':5}}}}, b'mine\\n')\n",
                t = i + 1,
                p = public.join(name).display()
            )
        })
        .collect::<String>();
    c.raw_client(&script, Some(mallory));
    let versions = c.wait_versions(2);
    // Then she swaps in symlinks: a directory of the path, and the file itself.
    as_user(
        mallory,
        &public,
        &format!("mv sub sub.old && ln -s {0} sub && rm notes && ln -s {0}/notes notes", secret_dir.display()),
    );
    for v in &versions {
        // The admin, as root, compares with the file now.
        let out = cli(&c, &["diff", &v["id"].to_string(), "--current"]);
        assert_eq!(out.status.code(), Some(2), "{}: {}", v["path"], stderr(&out));
        assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!all.contains("secret"), "root's file shown through mallory's symlink: {all}");
    }
}

#[test]
fn log_follow_follows_a_file_across_renames() {
    let c = Collector::start();
    c.sh("echo one > a.conf; echo two > a.conf");
    c.wait_versions(2);
    c.sh("mv a.conf b.conf");
    c.wait_versions(3);
    // A save through a temp file (sed -i) is a write of b.conf, not a rename from elsewhere.
    c.sh("sed -i s/two/three/ b.conf");
    let all = c.wait_versions(4);
    let ids: Vec<i64> = all.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    let rename = all.iter().find(|v| v["action"] == "rename").expect("a rename version");
    assert_eq!(rename["old_path"], path(&c, "a.conf").as_str(), "{rename}");
    let b = path(&c, "b.conf");
    // Without --follow: b.conf's own history starts at the rename.
    let own = log_ids(&c, &[&b]);
    assert_eq!(own.len(), 2, "{own:?}");
    // With it: a.conf's history before the rename too, newest first.
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(log_ids(&c, &[&b, "--follow"]), newest_first);
    assert_eq!(log_ids(&c, &[&b, "--follow", "-n", "3"]), newest_first[..3]);
    assert_eq!(log_ids(&c, &[&b, "--follow", "--reverse"]), ids);
    let text = stdout("log --follow", &cli(&c, &["log", &b, "--follow"]));
    assert!(text.contains(&format!("From:    {}", path(&c, "a.conf"))) && text.contains("+one"), "{text}");
    // One file only.
    let out = cli(&c, &["log", c.track.to_str().unwrap(), "--follow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--follow takes one file"), "{}", stderr(&out));
}

#[test]
fn path_globs_match_recorded_paths_as_bytes_and_literal_paths_still_work() {
    let c = Collector::start();
    c.sh(concat!(
        "mkdir -p nginx/conf.d/deep; echo a > nginx/nginx.conf; echo b > nginx/conf.d/site.conf; ",
        "echo c > nginx/conf.d/deep/x.conf; echo d > nginx/conf.d/notes.txt; echo e > top.conf; ",
        r#"echo f > "$(printf 'nginx/caf\351.conf')"; echo g > 'lit[1].conf'; echo h > lit1.conf"#
    ));
    c.wait_versions(8);
    // Deleted files still match: the store is what is searched, not the disk.
    c.sh("rm nginx/conf.d/site.conf");
    c.wait_versions(9);
    let under = |names: &[&[u8]]| -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = names.iter().map(|n| [c.track.as_os_str().as_bytes(), b"/", n].concat()).collect();
        v.sort();
        v
    };
    let all_conf =
        under(&[b"nginx/nginx.conf", b"nginx/conf.d/site.conf", b"nginx/conf.d/deep/x.conf", b"nginx/caf\xe9.conf"]);
    let glob = format!("{}/nginx/**/*.conf", c.track.display());
    assert_eq!(query_paths(&c, &[&glob]), all_conf);
    // Relative to the current directory, like any path argument.
    assert_eq!(query_paths(&c, &["nginx/**/*.conf"]), all_conf);
    // `*` stays within a directory.
    assert_eq!(
        query_paths(&c, &[&format!("{}/*.conf", c.track.display())]),
        under(&[b"lit1.conf", b"top.conf", b"lit[1].conf"])
    );
    assert_eq!(query_paths(&c, &["nginx/*/*.conf"]), under(&[b"nginx/conf.d/site.conf"]));
    // A literal path that exists is itself, even with glob characters in its name.
    assert_eq!(query_paths(&c, &["lit[1].conf"]), under(&[b"lit[1].conf"]));
    assert_eq!(query_paths(&c, &["nginx/conf.d"]).len(), 3, "a directory is still everything under it");
    // log takes globs too.
    assert_eq!(log_ids(&c, &["nginx/conf.d/**"]).len(), 4);
    // A glob nothing recorded matches is refused, like a missing file.
    let out = cli(&c, &["query", "nginx/**/*.cnf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no recorded path matches"), "{}", stderr(&out));
}

#[test]
fn tables_fit_the_terminal_width_and_show_sizes_as_people_read_them() {
    let c = Collector::start();
    let deep = "a-rather-long-directory-name/another-fairly-long-directory/and-one-more-level";
    c.sh(&format!("mkdir -p {deep}; head -c 4096 /dev/zero | tr '\\0' x > {deep}/settings.conf"));
    c.sh("head -c 1258291 /dev/zero | tr '\\0' y > big.dat");
    c.wait_versions(2);
    let full = path(&c, &format!("{deep}/settings.conf"));
    for cols in [80u16, 100] {
        let text = on_terminal(&c, cols, &["query"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "one line per row, never wrapped: {text}");
        for line in &lines {
            assert!(line.chars().count() <= cols as usize, "{cols} columns: {line:?}");
        }
        let row = lines.iter().find(|l| l.contains("settings.conf")).expect("the long path's row");
        assert!(row.ends_with("/settings.conf") && row.contains('…') && !row.contains(&full), "{row}");
        assert!(row.contains(" 4.0K "), "{row}");
        assert!(lines.iter().any(|l| l.contains(" 1.2M ")), "{text}");
    }
    // Piped: full width, nothing cut.
    let piped = stdout("query", &cli(&c, &["query"]));
    assert!(piped.contains(&full) && !piped.contains('…'), "{piped}");
    // COLUMNS, when set, is the width.
    let narrow = Command::new("python3")
        .args(["-c", "import pty, sys; pty.spawn(sys.argv[1:])"])
        .arg(collector_bin())
        .args(["query", "--no-pager", "--db"])
        .arg(&c.db)
        .env("COLUMNS", "90")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let text = String::from_utf8(narrow.stdout).unwrap().replace("\r\n", "\n");
    assert!(text.lines().all(|l| l.chars().count() <= 90) && text.contains('…'), "{text}");
    // A POSIX locale: cut text marked in ASCII (LC_ALL: python, which
    // runs the terminal, would turn a bare LANG=C into C.UTF-8, PEP 538).
    let (text, _) = filetrail_e2e::on_terminal(&c, 80, &["query"], &[("LC_ALL", "C")]);
    assert!(text.is_ascii() && text.contains("...") && text.contains("/settings.conf"), "{text}");
}

#[test]
fn restore_at_a_time_puts_back_the_version_current_then_and_dry_run_changes_nothing() {
    let c = Collector::start();
    c.sh("echo v1 > app.conf");
    let first = c.wait_versions(1).remove(0);
    c.sh("echo v2 > app.conf");
    c.wait_versions(2);
    let app = path(&c, "app.conf");
    let when = at(&first);
    // --dry-run: the diff it would apply, and nothing else.
    let out = stdout("dry run", &cli(&c, &["restore", &app, "--at", &when, "--dry-run"]));
    assert!(out.contains("would restore version 1") && out.contains("\n-v2\n+v1\n"), "{out}");
    assert_eq!(std::fs::read(c.path("app.conf")).unwrap(), b"v2\n");
    // The real one: the version current at that time, recorded as a new version.
    let out = stdout("restore --at", &cli(&c, &["restore", &app, "--at", &when]));
    assert!(out.contains("version 1 (") && out.contains("restored version 1"), "{out}");
    assert_eq!(std::fs::read(c.path("app.conf")).unwrap(), b"v1\n");
    let v = c.wait_versions(3);
    assert_eq!(v[2]["after"], v[0]["after"], "{v:?}");
    assert_eq!(c.versions().len(), 3, "the dry run recorded nothing");
    // Before the first version, which created it, the file did not exist.
    let out = cli(&c, &["restore", &app, "--at", "@1000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not exist") && stderr(&out).contains("created it"), "{}", stderr(&out));
    // After a delete the file did not exist: say so (and how to undo the delete).
    c.sh("rm app.conf");
    c.wait_versions(4);
    let out = cli(&c, &["restore", &app, "--at", "now"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did not exist") && stderr(&out).contains("deleted it"), "{}", stderr(&out));
    assert!(!c.path("app.conf").exists());
    // Without --at the argument is a version id.
    let out = cli(&c, &["restore", &app]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a version id"), "{}", stderr(&out));
}

/// A file that existed before its first recorded change: `--at` a time
/// before that change puts back what the change found (and `--before` does
/// for any version); a time copied from the output, to the second, names
/// the version shown with it even when a later part of that second holds
/// it.
#[test]
fn restore_goes_back_before_the_first_recorded_change_and_takes_times_as_shown() {
    let c = Collector::start();
    std::fs::write(c.path("hosts"), "127.0.0.1 localhost\n").unwrap();
    c.sh("echo '10.0.0.1 db' >> hosts");
    let first = c.wait_versions(1).remove(0);
    let hosts = path(&c, "hosts");
    let out = stdout("restore --at before", &cli(&c, &["restore", &hosts, "--at", "@1000000000", "--dry-run"]));
    assert!(out.contains("what version 1") && out.contains("\n-10.0.0.1 db\n"), "{out}");
    let out = stdout("restore --before", &cli(&c, &["restore", "1", "--before"]));
    assert!(out.contains("restored what the file held before version 1"), "{out}");
    assert_eq!(std::fs::read(c.path("hosts")).unwrap(), b"127.0.0.1 localhost\n");
    c.wait_versions(2);
    // Two changes within one second, copied as the output shows the second one.
    let shown = |v: &Value| {
        let out =
            Command::new("date").args(["-u", "+%Y-%m-%d %H:%M:%S", "-d"]).arg(v["time"].as_str().unwrap()).output();
        String::from_utf8(out.unwrap().stdout).unwrap().trim().to_owned()
    };
    let (a, b) = loop {
        c.sh("echo a > two.conf; echo b > two.conf");
        let v = c.wait_for("two.conf", |v| v.len() >= 2);
        let (a, b) = (v[v.len() - 2].clone(), v[v.len() - 1].clone());
        if shown(&a) == shown(&b) {
            break (a, b);
        }
    };
    let two = path(&c, "two.conf");
    let out = stdout("restore --at as shown", &cli(&c, &["restore", &two, "--at", &shown(&b), "--dry-run", "--utc"]));
    assert!(out.contains(&format!("version {} (", b["id"])), "{out}\n(a: {a}, b: {b})");
    let _ = first;
}

#[test]
fn log_session_shows_every_change_of_one_login_with_diffs() {
    let c = Collector::start();
    // Two logins: each shell writing its loginuid gets a new audit session.
    c.sh("echo 0 > /proc/self/loginuid; echo a > s1.conf; echo b > s2.conf");
    c.sh("echo 0 > /proc/self/loginuid; echo c > other.conf");
    let v = c.wait_versions(3);
    let session = |name: &str| {
        let p = path(&c, name);
        v.iter().find(|v| v["path"] == p.as_str()).unwrap()["session"].as_str().unwrap().to_owned()
    };
    let (mine, theirs) = (session("s1.conf"), session("other.conf"));
    assert_eq!(mine, session("s2.conf"));
    assert_ne!(mine, theirs);
    let text = stdout("log --session", &cli(&c, &["log", "--session", &mine]));
    assert!(text.starts_with(&format!("Session {mine}: root")), "{text}");
    assert!(text.contains("Changes: 2 to 2 files"), "{text}");
    assert!(text.contains("+a") && text.contains("+b") && !text.contains("other.conf"), "{text}");
    // `self`: the session this command runs in (polled until its own change is committed).
    let out = c
        .command("sh")
        .arg("-c")
        .arg(concat!(
            r#"echo 0 > /proc/self/loginuid; echo x > mine.conf; i=0; while [ $i -lt 250 ]; do "#,
            r#"out=$("$0" log --session self --db "$1"); case "$out" in *mine.conf*) printf '%s' "$out"; exit 0;; esac; "#,
            r#"sleep 0.02; i=$((i+1)); done; exit 1"#
        ))
        .arg(collector_bin())
        .arg(&c.db)
        .output()
        .unwrap();
    let text = stdout("log --session self", &out);
    assert!(text.contains("+x") && !text.contains("s1.conf") && !text.contains("other.conf"), "{text}");
    let again = Command::new("sh")
        .arg("-c")
        .arg(r#"echo 0 > /proc/self/loginuid; "$0" log --session self --db "$1""#)
        .arg(collector_bin())
        .arg(&c.db)
        .output()
        .unwrap();
    assert_eq!(stdout("a new session", &again), "", "a new login has no changes yet");
    let out = cli(&c, &["log", "--session", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a session id"), "{}", stderr(&out));
}
