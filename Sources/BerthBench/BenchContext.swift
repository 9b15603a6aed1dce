#if canImport(Glibc)
import Glibc
#endif
import BerthCgroups
import BerthOCI
import BerthSecurity
import BerthSys
import BerthProbes
import BerthRuntime
import CBerthLaunch

/// What every scenario shares: the binaries, a scratch directory, one busybox
/// rootfs with the static helper in it, and a cgroup parent named for this run.
public struct BenchContext: Sendable {
    public var berthBinary: String
    /// berth-test-init: the static workload inside (and outside) the containers.
    public var helper: String
    public var workDir: String
    public var cgroupParent: String
    public var profile: BenchProfile

    public init(berthBinary: String, helper: String, workDir: String, profile: BenchProfile) {
        self.berthBinary = berthBinary; self.helper = helper; self.workDir = workDir; self.profile = profile
        cgroupParent = "berth-bench-\(getpid())"
    }

    public var rootfs: String { workDir + "/rootfs" }
    public var stateRoot: String { workDir + "/state" }

    /// busybox (for sh and true) and the helper, nothing else: every runtime runs the same bytes.
    public func makeRootfs() throws {
        try Files.makeDirectories(rootfs + "/bin")
        for dir in ["proc", "sys", "dev", "tmp"] { try Files.makeDirectories(rootfs + "/" + dir) }
        try Files.writeAtomically(try Files.readBytes("/bin/busybox"), to: rootfs + "/bin/busybox", mode: 0o755)
        try Files.writeAtomically(try Files.readBytes(helper), to: rootfs + "/bin/berth-test-init", mode: 0o755)
        for applet in ["true", "sh", "sleep"] {
            unlink(rootfs + "/bin/" + applet)
            guard symlink("busybox", rootfs + "/bin/" + applet) == 0 else { throw BerthError.sys("symlink", path: applet) }
        }
    }

    /// A spec every runtime accepts (crun 1.8 takes ociVersion up to 1.1), running `args`
    /// on the shared rootfs in cgroup `<parent>/<name>`; `adjust` makes the variant.
    public func spec(name: String, args: [String], adjust: (inout Spec) -> Void = { _ in }) -> Spec {
        var spec = Spec.defaultSpec(rootless: false)
        spec.ociVersion = "1.0.2"
        spec.process?.terminal = false
        spec.process?.args = args
        spec.root?.path = rootfs
        spec.linux?.cgroupsPath = cgroupParent + "/" + name
        adjust(&spec)
        return spec
    }

    /// Writes `spec` as the config.json of bundle `name`; returns the bundle directory.
    @discardableResult
    public func bundle(_ name: String, _ spec: Spec) throws -> String {
        let dir = workDir + "/bundles/" + name
        try Files.makeDirectories(dir)
        try Files.writeAtomically(spec.encoded(), to: dir + "/config.json", mode: 0o644)
        return dir
    }

    /// berth-runtime --root <state> ARGS…, with its output.
    public func berth(_ args: [String], env: [String] = [], whileRunning: (pid_t) -> Void = { _ in }) -> Spawned {
        Spawned.run(berthBinary, [berthBinary, "--root", stateRoot] + args, env: env, whileRunning: whileRunning)
    }

    /// What `berth trace` does for a container held by org.berth.trace.wait: waits
    /// (up to 30 s) for its record, tracks its cgroup and marks it traced. Call it from
    /// `berth(…, whileRunning:)`; returns the cgroup id, nil if the record never came.
    public func trackWhenCreated(_ id: String, probes: Probes, _ what: ProbeSet? = nil) -> UInt64? {
        let store = StateStore(root: stateRoot)
        let deadline = monotonicMilliseconds() + 30_000
        while monotonicMilliseconds() < deadline {
            if let record = try? store.load(id), let cgroupID = try? record.cgroups.v2CgroupID() {
                _ = try? probes.track(cgroupID: cgroupID, what)
                store.markTraced(id)
                return cgroupID
            }
            usleep(500)
        }
        return nil
    }

    /// The parent every container of this run goes under, made before the first
    /// and removed after the last, as a container manager's parent (docker's
    /// /docker, a systemd slice, a pod's cgroup) is there before its containers:
    /// each runtime then makes and removes only the container's own cgroup.
    /// Where each runtime looks for it: from this process's cgroups (berth) and
    /// from the hierarchy roots (runc and crun).
    public func makeCgroupParent() throws {
        let layout = try CgroupLayout.detect()
        for caller in [try ProcessCgroups.current(), ProcessCgroups(paths: [:])] {
            try FSCgroupManager(layout: layout, path: CgroupPath(cgroupParent), caller: caller).create()
        }
    }

    /// The runtimes remove their container's cgroup; the shared parent is ours to remove,
    /// wherever each runtime put it (runc and crun resolve relative paths from the root).
    public func removeCgroupParent() {
        guard let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() else { return }
        for h in layout.v1 + (layout.v2.map { [$0] } ?? []) {
            for dir in [h.mountPoint + "/" + cgroupParent, CgroupPath(cgroupParent).directory(in: h, caller: caller)] where Files.isDirectory(dir) {
                Self.removeEmptyTree(dir)
            }
        }
    }

    static func removeEmptyTree(_ dir: String) {
        for child in (try? Files.list(dir)) ?? [] where Files.isDirectory(dir + "/" + child) { removeEmptyTree(dir + "/" + child) }
        rmdir(dir)
    }

    /// Memory charged to this run's cgroup parent (every container under it):
    /// v1 memory.usage_in_bytes, or v2 memory.current.
    public func chargedMemoryBytes() -> UInt64 {
        guard let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() else { return 0 }
        if let memory = layout.v1.first(where: { $0.controllers.contains("memory") }) {
            let dir = CgroupPath(cgroupParent).directory(in: memory, caller: caller)
            return UInt64(((try? Files.read(dir + "/memory.usage_in_bytes")) ?? "").trimmingCharacters()) ?? 0
        }
        guard let v2 = layout.v2 else { return 0 }
        let dir = CgroupPath(cgroupParent).directory(in: v2, caller: caller)
        return UInt64(((try? Files.read(dir + "/memory.current")) ?? "").trimmingCharacters()) ?? 0
    }

    /// Commands whose outcome is kept apart: what each printed and how long each took.
    public struct Batch: Sendable {
        public var perCommand: [Spawned]
        /// From the first spawn to the last exit.
        public var totalMilliseconds: Double
    }

    /// Spawns every berth-runtime command at once and waits for all.
    public func concurrently(_ commands: [[String]]) -> Batch {
        var files: [String] = []
        var running: [Int32: (index: Int, start: Double)] = [:]
        var results = [Spawned](repeating: Spawned(status: 127 << 8, output: "not started", elapsed: 0), count: commands.count)
        let envp = CStringArray([defaultPathEnv])
        let start = monotonicMilliseconds()
        for (i, args) in commands.enumerated() {
            let (fd, file) = Spawned.outputFile()
            files.append(file)
            let argv = CStringArray([berthBinary, "--root", stateRoot] + args)
            let pid = berth_spawn(berthBinary, argv.pointers, envp.pointers, -1, fd)
            if fd >= 0 { close(fd) }
            if pid > 0 { running[pid] = (i, monotonicMilliseconds()) }
        }
        while !running.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 { if errno == EINTR { continue } else { break } }
            // container processes orphaned to us (we are a subreaper) are reaped here too
            guard let entry = running.removeValue(forKey: pid) else { continue }
            results[entry.index] = Spawned(status: status, output: "", elapsed: monotonicMilliseconds() - entry.start)
        }
        let total = monotonicMilliseconds() - start
        for (i, file) in files.enumerated() {
            results[i].output = (try? Files.read(file)) ?? ""
            unlink(file)
        }
        return Batch(perCommand: results, totalMilliseconds: total)
    }

    /// Orphaned container processes come to us (PID 1 here does not reap): collect them.
    public static func reapOrphans() {
        var status: Int32 = 0
        while waitpid(-1, &status, WNOHANG) > 0 {}
    }
}

/// The one-factor changes to a container that several scenarios toggle.
public enum SpecVariant {
    /// The engine's default seccomp profile for the default capabilities.
    public static func defaultSeccomp(_ spec: inout Spec) {
        spec.linux?.seccomp = DefaultSeccompProfile.profile(capabilities: spec.process?.capabilities?.bounding ?? [])
    }

    /// A user namespace mapping container root to host uid/gid 100000 (65536 ids).
    public static func userNamespace(_ spec: inout Spec) {
        spec.linux?.namespaces?.append(Namespace(type: "user"))
        spec.linux?.uidMappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        spec.linux?.gidMappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
    }
}

/// One process run to completion: exit status, what it printed, wall time.
public struct Spawned: Sendable {
    public var status: Int32
    public var output: String
    /// Milliseconds from spawn to exit.
    public var elapsed: Double

    public var succeeded: Bool { status == 0 }
    /// The exit code as a shell reports it (128 + signal when killed).
    public var exitCode: Int32 { (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }

    /// Values of "key: value" lines.
    public func values(_ key: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            line.hasPrefix(key + ": ") ? String(line.dropFirst(key.count + 2)) : nil
        }
    }
    public func value(_ key: String) -> String? { values(key).first }
    public func number(_ key: String) -> Double? { value(key).flatMap(Double.init) }

    /// A fresh temporary file for a child's output.
    static func outputFile() -> (fd: Int32, path: String) {
        var template = Array("/tmp/berth-bench-out-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        return (fd, String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Spawns and waits; with `capture` false the output goes to /dev/null (startup timing).
    /// `whileRunning` gets the child's pid before the wait (to watch or attach to it).
    public static func run(_ path: String, _ args: [String], env: [String] = [], mntns: Int32 = -1, capture: Bool = true,
                           whileRunning: (pid_t) -> Void = { _ in }) -> Spawned {
        let (fd, file) = capture ? outputFile() : (-1, "")
        defer { if fd >= 0 { close(fd); unlink(file) } }
        let argv = CStringArray(args), envp = CStringArray([defaultPathEnv] + env)
        let start = monotonicMilliseconds()
        let pid = berth_spawn(path, argv.pointers, envp.pointers, mntns, fd)
        guard pid > 0 else { return Spawned(status: 127 << 8, output: "spawn \(path): \(Errno.describe(-pid))", elapsed: 0) }
        whileRunning(pid)
        var status: Int32 = 0
        berth_wait_pid(pid, &status)
        let elapsed = monotonicMilliseconds() - start
        let output = capture ? ((try? Files.read(file)) ?? "") : ""
        return Spawned(status: status, output: output, elapsed: elapsed)
    }
}

/// How long each scenario runs: quick for `make bench` (minutes on 2 cores), full for publishing.
public struct BenchProfile: Codable, Sendable {
    public var name: String
    public var startupIterations: Int
    public var syscallRounds: Int
    public var syscallCalls: Int
    public var quotaSeconds: Double
    public var cpuQuotas: [Double]
    public var memoryLimitsMiB: [Int]
    public var pidsLimits: [Int]
    public var densityCounts: [Int]
    /// Layer unpack benchmark: the layer's file content, and rounds per variant.
    public var imageLayerMiB = 64
    public var imageRounds = 5
    /// Network benchmark: bridge setups timed, traffic rounds, MiB streamed and 64-byte round trips per round.
    public var networkSetups = 30
    public var networkRounds = 7
    public var networkMiB = 256
    public var networkExchanges = 4000
    /// Engine-level startup: `podman run --rm` / `ctr run --rm` per runtime.
    public var engineIterations = 15

    public static let quick = BenchProfile(name: "quick", startupIterations: 60, syscallRounds: 7, syscallCalls: 200_000,
                                           quotaSeconds: 1.5, cpuQuotas: [0.1, 0.25, 0.5, 1, 1.5], memoryLimitsMiB: [32, 64, 128],
                                           pidsLimits: [8, 32], densityCounts: [1, 10, 50])
    public static let full = BenchProfile(name: "full", startupIterations: 300, syscallRounds: 15, syscallCalls: 500_000,
                                          quotaSeconds: 5, cpuQuotas: [0.1, 0.25, 0.5, 1, 1.5], memoryLimitsMiB: [32, 64, 128, 256],
                                          pidsLimits: [8, 32, 128], densityCounts: [1, 10, 50, 100], imageLayerMiB: 256, imageRounds: 9,
                                          networkSetups: 100, networkRounds: 15, networkMiB: 1024, networkExchanges: 20000, engineIterations: 40)
    /// For CI's end-to-end run: every scenario, a few iterations.
    public static let smoke = BenchProfile(name: "smoke", startupIterations: 4, syscallRounds: 2, syscallCalls: 20_000,
                                           quotaSeconds: 0.5, cpuQuotas: [0.5, 1], memoryLimitsMiB: [32], pidsLimits: [8],
                                           densityCounts: [1, 4], imageLayerMiB: 8, imageRounds: 2,
                                           networkSetups: 3, networkRounds: 2, networkMiB: 16, networkExchanges: 300, engineIterations: 2)

    public static func named(_ name: String) -> BenchProfile? { ["quick": quick, "full": full, "smoke": smoke][name] }
}
