/*
 * berth_launch.h — the launch plan and the parent/child sync protocol.
 *
 * Why C: this is code that runs between clone3() and execve(). The Swift
 * runtime is not async-signal-safe there (the parent is multi-threaded), so
 * the child executes a flat, pre-validated plan built by Swift, using only
 * syscalls and stack/static memory: no malloc, no stdio, no locks.
 *
 * Parent/child sync protocol (SOCK_SEQPACKET socketpair, one struct per
 * message, CLOEXEC on both ends so a successful execve closes the child end):
 *
 *   | step | direction      | message            | meaning                                        |
 *   |------|----------------|--------------------|------------------------------------------------|
 *   | 1    | child          | (no message)       | unless the join is deferred: moves itself into |
 *   |      |                |                    | the v1 cgroups (writes "0" to tasks: no RCU    |
 *   |      |                |                    | wait), then blocks on step 2                   |
 *   | 2    | parent → child | GO + state JSON    | uid/gid maps written; the JSON is stdin for    |
 *   |      |                |                    | the container-side hooks                       |
 *   | 2a   | parent → child | CGROUPS + fds      | deferred join only: the parent made the v1     |
 *   |      |                | (SCM_RIGHTS)       | cgroups while the child mounted; the fds are   |
 *   |      |                |                    | their tasks files. The child waits for it      |
 *   |      |                |                    | before the first mount that shows a cgroup,    |
 *   |      |                |                    | else after the mounts, and before any hook.    |
 *   |      |                |                    | Limits and device rules are written first      |
 *   | 3    | child → parent | HOOKS              | mounts done: run prestart + createRuntime      |
 *   |      |                |                    | (sent only when the plan has such hooks)       |
 *   | 4    | parent → child | HOOKS_DONE         | hooks succeeded (on failure the parent kills)  |
 *   | 4a   | child → parent | SECCOMP_FD + fd    | a filter with SCMP_ACT_NOTIFY is loaded: the   |
 *   |      |                | (SCM_RIGHTS)       | listener fd, for the parent to hand to the     |
 *   |      |                |                    | agent at listenerPath (before READY, so every  |
 *   |      |                |                    | later notified syscall has someone to answer)  |
 *   | 5    | child → parent | READY              | pivot_root, identity, caps done; waiting for   |
 *   |      |                |                    | start (exec fifo, or START on this socket)     |
 *   | 6    | parent → child | START              | only when the plan has no exec fifo (`run`)    |
 *   | 7    | (EOF)          | —                  | execve succeeded: the CLOEXEC end closed       |
 *   | any  | child → parent | ERROR{stage,errno} | the child failed at `stage`; it then _exit(1)s |
 *
 * The exec joiner (berth exec) uses the same messages: PID carries the pid of
 * the process that entered the container, then READY / ERROR / EOF.
 */
#ifndef BERTH_LAUNCH_H
#define BERTH_LAUNCH_H

#include <stdint.h>
#include <sys/types.h>
#include "berth_sys.h"
#include "berth_spawn.h"

#ifdef __cplusplus
extern "C" {
#endif

enum berth_sync_type {
    BERTH_SYNC_GO = 1,
    BERTH_SYNC_HOOKS = 2,
    BERTH_SYNC_HOOKS_DONE = 3,
    BERTH_SYNC_READY = 4,
    BERTH_SYNC_START = 5,
    BERTH_SYNC_ERROR = 6,
    BERTH_SYNC_PID = 7,
    BERTH_SYNC_SECCOMP_FD = 8,
    BERTH_SYNC_CGROUPS = 9,
};

/* The most tasks files a CGROUPS message carries (one per v1 hierarchy). */
#define BERTH_MAX_CGROUP_FDS 16

/* Child-side stages, reported with ERROR. Names are in berth_stage_name(). */
enum berth_stage {
    BERTH_STAGE_NONE = 0,
    BERTH_STAGE_SYNC,
    BERTH_STAGE_CGROUP_JOIN,
    BERTH_STAGE_SETNS,
    BERTH_STAGE_USERNS_IDENTITY,
    BERTH_STAGE_UNSHARE_CGROUP,
    BERTH_STAGE_HOSTNAME,
    BERTH_STAGE_DOMAINNAME,
    BERTH_STAGE_LOOPBACK,
    BERTH_STAGE_ROOT_PROPAGATION,
    BERTH_STAGE_ROOTFS_BIND,
    BERTH_STAGE_MOUNT,
    BERTH_STAGE_MOUNT_TARGET,
    BERTH_STAGE_MOUNT_REMOUNT,
    BERTH_STAGE_MOUNT_PROPAGATION,
    BERTH_STAGE_DEVICE,
    BERTH_STAGE_DEV_SYMLINK,
    BERTH_STAGE_HOOK,
    BERTH_STAGE_PIVOT_ROOT,
    BERTH_STAGE_CHROOT,
    BERTH_STAGE_ROOTFS_READONLY,
    BERTH_STAGE_SYSCTL,
    BERTH_STAGE_MASK_PATH,
    BERTH_STAGE_READONLY_PATH,
    BERTH_STAGE_OOM_SCORE_ADJ,
    BERTH_STAGE_RLIMIT,
    BERTH_STAGE_TERMINAL,
    BERTH_STAGE_CONSOLE_SOCKET,
    BERTH_STAGE_CAPS_BOUNDING,
    BERTH_STAGE_SETGROUPS,
    BERTH_STAGE_SETGID,
    BERTH_STAGE_SETUID,
    BERTH_STAGE_CAPS,
    BERTH_STAGE_CAPS_AMBIENT,
    BERTH_STAGE_NO_NEW_PRIVS,
    BERTH_STAGE_CWD,
    BERTH_STAGE_EXEC_LOOKUP,
    BERTH_STAGE_WAIT_START,
    BERTH_STAGE_SECCOMP,
    BERTH_STAGE_EXEC,
    BERTH_STAGE_CLONE,
    BERTH_STAGE_TIMENS_OFFSETS,
    BERTH_STAGE_STDIO,
    BERTH_STAGE_KEYRING,
    BERTH_STAGE_APPARMOR,
    BERTH_STAGE_COUNT
};

/* Name of a stage for error messages ("pivot_root", "mount", ...). */
const char *berth_stage_name(int stage);

#define BERTH_DETAIL_MAX 512

/* Child-side timestamps (CLOCK_MONOTONIC ns), sent with READY in `detail`:
 * where the time between clone and READY goes. */
enum berth_child_mark {
    BERTH_MARK_STARTED = 0,    /* first instruction after clone */
    BERTH_MARK_GO,             /* GO and the state received */
    BERTH_MARK_CGROUPS_WAIT,   /* reached the point that needs the cgroups (then waits for CGROUPS) */
    BERTH_MARK_CGROUPS,        /* in the cgroups (and cgroup namespace): with a deferred
                                  join, after the mounts that need no cgroup */
    BERTH_MARK_MOUNTS,         /* the remaining mounts, devices, /dev symlinks done */
    BERTH_MARK_ROOT,           /* hooks, pivot_root, masked and read-only paths done */
    BERTH_MARK_PROCESS,        /* terminal, rlimits, identity, capabilities, lookup done */
    BERTH_MARK_COUNT
};

struct berth_sync_msg {
    int32_t type;   /* enum berth_sync_type */
    int32_t stage;  /* enum berth_stage, for ERROR */
    int32_t err;    /* errno, for ERROR */
    int32_t pid;    /* for PID */
    int32_t fd;     /* received: the descriptor that came with the message (SCM_RIGHTS), or -1 */
    char detail[BERTH_DETAIL_MAX]; /* the path or value involved, NUL-terminated */
};

/* One mount, already validated by Swift. Targets are absolute container paths
 * and are resolved inside the rootfs with openat2(RESOLVE_IN_ROOT). */
struct berth_mount {
    const char *source;
    const char *target;
    const char *fstype;        /* NULL or "bind" for bind mounts */
    const char *data;          /* filesystem options, or NULL */
    unsigned long flags;       /* MS_* for the first mount(2) call */
    unsigned long remount_flags; /* non-zero: MS_BIND|MS_REMOUNT with these after */
    unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (|MS_REC) */
    int bind;                  /* 1 when source is a path to bind */
    int target_is_file;        /* bind of a non-directory: create a file */
    int needs_cgroups;         /* shows the container's cgroups: join them first */
};

struct berth_device {
    const char *path;          /* absolute container path */
    uint32_t mode;             /* S_IFCHR/S_IFBLK/S_IFIFO | permission bits */
    uint64_t major, minor;
    uint32_t uid, gid;
    int bind_from_host;        /* in a user namespace mknod is refused: bind host node */
};

struct berth_hook {
    const char *path;
    char *const *argv;         /* NULL-terminated */
    char *const *envp;         /* NULL-terminated */
    int timeout;               /* seconds, 0 = none */
};

struct berth_rlimit {
    int resource;
    uint64_t soft, hard;
};

struct berth_ns_join {
    int nstype;                /* CLONE_NEW* */
    int fd;                    /* opened by the parent */
    const char *path;          /* for messages */
};

/* Same layout as struct sock_fprog (linux/filter.h): what seccomp(2) loads. */
struct berth_sock_fprog {
    unsigned short len;        /* instructions */
    const void *filter;        /* struct sock_filter[len] */
};

struct berth_kv {
    const char *key;
    const char *value;
};

struct berth_plan {
    /* namespaces */
    uint64_t clone_flags;          /* CLONE_NEW* to create (not CLONE_NEWCGROUP: see below) */
    int unshare_cgroupns;          /* unshare(CLONE_NEWCGROUP) after joining the cgroups */
    const struct berth_ns_join *joins; int join_count;
    const char *uid_map;           /* written by the parent; informational here */
    int userns;                    /* the child is in a new user namespace */

    /* cgroups */
    const int *cgroup_task_fds; int cgroup_task_fd_count; /* v1 tasks files: write "0" */
    int defer_cgroup_join;         /* the tasks fds come later, with CGROUPS (step 2a) */
    int cgroup2_fd;                /* O_DIRECTORY fd for CLONE_INTO_CGROUP, or -1 */

    /* filesystem */
    const char *rootfs;            /* absolute host path */
    int rootfs_readonly;
    unsigned long rootfs_propagation; /* for "/" before the mounts (default MS_SLAVE|MS_REC) */
    int no_pivot;
    const struct berth_mount *mounts; int mount_count;
    const struct berth_device *devices; int device_count;
    int dev_symlinks;              /* create /dev/fd, stdin, stdout, stderr, ptmx, core */
    const char *const *masked_paths; int masked_count;
    const char *const *readonly_paths; int readonly_count;
    const struct berth_kv *sysctls; int sysctl_count; /* key = /proc/sys path */

    /* identity and limits */
    const char *hostname;          /* NULL = leave */
    const char *domainname;
    const struct berth_rlimit *rlimits; int rlimit_count;
    int oom_score_adj_set; int oom_score_adj;
    uint32_t uid, gid;
    const uint32_t *additional_gids; int additional_gid_count;
    int umask;                     /* -1 = leave */
    int caps_set;
    uint64_t cap_bounding, cap_effective, cap_inheritable, cap_permitted, cap_ambient;
    int no_new_privs;
    const char *apparmor_profile;  /* NULL = leave: else "exec PROFILE" to attr/apparmor/exec (applies at execve) */
    const struct berth_sock_fprog *seccomp_filter; /* NULL: no filter. Loaded last before execve
                                                      with no_new_privs, else before the identity change
                                                      (without NNP, seccomp(2) needs CAP_SYS_ADMIN) */
    unsigned int seccomp_flags;    /* with SECCOMP_FILTER_FLAG_NEW_LISTENER the filter is loaded before
                                      READY and its listener fd goes to the parent (SECCOMP_FD) */
    int seccomp_before_start;      /* load the filter right after READY, while the parent records the
                                      container, not after start: only when it allows every syscall
                                      the child makes until execve (Swift checked) */

    /* process */
    const char *cwd;
    char *const *argv;
    char *const *envp;
    const char *path_env;          /* PATH value used to look up argv[0] */
    int terminal;
    int console_socket_fd;         /* -1: none */
    unsigned short console_rows, console_cols;
    int preserve_fds;              /* fds 3..3+N-1 pass through */
    int dumpable_off;              /* non-dumpable until execve (CVE-2019-5736) */
    /* CVE-2019-5736 again: the process execs berth-dmz from this sealed memfd
     * first, so no script ("#!/proc/self/exe") can run the runtime's binary in
     * the container; -1 = exec directly. dmz_envp is envp with two spare slots:
     * the child puts "BERTH_DMZ_EXEC=<sync fd>:<path>" at index dmz_env_count. */
    int dmz_fd;
    char **dmz_envp; int dmz_env_count;
    int new_session_keyring;       /* join a fresh anonymous session keyring (not --no-new-keyring) */

    /* start and hooks */
    int exec_fifo_fd;              /* O_RDONLY|O_NONBLOCK fifo; -1 = wait for START */
    const struct berth_hook *create_container_hooks; int create_container_hook_count;
    const struct berth_hook *start_container_hooks; int start_container_hook_count;
    int runtime_hooks;             /* send HOOKS and wait for HOOKS_DONE after the mounts */

    /* time namespace offsets ("monotonic 10 0\nboottime 5 0\n"), needs an intermediate process */
    const char *time_offsets;

    /* exec only: O_PATH fd of /proc/<init>/root, the container's root to chroot into */
    int root_fd;
};

/* Parent side. Clones the container init per plan. On success returns 0 and
 * sets *pid, *pidfd (or -1) and *sync_fd (the parent end). On failure returns
 * -errno and fills *error with the stage (and detail) that failed. */
int berth_launch(const struct berth_plan *plan, pid_t *pid, int *pidfd, int *sync_fd, struct berth_sync_msg *error);

/* Exec into a running container: joins the namespaces in plan->joins (all
 * opened by the parent), the cgroups, then runs the process part of the plan
 * (identity, caps, seccomp, cwd, execve). No mounts or pivot_root. */
int berth_exec_launch(const struct berth_plan *plan, pid_t *pid, int *sync_fd, struct berth_sync_msg *error);

/* Send/receive one sync message. Return 0 or -errno; recv returns -EPIPE on EOF.
 * recv sets msg->fd to a descriptor passed with the message (CLOEXEC), else -1. */
int berth_sync_send(int fd, const struct berth_sync_msg *msg);
int berth_sync_recv(int fd, struct berth_sync_msg *msg);
/* Send a message of `type` with descriptors beside it (SCM_RIGHTS). */
int berth_sync_send_fds(int fd, int type, const int *fds, int count);
/* Receive a message of `type` with up to `cap` descriptors; returns their count or -errno. */
int berth_sync_recv_fds(int fd, int type, int *fds, int cap);
/* Send a payload (the state JSON) as one datagram. */
int berth_sync_send_blob(int fd, const void *data, size_t len);

/* Wait for a child; returns the wait status or -errno. EINTR is retried. */
int berth_wait_pid(pid_t pid, int *status);

/* Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH to pid
 * (for `run` in the foreground). pid 0 stops forwarding. */
void berth_forward_signals(pid_t pid);

/* Receive one fd sent with SCM_RIGHTS (the pty master from a console socket). */
int berth_recv_fd(int sock);
/* A descriptor with a few bytes beside it (SCM_RIGHTS): the pty master, an attaching client's socket and its options. */
int berth_send_fd(int sock, int fd, const char *data, int len);
/* The descriptor (or -errno); up to cap bytes of the data into data, their count into *len. */
int berth_recv_fd_data(int sock, char *data, int cap, int *len);

/* Proxy a pty master to stdin/stdout until the master hangs up (foreground `run -t`). */
void berth_pty_proxy(int master);

#ifdef __cplusplus
}
#endif
#endif
