#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthCgroups
import BerthOCI
import BerthSys

/// Do the limits hold? Each limit is set through berth-runtime, a workload
/// pushes against it, and what it achieved is compared with what was asked:
/// CPU quota (cpu-seconds per wall-second, throttled periods), memory (the
/// largest allocation that survives, OOM kills), pids (forks that succeed),
/// and CPU shares between two containers on one CPU.
public struct QuotaBenchmark {
    public var context: BenchContext
    public init(context: BenchContext) { self.context = context }

    public func run(progress: Progress) throws -> QuotaResult {
        let p = context.profile
        var result = QuotaResult()
        progress.begin("quota", total: p.cpuQuotas.count + p.memoryLimitsMiB.count + p.pidsLimits.count + 1)
        let threads = Swift.max(2, Int(p.cpuQuotas.max() ?? 1) + 1)
        for cpus in p.cpuQuotas {
            let out = try runKept("cpu-\(Int(cpus * 100))", args: ["spin-threads", String(threads), String(p.quotaSeconds)]) { spec in
                var cpu = Resources.CPU(); cpu.period = 100_000; cpu.quota = Int64(cpus * 100_000)
                spec.linux?.resources?.cpu = cpu
            }
            if let cpuSeconds = out.run.number("cpu-seconds"), let wall = out.run.number("wall-seconds"), wall > 0 {
                result.cpu.append(.init(requested: cpus, achieved: cpuSeconds / wall, periods: out.stats?.cpu.throttling.periods ?? 0,
                                        throttledPeriods: out.stats?.cpu.throttling.throttledPeriods ?? 0))
            } else { result.notes.append("cpu \(cpus): \(out.problem)") }
            progress.step()
        }
        for mib in p.memoryLimitsMiB {
            let out = try runKept("memory-\(mib)", args: ["alloc-steps", String(mib * 4)]) { spec in
                var memory = Resources.Memory(); memory.limit = Int64(mib) << 20; memory.swap = Int64(mib) << 20
                spec.linux?.resources?.memory = memory
            }
            let survived = out.run.values("allocated").compactMap { Int($0) }.max() ?? 0
            result.memory.append(.init(limitMiB: mib, largestAllocationMiB: survived, exitCode: out.run.exitCode,
                                       oomKills: out.stats?.memory.oomKills ?? 0, peakBytes: out.stats?.memory.usage.max ?? 0))
            progress.step()
        }
        for limit in p.pidsLimits {
            let out = try runKept("pids-\(limit)", args: ["fork", String(limit * 2)]) { spec in
                spec.linux?.resources?.pids = Resources.Pids(limit: Int64(limit))
            }
            if let forked = out.run.number("forked") {
                // the container's init is one of the pids the limit counts
                result.pids.append(.init(limit: limit, processes: Int(forked) + 1, firstError: out.run.value("fork-error") ?? ""))
            } else { result.notes.append("pids \(limit): \(out.problem)") }
            progress.step()
        }
        result.shares = try shares()
        progress.step()
        progress.end()
        return result
    }

    /// Two containers pinned to CPU 0 with cpu shares 256 and 768: the kernel should split the CPU 1:3.
    func shares() throws -> QuotaResult.Shares? {
        let seconds = String(context.profile.quotaSeconds)
        var commands: [[String]] = [], ids: [String] = []
        defer { for id in ids { _ = context.berth(["delete", "--force", id]) } }
        for shares in [256, 768] {
            let name = "shares-\(shares)"
            let id = "\(name)-\(getpid())"
            let spec = context.spec(name: name, args: ["/bin/berth-test-init", "spin-threads", "1", seconds]) { spec in
                var cpu = Resources.CPU(); cpu.shares = UInt64(shares); cpu.cpus = "0"
                spec.linux?.resources?.cpu = cpu
            }
            commands.append(["run", "--keep", "--bundle", try context.bundle(name, spec), id])
            ids.append(id)
        }
        // both start together, so they compete for the whole run
        let cpu = context.concurrently(commands).perCommand.map { $0.number("cpu-seconds") ?? 0 }
        guard cpu.count == 2, cpu[0] + cpu[1] > 0 else { return nil }
        return .init(shares: [256, 768], cpuSeconds: cpu, achievedFraction: cpu[0] / (cpu[0] + cpu[1]), expectedFraction: 0.25)
    }

    struct Kept {
        var run: Spawned
        var stats: Stats?
        var problem: String { BenchEnvironment.firstLine(run.output) }
    }

    /// `run --keep` of the helper, the stopped container's final statistics, then delete.
    func runKept(_ name: String, args: [String], adjust: (inout Spec) -> Void) throws -> Kept {
        let id = "\(name)-\(getpid())"
        let spec = context.spec(name: name, args: ["/bin/berth-test-init"] + args) { spec in
            if spec.linux?.resources == nil { spec.linux?.resources = Resources() }
            adjust(&spec)
        }
        let bundle = try context.bundle(name, spec)
        let run = context.berth(["run", "--keep", "--bundle", bundle, id])
        let events = context.berth(["events", "--stats", id])
        _ = context.berth(["delete", "--force", id])
        struct Event: Decodable { var data: Stats? }
        let stats = events.output.split(separator: "\n").lazy.compactMap { try? JSONDecoder().decode(Event.self, from: Data($0.utf8)).data }.first
        return Kept(run: run, stats: stats)
    }
}

public struct QuotaResult: Codable, Sendable {
    public struct CPUPoint: Codable, Sendable {
        public var requested: Double
        /// CPU-seconds the workload got per wall-clock second.
        public var achieved: Double
        public var periods: UInt64
        public var throttledPeriods: UInt64
        public var error: Double { requested > 0 ? (achieved - requested) / requested : 0 }
    }
    public struct MemoryPoint: Codable, Sendable {
        public var limitMiB: Int
        /// The largest allocation (MiB, touched) the workload completed before it was stopped.
        public var largestAllocationMiB: Int
        public var exitCode: Int32
        public var oomKills: UInt64
        public var peakBytes: UInt64
    }
    public struct PidsPoint: Codable, Sendable {
        public var limit: Int
        /// Processes that existed at once (init + successful forks).
        public var processes: Int
        public var firstError: String
    }
    public struct Shares: Codable, Sendable {
        public var shares: [Int]
        public var cpuSeconds: [Double]
        /// The first container's part of the CPU time.
        public var achievedFraction: Double
        public var expectedFraction: Double
    }
    public var cpu: [CPUPoint] = []
    public var memory: [MemoryPoint] = []
    public var pids: [PidsPoint] = []
    public var shares: Shares?
    public var notes: [String] = []
    public init() {}
}
