/* export.c — libseccomp's BPF export into a memfd (libseccomp 2.5 has no export to memory). */
#define _GNU_SOURCE
#include "berth_seccomp.h"
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

int berth_seccomp_export(scmp_filter_ctx ctx) {
    int fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0) { close(fd); return r; }
    if (lseek(fd, 0, SEEK_SET) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}
