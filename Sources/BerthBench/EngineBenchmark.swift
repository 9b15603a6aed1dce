#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthSys
import CBerthLaunch

/// Startup as an engine sees it: `podman run --rm` and `ctr run --rm` (containerd's runc
/// shim) of /bin/true with berth-runtime, crun and runc as the OCI runtime, side by side,
/// interleaved in a shuffled order each iteration. Each engine runs with a root, state and
/// socket of its own under the work directory; the image is the benchmark's rootfs.
public struct EngineBenchmark {
    public var context: BenchContext
    public init(context: BenchContext) { self.context = context }

    static let podman = "/usr/bin/podman", containerd = "/usr/bin/containerd", ctr = "/usr/bin/ctr"

    public func run(progress: Progress) throws -> EngineResult {
        var result = EngineResult(iterations: context.profile.engineIterations)
        guard access(Self.podman, X_OK) == 0 else {
            result.notes.append("podman is not installed: the engine scenario needs it (and containerd) — make installs both")
            return result
        }
        let dir = context.workDir + "/engines"
        try Files.makeDirectories(dir)
        defer {
            let mounts = ((try? Files.read("/proc/self/mountinfo")) ?? "").split(separator: "\n").map { String($0.split(separator: " ")[4]) }
            for m in mounts.reversed() where m.hasPrefix(dir) { umount2(m, Int32(MNT_DETACH)) }
        }
        let podmanBase = ["--root", dir + "/podman/root", "--runroot", dir + "/podman/run", "--tmpdir", dir + "/podman/tmp",
                          "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        func podman(_ args: [String]) -> Spawned { Spawned.run(Self.podman, [Self.podman] + podmanBase + args) }
        defer {
            _ = podman(["rm", "-af", "-t", "0"])
            _ = podman(["rmi", "-af"])
        }
        // the image: the rootfs as a tar, imported, and saved as an archive containerd can import
        let tarPath = dir + "/rootfs.tar"
        do {
            let writer = TarWriter(try FileSink(path: tarPath, mode: 0o644))
            var archiver = TreeArchiver()
            try archiver.append(context.rootfs, to: writer)
            try writer.finish()
        }
        let imported = podman(["import", tarPath, "localhost/berth-bench:latest"])
        // an engine that cannot run here (a read-only /etc, say) is a note, not the end of the run
        guard imported.succeeded else {
            result.notes.append("podman import failed, engines skipped: \(BenchEnvironment.firstLine(imported.output))")
            return result
        }

        var runtimes = [("berth", context.berthBinary)]
        for (name, path) in StartupBenchmark.peers().sorted(by: { $0.key < $1.key }) { runtimes.append((name, path)) }
        var commands: [(name: String, path: String, args: [String])] = []
        let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"]
        for (name, path) in runtimes {
            commands.append(("podman/\(name)", Self.podman, [Self.podman] + podmanBase + ["--runtime", path, "run", "--rm"] + limits
                             + ["--cgroup-parent", "/" + context.cgroupParent, "localhost/berth-bench:latest", "/bin/true"]))
        }

        var daemon: pid_t = 0
        let socket = dir + "/containerd/containerd.sock"
        if access(Self.containerd, X_OK) == 0 {
            try Files.makeDirectories(dir + "/containerd")
            let config = "version = 2\nroot = \"\(dir)/containerd/root\"\nstate = \"\(dir)/containerd/state\"\n[grpc]\n  address = \"\(socket)\"\n"
            try Files.writeAtomically(Array(config.utf8), to: dir + "/containerd/config.toml", mode: 0o644)
            let argv = CStringArray([Self.containerd, "--config", dir + "/containerd/config.toml"]), envp = CStringArray([defaultPathEnv])
            let log = open(dir + "/containerd/log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            daemon = berth_spawn(Self.containerd, argv.pointers, envp.pointers, -1, log)
            close(log)
            for _ in 0..<200 where !Files.exists(socket) { usleep(25_000) }
            let saved = podman(["save", "--format", "docker-archive", "-o", dir + "/image.tar", "localhost/berth-bench:latest"])
            let ctrImport = Spawned.run(Self.ctr, [Self.ctr, "--address", socket, "images", "import", dir + "/image.tar"])
            if saved.succeeded && ctrImport.succeeded {
                for (name, path) in runtimes {
                    commands.append(("ctr/\(name)", Self.ctr, [Self.ctr, "--address", socket, "run", "--rm", "--runtime", "io.containerd.runc.v2",
                                                               "--runc-binary", path, "--cgroup", "/" + context.cgroupParent + "/ID",
                                                               "localhost/berth-bench:latest", "ID", "/bin/true"]))
                }
            } else {
                result.notes.append("containerd skipped: \(BenchEnvironment.firstLine(saved.succeeded ? ctrImport.output : saved.output))")
            }
        } else {
            result.notes.append("containerd is not installed")
        }
        defer {
            if daemon > 0 {
                kill(daemon, SIGTERM)
                var status: Int32 = 0
                berth_wait_pid(daemon, &status)
            }
        }

        var samples: [String: [Double]] = [:]
        var failures: [String: Int] = [:]
        var lastError: [String: String] = [:]
        var rng = SplitMix64(seed: 11)
        let warmup = 1
        progress.begin("engines", total: warmup + result.iterations)
        for iteration in 0..<(warmup + result.iterations) {
            var order = commands
            order.shuffle(using: &rng)
            for c in order {
                let id = "bench-\(getpid())-\(iteration)-\(c.name.filter { $0.isLetter })"
                let out = Spawned.run(c.path, c.args.map { $0 == "ID" ? id : $0.replacingOccurrences(of: "/ID", with: "/" + id) },
                                      capture: failures[c.name] == nil)
                if !out.succeeded {
                    failures[c.name, default: 0] += 1
                    if !out.output.isEmpty { lastError[c.name] = BenchEnvironment.firstLine(out.output) }
                } else if iteration >= warmup {
                    samples[c.name, default: []].append(out.elapsed)
                }
            }
            progress.step()
        }
        progress.end()
        for (name, error) in lastError.sorted(by: { $0.key < $1.key }) { result.notes.append("\(name) failed: \(error)") }
        for c in commands {
            let s = samples[c.name] ?? []
            result.runs[c.name] = StartupResult.Series(summary: Summary(s), samples: s, failures: failures[c.name] ?? 0)
        }
        for engine in ["podman", "ctr"] {
            guard let berth = samples["\(engine)/berth"] else { continue }
            for peer in ["crun", "runc"] {
                if let o = samples["\(engine)/\(peer)"], o.count == berth.count { result.ratios["\(engine): berth/\(peer)"] = Statistics.pairedRatio(berth, o) }
            }
        }
        return result
    }
}

public struct EngineResult: Codable, Sendable {
    public var iterations: Int
    public var notes: [String] = []
    /// "podman/berth", "ctr/runc", …: ms per `run --rm` of /bin/true.
    public var runs: [String: StartupResult.Series] = [:]
    public var ratios: [String: Ratio] = [:]

    public init(iterations: Int) { self.iterations = iterations }
}
