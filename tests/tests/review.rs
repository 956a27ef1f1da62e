//! Issue 12: answers of the review CLI an admin can trust — times read
//! exactly in one zone, paths as bytes from the library to restore,
//! content checked against its hash, restore recorded by the collector of
//! its own store, clear errors and exit codes, stable JSON types.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use filetrail_e2e::{Collector, collector_bin};
use serde_json::Value;

/// `collector ARGS --db <c's store>`, without a socket (restore finds its collector).
fn cli(c: &Collector, args: &[&str]) -> Output {
    cli_env(c, args, &[])
}

fn cli_env(c: &Collector, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(collector_bin());
    cmd.args(args).arg("--db").arg(&c.db).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stdout(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `collector ARGS` on a terminal wide enough for any row.
fn on_terminal(c: &Collector, args: &[&str], env: &[(&str, &str)]) -> (String, i32) {
    filetrail_e2e::on_terminal(c, 400, args, env)
}

/// The time of a version in seconds since the epoch, and its microseconds.
fn epoch(v: &Value) -> (i64, i64) {
    let out = Command::new("date").args(["-u", "+%s %N", "-d"]).arg(v["time"].as_str().unwrap()).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (s, ns) = text.trim().split_once(' ').unwrap();
    (s.parse().unwrap(), ns.parse::<i64>().unwrap() / 1000)
}

/// `seconds` as `YYYY-MM-DD HH:MM:SS` in zone `tz`.
fn civil(seconds: i64, tz: &str) -> String {
    let out = Command::new("date").env("TZ", tz).args(["+%Y-%m-%d %H:%M:%S", "-d"]).arg(format!("@{seconds}")).output();
    String::from_utf8(out.unwrap().stdout).unwrap().trim().to_owned()
}

/// The id of the version of `name` (in c's tracked directory) with `action`.
fn id_of(c: &Collector, name: &str, action: &str) -> String {
    let path = c.path(name).display().to_string();
    let all = c.versions();
    let v = all.iter().find(|v| v["path"] == path.as_str() && v["action"] == action);
    v.unwrap_or_else(|| panic!("no {action} of {name} in {all:?}"))["id"].to_string()
}

fn ids(c: &Collector, args: &[&str], env: &[(&str, &str)]) -> Vec<i64> {
    let mut all = vec!["query", "--json"];
    all.extend_from_slice(args);
    let out = cli_env(c, &all, env);
    json_lines(&stdout(&format!("query {args:?}"), &out)).iter().map(|v| v["id"].as_i64().unwrap()).collect()
}

#[test]
fn times_are_read_exactly_and_shown_in_one_zone() {
    let c = Collector::start();
    c.sh("echo one > a.conf");
    let v = c.wait_versions(1).remove(0);
    let (secs, _) = epoch(&v);
    let utc = [("TZ", "UTC")];
    let tokyo = [("TZ", "Asia/Tokyo")];
    // A date and time is that second, not its day's midnight.
    let at = civil(secs, "UTC");
    let after = civil(secs + 1, "UTC");
    assert_eq!(ids(&c, &["--since", &at], &utc), [1], "--since {at}");
    assert_eq!(ids(&c, &["--since", &after], &utc), Vec::<i64>::new(), "--since {after}");
    assert_eq!(ids(&c, &["--until", &after], &utc), [1], "--until {after}");
    assert_eq!(ids(&c, &["--until", &at], &utc), Vec::<i64>::new(), "--until {at}");
    // Local time (TZ) unless --utc, for input and output alike.
    let tokyo_after = civil(secs + 1, "Asia/Tokyo");
    assert_eq!(ids(&c, &["--since", &tokyo_after], &tokyo), Vec::<i64>::new(), "Tokyo --since {tokyo_after}");
    assert_eq!(ids(&c, &["--until", &tokyo_after], &tokyo), [1]);
    assert_eq!(ids(&c, &["--utc", "--until", &after], &tokyo), [1], "--utc --until {after}");
    let table = stdout("query", &cli_env(&c, &["query"], &tokyo));
    assert!(table.contains("TIME (Asia/Tokyo)") && table.contains(&civil(secs, "Asia/Tokyo")), "{table}");
    let table = stdout("query --utc", &cli_env(&c, &["query", "--utc"], &tokyo));
    assert!(table.contains("TIME (UTC)") && table.contains(&at), "{table}");
    let log = stdout("log", &cli_env(&c, &["log", c.path("a.conf").to_str().unwrap()], &tokyo));
    assert!(log.contains(&format!("Date:    {} (Asia/Tokyo)", civil(secs, "Asia/Tokyo"))), "{log}");
    let users = stdout("users", &cli_env(&c, &["users"], &tokyo));
    assert!(users.contains(&civil(secs, "Asia/Tokyo")), "{users}");
    // journalctl's forms: -1h is an hour ago, @EPOCH, a day's name and a time.
    assert_eq!(ids(&c, &["--since", "-1h"], &[]), [1]);
    assert_eq!(ids(&c, &["--until", "-1h"], &[]), Vec::<i64>::new());
    assert_eq!(ids(&c, &["--since", &format!("@{secs}")], &[]), [1]);
    assert_eq!(ids(&c, &["--since", &format!("@{}", secs + 1)], &[]), Vec::<i64>::new());
    assert_eq!(ids(&c, &["--since", "yesterday 00:00"], &[]), [1]);
    // Anything else is refused, with the forms it takes.
    for bad in ["2026-11-30 03:45:00 junk", "2026-11-30 25:00", "last tuesdayish"] {
        let out = cli(&c, &["query", "--since", bad]);
        assert_eq!(out.status.code(), Some(1), "--since {bad}");
        assert!(stderr(&out).contains("cannot read") && stderr(&out).contains("--since"), "{}", stderr(&out));
    }
}

#[test]
fn paths_are_bytes_from_the_library_to_restore() {
    let c = Collector::start();
    // A raw byte 0xe9, and a name that spells it out with a backslash.
    c.sh(r#"printf raw1 > "$(printf 'caf\351.conf')"; printf typed1 > 'caf\xe9.conf'"#);
    c.wait_versions(2);
    c.sh(r#"printf raw2 > "$(printf 'caf\351.conf')"; printf typed2 > 'caf\xe9.conf'"#);
    let all = c.wait_versions(4);
    let raw_path = [c.track.as_os_str().as_bytes(), b"/caf\xe9.conf"].concat();
    let typed_path = [c.track.as_os_str().as_bytes(), b"/caf\\xe9.conf"].concat();
    let b64 = |bytes: &[u8]| {
        let out = Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        out.stdin.as_ref().unwrap().write_all(bytes).unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    // JSON: `path` is a string in both; only the raw one has `path_b64`, exact.
    let raw: Vec<&Value> = all.iter().filter(|v| v.get("path_b64").is_some()).collect();
    let typed: Vec<&Value> = all.iter().filter(|v| v.get("path_b64").is_none()).collect();
    assert_eq!((raw.len(), typed.len()), (2, 2), "{all:?}");
    for v in &raw {
        assert_eq!(v["path_b64"], b64(&raw_path).as_str(), "{v}");
    }
    for v in &typed {
        assert_eq!(v["path"].as_str().unwrap().as_bytes(), &typed_path[..], "{v}");
    }
    // A path argument in bytes finds that file only.
    let out = Command::new(collector_bin())
        .args(["query", "--json", "--db"])
        .arg(&c.db)
        .arg(std::ffi::OsStr::from_bytes(&raw_path))
        .output()
        .unwrap();
    let found = json_lines(&stdout("query raw", &out));
    assert!(found.len() == 2 && found.iter().all(|v| v.get("path_b64").is_some()), "{found:?}");
    // Human output: git's quoting tells them apart.
    let table = stdout("query", &cli(&c, &["query"]));
    assert!(table.contains(r#"/caf\351.conf""#) && table.contains(r#"/caf\\xe9.conf""#), "{table}");
    let user = json_lines(&stdout("user --json", &cli(&c, &["user", "root", "--json"])));
    let files = user[0]["files"].as_array().unwrap();
    assert_eq!(files.iter().filter(|f| f["path_b64"] == b64(&raw_path).as_str()).count(), 1, "{files:?}");
    // Restoring the raw one's first version writes the raw one only.
    let first_raw = raw.iter().map(|v| v["id"].as_i64().unwrap()).min().unwrap().to_string();
    stdout("restore", &cli(&c, &["restore", &first_raw]));
    assert_eq!(std::fs::read(Path::new(std::ffi::OsStr::from_bytes(&raw_path))).unwrap(), b"raw1");
    assert_eq!(std::fs::read(Path::new(std::ffi::OsStr::from_bytes(&typed_path))).unwrap(), b"typed2");
    let after = c.wait_versions(5);
    assert_eq!(after.last().unwrap()["path_b64"], b64(&raw_path).as_str());
}

#[test]
fn show_and_restore_refuse_content_that_does_not_match_its_hash() {
    let c = Collector::start();
    std::fs::write(c.path("app.conf"), "old config\n").unwrap();
    c.sh("echo 'good config' > app.conf");
    c.wait_versions(1);
    assert_eq!(c.show(&Value::from(1), false), b"good config\n");
    // Damage the stored bytes: same size, stored raw, other content.
    let db = rusqlite::Connection::open(&c.db).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE blobs SET codec = 0, base = NULL, depth = 0, data = CAST('evil config\n' AS BLOB)
             WHERE id = (SELECT after_blob FROM versions WHERE id = 1)",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    let show = cli(&c, &["show", "1"]);
    assert_eq!(show.status.code(), Some(1), "show of a damaged content");
    assert!(show.stdout.is_empty(), "show printed {:?}", String::from_utf8_lossy(&show.stdout));
    assert!(stderr(&show).contains("damaged") && stderr(&show).contains("collector verify"), "{}", stderr(&show));
    c.sh("echo 'newer config' > app.conf");
    c.wait_versions(2);
    let restore = cli(&c, &["restore", "1"]);
    assert_eq!(restore.status.code(), Some(1), "restore of a damaged content");
    assert!(stderr(&restore).contains("damaged"), "{}", stderr(&restore));
    assert_eq!(std::fs::read(c.path("app.conf")).unwrap(), b"newer config\n");
    // The before side is intact: that one still shows.
    assert_eq!(c.show(&Value::from(1), true), b"old config\n");
}

#[test]
fn restore_is_recorded_by_the_collector_of_its_store() {
    let a = Collector::start();
    let b = Collector::start();
    a.sh("echo v1 > f; echo v2 > f");
    a.wait_versions(2);
    let first = id_of(&a, "f", "create");
    let restore = |socket: Option<&Path>| {
        let mut cmd = Command::new(collector_bin());
        cmd.args(["restore", &first, "--db"]).arg(&a.db);
        if let Some(s) = socket {
            cmd.arg("--socket").arg(s);
        }
        cmd.output().unwrap()
    };
    // Another collector's socket: refused before anything is written.
    let refused = restore(Some(&b.socket));
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("not the collector serving the store"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(a.path("f")).unwrap(), b"v2\n");
    // No --socket (the default names no collector here): a's collector is found.
    let out = stdout("restore", &restore(None));
    assert!(out.contains("recorded as a new version by the running collector"), "{out}");
    assert_eq!(std::fs::read(a.path("f")).unwrap(), b"v1\n");
    let v = a.wait_versions(3);
    assert_eq!(
        (&v[2]["action"], &v[2]["after"]),
        (&Value::from("write"), &Value::from(filetrail_e2e::sha256(b"v1\n")))
    );
    // Its own socket, named: the same.
    a.sh("echo v3 > f");
    a.wait_versions(4);
    stdout("restore --socket", &restore(Some(&a.socket)));
    a.wait_versions(5);
    assert!(b.versions().is_empty(), "the other collector recorded {:?}", b.versions());
}

#[test]
fn errors_exit_1_with_a_message_and_diff_exits_1_when_contents_differ() {
    let c = Collector::start();
    std::fs::write(c.path("quiet"), "never changed\n").unwrap();
    c.sh("echo a > f; echo b > f; echo b > g");
    c.wait_versions(3);
    let fail = |args: &[&str], says: &str| {
        let out = cli(&c, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    fail(&["query", "--user", "no-such-user"], "no such user");
    fail(&["user", "no-such-user"], "no such user");
    let missing = c.path("no-such-file");
    fail(&["query", missing.to_str().unwrap()], "no such file");
    fail(&["log", missing.to_str().unwrap()], "no such file");
    fail(&["query", "--until", "soonish"], "cannot read");
    // A real user with no changes, a file with none: empty, not an error.
    assert_eq!(stdout("nobody", &cli(&c, &["query", "--user", "nobody"])), "");
    assert_eq!(stdout("log quiet", &cli(&c, &["log", c.path("quiet").to_str().unwrap()])), "");
    // diff: 1 when the contents differ, 0 when equal, 2 on trouble.
    let (create_f, write_f, create_g) = (id_of(&c, "f", "create"), id_of(&c, "f", "write"), id_of(&c, "g", "create"));
    assert_eq!(cli(&c, &["diff", &write_f]).status.code(), Some(1));
    assert_eq!(cli(&c, &["diff", &create_f, &write_f]).status.code(), Some(1));
    assert_eq!(cli(&c, &["diff", &write_f, &create_g]).status.code(), Some(0), "f and g hold the same");
    let trouble = cli(&c, &["diff", "99"]);
    assert_eq!(trouble.status.code(), Some(2));
    assert!(stderr(&trouble).contains("no version with id 99"), "{}", stderr(&trouble));
}

#[test]
fn a_store_the_user_may_not_read_is_said_so_not_called_missing() {
    let Some((uid, gid)) = filetrail_e2e::mallory() else { return };
    let c = Collector::start();
    c.sh("echo a > f");
    c.wait_versions(1);
    let as_user = |db: &Path| {
        Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into()])
            .arg(collector_bin())
            .args(["query", "--db"])
            .arg(db)
            .output()
            .unwrap()
    };
    // The store's directory is root's only (0700), as /var/lib/filetrail is.
    let out = as_user(&c.db);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let says = stderr(&out);
    assert!(says.contains("cannot read the store") && says.contains("try sudo"), "{says}");
    assert!(says.contains("Permission denied") && !says.contains("no store"), "{says}");
    // A store that is not there is still called missing.
    let out = as_user(&c.dir.path().join("..").join("no-such-filetrail-store.db"));
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
}

#[test]
fn a_terminal_is_told_when_nothing_matches_and_gets_colour_only_when_it_wants_it() {
    let c = Collector::start();
    std::fs::write(c.path("quiet"), "never changed\n").unwrap();
    c.sh("echo a > f; echo b > f");
    c.wait_versions(2);
    let write = id_of(&c, "f", "write");
    let (text, code) = on_terminal(&c, &["query", "--since", "+1h"], &[]);
    assert_eq!((text.trim(), code), ("no versions match", 0));
    let (text, code) = on_terminal(&c, &["log", c.path("quiet").to_str().unwrap()], &[]);
    assert!(text.contains("no versions of") && code == 0, "{text:?} {code}");
    let (text, _) = on_terminal(&c, &["diff", &write], &[]);
    assert!(text.contains("\x1b[31m-a"), "colour on a terminal: {text:?}");
    for env in [[("NO_COLOR", "")], [("NO_COLOR", "1")], [("TERM", "dumb")]] {
        let (text, code) = on_terminal(&c, &["diff", &write], &env);
        assert!(!text.contains('\x1b') && text.contains("-a") && code == 1, "{env:?}: {text:?}");
    }
    let (text, _) = on_terminal(&c, &["diff", &write, "--color", "always"], &[("TERM", "dumb")]);
    assert!(text.contains("\x1b[31m-a"), "--color always: {text:?}");
}

#[test]
fn json_fields_keep_their_types_across_subcommands() {
    let c = Collector::start();
    // A new audit session for this shell (as pam_loginuid makes one).
    c.sh("echo 0 > /proc/self/loginuid; echo x > f; chmod 640 f; echo y > f");
    // The write, the chmod (an attrib version), the write.
    let v = c.wait_versions(3);
    let last = &v[2];
    assert!(last["session"].is_string(), "query session: {last}");
    assert_eq!(last["mode"], "0640", "{last}");
    let user = json_lines(&stdout("user --json", &cli(&c, &["user", "root", "--json"])));
    let sessions = user[0]["sessions"].as_array().unwrap();
    assert!(sessions.iter().any(|s| s["session"] == last["session"]), "user sessions {sessions:?} vs {last}");
    assert!(sessions.iter().all(|s| s["session"].is_string() || s["session"].is_null()), "{sessions:?}");
    // Times: one spelling (query's `time`) in every JSON output.
    assert_eq!(user[0]["summary"]["last"], last["time"], "{user:?}");
    assert_eq!(user[0]["files"][0]["last"], last["time"], "{user:?}");
    let users = json_lines(&stdout("users --json", &cli(&c, &["users", "--json"])));
    assert_eq!(users[0]["first"], v[0]["time"]);
    let stats = json_lines(&stdout("stats --json", &cli(&c, &["stats", "--json"])));
    assert_eq!((&stats[0]["oldest"], &stats[0]["newest"]), (&v[0]["time"], &last["time"]));
}

#[test]
fn a_terminal_gets_a_pager_and_query_and_log_take_count_order_and_filters() {
    let c = Collector::start();
    c.sh("echo 1 > f; echo 2 > f; echo 3 > f");
    c.wait_versions(3);
    let all = ids(&c, &[], &[]);
    // -n N: the N most recent, in the command's order; --reverse: the other order.
    assert_eq!(ids(&c, &["-n", "2"], &[]), all[1..]);
    assert_eq!(ids(&c, &["--reverse"], &[]), all.iter().rev().copied().collect::<Vec<_>>());
    assert_eq!(ids(&c, &["-n", "2", "--reverse"], &[]), [all[2], all[1]]);
    let f = c.path("f");
    let f = f.to_str().unwrap();
    let headers = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["log", f];
        all.extend_from_slice(args);
        let log = stdout("log", &cli(&c, &all));
        log.lines()
            .filter(|l| l.starts_with("version "))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = all.iter().rev().map(|i| i.to_string()).collect();
    assert_eq!(headers(&[]), newest_first);
    assert_eq!(headers(&["-n", "1"]), newest_first[..1]);
    assert_eq!(headers(&["--reverse", "-n", "2"]), [newest_first[1].clone(), newest_first[0].clone()]);
    assert_eq!(headers(&["--since", "+1h"]), Vec::<String>::new());
    assert_eq!(headers(&["--user", "root"]).len(), 3);
    assert_eq!(cli(&c, &["log", f, "--user", "no-such-user"]).status.code(), Some(1));
    // The pager: on a terminal only, $PAGER, not with --no-pager; colours
    // are decided by the terminal, not by the pipe to the pager.
    let pager = [("PAGER", "sed 's/^/paged: /'")];
    let (text, code) = on_terminal(&c, &["log", f], &pager);
    assert!(code == 0 && text.lines().all(|l| l.starts_with("paged: ")), "{text:?}");
    assert!(text.contains("\x1b[33mversion"), "{text:?}");
    let (text, code) = on_terminal(&c, &["diff", &all[2].to_string()], &pager);
    assert!(code == 1 && text.contains("paged: \x1b[31m-2"), "{code} {text:?}");
    let (text, _) = on_terminal(&c, &["log", f, "--no-pager"], &pager);
    assert!(!text.contains("paged: ") && text.contains("version"), "{text:?}");
    let (text, _) = on_terminal(&c, &["log", f], &[("PAGER", "sed 's/^/paged: /'"), ("TERM", "dumb")]);
    assert!(!text.contains("paged: ") && text.contains("version"), "{text:?}");
    let piped = stdout("log piped", &cli_env(&c, &["log", f], &pager));
    assert!(!piped.contains("paged: ") && piped.contains("version"), "{piped}");
}
