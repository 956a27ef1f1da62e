//! An ordinary local user (ft-mallory) against the root collector's trust
//! decisions: versions it could not have made, reads made for it, identity
//! that outlives the process that connected (issue 9, items 3, 4 and 6).
//! Every test asserts what an admin cares about: no forged version stored,
//! no root-only byte in the store, and root's own edit still recorded.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, compile_c, mallory, sha256};

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Waits until the collector's log holds `needle` at least `n` times.
fn wait_log(c: &Collector, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.log().matches(needle).count() < n {
        assert!(Instant::now() < deadline, "expected {n}x {needle:?} in the log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Python for the raw client: a forged write of `path` (Begin + Close).
fn forge_write(path: &Path) -> String {
    format!(
        "p = b'forged\\n'\n\
         send({{'kind':'begin','token':1,'path':{path:?},'flags':577,'before':{{'state':'absent'}}}})\n\
         send({{'kind':'close','token':1,'after':{{'state':'stored','len':len(p),'size':len(p)}}}}, p)",
        path = path.display().to_string()
    )
}

/// Root edits `marker` through the library: it must be recorded whatever
/// the attacker did; returns every version stored by then.
fn root_edit_is_recorded(c: &Collector) -> Vec<serde_json::Value> {
    c.sh("echo root was here > marker");
    let marker = c.path("marker").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = c.versions();
        if v.iter().any(|x| x["path"] == marker.as_str()) {
            return v;
        }
        assert!(Instant::now() < deadline, "root's edit was not recorded: {v:?}\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_forged_versions_in_sticky_dirs_unsearchable_dirs_or_outside_the_tracked_tree() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    chmod(&c.track, 0o1777);
    let roots = c.path("root.conf");
    std::fs::write(&roots, "root's\n").unwrap();
    chmod(&roots, 0o644);
    // A world-writable directory under one only root may enter.
    let private = c.path("private");
    std::fs::create_dir_all(private.join("inner")).unwrap();
    chmod(&private, 0o700);
    chmod(&private.join("inner"), 0o777);
    let outside = c.dir.path().join("outside.conf");
    let attempts = [
        roots.clone(),                  // root's file in a sticky directory
        private.join("inner/x.conf"),   // no search permission on a parent
        outside.clone(),                // not tracked at all
        c.track.join("x/../root.conf"), // not canonical
        c.track.join("./root.conf"),    // not canonical
    ];
    for path in &attempts {
        let out = c.raw_client(&forge_write(path), Some(m));
        assert!(out.starts_with("welcome"), "{out}");
    }
    wait_log(&c, "rejected a version", attempts.len());
    let v = root_edit_is_recorded(&c);
    assert_eq!(v.len(), 1, "only root's edit: {v:?}");
    // The same frames from mallory for a file of its own are accepted: the
    // refusals above are about permission, not about the frames.
    let own = c.path("mallory.conf");
    std::fs::write(&own, "mine\n").unwrap();
    std::os::unix::fs::chown(&own, Some(m.0), Some(m.1)).unwrap();
    c.raw_client(&forge_write(&own), Some(m));
    let v = c.wait_versions(2);
    assert!(v.iter().any(|x| x["path"] == own.display().to_string().as_str() && x["uid"] == m.0), "{v:?}");
}

/// Connects as mallory, then execs a setgid-root program that speaks the
/// protocol on the inherited socket: the groups that count are those of
/// the process that connected.
#[test]
fn groups_are_fixed_at_connect_not_taken_from_a_setgid_program_execd_later() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    let group_file = c.path("group.conf");
    std::fs::write(&group_file, "group 0 may write\n").unwrap();
    chmod(&group_file, 0o664); // root:root, group-writable
    let speaker = compile_c(
        c.dir.path(),
        "speaker",
        r#"
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void frame(int fd, const char *h, const char *p) {
    uint32_t hl = strlen(h); uint64_t pl = strlen(p);
    write(fd, &hl, 4); write(fd, &pl, 8); write(fd, h, hl); write(fd, p, pl);
}
int main(int argc, char **argv) {
    int fd = atoi(argv[1]);
    char h[4096], reply[4096];
    frame(fd, "{\"kind\":\"hello\",\"version\":1}", "");
    read(fd, reply, sizeof reply);
    snprintf(h, sizeof h, "{\"kind\":\"begin\",\"token\":1,\"path\":\"%s\",\"flags\":577,"
             "\"before\":{\"state\":\"absent\"}}", argv[2]);
    frame(fd, h, "");
    frame(fd, "{\"kind\":\"close\",\"token\":1,\"after\":{\"state\":\"stored\",\"len\":7,\"size\":7}}", "forged\n");
    printf("egid %d\n", (int)getegid());
    return 0;
}
"#,
    );
    // setgid root, runnable by mallory.
    chmod(&speaker, 0o2755);
    let script = format!(
        "import os, socket\n\
         s = socket.socket(socket.AF_UNIX); s.connect({sock:?})\n\
         os.set_inheritable(s.fileno(), True)\n\
         os.execv({bin:?}, [{bin:?}, str(s.fileno()), {path:?}])",
        sock = c.socket.display().to_string(),
        bin = speaker.display().to_string(),
        path = group_file.display().to_string()
    );
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", m.0))
        .arg(format!("--regid={}", m.1))
        .args(["--clear-groups", "/usr/bin/python3", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "egid 0\n", "the program really ran setgid: {out:?}");
    wait_log(&c, "rejected a version", 1);
    assert_eq!(root_edit_is_recorded(&c).len(), 1);
}

/// An open that is never closed is finished by the collector from the file;
/// mallory swaps the file's directory for a symlink to a world-writable
/// directory holding a root-only file. The collector reads as mallory, so
/// the secret is not readable, and never reaches the store.
#[test]
fn the_collector_never_reads_for_a_user_what_the_user_could_not_read() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    chmod(&c.track, 0o777);
    let secrets = c.dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    chmod(&secrets, 0o777);
    std::fs::write(secrets.join("f"), "TOPSECRET root only\n").unwrap();
    chmod(&secrets.join("f"), 0o600);
    let d = c.path("d");
    let script = format!(
        "os.mkdir({d:?}); open({d:?} + '/f', 'w').write('mine\\n')\n\
         send({{'kind':'begin','token':1,'path':{d:?} + '/f','flags':577,'before':{{'state':'absent'}}}})\n\
         os.rename({d:?} + '/f', {d:?} + '.f'); os.rmdir({d:?}); os.symlink({secrets:?}, {d:?})",
        d = d.display().to_string(),
        secrets = secrets.display().to_string()
    );
    c.raw_client(&script, Some(m));
    // The finisher reads once mallory's process has exited: as mallory it
    // may not open the file, so the version says `unreadable`.
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0]["path"].as_str(), v[0]["content"].as_str()),
        (Some(&*format!("{}/f", d.display())), Some("unreadable"))
    );
    root_edit_is_recorded(&c);
    let store: Vec<u8> = [c.db.clone(), c.db.with_extension("db-wal")]
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    assert!(!store.windows(9).any(|w| w == b"TOPSECRET"), "root-only content reached the store");
    let secret_hash = sha256(b"TOPSECRET root only\n");
    assert!(c.versions().iter().all(|v| v["after"] != secret_hash.as_str()), "{:?}", c.versions());
}

/// A process connects, hands its socket to a child and exits; the child
/// says hello. What /proc says of the pid that connected is not the peer:
/// the connection is refused.
#[test]
fn a_connection_whose_process_is_gone_is_refused() {
    let c = Collector::start();
    let script = format!(
        "import json, os, socket, struct, time\n\
         s = socket.socket(socket.AF_UNIX); s.connect({sock:?})\n\
         if os.fork() > 0: os._exit(0)\n\
         time.sleep(0.3)  # the connecting parent is gone\n\
         h = json.dumps({{'kind':'hello','version':1}}).encode()\n\
         s.sendall(struct.pack('<IQ', len(h), 0) + h)\n\
         b = s.recv(12); hl, pl = struct.unpack('<IQ', b); print(s.recv(hl).decode())",
        sock = c.socket.display().to_string()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success());
    // The parent's exit ends `output()`; the child answers later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.log().contains("the process that connected is gone") {
        assert!(Instant::now() < deadline, "no refusal logged:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    root_edit_is_recorded(&c);
}

/// Runs `script` with sh under the library in a fresh audit session: the
/// script's first step sets the (unset) login uid, which only a process
/// outside any login may do. `None` where this host does not allow it.
fn in_new_session(c: &Collector, as_user: Option<(u32, u32)>, loginuid: u32, script: &str) -> Option<()> {
    let unset = std::fs::read_to_string("/proc/self/loginuid").is_ok_and(|l| l.trim() == "4294967295");
    if !unset {
        eprintln!("this test runs inside a login session (loginuid set): skipped");
        return None;
    }
    let full = format!("echo {loginuid} > /proc/self/loginuid || exit 99\n{script}");
    let mut cmd = match as_user {
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).args(["--clear-groups", "sh"]);
            cmd
        }
        None => Command::new("sh"),
    };
    let out = cmd
        .args(["-c", &full])
        .current_dir(&c.track)
        .env("LD_PRELOAD", filetrail_e2e::library())
        .env("FILETRAIL_SOCKET", &c.socket)
        .output()
        .unwrap();
    if out.status.code() == Some(99) {
        eprintln!("cannot set the login uid here: skipped");
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    Some(())
}

fn version_of(c: &Collector, name: &str) -> serde_json::Value {
    let path = c.path(name).display().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = c.versions().into_iter().find(|v| v["path"] == path.as_str()) {
            return v;
        }
        assert!(Instant::now() < deadline, "no version of {name}:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A user outside any login sets its login uid to 0 ("I am root who
/// logged in"): the kernel accepts it, but no PAM login registered that
/// session, so the version says so and the human is only claimed. A
/// session PAM registered (as `collector session` under pam_exec does) is
/// verified, with PAM's remote host as the ssh client.
#[test]
fn a_self_set_login_uid_is_claimed_and_a_registered_session_is_verified() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    chmod(&c.track, 0o777);
    if in_new_session(&c, Some(m), 0, "echo mine > forged-root.conf").is_none() {
        return;
    }
    let v = version_of(&c, "forged-root.conf");
    assert_eq!(v["user"], "root");
    assert_eq!(v["unregistered_session"], true, "{v}");
    for f in ["user", "loginuid", "session", "chain"] {
        assert_eq!(v["trust"][f], "claimed", "{f}: {v}");
    }
    assert_eq!(v["trust"]["euid"], "verified");
    assert_eq!(v["euid"], m.0);
    // The table marks the claimed human; the arrow is ASCII unless the locale is UTF-8.
    let table = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(filetrail_e2e::collector_bin());
        cmd.args(["query", "--db"]).arg(&c.db).arg(c.path("forged-root.conf"));
        cmd.env_remove("LC_ALL").env_remove("LC_CTYPE").env_remove("LANG").envs(env.iter().copied());
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let utf8 = table(&[("LANG", "C.UTF-8")]);
    assert!(utf8.contains(" root?→ft-mallory "), "{utf8}");
    for posix in [table(&[]), table(&[("LANG", "C.UTF-8"), ("LC_ALL", "C")])] {
        assert!(posix.contains(" root?->ft-mallory ") && posix.is_ascii(), "{posix}");
    }
    // Mallory cannot register a session: the registry socket is root's.
    let registry = c.socket.with_file_name("registry.sock");
    let probe = format!(
        "import socket\ntry:\n  socket.socket(socket.AF_UNIX).connect({:?}); print('connected')\nexcept OSError as e: print(e.errno)",
        registry.display().to_string()
    );
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", m.0))
        .arg(format!("--regid={}", m.1))
        .args(["--clear-groups", "/usr/bin/python3", "-c", &probe])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "13", "EACCES: {out:?}");
    // Root's login, registered the way pam_exec does it.
    let register = format!(
        "PAM_TYPE=open_session PAM_USER=root PAM_SERVICE=sshd PAM_RHOST=192.0.2.7 PAM_TTY=ssh {} session --socket {}\n\
         echo edited > registered.conf",
        filetrail_e2e::collector_bin().display(),
        c.socket.display()
    );
    in_new_session(&c, None, 0, &register).unwrap();
    let v = version_of(&c, "registered.conf");
    assert_eq!(v["unregistered_session"], false, "{v}\n{}", c.log());
    for f in ["user", "loginuid", "session", "chain", "ssh_client"] {
        assert_eq!(v["trust"][f], "verified", "{f}: {v}");
    }
    assert_eq!(v["ssh_client"], "192.0.2.7");
    // A registration for a session whose login uid is not PAM_USER's (an
    // `su` from a self-made session) vouches for nothing.
    let su = format!(
        "PAM_TYPE=open_session PAM_USER=root PAM_SERVICE=su {} session --socket {} 2>&1 | grep -q 'not a login' || exit 3\n\
         echo edited > su.conf",
        filetrail_e2e::collector_bin().display(),
        c.socket.display()
    );
    in_new_session(&c, None, m.0, &su).unwrap();
    let v = version_of(&c, "su.conf");
    assert_eq!(v["unregistered_session"], true, "{v}");
}

/// A vouch (the collector's leased read for a library that may not lease a
/// file, issue 16) answers only the hash of a tracked regular file the
/// asker may read, named by its device and inode: never for a root-only
/// file, an untracked one, a symlink, a FIFO (no hang), another inode, a
/// non-canonical path; a flood is refused for the asker, not for others.
#[test]
fn a_vouch_answers_only_for_a_tracked_file_the_asker_may_read() {
    use std::os::unix::fs::MetadataExt;
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    chmod(&c.track, 0o755);
    std::fs::write(c.path("public"), "public\n").unwrap();
    std::fs::write(c.path("secret"), "TOPSECRET root only\n").unwrap();
    chmod(&c.path("secret"), 0o600);
    std::os::unix::fs::symlink(c.path("public"), c.path("link")).unwrap();
    assert!(Command::new("mkfifo").arg(c.path("fifo")).status().unwrap().success());
    let outside = c.dir.path().join("outside");
    std::fs::write(&outside, "outside\n").unwrap();
    let id = |p: &Path| std::fs::metadata(p).map(|md| (md.dev(), md.ino())).unwrap_or((0, 0));
    let public = c.path("public").display().to_string();
    let asks = [
        ("public", public.clone(), id(&c.path("public"))),
        ("secret", c.path("secret").display().to_string(), id(&c.path("secret"))),
        ("other inode", public.clone(), id(&c.path("secret"))),
        ("symlink", c.path("link").display().to_string(), id(&c.path("public"))),
        ("fifo", c.path("fifo").display().to_string(), id(&c.path("fifo"))),
        ("untracked", outside.display().to_string(), id(&outside)),
        ("not canonical", format!("{}/./public", c.track.display()), id(&c.path("public"))),
    ];
    let mut script = String::new();
    for (req, (_, path, (dev, ino))) in asks.iter().enumerate() {
        script.push_str(&format!(
            "send({{'kind':'vouch','req':{req},'path':{path:?},'dev':{dev},'ino':{ino}}}); print(json.dumps(recv()))\n"
        ));
    }
    let out = c.raw_client(&script, Some(m));
    let answers: Vec<serde_json::Value> =
        out.lines().skip(1).take(asks.len()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), asks.len(), "{out}");
    for (req, ((what, ..), a)) in asks.iter().zip(&answers).enumerate() {
        assert_eq!((a["kind"].as_str(), a["req"].as_u64()), (Some("vouched"), Some(req as u64)), "{what}: {a}");
        let expected = (*what == "public").then(|| sha256(b"public\n"));
        assert_eq!(a["sha256"].as_str(), expected.as_deref(), "{what}: {a}");
    }
    assert_eq!(answers[0]["len"], 7);
    // A flood: asks in batches of 100, far more than a second's share. Some are
    // refused, root's are not.
    let (dev, ino) = id(&c.path("public"));
    let flood = format!(
        "n = {n}\nt = time.monotonic()\n\
         got = []\n\
         for b in range(0, n, 100):\n\
         \x20   for i in range(b, b + 100): send({{'kind':'vouch','req':i,'path':{public:?},'dev':{dev},'ino':{ino}}})\n\
         \x20   got += [recv() for i in range(100)]\n\
         print(json.dumps({{'refused': sum(1 for g in got if 'sha256' not in g), 'secs': time.monotonic() - t}}))",
        // Far more than collector/src/vouch.rs allows a user a second
        // (250 ms of its time: some 30 µs an ask).
        n = 30_000
    );
    let out = c.raw_client(&flood, Some(m));
    let tally: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    eprintln!("flood: {tally}");
    assert!(tally["refused"].as_u64().unwrap() > 0, "{tally}");
    let out = c.raw_client(
        &format!(
            "send({{'kind':'vouch','req':9,'path':{public:?},'dev':{dev},'ino':{ino}}}); print(json.dumps(recv()))"
        ),
        None,
    );
    let root: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(root["sha256"].as_str(), Some(&*sha256(b"public\n")), "{root}");
    root_edit_is_recorded(&c);
}
