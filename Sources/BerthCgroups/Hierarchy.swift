import BerthSys

/// One mounted cgroup hierarchy, as read from /proc/self/mountinfo.
public struct Hierarchy: Sendable, Equatable, Codable {
    public enum Version: String, Sendable, Codable { case v1, v2 }
    public var version: Version
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    public var mountPoint: String
    /// The cgroup path that is the mount's root (usually `/`).
    public var root: String
    /// v1 controllers bound to it (`cpu`, `memory`, or `name=systemd`); empty for v2.
    public var controllers: [String]

    public init(version: Version, mountPoint: String, root: String, controllers: [String]) {
        self.version = version; self.mountPoint = mountPoint; self.root = root; self.controllers = controllers
    }
}

/// How the host mounts cgroups: never assumed, always read from the mount table.
public enum CgroupMode: String, Sendable, Codable {
    /// v1 controllers only.
    case legacy
    /// v1 controllers, and a v2 mount without them (this machine).
    case hybrid
    /// v2 only.
    case unified
}

public struct CgroupLayout: Sendable, Equatable {
    public var mode: CgroupMode
    public var v1: [Hierarchy]
    public var v2: Hierarchy?

    public init(mode: CgroupMode, v1: [Hierarchy], v2: Hierarchy?) { self.mode = mode; self.v1 = v1; self.v2 = v2 }

    static let v1Options: Set<String> = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                                         "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc"]

    /// Parses mountinfo text. Fields: id parent major:minor root mountpoint options - fstype source superoptions.
    /// Split as bytes: every command reads this file, and Character splitting (grapheme
    /// breaking over the whole table) cost ~0.4 ms of a container start.
    public static func parse(mountinfo: String) -> CgroupLayout {
        var v1: [Hierarchy] = []
        var v2: Hierarchy?
        func text(_ b: ArraySlice<UInt8>) -> String { String(decoding: b, as: UTF8.self) }
        for line in Array(mountinfo.utf8).split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard let dash = fields.firstIndex(where: { $0.count == 1 && $0.first == UInt8(ascii: "-") }),
                  fields.count > dash + 1, dash >= 6 else { continue }
            let fstype = text(fields[dash + 1])
            let root = unescape(text(fields[3]))
            let mountPoint = unescape(text(fields[4]))
            if fstype == "cgroup2" {
                if v2 == nil { v2 = Hierarchy(version: .v2, mountPoint: mountPoint, root: root, controllers: []) }
            } else if fstype == "cgroup", fields.count > dash + 3 {
                let superOptions = fields[dash + 3].split(separator: UInt8(ascii: ",")).map(text)
                let controllers = superOptions.filter { v1Options.contains($0) || $0.hasPrefix("name=") }
                guard !controllers.isEmpty, !v1.contains(where: { $0.controllers == controllers }) else { continue }
                v1.append(Hierarchy(version: .v1, mountPoint: mountPoint, root: root, controllers: controllers))
            }
        }
        let mode: CgroupMode = v1.isEmpty ? .unified : (v2 == nil ? .legacy : .hybrid)
        return CgroupLayout(mode: mode, v1: v1, v2: v2)
    }

    static func unescape(_ s: String) -> String { MountInfo.unescape(s) }

    /// The layout of the running host.
    public static func detect() throws(BerthError) -> CgroupLayout {
        parse(mountinfo: try Files.read("/proc/self/mountinfo"))
    }

    /// The v1 hierarchies that carry real controllers (named ones like name=systemd are not ours to manage).
    public var controllerHierarchies: [Hierarchy] {
        v1.filter { $0.controllers.contains { !$0.hasPrefix("name=") } }
    }
}

/// /proc/PID/cgroup: "hierarchy-id:controllers:path" per line.
public struct ProcessCgroups: Sendable, Equatable {
    /// controller list (comma-joined, as in the file) → path; "" is the v2 entry.
    public var paths: [String: String]

    public init(paths: [String: String]) { self.paths = paths }

    public static func parse(_ text: String) -> ProcessCgroups {
        var paths: [String: String] = [:]
        for line in Array(text.utf8).split(separator: UInt8(ascii: "\n")) {
            let parts = line.split(separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            paths[String(decoding: parts[1], as: UTF8.self)] = String(decoding: parts[2], as: UTF8.self)
        }
        return ProcessCgroups(paths: paths)
    }

    public static func current() throws(BerthError) -> ProcessCgroups {
        parse(try Files.read("/proc/self/cgroup"))
    }

    /// The path of this process in a hierarchy.
    public func path(in hierarchy: Hierarchy) -> String? {
        hierarchy.version == .v2 ? paths[""] : paths[hierarchy.controllers.joined(separator: ",")]
    }
}

// In the runtime's state record (read and written without Codable: BerthSys/JSON.swift).
extension Hierarchy: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(version: try o.required("version"), mountPoint: try o.required("mountPoint"), root: try o.required("root"),
                  controllers: try o.required("controllers"))
    }
    public var json: JSON {
        .object(["version": version.json, "mountPoint": mountPoint.json, "root": root.json, "controllers": controllers.json])
    }
}

extension Hierarchy.Version: JSONReadable, JSONWritable {}
extension CgroupMode: JSONReadable, JSONWritable {}
