#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthSys
import CBerthImage
import CBerthLaunch

/// What docker calls a container path's stat (the X-Docker-Container-Path-Stat header):
/// `mode` in Go's os.FileMode bits, which is what the docker CLI decodes.
public struct ContainerPathStat: Codable, Sendable {
    public var name: String
    public var size: Int64
    public var mode: UInt32
    public var mtime: String
    public var linkTarget: String

    public var isDirectory: Bool { mode & (1 << 31) != 0 }
}

extension Engine {
    /// Runs `body` with the container's root mounted (a stopped container's overlay is
    /// mounted for the while, as `export` does).
    func withRoot<T>(_ c: EngineContainer, _ body: (String) throws(BerthError) -> T) throws(BerthError) -> T {
        let layer = ContainerLayer(store: images, id: c.id)
        let wasMounted = layer.isMounted
        if !wasMounted { try layer.mount() }
        defer { if !wasMounted { try? layer.unmount() } }
        return try body(layer.rootfs)
    }

    /// `path` inside `root` as a host path, its symlinks resolved inside the root (never out
    /// of it); the last component is not followed (docker cp copies a link as a link).
    static func resolve(_ path: String, in root: String) throws(BerthError) -> String {
        let root = (try? Files.realPath(root)) ?? root
        let dir = try FileDescriptor(open: root, flags: O_RDONLY | O_DIRECTORY)
        let trimmed = path.split(separator: "/").filter { $0 != "." }.map(String.init)
        guard let last = trimmed.last else { return root }
        if last == ".." { throw BerthError("container path \(path): name a file or directory, not ..") }
        let parentPath = "/" + trimmed.dropLast().joined(separator: "/")
        let parent = berth_openat_in_root(dir.rawValue, parentPath, berth_O_PATH | O_DIRECTORY, 0)
        guard parent >= 0 else { throw BerthError("container path", path: parentPath, errno: errno) }
        defer { close(parent) }
        let realRoot = (try? Files.realPath(root)) ?? root
        guard let real = try? Files.realPath("/proc/self/fd/\(parent)"), real == realRoot || real.hasPrefix(realRoot + "/") else {
            throw BerthError("container path \(path): resolves outside the container")
        }
        return (real == "/" ? "" : real) + "/" + last
    }

    static func pathStat(_ hostPath: String, name: String) throws(BerthError) -> ContainerPathStat {
        var st = stat()
        guard lstat(hostPath, &st) == 0 else { throw BerthError("container path \(name)", errno: errno) }
        var mode = UInt32(st.st_mode & 0o777)
        switch st.st_mode & S_IFMT {
        case S_IFDIR: mode |= 1 << 31
        case S_IFLNK: mode |= 1 << 27
        case S_IFIFO: mode |= 1 << 25
        case S_IFSOCK: mode |= 1 << 24
        case S_IFBLK: mode |= 1 << 26
        case S_IFCHR: mode |= (1 << 26) | (1 << 21)
        default: break
        }
        if st.st_mode & S_ISUID != 0 { mode |= 1 << 23 }
        if st.st_mode & S_ISGID != 0 { mode |= 1 << 22 }
        if st.st_mode & S_ISVTX != 0 { mode |= 1 << 20 }
        let link = (st.st_mode & S_IFMT) == S_IFLNK ? (readLinkTarget(hostPath) ?? "") : ""
        let formatter = ISO8601DateFormatter()
        return ContainerPathStat(name: name, size: Int64(st.st_size), mode: mode,
                                 mtime: formatter.string(from: Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec))), linkTarget: link)
    }

    public func statPath(_ ref: String, _ path: String) throws(BerthError) -> ContainerPathStat {
        let c = try container(ref)
        return try withRoot(c) { (root) throws(BerthError) in
            let host = try Engine.resolve(path, in: root)
            return try Engine.pathStat(host, name: (path as NSString).lastPathComponent.isEmpty ? "/" : (path as NSString).lastPathComponent)
        }
    }

    /// `path` of the container as a tar (its last component the one member at the top), into `sink`.
    public func archive(_ ref: String, _ path: String, to sink: ByteSink, before: (ContainerPathStat) -> Void = { _ in }) throws(BerthError) {
        let c = try container(ref)
        try withRoot(c) { (root) throws(BerthError) in
            let host = try Engine.resolve(path, in: root)
            let realRoot = (try? Files.realPath(root)) ?? root
            let name = host == realRoot ? "." : (host as NSString).lastPathComponent
            before(try Engine.pathStat(host, name: name))
            let writer = TarWriter(sink)
            var archiver = TreeArchiver()
            if host == realRoot { try archiver.append(root, to: writer) } else { try archiver.appendPath(host, as: name, to: writer) }
            try writer.finish()
        }
    }

    /// A tar extracted into the container's directory `path` (which must exist), as docker's PUT archive does.
    public func extract(_ ref: String, into path: String, from source: ByteSource) throws(BerthError) {
        let c = try container(ref)
        try withRoot(c) { (root) throws(BerthError) in
            let host = try Engine.resolve(path, in: root)
            var st = stat()
            guard stat(host, &st) == 0 else { throw BerthError("container path \(path)", errno: errno) }
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw BerthError("container path \(path): not a directory") }
            _ = try LayerUnpacker.unpack(TarReader(source, describing: "archive for \(path)"), into: host, describing: "archive for \(path)")
        }
    }
}
