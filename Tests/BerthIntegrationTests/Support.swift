import Foundation
import Testing
import BerthOCI
import BerthSys
import BerthCgroups
import CBerthLaunch

/// What the host allows, probed rather than assumed from the uid.
enum Host {
    /// Root with a writable cgroupfs and the ability to make namespaces.
    static let canRunContainers: Bool = {
        guard geteuid() == 0, access("/sys/fs/cgroup", W_OK) == 0 else { return false }
        return unsharePossible
    }()

    /// Probed in a child: can this process create a mount+pid namespace?
    static let unsharePossible: Bool = {
        (try? run("/usr/bin/unshare", ["--mount", "--pid", "--fork", "/bin/true"]))?.code == 0
    }()

    /// The kernel describes itself in BTF: the CO-RE probes can load.
    static let hasBTF = FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux")

    /// The running kernel is at least major.minor (BerthSys's check, as the probes use it).
    static func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool { BerthSys.kernelAtLeast(major, minor) }

    static let reason: Comment = "needs root on a kernel that allows mount and pid namespaces and a writable cgroupfs"
}

/// Paths of the package: the runtime binary and the helper source.
enum Package {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let runtimeBinary: String = {
        if let env = ProcessInfo.processInfo.environment["BERTH_RUNTIME_BIN"] { return env }
        for config in ["debug", "release"] {
            let path = root + "/.build/\(config)/berth-runtime"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return root + "/.build/debug/berth-runtime"
    }()

    /// Another executable of the package, from the same build as the runtime.
    static func binary(_ name: String) -> String {
        (runtimeBinary as NSString).deletingLastPathComponent + "/" + name
    }

    /// The static test helper, built by `make helper`, or here when missing.
    static let helper: String = {
        let built = root + "/.build/helpers/berth-test-init"
        if FileManager.default.isExecutableFile(atPath: built) { return built }
        let out = NSTemporaryDirectory() + "berth-test-init-\(getpid())"
        _ = try? run("/usr/bin/gcc", ["-static", "-O2", "-pthread", "-o", out, root + "/Tests/Helpers/berth-test-init.c"])
        return out
    }()
}

struct Output {
    var code: Int32
    var stdout: String
    var stderr: String
    /// Values of "key: value" lines.
    func values(_ key: String) -> [String] {
        stdout.split(separator: "\n").compactMap { line in
            line.hasPrefix(key + ": ") ? String(line.dropFirst(key.count + 2)) : nil
        }
    }
    func value(_ key: String) -> String? { values(key).first }
}

/// Runs a program to completion (bounded), capturing both streams into files:
/// a container inherits its caller's stdio, so a pipe would not see EOF while it
/// runs. posix_spawn + waitpid on the exact pid: Foundation's Process missed
/// exits here once the test process became a subreaper.
@discardableResult
func run(_ path: String, _ args: [String], timeout: Double = 60) throws -> Output {
    try spawn(path, args).wait(timeout: timeout)
}

/// A started process whose output goes to files.
struct Spawned {
    let pid: pid_t
    let base: String

    func wait(timeout: Double = 60) -> Output {
        defer { unlink(base + ".out"); unlink(base + ".err"); SpawnRegistry.shared.unregister(pid) }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if Date() > deadline { kill(pid, SIGKILL) }
            usleep(500)
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        return Output(code: code, stdout: out, stderr: err)
    }
}

/// `extraFile` becomes fd 3 of the child (for --preserve-fds).
func spawn(_ path: String, _ args: [String], extraFile: String? = nil) throws -> Spawned {
    let base = NSTemporaryDirectory() + "berth-out-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if let extraFile { posix_spawn_file_actions_addopen(&actions, 3, extraFile, O_RDONLY, 0) }
    let argv = ([path] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let pid = try SpawnRegistry.shared.register { () throws -> pid_t in
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        return pid
    }
    return Spawned(pid: pid, base: base)
}

/// In the throw-away v2 guest only (BERTH_TEST_EMULATED=1, never on the host): a soft lockup
/// prints every CPU's backtrace to the console. The guest has hung a few times with both CPUs
/// stuck in a berth process or the test runner, and the console then said only which processes.
let guestLockupDiagnostics: Void = {
    guard ProcessInfo.processInfo.environment["BERTH_TEST_EMULATED"] == "1" else { return }
    for (file, value) in [("/proc/sys/kernel/softlockup_all_cpu_backtrace", "1"), ("/proc/sys/kernel/printk", "8")] {
        try? value.write(toFile: file, atomically: false, encoding: .utf8)
    }
}()

/// Orphaned container processes are reparented to us (the caller of create,
/// like conmon or containerd-shim), so the tests can reap the ones they made.
/// Like conmon, they also reap every exited child the runner did not spawn itself:
/// a killed pid-namespace init waits until its namespace's other processes are reaped.
let becomeSubreaper: Void = {
    _ = berth_set_child_subreaper(1)
    Thread.detachNewThread {
        while true {
            SpawnRegistry.shared.reapOrphans()
            usleep(2000)
        }
    }
}()

/// The pids `spawn` started; everything else that exits is reaped by the reaper thread.
final class SpawnRegistry: @unchecked Sendable {
    static let shared = SpawnRegistry()
    private let lock = NSLock()
    private var spawned = Set<pid_t>()

    /// Runs `start` (a posix_spawn) and records its pid under the lock, so the reaper cannot take it.
    func register(_ start: () throws -> pid_t) rethrows -> pid_t {
        lock.lock(); defer { lock.unlock() }
        let pid = try start()
        spawned.insert(pid)
        return pid
    }

    func unregister(_ pid: pid_t) { lock.lock(); spawned.remove(pid); lock.unlock() }

    func reapOrphans() {
        lock.lock(); defer { lock.unlock() }
        var info = siginfo_t()
        while waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
            let pid = info._sifields._kill.si_pid
            if pid == 0 || spawned.contains(pid) { return }
            var status: Int32 = 0
            waitpid(pid, &status, WNOHANG)
        }
    }
}

/// One shared, read-only rootfs: busybox-static and the test helper.
enum SharedRootfs {
    static let path: String = {
        let dir = NSTemporaryDirectory() + "berth-rootfs-\(getpid())"
        try! makeRootfs(at: dir)
        return dir
    }()

    static func makeRootfs(at dir: String) throws {
        let fm = FileManager.default
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "out", "data", "ro-data"] {
            try fm.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try? fm.removeItem(atPath: dir + "/bin/busybox")
        try fm.copyItem(atPath: "/bin/busybox", toPath: dir + "/bin/busybox")
        try? fm.removeItem(atPath: dir + "/bin/berth-test-init")
        try fm.copyItem(atPath: Package.helper, toPath: dir + "/bin/berth-test-init")
        for applet in ["sh", "cat", "echo", "ls", "sleep", "true", "false", "mount", "ps", "id"] {
            try? fm.createSymbolicLink(atPath: dir + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/:/bin/sh\n".write(toFile: dir + "/etc/passwd", atomically: true, encoding: .utf8)
    }
}

/// A temp state root, bundle directories and a cgroup parent named for this
/// test run; everything is removed on deinit, even when the test failed.
final class TestEnvironment {
    let dir: String
    let stateRoot: String
    let cgroupParent: String
    private var bundles = 0

    /// Container pids seen by this environment, reaped on deinit.
    private var pids = Set<Int32>()

    init() throws {
        _ = becomeSubreaper
        _ = guestLockupDiagnostics
        dir = NSTemporaryDirectory() + "berth-it-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        stateRoot = dir + "/state"
        cgroupParent = "berth-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: stateRoot, withIntermediateDirectories: true)
    }

    deinit {
        for id in (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? [] {
            _ = try? runtime(["delete", "--force", id])
        }
        try? FileManager.default.removeItem(atPath: dir)
        // the run's parent cgroup goes when the last test leaves it (berth keeps parents); one
        // without children that is still busy has a child going offline: that takes a moment
        if let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() {
            for h in layout.controllerHierarchies + (layout.v2.map { [$0] } ?? []) {
                let d = CgroupPath(cgroupParent).directory(in: h, caller: caller)
                func hasChildren() -> Bool { ((try? Files.list(d)) ?? []).contains { Files.isDirectory(d + "/" + $0) } }
                for _ in 0..<80 where rmdir(d) != 0 && errno == EBUSY && !hasChildren() { usleep(25_000) }
            }
        }
    }

    /// A unique container id for this environment.
    func id(_ name: String) -> String { "\(name)-\(getpid())-\(UInt16.random(in: 0...UInt16.max))" }

    /// berth-runtime --root <state> ARGS…
    @discardableResult
    func runtime(_ args: [String], timeout: Double = 60) throws -> Output {
        try run(Package.runtimeBinary, ["--root", stateRoot] + args, timeout: timeout)
    }

    /// The default spec, running `args`, on the shared rootfs, in this run's cgroup parent.
    func spec(id: String, args: [String]) -> Spec {
        var spec = Spec.defaultSpec(rootless: false)
        spec.root = Root(path: SharedRootfs.path, readonly: true)
        spec.process?.terminal = false
        spec.process?.args = args
        spec.hostname = "berth-test"
        spec.linux?.cgroupsPath = cgroupParent + "/" + id
        return spec
    }

    /// Writes a bundle whose config.json is `spec`; returns its directory.
    func bundle(_ spec: Spec) throws -> String {
        bundles += 1
        let path = dir + "/bundle\(bundles)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Data(spec.encoded()).write(to: URL(fileURLWithPath: path + "/config.json"))
        return path
    }

    /// A host directory to bind into a container at /out.
    func outDirectory() throws -> String {
        let path = dir + "/out-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Everything a container may leave behind is gone: state, cgroups, mounts, the process.
    func expectNoLeaks(id: String, pid: Int32? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!FileManager.default.fileExists(atPath: stateRoot + "/" + id), "state directory left", sourceLocation: sourceLocation)
        if let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() {
            for h in layout.controllerHierarchies + (layout.v2.map { [$0] } ?? []) {
                let d = CgroupPath(cgroupParent + "/" + id).directory(in: h, caller: caller)
                #expect(!FileManager.default.fileExists(atPath: d), "cgroup left: \(d)", sourceLocation: sourceLocation)
            }
        }
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(dir), "mount left under \(dir)", sourceLocation: sourceLocation)
        if let pid, pid > 0 {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            #expect(stat.isEmpty || stat.contains(") Z "), "process \(pid) still alive", sourceLocation: sourceLocation)
        }
    }

    /// The container's directory for `controller`: its v1 hierarchy, or the v2 tree on a unified host.
    func cgroupDirectory(_ id: String, controller: String) -> String {
        guard let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() else { return "/nonexistent" }
        if layout.mode == .unified, let v2 = layout.v2 { return CgroupPath(cgroupParent + "/" + id).directory(in: v2, caller: caller) }
        guard let h = layout.v1.first(where: { $0.controllers.contains(controller) }) else { return "/nonexistent" }
        return CgroupPath(cgroupParent + "/" + id).directory(in: h, caller: caller)
    }

    /// A control file's value by version: v1 (controller, file) or the v2 file.
    func cgroupValue(_ id: String, v1: (String, String), v2: String) -> String {
        Host.isUnified ? readFile(cgroupDirectory(id, controller: "") + "/" + v2) : readFile(cgroupDirectory(id, controller: v1.0) + "/" + v1.1)
    }

    /// CPUs used by the container over `seconds` of wall time (cpuacct.usage, or v2 cpu.stat usage_usec).
    func cpuUsage(_ id: String, seconds: Double) -> Double {
        func usage() -> Double {
            if Host.isUnified {
                let stat = readFile(cgroupDirectory(id, controller: "") + "/cpu.stat")
                let line = stat.split(separator: "\n").first { $0.hasPrefix("usage_usec ") } ?? ""
                return (Double(line.split(separator: " ").last ?? "") ?? 0) * 1000
            }
            return Double(readFile(cgroupDirectory(id, controller: "cpuacct") + "/cpuacct.usage")) ?? 0
        }
        let u0 = usage(), t0 = Date()
        usleep(UInt32(seconds * 1_000_000))
        let u1 = usage(), t1 = Date()
        return (u1 - u0) / 1e9 / t1.timeIntervalSince(t0)
    }

    func state(_ id: String) throws -> [String: Any] {
        let out = try runtime(["state", id])
        guard out.code == 0 else { return [:] }
        let state = (try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]) ?? [:]
        if let pid = state["pid"] as? Int, pid > 0 { pids.insert(Int32(pid)) }
        return state
    }

    /// Polls `condition` for up to `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }
}

func readFile(_ path: String) -> String {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

func readLinkPath(_ path: String) -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? ""
}

extension Resources {
    /// Just a memory limit (and memory+swap), for the OOM tests.
    static func memory(limit: Int64, swap: Int64? = nil) -> Resources {
        var r = Resources()
        var memory = Resources.Memory()
        memory.limit = limit
        memory.swap = swap
        r.memory = memory
        return r
    }

    /// Just CPU resources, for the tests that set a quota or a cpuset.
    static func cpu(quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil) -> Resources {
        var r = Resources()
        var cpu = Resources.CPU()
        cpu.quota = quota
        cpu.period = period
        cpu.cpus = cpus
        r.cpu = cpu
        return r
    }
}
