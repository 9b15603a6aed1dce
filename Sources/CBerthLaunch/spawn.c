/* spawn.c — see berth_spawn.h. */
#include "berth_spawn.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t berth_spawn(const char *path, char *const argv[], char *const envp[], int mntns_fd, int out_fd) {
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) return -errno;
    if (pid > 0) return pid;
    berth_reset_signals();
    if (mntns_fd >= 0 && setns(mntns_fd, CLONE_NEWNS) < 0) _exit(126);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = out_fd >= 0 ? out_fd : null;
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    execve(path, argv, envp);
    _exit(127);
}

int berth_private_mntns_without(const char *hide) {
    int ready[2], done[2];
    if (pipe2(ready, O_CLOEXEC) < 0) return -errno;
    if (pipe2(done, O_CLOEXEC) < 0) { int e = errno; close(ready[0]); close(ready[1]); return -e; }
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) { int e = errno; close(ready[0]); close(ready[1]); close(done[0]); close(done[1]); return -e; }
    if (pid == 0) {
        close(ready[0]);
        close(done[1]); /* or our own copy keeps the pipe from ever reaching EOF */
        char status = 0;
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || umount2(hide, MNT_DETACH) < 0) status = (char)errno;
        if (write(ready[1], &status, 1) < 0) _exit(1);
        char c;
        while (read(done[0], &c, 1) < 0 && errno == EINTR) {}
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char status = 1;
    int fd = -EIO;
    if (read(ready[0], &status, 1) == 1 && status == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) fd = -errno;
    } else if (status) {
        fd = -status;
    }
    close(done[1]); /* the namespace lives on through fd */
    close(ready[0]);
    waitpid(pid, NULL, 0);
    return fd;
}
