/*
 * berth_spawn.h — starting a measured process, optionally inside another mount
 * namespace. Category: code between clone and execve (setns before exec).
 */
#ifndef BERTH_SPAWN_H
#define BERTH_SPAWN_H
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clones a child that joins mntns_fd (if >= 0), points stdin at /dev/null and
 * stdout/stderr at out_fd (or /dev/null when -1), and execs path. Returns the
 * pid, or -errno. */
pid_t berth_spawn(const char *path, char *const argv[], char *const envp[], int mntns_fd, int out_fd);

/* A private mount namespace in which `hide` is lazily unmounted (crun refuses a
 * hybrid cgroup host unless the cgroup2 mount is hidden). Returns an fd of the
 * namespace, or -errno. */
int berth_private_mntns_without(const char *hide);

#ifdef __cplusplus
}
#endif
#endif
