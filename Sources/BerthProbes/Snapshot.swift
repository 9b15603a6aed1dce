import BerthSys
import BerthSecurity
import CBerthProbes

/// A log2 histogram: bucket i counts values in [2^i, 2^(i+1)) nanoseconds.
public struct Histogram: Sendable, Codable, Equatable {
    public var buckets: [UInt64]

    public init(buckets: [UInt64] = Array(repeating: 0, count: Int(BERTH_HIST_BUCKETS))) { self.buckets = buckets }

    public var count: UInt64 { buckets.reduce(0, +) }

    public static func + (a: Histogram, b: Histogram) -> Histogram {
        Histogram(buckets: zip(a.buckets, b.buckets).map { $0 + $1 })
    }

    public static func - (a: Histogram, b: Histogram) -> Histogram {
        Histogram(buckets: zip(a.buckets, b.buckets).map { $0 >= $1 ? $0 - $1 : 0 })
    }

    /// The value below which a fraction `p` (0...1) of the samples fall, interpolated
    /// linearly inside the bucket (the resolution of a log2 histogram is its bucket).
    public func percentile(_ p: Double) -> Double? {
        let total = count
        guard total > 0 else { return nil }
        let rank = p * Double(total)
        var seen: Double = 0
        for (i, n) in buckets.enumerated() where n > 0 {
            if seen + Double(n) >= rank {
                let low = i == 0 ? 0 : Double(UInt64(1) << UInt64(i))
                let high = Double(UInt64(1) << UInt64(i + 1))
                return low + (high - low) * max(0, min(1, (rank - seen) / Double(n)))
            }
            seen += Double(n)
        }
        return Double(UInt64(1) << UInt64(buckets.count))
    }
}

/// One syscall of one container.
public struct SyscallStat: Sendable, Codable, Equatable {
    public var number: Int
    public var name: String
    public var count: UInt64
    /// Calls whose exit was seen and timed (exit, exit_group and a successful
    /// execve's old image never return).
    public var timed: UInt64
    public var totalNanoseconds: UInt64
    public var latency: Histogram?
    public var meanNanoseconds: Double? { timed == 0 ? nil : Double(totalNanoseconds) / Double(timed) }
}

/// Everything the maps hold about one container at one moment.
public struct ProbeSnapshot: Sendable, Codable, Equatable {
    public var cgroupID: UInt64
    public var syscalls: [SyscallStat]
    public var forks: UInt64
    public var threads: UInt64
    public var execs: UInt64
    public var exits: UInt64
    public var oomKills: UInt64
    public var lostEvents: UInt64
    public var runQueue: Histogram
    public var runQueueTotalNanoseconds: UInt64

    public var totalSyscalls: UInt64 { syscalls.reduce(0) { $0 + $1.count } }
    /// All syscalls' latencies in one histogram.
    public var syscallLatency: Histogram { syscalls.compactMap(\.latency).reduce(Histogram(), +) }

    /// What happened between `earlier` and this snapshot (for rates).
    public func since(_ earlier: ProbeSnapshot) -> ProbeSnapshot {
        var d = self
        let before = Dictionary(uniqueKeysWithValues: earlier.syscalls.map { ($0.number, $0) })
        d.syscalls = syscalls.compactMap { s in
            guard let b = before[s.number] else { return s }
            var x = s
            x.count -= min(x.count, b.count)
            x.timed -= min(x.timed, b.timed)
            x.totalNanoseconds -= min(x.totalNanoseconds, b.totalNanoseconds)
            if let l = s.latency, let bl = b.latency { x.latency = l - bl }
            return x.count == 0 && x.timed == 0 ? nil : x
        }
        d.forks -= min(forks, earlier.forks); d.threads -= min(threads, earlier.threads)
        d.execs -= min(execs, earlier.execs); d.exits -= min(exits, earlier.exits)
        d.oomKills -= min(oomKills, earlier.oomKills); d.lostEvents -= min(lostEvents, earlier.lostEvents)
        d.runQueue = runQueue - earlier.runQueue
        d.runQueueTotalNanoseconds -= min(runQueueTotalNanoseconds, earlier.runQueueTotalNanoseconds)
        return d
    }
}

extension Probes {
    /// Reads a tracked container's counters, syscalls and histograms (summed over CPUs).
    public func snapshot(cgroupID: UInt64) -> ProbeSnapshot? {
        guard let slot = slot(of: cgroupID) else { return nil }
        let maxSyscalls = UInt32(BERTH_MAX_SYSCALLS), buckets = UInt32(BERTH_HIST_BUCKETS)
        var syscalls: [SyscallStat] = []
        if probes.contains(.syscalls) {
            for nr in 0..<maxSyscalls {
                guard let s = readPerCPU("syscalls", key: slot * maxSyscalls + nr, as: berth_syscall_stat.self, sum: { a, b in
                    a.count += b.count; a.total_ns += b.total_ns; a.timed += b.timed
                }), s.count > 0 || s.timed > 0 else { continue }
                var latency: Histogram?
                if probes.contains(.latency) {
                    var key = slot * maxSyscalls + nr, h = berth_hist()
                    if bpf_map_lookup_elem(mapFD("syscall_hist"), &key, &h) == 0 {
                        latency = Histogram(buckets: withUnsafeBytes(of: h.buckets) { Array($0.bindMemory(to: UInt64.self)) })
                    }
                }
                syscalls.append(SyscallStat(number: Int(nr), name: SyscallNames.name(Int32(nr)), count: s.count, timed: s.timed,
                                            totalNanoseconds: s.total_ns, latency: latency))
            }
        }
        let c = readPerCPU("counters", key: slot, as: berth_counters.self) { a, b in
            a.forks += b.forks; a.threads += b.threads; a.execs += b.execs; a.exits += b.exits
            a.oom_kills += b.oom_kills; a.lost_events += b.lost_events
            a.runq_waits += b.runq_waits; a.runq_total_ns += b.runq_total_ns
        } ?? berth_counters()
        var runq = Histogram()
        if probes.contains(.runq) {
            for b in 0..<buckets {
                runq.buckets[Int(b)] = readPerCPU("runq_hist", key: slot * buckets + b, as: UInt64.self, sum: { $0 += $1 }) ?? 0
            }
        }
        return ProbeSnapshot(cgroupID: cgroupID, syscalls: syscalls, forks: c.forks, threads: c.threads, execs: c.execs,
                             exits: c.exits, oomKills: c.oom_kills, lostEvents: c.lost_events,
                             runQueue: runq, runQueueTotalNanoseconds: c.runq_total_ns)
    }
}

/// One ring-buffer event, decoded.
public struct ProbeEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case exec, exit, oom }
    public var kind: Kind
    public var cgroupID: UInt64
    public var timestampNanoseconds: UInt64
    public var pid: Int32
    public var ppid: Int32
    public var comm: String
    /// exec: the path given to execve and the head of argv.
    public var filename: String?
    public var arguments: [String]?
    /// exit: exit code, or the signal that ended the process.
    public var exitCode: Int32?
    public var signal: Int32?
    /// oom: the victim's memory in pages, and its memory cgroup's usage in pages.
    public var totalVMPages: UInt64?
    public var rssPages: UInt64?
    public var memcgUsagePages: UInt64?

    init(_ e: berth_event) {
        kind = e.kind == UInt32(BERTH_EVENT_EXEC.rawValue) ? .exec : e.kind == UInt32(BERTH_EVENT_EXIT.rawValue) ? .exit : .oom
        cgroupID = e.cgroup_id
        timestampNanoseconds = e.timestamp_ns
        pid = Int32(bitPattern: e.pid)
        ppid = Int32(bitPattern: e.ppid)
        comm = ProbeEvent.string(e.comm)
        switch kind {
        case .exec:
            filename = ProbeEvent.string(e.filename)
            let bytes = withUnsafeBytes(of: e.args) { Array($0.prefix(Int(e.args_len))) }
            arguments = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            if arguments?.last == "" { arguments?.removeLast() }
        case .exit:
            let status = e.exit_status
            if status & 0x7f == 0 { exitCode = (status >> 8) & 0xff } else { signal = status & 0x7f }
        case .oom:
            totalVMPages = e.total_vm
            rssPages = e.anon_rss &+ e.file_rss &+ e.shmem_rss
            memcgUsagePages = e.memcg_usage
        }
    }

    static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
