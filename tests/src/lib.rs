//! Test harness: a real `collector serve` in a temporary directory and real
//! programs run under the built `libfiletrail.so`.
//!
//! The binaries are taken from `target/release` (or `$FILETRAIL_BUILD_DIR`):
//! `scripts/test` builds them before running the tests.

pub mod fleet_fixture;
pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn build_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FILETRAIL_BUILD_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release")
}

pub fn library() -> PathBuf {
    let lib = build_dir().join("libfiletrail.so");
    assert!(lib.exists(), "{} missing: run `cargo build --release` first (scripts/test does)", lib.display());
    lib
}

pub fn collector_bin() -> PathBuf {
    let bin = build_dir().join("collector");
    assert!(bin.exists(), "{} missing: run `cargo build --release` first (scripts/test does)", bin.display());
    bin
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A running collector tracking `<tmp>/track`.
pub struct Collector {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub track: PathBuf,
    config: PathBuf,
    /// None while not started ([`Collector::prepare_with`]) or after [`Collector::kill`].
    child: Option<Child>,
}

impl Collector {
    pub fn start() -> Collector {
        Self::start_with("")
    }

    /// Starts a collector; `extra_config` is appended to its TOML config.
    ///
    /// The kernel watch is off unless `extra_config` sets `kernel_watch`:
    /// the fixtures a test writes itself (not under the library) would
    /// otherwise become versions `seen_by: kernel` some 2.5 s later, at a
    /// moment that depends on the machine's load (`tests/watch.rs` turns it on).
    pub fn start_with(extra_config: &str) -> Collector {
        Self::start_with_db(extra_config, None)
    }

    /// Starts a collector whose store is `db` (default: in its directory).
    pub fn start_with_db(extra_config: &str, db: Option<&Path>) -> Collector {
        let mut c = Self::prepare_with_db(extra_config, db);
        c.start_prepared();
        c
    }

    /// Starts a collector on a tracked directory that already holds `files`
    /// (name, content) when it starts: their content is its baseline.
    pub fn start_with_files(extra_config: &str, files: &[(&str, &[u8])]) -> Collector {
        let mut c = Self::prepare_with_db(extra_config, None);
        for (name, bytes) in files {
            std::fs::write(c.track.join(name), bytes).unwrap();
        }
        c.start_prepared();
        c
    }

    /// Starts a collector tracking `roots` (instead of its own `track`
    /// directory); `extra_config` as for [`Collector::start_with`].
    pub fn start_tracking(roots: &[&Path], extra_config: &str) -> Collector {
        let mut c = Self::prepare_with_db(extra_config, None);
        let config = std::fs::read_to_string(&c.config).unwrap();
        let roots: Vec<String> = roots.iter().map(|r| format!("{:?}", r.display().to_string())).collect();
        let (_, rest) = config.split_once('\n').unwrap();
        std::fs::write(&c.config, format!("track = [{}]\n{rest}", roots.join(", "))).unwrap();
        c.start_prepared();
        c
    }

    /// The directory, config and paths of a collector, not started.
    pub fn prepare_with(extra_config: &str) -> Collector {
        Self::prepare_with_db(extra_config, None)
    }

    fn prepare_with_db(extra_config: &str, db: Option<&Path>) -> Collector {
        let dir = tempfile::Builder::new().prefix("filetrail-test").tempdir().expect("tempdir");
        let track = dir.path().join("track");
        std::fs::create_dir(&track).unwrap();
        let config = dir.path().join("config.toml");
        let watch = if extra_config.contains("kernel_watch") { "" } else { "kernel_watch = false\n" };
        let track_line = format!("track = [{:?}]\n", track.display().to_string());
        std::fs::write(&config, format!("{track_line}{watch}{extra_config}")).unwrap();
        let socket = dir.path().join("collector.sock");
        let db = db.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("trail.db"));
        Collector { dir, socket, db, track, config, child: None }
    }

    /// Starts `collector serve` on this socket, db and config (again, after
    /// [`Collector::kill`] or [`Collector::wait_exit`]); its log goes on in
    /// the same file. Returns once a new socket is in place.
    pub fn start_prepared(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let stale = std::fs::metadata(&self.socket).ok().map(|m| m.ino());
        self.child = Some(launch(self.dir.path(), &self.socket, &self.db, &self.config));
        let placed = || std::fs::metadata(&self.socket).is_ok_and(|m| Some(m.ino()) != stale);
        self.wait_until(placed, "the collector socket to appear");
    }

    /// Kills the collector (SIGKILL), leaving its socket file behind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the collector (SIGKILL) and starts it again on the same store
    /// and config, as a reboot or an upgrade would.
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        self.start_prepared();
    }

    /// Sends signal `name` (`TERM`, `HUP`, ...) to the collector.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args(["-s", name]).arg(self.pid().to_string()).status().unwrap().success();
        assert!(ok, "kill -s {name} {}", self.pid());
    }

    /// Waits up to `limit` for the collector to exit; its status, or None.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls `ok` for up to 5 s; panics (with the log) when it stays false.
    pub fn wait_until(&self, mut ok: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The collector process's pid (to read its memory use in /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("collector running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("collector.log")).unwrap_or_default()
    }

    /// A path inside the tracked directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.track.join(name)
    }

    /// A command that runs under the library, reporting to this collector,
    /// in the tracked directory.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.track).env("LD_PRELOAD", library()).env("FILETRAIL_SOCKET", &self.socket);
        cmd
    }

    /// Runs `sh -c script` under the library; panics unless it succeeds.
    pub fn sh(&self, script: &str) -> Output {
        let out = self.command("sh").arg("-c").arg(script).output().expect("running sh");
        assert!(out.status.success(), "sh -c {script:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// All versions, as `collector query --json` prints them.
    pub fn versions(&self) -> Vec<Value> {
        self.versions_of(&[])
    }

    /// The versions `collector query --json PATHS...` prints (not the gaps
    /// among them: records with `"kind": "gap"`).
    pub fn versions_of(&self, paths: &[&Path]) -> Vec<Value> {
        let out =
            Command::new(collector_bin()).args(["query", "--json", "--db"]).arg(&self.db).args(paths).output().unwrap();
        assert!(out.status.success(), "query failed: {}", String::from_utf8_lossy(&out.stderr));
        let records = String::from_utf8(out.stdout).unwrap();
        records.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|r| r["kind"] != "gap").collect()
    }

    /// Polls up to 10 s (the kernel watch waits 2.5 s of quiet per path)
    /// until `ok` holds for the versions of `name`; returns them, or panics
    /// with them and the log.
    pub fn wait_for(&self, name: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.versions_of(&[&self.path(name)]);
            if ok(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out; versions of {name}: {got:#?}\nlog:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 5 s) until at least `n` versions are recorded.
    pub fn wait_versions(&self, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        self.wait_until(
            || {
                got = self.versions();
                got.len() >= n
            },
            &format!("{n} versions"),
        );
        got
    }

    /// The exact stored bytes of version `id` (after, or before).
    pub fn show(&self, id: &Value, before: bool) -> Vec<u8> {
        let mut cmd = Command::new(collector_bin());
        cmd.args(["show", "--db"]).arg(&self.db).arg(id.to_string());
        if before {
            cmd.arg("--before");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "show {id} failed: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Asserts that version `v` is `action` on `name` with exactly these
    /// contents (None = did not exist), by hash and by stored bytes.
    pub fn assert_version(&self, v: &Value, action: &str, name: &str, before: Option<&[u8]>, after: Option<&[u8]>) {
        let path = self.path(name).display().to_string();
        assert_eq!(v["path"], path.as_str(), "path of {v}");
        assert_eq!(v["action"], action, "action of {v}");
        for (side, want, is_before) in [("before", before, true), ("after", after, false)] {
            match want {
                None => assert!(v[side].is_null(), "{side} of {v} should be null"),
                Some(bytes) => {
                    assert_eq!(v[side], sha256(bytes).as_str(), "{side} hash of {v}");
                    assert_eq!(self.show(&v["id"], is_before), bytes, "{side} bytes of version {}", v["id"]);
                }
            }
        }
    }
}

/// Starts `collector serve`; its stderr goes on `dir/collector.log`.
fn launch(dir: &Path, socket: &Path, db: &Path, config: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("collector.log")).unwrap();
    Command::new(collector_bin())
        .args(["serve", "--socket"])
        .arg(socket)
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting collector")
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Compiles a C program into `dir` and returns its path.
pub fn compile_c(dir: &Path, name: &str, source: &str) -> PathBuf {
    compile_c_with(dir, name, source, &[])
}

/// Compiles a static C program (`cc -static`: no dynamic loader, so no
/// `LD_PRELOAD` ever loads into it) into `dir` and returns its path.
pub fn compile_c_static(dir: &Path, name: &str, source: &str) -> PathBuf {
    compile_c_with(dir, name, source, &["-static"])
}

fn compile_c_with(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let out = Command::new("cc")
        .args(["-O1", "-pthread"])
        .args(flags)
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("running cc");
    assert!(out.status.success(), "cc {name}.c: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// A raw protocol client in Python: connects to the socket in `argv[1]`,
/// says hello, runs the Python in `argv[2]` (which may call `send(header,
/// payload)`, `recv()` and use `s`), then prints the collector's answer (or
/// `no reply ...`). The frame format is in `wire/src/lib.rs`.
pub const RAW_CLIENT: &str = r#"
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
send_on, recv_on = send, recv
def send(h, p=b''): send_on(s, h, p)
def recv(): return recv_on(s)
if os.environ.get('RAW_NO_HELLO') != '1':
    send({'kind': 'hello', 'version': 1}); print(recv()['kind'])
exec(sys.argv[2])
s.settimeout(1)  # events get no reply; errors come at once
try: print(json.dumps(recv()))
except Exception as e: print('no reply', e)
"#;

/// Python for the frame format (`wire/src/lib.rs`): `send(s, header,
/// payload)` writes one frame on socket `s`, `recv(s)` reads one frame's
/// header (None at the end). Every raw client in the tests starts with it.
pub const PY_FRAMES: &str = r#"
import json, os, socket, struct, subprocess, sys, time
def send(s, h, p=b''):
    h = json.dumps(h).encode(); s.sendall(struct.pack('<IQ', len(h), len(p)) + h + p)
def recv(s):
    b = b''
    while len(b) < 12:
        x = s.recv(12 - len(b))
        if not x: return None
        b += x
    hl, pl = struct.unpack('<IQ', b)
    h = b''
    while len(h) < hl: h += s.recv(hl - len(h))
    return json.loads(h)
"#;

/// Debian's python3, as root (`as_user` None) or as that uid/gid with no
/// supplementary groups (`setpriv`; a pyenv shim under /root would be out
/// of reach of other users).
pub fn python(as_user: Option<(u32, u32)>) -> Command {
    match as_user {
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "/usr/bin/python3"]);
            cmd
        }
        None => Command::new("/usr/bin/python3"),
    }
}

/// Children killed when a test ends, however it ends.
pub struct Reap(pub Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An ordinary local user for attacker tests: `ft-mallory`, created (as a
/// system user without a home) the first time it is needed, removed by
/// `scripts/test` at the end. `None` when not root (the test then skips).
pub fn mallory() -> Option<(u32, u32)> {
    static USER: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    *USER.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc_geteuid() } != 0 {
            eprintln!("not root: attacker tests that need a second user are skipped");
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg("ft-mallory").output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        if id("-u").is_none() {
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "ft-mallory"])
                .status();
        }
        Some((id("-u")?, id("-g")?))
    })
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl Collector {
    /// Lets every local user reach the socket (as on a real host, where it
    /// lives in a world-searchable /run/filetrail).
    pub fn open_to_all(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Runs [`RAW_CLIENT`] with `script`: as root (`as_user` None) or as the
    /// given uid/gid with no supplementary groups. Returns its stdout.
    pub fn raw_client(&self, script: &str, as_user: Option<(u32, u32)>) -> String {
        if as_user.is_some() {
            self.open_to_all();
        }
        let out = python(as_user)
            .args(["-c", &format!("{PY_FRAMES}{RAW_CLIENT}")])
            .arg(&self.socket)
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "raw client: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Runs `collector ARGS --db D` on a terminal `cols` wide (a pty whose
/// window size is set; stdout and stderr both go to it) with COLUMNS and
/// NO_COLOR unset, TERM=xterm, PAGER=cat, then `env`: what the terminal
/// received, and the exit status.
pub fn on_terminal(c: &Collector, cols: u16, args: &[&str], env: &[(&str, &str)]) -> (String, i32) {
    const PTY: &str = r#"
import fcntl, os, pty, struct, subprocess, sys, termios
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, int(sys.argv[1]), 0, 0))
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
sys.exit(p.wait())
"#;
    let out = Command::new("python3")
        .args(["-c", PTY, &cols.to_string()])
        .arg(collector_bin())
        .args(args)
        .arg("--db")
        .arg(&c.db)
        .env_remove("COLUMNS")
        .env_remove("NO_COLOR")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm")
        .env("PAGER", "cat")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code().unwrap_or(-1))
}

/// True when the tests run as root; otherwise says on stderr that the test
/// is skipped, because it `needs` root.
pub fn root_or_skip(needs: &str) -> bool {
    unsafe extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { geteuid() } == 0;
    if !root {
        eprintln!("not root: {needs}; skipped");
    }
    root
}

/// Runs `sh -c script` as `who` (uid, gid; no library: the user's own
/// moves) in `dir`; panics unless it succeeds.
pub fn as_user(who: (u32, u32), dir: &Path, script: &str) {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", who.0))
        .arg(format!("--regid={}", who.1))
        .args(["--clear-groups", "sh", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The exact bytes of a JSON record's `path`: `path_b64` decoded (by the
/// system's `base64`, not the collector's code) when present, else `path`.
pub fn raw_path(v: &Value) -> Vec<u8> {
    use std::io::Write;
    let Some(b64) = v.get("path_b64").and_then(Value::as_str) else {
        return v["path"].as_str().unwrap().as_bytes().to_vec();
    };
    let mut child = Command::new("base64").arg("-d").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b64.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}
