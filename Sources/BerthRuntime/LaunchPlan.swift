#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys

/// The flat, validated description of one container launch: what the C
/// executor does, step by step, with nothing left to decide after the clone.
public struct LaunchPlan: Sendable, Equatable {
    public struct PlanMount: Sendable, Equatable {
        public var source: String?
        public var target: String
        public var fstype: String?
        public var data: String?
        public var flags: UInt
        public var remountFlags: UInt
        public var propagation: UInt
        public var bind: Bool
        public var targetIsFile: Bool
        /// Shows the container's cgroups (a cgroup mount or a bind of its
        /// directory): the child joins them, and its cgroup namespace, first.
        public var needsCgroups = false
    }
    public struct PlanDevice: Sendable, Equatable {
        public var path: String
        public var mode: UInt32
        public var major: UInt64
        public var minor: UInt64
        public var uid: UInt32
        public var gid: UInt32
        public var bindFromHost: Bool
    }
    public struct CapabilitySets: Sendable, Equatable {
        public var bounding: UInt64 = 0, effective: UInt64 = 0, inheritable: UInt64 = 0, permitted: UInt64 = 0, ambient: UInt64 = 0
    }

    public var cloneFlags: UInt64 = 0
    public var unshareCgroupNamespace = false
    /// The parent makes the v1 cgroups after the clone, while the child mounts,
    /// and hands it their tasks files (CGROUPS in berth_launch.h).
    public var deferCgroupJoin = false
    public var joins: [(kind: NamespaceKind, path: String)] = []
    public var userNamespace = false
    public var uidMap: String?
    public var gidMap: String?
    public var rootfs = ""
    public var rootfsReadonly = false
    public var rootfsPropagation: UInt = 0
    public var noPivot = false
    public var mounts: [PlanMount] = []
    public var devices: [PlanDevice] = []
    public var devSymlinks = false
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    public var sysctls: [(path: String, value: String)] = []
    public var hostname: String?
    public var domainname: String?
    public var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)] = []
    public var oomScoreAdj: Int?
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var additionalGids: [UInt32] = []
    public var umask: Int32 = -1
    public var capabilities: CapabilitySets?
    public var noNewPrivileges = false
    /// process.apparmorProfile, applied at the process's execve.
    public var apparmorProfile: String?
    public var cwd = "/"
    public var args: [String] = []
    public var env: [String] = []
    public var terminal = false
    public var consoleRows: UInt16 = 0
    public var consoleCols: UInt16 = 0
    public var timeOffsets: String?
    public var createContainerHooks: [Hook] = []
    public var startContainerHooks: [Hook] = []
    public var runtimeHooks = false
    public var newSessionKeyring = true
    /// The compiled filter (BPF bytes) and its seccomp(2) flags.
    public var seccompProgram: [UInt8]?
    public var seccompFlags: UInt32 = 0
    /// Load the filter right after READY instead of after start (berth_launch.h).
    public var seccompBeforeStart = false

    /// PATH from the process environment, for looking up argv[0].
    public var pathEnv: String? {
        env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
    }

    public static func == (a: LaunchPlan, b: LaunchPlan) -> Bool {
        a.cloneFlags == b.cloneFlags && a.mounts == b.mounts && a.devices == b.devices && a.rootfs == b.rootfs
            && a.args == b.args && a.env == b.env && a.capabilities == b.capabilities && a.maskedPaths == b.maskedPaths
            && a.readonlyPaths == b.readonlyPaths && a.hostname == b.hostname && a.uid == b.uid && a.gid == b.gid
            && a.joins.map { "\($0.kind):\($0.path)" } == b.joins.map { "\($0.kind):\($0.path)" }
    }
}
