#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import BerthOCI

/// cgroupfs driver for legacy, hybrid and unified hosts. On a hybrid host the
/// v1 controllers do the limiting and the container also gets its own cgroup
/// in the v2 tree: a unique v2 cgroup id (eBPF attribution), `cgroup.events`,
/// `cgroup.kill` and `cgroup.freeze`.
public struct FSCgroupManager: CgroupManager {
    public let layout: CgroupLayout
    public let v1Directories: [String]
    public let v2Directory: String?
    /// The parents inside cgroupsPath ("berth" of "berth/c1"), in every hierarchy:
    /// removed when empty if `parentNotes` says berth made them.
    let removableAncestors: [String]
    /// Where berth notes the parents it made; nil: no parent is made-by-berth.
    public var parentNotes: ParentCgroupNotes?

    public init(layout: CgroupLayout, path: CgroupPath, caller: ProcessCgroups) {
        self.layout = layout
        let hierarchies = layout.controllerHierarchies
        v1Directories = hierarchies.map { path.directory(in: $0, caller: caller) }
        v2Directory = layout.v2.map { path.directory(in: $0, caller: caller) }
        // Parents inside cgroupsPath (e.g. "berth" of "berth/c1") are ours to remove when they empty.
        let components = path.path.split(separator: "/")
        var ancestors: [String] = []
        if components.count > 1 {
            for dir in v1Directories + (v2Directory.map { [$0] } ?? []) {
                var d = dir
                for _ in 1..<components.count {
                    d = String(d[..<d.lastIndex(of: "/")!])
                    ancestors.append(d)
                }
            }
        }
        removableAncestors = ancestors
    }

    /// Restores a manager from the directories recorded in a container's state.
    public init(layout: CgroupLayout, v1Directories: [String], v2Directory: String?, removableAncestors: [String]) {
        self.layout = layout; self.v1Directories = v1Directories; self.v2Directory = v2Directory; self.removableAncestors = removableAncestors
    }

    public var directories: [String] { v1Directories + (v2Directory.map { [$0] } ?? []) }

    /// Whether this process may create the directories (rootless: only under a delegated cgroup).
    public var canCreate: Bool {
        directories.allSatisfy { dir in
            var d = dir
            while !Files.exists(d), let slash = d.lastIndex(of: "/"), slash != d.startIndex { d = String(d[..<slash]) }
            return access(d, W_OK) == 0
        }
    }
    public var ancestors: [String] { removableAncestors }

    public func create() throws(BerthError) {
        try noteMissingParents()
        let cpuset = v1Directory(for: "cpuset")
        let freshCpuset = cpuset.map { !Files.exists($0) } ?? false
        for dir in directories { try Self.makeDirectory(dir) }
        // A new v1 cpuset is empty and refuses tasks (ENOSPC) until it has cpus and mems.
        if let cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] { try inheritCpuset(cpuset, file: file, fresh: freshCpuset) }
        }
        // v2: cpu, memory and pids accounting for every container, limits or not, as
        // runc does: stats, `events` and `berth top` read memory.current and pids.current.
        // Best effort: an ancestor holding processes cannot enable them (EBUSY), and a
        // limit that needs a controller still fails loudly in apply.
        if layout.mode == .unified, let v2Directory {
            try? enableControllers(["cpu", "memory", "pids"], below: v2Directory, onlyAvailable: true)
        }
    }

    /// Only the v2 directory (hybrid): what CLONE_INTO_CGROUP needs before the
    /// clone when the v1 ones are made after it (a deferred join); `create` later
    /// finds it there.
    public func createV2Directory() throws(BerthError) {
        try noteMissingParents()
        if let v2Directory { try Self.makeDirectory(v2Directory) }
    }

    /// Notes the parents about to be made, before they are (a create that fails
    /// half-way still removes them).
    private func noteMissingParents() throws(BerthError) {
        if let parentNotes { try parentNotes.note(removableAncestors.filter { !Files.exists($0) }) }
    }

    private static func makeDirectory(_ dir: String) throws(BerthError) {
        do { try Files.makeDirectories(dir) } catch { throw BerthError("create cgroup", path: dir, errno: error.errno) }
    }

    /// Copies a cpuset file down from the nearest ancestor that has a value, into
    /// the empty directories on the way. A directory just made (`fresh`) is empty,
    /// or holds its parent's value (cgroup.clone_children): it is not read first.
    private func inheritCpuset(_ dir: String, file: String, fresh: Bool) throws(BerthError) {
        func value(_ d: String) -> String { (try? Files.read(d + "/" + file))?.trimmingWhitespace() ?? "" }
        if !fresh && !value(dir).isEmpty { return }
        var chain = [dir]
        var d = dir
        var inherited = ""
        while let slash = d.lastIndex(of: "/"), d != "/" {
            d = String(d[..<slash])
            inherited = value(d)
            if !inherited.isEmpty { break }
            chain.append(d)
        }
        guard !inherited.isEmpty else { return }
        for empty in chain.reversed() { try Files.write(inherited, to: empty + "/" + file) }
    }

    /// v1: each resource goes to the hierarchy of its controller. A resource
    /// whose controller is not mounted is an error, not a silent no-op.
    public func apply(_ resources: Resources, warn: (String) -> Void) throws(BerthError) {
        if layout.mode == .unified, let v2Directory {
            try applyV2(resources, to: CgroupDirectory(v2Directory), warn: warn)
            return
        }
        func dir(_ controller: String, for field: String) throws(BerthError) -> CgroupDirectory {
            guard let d = v1Directory(for: controller) else {
                throw BerthError("linux.resources.\(field): the \(controller) controller is not mounted on this host")
            }
            return CgroupDirectory(d)
        }
        if let memory = resources.memory { try V1Memory.apply(memory, to: try dir("memory", for: "memory"), warn: warn) }
        if let cpu = resources.cpu {
            let wantsCPU = cpu.shares != nil || cpu.quota != nil || cpu.period != nil || cpu.burst != nil
                || cpu.realtimeRuntime != nil || cpu.realtimePeriod != nil || cpu.idle != nil
            if wantsCPU { try V1CPU.apply(cpu, to: try dir("cpu", for: "cpu")) }
            if cpu.cpus != nil || cpu.mems != nil { try V1Cpuset.apply(cpu, to: try dir("cpuset", for: "cpu.cpus")) }
        }
        if let pids = resources.pids { try V1Pids.apply(pids, to: try dir("pids", for: "pids")) }
        if let io = resources.blockIO { try V1Blkio.apply(io, to: try dir("blkio", for: "blockIO")) }
        if let limits = resources.hugepageLimits, !limits.isEmpty {
            // a hybrid host may offer hugetlb only in its v2 root, which is not berth's to change
            guard let d = v1Directory(for: "hugetlb") else {
                throw BerthError("linux.resources.hugepageLimits: the hugetlb controller is not mounted as v1 on this host, and enabling it in the v2 root would change a cgroup berth did not create")
            }
            for l in limits { try CgroupDirectory(d).write("hugetlb.\(l.pageSize).limit_in_bytes", String(l.limit)) }
        }
        if let network = resources.network {
            if let classID = network.classID { try dir("net_cls", for: "network.classID").write("net_cls.classid", String(classID)) }
            for p in network.priorities ?? [] { try dir("net_prio", for: "network.priorities").write("net_prio.ifpriomap", "\(p.name) \(p.priority)") }
        }
        if let unified = resources.unified, !unified.isEmpty {
            guard layout.mode == .unified, let v2Directory else {
                throw BerthError("linux.resources.unified: raw cgroup v2 keys need a unified (v2-only) host; this one is \(layout.mode.rawValue)")
            }
            for (key, value) in unified.sorted(by: { $0.key < $1.key }) { try CgroupDirectory(v2Directory).write(key, value) }
        }
    }

    /// v1 devices.allow/deny where the devices controller is mounted (hybrid hosts too);
    /// on a v2-only host a BPF_PROG_TYPE_CGROUP_DEVICE program on the container's cgroup.
    public func applyDevices(_ rules: [Resources.DeviceRule], devices: [Device], warn: (String) -> Void) throws(BerthError) {
        let effective = DeviceAccessRule.effective(rules, devices: devices)
        if let d = v1Directory(for: "devices") {
            try V1Devices.apply(effective, to: CgroupDirectory(d))
        } else if layout.mode == .unified, let v2Directory {
            try V2Devices.attach(effective, to: v2Directory)
        }
    }

    /// v2 (unified hosts): enable the controllers the resources need in every
    /// ancestor's cgroup.subtree_control, then write the v2 files.
    func applyV2(_ resources: Resources, to dir: CgroupDirectory, warn: (String) -> Void) throws(BerthError) {
        var needed: [String] = []
        if resources.memory != nil { needed.append("memory") }
        if let cpu = resources.cpu {
            if cpu.shares != nil || cpu.quota != nil || cpu.period != nil || cpu.burst != nil || cpu.idle != nil { needed.append("cpu") }
            if cpu.cpus != nil || cpu.mems != nil { needed.append("cpuset") }
        }
        if resources.pids != nil { needed.append("pids") }
        if resources.blockIO != nil { needed.append("io") }
        if !(resources.hugepageLimits ?? []).isEmpty { needed.append("hugetlb") }
        if !needed.isEmpty { try enableControllers(needed, below: dir.path) }
        for l in resources.hugepageLimits ?? [] { try dir.write("hugetlb.\(l.pageSize).max", String(l.limit)) }
        if resources.network != nil {
            // cgroup v2 has no net_cls or net_prio (runc and crun say the same and go on)
            warn("linux.resources.network: NOT ENFORCED: classID and priorities are cgroup v1 controllers; this host is v2-only")
        }
        if let memory = resources.memory { try V2Memory.apply(memory, to: dir, warn: warn) }
        if let cpu = resources.cpu { try V2CPU.apply(cpu, to: dir, warn: warn) }
        if let pids = resources.pids { try V2PidsIO.apply(pids, to: dir) }
        if let io = resources.blockIO { try V2PidsIO.apply(io, to: dir) }
        for (key, value) in (resources.unified ?? [:]).sorted(by: { $0.key < $1.key }) { try dir.write(key, value) }
    }

    /// "+memory +pids" into the subtree_control of each ancestor from the mount point down
    /// to the container's parent (the no-internal-process rule allows that: they hold no tasks of ours).
    func enableControllers(_ controllers: [String], below path: String, onlyAvailable: Bool = false) throws(BerthError) {
        guard let mount = layout.v2?.mountPoint, path.hasPrefix(mount) else { return }
        var ancestors: [String] = []
        var d = path
        while let slash = d.lastIndex(of: "/"), d.count > mount.count {
            d = String(d[..<slash])
            ancestors.append(d)
        }
        for dir in ancestors.reversed() where dir.count >= mount.count {
            let available = Set((CgroupDirectory(dir).read("cgroup.controllers") ?? "").split(separator: " ").map(String.init))
            let enabled = Set((CgroupDirectory(dir).read("cgroup.subtree_control") ?? "").split(separator: " ").map(String.init))
            let missing = controllers.filter { !enabled.contains($0) && (!onlyAvailable || available.contains($0)) }
            guard !missing.isEmpty else { continue }
            for c in missing where !available.contains(c) {
                throw BerthError("linux.resources: the \(c) controller is not available in \(dir) (cgroup.controllers: \(available.sorted().joined(separator: " ")))")
            }
            try CgroupDirectory(dir).write("cgroup.subtree_control", missing.map { "+" + $0 }.joined(separator: " "))
        }
    }

    public func v1Directory(for controller: String) -> String? {
        for (h, dir) in zip(layout.controllerHierarchies, v1Directories) where h.controllers.contains(controller) { return dir }
        return nil
    }

    public func placement() throws(BerthError) -> Placement { try placement(v1: true, v2: true) }

    /// The v1 tasks files and the v2 directory, or one of the two (a deferred
    /// join opens the v2 directory before the clone and the tasks files after).
    public func placement(v1: Bool, v2: Bool) throws(BerthError) -> Placement {
        var fds: [Int32] = []
        do {
            for dir in v1Directories where v1 {
                let fd = try FileDescriptor(open: dir + "/tasks", flags: O_WRONLY)
                fds.append(fd.release())
            }
            var v2fd: Int32?
            if v2, let v2Directory {
                v2fd = try FileDescriptor(open: v2Directory, flags: O_RDONLY | O_DIRECTORY).release()
            }
            return Placement(taskFDs: fds, cgroup2FD: v2fd)
        } catch {
            fds.forEach { close($0) }
            throw error
        }
    }

    public func joinFiles() throws(BerthError) -> [Int32] {
        var fds: [Int32] = []
        do {
            for dir in v1Directories { fds.append(try FileDescriptor(open: dir + "/tasks", flags: O_WRONLY).release()) }
            if let v2Directory { fds.append(try FileDescriptor(open: v2Directory + "/cgroup.procs", flags: O_WRONLY).release()) }
        } catch {
            fds.forEach { close($0) }
            throw error
        }
        return fds
    }

    /// Pausing uses the v2 freezer where the container has a v2 cgroup (hybrid and
    /// unified hosts), the v1 freezer otherwise. Both wait until frozen.
    public func freeze() throws(BerthError) {
        if let v2Directory {
            try Files.write("1", to: v2Directory + "/cgroup.freeze")
            try waitUntil { (try? Files.read(v2Directory + "/cgroup.events"))?.containsText("frozen 1") == true }
        } else if let freezer = v1Directory(for: "freezer") {
            try Files.write("FROZEN", to: freezer + "/freezer.state")
            try waitUntil { (try? Files.read(freezer + "/freezer.state"))?.hasPrefix("FROZEN") == true }
        } else {
            throw BerthError("pause: no freezer (neither cgroup.freeze nor a v1 freezer hierarchy)")
        }
    }

    public func thaw() throws(BerthError) {
        if let v2Directory {
            try Files.write("0", to: v2Directory + "/cgroup.freeze")
        } else if let freezer = v1Directory(for: "freezer") {
            try Files.write("THAWED", to: freezer + "/freezer.state")
        }
    }

    public var isFrozen: Bool {
        if let v2Directory { return (try? Files.read(v2Directory + "/cgroup.freeze"))?.hasPrefix("1") == true }
        if let freezer = v1Directory(for: "freezer") { return (try? Files.read(freezer + "/freezer.state"))?.hasPrefix("FROZEN") == true }
        return false
    }

    private func waitUntil(_ done: () -> Bool) throws(BerthError) {
        for _ in 0..<5000 {
            if done() { return }
            usleep(1000)
        }
        throw BerthError("freeze did not complete within 5 s", path: directories.first)
    }

    public func processes() -> [pid_t] {
        let file = v2Directory.map { $0 + "/cgroup.procs" } ?? v1Directory(for: "pids").map { $0 + "/cgroup.procs" }
            ?? v1Directories.first.map { $0 + "/cgroup.procs" }
        guard let file, let text = try? Files.read(file) else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }.sorted()
    }

    public func signalAll(_ signal: Int32) throws(BerthError) {
        if signal == SIGKILL, let v2Directory, Files.exists(v2Directory + "/cgroup.kill") {
            try Files.write("1", to: v2Directory + "/cgroup.kill")
            return
        }
        let wasFrozen = isFrozen
        try? freeze()
        for pid in processes() { try Processes.signal(pid, signal, ignoreMissing: true) }
        if !wasFrozen { try thaw() }
    }

    public func destroy() throws(BerthError) {
        var firstError: BerthError?
        for dir in directories where Files.exists(dir) {
            // rmdir can race the last task's exit: retry briefly on EBUSY
            var attempts = 0
            while rmdir(dir) != 0 {
                let e = errno
                if e == ENOENT { break }
                if e == EBUSY && attempts < 500 { attempts += 1; usleep(1000); continue }
                if firstError == nil { firstError = .sys("remove cgroup", path: dir, errno: e) }
                break
            }
        }
        // Deepest first, only those berth made; one still used by another container
        // stays (EBUSY / ENOTEMPTY), noted, for the last one to remove.
        if let parentNotes {
            for dir in removableAncestors.sorted(by: { $0.count > $1.count }) where parentNotes.isNoted(dir) {
                if rmdir(dir) == 0 || errno == ENOENT { parentNotes.forget(dir) }
            }
        }
        if let firstError { throw firstError }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s.removeLast() }
        return String(s)
    }
}

extension FSCgroupManager {
    /// The v2 cgroup's id: what bpf_get_current_cgroup_id() returns for its
    /// processes (the kernfs inode number of the directory). Nil without a v2 directory.
    public func v2CgroupID() throws(BerthError) -> UInt64? {
        guard let v2Directory else { return nil }
        var st = stat()
        guard stat(v2Directory, &st) == 0 else { throw .sys("stat cgroup", path: v2Directory) }
        return UInt64(st.st_ino)
    }
}
