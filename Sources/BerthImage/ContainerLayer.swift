#if canImport(Glibc)
import Glibc
#endif
import CBerthImage
import BerthSys

/// A container's writable layer and its overlayfs root:
///
///     containers/<id>/upper   what the container changed
///     containers/<id>/work    overlayfs's scratch space
///     containers/<id>/rootfs  the overlay: upper over the image's layers
///     containers/<id>/image   the image id (keeps the image's layers from garbage collection)
///     containers/<id>/chain   the layer chain ids, one a line
public struct ContainerLayer: Sendable {
    public let store: ImageStore
    public let id: String

    public init(store: ImageStore, id: String) {
        self.store = store
        self.id = id
    }

    public var directory: String { store.root + "/containers/" + id }
    public var rootfs: String { directory + "/rootfs" }
    public var upper: String { directory + "/upper" }
    var work: String { directory + "/work" }

    /// Makes the writable layer for `image` and mounts the overlay.
    public func create(from image: ImageRecord) throws(BerthError) {
        try create(chain: image.chain, image: image.id)
    }

    /// Makes a writable layer over the layers `chain` (base first); `image`, when
    /// given, keeps that image from removal while the container exists.
    public func create(chain: [Digest], image: Digest?) throws(BerthError) {
        try store.prepare()
        try Files.makeDirectory(directory, mode: 0o700)
        do throws(BerthError) {
            for d in [upper, work, rootfs] { try Files.makeDirectory(d, mode: 0o755) }
            if let image { try Files.writeAtomically(Array(image.description.utf8), to: directory + "/image", mode: 0o600) }
            try Files.writeAtomically(Array(chain.map(\.hex).joined(separator: "\n").utf8), to: directory + "/chain", mode: 0o600)
            try mount(lowers: chain.isEmpty ? [store.emptyLayer] : chain.reversed().map(store.layerDirectory))
        } catch {
            try? remove()
            throw error
        }
    }

    public var isMounted: Bool { Overlay.isMountPoint(rootfs) }

    /// Mounts the overlay again (after a reboot or an unmount), from the recorded chain.
    public func mount() throws(BerthError) {
        guard !isMounted else { return }
        let chain = try Files.read(directory + "/chain").split(separator: "\n").map { Digest(hex: String($0)) }
        try mount(lowers: chain.isEmpty ? [store.emptyLayer] : chain.reversed().map(store.layerDirectory))
    }

    func mount(lowers: [String]) throws(BerthError) {
        for l in lowers where !Files.isDirectory(l) {
            throw BerthError("container \(id): its image layer \(l) is missing from the store")
        }
        try Overlay.mount(lowers: lowers, upper: upper, work: work, target: rootfs)
    }

    public func unmount() throws(BerthError) {
        try Overlay.unmount(rootfs)
    }

    /// Unmounts and deletes the writable layer; the image's layers stay.
    public func remove() throws(BerthError) {
        if Files.exists(rootfs) { try Overlay.unmount(rootfs) }
        try Files.removeTree(directory)
    }
}

/// overlayfs mounts. On Linux 6.8+ each lower layer is its own `fsconfig`
/// call ("lowerdir+"), so there is no length limit; before that the options
/// string of mount(2) must fit in a page, and when the layers' paths do not,
/// they are passed as `/proc/self/fd/N` of descriptors held open for the call.
public enum Overlay {
    /// Before 6.5 overlayfs parsed options the legacy way, taking any key at fsconfig time and
    /// failing only at create: the version says "lowerdir+" (6.8), the probe confirms. Computed once.
    private static let lowerdirPlus = kernelAtLeast(6, 8) && berth_overlay_has_lowerdir_plus() != 0

    public static func mount(lowers: [String], upper: String, work: String, target: String) throws(BerthError) {
        if lowerdirPlus {
            var step: UnsafePointer<CChar>?
            let strings = CStringArray(lowers)
            let r = strings.pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer {
                berth_overlay_mount_fsapi($0.baseAddress, Int32(lowers.count), upper, work, target, &step)
            }
            guard r == 0 else {
                throw BerthError("mount overlay (\(lowers.count) layers; \(step.map { String(cString: $0) } ?? "?")) on", path: target, errno: -r)
            }
            return
        }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var lowerOption = lowers.joined(separator: ":")
        let fixed = ",upperdir=\(upper),workdir=\(work),index=off".utf8.count + 10
        if lowerOption.utf8.count + fixed >= 4096 {
            for l in lowers {
                let fd = open(l, berth_O_PATH_flag | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { throw .sys("open layer", path: l) }
                fds.append(fd)
            }
            lowerOption = fds.map { "/proc/self/fd/\($0)" }.joined(separator: ":")
            guard lowerOption.utf8.count + fixed < 4096 else {
                throw BerthError("mount overlay on \(target): \(lowers.count) layers do not fit in mount(2)'s options on this kernel (Linux 6.8+ has no such limit)")
            }
        }
        let options = "lowerdir=\(lowerOption),upperdir=\(upper),workdir=\(work),index=off"
        guard Glibc.mount("overlay", target, "overlay", 0, options) == 0 else {
            throw .sys("mount overlay (\(lowers.count) layers) on", path: target)
        }
    }

    public static func unmount(_ target: String) throws(BerthError) {
        while isMountPoint(target) {
            if umount2(target, 0) == 0 { continue }
            if errno == EBUSY, umount2(target, Int32(MNT_DETACH)) == 0 { continue }
            if errno == EINVAL || errno == ENOENT { return }
            throw .sys("unmount", path: target)
        }
    }

    /// Whether `path` is itself a mount point.
    public static func isMountPoint(_ path: String) -> Bool { MountInfo.isMountPoint(path) }
}


extension ContainerLayer {
    /// A file of a container's root read with openat2(RESOLVE_IN_ROOT), so a
    /// symlink in the image cannot make berth read a host file (`/etc/passwd` → host's).
    public static func readFile(root: String, path: String) -> String? {
        guard let dir = try? FileDescriptor(open: root, flags: O_RDONLY | O_DIRECTORY) else { return nil }
        let fd = berth_openat_in_root(dir.rawValue, path, O_RDONLY, 0)
        guard fd >= 0 else { return nil }
        return (try? FileSource(adopting: fd, path: path).readAll(limit: 4 << 20, describing: path)).map { String(decoding: $0, as: UTF8.self) }
    }
}
