#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthSys

/// results.json: versioned, so reports from different commits can be compared.
public struct BenchResults: Codable, Sendable {
    public static let schema = "berth-bench-results/1"
    public var schema: String = BenchResults.schema
    public var started: String
    public var profile: String
    public var environment: BenchEnvironment
    public var startup: StartupResult?

    public init(started: String, profile: String, environment: BenchEnvironment) {
        self.started = started; self.profile = profile; self.environment = environment
    }

    public func write(to dir: String) throws {
        try Files.makeDirectories(dir)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Files.writeAtomically(Array(try encoder.encode(self)), to: dir + "/results.json", mode: 0o644)
        try Files.writeAtomically(Array(markdown().utf8), to: dir + "/report.md", mode: 0o644)
    }

    /// report.md: what a person reads first.
    public func markdown() -> String {
        var md = "# berth benchmark report\n\n"
        md += "Run \(started), profile `\(profile)`, on \(environment.cpuModel) (\(environment.cpus) CPUs), "
        md += "kernel \(environment.kernel), cgroups \(environment.cgroupMode).\n\n"
        md += "Versions: " + environment.versions.sorted { $0.key < $1.key }.map { "\($0.key) `\($0.value)`" }.joined(separator: ", ") + "\n\n"
        if let s = startup {
            md += "## Startup: `run` of /bin/true\n\n"
            md += "\(s.iterations) interleaved iterations (after \(s.warmup) warm-up), shuffled order per iteration, wall time from spawn to exit.\n\n"
            md += "| runtime | median ms | p95 ms | p99 ms | min ms | failures |\n|---|---:|---:|---:|---:|---:|\n"
            for name in s.runtimes.keys.sorted(by: { order($0) < order($1) }) {
                let r = s.runtimes[name]!
                md += "| \(name) | \(f(r.summary.median)) | \(f(r.summary.p95)) | \(f(r.summary.p99)) | \(f(r.summary.min)) | \(r.failures) |\n"
            }
            if !s.ratios.isEmpty {
                md += "\n| ratio (paired, per iteration) | median | 95% CI |\n|---|---:|---|\n"
                for (k, r) in s.ratios.sorted(by: { $0.key < $1.key }) {
                    md += "| \(k) | \(f(r.value, 3)) | \(f(r.low, 3)) – \(f(r.high, 3)) |\n"
                }
            }
            if !s.berthPhases.isEmpty {
                md += "\nberth's own phases (parent side, median ms):\n\n| phase | ms |\n|---|---:|\n"
                for phase in ["config", "plan", "cgroups", "clone-to-ready", "child:clone", "child:cgroup-join", "child:wait-go",
                              "child:mounts", "child:pivot-and-paths", "child:process", "state", "total-until-start",
                              "start-to-exec", "exec-to-exit", "delete", "total-after-start"] {
                    if let v = s.berthPhases[phase] { md += "| \(phase) | \(f(v, 3)) |\n" }
                }
            }
            if !s.notes.isEmpty { md += "\nNotes:\n" + s.notes.map { "- \($0)\n" }.joined() }
        }
        return md
    }

    private func order(_ name: String) -> Int { ["host": 0, "berth": 1, "berth+limits": 2, "crun": 3, "runc": 4][name] ?? 9 }
}

func f(_ v: Double, _ digits: Int = 2) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else { s += "." + String(repeating: "0", count: digits) }
    return s
}
