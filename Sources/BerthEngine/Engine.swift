#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthOCI
import BerthRuntime
import BerthSecurity
import BerthSys

/// Options of `berth run` / `berth create`.
public struct RunOptions: Sendable {
    public var image: String
    /// Replaces the image's CMD when not empty.
    public var command: [String] = []
    public var entrypoint: [String]?
    public var name: String?
    public var remove = false
    public var detach = false
    public var tty = false
    public var env: [String] = []
    public var workdir: String?
    public var user: String?
    public var hostname: String?
    /// The cgroup the container's cgroup is made in (docker's --cgroup-parent).
    public var cgroupParent = "berth"
    /// A `build` RUN step: no per-container /etc files.
    public var buildStep = false
    public init(image: String) { self.image = image }
}

/// The engine: images and containers under one root (`/var/lib/berth`), the
/// containers' runtime state under `/run/berth/runtime`. Containers run through
/// the same `Runtime` as `berth-runtime`, in this process.
public struct Engine: Sendable {
    public let images: ImageStore
    public let runtime: Runtime

    public static let defaultRunRoot = "/run/berth"

    public init(root: String = ImageStore.defaultRoot, runRoot: String = Engine.defaultRunRoot) {
        images = ImageStore(root: root)
        runtime = Runtime(root: runRoot + "/runtime")
    }

    var containersDir: String { images.root + "/containers" }
    func recordPath(_ id: String) -> String { containersDir + "/" + id + "/container.json" }

    // MARK: records

    public func containers() -> [EngineContainer] {
        ((try? Files.list(containersDir)) ?? []).compactMap { try? load($0) }.map(refreshed)
            .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
    }

    func load(_ id: String) throws(BerthError) -> EngineContainer {
        let bytes = try Files.readBytes(recordPath(id))
        do { return try JSONDecoder().decode(EngineContainer.self, from: Data(bytes)) } catch {
            throw BerthError("container record \(recordPath(id)): not readable (\(error))")
        }
    }

    func save(_ c: EngineContainer) throws(BerthError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(c)) ?? Data()
        try Files.writeAtomically(Array(data), to: recordPath(c.id), mode: 0o600)
    }

    /// A running record whose process is gone reads as exited.
    func refreshed(_ c: EngineContainer) -> EngineContainer {
        guard c.status == .running else { return c }
        if let record = try? runtime.record(id: c.id), runtime.status(of: record) != .stopped { return c }
        var c = c
        c.status = .exited
        return c
    }

    /// By full id, unique id prefix, or name.
    public func container(_ ref: String) throws(BerthError) -> EngineContainer {
        let all = containers()
        if let c = all.first(where: { $0.id == ref || $0.name == ref || "/" + $0.name == ref }) { return c }
        let matches = all.filter { $0.id.hasPrefix(ref) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw BerthError("container \"\(ref)\": the prefix matches \(matches.count) containers") }
        throw BerthError("no such container: \(ref)")
    }

    // MARK: run

    /// Creates a container from an image and runs it; in the foreground returns
    /// its exit code, detached returns 0 once it runs.
    public func run(_ options: RunOptions, onCreate: ((EngineContainer) -> Void)? = nil) throws(BerthError) -> Int32 {
        let container = try create(options)
        onCreate?(container)
        let layer = ContainerLayer(store: images, id: container.id)
        var c = container
        c.status = .running
        c.started = Timestamp.now()
        try save(c)
        let code: Int32
        do {
            code = try runtime.run(id: c.id, options: CreateOptions(bundle: layer.directory), detach: options.detach)
        } catch {
            c.status = .exited
            c.exitCode = 127
            c.finished = Timestamp.now()
            if options.remove { try? remove(c.id, force: true) } else { try? layer.unmount(); try? save(c) }
            throw error
        }
        if options.detach { return 0 }
        c.status = .exited
        c.exitCode = code
        c.finished = Timestamp.now()
        if options.remove { try remove(c.id, force: true) } else {
            // a stopped container keeps its layer, not its mount (export mounts it again)
            try layer.unmount()
            try save(c)
        }
        return code
    }

    /// The container's layer, overlay and bundle, ready for the runtime.
    public func create(_ options: RunOptions) throws(BerthError) -> EngineContainer {
        let image = try images.resolve(options.image)
        let config = try images.config(of: image)
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let name = options.name ?? ContainerNames.random() + "_" + String(id.prefix(4))
        try ContainerNames.validate(name)
        if containers().contains(where: { $0.name == name }) {
            throw BerthError("container name \"\(name)\" is already in use; remove that container or pick another name")
        }
        let layer = ContainerLayer(store: images, id: id)
        do throws(BerthError) {
            try layer.create(from: image)
            let spec = try ContainerSpec.make(image: config, options: options, id: id, rootfs: layer.rootfs, directory: layer.directory)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try Files.writeAtomically(Array((try? encoder.encode(spec)) ?? Data()), to: layer.directory + "/config.json", mode: 0o600)
            let c = EngineContainer(id: id, name: name, image: image.id, imageName: options.image, created: Timestamp.now(),
                                    command: spec.process?.args ?? [], status: .created, autoRemove: options.remove)
            try save(c)
            return c
        } catch {
            try? layer.remove()
            throw error
        }
    }

    /// Deletes a container: its runtime state, overlay and writable layer.
    public func remove(_ ref: String, force: Bool) throws(BerthError) {
        let c = try container(ref)
        if refreshed(c).status == .running {
            guard force else { throw BerthError("container \(c.name) is running; stop it first, or use --force") }
            try? runtime.kill(id: c.id, signal: SIGKILL, all: true)
        }
        if (try? runtime.record(id: c.id)) != nil { try runtime.delete(id: c.id, force: true) }
        try ContainerLayer(store: images, id: c.id).remove()
    }

    /// `berth export`: the container's filesystem as a tar stream.
    public func export(_ ref: String, to path: String) throws(BerthError) {
        let c = try container(ref)
        let layer = ContainerLayer(store: images, id: c.id)
        let wasMounted = layer.isMounted
        try layer.mount()
        defer { if !wasMounted { try? layer.unmount() } }
        let tmp = path == "-" ? nil : path + ".tmp.\(getpid())"
        do throws(BerthError) {
            let sink = try tmp.map { (t) throws(BerthError) in try FileSink(path: t, mode: 0o644) } ?? FileSink(adopting: dup(1), path: "stdout")
            let writer = TarWriter(sink)
            var archiver = TreeArchiver()
            try archiver.append(layer.rootfs, to: writer)
            try writer.finish()
            if let tmp { guard rename(tmp, path) == 0 else { throw BerthError.sys("rename to", path: path) } }
        } catch {
            if let tmp { unlink(tmp) }
            throw error
        }
    }
}
