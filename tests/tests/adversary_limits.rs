//! An ordinary user (ft-mallory) tries to starve everyone else: hundreds of
//! idle connections, large opens never closed, a frame sent one byte at a
//! time. The collector stays within its caps and root's edits are recorded
//! while the attack runs.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, PY_FRAMES, mallory};

/// Frame helpers for the attacker's Python programs.
const PRELUDE: &str = r#"
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(SOCK); return s
def hello():
    s = conn()
    # A refused connection may be closed before the hello is sent; its
    # error frame is still there to read.
    try: send(s, {'kind': 'hello', 'version': 1})
    except BrokenPipeError: pass
    return s, recv(s)
def say(*a): print(*a, flush=True)
"#;

/// Runs `script` (after [`PRELUDE`], with `SOCK` set) as `user`; it talks
/// on stdout and stops when its stdin closes (the returned `Child` is killed
/// and reaped on drop).
struct Attacker {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Attacker {
    fn start(c: &Collector, (uid, gid): (u32, u32), script: &str) -> Attacker {
        c.open_to_all();
        let program = format!("{PY_FRAMES}SOCK = {:?}\n{PRELUDE}\n{script}", c.socket.display().to_string());
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "/usr/bin/python3", "-c", &program])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the attacker");
        let out = BufReader::new(child.stdout.take().unwrap());
        Attacker { child, out }
    }

    /// The next line the attacker prints.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the attacker exited early");
        line.trim().to_owned()
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = self.child.stdin.take().map(|mut i| i.write_all(b"\n"));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A memory figure of a process from /proc/PID/status (`VmRSS`, `VmData`), in bytes.
fn vm(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).unwrap();
    kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    vm(pid, "VmRSS")
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

const MIB: u64 = 1 << 20;

/// Root edits a tracked file through the library; the version is recorded.
fn root_edit_is_recorded(c: &Collector, name: &str) {
    std::fs::write(c.path(name), "before\n").unwrap();
    c.sh(&format!("echo after > {name}"));
    let path = c.path(name);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = c.versions_of(&[&path]);
        if let Some(v) = v.first() {
            c.assert_version(v, "write", name, Some(b"before\n"), Some(b"after\n"));
            assert_eq!(v["user"], "root");
            return;
        }
        assert!(Instant::now() < deadline, "root's edit was not recorded; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_log(c: &Collector, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.log().contains(needle) {
        assert!(Instant::now() < deadline, "log never said {needle:?}:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_connections_over_the_cap_are_refused_and_root_still_records() {
    let Some(user) = mallory() else { return };
    let c = Collector::start();
    let fds_before = descriptors(c.pid());
    let mut a = Attacker::start(
        &c,
        user,
        r#"
held, kinds = [], {}
for i in range(420):
    s, r = hello()
    k = r['kind'] if r else 'closed'
    kinds[k] = kinds.get(k, 0) + 1
    if k == 'welcome': held.append(s)
    else: s.close()
say(json.dumps(kinds))
sys.stdin.read(1)
"#,
    );
    let kinds: serde_json::Value = serde_json::from_str(&a.line()).unwrap();
    assert_eq!(kinds["welcome"], 64, "the default cap is 64 connections per user: {kinds}");
    assert_eq!(kinds["error"], 420 - 64, "over the cap, an error frame: {kinds}");
    let fds = descriptors(c.pid());
    eprintln!("collector descriptors: {fds_before} before, {fds} with 64 idle connections held");
    assert!(fds <= fds_before + 64 * 2 + 4, "two descriptors per connection: {fds}");
    wait_for_log(&c, "connection cap of 64 reached for this user");
    let caps = c.log().matches("connection cap of 64 reached").count();
    assert_eq!(caps, 1, "logged once per user per minute:\n{}", c.log());
    root_edit_is_recorded(&c, "while-idle.conf");
}

#[test]
fn at_the_cap_the_longest_idle_connection_gives_way() {
    let Some(user) = mallory() else { return };
    let c = Collector::start_with("max_connections_per_uid = 3\nidle_timeout_secs = 1\n");
    let mut a = Attacker::start(
        &c,
        user,
        r#"
first = [hello() for _ in range(3)]
assert all(r['kind'] == 'welcome' for _, r in first)
# Keep the last two busy, let the first sit idle past the timeout.
for _ in range(12):
    time.sleep(0.1)
    for s, _ in first[1:]: send(s, {'kind': 'unknown_kind'})
s, r = hello()
say(r['kind'])
first[0][0].settimeout(2); say('closed' if first[0][0].recv(1) == b'' else 'open')
first[1][0].setblocking(False)
try: first[1][0].recv(1); say('closed')
except BlockingIOError: say('open')
s2, r2 = hello()
say(r2['kind'])
sys.stdin.read(1)
"#,
    );
    assert_eq!(a.line(), "welcome", "the newcomer takes the idle connection's place");
    assert_eq!(a.line(), "closed", "the longest-idle connection was closed");
    assert_eq!(a.line(), "open", "busy connections are kept");
    assert_eq!(a.line(), "error", "no idle connection left: refused");
    wait_for_log(&c, "closed their longest-idle connection");
}

#[test]
fn unclosed_large_opens_stay_within_the_held_cap() {
    let Some(user) = mallory() else { return };
    // 32 MiB files are stored whole: each 16 MiB Begin is content to hold.
    let c = Collector::start_with(&format!("max_size = {}\n", 32 * MIB));
    let pid = c.pid();
    let before = rss(pid);
    let mut a = Attacker::start(
        &c,
        user,
        r#"
body = os.urandom(1 << 20) * 16
held = []
for i in range(40):
    s, r = hello()
    send(s, {'kind': 'begin', 'token': 1, 'path': DIR + '/big%d' % i, 'flags': 1,
             'before': {'state': 'stored', 'len': len(body), 'size': len(body)}}, body)
    held.append(s)
say('sent')
sys.stdin.read(1)
"#
        .replace("DIR", &format!("{:?}", c.track.display().to_string()))
        .as_str(),
    );
    let mut peak = before;
    let sampler = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let line = a.line();
        tx.send(()).unwrap();
        (a, line)
    });
    // Sample while the attack runs, and for half a second after.
    let mut done: Option<Instant> = None;
    while done.is_none_or(|d| d.elapsed() < Duration::from_millis(500)) {
        peak = peak.max(rss(pid));
        if done.is_none() && rx.try_recv().is_ok() {
            done = Some(Instant::now());
        }
        assert!(sampler.elapsed() < Duration::from_secs(60), "the attack did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_attacker, line) = reader.join().unwrap();
    assert_eq!(line, "sent");
    let after = rss(pid);
    eprintln!(
        "collector RSS: {} MiB before, peak {} MiB, {} MiB after 40 unclosed 16 MiB opens",
        before / MIB,
        peak / MIB,
        after / MIB
    );
    // The cap (256 MiB) plus connection buffers and slack; without it 40 x
    // 16 MiB = 640 MiB would be held.
    assert!(peak < before + 256 * MIB + 32 * MIB, "peak RSS {} MiB", peak / MIB);
    wait_for_log(&c, "keeping only hashes");
    root_edit_is_recorded(&c, "while-big.conf");
}

#[test]
fn a_frame_sent_one_byte_at_a_time_holds_no_memory() {
    let Some(user) = mallory() else { return };
    // Large enough that a 1 GiB frame is allowed; one under the held cap
    // (read into memory) and one over it (read through a hash).
    let c = Collector::start_with(&format!("max_size = {}\n", 1024 * MIB));
    let pid = c.pid();
    let (before, data_before) = (rss(pid), vm(pid, "VmData"));
    let mut a = Attacker::start(
        &c,
        user,
        r#"
slow = []
for n in (1 << 30, 100 << 20):
    s, r = hello()
    h = json.dumps({'kind': 'delete', 'path': '/etc/x', 'before': {'state': 'stored', 'len': n, 'size': n}}).encode()
    s.sendall(struct.pack('<IQ', len(h), n) + h)
    slow.append(s)
say('declared')
for i in range(100):
    for s in slow: s.sendall(b'x')
    time.sleep(0.02)
say('dribbled')
sys.stdin.read(1)
"#,
    );
    assert_eq!(a.line(), "declared");
    assert_eq!(a.line(), "dribbled");
    let (after, data_after) = (rss(pid), vm(pid, "VmData"));
    eprintln!(
        "collector RSS: {} KiB before, {} KiB after 1 GiB and 100 MiB frames declared; VmData {} MiB before, {} MiB after",
        before / 1024,
        after / 1024,
        data_before / MIB,
        data_after / MIB
    );
    assert!(after < before + 4 * MIB, "RSS grew by {} KiB", (after - before) / 1024);
    // Untouched pages are not resident: an allocation of the declared
    // length shows in the data segment (two thread stacks and malloc's
    // per-thread arenas account for the rest).
    assert!(data_after < data_before + 64 * MIB, "VmData grew by {} MiB", (data_after - data_before) / MIB);
    root_edit_is_recorded(&c, "while-slow.conf");
}

#[test]
fn opens_left_to_the_finisher_count_against_the_cap() {
    let Some(user) = mallory() else { return };
    let c = Collector::start();
    // Each connection leaves an open for the finisher, which waits for this
    // (living) process: without counting those waits, one process could
    // pile up threads and descriptors without end.
    let mut a = Attacker::start(
        &c,
        user,
        r#"
kinds = {}
for i in range(100):
    s, r = hello()
    k = r['kind'] if r else 'closed'
    kinds[k] = kinds.get(k, 0) + 1
    if k == 'welcome':
        send(s, {'kind': 'begin', 'token': 1, 'path': DIR + '/held%d' % i, 'flags': 1, 'before': {'state': 'absent'}})
    s.close()
say(json.dumps(kinds))
sys.stdin.read(1)
"#
        .replace("DIR", &format!("{:?}", c.track.display().to_string()))
        .as_str(),
    );
    let kinds: serde_json::Value = serde_json::from_str(&a.line()).unwrap();
    assert_eq!(kinds["welcome"], 64, "{kinds}");
    assert_eq!(kinds["error"], 36, "{kinds}");
    root_edit_is_recorded(&c, "while-waiting.conf");
}

/// One connection cannot make the collector keep an unbounded number of
/// paths: opens beyond 1,024 per process, and paths longer than PATH_MAX,
/// are not kept (and logged); the collector goes on serving everyone.
#[test]
fn open_files_per_connection_and_path_lengths_are_bounded() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    c.open_to_all();
    let dir = c.track.display().to_string();
    let script = format!(
        "for i in range(1030):\n\
         \x20   send({{'kind':'begin','token':i,'path':'{dir}/f%d' % i,'flags':577,'before':{{'state':'absent'}}}})\n\
         send({{'kind':'begin','token':5000,'path':'{dir}/' + 'x' * 5000,'flags':577,'before':{{'state':'absent'}}}})"
    );
    let out = c.raw_client(&script, Some(m));
    assert!(out.starts_with("welcome"), "{out}");
    wait_for_log(&c, "open not recorded");
    let refusals = c.log().matches("open not recorded").count();
    assert_eq!(refusals, 7, "6 opens over the cap and one long path:\n{}", c.log());
    root_edit_is_recorded(&c, "marker");
}
