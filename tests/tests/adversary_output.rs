//! Issue 9, item 9: a user names files, and runs programs with arguments,
//! made of terminal escapes; the admin reviewing them must see them quoted,
//! never have them rewrite the screen, and never confuse a raw byte with
//! its escaped spelling.

use std::process::{Command, Output};

use filetrail_e2e::{Collector, collector_bin};

/// The review CLI in a UTF-8 locale.
fn cli(c: &Collector, args: &[&str]) -> Output {
    ascii_cli(c, args, &[("LANG", "C.UTF-8")])
}

/// The review CLI with only `env`'s locale variables (none: POSIX).
fn ascii_cli(c: &Collector, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(collector_bin());
    cmd.args(args).arg("--db").arg(&c.db).env_remove("LC_ALL").env_remove("LC_CTYPE").env_remove("LANG");
    cmd.envs(env.iter().copied()).output().unwrap()
}

/// Panics if `out` holds a byte a terminal would act on: C0 controls other
/// than newline and tab, DEL, or a C1 control (U+0080..U+009F in UTF-8).
fn assert_inert(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    for (i, &b) in out.iter().enumerate() {
        let c1 = b == 0xc2 && out.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n));
        assert!(
            !((b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || c1),
            "{what}: byte {b:#04x} at {i} reaches the terminal:\n{text}"
        );
    }
}

fn stdout_of(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    assert_inert(what, &out.stdout);
    assert_inert(what, &out.stderr);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn review_output_quotes_every_control_byte_a_user_chose() {
    let c = Collector::start();
    // Moves the cursor up, erases the line, returns, then a newline; and
    // DEL and a C1 CSI for good measure.
    let name = "\x1b[1A\x1b[2K\r\nroot changed nothing\x7f\u{9b}2J";
    c.sh(&format!(
        "printf 'a\\033[2Jb\\r\\n' > src; cp src '{name}'; echo '\x1b]0;owned\x07' >> '{name}'; \
         printf raw > \"$(printf 'caf\\351')\"; printf typed > 'caf\\351'"
    ));
    let v = c.wait_versions(5);
    let json = stdout_of("query --json", cli(&c, &["query", "--json"]));
    assert_eq!(json.lines().count(), v.len());

    let table = stdout_of("query", cli(&c, &["query"]));
    let quoted = format!("\"{}/\\033[1A\\033[2K\\r\\nroot changed nothing\\177\\302\\2332J\"", c.track.display());
    assert!(table.contains(&quoted), "{table}");
    // A raw 0xe9 and a typed backslash: two spellings, never the same.
    assert!(table.contains("/caf\\351\""), "{table}");
    assert!(table.contains("/caf\\\\351\""), "{table}");

    let track = c.track.to_str().unwrap();
    let log = stdout_of("log", cli(&c, &["log", track]));
    assert!(log.contains(&quoted), "{log}");
    assert!(log.contains("+a␛[2Jb␍"), "content lines show their controls: {log}");
    // A POSIX locale gets them as `cat -v` shows them, in ASCII.
    let ascii = stdout_of("log", ascii_cli(&c, &["log", track], &[]));
    assert!(ascii.contains("+a^[[2Jb^M"), "{ascii}");
    assert!(log.contains("Program: /usr/bin/cp"), "{log}");
    for id in v.iter().map(|v| v["id"].to_string()) {
        // Exit 1: the contents differ (like diff(1)).
        let out = cli(&c, &["diff", &id]);
        assert_eq!(out.status.code(), Some(1), "diff {id}: {}", String::from_utf8_lossy(&out.stderr));
        assert_inert("diff", &out.stdout);
        assert_inert("diff", &out.stderr);
    }
    stdout_of("users", cli(&c, &["users"]));
    let user = stdout_of("user", cli(&c, &["user", v[0]["user"].as_str().unwrap()]));
    assert!(user.contains(&quoted), "{user}");

    // An error about a name the admin pasted from elsewhere.
    let err = cli(&c, &["user", "\x1b[2Jnobody"]);
    assert!(!err.status.success());
    assert_inert("user error", &err.stderr);
}
