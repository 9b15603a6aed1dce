#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
import BerthProbes
@testable import BerthBench
import BerthSys

/// A fixed, fully populated result: what the renderers and the schema are checked against.
func fixtureResults(scale: Double = 1) -> BenchResults {
    var rng = SplitMix64(seed: 3)
    func series(_ center: Double, _ n: Int = 40) -> [Double] {
        (0..<n).map { _ in center * scale * (0.95 + Double(rng.next() % 1000) / 10000) }
    }
    let env = BenchEnvironment(kernel: "6.1.0-test", cgroupMode: "hybrid", cgroupV1Controllers: ["cpu", "memory"], cpuModel: "Test CPU",
                               cpus: 2, mitigations: ["meltdown": "Not affected"], versions: ["berth": "berth-runtime 0.1.0", "crun": "crun 1.8"])
    var r = BenchResults(started: "2026-11-29T10:00:00Z", profile: "quick", environment: env)
    var s = StartupResult(iterations: 40, warmup: 4, unit: "ms", notes: ["a note"])
    for (name, center) in [("host", 1.0), ("berth", 16.0), ("berth+seccomp", 16.5), ("crun", 19.0), ("runc", 39.0)] {
        let samples = series(center)
        s.runtimes[name] = .init(summary: Summary(samples), samples: samples, failures: 0)
    }
    s.ratios["berth/crun"] = Statistics.pairedRatio(s.runtimes["berth"]!.samples, s.runtimes["crun"]!.samples)
    s.ratios["berth+seccomp/berth"] = Statistics.pairedRatio(s.runtimes["berth+seccomp"]!.samples, s.runtimes["berth"]!.samples)
    s.berthPhases = ["config": 1.4, "plan": 0.7, "child:mounts": 1.2, "total-until-start": 8.1]
    r.startup = s
    var y = SyscallResult(calls: 1000, rounds: 5, operations: ["getpid", "clock_gettime"], notes: [])
    y.variantOrder = ["host", "container"]
    for (variant, base) in [("host", 160.0), ("container", 170.0)] {
        y.nanoseconds[variant] = ["getpid": .init(summary: Summary(series(base, 5)), samples: series(base, 5)),
                                  "clock_gettime": .init(summary: Summary(series(27, 5)), samples: series(27, 5))]
    }
    y.ratios["container / host"] = ["getpid": Ratio(value: 1.06, low: 1.01, high: 1.1)]
    y.differences = ["host + probes − host": ["getpid": Ratio(value: 101.5, low: 90, high: 110)],
                     "container + probes − container": ["getpid": Ratio(value: 300, low: 280, high: 320)]]
    y.probeSelfCost = [ProgramCost(program: "berth_sys_enter", runTimeNanoseconds: 5_000_000, runCount: 50_000)]
    r.syscalls = y
    var q = QuotaResult()
    q.cpu = [.init(requested: 0.5, achieved: 0.51, periods: 20, throttledPeriods: 19), .init(requested: 1, achieved: 1.02, periods: 20, throttledPeriods: 18)]
    q.memory = [.init(limitMiB: 32, largestAllocationMiB: 31, exitCode: 137, oomKills: 1, peakBytes: 32 << 20)]
    q.pids = [.init(limit: 8, processes: 8, firstError: "EAGAIN")]
    q.shares = .init(shares: [256, 768], cpuSeconds: [0.5, 1.5], achievedFraction: 0.25, expectedFraction: 0.25)
    r.quota = q
    var d = DensityResult()
    d.points = [.init(containers: 1, started: 1, totalMilliseconds: 12, perContainer: Summary([12]), memoryPerContainerBytes: 1_048_576,
                      chargedPerContainerBytes: 400_000, teardownMilliseconds: 10),
                .init(containers: 10, started: 10, totalMilliseconds: 80, perContainer: Summary(series(60, 10)), memoryPerContainerBytes: 1_048_576,
                      chargedPerContainerBytes: 420_000, teardownMilliseconds: 50)]
    r.density = d
    return r
}

@Suite("benchmark reports: schema, renderers, diff")
struct ReportTests {
    @Test("results.json round-trips through its versioned schema")
    func roundTrip() throws {
        let r = fixtureResults()
        let bytes = try r.encoded()
        let back = try JSONDecoder().decode(BenchResults.self, from: Data(bytes))
        #expect(back.schema == "berth-bench-results/2")
        #expect(try back.encoded() == bytes)
        #expect(back.startup?.runtimes["crun"]?.samples.count == 40)
        #expect(back.quota?.memory.first?.oomKills == 1)
    }

    @Test("a results file of another schema is refused with a message naming the file")
    func otherSchema() throws {
        var r = fixtureResults()
        r.schema = "berth-bench-results/1"
        let dir = "/tmp/berth-report-test-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        defer { try? Files.removeTree(dir) }
        try Files.writeAtomically(try r.encoded(), to: dir + "/results.json", mode: 0o644)
        #expect(throws: BerthError.self) { try BenchResults.read(dir) }
        do { _ = try BenchResults.read(dir) } catch { #expect("\(error)".contains(dir + "/results.json")) }
    }

    @Test("the HTML report holds one chart per view with the expected series, and no scripts")
    func html() {
        let html = fixtureResults().html()
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(!html.contains("<script"))
        #expect(html.components(separatedBy: "<svg").count - 1 >= 9)
        for needle in ["Startup time per runtime", ">berth+seccomp</text>", ">runc</text>", "berth/crun", "class=\"target\"",
                       "berth's own phases", "CPU quota: requested vs achieved", "class=\"ideal\"", "Memory limit vs largest allocation",
                       "Starting N containers at once", "cgroup-charged", ">getpid</text>", "CPU shares 256:768",
                       "What the eBPF probes add per call", "getpid · untracked host", "getpid · tracked container"] {
            #expect(html.contains(needle), "missing \(needle)")
        }
        // the box plot puts every sample on the chart
        #expect(html.components(separatedBy: "<circle").count - 1 >= 5 * 40)
    }

    @Test("the Markdown report has the targets, tables and notes")
    func markdown() {
        let md = fixtureResults().markdown()
        #expect(md.contains("## Targets"))
        #expect(md.contains("| startup: default seccomp (cache hit) costs little | berth+seccomp/berth | ≤ 1.10 |"))
        #expect(md.contains("| 0.50 | 0.510 | 2.0 % | 20 | 19 |"))
        #expect(md.contains("| 32 | 31 | 137 | 1 | 32.0 |"))
        #expect(md.contains("- a note"))
        // the probes' targets are differences in ns, not ratios
        #expect(md.contains("| getpid: probes attached, untracked host process | host + probes − host | ≤ 120.00 ns | 101.5 ns | 90.0 – 110.0 | met |"))
        #expect(md.contains("| container + probes − container | **not met** |") == false)
        #expect(md.contains("| getpid: probes attached, tracked container (counts + latency) | container + probes − container | ≤ 250.00 ns | 300.0 ns | 280.0 – 320.0 | **not met** |"))
        #expect(md.contains("| berth_sys_enter | 50000 | 100.0 | 5.000 |"))
    }

    @Test("diff: a run against itself has no regressions; a 50% slower run is a regression")
    func diff() {
        let same = ReportDiff(fixtureResults(), fixtureResults())
        #expect(!same.rows.isEmpty)
        #expect(same.regressions.isEmpty)
        let slower = ReportDiff(fixtureResults(), fixtureResults(scale: 1.5))
        #expect(slower.regressions.contains { $0.metric == "startup berth" })
        let faster = ReportDiff(fixtureResults(scale: 1.5), fixtureResults())
        #expect(faster.rows.contains { $0.metric == "startup crun" && $0.verdict == .improvement })
        #expect(slower.markdown(nameA: "a", nameB: "b").contains("**regression**"))
    }

    @Test("SVG axis ticks are round numbers covering the range")
    func ticks() {
        #expect(SVG.ticks(0, 10) == [0, 2, 4, 6, 8, 10])
        #expect(SVG.ticks(0, 1.2).first == 0)
        #expect(SVG.escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;")
    }
}
