import Testing
@testable import BerthBench

@Suite("benchmark statistics on known samples")
struct StatisticsTests {
    @Test("percentiles interpolate between ranks like numpy's default")
    func percentiles() {
        let sorted: [Double] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        #expect(Statistics.percentile(sorted, 50) == 5.5)
        #expect(Statistics.percentile(sorted, 0) == 1)
        #expect(Statistics.percentile(sorted, 100) == 10)
        #expect(abs(Statistics.percentile(sorted, 95) - 9.55) < 1e-9)
    }

    @Test("summary of a series")
    func summary() {
        let s = Summary([3, 1, 2, 5, 4])
        #expect(s.median == 3)
        #expect(s.mean == 3)
        #expect(s.min == 1 && s.max == 5)
        #expect(s.count == 5)
    }

    @Test("a paired ratio of a constant factor has that value and a tight interval")
    func constantRatio() {
        let b: [Double] = (1...50).map { Double($0) }
        let a = b.map { $0 * 0.5 }
        let r = Statistics.pairedRatio(a, b)
        #expect(r.value == 0.5)
        #expect(r.low == 0.5 && r.high == 0.5)
    }

    @Test("a paired difference is the median of per-pair differences, with its interval")
    func pairedDifference() {
        let b: [Double] = (1...40).map { 150 + Double($0 % 7) }
        let a = b.map { $0 + 120 }
        let d = Statistics.pairedDifference(a, b)
        #expect(d.value == 120 && d.low == 120 && d.high == 120)
        #expect(Statistics.pairedDifference([], []) == Ratio(value: 0, low: 0, high: 0))
    }

    @Test("the bootstrap interval contains the median ratio and is reproducible")
    func bootstrap() {
        var rng = SplitMix64(seed: 7)
        let b = (0..<100).map { _ in 10 + Double(rng.next() % 1000) / 100 }
        let a = b.map { $0 * (0.4 + Double(rng.next() % 200) / 1000) }
        let r1 = Statistics.pairedRatio(a, b)
        let r2 = Statistics.pairedRatio(a, b)
        #expect(r1 == r2)
        #expect(r1.low <= r1.value && r1.value <= r1.high)
        #expect(r1.low > 0.4 && r1.high < 0.6)
    }

    @Test("the report names every runtime and ratio")
    func markdown() {
        var results = BenchResults(started: "2026-01-01T00:00:00Z", profile: "quick",
                                   environment: BenchEnvironment(kernel: "6.18", cgroupMode: "hybrid", cgroupV1Controllers: ["cpu"],
                                                                 cpuModel: "cpu", cpus: 2, mitigations: [:], versions: ["berth": "x"]))
        var startup = StartupResult(iterations: 2, warmup: 1, unit: "ms", notes: ["crun hidden"])
        startup.runtimes["berth"] = .init(summary: Summary([5, 7]), samples: [5, 7], failures: 0)
        startup.runtimes["crun"] = .init(summary: Summary([10, 14]), samples: [10, 14], failures: 0)
        startup.ratios["berth/crun"] = Statistics.pairedRatio([5, 7], [10, 14])
        results.startup = startup
        let md = results.markdown()
        #expect(md.contains("| berth | 6.00 |"))
        #expect(md.contains("| crun | 12.00 |"))
        #expect(md.contains("| berth/crun | 0.500 |"))
        #expect(md.contains("- crun hidden"))
    }
}
