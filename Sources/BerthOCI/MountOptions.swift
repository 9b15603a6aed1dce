#if canImport(Glibc)
import Glibc
#endif

/// `mounts[].options` → mount(2) flags, propagation and the data string.
/// A table, not branches: each option sets or clears one flag.
public enum MountOptions {
    /// option → (flag, clears the flag instead of setting it)
    public static let flags: [String: (flag: UInt, clear: Bool)] = [
        "ro": (UInt(MS_RDONLY), false), "rw": (UInt(MS_RDONLY), true),
        "nosuid": (UInt(MS_NOSUID), false), "suid": (UInt(MS_NOSUID), true),
        "nodev": (UInt(MS_NODEV), false), "dev": (UInt(MS_NODEV), true),
        "noexec": (UInt(MS_NOEXEC), false), "exec": (UInt(MS_NOEXEC), true),
        "sync": (UInt(MS_SYNCHRONOUS), false), "async": (UInt(MS_SYNCHRONOUS), true),
        "dirsync": (UInt(MS_DIRSYNC), false), "remount": (UInt(MS_REMOUNT), false),
        "mand": (UInt(MS_MANDLOCK), false), "nomand": (UInt(MS_MANDLOCK), true),
        "noatime": (UInt(MS_NOATIME), false), "atime": (UInt(MS_NOATIME), true),
        "nodiratime": (UInt(MS_NODIRATIME), false), "diratime": (UInt(MS_NODIRATIME), true),
        "relatime": (UInt(MS_RELATIME), false), "norelatime": (UInt(MS_RELATIME), true),
        "strictatime": (UInt(MS_STRICTATIME), false), "nostrictatime": (UInt(MS_STRICTATIME), true),
        "silent": (UInt(MS_SILENT), false), "loud": (UInt(MS_SILENT), true),
        "lazytime": (UInt(1 << 25), false), "nolazytime": (UInt(1 << 25), true),
        "bind": (UInt(MS_BIND), false), "rbind": (UInt(MS_BIND | MS_REC), false),
    ]

    public static let propagation: [String: UInt] = [
        "private": UInt(MS_PRIVATE), "rprivate": UInt(MS_PRIVATE | MS_REC),
        "shared": UInt(MS_SHARED), "rshared": UInt(MS_SHARED | MS_REC),
        "slave": UInt(MS_SLAVE), "rslave": UInt(MS_SLAVE | MS_REC),
        "unbindable": UInt(MS_UNBINDABLE), "runbindable": UInt(MS_UNBINDABLE | MS_REC),
    ]

    public struct Parsed: Equatable, Sendable {
        public var flags: UInt = 0
        public var propagation: UInt = 0
        public var data: [String] = []
        public var bind: Bool { flags & UInt(MS_BIND) != 0 }
    }

    /// Splits options into flags, propagation and filesystem data (`mode=755`, `size=65536k`, …).
    public static func parse(_ options: [String]) -> Parsed {
        var out = Parsed()
        for option in options {
            if let entry = flags[option] {
                if entry.clear { out.flags &= ~entry.flag } else { out.flags |= entry.flag }
            } else if let prop = propagation[option] {
                out.propagation = prop
            } else if !option.isEmpty && !["defaults", "tmpcopyup", "idmap", "ridmap"].contains(option) {
                out.data.append(option)
            }
        }
        return out
    }
}
