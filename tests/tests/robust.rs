//! The library never changes what the host program sees, and keeps
//! recording through threads, fork, closed descriptors and odd files.

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

use filetrail_e2e::{Collector, compile_c, library, sha256};

#[test]
fn eight_threads_writing_concurrently() {
    let c = Collector::start();
    let bin = compile_c(
        c.dir.path(),
        "threads",
        r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void *run(void *arg) {
    long n = (long)arg;
    char name[16], buf[64];
    snprintf(name, sizeof name, "t%ld", n);
    for (int i = 0; i < 20; i++) {
        int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int len = snprintf(buf, sizeof buf, "thread %ld iteration %d\n", n, i);
        if (fd < 0 || write(fd, buf, len) != len || close(fd) != 0) return (void *)1;
    }
    return 0;
}
int main(void) {
    pthread_t t[8];
    for (long n = 0; n < 8; n++) pthread_create(&t[n], 0, run, (void *)n);
    for (int n = 0; n < 8; n++) { void *r; pthread_join(t[n], &r); if (r) return 1; }
    return 0;
}
"#,
    );
    let out = c.command(bin.to_str().unwrap()).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_versions(160);
    assert_eq!(v.len(), 160);
    for n in 0..8 {
        let name = c.path(&format!("t{n}")).display().to_string();
        let chain: Vec<_> = v.iter().filter(|x| x["path"] == name.as_str()).collect();
        assert_eq!(chain.len(), 20, "versions of t{n}");
        for (i, x) in chain.iter().enumerate() {
            let content = format!("thread {n} iteration {i}\n");
            assert_eq!(x["after"], sha256(content.as_bytes()).as_str());
            if i == 0 {
                assert_eq!(x["action"], "create");
            } else {
                let prev = format!("thread {n} iteration {}\n", i - 1);
                assert_eq!(x["before"], sha256(prev.as_bytes()).as_str(), "t{n} #{i}");
            }
        }
    }
}

const FORK_CLOSEFROM: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int fd = open("a", O_WRONLY | O_TRUNC);
    write(fd, "parent\n", 7);
    pid_t pid = fork();
    if (pid == 0) {
        closefrom(3);                 /* also closes the library's socket */
        int b = open("b", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(b, "child\n", 6);
        close(b);
        for (int i = 3; i < 1024; i++) close(i);   /* the loop way, too */
        int c = open("c", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(c, "child again\n", 12);
        close(c);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    close(fd);
    return WEXITSTATUS(st);
}
"#;

#[test]
fn forked_child_that_closes_every_descriptor_still_records() {
    let c = Collector::start();
    std::fs::write(c.path("a"), "old a\n").unwrap();
    let bin = compile_c(c.dir.path(), "forkclose", FORK_CLOSEFROM);
    let out = c.command(bin.to_str().unwrap()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v = c.wait_versions(3);
    let find = |name: &str| v.iter().find(|x| x["path"] == c.path(name).display().to_string().as_str()).cloned();
    c.assert_version(&find("a").expect("a"), "write", "a", Some(b"old a\n"), Some(b"parent\n"));
    c.assert_version(&find("b").expect("b"), "create", "b", None, Some(b"child\n"));
    c.assert_version(&find("c").expect("c"), "create", "c", None, Some(b"child again\n"));
    assert_ne!(find("a").unwrap()["pid"], find("b").unwrap()["pid"], "the child reports as itself");
}

#[test]
fn child_writing_after_the_parent_closed_is_in_the_version() {
    let c = Collector::start();
    std::fs::write(c.path("f"), "old\n").unwrap();
    let bin = compile_c(
        c.dir.path(),
        "latechild",
        r#"
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    int fd = open("f", O_WRONLY | O_TRUNC);
    write(fd, "parent\n", 7);
    if (fork() == 0) { usleep(300000); write(fd, "late child\n", 11); _exit(0); }
    close(fd);      /* the parent's last descriptor, but not the last holder */
    return 0;
}
"#,
    );
    let out = c.command(bin.to_str().unwrap()).output().unwrap();
    assert!(out.status.success());
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "{v:?}");
    c.assert_version(&v[0], "write", "f", Some(b"old\n"), Some(b"parent\nlate child\n"));
}

#[test]
fn errno_and_results_are_unchanged() {
    let c = Collector::start();
    std::fs::write(c.path("exists"), "x").unwrap();
    let bin = compile_c(
        c.dir.path(),
        "errnos",
        r#"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    int r;
    errno = 0; r = open("missing", O_RDONLY);                      printf("%d %d\n", r, errno);
    errno = 0; r = open("exists", O_WRONLY | O_CREAT | O_EXCL, 0600); printf("%d %d\n", r, errno);
    errno = 0; r = open("nodir/x", O_WRONLY | O_CREAT, 0600);      printf("%d %d\n", r, errno);
    errno = 0; r = close(-1);                                       printf("%d %d\n", r, errno);
    errno = 0; r = rename("missing", "other");                     printf("%d %d\n", r, errno);
    errno = 0; r = unlink("missing");                              printf("%d %d\n", r, errno);
    errno = 1234; r = open("exists", O_WRONLY);                     printf("%d %d\n", r >= 0, errno);
    errno = 4321; r = close(r);                                      printf("%d %d\n", r, errno);
    errno = 0; r = dup2(99, 98);                                     printf("%d %d\n", r, errno);
    return 0;
}
"#,
    );
    let run = |preload: bool| {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&c.track);
        if preload {
            cmd.env("LD_PRELOAD", library()).env("FILETRAIL_SOCKET", &c.socket);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), out.stderr)
    };
    let without = run(false);
    assert_eq!(run(true), without);
    assert!(without.1.contains("-1 2\n"), "{}", without.1);
}

#[test]
fn stuck_collector_costs_at_most_the_budget() {
    // A socket that accepts connections into its backlog and never answers.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stuck.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let start = Instant::now();
    let out = Command::new("sh")
        .args(["-c", "for i in 1 2 3 4 5; do echo $i > f$i; done; cat f5"])
        .current_dir(dir.path())
        .env("LD_PRELOAD", library())
        .env("FILETRAIL_SOCKET", &sock)
        .env("FILETRAIL_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"5\n");
    assert!(out.stderr.is_empty(), "no stray output: {:?}", String::from_utf8_lossy(&out.stderr));
    // Not a benchmark: a hang guard far above the 300 ms budget.
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn fifos_are_never_read_or_blocked_on() {
    let c = Collector::start();
    std::fs::write(c.path("marker"), "0").unwrap();
    c.sh("mkfifo p; (cat p > /dev/null &); echo through > p; echo 1 > marker");
    let v = c.wait_versions(1);
    assert_eq!(v.len(), 1, "only the marker: {v:?}");
}

#[test]
fn writes_through_a_symlink_record_both_names() {
    let c = Collector::start();
    let real = c.path("real.conf");
    std::fs::write(&real, "old").unwrap();
    std::os::unix::fs::symlink(&real, c.path("link.conf")).unwrap();
    c.sh("echo new > link.conf");
    let v = c.wait_versions(1);
    c.assert_version(&v[0], "write", "real.conf", Some(b"old"), Some(b"new\n"));
    assert_eq!(v[0]["named_path"], c.path("link.conf").display().to_string());
    // Removing the link is not a change of the file it points to.
    std::fs::write(c.path("marker"), "0").unwrap();
    c.sh("rm link.conf; echo 1 > marker");
    let v = c.wait_versions(2);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[1]["path"], c.path("marker").display().to_string());
}

#[test]
fn files_over_max_size_are_recorded_by_hash() {
    let c = Collector::start_with("max_size = 1000\n");
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(c.path("big"), &big[..3000]).unwrap();
    let src = c.dir.path().join("src");
    std::fs::write(&src, &big).unwrap();
    c.sh(&format!("cat {} > big", src.display()));
    let v = c.wait_versions(1);
    assert_eq!(v[0]["content"], "hash_only");
    assert_eq!(v[0]["before"], sha256(&big[..3000]).as_str());
    assert_eq!(v[0]["after"], sha256(&big).as_str());
    assert_eq!(v[0]["size"], 5000);
    let out = Command::new(filetrail_e2e::collector_bin())
        .args(["show", "--db"])
        .arg(&c.db)
        .arg(v[0]["id"].to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than max_size"), "{out:?}");
}
