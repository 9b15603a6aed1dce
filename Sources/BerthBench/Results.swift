#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthSys

/// results.json: versioned, so reports from different commits can be compared
/// (the schema is documented in Benchmarks/README.md). Every scenario is
/// optional: `--only` runs a subset.
public struct BenchResults: Codable, Sendable {
    public static let schema = "berth-bench-results/2"
    public var schema: String = BenchResults.schema
    public var started: String
    public var profile: String
    public var environment: BenchEnvironment
    public var startup: StartupResult?
    public var syscalls: SyscallResult?
    public var quota: QuotaResult?
    public var density: DensityResult?
    public var images: ImageResult?
    public var network: NetworkResult?
    public var engines: EngineResult?

    public init(started: String, profile: String, environment: BenchEnvironment) {
        self.started = started; self.profile = profile; self.environment = environment
    }

    /// Reads a results.json (a directory holding one, or the file itself).
    public static func read(_ path: String) throws -> BenchResults {
        let file = Files.isDirectory(path) ? path + "/results.json" : path
        let bytes = try Files.readBytes(file)
        let results: BenchResults
        do { results = try JSONDecoder().decode(BenchResults.self, from: Data(bytes)) } catch {
            throw BerthError("\(file): not a berth-bench results file: \(error)")
        }
        guard results.schema == schema else {
            throw BerthError("\(file): schema \"\(results.schema)\" is not \"\(schema)\" (regenerate it with this berth)")
        }
        return results
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// results.json, report.md and index.html into `dir`.
    public func write(to dir: String) throws {
        try Files.makeDirectories(dir)
        try Files.writeAtomically(try encoded(), to: dir + "/results.json", mode: 0o644)
        try writeReports(to: dir)
    }

    /// report.md and index.html only (what `berth report` regenerates).
    public func writeReports(to dir: String) throws {
        try Files.writeAtomically(Array(markdown().utf8), to: dir + "/report.md", mode: 0o644)
        try Files.writeAtomically(Array(html().utf8), to: dir + "/index.html", mode: 0o644)
    }
}

/// Fixed-point formatting without Foundation's locale machinery.
func f(_ v: Double, _ digits: Int = 2) -> String {
    guard v.isFinite else { return "–" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = String(r)
    if s.contains("e") { return String(Int(r)) }
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        if digits == 0 { s = String(s[..<dot]) }
    } else if digits > 0 { s += "." + String(repeating: "0", count: digits) }
    return s
}

/// The order runtimes appear in tables and charts.
func runtimeOrder(_ name: String) -> Int {
    ["host": 0, "berth": 1, "berth+limits": 2, "berth-netns": 3, "berth+seccomp": 4, "berth+userns": 5, "berth+overlay": 6,
     "crun": 7, "runc": 8][name] ?? 9
}

/// berth's phases in the order they happen.
let phaseOrder = ["config", "plan", "cgroups", "clone-to-ready", "cgroups-beside-child", "child:clone", "child:wait-go", "child:mounts-before-cgroups", "child:cgroup-wait",
                  "child:mounts", "child:pivot-and-paths", "child:process", "state", "total-until-start",
                  "start-to-exec", "exec-to-exit", "delete", "total-after-start"]
