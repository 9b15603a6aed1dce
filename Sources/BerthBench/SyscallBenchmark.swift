#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSecurity
import BerthSys
import BerthProbes
import BerthRuntime

/// What a syscall costs inside a container: the static helper times getpid,
/// read, write, open+close, stat, mmap+munmap and clock_gettime (vDSO, no
/// syscall: the control) on the host and in containers with one factor
/// toggled at a time. Rounds are interleaved; ratios are paired per round.
public struct SyscallBenchmark {
    public static let operations = ["getpid", "read", "write", "open-close", "stat", "mmap-munmap", "clock_gettime"]
    public var context: BenchContext

    public init(context: BenchContext) { self.context = context }

    /// A contender: where the helper runs, and what the probes do meanwhile.
    struct Variant {
        enum Probing { case off, empty, counts, attached, tracked }
        var name: String
        /// nil: on the host; else a container with this change to the spec.
        var adjust: ((inout Spec) -> Void)?
        var probing: Probing = .off
    }

    /// The contenders: the host, then a container with each toggle; then both again
    /// with berth's probes attached (the host untracked, the container tracked with
    /// syscall counts and latency histograms).
    func variants(probes: Bool) -> [Variant] {
        var v: [Variant] = [
            Variant(name: "host", adjust: nil),
            Variant(name: "container", adjust: { _ in }),
            Variant(name: "seccomp one-rule", adjust: { spec in
                spec.linux?.seccomp = Seccomp(defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: DefaultSeccompProfile.nativeArchitectures,
                                              flags: nil, listenerPath: nil, listenerMetadata: nil,
                                              syscalls: [Seccomp.Syscall(names: ["keyctl"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: nil)])
            }),
            Variant(name: "seccomp default", adjust: SpecVariant.defaultSeccomp),
            Variant(name: "user namespace", adjust: SpecVariant.userNamespace),
        ]
        if probes {
            v.append(Variant(name: "host + empty programs", adjust: nil, probing: .empty))
            v.append(Variant(name: "host + probes", adjust: nil, probing: .attached))
            v.append(Variant(name: "host + counts only", adjust: nil, probing: .counts))
            v.append(Variant(name: "container + probes", adjust: { spec in
                spec.annotations = [Tracing.waitAnnotation: "30"]
            }, probing: .tracked))
        }
        return v
    }

    /// The probes `berth trace` loads by default and the empty pair (the floor), or
    /// nil (and a note) where they cannot load.
    func loadProbes(notes: inout [String]) -> ProbeSets? {
        // The 6.1 v2 guest soft-locked twice while this scenario attached and detached
        // the probe sets under load; the cause is not pinned down, so older kernels skip it.
        guard kernelAtLeast(6, 4) else {
            notes.append("probe variants skipped: measured on Linux 6.4 or later only (a 6.1 kernel soft-locked under this scenario)")
            return nil
        }
        do {
            let sets = ProbeSets(all: try Probes(.all), counts: try Probes(.syscalls), empty: try Probes(.emptyPrograms))
            for p in [sets.all, sets.counts, sets.empty] { p.detach() }
            return sets
        } catch {
            notes.append("probe variants skipped: \(error)")
            return nil
        }
    }

    /// The probe sets the variants attach: what `berth trace` loads by default, the
    /// syscall counter alone (`berth trace --counts`), and the empty pair.
    struct ProbeSets {
        var all: Probes
        var counts: Probes
        var empty: Probes
    }

    /// Runs one variant once; with `.tracked`, registers the container's cgroup the
    /// way `berth trace` does (the container waits for it: org.berth.trace.wait).
    func measure(_ v: Variant, bundle: String?, id: String, args: [String], probes sets: ProbeSets?) -> Spawned {
        let attached: Probes? = switch v.probing {
        case .off: nil
        case .empty: sets?.empty
        case .counts: sets?.counts
        case .attached, .tracked: sets?.all
        }
        let probes = sets?.all
        try? attached?.attach()
        defer { attached?.detach() }
        guard let bundle else { return Spawned.run(context.rootfs + "/bin/berth-test-init", args) }
        var tracked: UInt64?
        let out = context.berth(["run", "--bundle", bundle, id]) { _ in
            guard v.probing == .tracked, let probes else { return }
            tracked = context.trackWhenCreated(id, probes: probes, [.syscalls, .latency])
        }
        if let tracked { probes?.untrack(cgroupID: tracked) }
        return out
    }

    public func run(progress: Progress) throws -> SyscallResult {
        let calls = context.profile.syscallCalls, rounds = context.profile.syscallRounds
        let args = ["/bin/berth-test-init", "bench-syscalls", String(calls)]
        var notes: [String] = []
        let probes = loadProbes(notes: &notes)
        let variants = variants(probes: probes != nil)
        var bundles: [String: String] = [:]
        for v in variants {
            guard let adjust = v.adjust else { continue }
            let name = "syscalls-" + String(v.name.map { $0.isLetter ? $0 : "-" })
            bundles[v.name] = try context.bundle(name, context.spec(name: name, args: args, adjust: adjust))
        }
        var samples: [String: [String: [Double]]] = [:]
        var rng = SplitMix64(seed: 7)
        progress.begin("syscalls", total: rounds)
        for round in 0..<rounds {
            for (index, v) in variants.shuffled(using: &rng).enumerated() {
                let out = measure(v, bundle: bundles[v.name], id: "sys-\(getpid())-\(round)-\(index)", args: args, probes: probes)
                guard out.succeeded else {
                    notes.append("\(v.name), round \(round): \(BenchEnvironment.firstLine(out.output))")
                    continue
                }
                for op in Self.operations {
                    if let ns = out.number("ns " + op) { samples[v.name, default: [:]][op, default: []].append(ns) }
                }
            }
            progress.step()
        }
        progress.end()
        var result = SyscallResult(calls: calls, rounds: rounds, operations: Self.operations, notes: notes)
        result.variantOrder = variants.map(\.name)
        for (variant, ops) in samples {
            result.nanoseconds[variant] = ops.mapValues { SyscallResult.Series(summary: Summary($0), samples: $0) }
        }
        // paired per round: each pair ran in the same round
        for (a, b) in [("container", "host"), ("seccomp one-rule", "container"), ("seccomp default", "seccomp one-rule"),
                       ("seccomp default", "container"), ("user namespace", "container"),
                       ("host + empty programs", "host"), ("host + probes", "host"), ("host + counts only", "host"),
                       ("container + probes", "container")] {
            for op in Self.operations {
                if let x = samples[a]?[op], let y = samples[b]?[op], x.count == y.count, !x.isEmpty {
                    result.ratios["\(a) / \(b)", default: [:]][op] = Statistics.pairedRatio(x, y)
                    if a.hasPrefix("host +") || a.hasSuffix("+ probes") {
                        result.differences?["\(a) − \(b)", default: [:]][op] = Statistics.pairedDifference(x, y)
                    }
                }
            }
        }
        // What the kernel accounts to each program, from one more tracked run with
        // BPF statistics on (they cost time themselves, so never during the rounds).
        if let all = probes, let v = variants.first(where: { $0.probing == .tracked }) {
            let probes = all.all
            do {
                try probes.enableSelfCost()
                let before = probes.selfCost()
                let out = measure(v, bundle: bundles[v.name], id: "sys-\(getpid())-cost", args: args, probes: all)
                if out.succeeded {
                    let after = probes.selfCost()
                    result.probeSelfCost = after.map { a in
                        let b = before.first { $0.program == a.program }
                        return ProgramCost(program: a.program, runTimeNanoseconds: a.runTimeNanoseconds - (b?.runTimeNanoseconds ?? 0),
                                           runCount: a.runCount - (b?.runCount ?? 0))
                    }
                }
            } catch {
                result.notes.append("probe self-cost not measured: \(error)")
            }
        }
        return result
    }
}

public struct SyscallResult: Codable, Sendable {
    public struct Series: Codable, Sendable {
        public var summary: Summary
        public var samples: [Double]
    }
    public var calls: Int
    public var rounds: Int
    public var operations: [String]
    public var variantOrder: [String] = []
    public var notes: [String]
    /// variant → operation → ns/op (the fastest 500-call batch of 5 × `calls`, on one CPU; one sample per round).
    public var nanoseconds: [String: [String: Series]] = [:]
    /// "A / B" → operation → paired ratio of ns/op.
    public var ratios: [String: [String: Ratio]] = [:]
    /// "A − B" → operation → paired difference in ns/op (what the probes add per call).
    public var differences: [String: [String: Ratio]]? = [:]
    /// BPF run time per program over one tracked run (kernel.bpf_stats_enabled).
    public var probeSelfCost: [ProgramCost]?

    public init(calls: Int, rounds: Int, operations: [String], notes: [String]) {
        self.calls = calls; self.rounds = rounds; self.operations = operations; self.notes = notes
    }
}
