//! The library's side of the adversary suite (issue 9, items 10 and 12):
//! whoever listens on the socket path gets nothing unless it runs as root
//! or as the writer's own user, and a collector that stops reading costs a
//! writer at most its time budget, in total.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use filetrail_e2e::{library, mallory};

/// A collector impostor in Python: listens on `argv[1]`, prints `ready`,
/// and for each connection sends a `Welcome` tracking `argv[3]`, reads
/// everything until EOF and appends one JSON line (the bytes, as latin-1)
/// to the log `argv[2]`. Connections are handled one after the other.
const FAKE_COLLECTOR: &str = r#"
import json, os, socket, struct, sys
path, log, track = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket(socket.AF_UNIX); srv.bind(path); os.chmod(path, 0o777); srv.listen(16)
h = json.dumps({'kind': 'welcome', 'version': 1, 'track': [track], 'ignore': [], 'max_size': 1 << 30}).encode()
print('ready', flush=True)
while True:
    c, _ = srv.accept(); c.settimeout(5); got = b''
    try:
        c.sendall(struct.pack('<IQ', len(h), 0) + h)
    except OSError:
        pass
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            got += b
    except OSError:
        pass
    c.close()
    with open(log, 'a') as f: f.write(json.dumps(got.decode('latin-1')) + '\n')
"#;

/// A collector that takes `Hello`, then, by `argv[4]`: `deaf` answers
/// `Welcome` (tracking `argv[3]`) and never reads again; `trickle` answers
/// and then reads 128 KiB every 200 ms (a socket buffer holds about 200 KiB);
/// `drip` sends its `Welcome` one byte every 100 ms. Each stays below any per-call timeout of the library, so
/// only a budget that counts every wait in total bounds the writer.
const SLOW_COLLECTOR: &str = r#"
import json, socket, struct, sys, threading, time
sock, log, track, mode = sys.argv[1:5]
srv = socket.socket(socket.AF_UNIX); srv.bind(sock); srv.listen(16)
h = json.dumps({'kind': 'welcome', 'version': 1, 'track': [track], 'ignore': [], 'max_size': 1 << 30}).encode()
welcome = struct.pack('<IQ', len(h), 0) + h
def serve(c):
    try:
        hl, pl = struct.unpack('<IQ', c.recv(12, socket.MSG_WAITALL))
        c.recv(hl + pl, socket.MSG_WAITALL)
        if mode == 'drip':
            for b in welcome:
                c.send(bytes([b])); time.sleep(0.1)
        else:
            c.sendall(welcome)
        while mode == 'trickle' and c.recv(128 << 10):
            time.sleep(0.2)
    except OSError:
        pass
    threading.Event().wait()  # keep the connection open, unread
print('ready', flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// A Python server process (argv: socket, log, tracked root, mode), killed
/// when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Runs `script` with `/usr/bin/python3` (Debian's: a pyenv shim under
    /// /root is out of reach of other users), as `as_user` when given, and
    /// waits for its `ready` line.
    fn start(script: &str, dir: &Path, track: &Path, mode: &str, as_user: Option<(u32, u32)>) -> Server {
        let socket = dir.join("collector.sock");
        let log = dir.join("received.log");
        let mut child = filetrail_e2e::python(as_user)
            .arg("-c")
            .arg(script)
            .arg(&socket)
            .arg(&log)
            .arg(track)
            .arg(mode)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let server = Server { child, socket, log };
        server.expect_ready(&mut out);
        server
    }

    fn expect_ready(&self, out: &mut BufReader<ChildStdout>) {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the server did not start");
    }

    /// What each connection so far sent, once the server has handled all
    /// connections made before this call: a last connection of our own
    /// (handled after them, in order) marks the end.
    fn received(&self) -> Vec<Vec<u8>> {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.write_all(b"end-marker").unwrap();
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let mut conns: Vec<Vec<u8>> = text
                .lines()
                .map(|l| serde_json::from_str::<String>(l).unwrap().chars().map(|c| c as u8).collect())
                .collect();
            if conns.last().is_some_and(|c| c == b"end-marker") {
                conns.pop();
                return conns;
            }
            assert!(Instant::now() < deadline, "the fake collector never logged the end marker: {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory anyone may create files in, like /tmp.
fn world_writable_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("filetrail-adversary").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Item 10: ft-mallory binds a socket path root was told to use (a
/// `FILETRAIL_SOCKET` in /tmp, a stale path) and pretends to be the
/// collector, tracking everything. Root's edit must reach it in no form:
/// the library checks who listens before it sends anything, even `Hello`.
#[test]
fn a_fake_collector_of_another_user_learns_nothing() {
    let Some(mallory) = mallory() else { return };
    let shared = world_writable_dir();
    let server = Server::start(FAKE_COLLECTOR, shared.path(), Path::new("/"), "", Some(mallory));
    let private = tempfile::tempdir().unwrap();
    let run = |debug: &str| {
        Command::new("sh")
            .args(["-c", "echo secret > out"])
            .current_dir(private.path())
            .env("LD_PRELOAD", library())
            .env("FILETRAIL_SOCKET", &server.socket)
            .env("FILETRAIL_DEBUG", debug)
            .output()
            .unwrap()
    };
    let out = run("0");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(private.path().join("out")).unwrap(), b"secret\n");
    assert!(out.stderr.is_empty(), "silent without FILETRAIL_DEBUG: {:?}", String::from_utf8_lossy(&out.stderr));
    // Under FILETRAIL_DEBUG, one line says why.
    let out = run("1");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for (n, got) in server.received().iter().enumerate() {
        assert!(
            !contains(got, b"secret"),
            "connection {n} received root's content: {:?}",
            String::from_utf8_lossy(got)
        );
        assert!(got.is_empty(), "connection {n} received {} byte(s): {:?}", got.len(), String::from_utf8_lossy(got));
    }
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&format!("uid {}", mallory.0)), "names the listener's uid: {err:?}");
}

/// The other side of item 10: a collector running as the writer's own user
/// (tests and `scripts/try` run collectors so) is still talked to: it
/// learns nothing that user could not read anyway.
#[test]
fn a_collector_of_your_own_uid_is_used() {
    let Some((uid, gid)) = mallory() else { return };
    let shared = world_writable_dir();
    let server = Server::start(FAKE_COLLECTOR, shared.path(), shared.path(), "", Some((uid, gid)));
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "sh", "-c", "echo mine > mine"])
        .current_dir(shared.path())
        .env("LD_PRELOAD", library())
        .env("FILETRAIL_SOCKET", &server.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = server.received().concat();
    assert!(contains(&got, b"\"hello\""), "no Hello: {:?}", String::from_utf8_lossy(&got));
    assert!(contains(&got, b"mine\n"), "no content: {:?}", String::from_utf8_lossy(&got));
}

/// Runs one process under the library against a [`SLOW_COLLECTOR`] in
/// `mode`, with a 300 ms budget: it writes a tracked file `times` times,
/// `kib` KiB each, so its frames fill the socket buffer at once. Returns how
/// long it took, after checking that the program's own work came out right.
fn writer_against(mode: &str, times: u32, kib: usize) -> Duration {
    let dir = tempfile::Builder::new().prefix("filetrail-adversary").tempdir().unwrap();
    let server = Server::start(SLOW_COLLECTOR, dir.path(), dir.path(), mode, None);
    let writer = r#"
import sys
for i in range(int(sys.argv[2])):
    with open(sys.argv[1], 'wb') as f: f.write(bytes([65 + i % 26]) * (int(sys.argv[3]) << 10))
"#;
    let file = dir.path().join("big");
    let start = Instant::now();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", writer])
        .arg(&file)
        .args([times.to_string(), kib.to_string()])
        .env("LD_PRELOAD", library())
        .env("FILETRAIL_SOCKET", &server.socket)
        .env("FILETRAIL_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "no stray output: {:?}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), vec![65 + ((times - 1) % 26) as u8; kib << 10]);
    eprintln!("writer against a {mode} collector took {took:?}");
    took
}

// Item 12. `FILETRAIL_TIMEOUT_MS` is the most a process may wait on the
// collector in total: connect, Welcome, every send and every partial send.
// The bounds below are hang guards, not benchmarks: waiting is at most
// 300 ms, the rest is Python and the writes (well under a second even on a
// busy machine), while a budget restarted per call costs a multiple of it.

/// A collector that stops reading after `Welcome`.
#[test]
fn a_collector_that_stops_reading_costs_at_most_the_budget() {
    let took = writer_against("deaf", 40, 256);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A collector that keeps reading, too slowly: every wait for buffer space
/// ends in time, so only a total budget stops the writer waiting. (4 MiB
/// frames: at this collector's pace, one takes seconds.)
#[test]
fn a_collector_that_reads_slowly_costs_at_most_the_budget() {
    let took = writer_against("trickle", 10, 4096);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// A collector that sends its `Welcome` byte by byte.
#[test]
fn a_collector_that_answers_slowly_costs_at_most_the_budget() {
    let took = writer_against("drip", 40, 256);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
