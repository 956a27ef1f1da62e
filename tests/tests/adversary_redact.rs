//! Redaction and quotas against users and programs that try to get around
//! them (issue 9, items 5 and 7): copies and renames of a redacted file, a
//! redacted content sent under another name by an ordinary user's raw
//! client, content stored before it was known to be secret, and a client
//! that claims to be root to spend root's quota.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, collector_bin, mallory, sha256};
use serde_json::Value;

const REDACT_KEYS: &str = "redact = [\"*.key\"]\n";

fn cli(c: &Collector, args: &[&str]) -> Output {
    Command::new(collector_bin()).args(args).arg("--db").arg(&c.db).output().unwrap()
}

/// Incompressible bytes: if they were stored, they would be stored as they are.
fn secret() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The store file and its WAL, as bytes.
fn store_files(c: &Collector) -> Vec<u8> {
    let mut all = std::fs::read(&c.db).unwrap_or_default();
    all.extend(std::fs::read(c.db.with_extension("db-wal")).unwrap_or_default());
    all
}

/// `secret` is in neither the store file nor its WAL (polls up to 5 s: a
/// purge truncates the WAL just after its commit), and no blob with its
/// hash holds data.
fn assert_nowhere_in_store(c: &Collector, secret: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while contains(&store_files(c), secret) {
        assert!(Instant::now() < deadline, "redacted bytes are in the store file or its WAL");
        std::thread::sleep(Duration::from_millis(50));
    }
    let db = rusqlite::Connection::open_with_flags(&c.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let hash = hex_bytes(&sha256(secret));
    let held: i64 = db
        .query_row("SELECT count(*) FROM blobs WHERE sha256 = ?1 AND data IS NOT NULL", [hash], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 0, "a blob holds the redacted content");
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// `collector show` refuses version `v`'s side, saying why.
fn assert_show_refused(c: &Collector, v: &Value, before: bool) {
    let id = v["id"].to_string();
    let out = cli(c, &if before { vec!["show", &id, "--before"] } else { vec!["show", &id] });
    assert!(!out.status.success(), "show {id} printed {} bytes", out.stdout.len());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("version {id} is redacted: its content was never stored")), "{err}");
}

fn path_of(v: &Value) -> &str {
    v["path"].as_str().unwrap()
}

#[test]
fn copies_and_renames_of_a_redacted_file_store_nothing_of_it() {
    let mut c = Collector::start_with(REDACT_KEYS);
    let (key, late) = (secret(), secret());
    std::fs::create_dir(c.path("ssl")).unwrap();
    std::fs::create_dir(c.path("backup")).unwrap();
    // On the host before the collector starts, never changed through the library.
    std::fs::write(c.path("ssl/tls.key"), &key).unwrap();
    c.restart(); // hashes it before it listens
    c.sh("cp ssl/tls.key backup/tls.key.bak");
    c.sh("mv ssl/tls.key ssl/tls.old");
    // Written after start by a program not under the library: only the
    // rename's source name says it is secret.
    std::fs::write(c.path("ssl/late.key"), &late).unwrap();
    c.sh("mv ssl/late.key ssl/late.old");
    let v = c.wait_versions(3);
    let want = [("backup/tls.key.bak", &key), ("ssl/tls.old", &key), ("ssl/late.old", &late)];
    for (name, content) in want {
        let path = c.path(name).display().to_string();
        let v = v.iter().find(|v| path_of(v) == path).unwrap_or_else(|| panic!("no version of {name}: {v:?}"));
        assert_eq!(v["content"], "redacted", "{v}");
        assert_eq!(v["after"], sha256(content).as_str(), "the hash is kept");
        assert_show_refused(&c, v, false);
    }
    assert_nowhere_in_store(&c, &key);
    assert_nowhere_in_store(&c, &late);
    // Still known after a restart (from the store), though the file is gone.
    c.restart();
    std::fs::write(c.dir.path().join("copy-src"), &key).unwrap();
    c.sh(&format!("cp {} backup/again", c.dir.path().join("copy-src").display()));
    let v = c.wait_versions(4);
    assert_eq!((path_of(&v[3]), &v[3]["content"]), (c.path("backup/again").to_str().unwrap(), &"redacted".into()));
    assert_nowhere_in_store(&c, &key);
}

#[test]
fn an_ordinary_user_cannot_store_a_redacted_content_under_another_name() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start_with(REDACT_KEYS);
    let key = secret();
    let src = c.dir.path().join("new-key");
    std::fs::write(&src, &key).unwrap();
    c.sh(&format!("cp {} tls.key", src.display()));
    let v = c.wait_versions(1);
    assert_eq!(v[0]["content"], "redacted");
    // A directory anyone may write to, as /tmp or a shared upload dir.
    let public = c.path("pub");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "p = bytes.fromhex('{hex}')\n\
         send({{'kind':'rename','old':'{0}/stolen.tmp','new':'{0}/stolen','before':{{'state':'absent'}},\
         'after':{{'state':'stored','len':len(p),'size':len(p)}}}}, p)\n\
         send({{'kind':'link','new':'{0}/linked','after':{{'state':'stored','len':len(p),'size':len(p)}}}}, p)",
        public.display()
    );
    let out = c.raw_client(&script, Some(mallory));
    assert!(out.starts_with("welcome"), "{out}");
    let v = c.wait_versions(3);
    for v in &v[1..] {
        assert!(path_of(v).starts_with(public.to_str().unwrap()), "{v}");
        assert_eq!(v["euid"], mallory.0, "{v}");
        assert_eq!(v["content"], "redacted", "{v}");
        assert_show_refused(&c, v, false);
    }
    assert_nowhere_in_store(&c, &key);
}

#[test]
fn content_stored_under_a_plain_name_is_purged_once_seen_as_redacted() {
    let c = Collector::start_with(REDACT_KEYS);
    let key = secret();
    let conf: String = (0..300).map(|i| format!("option_{i} = the value of option number {i}\n")).collect();
    let (key_src, conf_src) = (c.dir.path().join("key-src"), c.dir.path().join("conf-src"));
    std::fs::write(&key_src, &key).unwrap();
    std::fs::write(&conf_src, &conf).unwrap();
    // Stored under plain names first; app.conf's next versions are deltas on it.
    c.sh(&format!("cp {} notes; cp {} app.conf", key_src.display(), conf_src.display()));
    c.sh("echo 'extra = 1' >> app.conf");
    c.sh("echo 'extra = 2' >> app.conf");
    let v = c.wait_versions(4);
    let notes = v.iter().find(|v| path_of(v) == c.path("notes").to_str().unwrap()).unwrap();
    assert_eq!(c.show(&notes["id"], false), key);
    assert!(contains(&store_files(&c), &key), "the check below would see these bytes if they stayed");
    // Then both contents turn up under redacted names.
    c.sh(&format!("cp notes n.key; cp {} app.key", conf_src.display()));
    let v = c.wait_versions(6);
    let of = |name: &str| v.iter().filter(|v| path_of(v) == c.path(name).to_str().unwrap()).collect::<Vec<_>>();
    let (notes, app) = (of("notes"), of("app.conf"));
    assert_eq!((notes.len(), app.len()), (1, 3));
    assert_eq!(notes[0]["content"], "redacted", "relabelled: {}", notes[0]);
    assert_show_refused(&c, notes[0], false);
    assert_eq!(app[0]["content"], "redacted", "{}", app[0]);
    assert_show_refused(&c, app[0], false);
    assert_show_refused(&c, app[1], true);
    // What was stored as deltas on the purged content is still all there.
    assert_eq!(c.show(&app[1]["id"], false), format!("{conf}extra = 1\n").into_bytes());
    assert_eq!(c.show(&app[2]["id"], false), format!("{conf}extra = 1\nextra = 2\n").into_bytes());
    assert_nowhere_in_store(&c, &key);
    assert_nowhere_in_store(&c, conf.as_bytes());
    let verify = cli(&c, &["verify"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success() && said.contains("all good"), "{said}");
    // stats counts the redacted contents too; verify checks those with bytes, and both say so.
    let stats: Value = serde_json::from_slice(&cli(&c, &["stats", "--json"]).stdout).unwrap();
    let (all, stored) = (stats["blobs"].as_i64().unwrap(), stats["stored_blobs"].as_i64().unwrap());
    assert!(all > stored, "{stats}");
    assert!(said.contains(&format!("checked {stored} stored contents (those with their bytes: hash-only")), "{said}");
    let text = String::from_utf8(cli(&c, &["stats"]).stdout).unwrap();
    assert!(
        text.contains(&format!("contents:     {all} distinct, {stored} with their bytes stored (the rest hash only")),
        "{text}"
    );
}

#[test]
fn a_claimed_uid_does_not_spend_another_users_quota() {
    let Some(mallory) = mallory() else { return };
    let c = Collector::start_with("[quota]\nversions_per_minute = 5\n");
    let public = c.path("pub");
    std::fs::create_dir(&public).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The process that connects leaves (and is reaped) before its socket,
    // passed on to a grandchild, says hello: /proc cannot answer for it,
    // and the hello claims uid 0. Then a flood, then wait until the
    // collector has read it all (it closes the connection after our EOF).
    let script = format!(
        r#"
c1 = os.fork()
if c1 == 0:
    t = socket.socket(socket.AF_UNIX); t.connect(sys.argv[1]); t.settimeout(5)
    gone = os.getpid()
    if os.fork() == 0:
        while os.path.exists('/proc/%d' % gone): time.sleep(0.01)
        s = t
        send({{'kind':'hello','version':1,'claims':{{'uid':0,'euid':0,'exe':'/usr/bin/vim','argv':['vim'],'cwd':'/'}}}})
        recv()
        for i in range(30):
            p = b'flood %d\n' % i
            send({{'kind':'rename','old':'{0}/f%d.tmp' % i,'new':'{0}/f%d' % i,'before':{{'state':'absent'}},'after':{{'state':'stored','len':len(p),'size':len(p)}}}}, p)
        s.shutdown(socket.SHUT_WR)
        while recv() is not None: pass
    os._exit(0)
os.waitpid(c1, 0)
"#,
        public.display()
    );
    c.raw_client(&script, Some(mallory));
    c.sh("echo root > root.conf");
    let deadline = Instant::now() + Duration::from_secs(5);
    let root_conf = c.path("root.conf");
    while c.versions_of(&[&root_conf]).is_empty() {
        assert!(Instant::now() < deadline, "root's edit was not recorded; log:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The flood, if it was let in at all, was charged to the kernel's euid.
    let flood = c.versions().into_iter().filter(|v| path_of(v).starts_with(public.to_str().unwrap())).count();
    assert!(flood <= 5, "{flood} versions of the flood were stored");
    if flood > 0 {
        assert!(c.log().contains(&format!("euid={}", mallory.0)), "{}", c.log());
    }
}
