/*
 * launch.c — the parent side: clone3 into the container's namespaces and
 * cgroup, the intermediate process some joins need, and the sync socket.
 * Category: syscalls Swift cannot reach (clone3, raw clone with CLONE_PARENT)
 * and code that runs between clone and execve (the intermediate process).
 */
#include "berth_launch.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static const char *const stage_names[BERTH_STAGE_COUNT] = {
    [BERTH_STAGE_NONE] = "launch",
    [BERTH_STAGE_SYNC] = "sync with parent",
    [BERTH_STAGE_CGROUP_JOIN] = "join cgroup",
    [BERTH_STAGE_SETNS] = "setns",
    [BERTH_STAGE_USERNS_IDENTITY] = "become root in user namespace",
    [BERTH_STAGE_UNSHARE_CGROUP] = "unshare cgroup namespace",
    [BERTH_STAGE_HOSTNAME] = "sethostname",
    [BERTH_STAGE_LOOPBACK] = "bring up lo",
    [BERTH_STAGE_DOMAINNAME] = "setdomainname",
    [BERTH_STAGE_ROOT_PROPAGATION] = "set rootfs propagation",
    [BERTH_STAGE_ROOTFS_BIND] = "bind rootfs",
    [BERTH_STAGE_MOUNT] = "mount",
    [BERTH_STAGE_MOUNT_TARGET] = "resolve mount target in rootfs",
    [BERTH_STAGE_MOUNT_REMOUNT] = "remount",
    [BERTH_STAGE_MOUNT_PROPAGATION] = "set mount propagation",
    [BERTH_STAGE_DEVICE] = "create device",
    [BERTH_STAGE_DEV_SYMLINK] = "create /dev symlink",
    [BERTH_STAGE_HOOK] = "createContainer/startContainer hook",
    [BERTH_STAGE_PIVOT_ROOT] = "pivot_root into",
    [BERTH_STAGE_CHROOT] = "chroot into",
    [BERTH_STAGE_ROOTFS_READONLY] = "remount rootfs read-only",
    [BERTH_STAGE_SYSCTL] = "write sysctl",
    [BERTH_STAGE_MASK_PATH] = "mask path",
    [BERTH_STAGE_READONLY_PATH] = "make path read-only",
    [BERTH_STAGE_OOM_SCORE_ADJ] = "write oom_score_adj",
    [BERTH_STAGE_RLIMIT] = "setrlimit",
    [BERTH_STAGE_TERMINAL] = "set up terminal",
    [BERTH_STAGE_CONSOLE_SOCKET] = "send pty to console socket",
    [BERTH_STAGE_CAPS_BOUNDING] = "drop bounding capabilities",
    [BERTH_STAGE_SETGROUPS] = "setgroups",
    [BERTH_STAGE_SETGID] = "setgid",
    [BERTH_STAGE_SETUID] = "setuid",
    [BERTH_STAGE_CAPS] = "set capabilities",
    [BERTH_STAGE_CAPS_AMBIENT] = "set ambient capabilities",
    [BERTH_STAGE_NO_NEW_PRIVS] = "set no_new_privs",
    [BERTH_STAGE_CWD] = "chdir to cwd",
    [BERTH_STAGE_EXEC_LOOKUP] = "look up executable",
    [BERTH_STAGE_WAIT_START] = "wait for start",
    [BERTH_STAGE_SECCOMP] = "seccomp load",
    [BERTH_STAGE_EXEC] = "execve",
    [BERTH_STAGE_CLONE] = "clone",
    [BERTH_STAGE_TIMENS_OFFSETS] = "write timens_offsets",
    [BERTH_STAGE_STDIO] = "set up stdio",
    [BERTH_STAGE_KEYRING] = "join a new session keyring",
    [BERTH_STAGE_APPARMOR] = "AppArmor profile (process.apparmorProfile)",
};

const char *berth_stage_name(int stage) {
    if (stage < 0 || stage >= BERTH_STAGE_COUNT || !stage_names[stage]) return "launch";
    return stage_names[stage];
}

int berth_sync_send(int fd, const struct berth_sync_msg *msg) {
    ssize_t n;
    do { n = send(fd, msg, sizeof *msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int berth_sync_send_blob(int fd, const void *data, size_t len) {
    ssize_t n;
    do { n = send(fd, data, len, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int berth_sync_recv(int fd, struct berth_sync_msg *msg) {
    memset(msg, 0, sizeof *msg);
    msg->fd = -1;
    struct iovec iov = {.iov_base = msg, .iov_len = sizeof *msg};
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t n;
    do { n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (n == 0) return -EPIPE;
    msg->fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&msg->fd, CMSG_DATA(c), sizeof msg->fd);
    msg->detail[BERTH_DETAIL_MAX - 1] = 0;
    return 0;
}

int berth_sync_send_fds(int fd, int type, const int *fds, int count) {
    if (count < 0 || count > BERTH_MAX_CGROUP_FDS) return -EINVAL;
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = type;
    msg.pid = count;
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
    union { char b[CMSG_SPACE(sizeof(int) * BERTH_MAX_CGROUP_FDS)]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (count > 0) {
        mh.msg_control = u.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)count);
    }
    ssize_t n;
    do { n = sendmsg(fd, &mh, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int berth_sync_recv_fds(int fd, int type, int *fds, int cap) {
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
    union { char b[CMSG_SPACE(sizeof(int) * BERTH_MAX_CGROUP_FDS)]; struct cmsghdr align; } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t n;
    do { n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (n == 0) return -EPIPE;
    int count = 0;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (msg.type != type || count != msg.pid || count > cap || (mh.msg_flags & MSG_CTRUNC)) return -EPROTO;
    memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)count);
    return count;
}

int berth_wait_pid(pid_t pid, int *status) {
    for (;;) {
        pid_t r = waitpid(pid, status, __WALL);
        if (r == pid) return 0;
        if (r < 0 && errno == EINTR) continue;
        return -errno;
    }
}

static pid_t raw_clone(unsigned long flags) {
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

/* clone3 with the plan's namespaces, straight into the v2 cgroup when one is
 * given; clone() where clone3 or CLONE_INTO_CGROUP is refused. Returns the pid
 * in the caller; the child never returns. */
static pid_t clone_container(const struct berth_plan *p, uint64_t extra, int *pidfd, int child_sync) {
    int fd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = p->clone_flags | extra;
    if (pidfd) { args.flags |= CLONE_PIDFD; args.pidfd = (uint64_t)(uintptr_t)&fd; }
    args.exit_signal = (extra & CLONE_PARENT) ? 0 : SIGCHLD;
    if (p->cgroup2_fd >= 0) { args.flags |= CLONE_INTO_CGROUP; args.cgroup = (uint64_t)p->cgroup2_fd; }
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    int joined_v2 = 1;
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL || errno == EBUSY || errno == EOPNOTSUPP) && p->cgroup2_fd >= 0) {
        /* CLONE_INTO_CGROUP refused: clone, then the child joins the v2 cgroup itself */
        args.flags &= ~CLONE_INTO_CGROUP;
        args.cgroup = 0;
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        joined_v2 = 0;
    }
    if (pid < 0 && errno == ENOSYS) {
        pid = (pid_t)syscall(SYS_clone, (unsigned long)(p->clone_flags | extra) | ((extra & CLONE_PARENT) ? 0 : SIGCHLD), 0, 0, 0, 0);
        joined_v2 = 0;
        fd = -1;
    }
    if (pid == 0) {
        if (!joined_v2 && p->cgroup2_fd >= 0) {
            int procs = openat(p->cgroup2_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
            if (procs < 0 || write(procs, "0", 1) < 0) berth_child_fail(BERTH_STAGE_CGROUP_JOIN, errno, "cgroup.procs");
            close(procs);
        }
        berth_child_main(p, child_sync);
    }
    if (pid > 0 && pidfd) *pidfd = fd;
    return pid;
}

static int needs_intermediate(const struct berth_plan *p) {
    if (p->time_offsets) return 1;
    for (int i = 0; i < p->join_count; i++)
        if (p->joins[i].nstype == CLONE_NEWPID || p->joins[i].nstype == CLONE_NEWUSER) return 1;
    return 0;
}

static void send_pid(int fd, pid_t pid) {
    struct berth_sync_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.type = BERTH_SYNC_PID;
    msg.pid = pid;
    berth_sync_send(fd, &msg);
}

/* Reads the PID message an intermediate process sends, then reaps it. An
 * ERROR (from the intermediate, before it cloned) is copied to *error. */
static int collect_intermediate(pid_t mid, int sync, pid_t *pid, struct berth_sync_msg *error) {
    struct berth_sync_msg msg;
    int r = berth_sync_recv(sync, &msg);
    int status;
    berth_wait_pid(mid, &status);
    error->stage = BERTH_STAGE_CLONE;
    if (r < 0) return r;
    if (msg.type == BERTH_SYNC_ERROR) { *error = msg; return msg.err ? -msg.err : -EINVAL; }
    if (msg.type != BERTH_SYNC_PID) { error->stage = BERTH_STAGE_SYNC; return -EPROTO; }
    *pid = msg.pid;
    return 0;
}

int berth_launch(const struct berth_plan *p, pid_t *pid, int *pidfd, int *sync_out, struct berth_sync_msg *error) {
    int sv[2];
    memset(error, 0, sizeof *error);
    error->stage = BERTH_STAGE_CLONE;
    *pidfd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    if (!needs_intermediate(p)) {
        pid_t child = clone_container(p, 0, pidfd, sv[1]);
        int saved = errno;
        close(sv[1]);
        if (child < 0) { close(sv[0]); return -saved; }
        *pid = child;
        *sync_out = sv[0];
        return 0;
    }
    /* Joining a pid namespace, or a time namespace with offsets, takes effect
     * for children only: an intermediate joins/unshares, clones the container
     * with CLONE_PARENT (so it stays our child), reports its pid and exits. */
    pid_t mid = raw_clone(0);
    if (mid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
    if (mid == 0) {
        close(sv[0]);
        berth_reset_signals();
        for (int pass = 0; pass < 2; pass++) /* the user namespace first: it owns the others */
            for (int i = 0; i < p->join_count; i++) {
                int t = p->joins[i].nstype;
                if ((pass == 0) != (t == CLONE_NEWUSER) || (t != CLONE_NEWUSER && t != CLONE_NEWPID)) continue;
                if (setns(p->joins[i].fd, t) < 0) berth_child_fail(BERTH_STAGE_SETNS, errno, p->joins[i].path);
            }
        if (p->time_offsets) {
            if (unshare(CLONE_NEWTIME) < 0) berth_child_fail(BERTH_STAGE_TIMENS_OFFSETS, errno, "unshare(CLONE_NEWTIME)");
            int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, p->time_offsets, strlen(p->time_offsets)) < 0)
                berth_child_fail(BERTH_STAGE_TIMENS_OFFSETS, errno, p->time_offsets);
            close(fd);
        }
        struct berth_plan q = *p;
        q.clone_flags &= ~(uint64_t)CLONE_NEWTIME;
        pid_t child = clone_container(&q, CLONE_PARENT, NULL, sv[1]);
        if (child < 0) berth_child_fail(BERTH_STAGE_CLONE, errno, "clone3");
        send_pid(sv[1], child);
        _exit(0);
    }
    close(sv[1]);
    int r = collect_intermediate(mid, sv[0], pid, error);
    if (r < 0) { close(sv[0]); return r; }
    *pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
    *sync_out = sv[0];
    return 0;
}

int berth_exec_launch(const struct berth_plan *p, pid_t *pid, int *sync_out, struct berth_sync_msg *error) {
    int sv[2], gate[2];
    memset(error, 0, sizeof *error);
    error->stage = BERTH_STAGE_CLONE;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    /* The grandchild starts reporting only after the intermediate sent PID:
     * it reads `gate` until EOF, which comes when the intermediate exits. */
    if (pipe2(gate, O_CLOEXEC) < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
    pid_t mid = raw_clone(0);
    if (mid < 0) { int e = errno; close(sv[0]); close(sv[1]); return -e; }
    if (mid == 0) {
        close(sv[0]);
        berth_reset_signals();
        if (p->dumpable_off) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        for (int i = 0; i < p->cgroup_task_fd_count; i++)
            if (write(p->cgroup_task_fds[i], "0", 1) < 0) berth_child_fail(BERTH_STAGE_CGROUP_JOIN, errno, "cgroup");
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < p->join_count; i++) {
                int t = p->joins[i].nstype;
                if ((pass == 0) != (t == CLONE_NEWUSER)) continue;
                if (setns(p->joins[i].fd, t) < 0) berth_child_fail(BERTH_STAGE_SETNS, errno, p->joins[i].path);
            }
        /* setns(mnt) put us at the namespace's root; the container's root may be a chroot in it */
        if (p->root_fd >= 0) {
            if (fchdir(p->root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
                berth_child_fail(BERTH_STAGE_CHROOT, errno, "container root");
        }
        pid_t child = raw_clone(CLONE_PARENT);
        if (child < 0) berth_child_fail(BERTH_STAGE_CLONE, errno, "clone");
        if (child == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {}
            close(gate[0]);
            berth_exec_child_main(p, sv[1]);
        }
        send_pid(sv[1], child);
        _exit(0);
    }
    close(sv[1]);
    close(gate[0]);
    close(gate[1]);
    int r = collect_intermediate(mid, sv[0], pid, error);
    if (r < 0) { close(sv[0]); return r; }
    *sync_out = sv[0];
    return 0;
}

/* ---- foreground helpers for `run` and `exec` ---- */

static volatile pid_t forward_pid;

static void forward_handler(int sig) {
    if (forward_pid > 0) kill(forward_pid, sig);
}

void berth_forward_signals(pid_t pid) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    forward_pid = pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pid > 0 ? forward_handler : SIG_DFL;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

int berth_recv_fd_data(int sock, char *data, int cap, int *len) {
    char buf[256];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t n;
    do { n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (data && len) {
        int copy = (int)n < cap ? (int)n : cap;
        memcpy(data, buf, (size_t)copy);
        *len = copy;
    }
    return fd;
}

int berth_recv_fd(int sock) { return berth_recv_fd_data(sock, NULL, 0, NULL); }

int berth_send_fd(int sock, int fd, const char *data, int len) {
    struct iovec iov = {.iov_base = (void *)data, .iov_len = (size_t)len};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t n;
    do { n = sendmsg(sock, &mh, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

void berth_pty_proxy(int master) {
    struct termios saved, raw;
    int is_tty = isatty(0) && tcgetattr(0, &saved) == 0;
    if (is_tty) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(0, TCSANOW, &raw);
        struct winsize ws;
        if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
    }
    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = master, .events = POLLIN}};
    char buf[8192];
    for (;;) {
        int r = poll(fds, 2, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (fds[1].revents & POLLIN) {
            ssize_t n = read(master, buf, sizeof buf);
            if (n <= 0) break;
            for (ssize_t off = 0; off < n;) { ssize_t w = write(1, buf + off, (size_t)(n - off)); if (w <= 0) break; off += w; }
        } else if (fds[1].revents & (POLLHUP | POLLERR)) break;
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0) fds[0].fd = -1; /* stdin closed: keep reading output */
            else for (ssize_t off = 0; off < n;) { ssize_t w = write(master, buf + off, (size_t)(n - off)); if (w <= 0) break; off += w; }
        } else if (fds[0].revents & (POLLHUP | POLLERR)) fds[0].fd = -1;
    }
    if (is_tty) tcsetattr(0, TCSANOW, &saved);
}
