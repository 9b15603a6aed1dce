import Benchmark
import BerthBench
import BerthCgroups
import BerthOCI
import BerthRuntime
import BerthSys
#if canImport(Glibc)
import Glibc
#endif

/// The in-process parts of a container start and of a report, timed by
/// ordo-one/benchmark (`swift package benchmark`): what berth-bench's end-to-end
/// numbers are made of, without a kernel in the way.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .throughput],
                                           maxDuration: .seconds(2), maxIterations: 100_000)

    // A Docker-sized config.json: the default spec, with the default seccomp profile.
    var spec = Spec.defaultSpec(rootless: false)
    spec.root = Root(path: "/", readonly: true)  // compiled, never mounted: any directory will do
    spec.process?.args = ["/bin/true"]
    spec.linux?.resources = Resources()
    let config = spec.encoded()

    Benchmark("config.json decode and validate") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try Spec.decode(config, source: "config.json"))
        }
    }

    Benchmark("launch plan compile") { benchmark in
        let compiler = PlanCompiler(bundle: "/bundle")
        for _ in benchmark.scaledIterations {
            blackHole(try compiler.compile(spec))
        }
    }

    Benchmark("cgroup create + apply limits + destroy (fake cgroupfs)") { benchmark in
        let fake = try ScratchCgroupfs.make()
        try fake.emptyCpusetFiles(under: ["bench"])
        defer { try? Files.removeTree(fake.root) }
        var resources = Resources()
        var memory = Resources.Memory()
        memory.limit = 64 << 20
        resources.memory = memory
        var cpu = Resources.CPU()
        cpu.quota = 50_000
        cpu.period = 100_000
        resources.cpu = cpu
        var n = 0
        for _ in benchmark.scaledIterations {
            n += 1
            let manager = FSCgroupManager(layout: fake.layout, path: CgroupPath("bench/c\(n)"), caller: ProcessCgroups(paths: [:]))
            try fake.populate("bench/c\(n)")  // what the kernel would create
            try manager.create()
            try manager.apply(resources, warn: { _ in })
            for dir in manager.directories { try Files.removeTree(dir) }
        }
    }

    // The checked-in example run: what `berth report` renders.
    if let results = try? BenchResults.read("reports/example") {
        Benchmark("report.md render") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(results.markdown()) }
        }
        Benchmark("index.html render (SVG charts)") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(results.html()) }
        }
    }
}
