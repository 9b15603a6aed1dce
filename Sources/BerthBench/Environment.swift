#if canImport(Glibc)
import Glibc
#endif
import BerthCgroups
import BerthSys
import CBerthLaunch

/// What a result was measured on: every report carries it.
public struct BenchEnvironment: Codable, Sendable {
    public var kernel: String
    public var cgroupMode: String
    public var cgroupV1Controllers: [String]
    public var cpuModel: String
    public var cpus: Int
    public var mitigations: [String: String]
    public var versions: [String: String]

    public static func capture(berthBinary: String, peers: [String: String]) -> BenchEnvironment {
        var u = utsname()
        uname(&u)
        let kernel = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let layout = try? CgroupLayout.detect()
        let cpuinfo = (try? Files.read("/proc/cpuinfo")) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters() } ?? "unknown"
        var mitigations: [String: String] = [:]
        let dir = "/sys/devices/system/cpu/vulnerabilities"
        for name in (try? Files.list(dir)) ?? [] {
            mitigations[name] = ((try? Files.read(dir + "/" + name)) ?? "").trimmingCharacters()
        }
        var versions: [String: String] = ["berth": firstLine(captureOutput(berthBinary, ["--version"]))]
        for (name, path) in peers { versions[name] = firstLine(captureOutput(path, ["--version"])) }
        let commit = captureOutput("/usr/bin/git", ["-C", Files.currentDirectory(), "rev-parse", "--short", "HEAD"]).trimmingCharacters()
        if !commit.isEmpty && !commit.contains("fatal") { versions["berth-commit"] = commit }
        for lib in ["libseccomp2", "libbpf1"] {
            let v = captureOutput("/usr/bin/dpkg-query", ["-W", "-f=${Version}", lib]).trimmingCharacters()
            if !v.isEmpty && !v.contains("no packages") { versions[lib] = v }
        }
        return BenchEnvironment(kernel: kernel, cgroupMode: layout?.mode.rawValue ?? "unknown",
                                cgroupV1Controllers: layout?.controllerHierarchies.flatMap(\.controllers) ?? [],
                                cpuModel: model, cpus: sysconf(Int32(_SC_NPROCESSORS_ONLN)), mitigations: mitigations, versions: versions)
    }

    static func firstLine(_ s: String) -> String { String(s.split(separator: "\n").first ?? "").trimmingCharacters() }
}

/// Runs a command and returns what it printed (stdout and stderr), "" when it cannot run.
public func captureOutput(_ path: String, _ args: [String]) -> String {
    guard access(path, X_OK) == 0 else { return "" }
    return Spawned.run(path, [path] + args).output
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
