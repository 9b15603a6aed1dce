#if canImport(Glibc)
import Glibc
#endif

/// The one error type at module boundaries. It carries what was done, to
/// which path, with which value, and the errno, and prints as one line:
/// `write "max 50000" to /sys/fs/cgroup/berth/c1/cpu.max: EINVAL (invalid argument)`.
public struct BerthError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was attempted, in words (`write "1" to`, `mkdir`, `pivot_root into`).
    public var operation: String
    /// The file or object involved, if any.
    public var path: String?
    /// The errno, if a syscall failed.
    public var errno: Int32?

    public init(_ operation: String, path: String? = nil, errno: Int32? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// A syscall failure with the current `errno`.
    public static func sys(_ operation: String, path: String? = nil, errno code: Int32 = Glibc.errno) -> BerthError {
        BerthError(operation, path: path, errno: code)
    }

    public var description: String {
        var text = operation
        if let path { text += " \(path)" }
        if let errno { text += ": \(Errno.describe(errno))" }
        return text
    }
}

/// errno names as the kernel headers spell them (a table, not a switch).
public enum Errno {
    static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", ENOTBLK: "ENOTBLK", EBUSY: "EBUSY",
        EEXIST: "EEXIST", EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
        EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ETXTBSY: "ETXTBSY",
        EFBIG: "EFBIG", ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK",
        EPIPE: "EPIPE", ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS",
        ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", EPROTO: "EPROTO", EOPNOTSUPP: "EOPNOTSUPP",
        ETIMEDOUT: "ETIMEDOUT", ECONNREFUSED: "ECONNREFUSED", EOVERFLOW: "EOVERFLOW",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETUNREACH: "ENETUNREACH", ECONNRESET: "ECONNRESET",
        EAFNOSUPPORT: "EAFNOSUPPORT", EPROTONOSUPPORT: "EPROTONOSUPPORT", ENOBUFS: "ENOBUFS",
    ]

    /// `EINVAL (invalid argument)`.
    public static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code)).lowercased()
        guard let name = names[code] else { return "errno \(code) (\(text))" }
        return "\(name) (\(text))"
    }
}
