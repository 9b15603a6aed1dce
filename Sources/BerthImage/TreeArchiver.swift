#if canImport(Glibc)
import Glibc
#endif
import CBerthImage
import BerthSys

/// Writes a directory tree as tar entries, names sorted so the same tree gives
/// the same bytes (and so the same layer digest). For an overlayfs upper
/// directory (`overlayUpper`), 0/0 character devices become `.wh.NAME` and
/// `trusted.overlay.opaque=y` becomes `.wh..wh..opq`: the OCI form of a change set.
public struct TreeArchiver {
    public var overlayUpper = false
    /// A fixed mtime for every entry (reproducible builds), or nil for the files' own.
    public var mtime: Int64?
    /// An owner for every entry (`COPY --chown`), or nil for the files' own.
    public var owner: (uid: Int, gid: Int)?
    private var links: [UInt64: String] = [:]   // (dev<<32 ^ ino) → first path, for hard links

    public init(overlayUpper: Bool = false, mtime: Int64? = nil) {
        self.overlayUpper = overlayUpper
        self.mtime = mtime
    }

    /// Appends `directory`'s contents under `prefix` ("" for the archive root).
    public mutating func append(_ directory: String, prefix: String = "", to writer: TarWriter) throws(BerthError) {
        guard Files.isDirectory(directory) else { throw BerthError("archive", path: directory, errno: ENOTDIR) }
        try walk(directory, prefix, writer)
    }

    /// Appends one file, symlink or directory tree at `member` (COPY of a single source).
    public mutating func appendPath(_ path: String, as member: String, to writer: TarWriter) throws(BerthError) {
        try entry(path, member: member, writer)
    }

    private mutating func walk(_ dir: String, _ prefix: String, _ writer: TarWriter) throws(BerthError) {
        if overlayUpper && isOpaque(dir) {
            var e = TarEntry(path: join(prefix, ".wh..wh..opq"), kind: .file)
            e.mode = 0o644
            e.mtime = mtime ?? 0
            try writer.append(e)
        }
        for name in try Files.list(dir) {
            try entry(dir + "/" + name, member: join(prefix, name), writer)
        }
    }

    /// One path of the tree as a tar entry (and, for a directory, everything under it).
    private mutating func entry(_ path: String, member: String, _ writer: TarWriter) throws(BerthError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw .sys("stat", path: path) }
        let type = st.st_mode & S_IFMT
        if overlayUpper && type == S_IFCHR && st.st_rdev == 0 {
            let slash = member.lastIndex(of: "/")
            let whiteout = slash.map { String(member[...$0]) + ".wh." + member[member.index(after: $0)...] } ?? ".wh." + member
            var e = TarEntry(path: whiteout, kind: .file)
            e.mode = 0o644
            e.mtime = mtime ?? Int64(st.st_mtim.tv_sec)
            try writer.append(e)
            return
        }
        var e = TarEntry(path: member, kind: .file)
        e.mode = UInt32(st.st_mode & 0o7777)
        e.uid = owner?.uid ?? Int(st.st_uid)
        e.gid = owner?.gid ?? Int(st.st_gid)
        e.mtime = mtime ?? Int64(st.st_mtim.tv_sec)
        e.xattrs = xattrs(path)
        switch type {
        case S_IFDIR:
            e.kind = .directory
            try writer.append(e)
            try walk(path, member, writer)
            return
        case S_IFLNK:
            e.kind = .symlink
            e.linkTarget = try readLink(path)
        case S_IFCHR, S_IFBLK:
            e.kind = type == S_IFCHR ? .character : .block
            e.devMajor = berth_dev_major(UInt(st.st_rdev))
            e.devMinor = berth_dev_minor(UInt(st.st_rdev))
        case S_IFIFO:
            e.kind = .fifo
        case S_IFREG:
            let key = (UInt64(st.st_dev) << 32) ^ UInt64(st.st_ino)
            if st.st_nlink > 1 {
                if let first = links[key] {
                    e.kind = .hardlink
                    e.linkTarget = first
                    try writer.append(e)
                    return
                }
                links[key] = member
            }
            e.size = Int64(st.st_size)
            try writer.append(e, content: try FileSource(path: path))
            return
        default:
            return   // sockets are not archived (tar does the same)
        }
        try writer.append(e)
    }

    private func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "/" + name }

    private func readLink(_ path: String) throws(BerthError) -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n >= 0 else { throw .sys("readlink", path: path) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func isOpaque(_ path: String) -> Bool {
        var v = [UInt8](repeating: 0, count: 4)
        let n = berth_lgetxattr(path, "trusted.overlay.opaque", &v, 4)
        return n == 1 && v[0] == UInt8(ascii: "y")
    }

    /// security.capability and user.* xattrs travel with a layer; overlayfs's own do not.
    private func xattrs(_ path: String) -> [String: [UInt8]] {
        var list = [CChar](repeating: 0, count: 4096)
        let n = berth_llistxattr(path, &list, list.count)
        guard n > 0 else { return [:] }
        var out: [String: [UInt8]] = [:]
        for key in list[0..<n].split(separator: 0).map({ String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) })
        where key.hasPrefix("user.") || key == "security.capability" {
            var value = [UInt8](repeating: 0, count: 4096)
            let m = berth_lgetxattr(path, key, &value, value.count)
            if m >= 0 { out[key] = Array(value[0..<m]) }
        }
        return out
    }
}
