#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import BerthOCI

/// The narrow protocol every driver implements: create, place, freeze, list,
/// signal, destroy. Resources and stats come in with the resource drivers.
public protocol CgroupManager: Sendable {
    /// The container's directories, one per hierarchy (absolute host paths).
    var directories: [String] { get }
    /// Creates the directories (idempotent).
    func create() throws(BerthError)
    /// Writes `linux.resources` into the controller files; `warn` gets what this host cannot do.
    func apply(_ resources: Resources, warn: (String) -> Void) throws(BerthError)
    /// Device access rules, with the devices every container may use and its own `linux.devices`.
    func applyDevices(_ rules: [Resources.DeviceRule], devices: [Device], warn: (String) -> Void) throws(BerthError)
    /// Files the child writes "0" into to move itself (v1 `tasks`), and the v2
    /// directory for CLONE_INTO_CGROUP. The caller owns the returned fds.
    func placement() throws(BerthError) -> Placement
    /// Files a joining process (exec) writes "0" into: every hierarchy.
    func joinFiles() throws(BerthError) -> [Int32]
    func freeze() throws(BerthError)
    func thaw() throws(BerthError)
    var isFrozen: Bool { get }
    /// Pids in the container's cgroup.
    func processes() -> [pid_t]
    /// Sends `signal` to every process, frozen while signalled so none escapes by forking.
    func signalAll(_ signal: Int32) throws(BerthError)
    /// Removes the directories (and empty parents it created).
    func destroy() throws(BerthError)
}

public struct Placement: Sendable {
    public var taskFDs: [Int32]
    public var cgroup2FD: Int32?
    public init(taskFDs: [Int32], cgroup2FD: Int32?) { self.taskFDs = taskFDs; self.cgroup2FD = cgroup2FD }
}

/// Where a container's cgroup goes: `cgroupsPath` resolved per the spec.
public struct CgroupPath: Sendable, Equatable, Codable {
    /// Absolute paths are taken as given; relative ones live under the caller's
    /// cgroup in each hierarchy, so a container never escapes its starter's limits.
    public var path: String

    public init(_ path: String) { self.path = path }

    public var isAbsolute: Bool { path.hasPrefix("/") }

    /// The host directory in one hierarchy.
    public func directory(in hierarchy: Hierarchy, caller: ProcessCgroups) -> String {
        let base: String
        if isAbsolute {
            base = ""
        } else {
            var own = caller.path(in: hierarchy) ?? "/"
            // A path outside the mount's root (another cgroup namespace) is not reachable here.
            if hierarchy.root != "/" && own.hasPrefix(hierarchy.root) { own = String(own.dropFirst(hierarchy.root.count)) }
            base = own == "/" ? "" : own
        }
        let relative = path.split(separator: "/").joined(separator: "/")
        return hierarchy.mountPoint + base + "/" + relative
    }
}
