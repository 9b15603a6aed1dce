#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthSys
import BerthRuntime
import BerthCgroups
import BerthProbes

/// `berth trace`: loads the probes, registers the containers' cgroups, prints
/// events as they come and a summary at the end, then frees every program, link
/// and map. It ends after `duration`, on SIGINT/SIGTERM, or when every traced
/// container has stopped.
public struct Tracer {
    public struct Options: Sendable {
        public var probes: ProbeSet = .all
        public var duration: Double?
        public var json = false
        /// Seconds to wait for containers not yet created (a trace started beside
        /// `berth-runtime run`); nil fails at once for an unknown name.
        public var waitForContainers: Double?
        public init() {}
    }

    public let runtime: Runtime
    public let options: Options
    let output: LineWriter

    public init(runtime: Runtime, options: Options, output: LineWriter = LineWriter()) {
        self.runtime = runtime; self.options = options; self.output = output
    }

    /// The container, waiting for it to be created when asked to.
    func resolve(_ id: String) throws(BerthError) -> TraceTarget {
        let deadline = monotonicMilliseconds() + (options.waitForContainers ?? 0) * 1000
        while true {
            do { return try TraceTarget.resolve(id, runtime: runtime) } catch {
                if monotonicMilliseconds() >= deadline { throw error }
            }
            usleep(2000)
        }
    }

    /// Traces until done; returns the summary it printed.
    @discardableResult
    public func run(_ ids: [String]) throws(BerthError) -> TraceSummary {
        guard !ids.isEmpty else { throw BerthError("trace: name at least one container") }
        let targets = try ids.map { (id) throws(BerthError) in try resolve(id) }
        for t in targets where t.isStopped(runtime) {
            throw BerthError("container \"\(t.id)\" is stopped: nothing to trace")
        }
        var signals = StopSignals()
        let probes = try Probes(options.probes)
        if !probes.withheld.isEmpty {
            LineWriter(fd: 2)("berth trace: not traced on this kernel (needs Linux 6.4 or later): \(probes.withheld.names.joined(separator: ", "))")
        }
        try probes.enableSelfCost()
        let before = Dictionary(uniqueKeysWithValues: targets.map { ($0.id, $0.record.cgroups.stats()) })
        for t in targets { try probes.track(cgroupID: t.cgroupID) }
        // Only now may a container that waits for its tracer start.
        for t in targets {
            runtime.store.markTraced(t.id)
        }
        defer { for t in targets { unlink(runtime.store.tracerMarker(t.id)) } }
        let started = monotonicMilliseconds()
        let names = Dictionary(targets.map { ($0.cgroupID, $0.id) }, uniquingKeysWith: { a, _ in a })
        let message = "berth trace: tracing \(targets.map(\.id).joined(separator: ", ")) (\(probes.probes.names.joined(separator: ", ")))" +
            (options.duration.map { " for \(format($0, 1)) s" } ?? " until the container stops or Ctrl-C")
        LineWriter(fd: 2)(message)

        var events: [TraceEvent] = []
        let handle: (ProbeEvent) -> Void = { event in
            let since = (Double(event.timestampNanoseconds) / 1_000_000 - started) / 1000
            let e = TraceEvent(container: names[event.cgroupID] ?? "?", secondsSinceStart: since, event: event)
            events.append(e)
            self.output(self.options.json ? e.jsonLine : e.text)
        }
        while true {
            try probes.poll(timeout: 100, handle)
            let elapsed = (monotonicMilliseconds() - started) / 1000
            if let d = options.duration, elapsed >= d { break }
            if signals.pending() { break }
            if targets.allSatisfy({ $0.isStopped(runtime) }) {
                try probes.poll(timeout: 0, handle)
                break
            }
        }
        let elapsed = (monotonicMilliseconds() - started) / 1000
        let summary = TraceSummary(
            seconds: elapsed,
            containers: targets.map { t in
                let after = t.record.cgroups.stats()
                return ContainerTrace(id: t.id, cgroupID: t.cgroupID, seconds: elapsed,
                                      snapshot: probes.snapshot(cgroupID: t.cgroupID),
                                      cpuPeriods: after.cpu.throttling.periods - min(after.cpu.throttling.periods, before[t.id]?.cpu.throttling.periods ?? 0),
                                      cpuThrottledPeriods: after.cpu.throttling.throttledPeriods - min(after.cpu.throttling.throttledPeriods, before[t.id]?.cpu.throttling.throttledPeriods ?? 0),
                                      events: events.filter { $0.container == t.id }.count)
            },
            selfCost: probes.selfCost(),
            programIDs: probes.kernelIDs.programs, mapIDs: probes.kernelIDs.maps)
        output(options.json ? summary.jsonLine : summary.text)
        return summary
    }
}

/// An event as `berth trace` prints it.
public struct TraceEvent: Sendable, Codable {
    public var type = "event"
    public var container: String
    public var secondsSinceStart: Double
    public var event: ProbeEvent

    var text: String {
        var s = format(secondsSinceStart, 3) + " \(container) \(event.kind.rawValue) pid=\(event.pid) ppid=\(event.ppid)"
        switch event.kind {
        case .exec:
            s += " \(event.filename ?? "")"
            if let a = event.arguments { s += " [" + a.joined(separator: " ") + "]" }
        case .exit:
            if let c = event.exitCode { s += " comm=\(event.comm) code=\(c)" }
            if let sig = event.signal { s += " comm=\(event.comm) signal=\(sig)" }
        case .oom:
            s += " comm=\(event.comm) total_vm=\(event.totalVMPages ?? 0)p rss=\(event.rssPages ?? 0)p memcg_usage=\(event.memcgUsagePages ?? 0)p"
        }
        return s
    }

    var jsonLine: String { JSON.line(self) }
}

/// What one container did while traced.
public struct ContainerTrace: Sendable, Codable {
    public var id: String
    public var cgroupID: UInt64
    public var seconds: Double
    public var snapshot: ProbeSnapshot?
    public var cpuPeriods: UInt64
    public var cpuThrottledPeriods: UInt64
    public var events: Int
}

public struct TraceSummary: Sendable, Codable {
    public var type = "summary"
    public var seconds: Double
    public var containers: [ContainerTrace]
    public var selfCost: [ProgramCost]
    /// The kernel ids of the trace's programs and maps: all gone once it exits.
    public var programIDs: [UInt32]
    public var mapIDs: [UInt32]

    var jsonLine: String { JSON.line(self) }

    var text: String {
        var lines: [String] = []
        for c in containers {
            lines.append("container \(c.id) (cgroup \(c.cgroupID)), \(format(c.seconds, 2)) s")
            guard let s = c.snapshot else { continue }
            if !s.syscalls.isEmpty {
                let total = s.totalSyscalls
                let all = s.syscallLatency
                lines.append("  syscalls: \(total) (\(Int((Double(total) / max(c.seconds, 0.001)).rounded()))/s), latency p50 \(duration(all.percentile(0.5))), p99 \(duration(all.percentile(0.99)))")
                lines.append("    " + pad("SYSCALL", 18) + pad("COUNT", 10, right: true) + pad("MEAN", 10, right: true) + pad("P50", 10, right: true) + pad("P99", 10, right: true))
                for sc in s.syscalls.sorted(by: { $0.count > $1.count }).prefix(15) {
                    lines.append("    " + pad(sc.name, 18) + pad("\(sc.count)", 10, right: true) + pad(duration(sc.meanNanoseconds), 10, right: true)
                                 + pad(duration(sc.latency?.percentile(0.5)), 10, right: true) + pad(duration(sc.latency?.percentile(0.99)), 10, right: true))
                }
            }
            lines.append("  processes: \(s.forks) forks, \(s.threads) threads, \(s.execs) execs, \(s.exits) exits; OOM kills: \(s.oomKills)")
            if s.runQueue.count > 0 {
                lines.append("  run queue: \(s.runQueue.count) waits, p50 \(duration(s.runQueue.percentile(0.5))), p99 \(duration(s.runQueue.percentile(0.99)))")
            }
            lines.append("  cpu: throttled in \(c.cpuThrottledPeriods) of \(c.cpuPeriods) periods; lost events: \(s.lostEvents)")
        }
        let runs = selfCost.reduce(0) { $0 + $1.runCount }, time = selfCost.reduce(0) { $0 + $1.runTimeNanoseconds }
        lines.append("probe self-cost: \(runs) runs, \(duration(Double(time))) in BPF" +
                     (runs > 0 ? " (" + selfCost.filter { $0.runCount > 0 }.map { "\($0.program) \(Int($0.nanosecondsPerRun.rounded())) ns/run" }.joined(separator: ", ") + ")" : ""))
        return lines.joined(separator: "\n")
    }
}

enum JSON {
    static func line<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
