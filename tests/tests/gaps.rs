//! Issue 10, "gaps are records" and "quotas never hide a change", as an
//! admin sees them: what could not be recorded shows in `collector query`
//! (table and `--json`, `"kind": "gap"`) and `collector log` among the
//! versions, attributed to the process the kernel named, counted once; and
//! a replayed spool costs its user's quota once.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, PY_FRAMES, Reap, collector_bin, mallory, python};
use serde_json::Value;

/// A long-lived Python process under the library: each line `NAME TEXT` on
/// its stdin writes TEXT to NAME (one open, write, close) and answers `ok`.
struct Editor {
    reap: Reap,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const EDITOR: &str = r#"
import sys
for line in sys.stdin:
    name, text = line.rstrip('\n').split(' ', 1)
    with open(name, 'w') as f:
        f.write(text + '\n')
    print('ok', flush=True)
"#;

impl Editor {
    fn start(c: &Collector) -> Editor {
        let mut child = c
            .command("/usr/bin/python3")
            .args(["-c", EDITOR])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Editor { reap: Reap(vec![child]), stdin, stdout }
    }

    fn pid(&self) -> u32 {
        self.reap.0[0].id()
    }

    fn edit(&mut self, name: &str, text: &str) {
        writeln!(self.stdin, "{name} {text}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ok\n", "the editor failed on {name}");
    }

    /// Ends the process (its stdin closes) and waits for it.
    fn exit(mut self) {
        drop(self.stdin);
        let status = self.reap.0[0].wait().unwrap();
        assert!(status.success());
    }
}

/// A collector of protocol version 1, which never acknowledges: a process
/// keeps nothing it sent there. It tracks `argv[2]` and discards every event.
const OLD_COLLECTOR: &str = r#"
import threading
srv = socket.socket(socket.AF_UNIX); srv.bind(sys.argv[1]); srv.listen(8)
def serve(c):
    recv(c)
    send(c, {'kind': 'welcome', 'version': 1, 'track': [sys.argv[2]], 'ignore': [], 'max_size': 1 << 20})
    while c.recv(1 << 16):
        pass
print('ready', flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn cli(c: &Collector, args: &[&str]) -> String {
    let out = Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `collector query --json ARGS...`, one value per record.
fn query(c: &Collector, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["query", "--json"];
    all.extend_from_slice(args);
    cli(c, &all).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn gaps(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["kind"] == "gap").collect()
}

fn path_arg(c: &Collector, name: &str) -> String {
    c.path(name).display().to_string()
}

/// Edits `name` (a file that exists: its version is not held back as a
/// possible temp file) every 50 ms until an edit is recorded, up to 5 s;
/// returns how many edits it made. The library tries to reconnect at most
/// once a second, so the first edits may find no collector yet.
fn edit_until_recorded(c: &Collector, ed: &mut Editor, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut edits = 0;
    loop {
        edits += 1;
        ed.edit(name, &format!("edit {edits}"));
        let until = Instant::now() + Duration::from_millis(50);
        while Instant::now() < until {
            if !c.versions_of(&[&c.path(name)]).is_empty() {
                return edits;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(Instant::now() < deadline, "no edit recorded; log:\n{}", c.log());
    }
}

/// A process loses edits (its collector never acknowledged them, went away,
/// and no spool can take them). On its next connection it says how many;
/// `query` shows that gap among the versions, in the name of the process
/// the kernel verified, and counts each lost edit once: a later reconnect
/// reports nothing again.
#[test]
fn events_a_process_lost_are_a_gap_in_its_name_reported_once() {
    let mut c = Collector::prepare_with("");
    // No spool: a directory neither the collector nor the library may use.
    let spool = c.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::os::unix::fs::chown(&spool, Some(65534), Some(65534)).unwrap();
    let mut old = python(None)
        .args(["-c", &format!("{PY_FRAMES}{OLD_COLLECTOR}")])
        .arg(&c.socket)
        .arg(&c.track)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(old.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    let old = Reap(vec![old]);

    for name in ["after", "again"] {
        std::fs::write(c.path(name), "old\n").unwrap();
    }
    let mut ed = Editor::start(&c);
    ed.edit("delivered", "to the old collector");
    drop(old);
    std::fs::remove_file(&c.socket).unwrap();
    for i in 0..3 {
        ed.edit(&format!("lost-{i}"), "nobody hears this");
    }
    c.start_prepared();
    let after = edit_until_recorded(&c, &mut ed, "after");
    // Every edit since the old collector went, but the last, is lost.
    let lost_edits = 3 + after - 1;

    let mut all = Vec::new();
    c.wait_until(
        || {
            all = query(&c, &[]);
            !gaps(&all).is_empty()
        },
        "the gap",
    );
    let gap = gaps(&all)[0].clone();
    assert_eq!(gap["what"], "lost_in_library", "{gap}");
    assert_eq!(gap["versions"], 2 * lost_edits, "an open and a close per lost edit: {gap}");
    assert_eq!(gap["pid"], ed.pid(), "{gap}");
    assert_eq!(gap["uid"], 0, "{gap}");
    assert!(gap["exe"].as_str().unwrap().contains("python3"), "{gap}");
    assert!(gap["path"].is_null(), "{gap}");
    // Among the versions, by time: after nothing newer than itself.
    let at = all.iter().position(|r| r["kind"] == "gap").unwrap();
    assert_eq!(all[at + 1..].len(), 1, "only the recorded edit follows the gap: {all:?}");
    assert_eq!(all[at + 1]["path"], path_arg(&c, "after"));
    // Versions keep their fields, and have no kind.
    assert!(all[at + 1].get("kind").is_none() && all[at + 1]["action"] == "write");

    // Where an admin looks: the table, and a listing of the user; not the
    // history of one file (the lost edits' names are unknown).
    let table = cli(&c, &["query"]);
    let row = table.lines().find(|l| l.contains(" GAP ")).unwrap_or_else(|| panic!("no GAP row:\n{table}"));
    assert!(row.contains(&format!("the library lost {} events", 2 * lost_edits)), "{row}");
    assert!(row.contains("python3"), "{row}");
    let user = gap["user"].as_str().unwrap();
    assert_eq!(gaps(&query(&c, &["--user", user])).len(), 1);
    assert!(gaps(&query(&c, &[&path_arg(&c, "after")])).is_empty());
    assert!(gaps(&query(&c, &["--session", "4000000000"])).is_empty());

    // The collector dies and comes back: the process keeps what it sent
    // (this one acknowledges), loses nothing, and reports nothing again.
    c.restart();
    let again = edit_until_recorded(&c, &mut ed, "again");
    ed.exit();
    c.wait_until(|| c.versions_of(&[&c.path("again")]).len() as u64 == again, "every edit kept and sent again");
    let all = query(&c, &[]);
    assert_eq!(gaps(&all).len(), 1, "{all:?}");
    assert_eq!(gaps(&all)[0]["versions"], 2 * lost_edits);
}

/// Opens the collector will not follow (over 1,024 open files in one
/// process) are gaps about those files: `query FILE` and `log FILE` show
/// them, in the name of the user the kernel named. And a process cannot
/// flood the gap records: reports beyond 60 a minute add to its last.
#[test]
fn opens_not_recorded_show_in_the_files_history_and_gap_records_are_bounded() {
    let Some(m) = mallory() else { return };
    let c = Collector::start();
    let dir = c.track.display().to_string();
    let script = format!(
        "for i in range(1026):\n\
         \x20   send({{'kind':'begin','token':i,'path':'{dir}/f%d' % i,'flags':577,'before':{{'state':'absent'}}}})\n\
         for i in range(500):\n\
         \x20   send({{'kind':'lost','versions':3,'bytes':0}})"
    );
    let out = c.raw_client(&script, Some(m));
    assert!(out.starts_with("welcome"), "{out}");
    let file = path_arg(&c, "f1025");
    let mut of_file = Vec::new();
    c.wait_until(
        || {
            of_file = query(&c, &[&file]);
            !of_file.is_empty()
        },
        "the gap of f1025",
    );
    let gap = &of_file[0];
    assert_eq!((gap["kind"].as_str(), gap["what"].as_str()), (Some("gap"), Some("open_not_recorded")), "{gap}");
    assert_eq!((gap["path"].as_str(), gap["uid"].as_u64()), (Some(file.as_str()), Some(m.0 as u64)), "{gap}");
    let log = cli(&c, &["log", &file]);
    assert!(log.starts_with("GAP  open_not_recorded"), "{log}");
    assert!(log.contains(&format!("(uid {})", m.0)), "{log}");
    // A file whose open was followed has no gap.
    let f7 = path_arg(&c, "f7");
    assert!(gaps(&query(&c, &[])).iter().all(|g| g["path"].as_str() != Some(f7.as_str())));

    // 500 reports of 3 lost events: all counted, in at most 60 records a
    // minute (the two opens over the cap took two; a minute may turn).
    let mut lost = Vec::new();
    c.wait_until(
        || {
            let all = query(&c, &["--user", "ft-mallory"]);
            lost = gaps(&all).into_iter().filter(|g| g["what"] == "lost_in_library").cloned().collect();
            lost.iter().map(|g| g["versions"].as_u64().unwrap()).sum::<u64>() == 1500
        },
        "every lost event counted",
    );
    assert!(lost.len() <= 2 * 60, "{} records", lost.len());
}

/// A process whose collector is killed spools what was never acknowledged
/// — an edit the collector had already stored — and its next edit. The
/// replay stores the repeat once and charges it nothing: with a quota of
/// one version a minute, the new edit keeps its content.
#[test]
fn a_replayed_spool_charges_the_quota_once() {
    let mut c = Collector::start();
    let mut ed = Editor::start(&c);
    ed.edit("stored", "before the crash");
    c.wait_until(|| c.versions_of(&[&c.path("stored")]).len() == 1, "the first edit");
    c.kill();
    // It finds the collector gone and spools (the unacknowledged edit first).
    ed.edit("spooled", "after the crash");
    ed.exit();
    let config = c.dir.path().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[quota]\nversions_per_minute = 1\n");
    std::fs::write(&config, text).unwrap();
    let _ = std::fs::remove_file(&c.socket);
    c.start_prepared();
    let mut spooled = Vec::new();
    c.wait_until(
        || {
            spooled = c.versions_of(&[&c.path("spooled")]);
            !spooled.is_empty()
        },
        "the replay",
    );
    c.assert_version(&spooled[0], "create", "spooled", None, Some(b"after the crash\n"));
    assert_eq!(spooled[0]["content"], "stored", "{}", spooled[0]);
    assert_eq!(c.versions_of(&[&c.path("stored")]).len(), 1, "the repeat is stored once");
    assert!(c.log().contains("repeats=1"), "{}", c.log());
}
