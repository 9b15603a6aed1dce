/// Summary statistics of one series of measurements (nanoseconds or any unit).
public struct Summary: Codable, Sendable, Equatable {
    public var count: Int
    public var median: Double
    public var mean: Double
    public var min: Double
    public var max: Double
    public var p5: Double
    public var p95: Double
    public var p99: Double

    public init(_ samples: [Double]) {
        let sorted = samples.sorted()
        count = sorted.count
        median = Statistics.percentile(sorted, 50)
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        min = sorted.first ?? 0
        max = sorted.last ?? 0
        p5 = Statistics.percentile(sorted, 5)
        p95 = Statistics.percentile(sorted, 95)
        p99 = Statistics.percentile(sorted, 99)
    }
}

/// A ratio with a bootstrap confidence interval.
public struct Ratio: Codable, Sendable, Equatable {
    public var value: Double
    public var low: Double
    public var high: Double
}

public enum Statistics {
    /// Linear interpolation between closest ranks (the "R-7" definition numpy uses).
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = p / 100 * Double(sorted.count - 1)
        let lower = Int(rank.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        let fraction = rank - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }

    public static func median(_ samples: [Double]) -> Double { percentile(samples.sorted(), 50) }

    /// Median of the paired ratios a[i]/b[i] (pairs measured in the same
    /// iteration share the machine's state) with a percentile-bootstrap 95% CI.
    /// Deterministic: a fixed-seed generator, so a report can be regenerated.
    public static func pairedRatio(_ a: [Double], _ b: [Double], resamples: Int = 2000, seed: UInt64 = 0x5EED) -> Ratio {
        paired(a, b, resamples: resamples, seed: seed, combine: /)
    }

    /// The median of per-pair differences a[i] − b[i], with a bootstrap 95% CI.
    public static func pairedDifference(_ a: [Double], _ b: [Double], resamples: Int = 2000, seed: UInt64 = 0x5EED) -> Ratio {
        paired(a, b, resamples: resamples, seed: seed, combine: -)
    }

    static func paired(_ a: [Double], _ b: [Double], resamples: Int, seed: UInt64, combine: (Double, Double) -> Double) -> Ratio {
        let n = Swift.min(a.count, b.count)
        guard n > 0 else { return Ratio(value: 0, low: 0, high: 0) }
        let ratios = (0..<n).map { combine(a[$0], b[$0]) }
        var rng = SplitMix64(seed: seed)
        var medians: [Double] = []
        medians.reserveCapacity(resamples)
        var sample = [Double](repeating: 0, count: n)
        for _ in 0..<resamples {
            for i in 0..<n { sample[i] = ratios[Int(rng.next() % UInt64(n))] }
            medians.append(median(sample))
        }
        medians.sort()
        return Ratio(value: median(ratios), low: percentile(medians, 2.5), high: percentile(medians, 97.5))
    }
}

/// A small, seedable generator (SplitMix64), for reproducible resampling and orders.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Statistics {
    /// median(b)/median(a) for two independent runs, with a percentile-bootstrap
    /// 95% CI from resampling each run on its own (deterministic seed).
    public static func medianRatio(_ a: [Double], _ b: [Double], resamples: Int = 2000, seed: UInt64 = 0xD1FF) -> Ratio {
        guard !a.isEmpty, !b.isEmpty else { return Ratio(value: 0, low: 0, high: 0) }
        var rng = SplitMix64(seed: seed)
        var ratios: [Double] = []
        ratios.reserveCapacity(resamples)
        var sa = [Double](repeating: 0, count: a.count), sb = [Double](repeating: 0, count: b.count)
        for _ in 0..<resamples {
            for i in 0..<a.count { sa[i] = a[Int(rng.next() % UInt64(a.count))] }
            for i in 0..<b.count { sb[i] = b[Int(rng.next() % UInt64(b.count))] }
            ratios.append(median(sb) / median(sa))
        }
        ratios.sort()
        return Ratio(value: median(b) / median(a), low: percentile(ratios, 2.5), high: percentile(ratios, 97.5))
    }
}
