/*
 * child.c — the child side of the launch: executes a berth_plan between
 * clone3() and execve(). Category: code that runs between clone and execve.
 *
 * Rules here: only syscalls, stack and static memory. No malloc, no stdio, no
 * locks (the parent is a multi-threaded Swift process). Every failure is
 * reported to the parent as {stage, errno, detail} and ends in _exit(1).
 */
#include "berth_launch.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* The state JSON for container-side hooks arrives with GO. */
static char state_json[65536];
static size_t state_json_len;

static int sync_fd = -1;
static uint64_t child_marks[BERTH_MARK_COUNT];

static void mark(int which) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    child_marks[which] = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- small async-signal-safe helpers ---- */

void berth_copy(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    if (src) for (; src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = 0;
}

static size_t append(char *dst, size_t cap, size_t at, const char *src) {
    for (size_t i = 0; src && src[i] && at + 1 < cap; i++) dst[at++] = src[i];
    dst[at < cap ? at : cap - 1] = 0;
    return at;
}

static size_t append_int(char *dst, size_t cap, size_t at, long v) {
    char tmp[24]; int n = 0; int neg = v < 0;
    unsigned long u = neg ? (unsigned long)(-v) : (unsigned long)v;
    do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u && n < 22);
    if (neg && at + 1 < cap) dst[at++] = '-';
    while (n > 0 && at + 1 < cap) dst[at++] = tmp[--n];
    dst[at] = 0;
    return at;
}

/* "/proc/self/fd/N": the mount target of an fd resolved inside the rootfs. */
static void fd_path(char *buf, size_t cap, int fd) {
    size_t at = append(buf, cap, 0, "/proc/self/fd/");
    append_int(buf, cap, at, fd);
}

__attribute__((noreturn)) void berth_child_fail(int stage, int err, const char *detail) {
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = BERTH_SYNC_ERROR;
    msg.stage = stage;
    msg.err = err;
    berth_copy(msg.detail, sizeof msg.detail, detail);
    if (sync_fd >= 0) berth_sync_send(sync_fd, &msg);
    _exit(1);
}
#define FAIL(stage, detail) berth_child_fail((stage), errno, (detail))

static void send_type(int type) {
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    if (berth_sync_send(sync_fd, &msg) < 0) berth_child_fail(BERTH_STAGE_SYNC, errno, "send");
}

static void expect_type(int type) {
    struct berth_sync_msg msg;
    int r = berth_sync_recv(sync_fd, &msg);
    if (r < 0) berth_child_fail(BERTH_STAGE_SYNC, -r, "parent went away");
    if (msg.type != type) berth_child_fail(BERTH_STAGE_SYNC, EPROTO, "unexpected message");
}

/* A new network namespace has lo down: bring it up, as runc and docker's
 * "none" network do, so 127.0.0.1 works inside. */
static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) FAIL(BERTH_STAGE_LOOPBACK, "socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) FAIL(BERTH_STAGE_LOOPBACK, "SIOCGIFFLAGS lo");
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) FAIL(BERTH_STAGE_LOOPBACK, "SIOCSIFFLAGS lo up");
    }
    close(s);
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        buf += n; len -= (size_t)n;
    }
    return 0;
}

static int write_file(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = write_all(fd, value, strlen(value));
    int saved = errno;
    close(fd);
    errno = saved;
    return r;
}

/* A signal mask and handlers inherited from the Swift parent must not leak into the container. */
void berth_reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &sa, NULL);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* ---- path resolution inside the rootfs ---- */

static int openat2_in_root(int rootfd, const char *path, int flags) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    while (*path == '/') path++;
    if (*path == 0) path = ".";
    int fd;
    do { fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how); } while (fd < 0 && errno == EAGAIN);
    return fd;
}

/* Makes `name` in the directory `pfd`: an empty file or a directory, never through a symlink. */
static int make_name(int pfd, const char *name, int is_file) {
    if (!is_file) return mkdirat(pfd, name, 0755);
    int fd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* Create every missing component of `path` inside the rootfs; the last one
 * becomes a file when `is_file`. A symlink among the components is followed
 * inside the rootfs, never out of it: a dangling one has its target created
 * there (what a container would see), as runc's MkdirAllInRoot does.
 * Returns an O_PATH fd of the target. */
static int mkdir_in_root_depth(int rootfd, const char *path, int is_file, int depth) {
    int fd = openat2_in_root(rootfd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;
    if (depth > 40) { errno = ELOOP; return -1; }
    char prefix[4096];
    size_t len = strlen(path);
    if (len >= sizeof prefix) { errno = ENAMETOOLONG; return -1; }
    /* The common case, one resolution instead of one per component: only the last
     * component is missing, and it is not a dangling symlink (that takes the walk below). */
    const char *last = strrchr(path, '/');
    if (last && last[1]) {
        memcpy(prefix, path, (size_t)(last - path) + 1);
        prefix[last - path + 1] = 0;
        int pfd = openat2_in_root(rootfd, prefix, O_PATH | O_DIRECTORY);
        if (pfd >= 0) {
            char link[8];
            if (readlinkat(pfd, last + 1, link, sizeof link) < 0 && (errno == EINVAL || errno == ENOENT)) {
                int made = make_name(pfd, last + 1, is_file);
                int saved = errno;
                close(pfd);
                if (made == 0 || saved == EEXIST) return openat2_in_root(rootfd, path, O_PATH);
                errno = saved;
                return -1;
            }
            close(pfd); /* a dangling symlink: the walk follows it inside the root */
        } else if (errno != ENOENT) {
            return -1;
        }
    }
    for (size_t i = 1; i <= len; i++) {
        if (i != len && path[i] != '/') continue;
        if (path[i - 1] == '/') continue;
        memcpy(prefix, path, i);
        prefix[i] = 0;
        int probe = openat2_in_root(rootfd, prefix, O_PATH);
        if (probe >= 0) { close(probe); continue; }
        if (errno != ENOENT) return -1;
        /* split prefix into parent + name */
        size_t slash = i;
        while (slash > 0 && prefix[slash - 1] != '/') slash--;
        char parent[4096];
        memcpy(parent, prefix, slash);
        parent[slash] = 0;
        int pfd = openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY);
        if (pfd < 0) return -1;
        const char *name = prefix + slash;
        char link[4096];
        ssize_t n = readlinkat(pfd, name, link, sizeof link - 1);
        if (n > 0) {
            /* dangling symlink: continue with its target (inside the root) + the rest */
            link[n] = 0;
            close(pfd);
            char next[4096];
            size_t at = 0;
            if (link[0] != '/') at = append(next, sizeof next, 0, parent);
            at = append(next, sizeof next, at, link);
            append(next, sizeof next, at, path + i);
            return mkdir_in_root_depth(rootfd, next, is_file, depth + 1);
        }
        int r = make_name(pfd, name, i == len && is_file);
        int saved = errno;
        close(pfd);
        if (r < 0 && saved != EEXIST) { errno = saved; return -1; }
    }
    return openat2_in_root(rootfd, path, O_PATH);
}

static int mkdir_in_root(int rootfd, const char *path, int is_file) {
    return mkdir_in_root_depth(rootfd, path, is_file, 0);
}

/* Flags a bind remount must keep: in a user namespace the kernel locks them. */
static unsigned long locked_flags(const char *path) {
    struct statvfs st;
    if (statvfs(path, &st) < 0) return 0;
    unsigned long f = 0;
    if (st.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) f |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) f |= MS_RELATIME;
    if (st.f_flag & ST_RDONLY) f |= MS_RDONLY;
    return f;
}

static void do_mount(int rootfd, const struct berth_mount *m) {
    int fd = mkdir_in_root(rootfd, m->target, m->bind && m->target_is_file);
    if (fd < 0) FAIL(BERTH_STAGE_MOUNT_TARGET, m->target);
    char target[64];
    fd_path(target, sizeof target, fd);
    unsigned long flags = m->flags;
    const char *fstype = m->bind ? NULL : m->fstype;
    if (mount(m->source, target, fstype, flags, m->data) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        FAIL(BERTH_STAGE_MOUNT, m->target);
    }
    close(fd);
    if (!m->remount_flags && !m->propagation) return;
    /* Reopen: the earlier fd names the directory under the new mount. */
    fd = openat2_in_root(rootfd, m->target, O_PATH);
    if (fd < 0) FAIL(BERTH_STAGE_MOUNT_TARGET, m->target);
    fd_path(target, sizeof target, fd);
    if (m->remount_flags) {
        unsigned long keep = locked_flags(target) & ~(unsigned long)MS_RDONLY;
        if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | m->remount_flags | keep, NULL) < 0)
            FAIL(BERTH_STAGE_MOUNT_REMOUNT, m->target);
    }
    if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
        FAIL(BERTH_STAGE_MOUNT_PROPAGATION, m->target);
    close(fd);
}

static void make_device(int rootfd, const struct berth_device *d) {
    char parent[4096];
    berth_copy(parent, sizeof parent, d->path);
    char *slash = strrchr(parent, '/');
    const char *name = d->path;
    if (slash) { *slash = 0; name = d->path + (slash - parent) + 1; }
    int pfd = mkdir_in_root(rootfd, parent[0] ? parent : "/", 0);
    if (pfd < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
    close(pfd);
    pfd = openat2_in_root(rootfd, parent[0] ? parent : "/", O_PATH | O_DIRECTORY);
    if (pfd < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
    if (d->bind_from_host) {
        int f = openat(pfd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0000);
        if (f < 0 && errno != EEXIST) FAIL(BERTH_STAGE_DEVICE, d->path);
        if (f >= 0) close(f);
        int t = openat2_in_root(rootfd, d->path, O_PATH);
        if (t < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
        char target[64];
        fd_path(target, sizeof target, t);
        if (mount(d->path, target, NULL, MS_BIND, NULL) < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
        close(t);
    } else {
        unlinkat(pfd, name, 0); /* a device of the image may exist: the config wins */
        if (mknodat(pfd, name, d->mode, makedev(d->major, d->minor)) < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
        /* mknod applies the umask; set the exact mode and owner asked for */
        if (fchmodat(pfd, name, d->mode & 07777, 0) < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
        if (fchownat(pfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) FAIL(BERTH_STAGE_DEVICE, d->path);
    }
    close(pfd);
}

static void dev_symlinks(int rootfd) {
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"},
    };
    int dev = openat2_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    if (dev < 0) FAIL(BERTH_STAGE_DEV_SYMLINK, "/dev");
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (strcmp(links[i][1], "ptmx") == 0) unlinkat(dev, "ptmx", 0); /* a ptmx node must not shadow the pts one */
        if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST) FAIL(BERTH_STAGE_DEV_SYMLINK, links[i][1]);
    }
    close(dev);
}

/* ---- hooks run from inside the container's namespaces ---- */

static void run_hook(const struct berth_hook *h) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) FAIL(BERTH_STAGE_HOOK, h->path);
    /* raw clone: glibc's fork() runs atfork handlers that may take locks */
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) FAIL(BERTH_STAGE_HOOK, h->path);
    if (pid == 0) {
        dup2(p[0], 0);
        execve(h->path, h->argv, h->envp);
        _exit(127);
    }
    close(p[0]);
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old); /* a hook may not read its stdin */
    write_all(p[1], state_json, state_json_len);
    close(p[1]);
    sigaction(SIGPIPE, &old, NULL);
    long waited_ms = 0;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, h->timeout > 0 ? WNOHANG : 0);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) FAIL(BERTH_STAGE_HOOK, h->path);
        if (r == 0) {
            if (waited_ms >= (long)h->timeout * 1000) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                berth_child_fail(BERTH_STAGE_HOOK, ETIMEDOUT, h->path);
            }
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
            waited_ms += 2;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char detail[BERTH_DETAIL_MAX];
        size_t at = append(detail, sizeof detail, 0, h->path);
        if (WIFEXITED(status)) { at = append(detail, sizeof detail, at, " exited with status "); append_int(detail, sizeof detail, at, WEXITSTATUS(status)); }
        else { at = append(detail, sizeof detail, at, " killed by signal "); append_int(detail, sizeof detail, at, WTERMSIG(status)); }
        berth_child_fail(BERTH_STAGE_HOOK, 0, detail);
    }
}

/* ---- the root switch ---- */

static void switch_root(const struct berth_plan *p) {
    if (p->no_pivot) {
        /* chroot after MS_MOVE: for a rootfs on a ramfs, where pivot_root is refused */
        if (chdir(p->rootfs) < 0) FAIL(BERTH_STAGE_CHROOT, p->rootfs);
        if (mount(p->rootfs, "/", NULL, MS_MOVE, NULL) < 0) FAIL(BERTH_STAGE_CHROOT, p->rootfs);
        if (chroot(".") < 0) FAIL(BERTH_STAGE_CHROOT, p->rootfs);
        if (chdir("/") < 0) FAIL(BERTH_STAGE_CHROOT, "/");
        return;
    }
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, "/");
    int newroot = open(p->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, p->rootfs);
    /* pivot_root(".", "."): the old root is stacked under the new one and
     * detached right away, so no directory for it is needed in the rootfs. */
    if (fchdir(newroot) < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, p->rootfs);
    if (syscall(SYS_pivot_root, ".", ".") < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, p->rootfs);
    if (fchdir(oldroot) < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, "old root");
    /* slave first, so the detach below does not propagate to the host */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, "old root");
    if (umount2(".", MNT_DETACH) < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, "old root");
    if (chdir("/") < 0) FAIL(BERTH_STAGE_PIVOT_ROOT, "/");
    close(oldroot);
    close(newroot);
}

static void mask_path(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT) return;
        FAIL(BERTH_STAGE_MASK_PATH, path);
    }
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0,mode=0555")
                                : mount("/dev/null", path, NULL, MS_BIND, NULL);
    if (r < 0 && errno != ENOENT) FAIL(BERTH_STAGE_MASK_PATH, path);
}

static void readonly_path(const char *path) {
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT) return;
        FAIL(BERTH_STAGE_READONLY_PATH, path);
    }
    unsigned long keep = locked_flags(path);
    if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep, NULL) < 0)
        FAIL(BERTH_STAGE_READONLY_PATH, path);
}

static int seccomp_notifies(const struct berth_plan *p) {
    return p->seccomp_filter && (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER);
}

/* With SCMP_ACT_NOTIFY the kernel returns the listener fd: it goes to the
 * parent at once (one sendmsg, which the compiler refuses to notify), so the
 * agent holds it before any later syscall of ours can wait for an answer. */
static void load_seccomp(const struct berth_plan *p) {
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, p->seccomp_filter);
    if (r < 0) FAIL(BERTH_STAGE_SECCOMP, "seccomp load");
    if (!seccomp_notifies(p)) return;
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = BERTH_SYNC_SECCOMP_FD;
    if (berth_send_fd(sync_fd, (int)r, (const char *)&msg, (int)sizeof msg) < 0) FAIL(BERTH_STAGE_SECCOMP, "send listener fd");
    close((int)r);
}

/* ---- the process part, shared by init and exec ---- */

static int send_fd(int sock, int fd) {
    static const char name[] = "berth-pty";
    return berth_send_fd(sock, fd, name, (int)sizeof name - 1);
}

/* Open a pty from the container's devpts, send the master over the console
 * socket (as runc does), make the slave the controlling terminal and stdio. */
static void setup_terminal(const struct berth_plan *p) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) FAIL(BERTH_STAGE_TERMINAL, "/dev/ptmx");
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) FAIL(BERTH_STAGE_TERMINAL, "unlockpt");
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) FAIL(BERTH_STAGE_TERMINAL, "open pty peer");
    if (p->console_rows || p->console_cols) {
        struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
        ioctl(master, TIOCSWINSZ, &ws);
    }
    if (fchown(slave, p->uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM) FAIL(BERTH_STAGE_TERMINAL, "chown pty");
    if (p->console_socket_fd >= 0) {
        if (send_fd(p->console_socket_fd, master) < 0) FAIL(BERTH_STAGE_CONSOLE_SOCKET, "send pty master");
        close(p->console_socket_fd);
    }
    close(master);
    if (setsid() < 0 && errno != EPERM) FAIL(BERTH_STAGE_TERMINAL, "setsid");
    if (ioctl(slave, TIOCSCTTY, 0) < 0) FAIL(BERTH_STAGE_TERMINAL, "TIOCSCTTY");
    for (int i = 0; i < 3; i++)
        if (dup3(slave, i, 0) < 0) FAIL(BERTH_STAGE_TERMINAL, "dup pty");
    if (slave > 2) close(slave);
}

static void apply_rlimits(const struct berth_plan *p) {
    for (int i = 0; i < p->rlimit_count; i++) {
        struct rlimit64 rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
        if (prlimit64(0, p->rlimits[i].resource, &rl, NULL) < 0) {
            char detail[32];
            append_int(detail, sizeof detail, 0, p->rlimits[i].resource);
            FAIL(BERTH_STAGE_RLIMIT, detail);
        }
    }
}

static void apply_identity(const struct berth_plan *p) {
    if (p->caps_set) {
        /* Bounding set first: dropping needs CAP_SETPCAP, which setuid may take away. */
        for (int cap = 0; cap < 64; cap++) {
            if (p->cap_bounding & (1ULL << cap)) continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) FAIL(BERTH_STAGE_CAPS_BOUNDING, "PR_CAPBSET_DROP");
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) FAIL(BERTH_STAGE_CAPS, "PR_SET_KEEPCAPS");
    }
    if (setgroups((size_t)p->additional_gid_count, (const gid_t *)p->additional_gids) < 0) {
        /* in a user namespace with setgroups "deny" an empty list is already in force */
        if (!(p->userns && errno == EPERM && p->additional_gid_count == 0)) FAIL(BERTH_STAGE_SETGROUPS, "setgroups");
    }
    if (setresgid(p->gid, p->gid, p->gid) < 0) FAIL(BERTH_STAGE_SETGID, "setresgid");
    if (setresuid(p->uid, p->uid, p->uid) < 0) FAIL(BERTH_STAGE_SETUID, "setresuid");
    if (p->caps_set) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) FAIL(BERTH_STAGE_CAPS, "PR_SET_KEEPCAPS");
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        for (int i = 0; i < 2; i++) {
            data[i].effective = (uint32_t)(p->cap_effective >> (32 * i));
            data[i].permitted = (uint32_t)(p->cap_permitted >> (32 * i));
            data[i].inheritable = (uint32_t)(p->cap_inheritable >> (32 * i));
        }
        if (syscall(SYS_capset, &hdr, data) < 0) FAIL(BERTH_STAGE_CAPS, "capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) FAIL(BERTH_STAGE_CAPS_AMBIENT, "clear");
        for (int cap = 0; cap < 64; cap++) {
            if (!(p->cap_ambient & (1ULL << cap))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) FAIL(BERTH_STAGE_CAPS_AMBIENT, "raise");
        }
    }
    if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) FAIL(BERTH_STAGE_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS");
    if (p->umask >= 0) umask((mode_t)p->umask);
    if (p->cwd && chdir(p->cwd) < 0) FAIL(BERTH_STAGE_CWD, p->cwd);
}

/* argv[0] looked up in the container's PATH, as execvp would, before `start`:
 * a missing binary is an error of `create`, not a silent exit 127 later. */
static char exec_path[4096];

static void lookup_exec(const struct berth_plan *p) {
    const char *name = p->argv[0];
    if (strchr(name, '/')) {
        berth_copy(exec_path, sizeof exec_path, name);
        if (faccessat(AT_FDCWD, exec_path, X_OK, AT_EACCESS) < 0) FAIL(BERTH_STAGE_EXEC_LOOKUP, name);
        return;
    }
    const char *path = p->path_env ? p->path_env : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int last_err = ENOENT;
    while (*path) {
        size_t n = 0;
        while (path[n] && path[n] != ':') n++;
        size_t at = 0;
        if (n == 0) at = append(exec_path, sizeof exec_path, 0, ".");
        else { for (size_t i = 0; i < n && at + 1 < sizeof exec_path; i++) exec_path[at++] = path[i]; exec_path[at] = 0; }
        at = append(exec_path, sizeof exec_path, at, "/");
        append(exec_path, sizeof exec_path, at, name);
        struct stat st;
        if (stat(exec_path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (faccessat(AT_FDCWD, exec_path, X_OK, AT_EACCESS) == 0) return;
            last_err = errno;
        }
        path += n;
        if (*path == ':') path++;
    }
    berth_child_fail(BERTH_STAGE_EXEC_LOOKUP, last_err, name);
}

static void wait_for_start(const struct berth_plan *p) {
    if (p->exec_fifo_fd < 0) {
        expect_type(BERTH_SYNC_START);
        return;
    }
    /* `start` opens the fifo for writing and writes one byte. */
    struct pollfd pfd = {.fd = p->exec_fifo_fd, .events = POLLIN};
    for (;;) {
        int r = poll(&pfd, 1, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) FAIL(BERTH_STAGE_WAIT_START, "poll exec fifo");
        char c;
        ssize_t n = read(p->exec_fifo_fd, &c, 1);
        if (n == 1) break;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n == 0) { /* a writer came and went without a byte: keep waiting */
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        FAIL(BERTH_STAGE_WAIT_START, "read exec fifo");
    }
    close(p->exec_fifo_fd);
}


/* Exec berth-dmz from its sealed memfd; it execs exec_path (berth_dmz.c).
 * Returns only when the kernel refused (a seccomp profile without execveat,
 * a memfd that may not be executed): the caller then execs directly. */
static char dmz_entry[64 + sizeof exec_path];

static void exec_through_dmz(const struct berth_plan *p) {
    if (p->dmz_fd < 0 || !p->dmz_envp) return;
    size_t at = append(dmz_entry, sizeof dmz_entry, 0, "BERTH_DMZ_EXEC=");
    at = append_int(dmz_entry, sizeof dmz_entry, at, sync_fd);
    at = append(dmz_entry, sizeof dmz_entry, at, ":");
    append(dmz_entry, sizeof dmz_entry, at, exec_path);
    p->dmz_envp[p->dmz_env_count] = dmz_entry;
    p->dmz_envp[p->dmz_env_count + 1] = NULL;
    /* the sync socket stays open into berth-dmz, which reports a failed execve on it */
    if (fcntl(sync_fd, F_SETFD, 0) < 0) return;
    syscall(SYS_execveat, p->dmz_fd, "", p->argv, p->dmz_envp, AT_EMPTY_PATH);
    fcntl(sync_fd, F_SETFD, FD_CLOEXEC);
}

__attribute__((noreturn)) static void final_exec(const struct berth_plan *p) {
    for (int i = 0; i < p->start_container_hook_count; i++) run_hook(&p->start_container_hooks[i]);
    /* last: everything the runtime still needed to call is done */
    if (p->seccomp_filter && p->no_new_privs && !seccomp_notifies(p) && !p->seccomp_before_start) load_seccomp(p);
    /* Only stdio and --preserve-fds reach the container (CVE-2024-21626). */
    syscall(SYS_close_range, 3 + p->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    exec_through_dmz(p);
    /* keep the sync socket open across a failed execve, so its error is reported */
    /* ETXTBSY is transient: a process that forked while someone still had the
     * binary open for writing holds that fd until it execs. Retry for ~100 ms. */
    for (int attempt = 0; attempt < 50; attempt++) {
        execve(exec_path, p->argv, p->envp);
        if (errno != ETXTBSY) break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    FAIL(BERTH_STAGE_EXEC, exec_path);
}

/* The profile takes effect at the next execve (berth-dmz's, which then execs
 * the process under it), as runc applies it. The container's own /proc is used:
 * attr/apparmor/exec (5.8+), else the older shared attr/exec. */
static void apply_apparmor(const struct berth_plan *p) {
    char value[512];
    append(value, sizeof value, append(value, sizeof value, 0, "exec "), p->apparmor_profile);
    int fd = open("/proc/thread-self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) fd = open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
    if (fd < 0) FAIL(BERTH_STAGE_APPARMOR, p->apparmor_profile);
    ssize_t n;
    do { n = write(fd, value, strlen(value)); } while (n < 0 && errno == EINTR);
    if (n < 0) FAIL(BERTH_STAGE_APPARMOR, p->apparmor_profile);
    close(fd);
}

void berth_process_tail(const struct berth_plan *p) {
    if (p->apparmor_profile) apply_apparmor(p);
    if (p->terminal) setup_terminal(p);
    apply_rlimits(p);
    /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the capabilities go. */
    if (p->seccomp_filter && !p->no_new_privs) load_seccomp(p);
    apply_identity(p);
    lookup_exec(p);
    /* A listener must reach its agent before READY: load a notifying filter now. */
    if (p->seccomp_filter && p->no_new_privs && seccomp_notifies(p)) load_seccomp(p);
}

/* linux.devices, then the /dev symlinks, after the mounts that could cover them. */
static void make_devices(const struct berth_plan *p, int rootfd) {
    for (int i = 0; i < p->device_count; i++) make_device(rootfd, &p->devices[i]);
    if (p->dev_symlinks) dev_symlinks(rootfd);
}

static int only_cgroup_mounts_from(const struct berth_plan *p, int first) {
    for (int i = first; i < p->mount_count; i++)
        if (!p->mounts[i].needs_cgroups) return 0;
    return 1;
}

/* Writes "0" to each v1 tasks file (moving this task alone) and closes it. */
static void join_tasks(const int *fds, int count) {
    for (int i = 0; i < count; i++) {
        if (write(fds[i], "0", 1) < 0) FAIL(BERTH_STAGE_CGROUP_JOIN, "tasks");
        close(fds[i]);
    }
}

/* Into the container's cgroups, then its cgroup namespace (rooted where we
 * now are). With a deferred join the parent made the v1 cgroups while we
 * mounted: wait for CGROUPS and its tasks fds. Before any mount that shows a
 * cgroup, and before the hooks; once. */
static void enter_cgroups(const struct berth_plan *p) {
    static int entered;
    if (entered) return;
    entered = 1;
    mark(BERTH_MARK_CGROUPS_WAIT);
    if (p->defer_cgroup_join) {
        int fds[BERTH_MAX_CGROUP_FDS];
        int n = berth_sync_recv_fds(sync_fd, BERTH_SYNC_CGROUPS, fds, BERTH_MAX_CGROUP_FDS);
        if (n < 0) berth_child_fail(BERTH_STAGE_SYNC, -n, "cgroups from parent");
        join_tasks(fds, n);
    }
    if (p->unshare_cgroupns && unshare(CLONE_NEWCGROUP) < 0) FAIL(BERTH_STAGE_UNSHARE_CGROUP, "unshare(CLONE_NEWCGROUP)");
    mark(BERTH_MARK_CGROUPS);
}

/* ---- entry points ---- */

__attribute__((noreturn)) void berth_child_main(const struct berth_plan *p, int fd) {
    mark(BERTH_MARK_STARTED);
    sync_fd = fd;
    berth_reset_signals();
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);

    /* 1. Join the v1 cgroups ourselves: a single-threaded task writing "0" to
     *    `tasks` skips the RCU grace period a parent's cgroup.procs write pays.
     *    A deferred join happens in enter_cgroups, once the parent made them. */
    join_tasks(p->cgroup_task_fds, p->cgroup_task_fd_count);

    /* 2. GO: the parent has written the id maps and knows our pid. */
    expect_type(BERTH_SYNC_GO);
    ssize_t n;
    do { n = recv(sync_fd, state_json, sizeof state_json - 1, 0); } while (n < 0 && errno == EINTR);
    if (n < 0) FAIL(BERTH_STAGE_SYNC, "state");
    state_json_len = (size_t)n;
    mark(BERTH_MARK_GO);
    /* Non-dumpable from here to execve (CVE-2019-5736), not before GO: the
     * /proc/PID files of a non-dumpable task belong to root, and an
     * unprivileged parent could no longer write our uid_map and setgroups. */
    if (p->dumpable_off) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    if (p->userns) {
        /* become root of the new user namespace (0 is mapped by the config) */
        if (setresgid(0, 0, 0) < 0 && errno != EINVAL) FAIL(BERTH_STAGE_USERNS_IDENTITY, "setresgid 0");
        if (setresuid(0, 0, 0) < 0 && errno != EINVAL) FAIL(BERTH_STAGE_USERNS_IDENTITY, "setresuid 0");
    }
    for (int i = 0; i < p->join_count; i++) {
        if (p->joins[i].nstype == CLONE_NEWPID || p->joins[i].nstype == CLONE_NEWUSER) continue; /* done before the clone */
        if (setns(p->joins[i].fd, p->joins[i].nstype) < 0) FAIL(BERTH_STAGE_SETNS, p->joins[i].path);
        close(p->joins[i].fd);
    }
    /* Keys of the caller's session must not be reachable from the container. */
    if (p->new_session_keyring && syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0 && errno != ENOSYS)
        FAIL(BERTH_STAGE_KEYRING, "keyctl");
    if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0) FAIL(BERTH_STAGE_HOSTNAME, p->hostname);
    if (p->clone_flags & CLONE_NEWNET) loopback_up();
    if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0) FAIL(BERTH_STAGE_DOMAINNAME, p->domainname);
    if (p->oom_score_adj_set) {
        char v[24];
        append_int(v, sizeof v, 0, p->oom_score_adj);
        if (write_file("/proc/self/oom_score_adj", v) < 0) FAIL(BERTH_STAGE_OOM_SCORE_ADJ, v);
    }

    /* 3. Mounts. Nothing may propagate back to the host: "/" becomes a slave
     *    (or what rootfsPropagation asks) before the first mount. */
    if (p->clone_flags & CLONE_NEWNS) {
        unsigned long prop = p->rootfs_propagation ? p->rootfs_propagation : (MS_SLAVE | MS_REC);
        if (prop & MS_SHARED) prop = MS_SLAVE | MS_REC; /* shared applies to the rootfs mount below */
        if (mount(NULL, "/", NULL, prop, NULL) < 0) FAIL(BERTH_STAGE_ROOT_PROPAGATION, "/");
    }
    /* pivot_root needs the rootfs to be a mount point */
    if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) FAIL(BERTH_STAGE_ROOTFS_BIND, p->rootfs);
    if ((p->rootfs_propagation & MS_SHARED) && mount(NULL, p->rootfs, NULL, MS_SHARED | MS_REC, NULL) < 0)
        FAIL(BERTH_STAGE_ROOT_PROPAGATION, p->rootfs);
    int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) FAIL(BERTH_STAGE_ROOTFS_BIND, p->rootfs);
    int devices_made = 0;
    for (int i = 0; i < p->mount_count; i++) {
        if (p->mounts[i].needs_cgroups) {
            /* When only cgroup mounts remain, no later mount can cover /dev: make the
             * devices first, while the parent may still be making the cgroups. */
            if (!devices_made && only_cgroup_mounts_from(p, i)) { make_devices(p, rootfd); devices_made = 1; }
            enter_cgroups(p);
        }
        do_mount(rootfd, &p->mounts[i]);
    }
    enter_cgroups(p);
    if (!devices_made) make_devices(p, rootfd);
    close(rootfd);
    mark(BERTH_MARK_MOUNTS);

    /* 4. prestart + createRuntime hooks run in the parent, in the runtime's namespaces. */
    if (p->runtime_hooks) {
        send_type(BERTH_SYNC_HOOKS);
        expect_type(BERTH_SYNC_HOOKS_DONE);
    }
    /* createContainer hooks: in the container's namespaces, before pivot_root. */
    for (int i = 0; i < p->create_container_hook_count; i++) run_hook(&p->create_container_hooks[i]);

    /* 5. Into the rootfs. */
    switch_root(p);
    if (p->rootfs_readonly) {
        unsigned long keep = locked_flags("/");
        if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0) FAIL(BERTH_STAGE_ROOTFS_READONLY, "/");
    }
    /* sysctls before readonlyPaths: /proc/sys is usually one of them */
    for (int i = 0; i < p->sysctl_count; i++)
        if (write_file(p->sysctls[i].key, p->sysctls[i].value) < 0) FAIL(BERTH_STAGE_SYSCTL, p->sysctls[i].key);
    for (int i = 0; i < p->masked_count; i++) mask_path(p->masked_paths[i]);
    for (int i = 0; i < p->readonly_count; i++) readonly_path(p->readonly_paths[i]);
    mark(BERTH_MARK_ROOT);

    /* 6. Process: terminal, rlimits, identity, capabilities, cwd, binary lookup. */
    berth_process_tail(p);

    mark(BERTH_MARK_PROCESS);

    /* 7. Created: READY carries the timestamps. */
    struct berth_sync_msg ready;
    memset(&ready, 0, sizeof ready);
    ready.type = BERTH_SYNC_READY;
    memcpy(ready.detail, child_marks, sizeof child_marks);
    if (berth_sync_send(sync_fd, &ready) < 0) berth_child_fail(BERTH_STAGE_SYNC, errno, "send");
    /* The kernel's work on a large filter (~0.5 ms) then overlaps the parent's. */
    if (p->seccomp_before_start) load_seccomp(p);
    wait_for_start(p);
    final_exec(p);
}

__attribute__((noreturn)) void berth_exec_child_main(const struct berth_plan *p, int fd) {
    sync_fd = fd;
    berth_process_tail(p);
    send_type(BERTH_SYNC_READY);
    final_exec(p);
}
