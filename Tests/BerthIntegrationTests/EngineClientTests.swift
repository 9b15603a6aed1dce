import Foundation
import Testing
import BerthSys

let podmanBinary = ["/usr/bin/podman"].first { FileManager.default.isExecutableFile(atPath: $0) }
let containerdBinary = ["/usr/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// berth's busybox (with the test helper) as a docker archive, for an engine to load.
func busyboxArchive(_ env: EngineEnvironment) throws -> String {
    let path = env.dir + "/busybox.tar"
    let out = try env.berth(["save", "-o", path, "busybox"])
    guard out.code == 0 else { throw BerthError("berth save: \(out.stderr)") }
    return path
}

/// Nothing an engine's containers used is left: no cgroup below the test's parent (which goes too), no mount below
/// its directory but the store's. podman cleans up after conmon exits, asynchronously: give it a few seconds.
func expectEngineLeftNothing(_ env: EngineEnvironment, sourceLocation: SourceLocation = #_sourceLocation) {
    let hierarchies = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []).map { "/sys/fs/cgroup/\($0)/\(env.cgroupParent)" }
    func children() -> [String] {
        hierarchies.flatMap { d in ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).filter { Files.isDirectory(d + "/" + $0) }.map { d + "/" + $0 } }
    }
    // podman's own "conmon" cgroup (its monitors') is podman's to leave behind; removed here once empty
    for _ in 0..<200 {
        for c in children() where c.hasSuffix("/conmon") { rmdir(c) }
        if children().isEmpty { break }
        usleep(50_000)
    }
    #expect(children().isEmpty, "cgroups left: \(children())", sourceLocation: sourceLocation)
    // the engines took the parent as an absolute path: at each hierarchy's root, where this process's
    // own cgroup may be elsewhere (memory is, here), so the environment's cleanup would not find it
    for d in hierarchies where Files.exists(d) {
        for _ in 0..<40 where rmdir(d) != 0 && errno == EBUSY { usleep(25_000) }
    }
    let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n")
        .map { $0.split(separator: " ")[4] }.filter { $0.hasPrefix(env.dir) && $0 != env.data && !$0.hasSuffix("/overlay") }
    #expect(mounts.isEmpty, "mounts left: \(mounts)", sourceLocation: sourceLocation)
}

/// Real engines calling berth-runtime as their OCI runtime, each with a root of its own in a temp
/// directory (never the system's). Host only: podman and containerd under the v2 guest's software
/// emulation take longer than the suite's budget.
@Suite("real engines: podman and containerd run their containers on berth-runtime", .serialized,
       .enabled(if: Host.canRunContainers && !Host.emulated, "needs root, and the host (not the emulated guest)"))
struct EngineClientTests {
    @Test("podman --runtime berth-runtime: run, -d/ps/logs/exec/pause/unpause/stats/update/stop/rm, -t, limits, user, caps, read-only, OOM; default rlimits refused by name",
          .enabled(if: podmanBinary != nil, "podman is not installed"))
    func podman() throws {
        let env = try EngineEnvironment()
        let archive = try busyboxArchive(env)
        let root = env.dir + "/podman"
        let parent = "/" + env.cgroupParent
        // in the test's directory: conmon writes an `oom` file into its working directory when the container is OOM-killed
        func podman(_ args: [String], timeout: Double = 120) throws -> Output {
            try run("/usr/bin/env", ["--chdir=" + env.dir, podmanBinary!, "--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
                                     "--runtime", Package.runtimeBinary, "--cgroup-manager", "cgroupfs", "--events-backend", "file"] + args, timeout: timeout)
        }
        defer {
            _ = try? podman(["rm", "-af", "-t", "0"])
            _ = try? podman(["rmi", "-af"])
        }
        #expect(try podman(["load", "-i", archive]).code == 0)
        // root lacks CAP_SYS_RESOURCE here: podman's default rlimits cannot be applied by any runtime
        let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none", "--cgroup-parent", parent]
        let hi = try podman(["run", "--rm"] + limits + ["busybox", "echo", "hi"])
        #expect(hi.code == 0 && hi.stdout == "hi\n", "\(hi.stderr)")
        let defaults = try podman(["run", "--rm", "--network", "none", "--cgroup-parent", parent, "busybox", "true"])
        #expect(defaults.code != 0 && defaults.stderr.contains("setrlimit RLIMIT_NOFILE") && defaults.stderr.contains("CAP_SYS_RESOURCE"), "\(defaults.stderr)")

        #expect(try podman(["run", "-d", "--name", "bg"] + limits + ["busybox", "sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"]).code == 0)
        #expect(try podman(["ps", "--format", "{{.Names}} {{.Status}}"]).stdout.hasPrefix("bg Up"))
        var logs = ""
        for _ in 0..<50 where !logs.contains("started") { logs = try podman(["logs", "bg"]).stdout; usleep(100_000) }
        #expect(logs == "started\n")
        let exec = try podman(["exec", "bg", "sh", "-c", "echo in-exec; exit 4"])
        #expect(exec.code == 4 && exec.stdout == "in-exec\n", "\(exec.stderr)")
        #expect(try podman(["pause", "bg"]).code == 0)
        #expect(try podman(["inspect", "--format", "{{.State.Status}}", "bg"]).stdout == "paused\n")
        #expect(try podman(["unpause", "bg"]).code == 0)
        let stats = try podman(["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "bg"])
        #expect(stats.code == 0 && stats.stdout.hasPrefix("bg "), "\(stats.stderr)")
        #expect(try podman(["update", "--cpus", "0.5", "bg"]).code == 0)
        let quota = try podman(["exec", "bg", "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"])
        #expect(quota.stdout == "50000\n", "update reached the cgroup: \(quota.stdout) \(quota.stderr)")
        #expect(try podman(["stop", "-t", "5", "bg"]).code == 0)
        #expect(try podman(["inspect", "--format", "{{.State.ExitCode}}", "bg"]).stdout == "0\n")
        #expect(try podman(["rm", "bg"]).code == 0)

        let tty = try run("/usr/bin/script", ["-qec", ([podmanBinary!, "--root", root + "/root", "--runroot", root + "/run", "--tmpdir", root + "/tmp",
                                                       "--runtime", Package.runtimeBinary, "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                                                       "run", "--rm", "-t"] + limits + ["busybox", "tty"]).joined(separator: " "), "/dev/null"])
        #expect(tty.stdout.contains("/dev/pts/0"), "the console socket gave a pty: \(tty.stdout) \(tty.stderr)")

        let confined = try podman(["run", "--rm"] + limits + ["--pids-limit", "16", "--cpus", "0.5", "--user", "65534", "--cap-drop", "ALL", "--read-only",
                                                            "busybox", "sh", "-c", "id -u; grep CapEff /proc/self/status; touch /x 2>&1; /bin/berth-test-init fork 40 > /tmp/f; grep fork-error /tmp/f"])
        #expect(confined.stdout.hasPrefix("65534\nCapEff:\t0000000000000000\ntouch: /x: Read-only file system\n"), "\(confined.stdout) \(confined.stderr)")
        #expect(confined.stdout.hasSuffix("fork-error: EAGAIN\n"), "the pids limit held: \(confined.stdout)")

        let oom = try podman(["run", "--name", "hog", "--memory", "64m", "--memory-swap", "64m"] + limits + ["busybox", "/bin/berth-test-init", "alloc", "256"])
        #expect(oom.code == 137, "\(oom.stdout) \(oom.stderr)")
        // podman 4.3's conmon does not see v1 OOM kills on this hybrid host: OOMKilled reads false with runc too
        #expect(try podman(["inspect", "--format", "{{.State.ExitCode}}", "hog"]).stdout == "137\n")
        #expect(try podman(["rm", "hog"]).code == 0)
        #expect(try podman(["ps", "-aq"]).stdout.isEmpty)
        expectEngineLeftNothing(env)
    }

    @Test("containerd's runc shim with berth-runtime as its binary: ctr run --rm, a detached task with exec/metrics/kill/delete, limits",
          .enabled(if: containerdBinary != nil, "containerd is not installed"))
    func containerd() throws {
        let env = try EngineEnvironment()
        let archive = try busyboxArchive(env)
        let dir = env.dir + "/containerd"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let socket = dir + "/containerd.sock"
        try """
        version = 2
        root = "\(dir)/root"
        state = "\(dir)/state"
        [grpc]
          address = "\(socket)"
        [plugins."io.containerd.grpc.v1.cri"]
          disable_tcp_service = true
        """.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        let daemon = try spawn(containerdBinary!, ["--config", dir + "/config.toml"])
        defer {
            kill(daemon.pid, SIGTERM)
            _ = daemon.wait()
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        func ctr(_ args: [String]) throws -> Output { try run("/usr/bin/ctr", ["--address", socket] + args) }
        let runtime = ["--runtime", "io.containerd.runc.v2", "--runc-binary", Package.runtimeBinary]
        let image = "docker.io/library/busybox:latest"
        #expect(try ctr(["images", "import", "--base-name", "docker.io/library/busybox", archive]).code == 0)

        let hi = try ctr(["run", "--rm"] + runtime + ["--cgroup", "/\(env.cgroupParent)/hi", image, "hi", "echo", "hi"])
        #expect(hi.code == 0 && hi.stdout == "hi\n", "\(hi.stderr)")

        #expect(try ctr(["run", "-d"] + runtime + ["--cgroup", "/\(env.cgroupParent)/bg", "--memory-limit", "67108864", "--cpus", "0.5",
                                                   image, "bg", "sh", "-c", "while true; do sleep 0.1; done"]).code == 0)
        #expect(try ctr(["task", "ls"]).stdout.contains("RUNNING"))
        let exec = try ctr(["task", "exec", "--exec-id", "e1", "bg", "sh", "-c", "echo in-exec; exit 3"])
        #expect(exec.code == 3 && exec.stdout == "in-exec\n", "\(exec.stderr)")
        let metrics = try ctr(["task", "metrics", "bg"])
        #expect(metrics.stdout.contains("67108864"), "the memory limit, read back: \(metrics.stdout) \(metrics.stderr)")
        #expect(try ctr(["task", "kill", "-s", "SIGKILL", "bg"]).code == 0)
        for _ in 0..<100 where !(try ctr(["task", "ls"]).stdout.contains("STOPPED")) { usleep(50_000) }
        #expect(try ctr(["task", "delete", "bg"]).code == 0)
        #expect(try ctr(["container", "rm", "bg"]).code == 0)
        #expect(!(try ctr(["task", "ls"]).stdout.contains("bg")))
        #expect(try ctr(["container", "ls", "-q"]).stdout.isEmpty)
        expectEngineLeftNothing(env)
    }
}
