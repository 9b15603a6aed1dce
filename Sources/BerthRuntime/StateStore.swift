#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import BerthCgroups

/// What the runtime remembers about one container between invocations.
public struct ContainerRecord: Sendable {
    /// `creating`: written before the clone, `pid` is then the creating
    /// runtime process, so a create that died halfway reads as stopped and
    /// `delete` still finds its cgroups.
    public enum Phase: String, Sendable { case creating, created, running }
    public var id: String
    public var bundle: String
    public var rootfs: String
    public var pid: Int32
    /// /proc/PID/stat start time: tells our process from a reused pid.
    public var startTime: UInt64
    public var created: String
    public var phase: Phase
    public var owner: UInt32
    public var cgroupLayout: CgroupLayoutRecord
    public var cgroupV1: [String]
    public var cgroupV2: String?
    public var cgroupAncestors: [String]
    /// What later commands need of the config: the process (the template for
    /// `exec`), the hooks that run after create, and the annotations for `state`.
    /// Not the whole Spec: encoding it costs more than the rest of the record.
    public var process: Process?
    public var hooks: Hooks?
    public var annotations: [String: String]?
    /// The container has a seccomp filter, compiled into <state>/<id>/seccomp.bpf:
    /// `exec`'d processes load the same program (the record stays small: a Docker-sized
    /// profile re-encoded into every save cost a measurable part of a start).
    public var seccompFilter: Bool?
    /// The agent that gets each process's listener when the filter notifies.
    public var seccompListener: SeccompListener?

    public var cgroups: FSCgroupManager {
        FSCgroupManager(layout: cgroupLayout.layout, v1Directories: cgroupV1, v2Directory: cgroupV2, removableAncestors: cgroupAncestors)
    }
}

// Read and written by every command: without Codable (BerthSys/JSON.swift says why).
extension ContainerRecord: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(id: try o.required("id"), bundle: try o.required("bundle"), rootfs: try o.required("rootfs"), pid: try o.required("pid"),
                  startTime: try o.required("startTime"), created: try o.required("created"), phase: try o.required("phase"),
                  owner: try o.required("owner"), cgroupLayout: try o.required("cgroupLayout"), cgroupV1: try o.required("cgroupV1"),
                  cgroupV2: try o.optional("cgroupV2"), cgroupAncestors: try o.required("cgroupAncestors"), process: try o.optional("process"),
                  hooks: try o.optional("hooks"), annotations: try o.optional("annotations"), seccompFilter: try o.optional("seccompFilter"),
                  seccompListener: try o.optional("seccompListener"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("id", id); b.set("bundle", bundle); b.set("rootfs", rootfs); b.set("pid", pid); b.set("startTime", startTime)
        b.set("created", created); b.set("phase", phase); b.set("owner", owner); b.set("cgroupLayout", cgroupLayout)
        b.set("cgroupV1", cgroupV1); b.set("cgroupV2", cgroupV2); b.set("cgroupAncestors", cgroupAncestors); b.set("process", process)
        b.set("hooks", hooks); b.set("annotations", annotations); b.set("seccompFilter", seccompFilter); b.set("seccompListener", seccompListener)
        return b.json
    }
}

extension ContainerRecord.Phase: JSONReadable, JSONWritable {}

extension CgroupLayoutRecord: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(mode: try o.required("mode"), v1: try o.required("v1"), v2: try o.optional("v2"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("mode", mode); b.set("v1", v1); b.set("v2", v2)
        return b.json
    }
}

/// CgroupLayout as stored in a record.
public struct CgroupLayoutRecord: Sendable {
    public var mode: CgroupMode
    public var v1: [Hierarchy]
    public var v2: Hierarchy?
    public init(_ l: CgroupLayout) { mode = l.mode; v1 = l.v1; v2 = l.v2 }
    init(mode: CgroupMode, v1: [Hierarchy], v2: Hierarchy?) { self.mode = mode; self.v1 = v1; self.v2 = v2 }
    public var layout: CgroupLayout { CgroupLayout(mode: mode, v1: v1, v2: v2) }
}

/// One directory per container under the runtime root, state written atomically.
public struct StateStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public func directory(_ id: String) -> String { root + "/" + id }
    public func fifoPath(_ id: String) -> String { directory(id) + "/exec.fifo" }
    func statePath(_ id: String) -> String { directory(id) + "/state.json" }

    /// Container ids are file names: letters, digits, `_ . -`, not starting with `.` or `-`.
    public static func validate(id: String) throws(BerthError) {
        // bytes, not Characters: a Set<Character> costs the first grapheme hashing of the process
        func allowed(_ b: UInt8) -> Bool {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"): true
            default: false
            }
        }
        guard !id.isEmpty, id.utf8.count <= 1024, id.utf8.allSatisfy(allowed), id.first != ".", id.first != "-" else {
            throw BerthError("invalid container id \"\(id)\": use letters, digits, _ . - (not starting with . or -)")
        }
    }

    /// Creates the container's directory; fails when the id is taken.
    public func reserve(_ id: String) throws(BerthError) {
        try Files.makeDirectories(root, mode: 0o711)
        guard mkdir(directory(id), 0o711) == 0 else {
            if errno == EEXIST { throw BerthError("container \"\(id)\" already exists") }
            throw .sys("create state directory", path: directory(id))
        }
    }

    public func exists(_ id: String) -> Bool { Files.isDirectory(directory(id)) }

    public func load(_ id: String) throws(BerthError) -> ContainerRecord? {
        guard exists(id) else { throw BerthError("container \"\(id)\" does not exist") }
        guard Files.exists(statePath(id)) else { return nil } // still being created
        let bytes = try Files.readBytes(statePath(id))
        do { return try ContainerRecord(json: JSON.parse(bytes), path: "") } catch {
            throw BerthError("corrupt state file \(statePath(id)): \(error)")
        }
    }

    public func save(_ record: ContainerRecord) throws(BerthError) {
        try Files.writeAtomically(record.json.serialized(), to: statePath(record.id))
    }

    public func remove(_ id: String) throws(BerthError) { try Files.removeTree(directory(id)) }

    /// Container ids: every directory but the dot-named ones (the seccomp cache); ids never start with a dot.
    public func ids() -> [String] {
        ((try? Files.list(root)) ?? []).filter { !$0.hasPrefix(".") && Files.isDirectory(directory($0)) }
    }

    /// Written by a tracer (`berth trace`) once its probes count the container's
    /// cgroup: the tracer's pid. `start` waits for it when the container asks (Tracing).
    public func tracerMarker(_ id: String) -> String { directory(id) + "/tracer" }

    /// Says that this process now traces the container (releases a held `start`).
    public func markTraced(_ id: String) {
        try? Files.writeAtomically(Array("\(getpid())\n".utf8), to: tracerMarker(id), mode: 0o644)
    }

    /// The container's compiled filter (see ContainerRecord.seccompFilter).
    public func seccompFilter(_ id: String) -> String { directory(id) + "/seccomp.bpf" }

    /// The parent cgroups this root's containers made (ParentCgroupNotes).
    public var parentCgroupNotes: ParentCgroupNotes { ParentCgroupNotes(directory: root + "/.cgroup-parents") }

    /// Compiled seccomp filters, by profile hash.
    public var seccompCache: String { root + "/.seccomp-cache" }

    /// flock on the container's directory, held while a command changes it.
    public func withLock<T>(_ id: String, _ body: () throws(BerthError) -> T) throws(BerthError) -> T {
        let fd = open(directory(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw BerthError("container \"\(id)\" does not exist") }
            throw .sys("open", path: directory(id))
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return try body()
    }
}
