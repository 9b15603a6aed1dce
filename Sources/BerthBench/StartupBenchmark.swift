#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthCgroups
import BerthOCI
import BerthSys
import CBerthLaunch

/// Container startup: `run` of /bin/true from one busybox bundle, by every
/// runtime installed, against a plain exec of the same binary on the host.
/// Runs are interleaved in a shuffled order each iteration, so drift in the
/// machine's load hits every contender alike.
public struct StartupBenchmark {
    public struct Contender: Sendable {
        public var name: String
        public var binary: String
        /// A mount namespace to run in (crun on a hybrid host), or -1.
        public var mountNamespace: Int32 = -1
        /// The bundle it runs; nil = the shared one.
        public var bundle: String? = nil
    }

    public var iterations: Int
    public var warmup: Int
    public var berthBinary: String
    public var workDir: String
    public var seed: UInt64 = 42

    public init(iterations: Int, warmup: Int, berthBinary: String, workDir: String) {
        self.iterations = iterations; self.warmup = warmup; self.berthBinary = berthBinary; self.workDir = workDir
    }

    /// The peers found on this machine.
    public static func peers() -> [String: String] {
        var out: [String: String] = [:]
        for (name, candidates) in [("crun", ["/usr/bin/crun", "/usr/local/bin/crun"]), ("runc", ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"])] {
            if let path = candidates.first(where: { access($0, X_OK) == 0 }) { out[name] = path }
        }
        return out
    }

    public func run(progress: (String) -> Void) throws -> StartupResult {
        let bundle = workDir + "/bundle"
        try makeBundle(at: bundle)
        let cgroupParent = "berth-bench-\(getpid())"
        try writeConfig(bundle: bundle, cgroupParent: cgroupParent)
        // the same container with cpu, memory and pids limits: what limits cost at startup
        let limitsBundle = workDir + "/bundle-limits"
        try Files.makeDirectories(limitsBundle)
        try writeConfig(bundle: limitsBundle, cgroupParent: cgroupParent, rootfs: bundle + "/rootfs", limits: true)
        let timings = workDir + "/berth-timings.jsonl"
        unlink(timings)

        var contenders = [Contender(name: "berth", binary: berthBinary),
                          Contender(name: "berth+limits", binary: berthBinary, bundle: limitsBundle)]
        var notes: [String] = []
        let peers = Self.peers()
        if let crun = peers["crun"] {
            var c = Contender(name: "crun", binary: crun)
            let layout = try? CgroupLayout.detect()
            if layout?.mode == .hybrid, let v2 = layout?.v2 {
                let fd = berth_private_mntns_without(v2.mountPoint)
                if fd >= 0 {
                    c.mountNamespace = fd
                    notes.append("crun runs in a private mount namespace with \(v2.mountPoint) unmounted (it refuses hybrid cgroup hosts)")
                } else {
                    notes.append("crun skipped: could not hide \(v2.mountPoint): \(Errno.describe(-fd))")
                }
            }
            if !(layout?.mode == .hybrid && c.mountNamespace < 0) { contenders.append(c) }
        } else { notes.append("crun not installed") }
        if let runc = peers["runc"] { contenders.append(Contender(name: "runc", binary: runc)) } else { notes.append("runc not installed") }
        defer { for c in contenders where c.mountNamespace >= 0 { close(c.mountNamespace) } }

        let hostTrue = bundle + "/rootfs/bin/true"
        var samples: [String: [Double]] = [:]
        var failures: [String: Int] = [:]
        var rng = SplitMix64(seed: seed)
        let names = ["host"] + contenders.map(\.name)
        for iteration in 0..<(warmup + iterations) {
            var order = names
            order.shuffle(using: &rng)
            for name in order {
                // container ids allow letters, digits and _ . - only
                let id = "\(name.map { $0.isLetter || $0.isNumber ? $0 : "-" }.reduce("") { $0 + String($1) })-\(getpid())-\(iteration)"
                let elapsed: Double?
                if name == "host" {
                    elapsed = timed(path: hostTrue, args: ["true"], env: [], mntns: -1)
                } else {
                    let c = contenders.first { $0.name == name }!
                    let root = workDir + "/root-\(name.filter { $0.isLetter })"
                    let env = name == "berth" ? ["BERTH_TIMINGS_FILE=" + (iteration >= warmup ? timings : "/dev/null")] : []
                    elapsed = timed(path: c.binary, args: [c.binary, "--root", root, "run", "--bundle", c.bundle ?? bundle, id], env: env, mntns: c.mountNamespace)
                }
                guard iteration >= warmup else { continue }
                if let elapsed { samples[name, default: []].append(elapsed) } else { failures[name, default: 0] += 1 }
            }
            if iteration >= warmup && (iteration - warmup + 1) % Swift.max(1, iterations / 10) == 0 {
                progress("startup: \(iteration - warmup + 1)/\(iterations) iterations")
            }
        }
        removeCgroupParent(cgroupParent)
        for c in contenders { try? Files.removeTree(workDir + "/root-\(c.name.filter { $0.isLetter })") }

        var result = StartupResult(iterations: iterations, warmup: warmup, unit: "ms", notes: notes)
        for name in names {
            let s = samples[name] ?? []
            result.runtimes[name] = StartupResult.Series(summary: Summary(s), samples: s, failures: failures[name] ?? 0)
        }
        if let berth = samples["berth"] {
            for other in names where other != "berth" && other != "berth+limits" {
                if let o = samples[other], o.count == berth.count { result.ratios["berth/\(other)"] = Statistics.pairedRatio(berth, o) }
            }
            if let limited = samples["berth+limits"], limited.count == berth.count {
                result.ratios["berth+limits/berth"] = Statistics.pairedRatio(limited, berth)
            }
        }
        result.berthPhases = phaseMedians(timings)
        return result
    }

    /// Wall time of one spawn-to-exit, in milliseconds; nil when it failed.
    func timed(path: String, args: [String], env: [String], mntns: Int32) -> Double? {
        let argv = CStringArray(args), envp = CStringArray([defaultPathEnv] + env)
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let pid = berth_spawn(path, argv.pointers, envp.pointers, mntns, -1)
        guard pid > 0 else { return nil }
        var status: Int32 = 0
        berth_wait_pid(pid, &status)
        clock_gettime(CLOCK_MONOTONIC, &end)
        guard status == 0 else { return nil }
        return Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1_000_000
    }

    func makeBundle(at bundle: String) throws {
        try Files.makeDirectories(bundle + "/rootfs/bin")
        for dir in ["proc", "sys", "dev", "tmp"] { try Files.makeDirectories(bundle + "/rootfs/" + dir) }
        let busybox = try Files.readBytes("/bin/busybox")
        try Files.writeAtomically(busybox, to: bundle + "/rootfs/bin/busybox", mode: 0o755)
        for applet in ["true", "sh"] {
            unlink(bundle + "/rootfs/bin/" + applet)
            guard symlink("busybox", bundle + "/rootfs/bin/" + applet) == 0 else { throw BerthError.sys("symlink", path: applet) }
        }
    }

    /// One config every runtime accepts (crun 1.8 takes ociVersion up to 1.1).
    func writeConfig(bundle: String, cgroupParent: String, rootfs: String? = nil, limits: Bool = false) throws {
        var spec = Spec.defaultSpec(rootless: false)
        spec.ociVersion = "1.0.2"
        spec.process?.terminal = false
        spec.process?.args = ["/bin/true"]
        spec.linux?.cgroupsPath = cgroupParent + (limits ? "/startup-limits" : "/startup")
        if let rootfs { spec.root?.path = rootfs }
        if limits {
            var memory = Resources.Memory()
            memory.limit = 256 << 20
            var cpu = Resources.CPU()
            cpu.quota = 50_000
            cpu.period = 100_000
            spec.linux?.resources?.memory = memory
            spec.linux?.resources?.cpu = cpu
            spec.linux?.resources?.pids = Resources.Pids(limit: 128)
        }
        try Files.writeAtomically(spec.encoded(), to: bundle + "/config.json", mode: 0o644)
    }

    /// The runtimes remove their container's cgroup; the shared parent is ours to remove,
    /// wherever each runtime put it (runc and crun resolve relative paths from the root).
    func removeCgroupParent(_ name: String) {
        guard let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() else { return }
        for h in layout.v1 + (layout.v2.map { [$0] } ?? []) {
            for dir in [h.mountPoint + "/" + name, CgroupPath(name).directory(in: h, caller: caller)] where Files.isDirectory(dir) {
                removeEmptyTree(dir)
            }
        }
    }

    func removeEmptyTree(_ dir: String) {
        for child in (try? Files.list(dir)) ?? [] where Files.isDirectory(dir + "/" + child) { removeEmptyTree(dir + "/" + child) }
        rmdir(dir)
    }

    /// Median per phase from the JSON lines berth-runtime wrote.
    func phaseMedians(_ path: String) -> [String: Double] {
        guard let text = try? Files.read(path) else { return [:] }
        var phases: [String: [Double]] = [:]
        struct Line: Decodable { var command: String; var total_ns: Double; var phases_ns: [String: Double] }
        for line in text.split(separator: "\n") {
            guard let parsed = try? JSONDecoder().decode(Line.self, from: Data(line.utf8)) else { continue }
            for (k, v) in parsed.phases_ns { phases[k, default: []].append(v / 1_000_000) }
            let total = parsed.command == "run-after-start" ? "total-after-start" : "total-until-start"
            phases[total, default: []].append(parsed.total_ns / 1_000_000)
        }
        return phases.mapValues { Statistics.median($0) }
    }
}

public struct StartupResult: Codable, Sendable {
    public struct Series: Codable, Sendable {
        public var summary: Summary
        public var samples: [Double]
        public var failures: Int
    }
    public var iterations: Int
    public var warmup: Int
    public var unit: String
    public var notes: [String]
    public var runtimes: [String: Series] = [:]
    /// Paired per-iteration ratios (median, bootstrap 95% CI).
    public var ratios: [String: Ratio] = [:]
    /// Median milliseconds of berth's own phases (parent side), from BERTH_TIMINGS_FILE.
    public var berthPhases: [String: Double] = [:]

    public init(iterations: Int, warmup: Int, unit: String, notes: [String]) {
        self.iterations = iterations; self.warmup = warmup; self.unit = unit; self.notes = notes
    }
}
