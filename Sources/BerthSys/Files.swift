#if canImport(Glibc)
import Glibc
#endif

/// File helpers with errors that name the path and errno.
public enum Files {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whole file as bytes. Read through a stack buffer: a zero-filled 64 KiB heap
    /// buffer per read cost 16 fresh pages (page faults) for a file of a few bytes.
    public static func readBytes(_ path: String) throws(BerthError) -> [UInt8] {
        let fd = try FileDescriptor(open: path, flags: O_RDONLY)
        var out: [UInt8] = []
        var failure: Int32 = 0
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16384) { buf in
            while true {
                let n = Glibc.read(fd.rawValue, buf.baseAddress, buf.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { return }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0..<n]))
            }
        }
        if failure != 0 { throw .sys("read", path: path, errno: failure) }
        return out
    }

    public static func read(_ path: String) throws(BerthError) -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    /// Writes `value` to an existing file (a cgroup or proc file): one write(2).
    public static func write(_ value: String, to path: String) throws(BerthError) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor(open: path, flags: O_WRONLY) } catch { throw .sys("write \"\(value)\" to", path: path, errno: error.errno ?? EIO) }
        try writeAll(fd.rawValue, Array(value.utf8), describing: "write \"\(value)\" to", path: path)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], describing op: String, path: String) throws(BerthError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .sys(op, path: path)
            }
            offset += n
        }
    }

    /// Write-temp + rename: a reader or a crashed writer never sees a half-written
    /// file. No fsync: runtime state lives on tmpfs (/run) and does not outlive a
    /// reboot, and an fsync on a disk-backed root costs milliseconds per command.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(BerthError) {
        let tmp = path + ".tmp.\(getpid())"
        do throws(BerthError) {
            let fd = try FileDescriptor(open: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
            try writeAll(fd.rawValue, bytes, describing: "write", path: tmp)
        } catch {
            unlink(tmp)
            throw error
        }
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw .sys("rename to", path: path, errno: e)
        }
    }

    public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(BerthError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw .sys("mkdir", path: path) }
    }

    /// mkdir -p, from the leaf upward: one mkdir when the parent exists, and
    /// parents are made only when the kernel says they are missing. A parent
    /// removed concurrently (a delete dropping an empty shared parent such as
    /// `berth/` while a create makes a child in it) is made again.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(BerthError) {
        for _ in 0..<8 {
            if mkdir(path, mode) == 0 { return }
            let e = errno
            if e == EEXIST && isDirectory(path) { return }
            guard e == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex else { throw .sys("mkdir", path: path, errno: e) }
            try makeDirectories(String(path[..<slash]), mode: mode)
        }
        throw .sys("mkdir (its parent kept disappearing)", path: path, errno: ENOENT)
    }

    /// rm -rf without following symlinks or crossing into mounts' contents by name.
    public static func removeTree(_ path: String) throws(BerthError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw .sys("stat", path: path)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try list(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 || errno == ENOENT else { throw .sys("rmdir", path: path) }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw .sys("unlink", path: path) }
        }
    }

    /// Names in a directory, without . and ..
    public static func list(_ path: String) throws(BerthError) -> [String] {
        guard let dir = opendir(path) else { throw .sys("opendir", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Resolves a path against a base directory when it is relative.
    public static func absolute(_ path: String, relativeTo base: String) -> String {
        path.hasPrefix("/") ? path : (base.hasSuffix("/") ? base + path : base + "/" + path)
    }

    public static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(cString: buf)
    }

    /// realpath(3).
    public static func realPath(_ path: String) throws(BerthError) -> String {
        guard let resolved = realpath(path, nil) else { throw .sys("resolve", path: path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Unix stream sockets: the daemon's clients, the supervisors' attach sockets.
public enum UnixSocket {
    /// A connected socket (close-on-exec) to `path`.
    public static func connect(_ path: String) throws(BerthError) -> Int32 {
        try open(path) { fd, addr, size in Glibc.connect(fd, addr, size) == 0 ? nil : "connect" }
    }

    /// A listening socket at `path` (any old file there is replaced), with `mode`.
    public static func listen(_ path: String, mode: mode_t, group: gid_t? = nil, backlog: Int32 = 128) throws(BerthError) -> Int32 {
        unlink(path)
        return try open(path) { fd, addr, size in
            if bind(fd, addr, size) != 0 { return "bind" }
            if chmod(path, mode) != 0 { return "chmod" }
            if let group, chown(path, 0, group) != 0 { return "chown" }
            return Glibc.listen(fd, backlog) == 0 ? nil : "listen"
        }
    }

    /// A socket with `path`'s address; `use` says which call failed (nil: none did).
    private static func open(_ path: String, _ use: (Int32, UnsafePointer<sockaddr>, socklen_t) -> String?) throws(BerthError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .sys("socket") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { close(fd); throw BerthError("socket path too long (107 bytes at most)", path: path) }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        let failed = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { use(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if let failed { let e = errno; close(fd); throw .sys(failed, path: path, errno: e) }
        return fd
    }

    /// Accepts on `listener` until it is shut down, handing each connection (close-on-exec) to `body`.
    public static func acceptLoop(_ listener: Int32, _ body: (Int32) -> Void) {
        while true {
            let conn = accept(listener, nil, nil)
            if conn < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
            body(conn)
        }
    }
}

/// Follows a file that grows (a container's json log, the event log): hands each
/// complete line written after `offset` to `line`, starting over when the file
/// shrinks (rotated), until `stop` says so (asked before each read, so what was
/// written before it said so is still read) or `line` returns false.
public func followLines(_ path: String, from offset: Int64, every microseconds: UInt32 = 50_000, stop: () -> Bool, _ line: ([UInt8]) -> Bool) {
    var offset = offset
    var pending: [UInt8] = []
    while true {
        let last = stop()
        var st = stat()
        if stat(path, &st) == 0 {
            if Int64(st.st_size) < offset { offset = 0; pending = [] }
            if Int64(st.st_size) > offset, let fd = try? FileDescriptor(open: path, flags: O_RDONLY) {
                var buffer = [UInt8](repeating: 0, count: Int(Int64(st.st_size) - offset))
                let n = pread(fd.rawValue, &buffer, buffer.count, off_t(offset))
                if n > 0 {
                    offset += Int64(n)
                    pending += buffer[0..<n]
                    while let nl = pending.firstIndex(of: 10) {
                        if !line(Array(pending[..<nl])) { return }
                        pending.removeSubrange(...nl)
                    }
                }
            }
        }
        if last { return }
        usleep(microseconds)
    }
}

/// flock(2) on a lock file: shared for readers and writers of new content,
/// exclusive for whoever deletes (rmi, prune) or rewrites records (image
/// records, network records and their address allocations).
public final class StoreLock {
    let fd: Int32
    public init(path: String, exclusive: Bool) throws(BerthError) {
        fd = try FileDescriptor(open: path, flags: O_RDWR | O_CREAT, mode: 0o600).release()
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            throw .sys("lock", path: path, errno: e)
        }
    }
    deinit { close(fd) }   // closing drops the lock
}

/// write(2) until all of `bytes` is out (EINTR retried): false once the descriptor fails.
public func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

/// read(2) until `buffer` is full (EINTR retried): false at EOF or an error first.
public func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
    var off = 0
    while off < buffer.count {
        let n = read(fd, buffer.baseAddress! + off, buffer.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

extension StringProtocol {
    /// Whether `text` occurs in this string (UTF-8 bytes compared). The runtime's modules
    /// use this, not `contains(_:)` with a string: that one lives in _StringProcessing,
    /// whose ~400 protocol conformances the Swift runtime scans on every first lookup.
    public func containsText(_ text: String) -> Bool {
        let haystack = Array(utf8), needle = Array(text.utf8)
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        return false
    }
}
