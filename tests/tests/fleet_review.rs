//! Review across the fleet (issue 13, read side): three hosts' stores, made
//! by real collectors from real edits, copied into a real PostgreSQL with
//! the shipper's row shape (`filetrail_e2e::fleet_fixture`); the review
//! commands on `--db postgresql://...` answer as on each host's own store.

use std::process::Command;

use filetrail_e2e::{Collector, collector_bin, fleet_fixture, pg::PgServer};
use serde_json::Value;

/// `collector ARGS --db DB --utc`: exit code, stdout, stderr.
fn run(db: &str, args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(collector_bin())
        .args(args)
        .args(["--db", db, "--utc", "--no-pager"])
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(db: &str, args: &[&str]) -> Vec<u8> {
    let (code, out, err) = run(db, args);
    assert!(code == 0 || (args[0] == "diff" && code == 1), "collector {args:?} --db {db}: {code} {err}");
    out
}

fn text(db: &str, args: &[&str]) -> String {
    String::from_utf8(ok(db, args)).unwrap()
}

/// JSON lines, every `host` (also nested, in `user --json`) set to `host`.
fn json_as(bytes: &[u8], host: &str) -> Vec<Value> {
    fn set(v: &mut Value, host: &str) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "host" {
                        *v = Value::from(host);
                    } else {
                        set(v, host);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| set(v, host)),
            _ => {}
        }
    }
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            set(&mut v, host);
            v
        })
        .collect()
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}

/// Three hosts' collectors, each with its own edits, and a fleet store holding all three.
struct Fleet {
    hosts: Vec<(&'static str, Collector)>,
    url: String,
    _pg: PgServer,
}

fn fleet() -> Option<Fleet> {
    let pg = PgServer::start()?;
    let url = pg.fleet_db("fleet");
    let h1 = Collector::start();
    h1.sh("printf 'port 80\\n' > a.conf; sed -i 's/80/8080/' a.conf; mv a.conf b.conf; printf 'x\\n' > \"$(printf 'n\\377.conf')\"");
    let h2 = Collector::start();
    h2.sh("printf 'one\\n' > a.conf; printf 'two\\n' >> a.conf; chmod 600 a.conf; rm a.conf");
    let h3 = Collector::start();
    h3.sh("head -c 5000 /dev/zero | tr '\\0' '\\1' > bin.dat; printf 'hello\\n' > a.conf");
    for (c, n) in [(&h1, 4), (&h2, 4), (&h3, 2)] {
        c.wait_versions(n);
    }
    // A gap about h1's file, as the collector records one.
    let local = rusqlite::Connection::open(&h1.db).unwrap();
    let path = h1.path("b.conf").display().to_string();
    local
        .execute(
            "INSERT INTO gaps (time_us, uid, user, what, versions, bytes, pid, exe, path)
             VALUES ((SELECT max(time_us) FROM versions), 0, 'root', 'lost_in_library', 2, 10, 4242, '/usr/bin/vi', ?1)",
            [path.as_bytes()],
        )
        .unwrap();
    drop(local);
    let mut client = pg.client_of("fleet");
    let hosts = vec![("h1", h1), ("h2", h2), ("h3", h3)];
    for (k, (name, c)) in hosts.iter().enumerate() {
        assert!(fleet_fixture::ship(&c.db, name, &mut client, k % 2 == 0) > 0);
    }
    Some(Fleet { hosts, url, _pg: pg })
}

fn ids(json: &[Value]) -> Vec<i64> {
    json.iter().filter(|v| v["kind"] != "gap").map(|v| v["id"].as_i64().unwrap()).collect()
}

#[test]
fn each_host_reads_the_same_in_the_fleet_as_in_its_own_store() {
    let Some(f) = fleet() else { return };
    let url = f.url.as_str();
    for (name, c) in &f.hosts {
        let db = c.db.to_str().unwrap();
        let local_json = ok(db, &["query", "--json", "--all"]);
        let fleet_json = ok(url, &["query", "--json", "--all", "--host", name]);
        assert_eq!(json_as(&fleet_json, name), json_as(&local_json, name), "{name}: query --json --all");
        assert!(json_as(&fleet_json, "x").iter().any(|v| v["kind"] == "gap") == (*name == "h1"), "{name}: gaps");
        // Every listing, exact bytes (one host shown: no HOST column).
        for args in [
            &["query"][..],
            &["query", "-n", "2", "--reverse"],
            &["query", "--all"],
            &["query", c.track.to_str().unwrap()],
            &["query", &format!("{}/*.conf", c.track.display())],
            &["query", "--user", "root", "--since", "2000-01-01"],
            &["log"],
            &["users"],
            &["users", "--json"],
        ] {
            let fleet_args: Vec<&str> = args.iter().copied().chain(["--host", name]).collect();
            assert_eq!(text(url, &fleet_args), text(db, args), "{name}: {args:?}");
        }
        assert_eq!(
            json_as(&ok(url, &["user", "root", "--json", "--host", name]), name),
            json_as(&ok(db, &["user", "root", "--json"]), name),
            "{name}: user --json"
        );
        // show: the exact bytes of every side of every version; diff: the same diff.
        for id in ids(&json_as(&local_json, name)) {
            let (local_id, fleet_id) = (id.to_string(), format!("{name}:{id}"));
            for before in [false, true] {
                let side = |db: &str, id: &str| {
                    let mut args = vec!["show", id];
                    if before {
                        args.push("--before");
                    }
                    let (code, out, err) = run(db, &args);
                    (code, out, err.replace(&format!("{name}:"), ""))
                };
                assert_eq!(side(url, &fleet_id), side(db, &local_id), "{name}: show {id} before={before}");
            }
            let fleet_diff = text(url, &["diff", &fleet_id]).replace(&fleet_id, &local_id);
            assert_eq!(fleet_diff, text(db, &["diff", &local_id]), "{name}: diff {id}");
        }
    }
    // Content a test wrote is what the fleet shows.
    let h3 = &f.hosts[2].1;
    let bin = json_as(&ok(url, &["query", "--json", "--host", "h3", h3.path("bin.dat").to_str().unwrap()]), "h3");
    let id = format!("h3:{}", bin[0]["id"]);
    assert_eq!(ok(url, &["show", &id]), vec![1u8; 5000]);
}

#[test]
fn the_fleet_names_hosts_and_versions_across_them() {
    let Some(f) = fleet() else { return };
    let url = f.url.as_str();
    let all = json_as(&ok(url, &["query", "--json"]), "");
    let by_host =
        |h: &str| ok(url, &["query", "--json", "--host", h]).split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    let hosts: Vec<String> = {
        let raw = String::from_utf8(ok(url, &["query", "--json"])).unwrap();
        raw.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["host"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(all.len(), by_host("h1") + by_host("h2") + by_host("h3"));
    for h in ["h1", "h2", "h3"] {
        assert!(hosts.iter().any(|x| x == h), "{h} in {hosts:?}");
    }
    // Several hosts shown: the table has a HOST column, and each row its host.
    let table = text(url, &["query"]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("ID  HOST  TIME (UTC)"), "{table}");
    for h in ["h1", "h2", "h3"] {
        assert!(table.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(h)), "{h}: {table}");
    }
    // log names versions HOST:ID when several hosts are shown.
    let log = text(url, &["log"]);
    assert!(log.contains("version h2:") && log.contains("version h3:"), "{log}");
    // Version 1 exists on every host: a plain id is refused, HOST:ID is not.
    let (code, _, err) = run(url, &["show", "1"]);
    assert!(code != 0 && err.contains("name one as HOST:1"), "{err}");
    assert_eq!(run(url, &["show", "h2:1"]).0, 0);
    let (code, _, err) = run(url, &["show", "h9:1"]);
    assert!(code != 0 && err.contains("no version with id h9:1"), "{err}");
    // A host the fleet does not know is a typo.
    let (code, _, err) = run(url, &["query", "--host", "nosuch"]);
    assert!(code != 0 && err.contains("--host nosuch") && err.contains("h1, h2, h3"), "{err}");
    // users across the fleet sums the hosts.
    let users = json_as(&ok(url, &["users", "--json"]), "");
    let sum: i64 = ["h1", "h2", "h3"]
        .iter()
        .map(|h| json_as(&ok(url, &["users", "--json", "--host", h]), "")[0]["versions"].as_i64().unwrap())
        .sum();
    assert_eq!(users[0]["versions"].as_i64(), Some(sum));
    // stats reads the fleet; restore refuses it.
    let stats: Value = serde_json::from_slice(&ok(url, &["stats", "--json"])).unwrap();
    let total: usize = f.hosts.iter().map(|(_, c)| c.versions().len()).sum();
    assert!(stats["versions"].as_u64().unwrap() as usize >= total, "{stats}");
    let (code, _, err) = run(url, &["restore", "h1:1"]);
    assert!(code != 0 && err.contains("not on the fleet"), "{err}");
}

#[test]
fn a_local_store_names_its_own_host() {
    let c = Collector::start();
    c.sh("printf 'a\\n' > f.conf");
    c.wait_versions(1);
    let db = c.db.to_str().unwrap();
    let me = this_host();
    let rows = json_as(&ok(db, &["query", "--json"]), "");
    let raw: Value = serde_json::from_slice(&ok(db, &["query", "--json"])).unwrap();
    assert_eq!(raw["host"].as_str(), Some(me.as_str()), "{raw}");
    assert_eq!(json_as(&ok(db, &["query", "--json", "--host", &me]), "").len(), rows.len());
    assert_eq!(ok(db, &["show", &format!("{me}:{}", raw["id"])]), b"a\n");
    let (code, _, err) = run(db, &["query", "--host", "elsewhere"]);
    assert!(code != 0 && err.contains("--host elsewhere"), "{err}");
    // One host: no HOST column.
    assert!(text(db, &["query"]).starts_with("ID  TIME"));
}
