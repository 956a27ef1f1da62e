/* Tight loops for scripts/bench. Calls libc's open/write/close normally, so
 * under LD_PRELOAD the filetrail hooks are what is exercised. Each mode
 * prints the nanoseconds its loop took (CLOCK_MONOTONIC; CPU time with
 * BENCH_CPU=1) on stdout, so the
 * process start and library load are not part of the number (except in
 * `spawn`, where starting processes is the point).
 *
 *   bench-loop openclose PATH N       open(O_RDONLY)+close, N times
 *   bench-loop untracked PATH N       open(O_WRONLY|O_CREAT|O_TRUNC)+write 4 KiB+close
 *   bench-loop spawn N PROG           fork+execve PROG N times, waiting for each; the
 *                                     children get LD_PRELOAD=$BENCH_CHILD_PRELOAD when
 *                                     that is set (this driver itself runs without it)
 *   bench-loop edit PATH N SEED       N edits: open(O_WRONLY|O_TRUNC)+write 4 KiB+close,
 *                                     each with different content (SEED distinguishes runs)
 *   bench-loop spawn-edit N PATH SEED N processes one after the other (fork+execve of
 *                                     this program, LD_PRELOAD as in `spawn`), each making
 *                                     one edit of PATH and exiting (the ack path: a process
 *                                     with the library waits for its last ack at exit)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Wall time; with BENCH_CPU=1 in the environment, the CPU time this
 * process used (user + kernel): what a kernel mechanism such as fanotify
 * costs the caller, without the time spent waiting for the disk. */
static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(getenv("BENCH_CPU") ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench-loop: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* 4 KiB of text that differs for every (seed, i). */
static void fill(char *buf, long seed, long i) {
    int n = snprintf(buf, 4096, "# edit %ld of run %ld\n", i, seed);
    for (int k = n; k < 4095; k++) buf[k] = (char)('a' + (k + i) % 26);
    buf[4095] = '\n';
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of bench-loop.c\n");
        return 2;
    }
    const char *mode = argv[1];
    static char buf[4096];
    long long t0, t1;

    if (strcmp(mode, "openclose") == 0 && argc == 4) {
        const char *path = argv[2];
        long n = atol(argv[3]);
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            int fd = open(path, O_RDONLY);
            if (fd < 0) die("open");
            if (close(fd) != 0) die("close");
        }
        t1 = now_ns();
    } else if (strcmp(mode, "untracked") == 0 && argc == 4) {
        const char *path = argv[2];
        long n = atol(argv[3]);
        memset(buf, 'x', sizeof buf);
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) die("open");
            write_all(fd, buf, sizeof buf);
            if (close(fd) != 0) die("close");
        }
        t1 = now_ns();
    } else if ((strcmp(mode, "spawn") == 0 && argc == 4) || (strcmp(mode, "spawn-edit") == 0 && argc == 5)) {
        int edit = mode[5] == '-';
        long n = atol(argv[2]);
        const char *prog = edit ? "/proc/self/exe" : argv[3];
        /* The children's environment: ours, plus LD_PRELOAD if asked. */
        const char *pre = getenv("BENCH_CHILD_PRELOAD");
        size_t count = 0;
        while (environ[count]) count++;
        char **env = calloc(count + 2, sizeof *env);
        size_t k = 0;
        for (size_t i = 0; i < count; i++)
            if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
        char preload[4096];
        if (pre && *pre) {
            snprintf(preload, sizeof preload, "LD_PRELOAD=%s", pre);
            env[k++] = preload;
        }
        env[k] = NULL;
        char seed[32];
        char *child_argv[] = {(char *)prog, NULL, NULL, NULL, NULL, NULL};
        if (edit) {
            child_argv[1] = "edit";
            child_argv[2] = argv[3];
            child_argv[3] = "1";
            child_argv[4] = seed;
        }
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            snprintf(seed, sizeof seed, "%ld", atol(argv[argc - 1]) * 1000000 + i);
            pid_t pid = fork();
            if (pid < 0) die("fork");
            if (pid == 0) {
                if (edit) {  /* the child prints its own time: not ours */
                    int null = open("/dev/null", O_WRONLY);
                    if (null >= 0) dup2(null, 1);
                }
                execve(prog, child_argv, env);
                _exit(127);
            }
            int status;
            if (waitpid(pid, &status, 0) < 0) die("waitpid");
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench-loop: %s failed (status %d)\n", prog, status);
                return 1;
            }
        }
        t1 = now_ns();
    } else if (strcmp(mode, "edit") == 0 && argc == 5) {
        const char *path = argv[2];
        long n = atol(argv[3]);
        long seed = atol(argv[4]);
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            fill(buf, seed, i);
            int fd = open(path, O_WRONLY | O_TRUNC);
            if (fd < 0) die("open");
            write_all(fd, buf, sizeof buf);
            if (close(fd) != 0) die("close");
        }
        t1 = now_ns();
    } else {
        fprintf(stderr, "bench-loop: bad arguments (see bench-loop.c)\n");
        return 2;
    }
    printf("%lld\n", t1 - t0);
    return 0;
}
