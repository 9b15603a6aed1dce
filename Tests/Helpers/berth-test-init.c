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
 *   kill0                call kill(self, 0), print "kill0: ok" or the errno name
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
        else { fprintf(stderr, "berth-test-init: unknown command %s\n", cmd); return 2; }
    }
    return 0;
}
