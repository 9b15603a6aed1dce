#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Namespace kinds of `linux.namespaces[].type`, with their clone flag and /proc/PID/ns name.
public enum NamespaceKind: String, CaseIterable, Sendable {
    case pid, network, mount, ipc, uts, user, cgroup, time

    /// CLONE_NEW* from linux/sched.h (Glibc's module hides them behind _GNU_SOURCE).
    public var cloneFlag: UInt64 {
        let table: [NamespaceKind: UInt64] = [.mount: 0x0002_0000, .cgroup: 0x0200_0000, .uts: 0x0400_0000, .ipc: 0x0800_0000,
                                              .user: 0x1000_0000, .pid: 0x2000_0000, .network: 0x4000_0000, .time: 0x80]
        return table[self]!
    }

    /// The file under /proc/PID/ns/.
    public var procName: String {
        let table: [NamespaceKind: String] = [.pid: "pid", .network: "net", .mount: "mnt", .ipc: "ipc", .uts: "uts",
                                              .user: "user", .cgroup: "cgroup", .time: "time"]
        return table[self]!
    }
}

/// Capability names as in capability.h, index = capability number.
public enum CapabilityTable {
    public static let names: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]
    static let numbers: [String: Int] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })

    /// The capability number of `CAP_X` (or `X`), nil when unknown.
    public static func number(_ name: String) -> Int? {
        let upper = name.uppercased()
        return numbers[upper.hasPrefix("CAP_") ? upper : "CAP_" + upper]
    }

    /// The highest capability the running kernel knows.
    public static func lastCap() -> Int {
        let text = (try? Files.read("/proc/sys/kernel/cap_last_cap")) ?? ""
        return Int(text.split(separator: "\n").first ?? "") ?? names.count - 1
    }
}

/// `process.rlimits[].type` → resource number.
public enum RlimitTable {
    public static let resources: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]
    public static func name(of resource: Int32) -> String {
        resources.first { $0.value == resource }?.key ?? "rlimit \(resource)"
    }
}

/// Signal names for `kill`: with or without SIG, or numbers.
public enum SignalTable {
    public static let signals: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
        "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
        "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
        "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
    ]

    /// `TERM`, `SIGTERM`, `15`, `RTMIN+3` → signal number.
    public static func parse(_ text: String) -> Int32? {
        if let n = Int32(text), n > 0, n < 65 { return n }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let n = signals[name] { return n }
        if name.hasPrefix("RTMIN") {
            let rest = name.dropFirst(5)
            if rest.isEmpty { return 34 }
            if rest.hasPrefix("+"), let k = Int32(rest.dropFirst()), 34 + k <= 64 { return 34 + k }
        }
        if name.hasPrefix("RTMAX") {
            let rest = name.dropFirst(5)
            if rest.isEmpty { return 64 }
            if rest.hasPrefix("-"), let k = Int32(rest.dropFirst()), 64 - k >= 34 { return 64 - k }
        }
        return nil
    }
}
