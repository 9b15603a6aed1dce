/* sys.c — wrappers for syscalls Swift cannot reach (see berth_sys.h). */
#include "berth_sys.h"
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <errno.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

const int berth_O_PATH = O_PATH;
const short berth_POSIX_SPAWN_SETSID = POSIX_SPAWN_SETSID;

int berth_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int berth_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int berth_pidfd_send_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

void berth_write_stderr(const char *text) {
    size_t len = strlen(text);
    while (len > 0) {
        ssize_t n = write(2, text, len);
        if (n <= 0) return;
        text += n;
        len -= (size_t)n;
    }
}

int berth_set_child_subreaper(int on) { return prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0); }

int berth_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }

#include <linux/bpf.h>
#include <stdint.h>

int berth_bpf_load_cgroup_device(const void *insns, unsigned count, char *log, unsigned log_size) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = count;
    attr.license = (uint64_t)(uintptr_t)"Apache-2.0";
    if (log && log_size > 0) {
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
}

int berth_bpf_attach_cgroup_device(int program, int cgroup) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgroup;
    attr.attach_bpf_fd = (uint32_t)program;
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof attr);
}

int berth_sealed_memfd(const char *name, const void *data, size_t len) {
    /* MFD_EXEC: executable even where vm.memfd_noexec would seal it otherwise (6.3+) */
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x10U /* MFD_EXEC */);
    if (fd < 0 && errno == EINVAL) fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { int e = n < 0 ? errno : EIO; close(fd); return -e; }
        p += n;
        len -= (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}
