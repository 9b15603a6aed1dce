#if canImport(Glibc)
import Glibc
#endif
import CBerthSeccomp

/// Syscall numbers ↔ names of the native architecture, from libseccomp's tables
/// (the same ones the seccomp profiles compile against), cached per number.
public enum SyscallNames {
    private static let names: [String] = (0..<512).map { nr in
        guard let name = seccomp_syscall_resolve_num_arch(UInt32(SCMP_ARCH_NATIVE), Int32(nr)) else { return "syscall_\(nr)" }
        defer { free(name) }
        return String(cString: name)
    }

    /// `39` → `getpid`; numbers libseccomp does not know read as `syscall_N`.
    public static func name(_ number: Int32) -> String {
        number >= 0 && Int(number) < names.count ? names[Int(number)] : "syscall_\(number)"
    }

    /// `getpid` → 39, or nil.
    public static func number(_ name: String) -> Int32? {
        let nr = seccomp_syscall_resolve_name(name)
        return nr >= 0 ? nr : nil
    }
}
