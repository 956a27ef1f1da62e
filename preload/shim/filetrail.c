/*
 * libfiletrail.so — the object that LD_PRELOAD puts into every process of a
 * human session. It only interposes libc's file calls and stays tiny, because
 * every process pays for loading it: a Rust cdylib costs ~1.27x on fork+exec
 * of /bin/true here (its size and the libgcc_s it drags in), this shim ~1.05x
 * (docs/architecture.md, "Two stages").
 *
 * Every hook: cheap check -> (most calls) the real function. Only a call that
 * may change a file (an open for writing, rename, unlink, link, truncate,
 * mkstemp, chmod/chown, or a close/dup of a descriptor the core tracks) loads the Rust core
 * (libfiletrail_core.so, next to this file) with dlopen, once per process,
 * and calls into it around the real call. The core does all the thinking;
 * this file only moves arguments, and keeps the hook order:
 *   guard -> core "before" -> real call -> core "after" -> return real result.
 * The core's entry points preserve errno and never unwind into C.
 *
 * The re-entrancy guard is a thread-local flag: while a thread is inside the
 * core, every hooked call it makes goes straight to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- the core's entry points (preload/src/api.rs) ---- */
struct core {
    int (*off)(void);
    int (*may_track_close)(int fd);
    int (*may_track_range)(unsigned first, unsigned last);
    void *(*open_before)(int dirfd, const char *path, int flags);
    void (*open_after)(void *pending, int fd);
    void (*created)(int dirfd, const char *path, int fd);
    int (*close_before)(int fd, void **closing);
    void *(*fclose_before)(int fd);
    void (*closed)(void *closing);
    void (*replace_before)(int oldfd, int newfd);
    void (*dup_after)(int oldfd, int newfd);
    void (*close_range_before)(unsigned first, unsigned last);
    void *(*rename_before)(int olddir, const char *old, int newdir, const char *new_);
    void (*rename_after)(void *pending, int ok);
    void *(*unlink_before)(int dirfd, const char *path);
    void (*unlink_after)(void *pending, int ok);
    void *(*truncate_before)(const char *path);
    void (*truncate_after)(void *pending, int ok);
    void *(*link_before)(int newdir, const char *new_);
    void (*link_after)(void *pending, int ok);
    void *(*attrib_before)(int dirfd, const char *path, int flags);
    void (*attrib_after)(void *pending, int ok);
    void (*at_exit)(void);
};

static struct core core_fns;
/* 0 = not tried, 1 = loaded, 2 = unavailable (stay out for good). */
static atomic_int core_state;
static atomic_int owner_pid;
/* initial-exec: the shim is loaded at start-up (LD_PRELOAD), so its TLS is
 * static and reading the flag is one instruction, not a __tls_get_addr call. */
static __thread int inside __attribute__((tls_model("initial-exec")));

static pid_t raw_getpid(void) { return (pid_t)syscall(SYS_getpid); }

static void on_fork_child(void) { atomic_store(&owner_pid, raw_getpid()); }

/* At load: remember whose memory this is (a vfork child shares it and must
 * not dlopen). Two cheap calls; nothing else happens at load. */
__attribute__((constructor)) static void on_load(void) {
    atomic_store(&owner_pid, raw_getpid());
    pthread_atfork(NULL, NULL, on_fork_child);
}

/* The process is exiting: the core waits briefly for the collector to
 * confirm what it was sent, or spools it. Only for the process that loaded
 * the core (not a vfork child sharing its memory) and not from inside a
 * hook (a signal handler calling _exit while this thread was in the core). */
static void exiting(void) {
    if (atomic_load_explicit(&core_state, memory_order_acquire) != 1 || inside) return;
    if (raw_getpid() != atomic_load(&owner_pid)) return;
    inside = 1;
    int saved = errno;
    core_fns.at_exit();
    errno = saved;
    inside = 0;
}

#define CORE_SYM(field, name)                                  \
    do {                                                       \
        *(void **)(&core_fns.field) = dlsym(handle, name);     \
        if (!core_fns.field) return 0;                         \
    } while (0)

static int load_core_now(void) {
    Dl_info self;
    if (!dladdr((void *)load_core_now, &self) || !self.dli_fname) return 0;
    const char *slash = strrchr(self.dli_fname, '/');
    size_t dir = slash ? (size_t)(slash - self.dli_fname + 1) : 0;
    static const char name[] = "libfiletrail_core.so";
    char path[4096];
    if (dir + sizeof name > sizeof path) return 0;
    memcpy(path, self.dli_fname, dir);
    memcpy(path + dir, name, sizeof name);
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return 0;
    CORE_SYM(off, "ft_off");
    CORE_SYM(may_track_close, "ft_may_track_close");
    CORE_SYM(may_track_range, "ft_may_track_range");
    CORE_SYM(open_before, "ft_open_before");
    CORE_SYM(open_after, "ft_open_after");
    CORE_SYM(created, "ft_created");
    CORE_SYM(close_before, "ft_close_before");
    CORE_SYM(fclose_before, "ft_fclose_before");
    CORE_SYM(closed, "ft_closed");
    CORE_SYM(replace_before, "ft_replace_before");
    CORE_SYM(dup_after, "ft_dup_after");
    CORE_SYM(close_range_before, "ft_close_range_before");
    CORE_SYM(rename_before, "ft_rename_before");
    CORE_SYM(rename_after, "ft_rename_after");
    CORE_SYM(unlink_before, "ft_unlink_before");
    CORE_SYM(unlink_after, "ft_unlink_after");
    CORE_SYM(truncate_before, "ft_truncate_before");
    CORE_SYM(truncate_after, "ft_truncate_after");
    CORE_SYM(link_before, "ft_link_before");
    CORE_SYM(link_after, "ft_link_after");
    CORE_SYM(attrib_before, "ft_attrib_before");
    CORE_SYM(attrib_after, "ft_attrib_after");
    CORE_SYM(at_exit, "ft_at_exit");
    atexit(exiting);
    return 1;
}

/* Enters the core for a call that may change a file, loading it on first
 * need. Returns 0 (call libc only) when re-entered, when the core cannot be
 * loaded, in a vfork child that has not loaded it, or while it is off. */
static int enter(void) {
    if (inside) return 0;
    int state = atomic_load_explicit(&core_state, memory_order_acquire);
    if (state == 2) return 0;
    inside = 1;
    if (state == 0) {
        if (raw_getpid() != atomic_load(&owner_pid)) { inside = 0; return 0; }
        int saved = errno;
        int ok = load_core_now();
        errno = saved;
        atomic_store_explicit(&core_state, ok ? 1 : 2, memory_order_release);
        if (!ok) { inside = 0; return 0; }
    }
    if (core_fns.off()) {
        /* No collector answered this process yet, and it is not time to
         * try again (the core retries at most once a second): libc only. */
        inside = 0;
        return 0;
    }
    return 1;
}

static void leave(void) { inside = 0; }

/* For close/dup: only when the core is already loaded and tracks something. */
static int enter_if_tracking(int fd) {
    if (atomic_load_explicit(&core_state, memory_order_acquire) != 1 || inside) return 0;
    if (!core_fns.may_track_close(fd)) return 0;
    inside = 1;
    return 1;
}

/* ---- real functions: dlsym(RTLD_NEXT) once each ---- */
#define UNPAREN(...) __VA_ARGS__
#define REAL(ret, name, ...)                                                   \
    static ret (*real_##name)(__VA_ARGS__);                                    \
    if (!real_##name) {                                                        \
        *(void **)(&real_##name) = dlsym(RTLD_NEXT, #name);                    \
        if (!real_##name) { errno = ENOSYS; return MISSING; }                  \
    }

static int writes(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

static int needs_mode(int flags) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

static int fopen_flags(const char *mode) {
    int plus = mode && strchr(mode, '+') != NULL;
    switch (mode ? mode[0] : 'r') {
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    case 'a': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    default: return plus ? O_RDWR : O_RDONLY;
    }
}

#define MISSING -1

/* The body of every open-like hook returning a descriptor. */
#define TRACKED_OPEN(dirfd, path, flags, CALL)                      \
    do {                                                            \
        if (!writes(flags) || !(path) || !enter()) return CALL;     \
        void *pending_ = core_fns.open_before(dirfd, path, flags);  \
        int fd_ = CALL;                                             \
        if (pending_) core_fns.open_after(pending_, fd_);           \
        leave();                                                    \
        return fd_;                                                 \
    } while (0)

#define MODE_ARG(flags)                                             \
    mode_t mode = 0;                                                \
    if (needs_mode(flags)) {                                        \
        va_list ap;                                                 \
        va_start(ap, flags);                                        \
        mode = va_arg(ap, int);                                     \
        va_end(ap);                                                 \
    }

#define OPEN_HOOK(name)                                                        \
    EXPORT int name(const char *path, int flags, ...) {                        \
        REAL(int, name, const char *, int, ...);                               \
        MODE_ARG(flags);                                                       \
        TRACKED_OPEN(AT_FDCWD, path, flags, real_##name(path, flags, mode));   \
    }
OPEN_HOOK(open)
OPEN_HOOK(open64)

#define OPENAT_HOOK(name)                                                          \
    EXPORT int name(int dirfd, const char *path, int flags, ...) {                 \
        REAL(int, name, int, const char *, int, ...);                              \
        MODE_ARG(flags);                                                           \
        TRACKED_OPEN(dirfd, path, flags, real_##name(dirfd, path, flags, mode));   \
    }
OPENAT_HOOK(openat)
OPENAT_HOOK(openat64)

/* Fortified variants: callers use them only without O_CREAT/O_TMPFILE. */
#define FORTIFIED_OPEN_HOOK(name)                                          \
    EXPORT int name(const char *path, int flags) {                         \
        REAL(int, name, const char *, int);                                \
        TRACKED_OPEN(AT_FDCWD, path, flags, real_##name(path, flags));     \
    }
FORTIFIED_OPEN_HOOK(__open_2)
FORTIFIED_OPEN_HOOK(__open64_2)

#define FORTIFIED_OPENAT_HOOK(name)                                            \
    EXPORT int name(int dirfd, const char *path, int flags) {                  \
        REAL(int, name, int, const char *, int);                               \
        TRACKED_OPEN(dirfd, path, flags, real_##name(dirfd, path, flags));     \
    }
FORTIFIED_OPENAT_HOOK(__openat_2)
FORTIFIED_OPENAT_HOOK(__openat64_2)

#define CREAT_HOOK(name)                                                                  \
    EXPORT int name(const char *path, mode_t mode) {                                      \
        REAL(int, name, const char *, mode_t);                                            \
        TRACKED_OPEN(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, real_##name(path, mode)); \
    }
CREAT_HOOK(creat)
CREAT_HOOK(creat64)

/* mkstemp & co. create and open through libc-internal calls: report after. */
#define MKSTEMP_HOOK(name, PARAMS, ARGS, TYPES)                          \
    EXPORT int name PARAMS {                                             \
        REAL(int, name, UNPAREN TYPES);                                  \
        if (!template_ || !enter()) return real_##name ARGS;             \
        int fd = real_##name ARGS;                                       \
        if (fd >= 0) core_fns.created(AT_FDCWD, template_, fd);          \
        leave();                                                         \
        return fd;                                                       \
    }
MKSTEMP_HOOK(mkstemp, (char *template_), (template_), (char *))
MKSTEMP_HOOK(mkstemp64, (char *template_), (template_), (char *))
MKSTEMP_HOOK(mkostemp, (char *template_, int flags), (template_, flags), (char *, int))
MKSTEMP_HOOK(mkostemp64, (char *template_, int flags), (template_, flags), (char *, int))
MKSTEMP_HOOK(mkstemps, (char *template_, int suffixlen), (template_, suffixlen), (char *, int))
MKSTEMP_HOOK(mkstemps64, (char *template_, int suffixlen), (template_, suffixlen), (char *, int))
MKSTEMP_HOOK(mkostemps, (char *template_, int suffixlen, int flags), (template_, suffixlen, flags), (char *, int, int))
MKSTEMP_HOOK(mkostemps64, (char *template_, int suffixlen, int flags), (template_, suffixlen, flags), (char *, int, int))

#undef MISSING
#define MISSING NULL

#define FOPEN_HOOK(name)                                                         \
    EXPORT FILE *name(const char *path, const char *mode) {                      \
        REAL(FILE *, name, const char *, const char *);                          \
        int flags = fopen_flags(mode);                                           \
        if (!writes(flags) || !path || !enter()) return real_##name(path, mode); \
        void *pending = core_fns.open_before(AT_FDCWD, path, flags);             \
        FILE *fp = real_##name(path, mode);                                      \
        if (pending) core_fns.open_after(pending, fp ? fileno(fp) : -1);         \
        leave();                                                                 \
        return fp;                                                               \
    }
FOPEN_HOOK(fopen)
FOPEN_HOOK(fopen64)

/* freopen closes the stream's file and opens another, both inside libc. */
#define FREOPEN_HOOK(name)                                                             \
    EXPORT FILE *name(const char *path, const char *mode, FILE *stream) {              \
        REAL(FILE *, name, const char *, const char *, FILE *);                        \
        if (!stream || !enter()) return real_##name(path, mode, stream);               \
        int old = fileno(stream);                                                      \
        void *closing = (path && old >= 0 && core_fns.may_track_close(old))            \
                            ? core_fns.fclose_before(old) : NULL;                      \
        int flags = fopen_flags(mode);                                                 \
        void *pending = (path && writes(flags)) ? core_fns.open_before(AT_FDCWD, path, flags) : NULL; \
        FILE *fp = real_##name(path, mode, stream);                                    \
        if (closing) core_fns.closed(closing);                                         \
        if (pending) core_fns.open_after(pending, fp ? fileno(fp) : -1);               \
        leave();                                                                       \
        return fp;                                                                     \
    }
FREOPEN_HOOK(freopen)
FREOPEN_HOOK(freopen64)

#undef MISSING
#define MISSING EOF

/* fclose flushes and closes inside libc, not through the close hook. */
EXPORT int fclose(FILE *fp) {
    REAL(int, fclose, FILE *);
    int fd = fp ? fileno(fp) : -1;
    if (fd < 0 || !enter_if_tracking(fd)) return real_fclose(fp);
    void *closing = core_fns.fclose_before(fd);
    int r = real_fclose(fp);
    if (closing) core_fns.closed(closing);
    leave();
    return r;
}

#undef MISSING
#define MISSING -1

EXPORT int close(int fd) {
    REAL(int, close, int);
    if (!enter_if_tracking(fd)) return real_close(fd);
    void *closing = NULL;
    int action = core_fns.close_before(fd, &closing);
    if (action == 1) { /* the program closed the core's own socket, which it never opened */
        leave();
        errno = EBADF;
        return -1;
    }
    /* The last descriptor of a tracked open: read the after once it is closed. */
    int r = real_close(fd);
    if (closing) core_fns.closed(closing);
    leave();
    return r;
}

EXPORT int close_range(unsigned first, unsigned last, int flags) {
    REAL(int, close_range, unsigned, unsigned, int);
    if (!(flags & CLOSE_RANGE_CLOEXEC) && !inside && atomic_load(&core_state) == 1 &&
        core_fns.may_track_range(first, last)) {
        inside = 1;
        core_fns.close_range_before(first, last);
        inside = 0;
    }
    return real_close_range(first, last, flags);
}

#undef MISSING
#define MISSING

EXPORT void closefrom(int first) {
    REAL(void, closefrom, int);
    unsigned from = first < 0 ? 0u : (unsigned)first;
    if (!inside && atomic_load(&core_state) == 1 && core_fns.may_track_range(from, ~0u)) {
        inside = 1;
        core_fns.close_range_before(from, ~0u);
        inside = 0;
    }
    real_closefrom(first);
}

#undef MISSING
#define MISSING -1

static void observe_dup(int oldfd, int newfd) {
    if (newfd >= 0 && enter_if_tracking(oldfd)) {
        core_fns.dup_after(oldfd, newfd);
        leave();
    }
}

EXPORT int dup(int fd) {
    REAL(int, dup, int);
    int r = real_dup(fd);
    observe_dup(fd, r);
    return r;
}

/* dup2/dup3 replace `newfd`, which may end a tracked open. */
#define DUP_HOOK(name, PARAMS, ARGS, TYPES)                         \
    EXPORT int name PARAMS {                                        \
        REAL(int, name, UNPAREN TYPES);                             \
        if (!enter_if_tracking(newfd)) {                            \
            int r = real_##name ARGS;                               \
            observe_dup(oldfd, r);                                  \
            return r;                                               \
        }                                                           \
        core_fns.replace_before(oldfd, newfd);                      \
        int r = real_##name ARGS;                                   \
        if (r >= 0) core_fns.dup_after(oldfd, r);                   \
        leave();                                                    \
        return r;                                                   \
    }
DUP_HOOK(dup2, (int oldfd, int newfd), (oldfd, newfd), (int, int))
DUP_HOOK(dup3, (int oldfd, int newfd, int flags), (oldfd, newfd, flags), (int, int, int))

/* fcntl's third argument is an int or a pointer; glibc reads it as a pointer too. */
#define FCNTL_HOOK(name)                                                   \
    EXPORT int name(int fd, int cmd, ...) {                                \
        REAL(int, name, int, int, ...);                                    \
        va_list ap;                                                        \
        va_start(ap, cmd);                                                 \
        void *arg = va_arg(ap, void *);                                    \
        va_end(ap);                                                        \
        int r = real_##name(fd, cmd, arg);                                 \
        if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) observe_dup(fd, r);  \
        return r;                                                          \
    }
FCNTL_HOOK(fcntl)
FCNTL_HOOK(fcntl64)

/* ---- calls that change a file by name ---- */
#define TRACKED_NAME(BEFORE, AFTER, CALL)                   \
    do {                                                    \
        if (!enter()) return CALL;                          \
        void *pending_ = BEFORE;                            \
        int r_ = CALL;                                      \
        if (pending_) AFTER(pending_, r_ == 0);             \
        leave();                                            \
        return r_;                                          \
    } while (0)

EXPORT int rename(const char *old, const char *new_) {
    REAL(int, rename, const char *, const char *);
    if (!old || !new_) return real_rename(old, new_);
    TRACKED_NAME(core_fns.rename_before(AT_FDCWD, old, AT_FDCWD, new_), core_fns.rename_after, real_rename(old, new_));
}

EXPORT int renameat(int olddir, const char *old, int newdir, const char *new_) {
    REAL(int, renameat, int, const char *, int, const char *);
    if (!old || !new_) return real_renameat(olddir, old, newdir, new_);
    TRACKED_NAME(core_fns.rename_before(olddir, old, newdir, new_), core_fns.rename_after,
                 real_renameat(olddir, old, newdir, new_));
}

/* RENAME_EXCHANGE swaps two files: passed through unrecorded. */
EXPORT int renameat2(int olddir, const char *old, int newdir, const char *new_, unsigned flags) {
    REAL(int, renameat2, int, const char *, int, const char *, unsigned);
    if (!old || !new_ || (flags & RENAME_EXCHANGE)) return real_renameat2(olddir, old, newdir, new_, flags);
    TRACKED_NAME(core_fns.rename_before(olddir, old, newdir, new_), core_fns.rename_after,
                 real_renameat2(olddir, old, newdir, new_, flags));
}

EXPORT int unlink(const char *path) {
    REAL(int, unlink, const char *);
    if (!path) return real_unlink(path);
    TRACKED_NAME(core_fns.unlink_before(AT_FDCWD, path), core_fns.unlink_after, real_unlink(path));
}

EXPORT int unlinkat(int dirfd, const char *path, int flags) {
    REAL(int, unlinkat, int, const char *, int);
    if (!path || (flags & AT_REMOVEDIR)) return real_unlinkat(dirfd, path, flags);
    TRACKED_NAME(core_fns.unlink_before(dirfd, path), core_fns.unlink_after, real_unlinkat(dirfd, path, flags));
}

/* remove() unlinks through libc-internal calls the unlink hook never sees. */
EXPORT int remove(const char *path) {
    REAL(int, remove, const char *);
    if (!path) return real_remove(path);
    TRACKED_NAME(core_fns.unlink_before(AT_FDCWD, path), core_fns.unlink_after, real_remove(path));
}

EXPORT int truncate(const char *path, off_t len) {
    REAL(int, truncate, const char *, off_t);
    if (!path) return real_truncate(path, len);
    TRACKED_NAME(core_fns.truncate_before(path), core_fns.truncate_after, real_truncate(path, len));
}

EXPORT int truncate64(const char *path, off64_t len) {
    REAL(int, truncate64, const char *, off64_t);
    if (!path) return real_truncate64(path, len);
    TRACKED_NAME(core_fns.truncate_before(path), core_fns.truncate_after, real_truncate64(path, len));
}

EXPORT int link(const char *old, const char *new_) {
    REAL(int, link, const char *, const char *);
    if (!new_) return real_link(old, new_);
    TRACKED_NAME(core_fns.link_before(AT_FDCWD, new_), core_fns.link_after, real_link(old, new_));
}

/* Also how an O_TMPFILE file gets its name. */
EXPORT int linkat(int olddir, const char *old, int newdir, const char *new_, int flags) {
    REAL(int, linkat, int, const char *, int, const char *, int);
    if (!new_) return real_linkat(olddir, old, newdir, new_, flags);
    TRACKED_NAME(core_fns.link_before(newdir, new_), core_fns.link_after, real_linkat(olddir, old, newdir, new_, flags));
}

/* ---- mode and owner: chmod, chown and their f/l/at variants ----
 * A null path tells the core the call acts on the descriptor (fchmod). */
#define ATTRIB(dirfd, path, flags, CALL) \
    TRACKED_NAME(core_fns.attrib_before(dirfd, path, flags), core_fns.attrib_after, CALL)

EXPORT int chmod(const char *path, mode_t mode) {
    REAL(int, chmod, const char *, mode_t);
    if (!path) return real_chmod(path, mode);
    ATTRIB(AT_FDCWD, path, 0, real_chmod(path, mode));
}

EXPORT int fchmod(int fd, mode_t mode) {
    REAL(int, fchmod, int, mode_t);
    if (fd < 0) return real_fchmod(fd, mode);
    ATTRIB(fd, NULL, 0, real_fchmod(fd, mode));
}

EXPORT int fchmodat(int dirfd, const char *path, mode_t mode, int flags) {
    REAL(int, fchmodat, int, const char *, mode_t, int);
    if (!path) return real_fchmodat(dirfd, path, mode, flags);
    ATTRIB(dirfd, path, flags, real_fchmodat(dirfd, path, mode, flags));
}

EXPORT int chown(const char *path, uid_t owner, gid_t group) {
    REAL(int, chown, const char *, uid_t, gid_t);
    if (!path) return real_chown(path, owner, group);
    ATTRIB(AT_FDCWD, path, 0, real_chown(path, owner, group));
}

EXPORT int lchown(const char *path, uid_t owner, gid_t group) {
    REAL(int, lchown, const char *, uid_t, gid_t);
    if (!path) return real_lchown(path, owner, group);
    ATTRIB(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, real_lchown(path, owner, group));
}

EXPORT int fchown(int fd, uid_t owner, gid_t group) {
    REAL(int, fchown, int, uid_t, gid_t);
    if (fd < 0) return real_fchown(fd, owner, group);
    ATTRIB(fd, NULL, 0, real_fchown(fd, owner, group));
}

EXPORT int fchownat(int dirfd, const char *path, uid_t owner, gid_t group, int flags) {
    REAL(int, fchownat, int, const char *, uid_t, gid_t, int);
    if (!path) return real_fchownat(dirfd, path, owner, group, flags);
    ATTRIB(dirfd, path, flags, real_fchownat(dirfd, path, owner, group, flags));
}

/* ---- exit ---- */

/* A program that ends with _exit (dash does) skips atexit handlers: the
 * core's exit step runs here first. glibc's own exit() reaches _exit
 * internally, not through this symbol: the atexit handler covers it. */
#define EXIT_HOOK(name)                                     \
    EXPORT __attribute__((noreturn)) void name(int status) { \
        exiting();                                          \
        for (;;) syscall(SYS_exit_group, status);           \
    }
EXIT_HOOK(_exit)
EXIT_HOOK(_Exit)
