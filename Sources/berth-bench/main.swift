#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BerthBench
import BerthSys

/// `berth-bench`: what `make bench` runs. Writes reports/<timestamp>/{results.json, report.md}.
@main
struct BerthBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "berth-bench", abstract: "Measure container startup against the host and other runtimes.")

    @Option(help: "quick (the default) or full.") var profile: String = "quick"
    @Option(help: "Iterations per contender (overrides the profile).") var iterations: Int?
    @Option(help: "The berth-runtime binary to measure.") var runtime: String?
    @Option(help: "Output directory (default reports/<timestamp>).") var output: String?

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("berth-bench runs containers: run it as root") }
        let count = iterations ?? (profile == "full" ? 300 : 60)
        let here = Files.currentDirectory()
        let binary = runtime ?? here + "/.build/release/berth-runtime"
        guard access(binary, X_OK) == 0 else { throw ValidationError("no berth-runtime at \(binary): run make build") }
        var template = Array("/tmp/berth-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BerthError.sys("mkdtemp") }
        let work = String(cString: made)
        defer { try? Files.removeTree(work) }

        let started = timestamp()
        let peers = StartupBenchmark.peers()
        var results = BenchResults(started: started, profile: profile, environment: .capture(berthBinary: binary, peers: peers))
        let bench = StartupBenchmark(iterations: count, warmup: Swift.max(3, count / 10), berthBinary: binary, workDir: work)
        results.startup = try bench.run { print($0) }
        let dir = output ?? here + "/reports/" + started.replacingColons()
        try results.write(to: dir)
        print(results.markdown())
        print("wrote \(dir)/results.json and \(dir)/report.md")
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
