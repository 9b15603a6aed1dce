#if canImport(Glibc)
import Glibc
#endif
import CBerthImage
import BerthSys

/// Writes a layer's tar entries into the layer's own directory, the way
/// overlayfs wants to stack it: `.wh.NAME` becomes a 0/0 character device
/// named NAME, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its
/// directory. Every path is resolved with openat2(RESOLVE_IN_ROOT), so a
/// symlink in the layer cannot point a later entry outside of it.
public struct LayerUnpacker {
    public struct Result: Sendable {
        public var entries = 0
        public var bytes: Int64 = 0
        public var whiteouts = 0
    }

    let root: Int32
    let rootPath: String
    let what: String
    private var cachedParent: (path: String, fd: Int32, setgid: Bool)?
    /// Directories' owner, mode and mtime, set at the end (a 0555 directory
    /// must still take its contents; the last entry for a path wins).
    private var directories: [String: TarEntry] = [:]
    private var directoryOrder: [String] = []
    private let uid = geteuid(), gid = getegid()

    /// `directory` must exist and be empty.
    public static func unpack(_ reader: TarReader, into directory: String, describing what: String) throws(BerthError) -> Result {
        let root = try FileDescriptor(open: directory, flags: O_RDONLY | O_DIRECTORY)
        var unpacker = LayerUnpacker(root: root.rawValue, rootPath: directory, what: what)
        defer { if let c = unpacker.cachedParent { close(c.fd) } }
        // files are created with their final mode: no umask in between (restored after)
        let savedUmask = umask(0)
        defer { umask(savedUmask) }
        var result = Result()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { buffer.deallocate() }
        while let entry = try reader.next() {
            result.entries += 1
            if try unpacker.apply(entry, reader: reader, buffer: buffer) { result.whiteouts += 1 }
            result.bytes += entry.size
        }
        try unpacker.finishDirectories()
        return result
    }

    private func fail(_ op: String, _ path: String, _ e: Int32 = errno) -> BerthError {
        BerthError("\(what): \(op)", path: path, errno: e)
    }

    /// Splits a member name into parent and base, refusing names that climb out.
    private func split(_ path: String) throws(BerthError) -> (parent: String, base: String)? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            guard part != ".." else { throw BerthError("\(what): entry \"\(path)\" climbs out of the layer with \"..\"") }
            parts.append(part)
        }
        guard let base = parts.popLast() else { return nil }   // the root itself
        return (parts.joined(separator: "/"), String(base))
    }

    /// The parent directory, made (as root:root 0755, like tar) when the layer skipped it.
    private mutating func parent(_ path: String) throws(BerthError) -> Int32 {
        if let c = cachedParent, c.path == path { return c.fd }
        if let c = cachedParent { close(c.fd); cachedParent = nil }
        if path.isEmpty {
            let fd = dup(root)
            cachedParent = ("", fd, false)
            return fd
        }
        var fd = berth_openat_in_root(root, path, berth_O_PATH_flag | O_DIRECTORY, 0)
        if fd < 0 && errno == ENOENT {
            var walked = ""
            for part in path.split(separator: "/") {
                walked += walked.isEmpty ? String(part) : "/" + part
                let probe = berth_openat_in_root(root, walked, berth_O_PATH_flag | O_DIRECTORY, 0)
                if probe >= 0 { close(probe); continue }
                let (dirPath, name) = walked.lastIndex(of: "/").map { (String(walked[..<$0]), String(walked[walked.index(after: $0)...])) } ?? ("", walked)
                let dirfd = dirPath.isEmpty ? dup(root) : berth_openat_in_root(root, dirPath, berth_O_PATH_flag | O_DIRECTORY, 0)
                guard dirfd >= 0 else { throw fail("open", dirPath) }
                let r = mkdirat(dirfd, name, 0o755)
                let e = errno
                var st = stat()
                let dangling = r != 0 && e == EEXIST && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
                close(dirfd)
                if dangling { throw BerthError("\(what): \(path): its parent \(walked) is a symlink to a directory the layer does not have") }
                guard r == 0 || e == EEXIST else { throw fail("mkdir", walked, e) }
            }
            fd = berth_openat_in_root(root, path, berth_O_PATH_flag | O_DIRECTORY, 0)
        }
        guard fd >= 0 else { throw fail("open directory", path) }
        // a set-group-id parent hands its group to new files: then they need a chown even for root:root
        var st = stat()
        let setgid = fstat(fd, &st) == 0 && (st.st_mode & S_ISGID) != 0
        cachedParent = (path, fd, setgid)
        return fd
    }

    /// Removes what is at `name` so an entry can take its place (a later member wins).
    private func clear(_ dir: Int32, _ name: String, keepDirectory: Bool) throws(BerthError) {
        var st = stat()
        guard fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if keepDirectory { return }
            try Files.removeTree("/proc/self/fd/\(dir)/\(name)")
        } else if unlinkat(dir, name, 0) != 0 && errno != ENOENT {
            throw fail("unlink", name)
        }
    }

    /// Returns true for a whiteout.
    private mutating func apply(_ e: TarEntry, reader: TarReader, buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Bool {
        guard let (parentPath, base) = try split(e.path) else {
            // "./" itself: the layer root's metadata
            if e.kind == .directory { remember("", e) }
            return false
        }
        let dir = try parent(parentPath)
        if base.hasPrefix(".wh.") {
            if base == ".wh..wh..opq" {
                let v: [UInt8] = [UInt8(ascii: "y")]
                guard berth_lsetxattr_at(dir, "", "trusted.overlay.opaque", v, 1) == 0 else { throw fail("set trusted.overlay.opaque on", parentPath) }
                return true
            }
            if base.hasPrefix(".wh..wh.") { return false }   // aufs bookkeeping, nothing to stack
            let name = String(base.dropFirst(4))
            try clear(dir, name, keepDirectory: false)
            guard berth_mknodat(dir, name, UInt32(S_IFCHR), 0, 0) == 0 else { throw fail("mknod whiteout", joined(parentPath, name)) }
            return true
        }
        let full = joined(parentPath, base)
        switch e.kind {
        case .directory:
            if mkdirat(dir, base, 0o700) != 0 {
                guard errno == EEXIST else { throw fail("mkdir", full) }
                try clear(dir, base, keepDirectory: true)
                guard mkdirat(dir, base, 0o700) == 0 || errno == EEXIST else { throw fail("mkdir", full) }
            }
            try setXattrs(dir, base, e)
            remember(full, e)
            return false
        case .file:
            // created with its final mode; owned by us already unless the tar says otherwise:
            // open, write, futimens, close is all most files cost
            let mode = mode_t(e.mode & 0o7777)
            var fd = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd < 0 && errno == EEXIST {
                try clear(dir, base, keepDirectory: false)
                fd = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            }
            guard fd >= 0 else { throw fail("create", full) }
            defer { close(fd) }
            while true {
                let n = try reader.readContent(into: buffer)
                if n == 0 { break }
                var off = 0
                while off < n {
                    let w = write(fd, buffer.baseAddress! + off, n - off)
                    if w < 0 { if errno == EINTR { continue }; throw fail("write", full) }
                    off += w
                }
            }
            if uid_t(e.uid) != uid || gid_t(e.gid) != gid || cachedParent?.setgid == true {
                guard fchown(fd, uid_t(e.uid), gid_t(e.gid)) == 0 else { throw fail("chown \(e.uid):\(e.gid)", e.path) }
                // chown clears set-id bits: the mode once more
                if mode & 0o7000 != 0 { guard fchmod(fd, mode) == 0 else { throw fail("chmod \(String(e.mode, radix: 8))", e.path) } }
            }
            try setXattrs(fd, "", e)
            var times = [timespec(tv_sec: Int(e.mtime), tv_nsec: 0), timespec(tv_sec: Int(e.mtime), tv_nsec: 0)]
            futimens(fd, &times)
            return false
        case .symlink:
            if symlinkat(e.linkTarget, dir, base) != 0 {
                guard errno == EEXIST else { throw fail("symlink", full) }
                try clear(dir, base, keepDirectory: false)
                guard symlinkat(e.linkTarget, dir, base) == 0 else { throw fail("symlink", full) }
            }
        case .hardlink:
            try clear(dir, base, keepDirectory: false)
            let target = berth_openat_in_root(root, e.linkTarget, berth_O_PATH_flag | O_NOFOLLOW, 0)
            guard target >= 0 else { throw fail("hard link \(full) to", e.linkTarget) }
            defer { close(target) }
            guard berth_linkat_empty(target, dir, base) == 0 else { throw fail("hard link \(full) to", e.linkTarget) }
            return false   // a link shares its target's metadata
        case .character, .block, .fifo:
            try clear(dir, base, keepDirectory: false)
            let type = e.kind == .character ? S_IFCHR : e.kind == .block ? S_IFBLK : S_IFIFO
            guard berth_mknodat(dir, base, UInt32(type) | e.mode, e.devMajor, e.devMinor) == 0 else { throw fail("mknod", full) }
        }
        try setOwnerAndMode(dir, base, e)
        try setXattrs(dir, base, e)
        var times = [timespec(tv_sec: Int(e.mtime), tv_nsec: 0), timespec(tv_sec: Int(e.mtime), tv_nsec: 0)]
        _ = utimensat(dir, base, &times, AT_SYMLINK_NOFOLLOW)
        return false
    }

    private func joined(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }

    /// Symlinks and device nodes: owner, and mode where there is one.
    private func setOwnerAndMode(_ dir: Int32, _ name: String, _ e: TarEntry) throws(BerthError) {
        guard fchownat(dir, name, uid_t(e.uid), gid_t(e.gid), AT_SYMLINK_NOFOLLOW) == 0 else { throw fail("chown \(e.uid):\(e.gid)", e.path) }
        // chown clears set-id bits, so the mode comes after it; symlinks have no mode
        if e.kind != .symlink {
            guard fchmodat(dir, name, mode_t(e.mode & 0o7777), 0) == 0 else { throw fail("chmod \(String(e.mode, radix: 8))", e.path) }
        }
    }

    private func setXattrs(_ dir: Int32, _ name: String, _ e: TarEntry) throws(BerthError) {
        for (key, value) in e.xattrs {
            let r = value.withUnsafeBytes { berth_lsetxattr_at(dir, name, key, $0.baseAddress, $0.count) }
            // user.* on a symlink is EPERM by design; everything else is an error
            if r != 0 && !(errno == EPERM && e.kind == .symlink) { throw fail("set xattr \(key) on", e.path) }
        }
    }

    private mutating func remember(_ path: String, _ e: TarEntry) {
        if directories.updateValue(e, forKey: path) == nil { directoryOrder.append(path) }
    }

    /// Directories last, deepest first: owner, mode and mtime (making their contents changed the mtime).
    private mutating func finishDirectories() throws(BerthError) {
        if let c = cachedParent { close(c.fd); cachedParent = nil }
        for path in directoryOrder.reversed() {
            guard let e = directories[path] else { continue }
            let fd = path.isEmpty ? dup(root) : berth_openat_in_root(root, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0)
            guard fd >= 0 else { continue }   // replaced by a later entry
            defer { close(fd) }
            guard fchown(fd, uid_t(e.uid), gid_t(e.gid)) == 0 else { throw fail("chown \(e.uid):\(e.gid)", e.path) }
            guard fchmod(fd, mode_t(e.mode & 0o7777)) == 0 else { throw fail("chmod \(String(e.mode, radix: 8))", e.path) }
            var times = [timespec(tv_sec: Int(e.mtime), tv_nsec: 0), timespec(tv_sec: Int(e.mtime), tv_nsec: 0)]
            futimens(fd, &times)
        }
    }
}
