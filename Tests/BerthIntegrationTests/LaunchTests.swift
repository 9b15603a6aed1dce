import Foundation
import Testing
import BerthOCI

@Suite("launch: namespaces, mounts, exit codes", .enabled(if: Host.canRunContainers, Host.reason))
struct LaunchTests {
    @Test("run returns the container's exit code")
    func exitCode() throws {
        let env = try TestEnvironment()
        let id = env.id("exit")
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "exit", "3"]))
        let out = try env.runtime(["run", "--bundle", bundle, id])
        #expect(out.code == 3, "\(out.stderr)")
        env.expectNoLeaks(id: id)
    }

    @Test("run of a container killed by a signal exits with 128+signal")
    func signalExit() throws {
        let env = try TestEnvironment()
        let id = env.id("sig")
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "sleep", "60"]))
        let running = try spawn(Package.runtimeBinary, ["--root", env.stateRoot, "run", "--bundle", bundle, id])
        #expect(try env.eventually { try env.state(id)["status"] as? String == "running" })
        #expect(try env.runtime(["kill", id, "KILL"]).code == 0)
        let out = running.wait()
        #expect(out.code == 137, "\(out.stderr)")
        env.expectNoLeaks(id: id)
    }

    @Test("each namespace is new: pid 1, own hostname, only lo, no host pids, own mount table")
    func namespaces() throws {
        let env = try TestEnvironment()
        let id = env.id("ns")
        var spec = env.spec(id: id, args: ["berth-test-init", "pid", "hostname", "domainname", "netdevs", "procs", "mounts",
                                           "ns", "pid", "ns", "net", "ns", "mnt", "ns", "uts", "ns", "ipc", "ns", "cgroup",
                                           "read", Host.isUnified ? "/sys/fs/cgroup/cgroup.procs" : "/sys/fs/cgroup/pids/cgroup.procs",
                                           "write", Host.isUnified ? "/sys/fs/cgroup/x" : "/sys/fs/cgroup/pids/x", "1"])
        spec.hostname = "inside"
        spec.domainname = "example.test"
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("pid") == "1")
        #expect(out.value("hostname") == "inside")
        #expect(out.value("domainname") == "example.test")
        #expect(out.values("netdev") == ["lo"])
        #expect(Int(out.value("procs") ?? "99")! <= 2, "host pids visible: \(out.value("procs") ?? "")")
        for kind in ["pid", "net", "mnt", "uts", "ipc", "cgroup"] {
            let inside = out.value("ns \(kind)") ?? ""
            #expect(!inside.isEmpty && inside != readLinkPath("/proc/self/ns/\(kind)"), "\(kind) namespace is the host's")
        }
        // the root of the container's mount table is the rootfs, read-only
        let root = out.values("mount").first { $0.split(separator: " ")[4] == "/" } ?? ""
        #expect(root.contains(" ro,") || root.contains(" ro "), "root mount: \(root)")
        // the cgroup mount shows the container's own cgroup (pid 1 only), read-only
        #expect(out.value("read " + (Host.isUnified ? "/sys/fs/cgroup/cgroup.procs" : "/sys/fs/cgroup/pids/cgroup.procs")) == "1")
        #expect(out.value("write " + (Host.isUnified ? "/sys/fs/cgroup/x" : "/sys/fs/cgroup/pids/x")) == "EROFS")
        env.expectNoLeaks(id: id)
    }

    @Test("joining namespaces by path shares them with another container")
    func joinByPath() throws {
        let env = try TestEnvironment()
        let first = env.id("owner")
        var spec = env.spec(id: first, args: ["berth-test-init", "sleep", "30"])
        spec.hostname = "shared-uts"
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(spec), first]).code == 0)
        let pid = try #require(env.state(first)["pid"] as? Int)

        let second = env.id("joiner")
        var joiner = env.spec(id: second, args: ["berth-test-init", "hostname", "ns", "net", "ns", "uts", "ns", "pid"])
        joiner.hostname = nil
        joiner.linux?.namespaces = [Namespace(type: "pid"), Namespace(type: "mount"), Namespace(type: "ipc"),
                                    Namespace(type: "uts", path: "/proc/\(pid)/ns/uts"),
                                    Namespace(type: "network", path: "/proc/\(pid)/ns/net")]
        let out = try env.runtime(["run", "--bundle", try env.bundle(joiner), second])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("hostname") == "shared-uts")
        #expect(out.value("ns net") == readLinkPath("/proc/\(pid)/ns/net"))
        #expect(out.value("ns uts") == readLinkPath("/proc/\(pid)/ns/uts"))
        #expect(out.value("ns pid") != readLinkPath("/proc/\(pid)/ns/pid"))
        #expect(try env.runtime(["delete", "--force", first]).code == 0)
        env.expectNoLeaks(id: first, pid: Int32(pid))
        env.expectNoLeaks(id: second)
    }

    @Test("joining a pid namespace by path puts the process in it")
    func joinPidNamespace() throws {
        let env = try TestEnvironment()
        let first = env.id("pidowner")
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(env.spec(id: first, args: ["berth-test-init", "sleep", "30"])), first]).code == 0)
        let pid = try #require(env.state(first)["pid"] as? Int)
        let second = env.id("pidjoiner")
        var joiner = env.spec(id: second, args: ["berth-test-init", "ns", "pid", "procs"])
        joiner.linux?.namespaces = [Namespace(type: "pid", path: "/proc/\(pid)/ns/pid"), Namespace(type: "mount")]
        joiner.hostname = nil
        let out = try env.runtime(["run", "--bundle", try env.bundle(joiner), second])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("ns pid") == readLinkPath("/proc/\(pid)/ns/pid"))
        #expect(try env.runtime(["delete", "--force", first]).code == 0)
        env.expectNoLeaks(id: second)
    }

    @Test("mounts, masked paths and read-only paths are as configured")
    func mounts() throws {
        let env = try TestEnvironment()
        let id = env.id("mounts")
        let data = try env.outDirectory()
        // mask what this kernel has: /proc/kcore and sysrq-trigger are configured out on some
        let maskedFile = ["/proc/kcore", "/proc/keys", "/proc/timer_list"].first { FileManager.default.fileExists(atPath: $0) }!
        var spec = env.spec(id: id, args: [
            "berth-test-init",
            "write", "/scratch/f", "x", "write", "/data/f", "from-container", "write", "/ro-data/f", "x",
            "write", "/f", "x", "read", maskedFile, "write", "/proc/sys/kernel/domainname", "x",
            "open", "/proc/acpi/x", "r", "open", "/sys/kernel/notes", "w", "read", "/proc/sys/net/ipv4/ip_forward",
        ])
        spec.linux?.maskedPaths = [maskedFile, "/proc/acpi"]
        spec.mounts! += [
            Mount(destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m", "mode=1777"]),
            Mount(destination: "/data", type: "bind", source: data, options: ["rbind", "rw"]),
            Mount(destination: "/ro-data", type: "bind", source: data, options: ["bind", "ro", "nosuid"]),
        ]
        spec.linux?.sysctl = ["net.ipv4.ip_forward": "1"]
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("write /scratch/f") == "ok")
        #expect(out.value("write /data/f") == "ok")
        #expect(readFile(data + "/f") == "from-container")
        #expect(out.value("write /ro-data/f") == "EROFS")
        #expect(out.value("write /f") == "EROFS", "readonly rootfs")
        #expect(out.value("read \(maskedFile)") == "", "\(maskedFile) is masked by /dev/null")
        #expect(out.value("open /proc/acpi/x") == "ENOENT", "/proc/acpi is masked by an empty tmpfs")
        #expect(out.value("write /proc/sys/kernel/domainname") == "EROFS")
        #expect(out.value("open /sys/kernel/notes") == "EROFS" || out.value("open /sys/kernel/notes") == "EACCES")
        #expect(out.value("read /proc/sys/net/ipv4/ip_forward") == "1", "sysctl applied inside the network namespace")
        env.expectNoLeaks(id: id)
    }

    @Test("a mount target that is a symlink out of the rootfs is resolved inside the rootfs")
    func symlinkEscape() throws {
        let env = try TestEnvironment()
        let id = env.id("escape")
        let rootfs = env.dir + "/escape-rootfs"
        try SharedRootfs.makeRootfs(at: rootfs)
        let victim = env.dir + "/host-victim"
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
        // /escape -> <absolute host path>: followed literally it would leave the rootfs
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/escape", withDestinationPath: victim)
        var spec = env.spec(id: id, args: ["berth-test-init", "write", "/escape/sub/f", "inside", "mounts"])
        spec.root = Root(path: rootfs, readonly: false)
        spec.mounts!.append(Mount(destination: "/escape/sub", type: "tmpfs", source: "tmpfs", options: ["size=1m"]))
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("write /escape/sub/f") == "ok")
        #expect(!FileManager.default.fileExists(atPath: victim + "/sub"), "the host directory was written through the symlink")
        #expect(FileManager.default.fileExists(atPath: rootfs + victim + "/sub"), "the target was created inside the rootfs")
        env.expectNoLeaks(id: id)
    }

    @Test("process identity: user, groups, umask, cwd, env, rlimits, capabilities, no_new_privs")
    func identity() throws {
        let env = try TestEnvironment()
        let id = env.id("ident")
        var spec = env.spec(id: id, args: ["berth-test-init", "ids", "umask", "cwd", "env", "rlimits", "caps", "nnp", "fds"])
        spec.process?.user = User(uid: 1000, gid: 1001, umask: 0o027, additionalGids: [5, 7])
        spec.process?.cwd = "/tmp"
        spec.process?.env = ["PATH=/bin", "GREETING=hello"]
        spec.process?.rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: 512, soft: 256)]
        spec.process?.capabilities = Capabilities(bounding: ["CAP_KILL", "CAP_CHOWN"], effective: ["CAP_KILL"],
                                                  inheritable: ["CAP_KILL"], permitted: ["CAP_KILL", "CAP_CHOWN"], ambient: ["CAP_KILL"])
        spec.process?.noNewPrivileges = true
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("uid") == "1000")
        #expect(out.value("gid") == "1001")
        #expect(out.value("groups") == " 5 7" || out.value("groups") == "5 7")
        #expect(out.value("umask") == "0027")
        #expect(out.value("cwd") == "/tmp")
        #expect(out.values("env").contains("GREETING=hello"))
        #expect(out.value("rlimit RLIMIT_NOFILE") == "256 512")
        #expect(out.value("CapBnd") == "\t0000000000000021".trimmingCharacters(in: .whitespaces) || out.stdout.contains("CapBnd:\t0000000000000021"))
        #expect(out.stdout.contains("CapEff:\t0000000000000020"))
        #expect(out.stdout.contains("CapAmb:\t0000000000000020"))
        #expect(out.stdout.contains("NoNewPrivs:\t1"))
        // only stdio reaches the container (CVE-2024-21626)
        #expect(out.values("fd").allSatisfy { !$0.contains("berth") && !$0.contains("/run") }, "leaked fds: \(out.values("fd"))")
        #expect(Set(out.stdout.split(separator: "\n").filter { $0.hasPrefix("fd ") }.map { $0.split(separator: ":")[0] }) == ["fd 0", "fd 1", "fd 2"])
        env.expectNoLeaks(id: id)
    }

    @Test("a user namespace: the parent writes the id maps, the process is root inside and mapped outside")
    func userNamespace() throws {
        let env = try TestEnvironment()
        let id = env.id("userns")
        var spec = env.spec(id: id, args: ["berth-test-init", "ids", "ns", "user", "read", "/proc/self/uid_map", "read", "/proc/self/gid_map", "sleep", "5"])
        spec.linux?.namespaces?.append(Namespace(type: "user"))
        spec.linux?.uidMappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        spec.linux?.gidMappings = [IDMapping(containerID: 0, hostID: 200_000, size: 65536)]
        let running = try spawn(Package.runtimeBinary, ["--root", env.stateRoot, "run", "--bundle", try env.bundle(spec), id])
        #expect(try env.eventually { try env.state(id)["status"] as? String == "running" })
        let pid = try #require(env.state(id)["pid"] as? Int)
        // seen from the host, the container's root is the mapped uid and gid
        let status = readFile("/proc/\(pid)/status")
        #expect(status.contains("Uid:\t100000\t100000\t100000\t100000"), "\(status)")
        #expect(status.contains("Gid:\t200000\t200000\t200000\t200000"))
        let out = running.wait()
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("uid") == "0")
        #expect(out.value("gid") == "0")
        #expect(out.value("ns user") != readLinkPath("/proc/self/ns/user"))
        #expect(out.value("read /proc/self/uid_map")?.split(separator: " ") == ["0", "100000", "65536"])
        #expect(out.value("read /proc/self/gid_map")?.split(separator: " ") == ["0", "200000", "65536"])
        env.expectNoLeaks(id: id)
    }

    @Test("a time namespace with offsets shifts the container's boottime clock")
    func timeNamespace() throws {
        let env = try TestEnvironment()
        let id = env.id("timens")
        var spec = env.spec(id: id, args: ["berth-test-init", "read", "/proc/uptime", "ns", "time"])
        spec.linux?.namespaces?.append(Namespace(type: "time"))
        spec.linux?.timeOffsets = ["boottime": TimeOffset(secs: 86400, nanosecs: 0)]
        let before = Double(readFile("/proc/uptime").split(separator: " ").first ?? "0") ?? 0
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        let after = Double(readFile("/proc/uptime").split(separator: " ").first ?? "0") ?? 0
        #expect(out.code == 0, "\(out.stderr)")
        let inside = Double(out.value("read /proc/uptime")?.split(separator: " ").first ?? "0") ?? 0
        // /proc/uptime has 10 ms steps: inside can equal after + offset, and the sum in binary may round below it
        #expect(inside >= before + 86400 - 0.005 && inside <= after + 86400 + 0.005, "uptime inside \(inside), host \(before)...\(after)")
        #expect(out.value("ns time") != readLinkPath("/proc/self/ns/time"))
        env.expectNoLeaks(id: id)
    }

    @Test("each container gets its own session keyring unless --no-new-keyring")
    func sessionKeyring() throws {
        let env = try TestEnvironment()
        var ids: [String] = []
        for flags in [[], ["--no-new-keyring"], []] {
            let id = env.id("keyring")
            let out = try env.runtime(["run"] + flags + ["--bundle", try env.bundle(env.spec(id: id, args: ["berth-test-init", "keyring"])), id])
            #expect(out.code == 0, "\(out.stderr)")
            ids.append(out.value("keyring") ?? "")
            env.expectNoLeaks(id: id)
        }
        let caller = try run(Package.helper, ["keyring"]).value("keyring")
        #expect(ids[0] != caller && ids[2] != caller && ids[0] != ids[2], "new keyrings: \(ids), caller \(caller ?? "")")
        #expect(ids[1] == caller, "--no-new-keyring keeps the caller's: \(ids[1]) vs \(caller ?? "")")
    }

    @Test("run in the foreground with process.terminal proxies the container's pty to stdout")
    func foregroundTerminal() throws {
        let env = try TestEnvironment()
        let id = env.id("fgtty")
        var spec = env.spec(id: id, args: ["berth-test-init", "tty", "exit", "0"])
        spec.process?.terminal = true
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stdout.contains("tty: /dev/pts/0"), "\(out.stdout)")
        env.expectNoLeaks(id: id)
    }

    @Test("--no-pivot switches root with MS_MOVE + chroot")
    func noPivot() throws {
        let env = try TestEnvironment()
        let id = env.id("nopivot")
        let out = try env.runtime(["run", "--no-pivot", "--bundle", try env.bundle(env.spec(id: id, args: ["berth-test-init", "pid", "read", "/etc/passwd"])), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("pid") == "1")
        #expect(out.value("read /etc/passwd") == "root:x:0:0:root:/:/bin/sh", "the rootfs's /etc, not the host's")
        env.expectNoLeaks(id: id)
    }

    @Test("linux.devices are created with their type, numbers, mode and owner; oomScoreAdj applies")
    func devicesAndOOMScore() throws {
        let env = try TestEnvironment()
        let id = env.id("devices")
        var spec = env.spec(id: id, args: ["berth-test-init", "write", "/dev/mynull", "x", "read", "/proc/self/oom_score_adj"])
        spec.process?.args = ["sh", "-c", "berth-test-init write /dev/mynull x read /proc/self/oom_score_adj; ls -ln /dev/mynull"]
        spec.linux?.devices = [Device(type: "c", path: "/dev/mynull", major: 1, minor: 3, fileMode: 0o640, uid: 0, gid: 9)]
        spec.process?.oomScoreAdj = 500
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("write /dev/mynull") == "ok")
        #expect(out.value("read /proc/self/oom_score_adj") == "500")
        let ls = out.stdout.split(separator: "\n").first { $0.hasSuffix("/dev/mynull") } ?? ""
        let fields = ls.split(separator: " ", omittingEmptySubsequences: true)
        #expect(fields.first == "crw-r-----", "\(ls)")
        #expect(fields.count > 5 && fields[2] == "0" && fields[3] == "9" && fields[4] == "1," && fields[5] == "3", "\(ls)")
        env.expectNoLeaks(id: id)
    }

    @Test("--preserve-fds passes fd 3 through and closes everything above it")
    func preserveFDs() throws {
        let env = try TestEnvironment()
        let id = env.id("preserve")
        let file = env.dir + "/passed"
        try "handed-over".write(toFile: file, atomically: true, encoding: .utf8)
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "fds", "read", "/proc/self/fd/3"]))
        let out = try spawn(Package.runtimeBinary, ["--root", env.stateRoot, "run", "--preserve-fds", "1", "--bundle", bundle, id], extraFile: file).wait()
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("read /proc/self/fd/3") == "handed-over")
        #expect(Set(out.stdout.split(separator: "\n").filter { $0.hasPrefix("fd ") }.map { $0.split(separator: ":")[0] }) == ["fd 0", "fd 1", "fd 2", "fd 3"])
        env.expectNoLeaks(id: id)
    }
}
