//! Issue 10's torture test: writers keep editing while the collector is
//! stopped (SIGTERM), started, killed (SIGKILL) and started again; in the
//! end every edit is in the store exactly once, with its exact bytes.
//! Long-lived writers cross every restart on the same process (reconnect,
//! resend, spool); short-lived ones start a process per edit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, Reap, sha256};

const LONG: usize = 3;
const EDITS: usize = 60;
const SHORT: usize = 30;

#[test]
fn every_edit_survives_stops_kills_and_restarts_exactly_once() {
    let mut c = Collector::start();
    let mut writers = Reap(Vec::new());
    for k in 0..LONG {
        std::fs::write(c.path(&format!("w{k}")), "initial\n").unwrap();
        let script = format!(
            "import time\nfor i in range(1, {EDITS} + 1):\n    with open('w{k}', 'w') as f: f.write('writer {k} edit %d\\n' % i)\n    time.sleep(0.025)"
        );
        writers.0.push(c.command("/usr/bin/python3").arg("-c").arg(script).spawn().unwrap());
    }
    std::fs::write(c.path("p"), "initial\n").unwrap();
    let short = format!("for i in $(seq 1 {SHORT}); do sh -c \"echo process $i > p\"; sleep 0.04; done");
    writers.0.push(c.command("sh").arg("-c").arg(short).spawn().unwrap());

    // The collector's life while they write (these sleeps pace the
    // scenario; no assertion depends on them).
    std::thread::sleep(Duration::from_millis(300));
    c.signal("TERM");
    assert!(c.wait_exit(Duration::from_secs(5)).is_some_and(|s| s.success()), "graceful stop:\n{}", c.log());
    std::thread::sleep(Duration::from_millis(150));
    c.start_prepared();
    std::thread::sleep(Duration::from_millis(300));
    c.kill();
    std::thread::sleep(Duration::from_millis(150));
    c.restart();
    for w in &mut writers.0 {
        assert!(w.wait().unwrap().success());
    }

    // Every edit, exactly once: by the hash of what each wrote.
    let mut want: HashMap<String, (String, usize)> = HashMap::new();
    for k in 0..LONG {
        for i in 1..=EDITS {
            want.insert(sha256(format!("writer {k} edit {i}\n").as_bytes()), (format!("w{k}"), i));
        }
    }
    for i in 1..=SHORT {
        want.insert(sha256(format!("process {i}\n").as_bytes()), ("p".into(), i));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for v in c.versions() {
            if let Some(after) = v["after"].as_str() {
                *counts.entry(after.to_owned()).or_default() += 1;
            }
        }
        if want.keys().all(|h| counts.contains_key(h)) || Instant::now() > deadline {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing: Vec<_> = want.iter().filter(|(h, _)| !counts.contains_key(*h)).map(|(_, w)| w).collect();
    let twice: Vec<_> = want.iter().filter(|(h, _)| counts.get(*h).is_some_and(|&n| n > 1)).map(|(_, w)| w).collect();
    // A process that reported its edit and exited just before the SIGKILL
    // waited for its last ack and, without one, spooled the edit.
    assert!(missing.is_empty(), "{} edits missing: {missing:?}\n{}", missing.len(), c.log());
    assert!(twice.is_empty(), "{} edits stored more than once: {twice:?}", twice.len());
    // The exact bytes of the last edit of each long-lived writer.
    let versions = c.versions();
    for k in 0..LONG {
        let last = format!("writer {k} edit {EDITS}\n");
        let v = versions.iter().find(|v| v["after"] == sha256(last.as_bytes()).as_str()).unwrap();
        assert_eq!(c.show(&v["id"], false), last.as_bytes());
    }
}
