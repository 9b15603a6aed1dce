import Foundation
import Testing
import BerthSys

@Suite("engine: containers under their supervisor (run -d, logs, stop, restart, wait, inspect)", .serialized,
       .enabled(if: Host.canRunContainers, Host.reason))
struct EngineTests {
    func inspect(_ env: EngineEnvironment, _ name: String) throws -> [String: Any] {
        let out = try env.berth(["inspect", name])
        let list = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]
        return try #require(list?.first)
    }

    @Test("run -d: the container outlives the command; logs -f follows it; wait and inspect give its exit code")
    func detached() throws {
        let env = try EngineEnvironment()
        // it ends when told (USR1), so a slow machine cannot make it end before it is looked at
        let started = try env.runContainer(["-d", "--name", "bg", "busybox", "sh", "-c",
                                            "trap 'exit 4' USR1; for i in 1 2 3; do echo line $i; echo warn $i >&2; done; while true; do sleep 0.05; done"])
        #expect(started.code == 0 && started.stdout.count == 65, "\(started.stderr)")
        #expect(try env.berth(["ps"]).stdout.contains("bg"))
        let state = try inspect(env, "bg")["State"] as? [String: Any]
        #expect(state?["Running"] as? Bool == true && (state?["Pid"] as? Int ?? 0) > 0)
        let follower = try spawn(Package.binary("berth"), ["--data-root", env.data, "--exec-root", env.exec, "logs", "-f", "bg"])
        usleep(300_000)
        #expect(try env.berth(["kill", "-s", "USR1", "bg"]).code == 0)
        let logs = follower.wait()
        #expect(logs.stdout == "line 1\nline 2\nline 3\n" && logs.stderr == "warn 1\nwarn 2\nwarn 3\n")
        #expect(try env.berth(["wait", "bg"]).stdout == "4\n")
        let ended = try inspect(env, "bg")["State"] as? [String: Any]
        #expect(ended?["ExitCode"] as? Int == 4 && ended?["Status"] as? String == "exited")
        // the last six entries (all of them), with timestamps
        let tail = try env.berth(["logs", "--tail", "6", "-t", "bg"])
        #expect(tail.stdout.hasSuffix("Z line 3\n") && tail.stderr.hasSuffix("Z warn 3\n"), "\(tail.stdout) \(tail.stderr)")
        #expect(try env.berth(["rm", "bg"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("attached run: stdout, stderr and stdin pass through; the exit code is the container's; --rm leaves nothing")
    func attached() throws {
        let env = try EngineEnvironment()
        let out = try env.runContainer(["--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 6"])
        #expect(out.code == 6 && out.stdout == "out\n" && out.stderr == "err\n")
        try "from stdin\n".write(toFile: env.dir + "/in.txt", atomically: true, encoding: .utf8)
        let piped = try run("/bin/sh", ["-c", "\(Package.binary("berth")) --data-root \(env.data) --exec-root \(env.exec) run --rm -i --cgroup-parent \(env.cgroupParent) busybox cat < \(env.dir)/in.txt"])
        #expect(piped.stdout == "from stdin\n", "\(piped.stderr)")
        env.expectNoLeaks()
    }

    @Test("stop: the stop signal, then SIGKILL after -t; restart runs it again; start -a attaches")
    func stopRestart() throws {
        let env = try EngineEnvironment()
        #expect(try env.runContainer(["-d", "--name", "trap", "busybox", "sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo up; while true; do sleep 0.1; done"]).code == 0)
        usleep(300_000)
        #expect(try env.berth(["stop", "trap"]).code == 0)
        #expect(try env.berth(["wait", "trap"]).stdout == "3\n")
        #expect(try env.berth(["logs", "trap"]).stdout == "up\ngot TERM\n")
        #expect(try env.berth(["restart", "-t", "1", "trap"]).code == 0)
        usleep(300_000)
        #expect(try env.berth(["ps"]).stdout.contains("trap"))
        // PID 1 without a handler ignores TERM: -t 1 ends in SIGKILL
        #expect(try env.runContainer(["-d", "--name", "stubborn", "busybox", "sleep", "100"]).code == 0)
        let started = Date()
        #expect(try env.berth(["stop", "-t", "1", "stubborn"]).code == 0)
        #expect(Date().timeIntervalSince(started) >= 1)
        #expect(try env.berth(["wait", "stubborn"]).stdout == "137\n")
        #expect(try env.berth(["kill", "-s", "KILL", "trap"]).code == 0)
        #expect(try env.berth(["wait", "trap"]).stdout == "137\n")
        #expect(try env.berth(["logs", "trap"]).stdout == "up\ngot TERM\nup\n")
        let created = try env.berth(["create", "--name", "later", "busybox", "echo", "attached start"])
        #expect(created.code == 0)
        let attached = try env.berth(["start", "-a", "later"])
        #expect(attached.stdout == "attached start\n" && attached.code == 0)
        #expect(try env.berth(["rm", "trap", "stubborn", "later"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("rm -f of a running container, and errors: unknown container, kill of a stopped one, a name taken twice")
    func removeAndErrors() throws {
        let env = try EngineEnvironment()
        #expect(try env.runContainer(["-d", "--name", "busy", "busybox", "sleep", "100"]).code == 0)
        let taken = try env.runContainer(["-d", "--name", "busy", "busybox", "true"])
        #expect(taken.code == 1 && taken.stderr.contains("already in use"))
        let running = try env.berth(["rm", "busy"])
        #expect(running.code == 1 && running.stderr.contains("is running"))
        let supervisor = (try inspect(env, "busy")["State"] as? [String: Any])?["Pid"] as? Int ?? 0
        #expect(supervisor > 0)
        #expect(try env.berth(["rm", "-f", "busy"]).code == 0)
        #expect(kill(pid_t(supervisor), 0) != 0, "the container's init is gone")
        #expect(try env.berth(["logs", "nosuch"]).stderr == "berth: no such container: nosuch\n")
        #expect(try env.runContainer(["--name", "done", "busybox", "true"]).code == 0)
        let stopped = try env.berth(["kill", "done"])
        #expect(stopped.code == 1 && stopped.stderr.contains("is not running"))
        #expect(try env.berth(["rm", "done"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("docker's limit flags: -m with --memory-swap is an OOM kill; --cpus and --pids-limit land in the cgroup")
    func limits() throws {
        let env = try EngineEnvironment()
        let hog = try env.runContainer(["--rm", "-m", "32m", "--memory-swap", "32m", "busybox", "/bin/berth-test-init", "alloc", "256"])
        #expect(hog.code == 137, "\(hog.stdout) \(hog.stderr)")
        #expect(try env.runContainer(["-d", "--name", "lim", "--cpus", "0.5", "--pids-limit", "20", "-m", "64m", "busybox", "sleep", "100"]).code == 0)
        let inspected = try inspect(env, "lim")
        let host = inspected["HostConfig"] as? [String: Any]
        #expect(host?["NanoCpus"] as? Int == 500_000_000 && host?["PidsLimit"] as? Int == 20 && host?["Memory"] as? Int == 64 << 20)
        let pid = (inspected["State"] as? [String: Any])?["Pid"] as? Int ?? 0
        let cgroups = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
        var quota = "", pids = ""
        for line in cgroups.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3 else { continue }
            if f[1].split(separator: ",").contains("cpu") { quota = readFile("/sys/fs/cgroup/cpu\(f[2])/cpu.cfs_quota_us") }
            if f[1] == "pids" { pids = readFile("/sys/fs/cgroup/pids\(f[2])/pids.max") }
            if f[1].isEmpty && Files.exists("/sys/fs/cgroup/cgroup.controllers") {
                quota = readFile("/sys/fs/cgroup\(f[2])/cpu.max")
                pids = readFile("/sys/fs/cgroup\(f[2])/pids.max")
            }
        }
        #expect(quota.hasPrefix("50000"), "cpu quota \(quota)")
        #expect(pids.trimmingCharacters(in: .whitespacesAndNewlines) == "20")
        let tooSmall = try env.runContainer(["--rm", "-m", "1m", "busybox", "true"])
        #expect(tooSmall.code == 1 && tooSmall.stderr.contains("minimum memory limit is 6MiB"), "\(tooSmall.stderr)")
        #expect(try env.berth(["rm", "-f", "lim"]).code == 0)
        env.expectNoLeaks()
    }
}
