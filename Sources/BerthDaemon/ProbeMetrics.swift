#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthProbes
import BerthRuntime
import BerthSys

/// `berth daemon --probes`: the syscall probes loaded once, every running container
/// tracked by the cgroup its runtime made, and /metrics given each one's syscall
/// count and latency histogram and run-queue latency (Prometheus histograms in seconds).
public final class DaemonProbes: @unchecked Sendable {
    let probes: Probes
    let engine: Engine
    private let lock = NSLock()
    /// Container id → its cgroup's id, for those tracked.
    private var tracked: [String: UInt64] = [:]

    public init(engine: Engine) throws(BerthError) {
        self.engine = engine
        probes = try Probes([.syscalls, .latency, .runq])
        refresh()
        Thread { [self] in
            while true {
                usleep(500_000)
                refresh()
            }
        }.start()
    }

    /// Tracks new running containers, drops ended ones.
    func refresh() {
        var running: [String: UInt64] = [:]
        for c in engine.containers() where c.status == .running {
            guard let record = try? engine.runtime.record(id: c.id), let id = try? record.cgroups.v2CgroupID() else { continue }
            running[c.id] = id
        }
        lock.lock()
        defer { lock.unlock() }
        for (container, cgroup) in running where tracked[container] != cgroup {
            if (try? probes.track(cgroupID: cgroup)) != nil { tracked[container] = cgroup }
        }
        for (container, cgroup) in tracked where running[container] == nil {
            probes.untrack(cgroupID: cgroup)
            tracked[container] = nil
        }
    }

    func snapshot(_ container: String) -> ProbeSnapshot? {
        lock.lock()
        defer { lock.unlock() }
        return tracked[container].flatMap { probes.snapshot(cgroupID: $0) }
    }

    /// The probe families for the containers in `labels` (container id → its label text).
    func metrics(_ labels: [(id: String, labels: String)]) -> String {
        var calls = "# HELP berth_syscalls_total System calls made by the container's processes (eBPF).\n# TYPE berth_syscalls_total counter\n"
        var latency = "# HELP berth_syscall_latency_seconds System call latency of the container's processes (eBPF, log2 buckets).\n# TYPE berth_syscall_latency_seconds histogram\n"
        var runq = "# HELP berth_runqueue_latency_seconds Time the container's tasks waited to run (eBPF, log2 buckets).\n# TYPE berth_runqueue_latency_seconds histogram\n"
        func histogram(_ name: String, _ h: Histogram, total: UInt64, _ l: String) -> String {
            var out = ""
            var cumulative: UInt64 = 0
            for (i, n) in h.buckets.enumerated() {
                cumulative += n
                let le = Double(UInt64(1) << UInt64(i + 1)) / 1e9
                out += "\(name)_bucket{\(l),le=\"\(le)\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(l),le=\"+Inf\"} \(cumulative)\n\(name)_sum{\(l)} \(Double(total) / 1e9)\n\(name)_count{\(l)} \(cumulative)\n"
            return out
        }
        for (id, l) in labels {
            guard let s = snapshot(id) else { continue }
            calls += "berth_syscalls_total{\(l)} \(s.totalSyscalls)\n"
            latency += histogram("berth_syscall_latency_seconds", s.syscallLatency, total: s.syscalls.reduce(0) { $0 + $1.totalNanoseconds }, l)
            if probes.probes.contains(.runq) { runq += histogram("berth_runqueue_latency_seconds", s.runQueue, total: s.runQueueTotalNanoseconds, l) }
        }
        return calls + latency + (probes.probes.contains(.runq) ? runq : "")
    }
}
