#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthCgroups
import BerthImage
import BerthOCI
import BerthRuntime
import BerthSys

extension Engine {
    /// A running container's runtime record (its cgroups, pid), or why there is none.
    func running(_ ref: String) throws(BerthError) -> (EngineContainer, ContainerRecord) {
        let c = refreshed(try container(ref))
        guard c.status == .running, let record = try? runtime.record(id: c.id) else { throw BerthError("container \(c.name) is not running") }
        return (c, record)
    }

    /// Freezes every process of the container (the freezer cgroup).
    public func pause(_ ref: String) throws(BerthError) {
        let (c, record) = try running(ref)
        guard !record.cgroups.isFrozen else { throw BerthError("container \(c.name) is already paused") }
        try runtime.pause(id: c.id)
        Events.record(self, "pause", c)
    }

    public func unpause(_ ref: String) throws(BerthError) {
        let (c, record) = try running(ref)
        guard record.cgroups.isFrozen else { throw BerthError("container \(c.name) is not paused") }
        try runtime.resume(id: c.id)
        Events.record(self, "unpause", c)
    }

    /// New limits: into the running container's cgroups, and into its config so that a
    /// restart keeps them (docker update). Each limit given replaces the old one.
    public func update(_ ref: String, _ resources: Resources) throws(BerthError) {
        let c = refreshed(try container(ref))
        var spec = try spec(of: c)
        var r = spec.linux?.resources ?? Resources()
        if let memory = resources.memory {
            var m = r.memory ?? Resources.Memory()
            m.limit = memory.limit ?? m.limit
            m.reservation = memory.reservation ?? m.reservation
            m.swap = memory.swap ?? m.swap
            r.memory = m
        }
        if let cpu = resources.cpu {
            var merged = r.cpu ?? Resources.CPU()
            merged.shares = cpu.shares ?? merged.shares
            merged.quota = cpu.quota ?? merged.quota
            merged.period = cpu.period ?? merged.period
            merged.cpus = cpu.cpus ?? merged.cpus
            merged.mems = cpu.mems ?? merged.mems
            r.cpu = merged
        }
        r.pids = resources.pids ?? r.pids
        if let io = resources.blockIO {
            var merged = r.blockIO ?? Resources.BlockIO()
            merged.weight = io.weight ?? merged.weight
            merged.throttleReadBpsDevice = io.throttleReadBpsDevice ?? merged.throttleReadBpsDevice
            merged.throttleWriteBpsDevice = io.throttleWriteBpsDevice ?? merged.throttleWriteBpsDevice
            merged.throttleReadIOPSDevice = io.throttleReadIOPSDevice ?? merged.throttleReadIOPSDevice
            merged.throttleWriteIOPSDevice = io.throttleWriteIOPSDevice ?? merged.throttleWriteIOPSDevice
            r.blockIO = merged
        }
        if c.status == .running {
            // only what was asked for goes to the live cgroups (the kernel checks it); the config keeps the whole
            try runtime.update(id: c.id, resources: resources)
        }
        spec.linux?.resources = r
        try writeSpec(spec, of: c.id)
        Events.record(self, "update", c)
    }

    func writeSpec(_ spec: Spec, of id: String) throws(BerthError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Files.writeAtomically(Array((try? encoder.encode(spec)) ?? Data()), to: containersDir + "/" + id + "/config.json", mode: 0o600)
    }

    public func rename(_ ref: String, to name: String) throws(BerthError) {
        var c = try container(ref)
        let newName = String(name.drop { $0 == "/" })
        try ContainerNames.validate(newName)
        if containers().contains(where: { $0.name == newName && $0.id != c.id }) {
            throw BerthError("container name \"\(newName)\" is already in use; remove that container or pick another name")
        }
        let old = c.name
        // the supervisor saves the record too (at the end): the lock orders the two
        try withRecordLock(c.id) { () throws(BerthError) in
            c = try load(c.id)
            c.name = newName
            try save(c)
        }
        Events.record(self, "rename", c, attributes: ["oldName": "/" + old])
    }

    /// `top`: ps's columns (UID PID PPID C STIME TTY TIME CMD) for each process in the container's cgroup.
    public func top(_ ref: String) throws(BerthError) -> (titles: [String], processes: [[String]]) {
        let (_, record) = try running(ref)
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let boot = (try? Files.read("/proc/stat"))?.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6)) } ?? 0
        let uptime = (try? Files.read("/proc/uptime")).flatMap { Double($0.split(separator: " ").first ?? "") } ?? 0
        var rows: [[String]] = []
        for pid in record.cgroups.processes().sorted() {
            guard let stat = try? Files.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { continue }
            let comm = String(stat[stat.index(after: stat.firstIndex(of: "(")!)..<close])
            let f = stat[stat.index(close, offsetBy: 2)...].split(separator: " ").map(String.init)
            guard f.count > 20 else { continue }
            let ppid = f[1], ttyNr = Int(f[4]) ?? 0
            let cpu = (Double(f[11]) ?? 0) + (Double(f[12]) ?? 0)
            let started = (Double(f[19]) ?? 0) / ticks
            let elapsed = max(uptime - started, 0.001)
            let uid = (try? Files.read("/proc/\(pid)/status"))?.split(separator: "\n").first { $0.hasPrefix("Uid:") }?
                .split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.map(String.init) ?? "?"
            let user = UInt32(uid).flatMap { getpwuid($0) }.map { String(cString: $0.pointee.pw_name) } ?? uid
            let startDate = Date(timeIntervalSince1970: boot + started)
            let formatter = DateFormatter()
            formatter.dateFormat = Calendar.current.isDateInToday(startDate) ? "HH:mm" : "MMMdd"
            let seconds = Int(cpu / ticks)
            let time = String(format: "%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
            let major = (ttyNr >> 8) & 0xfff, minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00)
            let tty = ttyNr == 0 ? "?" : major == 136 ? "pts/\(minor)" : "tty\(minor)"
            let args = ((try? Files.readBytes("/proc/\(pid)/cmdline")) ?? []).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            rows.append([user, String(pid), ppid, String(Int(cpu / ticks * 100 / elapsed)), formatter.string(from: startDate), tty, time,
                         args.isEmpty ? "[\(comm)]" : args.joined(separator: " ")])
        }
        return (["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], rows)
    }

    /// One stats sample of a running container, in the Engine API's shape; `previous`
    /// fills precpu_stats (the CLI's CPU % is the change between the two).
    public func stats(_ ref: String, previous: ContainerStats? = nil) throws(BerthError) -> ContainerStats {
        let (c, record) = try running(ref)
        return ContainerStats(c, record.cgroups.stats(), pid: record.pid, previous: previous)
    }

    /// Bytes a directory's files take (st_blocks), not following symlinks or crossing mounts.
    static func diskUsage(_ path: String) -> Int64 {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total: Int64 = 0
        var st = stat()
        while let entry = walker.nextObject() as? String {
            if lstat(path + "/" + entry, &st) == 0 { total += Int64(st.st_blocks) * 512 }
        }
        return total
    }

    /// The container's writable layer: what it changed.
    public func sizeRw(_ c: EngineContainer) -> Int64 {
        Engine.diskUsage(ContainerLayer(store: images, id: c.id).directory + "/upper")
    }

    /// Volumes under the data root, the bytes each takes, and how many containers mount it.
    public func volumes() -> [(name: String, path: String, size: Int64, containers: Int)] {
        let dir = images.root + "/volumes"
        let sources = containers().compactMap { try? spec(of: $0) }.map { Set(($0.mounts ?? []).compactMap(\.source)) }
        return ((try? Files.list(dir)) ?? []).sorted().map { name in
            let path = dir + "/" + name + "/_data"
            return (name, path, Engine.diskUsage(path), sources.filter { $0.contains(path) }.count)
        }
    }
}

/// `GET /containers/{id}/stats`'s document, as the docker CLI reads it.
public struct ContainerStats: Codable, Sendable {
    public struct CPUStats: Codable, Sendable {
        public struct Usage: Codable, Sendable {
            public var total_usage: UInt64 = 0
            public var percpu_usage: [UInt64]?
            public var usage_in_kernelmode: UInt64 = 0
            public var usage_in_usermode: UInt64 = 0
        }
        public struct Throttling: Codable, Sendable { public var periods: UInt64 = 0; public var throttled_periods: UInt64 = 0; public var throttled_time: UInt64 = 0 }
        public var cpu_usage = Usage()
        public var system_cpu_usage: UInt64 = 0
        public var online_cpus: UInt32 = 0
        public var throttling_data = Throttling()
    }
    public struct MemoryStats: Codable, Sendable {
        public var usage: UInt64 = 0
        public var max_usage: UInt64?
        public var stats: [String: UInt64] = [:]
        public var failcnt: UInt64?
        public var limit: UInt64 = 0
    }
    public struct BlkioEntry: Codable, Sendable { public var major: UInt64; public var minor: UInt64; public var op: String; public var value: UInt64 }
    public struct BlkioStats: Codable, Sendable {
        public var io_service_bytes_recursive: [BlkioEntry]?
        public var io_serviced_recursive: [BlkioEntry]?
    }
    public struct PidsStats: Codable, Sendable { public var current: UInt64 = 0; public var limit: UInt64? }
    public typealias NetworkStats = InterfaceCounters
    public var name: String
    public var id: String
    public var read: String
    public var preread: String
    public var pids_stats: PidsStats
    public var blkio_stats: BlkioStats
    public var num_procs: UInt32 = 0
    public var cpu_stats: CPUStats
    public var precpu_stats: CPUStats
    public var memory_stats: MemoryStats
    public var networks: [String: NetworkStats]?
    /// berth's own: OOM kills so far (docker has them only as events).
    public var oom_kills: UInt64

    init(_ c: EngineContainer, _ s: Stats, pid: Int32, previous: ContainerStats?) {
        name = "/" + c.name
        id = c.id
        read = Timestamp.now()
        preread = previous?.read ?? "0001-01-01T00:00:00Z"
        pids_stats = PidsStats(current: s.pids.current, limit: s.pids.limit == UInt64.max || s.pids.limit == 0 ? nil : s.pids.limit)
        blkio_stats = BlkioStats(io_service_bytes_recursive: s.blkio.ioServiceBytesRecursive.map { .init(major: $0.major, minor: $0.minor, op: $0.op, value: $0.value) },
                                 io_serviced_recursive: s.blkio.ioServicedRecursive.map { .init(major: $0.major, minor: $0.minor, op: $0.op, value: $0.value) })
        var cpu = CPUStats()
        cpu.cpu_usage = .init(total_usage: s.cpu.usage.total, percpu_usage: s.cpu.usage.percpu.isEmpty ? nil : s.cpu.usage.percpu,
                              usage_in_kernelmode: s.cpu.usage.kernel, usage_in_usermode: s.cpu.usage.user)
        cpu.system_cpu_usage = ContainerStats.systemCPUUsage()
        cpu.online_cpus = UInt32(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        cpu.throttling_data = .init(periods: s.cpu.throttling.periods, throttled_periods: s.cpu.throttling.throttledPeriods,
                                    throttled_time: s.cpu.throttling.throttledTime)
        cpu_stats = cpu
        precpu_stats = previous?.cpu_stats ?? CPUStats()
        // an unlimited cgroup reads as a huge number: the machine's memory is the real bound
        let machine = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        memory_stats = MemoryStats(usage: s.memory.usage.usage, max_usage: s.memory.usage.max == 0 ? nil : s.memory.usage.max,
                                   stats: s.memory.raw, failcnt: s.memory.usage.failcnt, limit: min(s.memory.usage.limit, machine))
        networks = ContainerStats.networks(of: pid)
        oom_kills = s.memory.oomKills
    }

    /// The memory a container really holds: usage less the inactive page cache the kernel
    /// can drop at once (what the docker CLI and cAdvisor call the working set).
    public var workingSet: UInt64 {
        let inactive = memory_stats.stats["total_inactive_file"] ?? memory_stats.stats["inactive_file"] ?? 0
        return memory_stats.usage > inactive ? memory_stats.usage - inactive : 0
    }

    /// CPU % as the docker CLI computes it: the container's share of the machine's time between two samples, times the CPUs.
    public var cpuPercent: Double {
        let cpuDelta = Double(cpu_stats.cpu_usage.total_usage) - Double(precpu_stats.cpu_usage.total_usage)
        let systemDelta = Double(cpu_stats.system_cpu_usage) - Double(precpu_stats.system_cpu_usage)
        guard precpu_stats.system_cpu_usage > 0, systemDelta > 0, cpuDelta > 0 else { return 0 }
        return cpuDelta / systemDelta * Double(cpu_stats.online_cpus) * 100
    }

    public var blockRead: UInt64 { (blkio_stats.io_service_bytes_recursive ?? []).filter { $0.op.lowercased() == "read" }.reduce(0) { $0 + $1.value } }
    public var blockWrite: UInt64 { (blkio_stats.io_service_bytes_recursive ?? []).filter { $0.op.lowercased() == "write" }.reduce(0) { $0 + $1.value } }

    /// The machine's CPU time in nanoseconds (/proc/stat's first line, as docker reads it).
    static func systemCPUUsage() -> UInt64 {
        guard let line = (try? Files.read("/proc/stat"))?.split(separator: "\n").first, line.hasPrefix("cpu ") else { return 0 }
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }.reduce(0, +)
        return ticks * (1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// The counters of the container's own interfaces (not lo), by name; nil when it shares the host's network.
    static func networks(of pid: Int32) -> [String: NetworkStats]? {
        InterfaceCounters.of(pid: pid).map { Dictionary($0.map { ($0.name, $0) }, uniquingKeysWith: { $1 }) }
    }
}

func readLinkTarget(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
}

extension Engine {
    /// `system df`'s image figures: the bytes of all layers (each counted once), and per
    /// image the bytes of its layers that another image shares.
    public func diskUsage() -> (layers: Int64, sharedSize: [Digest: Int64]) {
        let records = (try? images.images()) ?? []
        var users: [Digest: Set<Digest>] = [:]
        for r in records { for chain in r.chain { users[chain, default: []].insert(r.id) } }
        var sizes: [Digest: Int64] = [:]
        for chain in users.keys { sizes[chain] = (try? images.layer(chain))?.size ?? 0 }
        var shared: [Digest: Int64] = [:]
        for r in records {
            shared[r.id] = Set(r.chain).filter { (users[$0]?.count ?? 0) > 1 }.reduce(0) { $0 + (sizes[$1] ?? 0) }
        }
        return (sizes.values.reduce(0, +), shared)
    }
}
