/*
 * berth-test-init — the process inside berth's test containers (static, no
 * libc beyond what -static links). Category: a test program, not runtime code.
 *
 * Usage: berth-test-init COMMAND [ARGS] [COMMAND [ARGS]]...
 * Commands run in order; each prints "key: value" lines on stdout.
 *
 *   hostname | domainname | pid | ppid | ids | caps | cgroup | mounts | rlimits
 *   cwd | env | fds | netdevs | tty | affinity | nnp | umask | procs
 *   ns KIND              print the /proc/self/ns/KIND link
 *   exit N               exit with status N
 *   signal N             kill itself with signal N
 *   sleep SECONDS        sleep (fractions allowed)
 *   fork N               fork N children that sleep; print how many succeeded and the first errno
 *   alloc MIB            allocate and touch MIB MiB
 *   spin SECONDS         busy loop
 *   count FILE           forever: write an increasing counter to FILE every 10 ms (atomically)
 *   wait-signal FILE     wait for a signal, write "signal N" to FILE, exit 0
 *   open PATH MODE       open PATH ("r" or "w"), print "open: ok" or the errno name
 *   write PATH VALUE     write VALUE to PATH, print "write: ok" or the errno name
 *   read PATH            print the first line of PATH or the errno name
 *   mknod PATH MAJ MIN   create a char device, print "mknod: ok" or the errno name
 *   syscalls N           make N getppid() calls
 *   keyring              print the id of the session keyring
 *   getppid              call getppid(), print "getppid: ok" or the errno name (seccomp tests)
 *   getppid-value        print what getppid() returned ("getppid-value: N")
 *   exe-attack SECS STOP CVE-2019-5736 as an attacker inside: until SECS pass or the file STOP exists,
 *                        grab /proc/PID/exe of every process running berth-runtime's binary (or a
 *                        memfd), try to open it for writing (waiting while it is busy) and overwrite
 *                        its first bytes; print what was held and the write's result
 *   seccomp-agent SOCKET N SECS
 *                        on the host: a seccomp agent at SOCKET; takes N listeners (printing each
 *                        "agent-state: JSON"), answers getppid with 4242 and lets every other
 *                        notified syscall continue, until the listeners hang up or SECS pass
 *   kill0                call kill(self, 0), print "kill0: ok" or the errno name
 *   try OP               attempt OP, print "try OP: ok" or the errno name (security tests):
 *                        mount unshare-user clone-newuser clone3 keyctl init_module reboot
 *                        settimeofday raw-socket vsock personality-aslr
 *   bench-syscalls N     on one CPU, 5N calls in 500-call batches (the fastest counts) of each of
 *                        getpid read write and clock_gettime (no syscall:
 *                        the control), N/10 of open-close stat mmap-munmap; print "ns OP: value"
 *   alloc-steps MIB      allocate and touch 1 MiB at a time, print "allocated: k" after each
 *   spin-threads N SECS  N threads busy for SECS of wall time; print "cpu-seconds: x" "wall-seconds: y"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/personality.h>
#include <netinet/in.h>
#include <pthread.h>
#include <linux/reboot.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e) {
    static const struct { int e; const char *n; } t[] = {
        {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EACCES, "EACCES"}, {EROFS, "EROFS"}, {EAGAIN, "EAGAIN"},
        {EINVAL, "EINVAL"}, {ENOSPC, "ENOSPC"}, {EEXIST, "EEXIST"}, {ENOTDIR, "ENOTDIR"}, {EBUSY, "EBUSY"},
        {ENOSYS, "ENOSYS"}, {ENOMEM, "ENOMEM"}, {EISDIR, "EISDIR"}, {ENXIO, "ENXIO"}, {ENODEV, "ENODEV"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) if (t[i].e == e) return t[i].n;
    static char buf[32];
    snprintf(buf, sizeof buf, "errno%d", e);
    return buf;
}

static void cat_file(const char *key, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s: %s\n", key, errname(errno)); return; }
    char line[4096];
    while (fgets(line, sizeof line, f)) printf("%s: %s", key, line);
    fclose(f);
}

static void status_lines(const char *prefix) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, prefix, strlen(prefix)) == 0) fputs(line, stdout);
    fclose(f);
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static double now_seconds(clockid_t clock) {
    struct timespec t; clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One attempt at something a default container must not be able to do. */
static long try_op(const char *op) {
    if (!strcmp(op, "mount")) return mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(op, "unshare-user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(op, "clone-newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return pid < 0 ? -1 : 0;
    }
    if (!strcmp(op, "clone3")) {
        struct { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } args = {0};
        args.exit_signal = SIGCHLD;
        long pid = syscall(435 /* clone3 */, &args, sizeof args);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return pid < 0 ? -1 : 0;
    }
    if (!strcmp(op, "keyctl")) return syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL) < 0 ? -1 : 0;
    if (!strcmp(op, "init_module")) return syscall(SYS_init_module, NULL, 0, "");
    /* an invalid command: EINVAL when the call gets through, EPERM when refused */
    if (!strcmp(op, "reboot")) return syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, 0x12345678, NULL);
    /* an invalid time: EINVAL when the call gets through, EPERM when refused */
    if (!strcmp(op, "settimeofday")) { struct timeval tv = {0, 2000000}; return syscall(SYS_settimeofday, &tv, NULL); }
    if (!strcmp(op, "raw-socket")) { int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); if (fd >= 0) close(fd); return fd < 0 ? -1 : 0; }
    if (!strcmp(op, "vsock")) { int fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); if (fd >= 0) close(fd); return fd < 0 ? -1 : 0; }
    if (!strcmp(op, "personality-aslr")) return personality(ADDR_NO_RANDOMIZE) < 0 ? -1 : 0;
    errno = ENOSYS;
    return -2;
}

/* Nanoseconds per call of one operation: the fastest of many short batches
 * (500 calls, far shorter than a scheduler slice), 5n calls in all. A batch that
 * a tick, an interrupt or stolen time hit runs longer; the fastest ones are the
 * cost itself. (Five batches of n calls each, as before, left ±5-10% between
 * runs on these machines: every long batch is hit by something.) */
#define BENCH(label, body) do { \
    double best = 1e30; \
    long batch = 500, batches = 5 * n / batch > 0 ? 5 * n / batch : 1; \
    for (long round = 0; round < batches; round++) { \
        double a = now_seconds(CLOCK_MONOTONIC); \
        for (long k = 0; k < batch; k++) { body; } \
        double b = now_seconds(CLOCK_MONOTONIC); \
        if ((b - a) * 1e9 / (double)batch < best) best = (b - a) * 1e9 / (double)batch; \
    } \
    printf("ns %s: %.1f\n", label, best); \
} while (0)

static void bench_syscalls(long n) {
    /* Every variant on the same CPU (the highest allowed): the two vCPUs here differ
     * by up to 25% per syscall (what else shares their cores), and a process that
     * stays on one gives the same figure run after run. */
    cpu_set_t allowed, one;
    CPU_ZERO(&one);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
            if (CPU_ISSET(cpu, &allowed)) { CPU_SET(cpu, &one); sched_setaffinity(0, sizeof one, &one); break; }
    }
    char buf[64];
    int null_fd = open("/dev/null", O_RDWR);
    int zero_fd = open("/dev/zero", O_RDONLY);
    struct stat st;
    struct timespec ts;
    BENCH("getpid", syscall(SYS_getpid));
    BENCH("read", if (read(zero_fd, buf, sizeof buf) < 0) abort());
    BENCH("write", if (write(null_fd, buf, sizeof buf) < 0) abort());
    BENCH("clock_gettime", clock_gettime(CLOCK_MONOTONIC, &ts));
    /* ten times dearer per call: a tenth of the calls keeps each batch about as long */
    n = n / 10 > 0 ? n / 10 : 1;
    BENCH("open-close", { int fd = open("/dev/null", O_RDONLY); if (fd < 0) abort(); close(fd); });
    BENCH("stat", if (stat("/dev/null", &st) < 0) abort());
    BENCH("mmap-munmap", { void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); if (p == MAP_FAILED) abort(); munmap(p, 4096); });
    close(null_fd); close(zero_fd);
}

static double spin_until;
static void *spin_thread(void *arg) {
    (void)arg;
    volatile unsigned long x = 0;
    while (now_seconds(CLOCK_MONOTONIC) < spin_until) for (int k = 0; k < 10000; k++) x++;
    return NULL;
}

/* CVE-2019-5736: a process running the runtime's binary shows up in the
 * container; its /proc/PID/exe is the host file. Hold it with O_PATH, then
 * reopen it for writing once nothing executes it any more. Keeps going after a
 * refusal, so every process that enters during SECS is tried. */
static void exe_attack(double secs, const char *stop) {
    double end = now_seconds(CLOCK_MONOTONIC) + secs;
    int denied = 0, tried[64], ntried = 0;
    char held[4096] = "";
    const char *write_result = "never tried";
    while (now_seconds(CLOCK_MONOTONIC) < end && strcmp(write_result, "ok") && access(stop, F_OK) != 0) {
        int fd = -1;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) && fd < 0) {
            int pid = atoi(e->d_name), seen = 0;
            if (pid <= 1 || pid == getpid()) continue;
            for (int k = 0; k < ntried; k++) seen |= tried[k] == pid;
            if (seen) continue;
            char link[64], dest[1024];
            snprintf(link, sizeof link, "/proc/%d/exe", pid);
            ssize_t n = readlink(link, dest, sizeof dest - 1);
            if (n < 0) { if (errno == EACCES || errno == EPERM) denied++; continue; }
            dest[n] = 0;
            if (!strstr(dest, "berth-runtime") && !strstr(dest, "memfd:")) continue;
            fd = open(link, O_PATH | O_CLOEXEC);
            if (fd < 0) { denied++; continue; }
            if (ntried < 64) tried[ntried++] = pid;
            /* each find is reported as it happens, so a run that outlives its test says where it was */
            printf("exe-found: %d %s\n", pid, dest);
            fflush(stdout);
            if (!strstr(held, dest) && strlen(held) + strlen(dest) + 2 < sizeof held) {
                if (held[0]) strcat(held, ",");
                strcat(held, dest);
            }
        }
        if (d) closedir(d);
        if (fd < 0) continue;
        /* the file stays busy (ETXTBSY) while anything executes it: wait that out */
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        while (now_seconds(CLOCK_MONOTONIC) < end && access(stop, F_OK) != 0) {
            int w = open(self, O_WRONLY | O_CLOEXEC);
            if (w >= 0) {
                ssize_t n = pwrite(w, "PWND", 4, 0);
                write_result = n == 4 ? "ok" : errname(errno);
                close(w);
                break;
            }
            write_result = errname(errno);
            if (errno != ETXTBSY) break;
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        close(fd);
    }
    printf("exe-denied: %d\nexe-held: %s\nexe-write: %s\n", denied, held[0] ? held : "none", write_result);
}

/* The other end of linux.seccomp.listenerPath: one JSON message with the fd beside it. */
static void seccomp_agent(const char *path, int want, double secs) {
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    unlink(path);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 8) < 0) {
        printf("agent-error: %s\n", errname(errno));
        return;
    }
    struct pollfd pf[16] = {{.fd = srv, .events = POLLIN}};
    int n = 1, accepted = 0, answered = 0;
    double end = now_seconds(CLOCK_MONOTONIC) + secs;
    while (now_seconds(CLOCK_MONOTONIC) < end && !(accepted >= want && n == 1)) {
        if (poll(pf, n, 100) <= 0) continue;
        if (pf[0].revents & POLLIN) {
            int c = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
            char json[8192] = "";
            union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
            struct iovec iov = {.iov_base = json, .iov_len = sizeof json - 1};
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
            ssize_t got = c >= 0 ? recvmsg(c, &mh, MSG_CMSG_CLOEXEC) : -1;
            struct cmsghdr *cm = got > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
            if (cm && cm->cmsg_type == SCM_RIGHTS && n < 16) {
                json[got] = 0;
                printf("agent-state: %s\n", json);
                memcpy(&pf[n].fd, CMSG_DATA(cm), sizeof(int));
                pf[n].events = POLLIN;
                pf[n].revents = 0;
                n++;
                accepted++;
            } else {
                printf("agent-error: no fd with the message\n");
            }
            if (c >= 0) close(c);
        }
        for (int k = 1; k < n; k++) {
            if (pf[k].revents & POLLIN) {
                struct seccomp_notif req;
                memset(&req, 0, sizeof req);
                if (ioctl(pf[k].fd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
                    struct seccomp_notif_resp resp = {.id = req.id};
                    if (req.data.nr == SYS_getppid) { resp.val = 4242; answered++; }
                    else resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                    ioctl(pf[k].fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
                }
            } else if (pf[k].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                close(pf[k].fd);
                pf[k] = pf[--n];
                k--;
            }
        }
    }
    printf("agent-connections: %d\nagent-answered: %d\n", accepted, answered);
    unlink(path);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *cmd = argv[i];
#define ARG(n) ((i + (n) < argc) ? argv[i + (n)] : (fprintf(stderr, "%s: missing argument\n", cmd), exit(2), ""))
        if (!strcmp(cmd, "hostname")) { char h[256] = ""; gethostname(h, sizeof h); printf("hostname: %s\n", h); }
        else if (!strcmp(cmd, "domainname")) { char h[256] = ""; getdomainname(h, sizeof h); printf("domainname: %s\n", h); }
        else if (!strcmp(cmd, "pid")) printf("pid: %d\n", getpid());
        else if (!strcmp(cmd, "ppid")) printf("ppid: %d\n", getppid());
        else if (!strcmp(cmd, "ids")) {
            gid_t groups[64]; int n = getgroups(64, groups);
            printf("uid: %d\ngid: %d\ngroups:", getuid(), getgid());
            for (int g = 0; g < n; g++) printf(" %d", groups[g]);
            printf("\n");
        }
        else if (!strcmp(cmd, "caps")) status_lines("Cap");
        else if (!strcmp(cmd, "nnp")) status_lines("NoNewPrivs");
        else if (!strcmp(cmd, "umask")) { mode_t m = umask(0); umask(m); printf("umask: %04o\n", m); }
        else if (!strcmp(cmd, "cgroup")) cat_file("cgroup", "/proc/self/cgroup");
        else if (!strcmp(cmd, "mounts")) cat_file("mount", "/proc/self/mountinfo");
        else if (!strcmp(cmd, "rlimits")) {
            static const struct { int r; const char *n; } t[] = {{RLIMIT_NOFILE, "RLIMIT_NOFILE"}, {RLIMIT_NPROC, "RLIMIT_NPROC"}, {RLIMIT_CORE, "RLIMIT_CORE"}};
            for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
                struct rlimit rl; getrlimit(t[k].r, &rl);
                printf("rlimit %s: %llu %llu\n", t[k].n, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
            }
        }
        else if (!strcmp(cmd, "cwd")) { char c[4096] = ""; if (!getcwd(c, sizeof c)) strcpy(c, errname(errno)); printf("cwd: %s\n", c); }
        else if (!strcmp(cmd, "env")) for (char **e = environ; *e; e++) printf("env: %s\n", *e);
        else if (!strcmp(cmd, "fds")) {
            DIR *d = opendir("/proc/self/fd");
            int self = d ? dirfd(d) : -1;
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.' || atoi(de->d_name) == self) continue;
                char link[512] = "", p[300];
                snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
                ssize_t n = readlink(p, link, sizeof link - 1);
                if (n > 0) link[n] = 0;
                printf("fd %s: %s\n", de->d_name, link);
            }
            if (d) closedir(d);
        }
        else if (!strcmp(cmd, "netdevs")) {
            DIR *d = opendir("/sys/class/net");
            struct dirent *de;
            while (d && (de = readdir(d))) if (de->d_name[0] != '.') printf("netdev: %s\n", de->d_name);
            if (d) closedir(d);
        }
        else if (!strcmp(cmd, "procs")) {
            DIR *d = opendir("/proc");
            struct dirent *de; int n = 0;
            while (d && (de = readdir(d))) if (de->d_name[0] >= '0' && de->d_name[0] <= '9') n++;
            if (d) closedir(d);
            printf("procs: %d\n", n);
        }
        else if (!strcmp(cmd, "tty")) { const char *t = ttyname(0); printf("tty: %s\n", t ? t : "none"); }
        else if (!strcmp(cmd, "affinity")) {
            cpu_set_t set; CPU_ZERO(&set); sched_getaffinity(0, sizeof set, &set);
            printf("affinity:");
            for (int c = 0; c < CPU_SETSIZE; c++) if (CPU_ISSET(c, &set)) printf(" %d", c);
            printf("\n");
        }
        else if (!strcmp(cmd, "ns")) {
            char p[64], link[128] = ""; snprintf(p, sizeof p, "/proc/self/ns/%s", ARG(1));
            ssize_t n = readlink(p, link, sizeof link - 1); if (n > 0) link[n] = 0;
            printf("ns %s: %s\n", argv[i + 1], link); i += 1;
        }
        else if (!strcmp(cmd, "exit")) exit(atoi(ARG(1)));
        else if (!strcmp(cmd, "signal")) { int s = atoi(ARG(1)); signal(s, SIG_DFL); kill(getpid(), s); sleep_seconds(5); exit(99); }
        else if (!strcmp(cmd, "sleep")) { sleep_seconds(atof(ARG(1))); i += 1; }
        else if (!strcmp(cmd, "fork")) {
            int n = atoi(ARG(1)), ok = 0, first = 0; i += 1;
            for (int k = 0; k < n; k++) {
                pid_t p = fork();
                if (p == 0) { sleep_seconds(30); _exit(0); }
                if (p < 0) { if (!first) first = errno; } else ok++;
            }
            printf("forked: %d\nfork-error: %s\n", ok, first ? errname(first) : "none");
        }
        else if (!strcmp(cmd, "alloc")) {
            long mib = atol(ARG(1)); i += 1;
            for (long k = 0; k < mib; k++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) { printf("alloc-error: %s\n", errname(errno)); break; }
                memset(p, 1, 1 << 20);
            }
            printf("allocated: %ld\n", mib);
        }
        else if (!strcmp(cmd, "spin")) {
            double s = atof(ARG(1)); i += 1;
            struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
            volatile unsigned long x = 0;
            do { for (int k = 0; k < 100000; k++) x++; clock_gettime(CLOCK_MONOTONIC, &b); }
            while ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9 < s);
        }
        else if (!strcmp(cmd, "count")) {
            const char *path = ARG(1);
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            for (unsigned long n = 0;; n++) {
                /* write + rename: a reader (or a freeze) never sees a truncated file */
                FILE *f = fopen(tmp, "w");
                if (f) { fprintf(f, "%lu\n", n); fclose(f); rename(tmp, path); }
                sleep_seconds(0.01);
            }
        }
        else if (!strcmp(cmd, "wait-signal")) {
            const char *path = ARG(1);
            for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, on_signal);
            FILE *r = fopen(path, "w"); if (r) { fprintf(r, "ready\n"); fclose(r); }
            while (!got_signal) pause();
            FILE *f = fopen(path, "w");
            if (f) { fprintf(f, "signal %d\n", (int)got_signal); fclose(f); }
            exit(0);
        }
        else if (!strcmp(cmd, "open")) {
            int fd = open(ARG(1), !strcmp(ARG(2), "w") ? O_WRONLY : O_RDONLY);
            printf("open %s: %s\n", argv[i + 1], fd >= 0 ? "ok" : errname(errno));
            if (fd >= 0) close(fd);
            i += 2;
        }
        else if (!strcmp(cmd, "write")) {
            int fd = open(ARG(1), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int ok = fd >= 0 && write(fd, ARG(2), strlen(argv[i + 2])) >= 0;
            printf("write %s: %s\n", argv[i + 1], ok ? "ok" : errname(errno));
            if (fd >= 0) close(fd);
            i += 2;
        }
        else if (!strcmp(cmd, "read")) {
            FILE *f = fopen(ARG(1), "r");
            char line[4096] = "";
            if (!f) printf("read %s: %s\n", argv[i + 1], errname(errno));
            else { if (!fgets(line, sizeof line, f)) line[0] = 0; line[strcspn(line, "\n")] = 0; printf("read %s: %s\n", argv[i + 1], line); fclose(f); }
            i += 1;
        }
        else if (!strcmp(cmd, "mknod")) {
            int r = mknod(ARG(1), S_IFCHR | 0666, makedev(atoi(ARG(2)), atoi(ARG(3))));
            printf("mknod %s: %s\n", argv[i + 1], r == 0 ? "ok" : errname(errno));
            i += 3;
        }
        else if (!strcmp(cmd, "getppid")) {
            long r = syscall(SYS_getppid);
            printf("getppid: %s\n", r >= 0 ? "ok" : errname(errno));
        }
        else if (!strcmp(cmd, "getppid-value")) printf("getppid-value: %ld\n", (long)syscall(SYS_getppid));
        else if (!strcmp(cmd, "exe-attack")) { exe_attack(atof(ARG(1)), ARG(2)); i += 2; }
        else if (!strcmp(cmd, "seccomp-agent")) { seccomp_agent(ARG(1), atoi(ARG(2)), atof(ARG(3))); i += 3; }
        else if (!strcmp(cmd, "kill0")) {
            int r = kill(getpid(), 0);
            printf("kill0: %s\n", r == 0 ? "ok" : errname(errno));
        }
        else if (!strcmp(cmd, "keyring")) {
            long id = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* KEY_SPEC_SESSION_KEYRING */, 0);
            printf("keyring: %ld\n", id);
        }
        else if (!strcmp(cmd, "syscalls")) {
            long n = atol(ARG(1)); i += 1;
            for (long k = 0; k < n; k++) syscall(SYS_getppid);
            printf("syscalls: %ld\n", n);
        }
        else if (!strcmp(cmd, "try")) {
            const char *op = ARG(1); i += 1;
            /* these succeed as root on a host: only ever attempt them as a container's init */
            if (getpid() != 1) { printf("try %s: refused outside a pid namespace\n", op); continue; }
            /* in a child, so one attempt (unshare) cannot change what the next one sees */
            pid_t child = fork();
            if (child == 0) { errno = 0; long r = try_op(op); _exit(r == -2 ? 255 : r >= 0 ? 0 : errno); }
            int status = 0;
            waitpid(child, &status, 0);
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 254;
            printf("try %s: %s\n", op, code == 255 ? "unknown" : code == 254 ? "killed" : code == 0 ? "ok" : errname(code));
        }
        else if (!strcmp(cmd, "bench-syscalls")) { bench_syscalls(atol(ARG(1))); i += 1; }
        else if (!strcmp(cmd, "alloc-steps")) {
            long mib = atol(ARG(1)); i += 1;
            for (long k = 1; k <= mib; k++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) { printf("alloc-error: %s\n", errname(errno)); break; }
                memset(p, 1, 1 << 20);
                printf("allocated: %ld\n", k);
            }
        }
        else if (!strcmp(cmd, "spin-threads")) {
            int threads = atoi(ARG(1)); double secs = atof(ARG(2)); i += 2;
            double start = now_seconds(CLOCK_MONOTONIC), cpu_start = now_seconds(CLOCK_PROCESS_CPUTIME_ID);
            spin_until = start + secs;
            pthread_t t[64];
            if (threads > 64) threads = 64;
            for (int k = 0; k < threads; k++) pthread_create(&t[k], NULL, spin_thread, NULL);
            for (int k = 0; k < threads; k++) pthread_join(t[k], NULL);
            printf("cpu-seconds: %.4f\nwall-seconds: %.4f\n", now_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start, now_seconds(CLOCK_MONOTONIC) - start);
        }
        else { fprintf(stderr, "berth-test-init: unknown command %s\n", cmd); return 2; }
    }
    return 0;
}
