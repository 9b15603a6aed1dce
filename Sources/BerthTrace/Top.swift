#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import BerthRuntime
import BerthCgroups
import BerthProbes

/// `berth top`: every running container of the runtime root, refreshed each
/// interval — CPU %, memory working set, pids, syscalls/s, syscall latency p50/p99,
/// run-queue p99, OOM kills. A table redrawn on a TTY; one JSON line per container
/// per interval otherwise.
public struct Top {
    public struct Options: Sendable {
        public var interval: Double = 1
        /// Refreshes before exiting; nil runs until SIGINT/SIGTERM.
        public var iterations: Int?
        public var json = isatty(1) == 0
        public init() {}
    }

    public struct Row: Sendable, Codable, Equatable {
        public var type = "top"
        public var container: String
        public var cpuPercent: Double
        public var memoryWorkingSetBytes: UInt64
        public var pids: UInt64
        public var syscallsPerSecond: Double
        public var syscallP50Nanoseconds: Double?
        public var syscallP99Nanoseconds: Double?
        public var runQueueP99Nanoseconds: Double?
        public var oomKills: UInt64
    }

    public let runtime: Runtime
    public let options: Options
    let output: LineWriter

    public init(runtime: Runtime, options: Options, output: LineWriter = LineWriter()) {
        self.runtime = runtime; self.options = options; self.output = output
    }

    private struct Sample {
        var target: TraceTarget
        var cpu: UInt64
        var probe: ProbeSnapshot?
        var at: Double
    }

    public func run() throws(BerthError) {
        var signals = StopSignals()
        let probes = try Probes([.syscalls, .latency, .oom, .runq])
        try probes.enableSelfCost()
        var previousCost = ProbeCost(probes.selfCost())
        var previous: [String: Sample] = [:]
        var refresh = 0
        while options.iterations.map({ refresh < $0 }) ?? true {
            // Containers come and go between refreshes.
            let running = runtime.list().filter { $0.state.status == .running || $0.state.status == .paused }.map(\.state.id)
            for id in previous.keys where !running.contains(id) {
                if let s = previous[id] { probes.untrack(cgroupID: s.target.cgroupID) }
                previous[id] = nil
            }
            var rows: [Row] = []
            for id in running.sorted() {
                guard let target = previous[id]?.target ?? (try? TraceTarget.resolve(id, runtime: runtime)) else { continue }
                if probes.slot(of: target.cgroupID) == nil { _ = try? probes.track(cgroupID: target.cgroupID) }
                let stats = target.record.cgroups.stats()
                let now = Sample(target: target, cpu: stats.cpu.usage.total, probe: probes.snapshot(cgroupID: target.cgroupID),
                                 at: monotonicMilliseconds())
                defer { previous[id] = now }
                guard let before = previous[id] else { continue } // rates need two samples
                let seconds = max((now.at - before.at) / 1000, 0.001)
                let delta = now.probe.flatMap { n in before.probe.map { n.since($0) } }
                let inactive = stats.memory.raw["total_inactive_file"] ?? stats.memory.raw["inactive_file"] ?? 0
                rows.append(Row(container: id,
                                cpuPercent: Double(now.cpu - min(now.cpu, before.cpu)) / (seconds * 1e9) * 100,
                                memoryWorkingSetBytes: stats.memory.usage.usage - min(stats.memory.usage.usage, inactive),
                                pids: stats.pids.current,
                                syscallsPerSecond: Double(delta?.totalSyscalls ?? 0) / seconds,
                                syscallP50Nanoseconds: delta?.syscallLatency.percentile(0.5),
                                syscallP99Nanoseconds: delta?.syscallLatency.percentile(0.99),
                                runQueueP99Nanoseconds: delta?.runQueue.percentile(0.99),
                                oomKills: stats.memory.oomKills))
            }
            let cost = ProbeCost(probes.selfCost())
            if refresh > 0 { render(rows, cost: cost.since(previousCost, seconds: options.interval)) }
            previousCost = cost
            refresh += 1
            let deadline = monotonicMilliseconds() + options.interval * 1000
            while monotonicMilliseconds() < deadline {
                if signals.pending() { return }
                usleep(20_000)
            }
        }
    }

    func render(_ rows: [Row], cost: ProbeCost) {
        if options.json {
            for r in rows { output(JSON.line(r)) }
            output(JSON.line(cost))
            return
        }
        var lines = ["\u{1b}[H\u{1b}[2J" + "berth top — \(rows.count) running, every \(format(options.interval, 1)) s (Ctrl-C quits)", ""]
        lines.append(pad("CONTAINER", 20) + pad("CPU%", 7, right: true) + pad("MEM", 10, right: true) + pad("PIDS", 6, right: true)
                     + pad("SYSCALLS/s", 12, right: true) + pad("P50", 9, right: true) + pad("P99", 9, right: true)
                     + pad("RUNQ P99", 10, right: true) + pad("OOM", 5, right: true))
        for r in rows {
            lines.append(pad(String(r.container.prefix(19)), 20) + pad(format(r.cpuPercent, 1), 7, right: true)
                         + pad(format(Double(r.memoryWorkingSetBytes) / 1_048_576, 1) + "M", 10, right: true)
                         + pad("\(r.pids)", 6, right: true) + pad("\(Int(r.syscallsPerSecond.rounded()))", 12, right: true)
                         + pad(duration(r.syscallP50Nanoseconds), 9, right: true) + pad(duration(r.syscallP99Nanoseconds), 9, right: true)
                         + pad(duration(r.runQueueP99Nanoseconds), 10, right: true) + pad("\(r.oomKills)", 5, right: true))
        }
        lines.append("")
        lines.append("probes: \(cost.runs) runs, \(duration(Double(cost.nanoseconds))) in BPF (\(format(cost.cpuPercent, 2)) % of a CPU)")
        output(lines.joined(separator: "\n"))
    }
}

/// The probes' own cost over a refresh, from the kernel's BPF statistics.
struct ProbeCost: Codable {
    var type = "probe-cost"
    var runs: UInt64
    var nanoseconds: UInt64
    var cpuPercent: Double = 0

    init(_ costs: [ProgramCost]) {
        runs = costs.reduce(0) { $0 + $1.runCount }
        nanoseconds = costs.reduce(0) { $0 + $1.runTimeNanoseconds }
    }

    func since(_ earlier: ProbeCost, seconds: Double) -> ProbeCost {
        var d = self
        d.runs = runs - min(runs, earlier.runs)
        d.nanoseconds = nanoseconds - min(nanoseconds, earlier.nanoseconds)
        d.cpuPercent = Double(d.nanoseconds) / (max(seconds, 0.001) * 1e9) * 100
        return d
    }
}
