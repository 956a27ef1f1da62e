//! Quotas against users who try to get around them (issue 9, item 7): a
//! client that claims to be root to spend root's quota.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, mallory};
use serde_json::Value;

fn path_of(v: &Value) -> &str {
    v["path"].as_str().unwrap()
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
