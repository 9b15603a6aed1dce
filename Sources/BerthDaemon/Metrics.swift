#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthImage
import BerthSys

/// `GET /metrics`: per-container counters in Prometheus' text format, under cAdvisor's
/// metric names where cAdvisor has one, so existing dashboards and alerts read them.
extension DockerAPI {
    func metrics(_ c: HTTPConnection) {
        c.respond(200, Array(metricsText().utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    func metricsText() -> String {
        var families: [(name: String, type: String, help: String, samples: [String])] = []
        func family(_ name: String, _ type: String, _ help: String) -> Int {
            families.append((name, type, help, []))
            return families.count - 1
        }
        let cpuTotal = family("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.")
        let cpuUser = family("container_cpu_user_seconds_total", "counter", "Cumulative user cpu time consumed in seconds.")
        let cpuSystem = family("container_cpu_system_seconds_total", "counter", "Cumulative system cpu time consumed in seconds.")
        let periods = family("container_cpu_cfs_periods_total", "counter", "Number of elapsed enforcement period intervals.")
        let throttledPeriods = family("container_cpu_cfs_throttled_periods_total", "counter", "Number of throttled period intervals.")
        let throttledSeconds = family("container_cpu_cfs_throttled_seconds_total", "counter", "Total time duration the container has been throttled.")
        let memUsage = family("container_memory_usage_bytes", "gauge", "Current memory usage in bytes, including all memory regardless of when it was accessed.")
        let workingSet = family("container_memory_working_set_bytes", "gauge", "Current working set in bytes.")
        let rss = family("container_memory_rss", "gauge", "Size of RSS in bytes.")
        let cache = family("container_memory_cache", "gauge", "Number of bytes of page cache memory.")
        let swap = family("container_memory_swap", "gauge", "Container swap usage in bytes.")
        let failcnt = family("container_memory_failcnt", "counter", "Number of memory usage hits limits.")
        let maxUsage = family("container_memory_max_usage_bytes", "gauge", "Maximum memory usage recorded in bytes.")
        let limit = family("container_spec_memory_limit_bytes", "gauge", "Memory limit for the container.")
        let oom = family("container_oom_events_total", "counter", "Count of out of memory events observed for the container.")
        let processes = family("container_processes", "gauge", "Number of processes running inside the container.")
        let threads = family("container_threads", "gauge", "Number of threads running inside the container.")
        let threadsMax = family("container_threads_max", "gauge", "Maximum number of threads allowed inside the container, 0 for unlimited.")
        let reads = family("container_fs_reads_bytes_total", "counter", "Cumulative count of bytes read.")
        let writes = family("container_fs_writes_bytes_total", "counter", "Cumulative count of bytes written.")
        let rxBytes = family("container_network_receive_bytes_total", "counter", "Cumulative count of bytes received.")
        let txBytes = family("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted.")
        let rxPackets = family("container_network_receive_packets_total", "counter", "Cumulative count of packets received.")
        let txPackets = family("container_network_transmit_packets_total", "counter", "Cumulative count of packets transmitted.")
        let rxErrors = family("container_network_receive_errors_total", "counter", "Cumulative count of errors encountered while receiving.")
        let txErrors = family("container_network_transmit_errors_total", "counter", "Cumulative count of errors encountered while transmitting.")
        let rxDropped = family("container_network_receive_packets_dropped_total", "counter", "Cumulative count of packets dropped while receiving.")
        let txDropped = family("container_network_transmit_packets_dropped_total", "counter", "Cumulative count of packets dropped while transmitting.")
        let startTime = family("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds.")
        let states = family("berth_containers", "gauge", "Containers known to the engine, by state.")

        func escape(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        func number(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
        var labelled: [(id: String, labels: String)] = []
        let all = engine.containers()
        var counts: [String: Int] = ["created": 0, "running": 0, "paused": 0, "exited": 0]
        for container in all {
            let status = engine.statusText(container)
            counts[status.hasSuffix("(Paused)") ? "paused" : container.status.rawValue, default: 0] += 1
            guard container.status == .running, let s = try? engine.stats(container.id) else { continue }
            let labels = "id=\"/\(escape(container.id))\",name=\"\(escape(container.name))\",image=\"\(escape(container.imageName))\""
            labelled.append((container.id, labels))
            func add(_ f: Int, _ v: Double, _ extra: String = "") {
                families[f].samples.append("\(families[f].name){\(labels)\(extra)} \(number(v))")
            }
            add(cpuTotal, Double(s.cpu_stats.cpu_usage.total_usage) / 1e9)
            add(cpuUser, Double(s.cpu_stats.cpu_usage.usage_in_usermode) / 1e9)
            add(cpuSystem, Double(s.cpu_stats.cpu_usage.usage_in_kernelmode) / 1e9)
            add(periods, Double(s.cpu_stats.throttling_data.periods))
            add(throttledPeriods, Double(s.cpu_stats.throttling_data.throttled_periods))
            add(throttledSeconds, Double(s.cpu_stats.throttling_data.throttled_time) / 1e9)
            let m = s.memory_stats
            add(memUsage, Double(m.usage))
            add(workingSet, Double(s.workingSet))
            add(rss, Double(m.stats["total_rss"] ?? m.stats["anon"] ?? m.stats["rss"] ?? 0))
            add(cache, Double(m.stats["total_cache"] ?? m.stats["file"] ?? m.stats["cache"] ?? 0))
            add(swap, Double(m.stats["total_swap"] ?? m.stats["swap"] ?? 0))
            add(failcnt, Double(m.failcnt ?? 0))
            add(maxUsage, Double(m.max_usage ?? 0))
            let machine = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
            add(limit, m.limit >= machine ? 0 : Double(m.limit))
            add(oom, Double(s.oom_kills))
            add(processes, Double((try? engine.runtime.processes(id: container.id))?.count ?? 0))
            add(threads, Double(s.pids_stats.current))
            add(threadsMax, Double(s.pids_stats.limit ?? 0))
            var perDevice: [String: (UInt64, UInt64)] = [:]
            for e in s.blkio_stats.io_service_bytes_recursive ?? [] {
                let key = "\(e.major):\(e.minor)"
                if e.op.lowercased() == "read" { perDevice[key, default: (0, 0)].0 += e.value }
                if e.op.lowercased() == "write" { perDevice[key, default: (0, 0)].1 += e.value }
            }
            for (device, rw) in perDevice.sorted(by: { $0.key < $1.key }) {
                add(reads, Double(rw.0), ",device=\"\(device)\"")
                add(writes, Double(rw.1), ",device=\"\(device)\"")
            }
            for (name, n) in (s.networks ?? [:]).sorted(by: { $0.key < $1.key }) {
                let i = ",interface=\"\(escape(name))\""
                add(rxBytes, Double(n.rx_bytes), i); add(txBytes, Double(n.tx_bytes), i)
                add(rxPackets, Double(n.rx_packets), i); add(txPackets, Double(n.tx_packets), i)
                add(rxErrors, Double(n.rx_errors), i); add(txErrors, Double(n.tx_errors), i)
                add(rxDropped, Double(n.rx_dropped), i); add(txDropped, Double(n.tx_dropped), i)
            }
            if let started = container.started.flatMap(Timestamp.parse) { add(startTime, started.rounded()) }
        }
        for (state, n) in counts.sorted(by: { $0.key < $1.key }) { families[states].samples.append("berth_containers{state=\"\(state)\"} \(n)") }
        var text = ""
        for f in families {
            text += "# HELP \(f.name) \(f.help)\n# TYPE \(f.name) \(f.type)\n"
            for sample in f.samples { text += sample + "\n" }
        }
        return text + (probes?.metrics(labelled) ?? "")
    }
}
