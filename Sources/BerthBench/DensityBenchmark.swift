#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys

/// Many containers at once: N detached `run`s started concurrently, how long
/// each took and all took, what memory the machine lost per container while
/// they ran, and how long tearing them down took. Run for growing N.
public struct DensityBenchmark {
    public var context: BenchContext
    public init(context: BenchContext) { self.context = context }

    public func run(progress: Progress) throws -> DensityResult {
        var result = DensityResult()
        // one bundle per container: each gets its own cgroup, as with any engine
        var bundles: [String] = []
        for i in 0..<(context.profile.densityCounts.max() ?? 0) {
            bundles.append(try context.bundle("density-\(i)", context.spec(name: "density/\(i)", args: ["/bin/sleep", "600"])))
        }
        progress.begin("density", total: context.profile.densityCounts.count)
        for n in context.profile.densityCounts {
            let ids = (0..<n).map { "density-\(getpid())-\(n)-\($0)" }
            let before = Self.usedMemoryBytes(), chargedBefore = context.chargedMemoryBytes()
            let started = context.concurrently(ids.enumerated().map { ["run", "--detach", "--bundle", bundles[$0.offset], $0.element] })
            // the kernel folds per-CPU memory counters into /proc/meminfo about once a second
            usleep(1_500_000)
            let after = Self.usedMemoryBytes(), chargedAfter = context.chargedMemoryBytes()
            let stopped = context.concurrently(ids.map { ["delete", "--force", $0] })
            BenchContext.reapOrphans()
            let ok = started.perCommand.filter(\.succeeded)
            var point = DensityResult.Point(containers: n, started: ok.count, totalMilliseconds: started.totalMilliseconds,
                                            perContainer: Summary(ok.map(\.elapsed)),
                                            memoryPerContainerBytes: ok.isEmpty ? 0 : Double(Int64(after) - Int64(before)) / Double(ok.count),
                                            chargedPerContainerBytes: ok.isEmpty ? 0 : Double(Int64(chargedAfter) - Int64(chargedBefore)) / Double(ok.count),
                                            teardownMilliseconds: stopped.totalMilliseconds)
            if let failed = started.perCommand.first(where: { !$0.succeeded }) {
                point.firstError = BenchEnvironment.firstLine(failed.output)
            }
            result.points.append(point)
            progress.step()
        }
        progress.end()
        return result
    }

    /// Memory in use by everything: MemTotal − MemFree − Buffers − Cached − SReclaimable.
    static func usedMemoryBytes() -> UInt64 {
        let text = (try? Files.read("/proc/meminfo")) ?? ""
        var kb: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, let v = UInt64(parts[1]) { kb[String(parts[0].dropLast())] = v }
        }
        let used = (kb["MemTotal"] ?? 0) &- (kb["MemFree"] ?? 0) &- (kb["Buffers"] ?? 0) &- (kb["Cached"] ?? 0) &- (kb["SReclaimable"] ?? 0)
        return used * 1024
    }
}

public struct DensityResult: Codable, Sendable {
    public struct Point: Codable, Sendable {
        public var containers: Int
        public var started: Int
        /// From the first spawn to the last `run --detach` returning.
        public var totalMilliseconds: Double
        /// Each `run --detach`'s own wall time.
        public var perContainer: Summary
        /// Machine memory in use while they ran, minus before, per container.
        public var memoryPerContainerBytes: Double
        /// What the containers' memory cgroups were charged, per container.
        public var chargedPerContainerBytes: Double
        public var teardownMilliseconds: Double
        public var firstError: String?
    }
    public var points: [Point] = []
    public init() {}
}
