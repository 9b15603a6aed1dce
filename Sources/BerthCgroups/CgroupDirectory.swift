#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// One container cgroup directory: every controller file is written through
/// here, so a rejected value always names the file, the value and the errno.
public struct CgroupDirectory: Sendable {
    public let path: String
    public init(_ path: String) { self.path = path }

    /// `write "max 50000" to cpu.max in /sys/fs/cgroup/berth/c1: EINVAL (invalid argument)`
    public func write(_ file: String, _ value: String) throws(BerthError) {
        let fd = try open(file, toWrite: value)
        defer { close(fd) }
        try write(value, to: fd, file)
    }

    /// Opens a controller file for one or more writes (`value`: the first, for the error).
    /// O_TRUNC as runc does: kernfs ignores it, a plain file (the unit tests' fake) needs it.
    public func open(_ file: String, toWrite value: String) throws(BerthError) -> Int32 {
        let fd = Glibc.open(path + "/" + file, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw BerthError("write \"\(value)\" to \(file) in", path: path, errno: errno) }
        return fd
    }

    /// One write(2): the kernel takes each as one value (one rule of devices.allow).
    public func write(_ value: String, to fd: Int32, _ file: String) throws(BerthError) {
        let n = value.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard n >= 0 else { throw BerthError("write \"\(value)\" to \(file) in", path: path, errno: errno) }
    }

    public func read(_ file: String) -> String? {
        (try? Files.read(path + "/" + file)).map { $0.trimmingWhitespace() }
    }

    public func has(_ file: String) -> Bool { access(path + "/" + file, F_OK) == 0 }
}
