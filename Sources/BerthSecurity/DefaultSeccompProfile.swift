import BerthOCI

/// The engine's default seccomp profile: an allow-list with the coverage of
/// Docker's default. Anything not listed fails with EPERM. What a container
/// may additionally do depends on the capabilities it is given, exactly as a
/// capability gates the same operation outside a container.
///
/// Written as a table of syscall families, so a reviewer can see what is
/// allowed and why; `profile(capabilities:)` turns it into an OCI profile.
public enum DefaultSeccompProfile {
    /// One family of syscalls with the reason it is (or is not) allowed.
    public struct Family: Sendable {
        public var name: String
        public var syscalls: [String]
        /// Allowed only when the container holds this capability (nil: always).
        public var capability: String?
        public init(_ name: String, _ syscalls: [String], capability: String? = nil) {
            self.name = name; self.syscalls = syscalls; self.capability = capability
        }
    }

    /// Always allowed: what ordinary programs need.
    public static let allowed: [Family] = [
        Family("file I/O", ["read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
                            "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "_llseek", "dup", "dup2", "dup3",
                            "fcntl", "fcntl64", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "truncate",
                            "truncate64", "ftruncate", "ftruncate64", "fallocate", "fadvise64", "fadvise64_64", "sendfile", "sendfile64",
                            "splice", "tee", "vmsplice", "copy_file_range", "readahead", "ioctl", "pipe", "pipe2"]),
        Family("file metadata", ["stat", "stat64", "fstat", "fstat64", "lstat", "lstat64", "newfstatat", "fstatat64", "statx",
                                 "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "chmod", "fchmod",
                                 "fchmodat", "fchmodat2", "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
                                 "utime", "utimes", "utimensat", "utimensat_time64", "futimesat", "getxattr", "lgetxattr", "fgetxattr",
                                 "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
                                 "lremovexattr", "fremovexattr", "umask", "name_to_handle_at"]),
        Family("directories and links", ["mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
                                         "symlinkat", "unlink", "unlinkat", "readlink", "readlinkat", "getdents", "getdents64",
                                         "chdir", "fchdir", "getcwd", "mknod", "mknodat"]),
        Family("memory", ["brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2", "munlock", "mlockall",
                          "munlockall", "mincore", "msync", "remap_file_pages", "membarrier", "memfd_create", "pkey_alloc",
                          "pkey_free", "pkey_mprotect", "process_mrelease"]),
        Family("processes and threads", ["fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
                                         "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
                                         "pidfd_send_signal", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
                                         "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
                                         "futex_time64", "futex_waitv", "arch_prctl", "prctl", "set_thread_area", "get_thread_area",
                                         "restart_syscall", "capget", "capset", "getrlimit", "setrlimit", "prlimit64", "ugetrlimit",
                                         "getrusage", "times", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
                                         "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
                                         "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
                                         "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
                                         // ptrace is safe on kernels ≥ 4.8 (seccomp is re-checked after the tracer's changes)
                                         "ptrace", "process_vm_readv", "process_vm_writev"]),
        Family("identity (within the user namespace's limits)",
               ["getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32", "setuid", "setuid32",
                "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid", "setresuid32", "setresgid",
                "setresgid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "setgroups", "setgroups32", "getgroups",
                "getgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32"]),
        Family("signals", ["rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
                           "rt_sigtimedwait_time64", "sigaltstack", "signalfd", "signalfd4", "pause", "alarm", "sigreturn",
                           "sigaction", "sigprocmask", "sigpending", "sigsuspend", "signal"]),
        Family("time (reading, sleeping, timers)", ["clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
                                                    "clock_nanosleep", "clock_nanosleep_time64", "gettimeofday", "time", "nanosleep",
                                                    "timer_create", "timer_settime", "timer_settime64", "timer_gettime",
                                                    "timer_gettime64", "timer_getoverrun", "timer_delete", "timerfd_create",
                                                    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64",
                                                    "getitimer", "setitimer"]),
        Family("event polling and async I/O", ["select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
                                               "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
                                               "epoll_pwait2", "eventfd", "eventfd2", "inotify_init", "inotify_init1",
                                               "inotify_add_watch", "inotify_rm_watch", "io_setup", "io_destroy", "io_getevents",
                                               "io_pgetevents", "io_pgetevents_time64", "io_submit", "io_cancel"]),
        Family("System V and POSIX IPC (in the container's ipc namespace)",
               ["shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semtimedop_time64", "semctl", "msgget",
                "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
                "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr"]),
        Family("sockets (raw sockets still need CAP_NET_RAW)", ["socketpair", "bind", "listen", "accept", "accept4", "connect",
                                                                "getsockname", "getpeername", "sendto", "recvfrom", "send", "recv",
                                                                "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64",
                                                                "shutdown", "setsockopt", "getsockopt", "socketcall"]),
        Family("system information", ["uname", "sysinfo", "getrandom", "getcpu", "landlock_create_ruleset", "landlock_add_rule",
                                      "landlock_restrict_self"]),
    ]

    /// Allowed only with a capability: these reach kernel state shared with the host.
    public static let gated: [Family] = [
        Family("mounts, namespaces, host names, BPF and perf (CAP_SYS_ADMIN)",
               ["mount", "mount_setattr", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
                "unshare", "setns", "sethostname", "setdomainname", "quotactl", "quotactl_fd", "fanotify_init", "lookup_dcookie",
                "bpf", "perf_event_open", "syslog", "clone3"], capability: "CAP_SYS_ADMIN"),
        Family("reboot (CAP_SYS_BOOT)", ["reboot"], capability: "CAP_SYS_BOOT"),
        Family("chroot (CAP_SYS_CHROOT)", ["chroot"], capability: "CAP_SYS_CHROOT"),
        Family("kernel modules (CAP_SYS_MODULE)", ["init_module", "finit_module", "delete_module"], capability: "CAP_SYS_MODULE"),
        Family("process accounting (CAP_SYS_PACCT)", ["acct"], capability: "CAP_SYS_PACCT"),
        Family("inspecting other processes (CAP_SYS_PTRACE)", ["kcmp", "pidfd_getfd", "process_madvise"], capability: "CAP_SYS_PTRACE"),
        Family("port I/O (CAP_SYS_RAWIO)", ["iopl", "ioperm"], capability: "CAP_SYS_RAWIO"),
        Family("setting the clock (CAP_SYS_TIME)", ["settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime",
                                                    "clock_adjtime64", "adjtimex"], capability: "CAP_SYS_TIME"),
        Family("vhangup (CAP_SYS_TTY_CONFIG)", ["vhangup"], capability: "CAP_SYS_TTY_CONFIG"),
        Family("NUMA policy (CAP_SYS_NICE)", ["get_mempolicy", "set_mempolicy", "mbind", "set_mempolicy_home_node"], capability: "CAP_SYS_NICE"),
        Family("kernel log (CAP_SYSLOG)", ["syslog"], capability: "CAP_SYSLOG"),
        Family("BPF (CAP_BPF)", ["bpf"], capability: "CAP_BPF"),
        Family("perf events (CAP_PERFMON)", ["perf_event_open"], capability: "CAP_PERFMON"),
        Family("open by handle (CAP_DAC_READ_SEARCH)", ["open_by_handle_at"], capability: "CAP_DAC_READ_SEARCH"),
    ]

    /// Never allowed, listed so the intent is explicit (they fall to the default EPERM):
    /// keyrings are not namespaced; io_uring bypasses seccomp for the work it does;
    /// userfaultfd eases kernel exploits; kexec, swap and personality tricks reach the host.
    public static let blocked: [String] = ["add_key", "request_key", "keyctl", "io_uring_setup", "io_uring_enter",
                                           "io_uring_register", "userfaultfd", "kexec_load", "kexec_file_load", "swapon",
                                           "swapoff", "pivot_root", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
                                           "create_module", "get_kernel_syms", "query_module", "vm86", "vm86old"]

    /// New-namespace flags of clone(2): refused without CAP_SYS_ADMIN.
    static let cloneNamespaceFlags: UInt64 = 0x0002_0000 /* NEWNS */ | 0x0200_0000 /* NEWCGROUP */ | 0x0400_0000 /* NEWUTS */
        | 0x0800_0000 /* NEWIPC */ | 0x1000_0000 /* NEWUSER */ | 0x2000_0000 /* NEWPID */ | 0x4000_0000 /* NEWNET */

    /// The OCI profile for a container holding `capabilities` (its bounding set).
    public static func profile(capabilities: [String]) -> Seccomp {
        let held = Set(capabilities)
        var names: [String] = allowed.flatMap(\.syscalls)
        for family in gated where held.contains(family.capability ?? "") { names += family.syscalls }
        var seen = Set<String>()
        names = names.filter { seen.insert($0).inserted }
        var rules = [Seccomp.Syscall(names: names, action: "SCMP_ACT_ALLOW", errnoRet: nil, args: nil)]
        // personality: Linux, Linux32, UNAME26 and the query only; ADDR_NO_RANDOMIZE and friends weaken ASLR
        rules.append(Seccomp.Syscall(names: ["personality"], action: "SCMP_ACT_ALLOW", errnoRet: nil,
                                     args: [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff].map { Seccomp.Arg(index: 0, value: $0, valueTwo: nil, op: "SCMP_CMP_EQ") }))
        // socket: any family but AF_VSOCK (40), which reaches the hypervisor's host
        rules.append(Seccomp.Syscall(names: ["socket"], action: "SCMP_ACT_ALLOW", errnoRet: nil,
                                     args: [Seccomp.Arg(index: 0, value: 40, valueTwo: nil, op: "SCMP_CMP_NE")]))
        if !held.contains("CAP_SYS_ADMIN") {
            // clone: threads and processes, but no new namespaces
            rules.append(Seccomp.Syscall(names: ["clone"], action: "SCMP_ACT_ALLOW", errnoRet: nil,
                                         args: [Seccomp.Arg(index: 0, value: cloneNamespaceFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")]))
            // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back to clone
            rules.append(Seccomp.Syscall(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38, args: nil))
        } else {
            rules.append(Seccomp.Syscall(names: ["clone"], action: "SCMP_ACT_ALLOW", errnoRet: nil, args: nil))
        }
        return Seccomp(defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, architectures: nativeArchitectures,
                       flags: nil, listenerPath: nil, listenerMetadata: nil, syscalls: rules)
    }

    /// The host's architecture and the 32-bit ones its kernel also runs.
    public static var nativeArchitectures: [String] {
        #if arch(x86_64)
        return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        #elseif arch(arm64)
        return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
        #else
        return []
        #endif
    }
}
