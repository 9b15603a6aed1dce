#if canImport(Glibc)
import Glibc
#endif

/// The one owning file-descriptor type: closed when it goes out of scope,
/// unless ownership is handed on with `release()`.
public struct FileDescriptor: ~Copyable, Sendable {
    public let rawValue: Int32

    public init(adopting rawValue: Int32) { self.rawValue = rawValue }

    /// open(2), EINTR retried. The fd is always O_CLOEXEC.
    public init(open path: String, flags: Int32, mode: mode_t = 0o644) throws(BerthError) {
        var fd: Int32
        repeat { fd = Glibc.open(path, flags | O_CLOEXEC, mode) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw .sys("open", path: path) }
        rawValue = fd
    }

    /// openat(2) relative to this directory, EINTR retried.
    public func openAt(_ name: String, flags: Int32, mode: mode_t = 0o644) throws(BerthError) -> FileDescriptor {
        var fd: Int32
        repeat { fd = Glibc.openat(rawValue, name, flags | O_CLOEXEC, mode) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw .sys("open", path: name) }
        return FileDescriptor(adopting: fd)
    }

    /// Hands the descriptor to the caller, who now must close it.
    public consuming func release() -> Int32 {
        let fd = rawValue
        discard self
        return fd
    }

    deinit { Glibc.close(rawValue) }
}
