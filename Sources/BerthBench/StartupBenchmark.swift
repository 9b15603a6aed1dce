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
import BerthSecurity
import BerthSys
import BerthProbes
import BerthRuntime
import CBerthLaunch

/// Container startup: `run` of /bin/true by every runtime installed and by
/// berth with one factor changed at a time, against a plain exec of the same
/// binary on the host. Interleaved in a shuffled order each iteration, so
/// drift in the machine's load hits every contender alike.
public struct StartupBenchmark {
    public struct Contender: Sendable {
        public var name: String
        public var binary: String
        public var bundle: String
        /// A mount namespace to run in (crun on a hybrid host), or -1.
        public var mountNamespace: Int32 = -1
        /// What differs from plain `berth` (empty for the baseline and the peers).
        public var variantOf: String? = nil
    }

    public var context: BenchContext
    public var iterations: Int
    public var warmup: Int
    public var seed: UInt64 = 42

    public init(context: BenchContext) {
        self.context = context
        iterations = context.profile.startupIterations
        warmup = Swift.max(3, iterations / 10)
    }

    /// The peers found on this machine.
    public static func peers() -> [String: String] {
        var out: [String: String] = [:]
        for (name, candidates) in [("crun", ["/usr/bin/crun", "/usr/local/bin/crun"]), ("runc", ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"])] {
            if let path = candidates.first(where: { access($0, X_OK) == 0 }) { out[name] = path }
        }
        return out
    }

    /// berth's variants: one factor each, all else as in the baseline.
    func variants() -> [(name: String, adjust: (inout Spec) -> Void)] {
        [
            ("berth+limits", { spec in
                var r = spec.linux?.resources ?? Resources()
                var memory = Resources.Memory(); memory.limit = 256 << 20
                var cpu = Resources.CPU(); cpu.quota = 50_000; cpu.period = 100_000
                r.memory = memory; r.cpu = cpu; r.pids = Resources.Pids(limit: 128)
                spec.linux?.resources = r
            }),
            ("berth-netns", { spec in spec.linux?.namespaces?.removeAll { $0.type == "network" } }),
            ("berth+seccomp", SpecVariant.defaultSeccomp),
            ("berth+userns", SpecVariant.userNamespace),
        ]
    }

    public func run(progress: Progress) throws -> StartupResult {
        let base = context.spec(name: "startup", args: ["/bin/true"])
        let bundle = try context.bundle("startup", base)
        let timings = context.workDir + "/berth-timings.jsonl"
        unlink(timings)

        var contenders = [Contender(name: "berth", binary: context.berthBinary, bundle: bundle)]
        for v in variants() {
            let spec = context.spec(name: v.name.filter { $0.isLetter }, args: ["/bin/true"], adjust: v.adjust)
            contenders.append(Contender(name: v.name, binary: context.berthBinary, bundle: try context.bundle(v.name, spec), variantOf: "berth"))
        }
        var notes: [String] = []
        let overlay = OverlayRootfs(lower: context.rootfs, under: context.workDir + "/overlay")
        if let merged = overlay.mount() {
            let spec = context.spec(name: "overlay", args: ["/bin/true"]) { $0.root?.path = merged }
            contenders.append(Contender(name: "berth+overlay", binary: context.berthBinary, bundle: try context.bundle("berth+overlay", spec), variantOf: "berth"))
        } else { notes.append("berth+overlay skipped: overlayfs could not be mounted here") }
        defer { overlay.unmount() }

        let peers = Self.peers()
        if let crun = peers["crun"] {
            var c = Contender(name: "crun", binary: crun, bundle: bundle)
            let layout = try? CgroupLayout.detect()
            if layout?.mode == .hybrid, let v2 = layout?.v2 {
                let fd = berth_private_mntns_without(v2.mountPoint)
                if fd >= 0 {
                    c.mountNamespace = fd
                    notes.append("crun runs in a private mount namespace with \(v2.mountPoint) unmounted (it refuses hybrid cgroup hosts)")
                    contenders.append(c)
                } else {
                    notes.append("crun skipped: could not hide \(v2.mountPoint): \(Errno.describe(-fd))")
                }
            } else { contenders.append(c) }
        } else { notes.append("crun not installed") }
        if let runc = peers["runc"] { contenders.append(Contender(name: "runc", binary: runc, bundle: bundle)) } else { notes.append("runc not installed") }
        defer { for c in contenders where c.mountNamespace >= 0 { close(c.mountNamespace) } }

        let hostTrue = context.rootfs + "/bin/true"
        var samples: [String: [Double]] = [:]
        var failures: [String: Int] = [:]
        var lastError: [String: String] = [:]
        var rng = SplitMix64(seed: seed)
        let names = ["host"] + contenders.map(\.name)
        progress.begin("startup", total: warmup + iterations)
        for iteration in 0..<(warmup + iterations) {
            var order = names
            order.shuffle(using: &rng)
            for name in order {
                // container ids allow letters, digits and _ . - only
                let id = "\(String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" }))-\(getpid())-\(iteration)"
                let result: Spawned
                if name == "host" {
                    result = Spawned.run(hostTrue, ["true"], capture: false)
                } else {
                    let c = contenders.first { $0.name == name }!
                    let root = context.workDir + "/root-\(name.filter { $0.isLetter })"
                    let env = name == "berth" ? ["BERTH_TIMINGS_FILE=" + (iteration >= warmup ? timings : "/dev/null")] : []
                    // output captured only when it failed before: the error is then worth a note
                    result = Spawned.run(c.binary, [c.binary, "--root", root, "run", "--bundle", c.bundle, id], env: env,
                                         mntns: c.mountNamespace, capture: failures[name] == nil && iteration == 0)
                    if !result.succeeded, !result.output.isEmpty { lastError[name] = BenchEnvironment.firstLine(result.output) }
                }
                guard iteration >= warmup else {
                    if !result.succeeded { failures[name, default: 0] += 1 }
                    continue
                }
                if result.succeeded { samples[name, default: []].append(result.elapsed) } else { failures[name, default: 0] += 1 }
            }
            progress.step()
        }
        progress.end()
        BenchContext.reapOrphans()
        for c in contenders { try? Files.removeTree(context.workDir + "/root-\(c.name.filter { $0.isLetter })") }
        for (name, error) in lastError.sorted(by: { $0.key < $1.key }) { notes.append("\(name) failed: \(error)") }

        var result = StartupResult(iterations: iterations, warmup: warmup, unit: "ms", notes: notes)
        for name in names {
            let s = samples[name] ?? []
            result.runtimes[name] = StartupResult.Series(summary: Summary(s), samples: s, failures: failures[name] ?? 0)
        }
        if let berth = samples["berth"] {
            for other in ["host", "crun", "runc"] {
                if let o = samples[other], o.count == berth.count { result.ratios["berth/\(other)"] = Statistics.pairedRatio(berth, o) }
            }
            for c in contenders where c.variantOf != nil {
                if let v = samples[c.name], v.count == berth.count { result.ratios["\(c.name)/berth"] = Statistics.pairedRatio(v, berth) }
            }
        }
        result.berthPhases = phaseMedians(timings)
        result.execCrossCheck = crossCheckExec(bundle: bundle, notes: &result.notes)
        return result
    }

    /// berth's own clock against the kernel's: in a few extra runs the container is
    /// traced from its first instruction (org.berth.trace.wait) and the exec event's
    /// timestamp is compared with the moment berth recorded the exec ("start-to-exec"
    /// mark). Both are CLOCK_MONOTONIC. Positive: berth learned of the exec that much
    /// after the kernel did it.
    func crossCheckExec(bundle: String, notes: inout [String]) -> ExecCrossCheck? {
        guard kernelAtLeast(6, 4) else {
            notes.append("exec cross-check skipped: probes are benchmarked on Linux 6.4 or later only")
            return nil
        }
        let probes: Probes
        do { probes = try Probes(.exec) } catch {
            notes.append("exec cross-check skipped: \(error)")
            return nil
        }
        var spec = context.spec(name: "startup-traced", args: ["/bin/true"])
        spec.annotations = [Tracing.waitAnnotation: "30"]
        guard let traced = try? context.bundle("startup-traced", spec) else { return nil }
        var differences: [Double] = []
        for i in 0..<5 {
            let id = "xcheck-\(getpid())-\(i)"
            let timings = context.workDir + "/xcheck-timings-\(i).jsonl"
            var cgroupID: UInt64?
            let out = context.berth(["run", "--bundle", traced, id], env: ["BERTH_TIMINGS_FILE=" + timings]) { _ in
                cgroupID = context.trackWhenCreated(id, probes: probes)
            }
            var execAt: UInt64?
            try? probes.poll(timeout: 100) { event in
                if event.kind == .exec, event.cgroupID == cgroupID, execAt == nil { execAt = event.timestampNanoseconds }
            }
            if let cgroupID { probes.untrack(cgroupID: cgroupID) }
            let berthAt = execMark(timings)
            guard out.succeeded, let execAt, let berthAt else {
                let why = !out.succeeded ? "run failed: \(BenchEnvironment.firstLine(out.output))"
                    : execAt == nil ? "no exec event (cgroup \(cgroupID.map(String.init) ?? "never seen"))" : "no start-to-exec mark in \(timings)"
                notes.append("exec cross-check run \(i): \(why)")
                continue
            }
            differences.append((Double(berthAt) - Double(execAt)) / 1000)
        }
        guard !differences.isEmpty else { return nil }
        return ExecCrossCheck(microseconds: differences, median: Statistics.median(differences))
    }

    /// The absolute "start-to-exec" mark of the run that wrote `path`.
    func execMark(_ path: String) -> UInt64? {
        struct Line: Decodable { var command: String; var marks_monotonic_ns: [String: UInt64]? }
        guard let text = try? Files.read(path) else { return nil }
        for line in text.split(separator: "\n") {
            if let parsed = try? JSONDecoder().decode(Line.self, from: Data(line.utf8)), let at = parsed.marks_monotonic_ns?["start-to-exec"] {
                return at
            }
        }
        return nil
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

/// An overlayfs over the shared rootfs, as an image's layers would be: the
/// startup variant that shows what a union mount costs.
struct OverlayRootfs {
    var lower: String
    var under: String
    var merged: String { under + "/merged" }

    func mount() -> String? {
        for d in ["upper", "work", "merged"] { try? Files.makeDirectories(under + "/" + d) }
        let options = "lowerdir=\(lower),upperdir=\(under)/upper,workdir=\(under)/work"
        return Glibc.mount("overlay", merged, "overlay", 0, options) == 0 ? merged : nil
    }

    func unmount() {
        umount2(merged, Int32(MNT_DETACH))
        try? Files.removeTree(under)
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
    /// berth's exec timestamp against the kernel's exec event (absent without probes).
    public var execCrossCheck: ExecCrossCheck?

    public init(iterations: Int, warmup: Int, unit: String, notes: [String]) {
        self.iterations = iterations; self.warmup = warmup; self.unit = unit; self.notes = notes
    }
}

/// How far berth's recorded exec ("start-to-exec" mark) lies after the kernel's exec
/// event of the same container, in µs, per traced run.
public struct ExecCrossCheck: Codable, Sendable {
    public var microseconds: [Double]
    public var median: Double
}
