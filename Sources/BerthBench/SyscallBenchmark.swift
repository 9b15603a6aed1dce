#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSecurity
import BerthSys

/// What a syscall costs inside a container: the static helper times getpid,
/// read, write, open+close, stat, mmap+munmap and clock_gettime (vDSO, no
/// syscall: the control) on the host and in containers with one factor
/// toggled at a time. Rounds are interleaved; ratios are paired per round.
public struct SyscallBenchmark {
    public static let operations = ["getpid", "read", "write", "open-close", "stat", "mmap-munmap", "clock_gettime"]
    public var context: BenchContext

    public init(context: BenchContext) { self.context = context }

    /// The contenders: the host, then a container with each toggle.
    func variants() -> [(name: String, adjust: ((inout Spec) -> Void)?)] {
        [
            ("host", nil),
            ("container", { _ in }),
            ("seccomp one-rule", { spec in
                spec.linux?.seccomp = Seccomp(defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: DefaultSeccompProfile.nativeArchitectures,
                                              flags: nil, listenerPath: nil, listenerMetadata: nil,
                                              syscalls: [Seccomp.Syscall(names: ["keyctl"], action: "SCMP_ACT_ERRNO", errnoRet: nil, args: nil)])
            }),
            ("seccomp default", SpecVariant.defaultSeccomp),
            ("user namespace", SpecVariant.userNamespace),
        ]
    }

    public func run(progress: Progress) throws -> SyscallResult {
        let calls = context.profile.syscallCalls, rounds = context.profile.syscallRounds
        let args = ["/bin/berth-test-init", "bench-syscalls", String(calls)]
        var bundles: [String: String] = [:]
        for v in variants() {
            guard let adjust = v.adjust else { continue }
            let name = "syscalls-" + String(v.name.map { $0.isLetter ? $0 : "-" })
            bundles[v.name] = try context.bundle(name, context.spec(name: name, args: args, adjust: adjust))
        }
        var samples: [String: [String: [Double]]] = [:]
        var notes: [String] = []
        var rng = SplitMix64(seed: 7)
        progress.begin("syscalls", total: rounds)
        for round in 0..<rounds {
            for v in variants().shuffled(using: &rng) {
                let out: Spawned
                if let bundle = bundles[v.name] {
                    out = context.berth(["run", "--bundle", bundle, "sys-\(getpid())-\(round)-\(v.name.count)"])
                } else {
                    out = Spawned.run(context.rootfs + "/bin/berth-test-init", args)
                }
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
        result.variantOrder = variants().map(\.name)
        for (variant, ops) in samples {
            result.nanoseconds[variant] = ops.mapValues { SyscallResult.Series(summary: Summary($0), samples: $0) }
        }
        // paired per round: each pair ran in the same round
        for (a, b) in [("container", "host"), ("seccomp one-rule", "container"), ("seccomp default", "seccomp one-rule"),
                       ("seccomp default", "container"), ("user namespace", "container")] {
            for op in Self.operations {
                if let x = samples[a]?[op], let y = samples[b]?[op], x.count == y.count, !x.isEmpty {
                    result.ratios["\(a) / \(b)", default: [:]][op] = Statistics.pairedRatio(x, y)
                }
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
    /// variant → operation → ns/op (best of 5 batches of `calls`, one sample per round).
    public var nanoseconds: [String: [String: Series]] = [:]
    /// "A / B" → operation → paired ratio of ns/op.
    public var ratios: [String: [String: Ratio]] = [:]

    public init(calls: Int, rounds: Int, operations: [String], notes: [String]) {
        self.calls = calls; self.rounds = rounds; self.operations = operations; self.notes = notes
    }
}
