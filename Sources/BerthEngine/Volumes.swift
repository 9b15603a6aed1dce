#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthSys

/// `docker volume inspect`'s shape.
public struct VolumeInspect: Codable, Sendable {
    public var Name: String
    public var Driver = "local"
    public var Mountpoint: String
    public var CreatedAt: String
    public var Labels: [String: String] = [:]
    public var Scope = "local"
    public var Options: [String: String] = [:]
}

/// Local volumes: directories under DATA-ROOT/volumes/NAME/_data, made by `volume create`
/// or by the first container that names them (`-v NAME:/dst`); `-v /dst` makes an
/// anonymous one (64 hex characters, as docker names them), removed with an `--rm` container.
extension Engine {
    var volumesDir: String { images.root + "/volumes" }

    static func isAnonymousVolume(_ name: String) -> Bool {
        name.utf8.count == 64 && name.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    @discardableResult
    public func createVolume(_ name: String?) throws(BerthError) -> VolumeInspect {
        let name = name ?? (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        try ContainerNames.validate(name, what: "volume name")
        try Files.makeDirectories(volumesDir + "/" + name + "/_data", mode: 0o755)
        return try volume(name)
    }

    public func volume(_ name: String) throws(BerthError) -> VolumeInspect {
        var st = stat()
        let path = volumesDir + "/" + name + "/_data"
        guard !name.contains("/"), stat(path, &st) == 0 else { throw BerthError("no such volume: \(name)") }
        return VolumeInspect(Name: name, Mountpoint: path, CreatedAt: Timestamp.format(st.st_mtim.tv_sec))
    }

    /// Removes a volume no container uses (a container, running or not, that mounts it keeps it).
    public func removeVolume(_ name: String) throws(BerthError) {
        let v = try volume(name)
        if let user = containers().first(where: { c in ((try? spec(of: c))?.mounts ?? []).contains { $0.source == v.Mountpoint } }) {
            throw BerthError("volume \(name) is in use by container \(user.name); remove the container first")
        }
        try Files.removeTree(volumesDir + "/" + name)
    }

    /// Unused volumes removed: anonymous ones, or with `all` every one; returns names and bytes.
    public func pruneVolumes(all: Bool) -> (names: [String], bytes: Int64) {
        var removed: [String] = [], bytes: Int64 = 0
        for v in volumes() where v.containers == 0 && (all || Engine.isAnonymousVolume(v.name)) {
            if (try? Files.removeTree(volumesDir + "/" + v.name)) != nil { removed.append(v.name); bytes += v.size }
        }
        return (removed, bytes)
    }

    /// The anonymous volumes a container's config mounts (removed with it under --rm).
    func anonymousVolumes(of c: EngineContainer) -> [String] {
        ((try? spec(of: c))?.mounts ?? []).compactMap { m in
            guard let source = m.source, source.hasPrefix(volumesDir + "/"), source.hasSuffix("/_data") else { return nil }
            let name = String(source.dropFirst(volumesDir.count + 1).dropLast(6))
            return Engine.isAnonymousVolume(name) ? name : nil
        }
    }
}
