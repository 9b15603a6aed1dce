import BerthSys

/// Container statistics in runc's `events` JSON shape.
public struct Stats: Codable, Sendable, Equatable {
    public struct CPU: Codable, Sendable, Equatable {
        public struct Usage: Codable, Sendable, Equatable {
            public var total: UInt64 = 0
            public var percpu: [UInt64] = []
            public var kernel: UInt64 = 0
            public var user: UInt64 = 0
        }
        public struct Throttling: Codable, Sendable, Equatable {
            public var periods: UInt64 = 0
            public var throttledPeriods: UInt64 = 0
            public var throttledTime: UInt64 = 0
        }
        public var usage = Usage()
        public var throttling = Throttling()
    }
    public struct MemoryEntry: Codable, Sendable, Equatable {
        public var limit: UInt64 = 0
        public var usage: UInt64 = 0
        public var max: UInt64 = 0
        public var failcnt: UInt64 = 0
    }
    public struct Memory: Codable, Sendable, Equatable {
        public var cache: UInt64 = 0
        public var usage = MemoryEntry()
        public var swap = MemoryEntry()
        public var kernel = MemoryEntry()
        /// Processes the kernel's OOM killer ended in this cgroup (v1 memory.oom_control, v2 memory.events).
        public var oomKills: UInt64 = 0
        public var raw: [String: UInt64] = [:]
    }
    public struct Pids: Codable, Sendable, Equatable {
        public var current: UInt64 = 0
        public var limit: UInt64 = 0
    }
    public struct BlkioEntry: Codable, Sendable, Equatable {
        public var major: UInt64
        public var minor: UInt64
        public var op: String
        public var value: UInt64
    }
    public struct Blkio: Codable, Sendable, Equatable {
        public var ioServiceBytesRecursive: [BlkioEntry] = []
        public var ioServicedRecursive: [BlkioEntry] = []
    }
    public struct Pressure: Codable, Sendable, Equatable {
        public struct Line: Codable, Sendable, Equatable { public var avg10: Double = 0; public var avg60: Double = 0; public var avg300: Double = 0; public var total: UInt64 = 0 }
        public var some = Line()
        public var full: Line?
    }
    public var cpu = CPU()
    public var memory = Memory()
    public var pids = Pids()
    public var blkio = Blkio()
    public var hugetlb: [String: MemoryEntry] = [:]
    /// PSI from the container's v2 cgroup, where the kernel has it.
    public var cpuPressure: Pressure?
    public var memoryPressure: Pressure?
    public var ioPressure: Pressure?
    /// The container's own interfaces (runc's `network_interfaces`), filled in by whoever knows its pid.
    public var network_interfaces: [InterfaceCounters]?
    public init() {}
}

/// Parsers for the cgroup file formats stats are read from.
enum StatFiles {
    static func number(_ text: String?) -> UInt64 {
        guard let t = text?.trimmingWhitespace(), !t.isEmpty else { return 0 }
        if t == "max" { return UInt64.max }
        return UInt64(t) ?? (Int64(t).map { $0 < 0 ? UInt64.max : UInt64($0) } ?? 0)
    }

    /// "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
    static func flatKeyed(_ text: String?) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in (text ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = UInt64(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }

    /// "8:0 Read 4096" lines of blkio; "Total" lines are skipped.
    static func blkio(_ text: String?) -> [Stats.BlkioEntry] {
        var out: [Stats.BlkioEntry] = []
        for line in (text ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let v = UInt64(parts[2]) else { continue }
            let dev = parts[0].split(separator: ":")
            guard dev.count == 2, let major = UInt64(dev[0]), let minor = UInt64(dev[1]) else { continue }
            out.append(.init(major: major, minor: minor, op: String(parts[1]), value: v))
        }
        return out
    }

    /// "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" / "full …".
    static func pressure(_ text: String?) -> Stats.Pressure? {
        guard let text, !text.isEmpty else { return nil }
        var p = Stats.Pressure()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard let kind = parts.first else { continue }
            var l = Stats.Pressure.Line()
            for field in parts.dropFirst() {
                let kv = field.split(separator: "=")
                guard kv.count == 2 else { continue }
                switch kv[0] {
                case "avg10": l.avg10 = Double(kv[1]) ?? 0
                case "avg60": l.avg60 = Double(kv[1]) ?? 0
                case "avg300": l.avg300 = Double(kv[1]) ?? 0
                case "total": l.total = UInt64(kv[1]) ?? 0
                default: break
                }
            }
            if kind == "some" { p.some = l } else if kind == "full" { p.full = l }
        }
        return p
    }
}

extension FSCgroupManager {
    /// Reads every controller's counters (v1), and PSI from the v2 cgroup.
    public func stats() -> Stats {
        var s = Stats()
        if let d = v1Directory(for: "cpuacct").map(CgroupDirectory.init) {
            s.cpu.usage.total = StatFiles.number(d.read("cpuacct.usage"))
            s.cpu.usage.percpu = (d.read("cpuacct.usage_percpu") ?? "").split(separator: " ").compactMap { UInt64($0) }
            // cpuacct.stat is in USER_HZ ticks: nanoseconds like the rest
            let ticks = StatFiles.flatKeyed(d.read("cpuacct.stat"))
            s.cpu.usage.user = (ticks["user"] ?? 0) * 10_000_000
            s.cpu.usage.kernel = (ticks["system"] ?? 0) * 10_000_000
        }
        if let d = v1Directory(for: "cpu").map(CgroupDirectory.init) {
            let stat = StatFiles.flatKeyed(d.read("cpu.stat"))
            s.cpu.throttling = .init(periods: stat["nr_periods"] ?? 0, throttledPeriods: stat["nr_throttled"] ?? 0, throttledTime: stat["throttled_time"] ?? 0)
        }
        if let d = v1Directory(for: "memory").map(CgroupDirectory.init) {
            func entry(_ prefix: String) -> Stats.MemoryEntry {
                .init(limit: StatFiles.number(d.read(prefix + ".limit_in_bytes")), usage: StatFiles.number(d.read(prefix + ".usage_in_bytes")),
                      max: StatFiles.number(d.read(prefix + ".max_usage_in_bytes")), failcnt: StatFiles.number(d.read(prefix + ".failcnt")))
            }
            s.memory.usage = entry("memory")
            if d.has("memory.memsw.usage_in_bytes") { s.memory.swap = entry("memory.memsw") }
            if d.has("memory.kmem.usage_in_bytes") { s.memory.kernel = entry("memory.kmem") }
            s.memory.raw = StatFiles.flatKeyed(d.read("memory.stat"))
            s.memory.cache = s.memory.raw["total_cache"] ?? s.memory.raw["cache"] ?? 0
        }
        if let d = v1Directory(for: "pids").map(CgroupDirectory.init) {
            s.pids = .init(current: StatFiles.number(d.read("pids.current")), limit: StatFiles.number(d.read("pids.max")))
        }
        if let d = v1Directory(for: "blkio").map(CgroupDirectory.init) {
            s.blkio.ioServiceBytesRecursive = StatFiles.blkio(d.read("blkio.throttle.io_service_bytes_recursive") ?? d.read("blkio.io_service_bytes_recursive"))
            s.blkio.ioServicedRecursive = StatFiles.blkio(d.read("blkio.throttle.io_serviced_recursive") ?? d.read("blkio.io_serviced_recursive"))
        }
        if layout.mode == .unified, let v2 = v2Directory.map(CgroupDirectory.init) { readV2(v2, into: &s) }
        if let v2 = v2Directory.map(CgroupDirectory.init) {
            s.cpuPressure = StatFiles.pressure(v2.read("cpu.pressure"))
            s.memoryPressure = StatFiles.pressure(v2.read("memory.pressure"))
            s.ioPressure = StatFiles.pressure(v2.read("io.pressure"))
        }
        s.memory.oomKills = oomKills
        return s
    }

    /// v2 counters: cpu.stat in microseconds, memory.current/max/stat, pids.
    private func readV2(_ d: CgroupDirectory, into s: inout Stats) {
        let cpu = StatFiles.flatKeyed(d.read("cpu.stat"))
        s.cpu.usage.total = (cpu["usage_usec"] ?? 0) * 1000
        s.cpu.usage.user = (cpu["user_usec"] ?? 0) * 1000
        s.cpu.usage.kernel = (cpu["system_usec"] ?? 0) * 1000
        s.cpu.throttling = .init(periods: cpu["nr_periods"] ?? 0, throttledPeriods: cpu["nr_throttled"] ?? 0,
                                 throttledTime: (cpu["throttled_usec"] ?? 0) * 1000)
        s.memory.usage = .init(limit: StatFiles.number(d.read("memory.max")), usage: StatFiles.number(d.read("memory.current")),
                               max: StatFiles.number(d.read("memory.peak")), failcnt: StatFiles.flatKeyed(d.read("memory.events"))["max"] ?? 0)
        if d.has("memory.swap.current") {
            s.memory.swap = .init(limit: StatFiles.number(d.read("memory.swap.max")), usage: StatFiles.number(d.read("memory.swap.current")), max: 0, failcnt: 0)
        }
        s.memory.raw = StatFiles.flatKeyed(d.read("memory.stat"))
        s.memory.cache = s.memory.raw["file"] ?? 0
        s.pids = .init(current: StatFiles.number(d.read("pids.current")), limit: StatFiles.number(d.read("pids.max")))
        // io.stat: "254:0 rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…", in v1's Read/Write entries
        for line in (d.read("io.stat") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            let dev = fields.first?.split(separator: ":") ?? []
            guard dev.count == 2, let major = UInt64(dev[0]), let minor = UInt64(dev[1]) else { continue }
            var kv: [String: UInt64] = [:]
            for field in fields.dropFirst() {
                let pair = field.split(separator: "=")
                if pair.count == 2, let v = UInt64(pair[1]) { kv[String(pair[0])] = v }
            }
            s.blkio.ioServiceBytesRecursive += [("Read", "rbytes"), ("Write", "wbytes")].map { .init(major: major, minor: minor, op: $0.0, value: kv[$0.1] ?? 0) }
            s.blkio.ioServicedRecursive += [("Read", "rios"), ("Write", "wios")].map { .init(major: major, minor: minor, op: $0.0, value: kv[$0.1] ?? 0) }
        }
    }

    /// OOM kills so far: v1 memory.oom_control's oom_kill counter, v2 memory.events's.
    public var oomKills: UInt64 {
        if let d = v1Directory(for: "memory").map(CgroupDirectory.init) {
            return StatFiles.flatKeyed(d.read("memory.oom_control"))["oom_kill"] ?? 0
        }
        guard layout.mode == .unified, let v2 = v2Directory.map(CgroupDirectory.init) else { return 0 }
        return StatFiles.flatKeyed(v2.read("memory.events"))["oom_kill"] ?? 0
    }
}
