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
        let created = try env.berth(["create", "--name", "later", "--cgroup-parent", env.cgroupParent, "busybox", "echo", "attached start"])
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

    /// The block device under the host's / (vda, sda, nvme0n1), when it has a /dev node.
    static func rootBlockDevice() -> (path: String, numbers: String)? {
        // mountinfo's third field: the device numbers of the / mount
        guard let root = readFile("/proc/self/mountinfo").split(separator: "\n").map({ $0.split(separator: " ") }).first(where: { $0.count > 4 && $0[4] == "/" })
        else { return nil }
        var numbers = String(root[2])
        // a partition's throttle goes on its disk
        if let partition = try? String(contentsOfFile: "/sys/dev/block/\(numbers)/partition", encoding: .utf8), !partition.isEmpty,
           let disk = try? String(contentsOfFile: "/sys/dev/block/\(numbers)/../dev", encoding: .utf8) {
            numbers = disk.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines)
        }
        guard let uevent = try? String(contentsOfFile: "/sys/dev/block/\(numbers)/uevent", encoding: .utf8),
              let name = uevent.split(separator: "\n").first(where: { $0.hasPrefix("DEVNAME=") })?.dropFirst(8),
              Files.exists("/dev/\(name)") else { return nil }
        return ("/dev/\(name)", numbers)
    }

    @Test("run's mount, security and block I/O flags: -v (host path, ro, named volume), --tmpfs, --read-only, --ulimit, --cap-add/--cap-drop, --security-opt, --init, --env-file, --network, --device-write-bps")
    func runFlags() throws {
        let env = try EngineEnvironment()
        let host = env.dir + "/shared"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "from the host\n".write(toFile: host + "/f", atomically: true, encoding: .utf8)
        let mounts = try env.runContainer(["--rm", "-v", host + ":/data:ro", "-v", "cache:/cache", "--tmpfs", "/scratch:size=1m,exec", "--read-only",
                                           "busybox", "sh", "-c",
                                           "cat /data/f; echo x > /data/g || echo data-ro; echo kept > /cache/v; touch /etc/x || echo root-ro; "
                                           + "grep ' /scratch ' /proc/mounts; cat /etc/hostname >/dev/null && echo etc-ok"])
        #expect(mounts.code == 0, "\(mounts.stderr)")
        #expect(mounts.stdout.contains("from the host\ndata-ro\nroot-ro\n"), "\(mounts.stdout)")
        let scratch = mounts.stdout.split(separator: "\n").first { $0.contains(" /scratch ") } ?? ""
        #expect(scratch.contains("size=1024k") && scratch.contains("nosuid") && scratch.contains("nodev") && !scratch.contains("noexec"), "\(scratch)")
        #expect(mounts.stdout.hasSuffix("etc-ok\n"))
        #expect(readFile(env.data + "/volumes/cache/_data/v") == "kept")
        let again = try env.runContainer(["--rm", "-v", "cache:/c", "busybox", "cat", "/c/v"])
        #expect(again.stdout == "kept\n", "a named volume outlives its container")

        let limits = try env.runContainer(["--rm", "--ulimit", "nofile=512:1024", "--cap-drop", "ALL", "--cap-add", "net_raw", "--cap-add", "CAP_KILL",
                                           "--security-opt", "no-new-privileges", "busybox", "sh", "-c",
                                           "ulimit -n; ulimit -Hn; grep -E 'CapEff|NoNewPrivs' /proc/self/status"])
        #expect(limits.stdout == "512\n1024\nNoNewPrivs:\t1\nCapEff:\t0000000000002020\n" || limits.stdout == "512\n1024\nCapEff:\t0000000000002020\nNoNewPrivs:\t1\n",
                "\(limits.stdout) \(limits.stderr)")
        let profile = env.dir + "/profile.json"
        try """
        {"defaultAction": "SCMP_ACT_ALLOW",
         "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                     {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
         "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                      {"names": ["chdir"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}
        """.write(toFile: profile, atomically: true, encoding: .utf8)
        let seccomp = try env.runContainer(["--rm", "--security-opt", "seccomp=" + profile, "busybox", "sh", "-c", "mkdir /x || echo denied; cd /tmp && echo cd-ok"])
        #expect(seccomp.stdout == "denied\ncd-ok\n", "\(seccomp.stdout) \(seccomp.stderr)")
        let unconfined = try env.runContainer(["--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "Seccomp:", "/proc/self/status"])
        #expect(unconfined.stdout.hasSuffix("0\n"), "\(unconfined.stdout)")

        try "# comment\nA=1\n\nB=two words\nFROM_HOST\n".write(toFile: env.dir + "/env", atomically: true, encoding: .utf8)
        let environment = try env.runContainer(["--rm", "--env-file", env.dir + "/env", "-e", "A=override", "busybox", "sh", "-c", "echo $A/$B/${FROM_HOST-unset}"])
        #expect(environment.stdout == "override/two words/unset\n", "\(environment.stdout) \(environment.stderr)")

        let none = try env.runContainer(["--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo lo-up"])
        #expect(none.stdout == "lo\nlo-up\n", "\(none.stdout) \(none.stderr)")
        // other tests' veths and bridges come and go meanwhile: the interfaces there before and after must all be seen
        let interfacesBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        let hostNet = try env.runContainer(["--rm", "--network", "host", "busybox", "sh", "-c", "hostname; ls -1 /sys/class/net"])
        let stable = interfacesBefore.intersection((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        let lines = hostNet.stdout.split(separator: "\n").map(String.init)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        #expect(lines.first == String(cString: name), "the host's name: \(hostNet.stdout)")
        #expect(stable.contains("lo") && stable.isSubset(of: Set(lines.dropFirst())), "\(hostNet.stdout) vs \(stable)")

        if Files.exists("/usr/bin/tini-static") {
            let initialized = try env.runContainer(["--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; exit 3"])
            #expect(initialized.code == 3 && initialized.stdout.hasPrefix("/sbin/docker-init -- sh"), "\(initialized.stdout) \(initialized.stderr)")
        }
        if let device = Self.rootBlockDevice() {
            #expect(try env.runContainer(["-d", "--name", "io", "--device-write-bps", device.path + ":1mb", "busybox", "sleep", "100"]).code == 0)
            let pid = ((try inspect(env, "io"))["State"] as? [String: Any])?["Pid"] as? Int ?? 0
            var limit = ""
            for line in readFile("/proc/\(pid)/cgroup").split(separator: "\n") {
                let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                guard f.count == 3 else { continue }
                if f[1] == "blkio" { limit = readFile("/sys/fs/cgroup/blkio\(f[2])/blkio.throttle.write_bps_device") }
                if f[1].isEmpty && Files.exists("/sys/fs/cgroup/cgroup.controllers") { limit = readFile("/sys/fs/cgroup\(f[2])/io.max") }
            }
            #expect(limit.contains(device.numbers + " 1048576") || limit.contains(device.numbers + " rbps=max wbps=1048576"), "\(limit)")
            #expect(try env.berth(["rm", "-f", "io"]).code == 0)
        }

        // refused before anything is made
        for (args, message) in [(["-v", "data:relative"], "is not an absolute path"), (["--cap-add", "FLY"], "unknown capability"),
                                (["--ulimit", "nofile=9:1"], "above the hard limit"), (["--security-opt", "label=x"], "not supported"),
                                (["--security-opt", "apparmor=x"], "process.apparmorProfile: \"x\""),
                                (["--network", "mesh"], "no such network: mesh"), (["--device-read-bps", "/etc/passwd:1mb"], "not a block device"),
                                (["--blkio-weight", "5"], "between 10 and 1000")] {
            let out = try env.runContainer(["--rm"] + args + ["busybox", "true"])
            #expect(out.code == 1 && out.stderr.contains(message), "\(args): \(out.stderr)")
        }
        env.expectNoLeaks()
    }

    @Test("the CLI without a daemon: exec, top, stats --no-stream, pause/unpause, update, rename, events")
    func management() throws {
        let env = try EngineEnvironment()
        let since = String(Int(Date().timeIntervalSince1970) - 1)
        #expect(try env.runContainer(["-d", "--name", "m", "-m", "64m", "busybox", "sleep", "1000"]).code == 0)
        let streams = try env.berth(["exec", "m", "sh", "-c", "echo out; echo err >&2; exit 7"])
        #expect(streams.code == 7 && streams.stdout == "out\n" && streams.stderr == "err\n", "\(streams)")
        #expect(try env.berth(["exec", "-u", "65534", "-w", "/tmp", "-e", "A=b", "m", "sh", "-c", "id -u; pwd; echo $A"]).stdout == "65534\n/tmp\nb\n")
        #expect(try env.berth(["exec", "m", "no-such-command"]).code == 127)
        let top = try env.berth(["top", "m"])
        #expect(top.stdout.hasPrefix("UID") && top.stdout.contains("sleep 1000"), "\(top.stdout)")
        let stats = try env.berth(["stats", "--no-stream", "m"])
        #expect(stats.stdout.contains(" / 64.00MiB ") && stats.stdout.hasSuffix(" 1\n"), "\(stats.stdout)")
        #expect(try env.berth(["pause", "m"]).code == 0)
        #expect(try env.berth(["ps"]).stdout.contains("(Paused)"))
        let frozen = try env.berth(["exec", "m", "true"])
        #expect(frozen.code == 1 && frozen.stderr.contains("paused"), "\(frozen.stderr)")
        #expect(try env.berth(["unpause", "m"]).code == 0)
        #expect(try env.berth(["update", "-m", "96m", "--pids-limit", "40", "m"]).code == 0)
        let host = (try inspect(env, "m"))["HostConfig"] as? [String: Any]
        #expect(host?["Memory"] as? Int == 96 << 20 && host?["PidsLimit"] as? Int == 40)
        #expect(try env.berth(["stats", "--no-stream", "m"]).stdout.contains(" / 96.00MiB "))
        let id = (try inspect(env, "m"))["Id"] as? String ?? "?"
        #expect(try env.berth(["ps", "--format", "{{.Names}} {{.State}} {{.Image}}"]).stdout == "m running busybox\n")
        let info = try env.berth(["info"]).stdout
        #expect(info.contains("Containers: 1\n Running: 1\n") && info.contains("Images: 1\n"), "\(info)")
        let df = try env.berth(["system", "df"]).stdout
        #expect(df.hasPrefix("TYPE") && df.contains("\nImages ") && df.contains("\nContainers "), "\(df)")
        #expect(try env.berth(["rename", "m", "n"]).code == 0)
        let taken = try env.runContainer(["-d", "--name", "other", "busybox", "sleep", "1000"])
        #expect(taken.code == 0)
        let clash = try env.berth(["rename", "n", "other"])
        #expect(clash.code == 1 && clash.stderr.contains("already in use"))
        #expect(try env.berth(["rm", "-f", "n", "other"]).code == 0)
        let events = try env.berth(["events", "--since", since, "--until", String(Int(Date().timeIntervalSince1970) + 1), "--filter", "container=" + id.prefix(12),
                                    "--format", "json"])
        let actions = events.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["Action"] as? String
        }.map { String($0.prefix { $0 != ":" }) }
        #expect(actions == ["create", "start", "exec_start", "exec_die", "exec_start", "exec_die", "exec_start", "pause", "unpause", "update",
                            "rename", "kill", "die", "destroy"], "\(actions)")
        env.expectNoLeaks()
    }

    @Test("volumes: create, ls, inspect, rm (refused while a container uses it), prune; run --rm takes its anonymous volume along")
    func volumes() throws {
        let env = try EngineEnvironment()
        #expect(try env.berth(["volume", "create", "data"]).stdout == "data\n")
        #expect(try env.runContainer(["--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo kept > /d/f"]).code == 0)
        #expect(try env.berth(["volume", "ls", "-q"]).stdout == "data\n")
        let inspected = try JSONSerialization.jsonObject(with: Data(try env.berth(["volume", "inspect", "data"]).stdout.utf8)) as? [[String: Any]]
        #expect(inspected?.first?["Mountpoint"] as? String == env.data + "/volumes/data/_data")
        #expect(readFile(env.data + "/volumes/data/_data/f") == "kept")
        #expect(try env.runContainer(["-d", "--name", "user", "-v", "data:/d", "busybox", "sleep", "100"]).code == 0)
        let inUse = try env.berth(["volume", "rm", "data"])
        #expect(inUse.code == 1 && inUse.stderr.contains("in use by container user"), "\(inUse.stderr)")
        #expect(try env.berth(["rm", "-f", "user"]).code == 0)
        // an anonymous volume goes with its --rm container; a named one stays
        #expect(try env.runContainer(["--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/x"]).code == 0)
        #expect(try env.berth(["volume", "ls", "-q"]).stdout == "data\n")
        #expect(try env.runContainer(["--name", "keep", "-v", "/scratch", "busybox", "true"]).code == 0)
        #expect(try env.berth(["volume", "ls", "-q"]).stdout.split(separator: "\n").count == 2)
        #expect(try env.berth(["rm", "keep"]).code == 0)
        #expect(try env.berth(["volume", "prune"]).stdout.contains("Deleted Volumes:"))
        #expect(try env.berth(["volume", "ls", "-q"]).stdout == "data\n", "prune takes the unused anonymous volume, not the named one")
        #expect(try env.berth(["volume", "rm", "data"]).code == 0)
        #expect(try env.berth(["volume", "inspect", "data"]).code == 1)
        env.expectNoLeaks()
    }
}
