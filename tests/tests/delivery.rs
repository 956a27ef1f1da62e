//! Acknowledged delivery: a version is acknowledged only once it is in the
//! store, the library sends again what was not acknowledged after the
//! collector comes back, and the store keeps a version sent twice once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, PY_FRAMES, Reap, collector_bin, sha256};

/// Polls `ok` for up to 5 s.
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The content of edit `i` of the long-lived writer.
fn edit(i: usize) -> String {
    format!("edit {i}\n{}\n", "x".repeat(i * 37 % 500))
}

/// A long-lived writer (one Python process under the library) edits a
/// tracked file 100 times while the collector is killed with SIGKILL and a
/// new one is started on the same socket and store. Every edit the writer
/// made after the new collector was up is recorded, and no edit is recorded
/// twice (counted by content hash): what the first collector had committed
/// but not yet acknowledged, the library sent again and the store ignored.
#[test]
fn a_long_lived_writer_survives_a_kill9_and_restart_and_nothing_is_stored_twice() {
    let mut c = Collector::start();
    let f = c.path("app.conf");
    std::fs::write(&f, "initial\n").unwrap();
    let script = "import sys, time\n\
                  for i in range(100):\n\
                  \x20   with open(sys.argv[1], 'w') as out:\n\
                  \x20       out.write('edit %d\\n%s\\n' % (i, 'x' * (i * 37 % 500)))\n\
                  \x20   print(i, flush=True)\n\
                  \x20   time.sleep(0.04)\n";
    let mut writer =
        c.command("python3").arg("-c").arg(script).arg(&f).stdout(Stdio::piped()).spawn().expect("starting the writer");
    // The index of the writer's last finished edit, as it prints them.
    let done = Arc::new(Mutex::new(None::<usize>));
    let lines = BufReader::new(writer.stdout.take().unwrap());
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                *done.lock().unwrap() = line.trim().parse().ok();
            }
        })
    };
    let progress = || *done.lock().unwrap();

    wait_for("the first 15 edits to be stored", || c.versions().len() >= 15);
    c.kill();
    let at_kill = progress().unwrap();
    wait_for("the writer to edit on while no collector runs", || progress().is_some_and(|p| p >= at_kill + 5));
    c.restart();
    // Every edit after this one started once the new collector was up.
    let up_after = progress().unwrap();
    assert!(up_after < 90, "the writer finished too early to test anything ({up_after})");
    assert!(writer.wait().unwrap().success());
    reader.join().unwrap();

    let wanted: HashMap<String, usize> = (0..100).map(|i| (sha256(edit(i).as_bytes()), i)).collect();
    let recorded = |c: &Collector| -> Vec<usize> {
        c.versions().iter().filter_map(|v| v["after"].as_str().and_then(|h| wanted.get(h)).copied()).collect()
    };
    wait_for("every edit made after the restart", || {
        let got = recorded(&c);
        (up_after + 1..100).all(|i| got.contains(&i))
    });
    let got = recorded(&c);
    let mut counts = HashMap::new();
    for i in &got {
        *counts.entry(*i).or_insert(0) += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "edits stored more than once (edit, times): {twice:?}\n{}", c.log());
    // Edits made while no collector ran are the spool's to guarantee: this
    // writer outlived the outage and kept them in memory, so they are
    // usually here too, but only what follows the restart is asserted.
    let missing: Vec<usize> = (0..100).filter(|i| !counts.contains_key(i)).collect();
    eprintln!("killed after edit {at_kill}, new collector up after edit {up_after}; missing: {missing:?}");
    assert!(missing.iter().all(|&i| i <= up_after), "missing after the restart: {missing:?}");
    // The stored bytes are the writer's, exactly.
    let v = c.versions();
    let last = v.iter().find(|v| v["after"] == sha256(edit(99).as_bytes()).as_str()).unwrap();
    c.assert_version(last, "write", "app.conf", Some(edit(98).as_bytes()), Some(edit(99).as_bytes()));
}

/// Python that connects to the socket in argv[1] as one process image
/// (`IMAGE`) and numbers its events; `conn()` returns a connected,
/// welcomed socket, `send(s, header, payload)` and `recv(s)` use it.
const NUMBERED_CLIENT: &str = r#"
IMAGE = 0x5eed
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
    send(s, {'kind': 'hello', 'version': 2, 'image': IMAGE})
    assert recv(s)['kind'] == 'welcome'
    return s
def stored(p):
    return {'state': 'stored', 'len': len(p), 'size': len(p)}
def versions():
    out = subprocess.run([os.environ['COLLECTOR'], 'query', '--json', '--db', os.environ['DB']],
                         capture_output=True, check=True).stdout
    return [json.loads(l) for l in out.splitlines()]
"#;

fn numbered_client(c: &Collector, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PY_FRAMES}{NUMBERED_CLIENT}\n{script}"))
        .arg(&c.socket)
        .env("COLLECTOR", collector_bin())
        .env("DB", &c.db)
        .output()
        .unwrap();
    assert!(out.status.success(), "client: {}\n{}", String::from_utf8_lossy(&out.stderr), c.log());
    String::from_utf8(out.stdout).unwrap()
}

/// The same events (same process, same image, same numbers) sent again on a
/// new connection, as the library does after a reconnect, make no second
/// version; a different number does.
#[test]
fn a_version_sent_again_with_the_same_numbers_is_stored_once() {
    let c = Collector::start();
    let f = c.path("resent.conf").display().to_string();
    let script = format!(
        "p = b'new\\n'\n\
         def write(s, seq):\n\
         \x20   send(s, {{'kind':'begin','seq':seq,'token':1,'path':{f:?},'flags':577,'before':stored(b'old\\n')}}, b'old\\n')\n\
         \x20   send(s, {{'kind':'close','seq':seq + 1,'token':1,'after':stored(p)}}, p)\n\
         for _ in range(3):\n\
         \x20   s = conn(); write(s, 1)\n\
         \x20   assert recv(s) == {{'kind': 'ack', 'upto': 2}}\n\
         \x20   s.close()\n\
         s = conn(); write(s, 3); print(recv(s))\n\
         print(len(versions()))"
    );
    let out = numbered_client(&c, &script);
    assert_eq!(out, "{'kind': 'ack', 'upto': 4}\n2\n", "{}", c.log());
    let v = c.versions();
    c.assert_version(&v[0], "write", "resent.conf", Some(b"old\n"), Some(b"new\n"));
    c.assert_version(&v[1], "write", "resent.conf", Some(b"old\n"), Some(b"new\n"));
}

/// The collector acknowledges an event only once the version made of it
/// can be queried, and not while it still needs it: an open waiting for its
/// close, a created file held back (to see whether it was a temp file).
#[test]
fn an_ack_comes_only_after_the_version_is_queryable() {
    let c = Collector::start();
    let f = c.path("acked.conf").display().to_string();
    let n = c.path("created.conf").display().to_string();
    let script = format!(
        "s = conn(); p = b'after\\n'\n\
         send(s, {{'kind':'begin','seq':1,'token':1,'path':{f:?},'flags':577,'before':stored(b'before\\n')}}, b'before\\n')\n\
         s.settimeout(0.5)\n\
         try: print('early', recv(s))\n\
         except socket.timeout: print('no ack while open')\n\
         s.settimeout(5)\n\
         send(s, {{'kind':'close','seq':2,'token':1,'after':stored(p)}}, p)\n\
         print(recv(s), len(versions()))\n\
         send(s, {{'kind':'begin','seq':3,'token':2,'path':{n:?},'flags':577,'before':{{'state':'absent'}}}})\n\
         send(s, {{'kind':'close','seq':4,'token':2,'after':stored(p)}}, p)\n\
         t = time.time(); a = recv(s)\n\
         print(a, len(versions()), 'held back' if time.time() - t > 1 else 'at once')"
    );
    let out = numbered_client(&c, &script);
    assert_eq!(
        out,
        "no ack while open\n{'kind': 'ack', 'upto': 2} 1\n{'kind': 'ack', 'upto': 4} 2 held back\n",
        "{}",
        c.log()
    );
    let v = c.versions();
    c.assert_version(&v[0], "write", "acked.conf", Some(b"before\n"), Some(b"after\n"));
    c.assert_version(&v[1], "create", "created.conf", None, Some(b"after\n"));
}

/// A process that exits with a tracked file still open (no close reported)
/// gets no ack for that open at exit (the collector finishes it from the
/// file once the process is gone) and spools it, in case the collector
/// dies first. The verified version is stored, once; the spooled copy
/// waits for it and is then dropped as a repeat.
#[test]
fn an_open_left_at_exit_is_stored_once_with_verified_identity() {
    let c = Collector::start();
    let script =
        "import os\nfd = os.open('left', os.O_WRONLY | os.O_CREAT, 0o644)\nos.write(fd, b'left open\\n')\nos._exit(0)";
    let out = c.command("/usr/bin/python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "create", "left", None, Some(b"left open\n"));
    assert_eq!(v[0]["trust"]["pid"], "verified", "{}", v[0]);
    // The spool file, if any, is replayed and found to be a repeat.
    let spool = c.socket.parent().unwrap().join("spool");
    wait_for("the spool to be replayed", || {
        std::fs::read_dir(&spool)
            .map_or(true, |d| d.flatten().all(|e| !e.file_name().to_string_lossy().ends_with(".ftspool")))
    });
    assert_eq!(c.versions().len(), 1, "{}", c.log());
}

/// A created file is held back (was it a temp file?) for a moment, then
/// stored — also while its process keeps sending events without a pause.
#[test]
fn a_busy_process_created_files_are_stored_while_it_runs() {
    let c = Collector::start();
    let script = "import time\nfor i in range(60):\n    open('c%d' % i, 'w').write('%d\\n' % i)\n    time.sleep(0.1)";
    let mut child = Reap(vec![c.command("/usr/bin/python3").arg("-c").arg(script).spawn().unwrap()]);
    let c0 = c.path("c0");
    wait_for("the first created file to be stored", || c0.exists() && !c.versions_of(&[&c0]).is_empty());
    assert!(child.0[0].try_wait().unwrap().is_none(), "stored only once the process had ended");
}
