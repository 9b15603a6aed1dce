#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BerthBench
import BerthSys
import CBerthLaunch

/// `berth-bench`: what `make bench` runs. Writes reports/<timestamp>/{results.json, report.md, index.html}.
@main
struct BerthBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-bench",
        abstract: "Measure what containers cost against the host and other runtimes, and whether limits hold.")

    static let scenarios = ["startup", "syscalls", "quota", "density", "images", "network", "engines"]

    @Option(help: "quick (the default, a few minutes), full, or smoke (CI: every scenario, a few iterations).") var profile: String = "quick"
    @Option(help: "Comma-separated scenarios to run (\(scenarios.joined(separator: ", "))); default all.") var only: String?
    @Option(help: "Startup iterations per contender (overrides the profile).") var iterations: Int?
    @Option(help: "The berth-runtime binary to measure.") var runtime: String?
    @Option(help: "The static workload helper (berth-test-init).") var helper: String?
    @Option(help: "Output directory (default reports/<timestamp>).") var output: String?

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("berth-bench runs containers: run it as root") }
        guard var chosen = BenchProfile.named(profile) else { throw ValidationError("--profile \(profile): use quick, full or smoke") }
        if let iterations { chosen.startupIterations = iterations }
        let selected = only.map { $0.split(separator: ",").map(String.init) } ?? Self.scenarios
        for s in selected where !Self.scenarios.contains(s) {
            throw ValidationError("--only: unknown scenario \"\(s)\" (scenarios: \(Self.scenarios.joined(separator: ", ")))")
        }
        let here = Files.currentDirectory()
        let binary = runtime ?? here + "/.build/release/berth-runtime"
        let helperPath = helper ?? here + "/.build/helpers/berth-test-init"
        guard access(binary, X_OK) == 0 else { throw ValidationError("no berth-runtime at \(binary): run make build") }
        guard access(helperPath, X_OK) == 0 else { throw ValidationError("no helper at \(helperPath): run make helper") }
        // detached containers are orphaned to us, not to a PID 1 that may not reap
        _ = berth_set_child_subreaper(1)
        var template = Array("/tmp/berth-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BerthError.sys("mkdtemp") }
        // readable by the user-namespace variants' mapped root (uid 100000)
        chmod(made, 0o755)
        let context = BenchContext(berthBinary: binary, helper: helperPath, workDir: String(cString: made), profile: chosen)
        defer {
            context.removeCgroupParent()
            try? Files.removeTree(context.workDir)
        }
        try context.makeRootfs()
        try context.makeCgroupParent()

        let started = timestamp()
        let progress = Progress()
        var results = BenchResults(started: started, profile: chosen.name,
                                   environment: .capture(berthBinary: binary, peers: StartupBenchmark.peers()))
        if selected.contains("startup") { results.startup = try StartupBenchmark(context: context).run(progress: progress) }
        if selected.contains("syscalls") { results.syscalls = try SyscallBenchmark(context: context).run(progress: progress) }
        if selected.contains("quota") { results.quota = try QuotaBenchmark(context: context).run(progress: progress) }
        if selected.contains("density") { results.density = try DensityBenchmark(context: context).run(progress: progress) }
        if selected.contains("images") { results.images = try ImageBenchmark(context: context).run(progress: progress) }
        if selected.contains("network") { results.network = try NetworkBenchmark(context: context).run(progress: progress) }
        if selected.contains("engines") { results.engines = try EngineBenchmark(context: context).run(progress: progress) }
        let dir = output ?? here + "/reports/" + started.replacingColons()
        try results.write(to: dir)
        print(results.markdown())
        print("wrote \(dir)/results.json, report.md and index.html")
    }

    func timestamp() -> String {
        var t = time(nil)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tmv.tm_year + 1900)-\(p(tmv.tm_mon + 1))-\(p(tmv.tm_mday))T\(p(tmv.tm_hour)):\(p(tmv.tm_min)):\(p(tmv.tm_sec))Z"
    }
}

extension String {
    func replacingColons() -> String { String(map { $0 == ":" ? "-" : $0 }) }
}
