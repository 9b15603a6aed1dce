#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import BerthCgroups

/// Turns a validated config.json into a LaunchPlan. Pure apart from stat()s of
/// bind sources, so it is unit-tested without root.
public struct PlanCompiler {
    public var bundle: String
    /// The host's cgroup layout and the container's directories, for `cgroup` mounts.
    public var cgroupLayout: CgroupLayout?
    public var cgroupDirectories: [(hierarchy: Hierarchy, directory: String)] = []
    public var noPivot = false
    public var newSessionKeyring = true

    public init(bundle: String, cgroupLayout: CgroupLayout? = nil) {
        self.bundle = bundle
        self.cgroupLayout = cgroupLayout
    }

    /// The devices every container gets, as runc and crun create them.
    static let defaultDevices: [(path: String, major: UInt64, minor: UInt64)] = [
        ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
        ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
    ]

    public func compile(_ spec: Spec) throws(BerthError) -> LaunchPlan {
        var plan = LaunchPlan()
        guard let root = spec.root else { throw BerthError("config.json: root.path: required field is missing") }
        plan.rootfs = Files.absolute(root.path, relativeTo: bundle)
        guard Files.isDirectory(plan.rootfs) else {
            throw BerthError("rootfs", path: plan.rootfs, errno: Files.exists(plan.rootfs) ? ENOTDIR : ENOENT)
        }
        plan.rootfsReadonly = root.readonly ?? false
        plan.noPivot = noPivot
        plan.newSessionKeyring = newSessionKeyring
        plan.hostname = spec.hostname
        plan.domainname = spec.domainname
        let linux = spec.linux ?? Linux()

        // Namespaces: create, or join by path (joins are opened by the launcher).
        for ns in linux.namespaces ?? [] {
            let kind = NamespaceKind(rawValue: ns.type)!
            if let path = ns.path {
                plan.joins.append((kind, path))
            } else if kind == .cgroup {
                plan.unshareCgroupNamespace = true // after the child joined its cgroups
            } else {
                plan.cloneFlags |= kind.cloneFlag
            }
        }
        plan.userNamespace = plan.cloneFlags & NamespaceKind.user.cloneFlag != 0
        if plan.userNamespace {
            plan.uidMap = Self.idMap(linux.uidMappings ?? [])
            plan.gidMap = Self.idMap(linux.gidMappings ?? [])
        }
        if plan.hostname != nil || plan.domainname != nil {
            let hasUTS = (linux.namespaces ?? []).contains { $0.type == "uts" }
            guard hasUTS else { throw BerthError("config.json: hostname: setting a hostname needs a uts namespace") }
        }
        if let offsets = linux.timeOffsets, !offsets.isEmpty {
            plan.timeOffsets = offsets.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value.secs ?? 0) \($0.value.nanosecs ?? 0)\n" }.joined()
        }
        if let propagation = linux.rootfsPropagation { plan.rootfsPropagation = MountOptions.propagation[propagation] ?? 0 }

        // Mounts, in config order.
        for mount in spec.mounts ?? [] {
            plan.mounts += try compileMount(mount, userNS: plan.userNamespace, cgroupNamespace: plan.unshareCgroupNamespace)
        }
        let devIsMounted = (spec.mounts ?? []).contains { $0.destination == "/dev" && !MountOptions.parse($0.options ?? []).bind && $0.type != "bind" }
        if devIsMounted {
            var seen = Set<String>()
            for d in linux.devices ?? [] { seen.insert(d.path) }
            for d in Self.defaultDevices where !seen.contains(d.path) {
                plan.devices.append(.init(path: d.path, mode: UInt32(S_IFCHR) | 0o666, major: d.major, minor: d.minor,
                                          uid: 0, gid: 0, bindFromHost: plan.userNamespace))
            }
            plan.devSymlinks = true
        }
        for d in linux.devices ?? [] {
            let typeBits: [String: UInt32] = ["c": UInt32(S_IFCHR), "u": UInt32(S_IFCHR), "b": UInt32(S_IFBLK), "p": UInt32(S_IFIFO)]
            plan.devices.append(.init(path: d.path, mode: typeBits[d.type]! | ((d.fileMode ?? 0o666) & 0o7777),
                                      major: UInt64(d.major ?? 0), minor: UInt64(d.minor ?? 0), uid: d.uid ?? 0, gid: d.gid ?? 0,
                                      bindFromHost: plan.userNamespace))
        }
        plan.maskedPaths = linux.maskedPaths ?? []
        plan.readonlyPaths = linux.readonlyPaths ?? []
        plan.sysctls = (linux.sysctl ?? [:]).sorted { $0.key < $1.key }
            .map { ("/proc/sys/" + $0.key.replacingDots(), $0.value) }

        if let hooks = spec.hooks {
            plan.createContainerHooks = hooks.createContainer ?? []
            plan.startContainerHooks = hooks.startContainer ?? []
            plan.runtimeHooks = !(hooks.prestart ?? []).isEmpty || !(hooks.createRuntime ?? []).isEmpty
        }
        if let process = spec.process { try Self.applyProcess(process, to: &plan) }
        return plan
    }

    /// The process part, shared with `exec`.
    public static func applyProcess(_ process: Process, to plan: inout LaunchPlan) throws(BerthError) {
        plan.args = process.args ?? []
        plan.env = process.env ?? []
        plan.cwd = process.cwd
        plan.uid = process.user.uid
        plan.gid = process.user.gid
        plan.additionalGids = process.user.additionalGids ?? []
        plan.umask = process.user.umask.map { Int32($0) } ?? -1
        plan.noNewPrivileges = process.noNewPrivileges ?? false
        plan.oomScoreAdj = process.oomScoreAdj
        plan.terminal = process.terminal ?? false
        if let size = process.consoleSize {
            plan.consoleRows = UInt16(clamping: size.height)
            plan.consoleCols = UInt16(clamping: size.width)
        }
        plan.rlimits = (process.rlimits ?? []).map { (RlimitTable.resources[$0.type]!, $0.soft, $0.hard) }
        if let caps = process.capabilities {
            func mask(_ names: [String]?) -> UInt64 {
                (names ?? []).reduce(0) { $0 | (1 << UInt64(CapabilityTable.number($1)!)) }
            }
            var sets = LaunchPlan.CapabilitySets()
            sets.bounding = mask(caps.bounding)
            sets.effective = mask(caps.effective)
            sets.inheritable = mask(caps.inheritable)
            sets.permitted = mask(caps.permitted)
            sets.ambient = mask(caps.ambient)
            plan.capabilities = sets
        }
        // Never silently ignored: a profile or label the host cannot apply is an error.
        if let profile = process.apparmorProfile, !profile.isEmpty {
            guard AppArmor.enabled else {
                throw BerthError("config.json: process.apparmorProfile: \"\(profile)\" requested but AppArmor is not enabled on this host (\(AppArmor.enabledFile))")
            }
            guard profile.utf8.count < 400, !profile.contains("\n") else {
                throw BerthError("config.json: process.apparmorProfile: \"\(profile)\" is not a profile name")
            }
            plan.apparmorProfile = profile
        }
        if let label = process.selinuxLabel, !label.isEmpty {
            throw BerthError(Files.exists("/sys/fs/selinux/enforce")
                ? "config.json: process.selinuxLabel: \"\(label)\" requested, but berth does not apply SELinux labels yet"
                : "config.json: process.selinuxLabel: \"\(label)\" requested but SELinux is not enabled on this host")
        }
    }

    /// "containerID hostID size" lines for /proc/PID/uid_map.
    static func idMap(_ mappings: [IDMapping]) -> String {
        mappings.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
    }

    func compileMount(_ mount: Mount, userNS: Bool, cgroupNamespace: Bool) throws(BerthError) -> [LaunchPlan.PlanMount] {
        let options = MountOptions.parse(mount.options ?? [])
        let type = mount.type ?? (options.bind ? "bind" : nil)
        let isBind = options.bind || type == "bind"
        if type == "cgroup" || type == "cgroup2" { return cgroupMounts(mount, options: options, cgroupNamespace: cgroupNamespace) }
        var m = LaunchPlan.PlanMount(source: mount.source, target: mount.destination, fstype: type, data: options.data.isEmpty ? nil : options.data.joined(separator: ","),
                                     flags: options.flags, remountFlags: 0, propagation: options.propagation, bind: isBind, targetIsFile: false)
        if isBind {
            guard let source = mount.source else { throw BerthError("config.json: mount \(mount.destination): a bind mount needs a source") }
            let abs = Files.absolute(source, relativeTo: bundle)
            guard Files.exists(abs) else { throw BerthError("bind mount source for \(mount.destination)", path: abs, errno: ENOENT) }
            m.source = abs
            m.targetIsFile = !Files.isDirectory(abs)
            m.flags = UInt(MS_BIND) | (options.flags & UInt(MS_REC))
            // Everything but MS_BIND|MS_REC is ignored by a bind: apply it by remount.
            let rest = options.flags & ~UInt(MS_BIND | MS_REC | MS_REMOUNT)
            m.remountFlags = rest
            m.data = nil
        }
        return [m]
    }

    /// `cgroup` mounts: cgroup2 on a unified host; on v1 and hybrid hosts a tmpfs
    /// with one mount per hierarchy. In a cgroup namespace each hierarchy is
    /// mounted directly (the kernel roots it at the container's cgroup), read-only
    /// in the same call; without one, the container's directories are bound in
    /// and remounted, as runc does, so the host's tree stays hidden.
    func cgroupMounts(_ mount: Mount, options: MountOptions.Parsed, cgroupNamespace: Bool) -> [LaunchPlan.PlanMount] {
        let ro = options.flags & UInt(MS_RDONLY)
        let base = options.flags & UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME)
        if cgroupLayout?.mode == .unified || mount.type == "cgroup2" || cgroupLayout == nil {
            return [.init(source: "cgroup", target: mount.destination, fstype: "cgroup2", data: nil, flags: options.flags,
                          remountFlags: 0, propagation: options.propagation, bind: false, targetIsFile: false, needsCgroups: true)]
        }
        var out: [LaunchPlan.PlanMount] = [
            .init(source: "tmpfs", target: mount.destination, fstype: "tmpfs", data: "mode=755", flags: base,
                  remountFlags: 0, propagation: 0, bind: false, targetIsFile: false),
        ]
        for (hierarchy, directory) in cgroupDirectories {
            let name = hierarchy.version == .v2 ? "unified" : hierarchy.controllers.joined(separator: ",")
            if cgroupNamespace {
                out.append(.init(source: "cgroup", target: mount.destination + "/" + name, fstype: hierarchy.version == .v2 ? "cgroup2" : "cgroup",
                                 data: hierarchy.version == .v2 ? nil : hierarchy.controllers.joined(separator: ","),
                                 flags: base | ro, remountFlags: 0, propagation: 0, bind: false, targetIsFile: false, needsCgroups: true))
            } else {
                out.append(.init(source: directory, target: mount.destination + "/" + name, fstype: nil, data: nil,
                                 flags: UInt(MS_BIND | MS_REC), remountFlags: base | ro, propagation: 0, bind: true, targetIsFile: false, needsCgroups: true))
            }
        }
        return out
    }
}

extension String {
    /// sysctl keys name /proc/sys paths with dots: net.ipv4.ip_forward.
    func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}

/// The AppArmor LSM as runc detects it: the module says it is enabled.
public enum AppArmor {
    static let enabledFile = "/sys/module/apparmor/parameters/enabled"
    public static var enabled: Bool { (try? Files.read(enabledFile))?.hasPrefix("Y") == true }
}
