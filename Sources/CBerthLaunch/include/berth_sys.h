/*
 * berth_sys.h — syscalls and constants Swift cannot reach: Glibc's Swift
 * module is built without _GNU_SOURCE, which hides these.
 */
#ifndef BERTH_SYS_H
#define BERTH_SYS_H
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const int berth_O_PATH;
/* posix_spawn: the child starts a session of its own (a supervisor outlives its caller's terminal). */
extern const short berth_POSIX_SPAWN_SETSID;
int berth_pipe2(int fds[2], int flags);
/* pidfd_open(2) / pidfd_send_signal(2): -1 with errno on failure. */
int berth_pidfd_open(pid_t pid);
int berth_pidfd_send_signal(int pidfd, int sig);
/* prctl(PR_SET_CHILD_SUBREAPER, on): orphaned descendants are reparented to us. */
int berth_set_child_subreaper(int on);
/* eventfd(0, EFD_CLOEXEC). */
int berth_eventfd(void);
/* bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_CGROUP_DEVICE program of `count` 8-byte
 * instructions (the verifier's log into `log` when given); the program's fd or -1. */
int berth_bpf_load_cgroup_device(const void *insns, unsigned count, char *log, unsigned log_size);
/* bpf(BPF_PROG_ATTACH) of a device program to a cgroup v2 directory (BPF_F_ALLOW_MULTI). */
int berth_bpf_attach_cgroup_device(int program, int cgroup);
/* A CLOEXEC memfd holding `data`, sealed against any change (write, grow,
 * shrink, new seals): its fd, or -errno. berth-dmz runs from one. */
int berth_sealed_memfd(const char *name, const void *data, size_t len);
/* write(2) to stderr, for messages outside Swift's stdio. */
void berth_write_stderr(const char *text);

#ifdef __cplusplus
}
#endif
#endif
