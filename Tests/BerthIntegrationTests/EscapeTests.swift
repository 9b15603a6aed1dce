import Foundation
import Testing
import BerthOCI
import BerthRuntime

/// Attacks that broke real runtimes, attempted from inside a container; each must fail.
/// (CVE-2024-21626 and the CVE-2021-30465 symlink class are in LaunchTests; the
/// default profile's blocked syscalls in DefaultProfileTests.)
@Suite("known escapes, as regression tests", .enabled(if: Host.canRunContainers, Host.reason))
struct EscapeTests {
    /// A program that keeps its process alive for 3 s and does nothing else. Placed
    /// at the runtime binary's ELF interpreter path in the rootfs, it makes a
    /// vulnerable runtime run dumpable inside the container for 3 s, every time:
    /// the test then does not depend on winning a race.
    static let sleeperSource = """
    static struct { long s, ns; } ts = {3, 0};
    void _start(void) {
        long r;
        __asm__ volatile ("syscall" : "=a"(r) : "a"(35L), "D"(&ts), "S"(0L) : "rcx", "r11", "memory");
        __asm__ volatile ("syscall" :: "a"(231L), "D"(0L) : "rcx", "r11", "memory");
        for (;;) {}
    }
    """

    /// PT_INTERP of an ELF file (the dynamic loader it names), if it has one.
    static func elfInterpreter(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), data.count > 64, data.starts(with: [0x7f, 0x45, 0x4c, 0x46]) else { return nil }
        let bytes = [UInt8](data)
        func read(_ offset: Int, _ size: Int) -> Int { (0..<size).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) } }
        let phoff = read(0x20, 8), phentsize = read(0x36, 2), phnum = read(0x38, 2)
        for i in 0..<phnum {
            let ph = phoff + i * phentsize
            guard read(ph, 4) == 3 else { continue } // PT_INTERP
            let offset = read(ph + 8, 8), size = read(ph + 32, 8)
            return String(decoding: bytes[offset..<offset + size].prefix { $0 != 0 }, as: UTF8.self)
        }
        return nil
    }

    @Test("CVE-2019-5736: neither exec's entering process nor a #!/proc/self/exe entry point lets the container reach or rewrite the runtime binary")
    func runtimeBinaryOverwrite() throws {
        let env = try TestEnvironment()
        // A copy of the runtime is what gets attacked: a failing guard damages only the copy.
        let runtime = env.dir + "/berth-runtime"
        try FileManager.default.copyItem(atPath: Package.runtimeBinary, toPath: runtime)
        let before = try Data(contentsOf: URL(fileURLWithPath: runtime))

        let rootfs = env.dir + "/rootfs-cve-2019-5736"
        try SharedRootfs.makeRootfs(at: rootfs)
        try "#!/proc/self/exe\n".write(toFile: rootfs + "/bin/evil", atomically: true, encoding: .utf8)
        chmod(rootfs + "/bin/evil", 0o755)
        if let interpreter = Self.elfInterpreter(runtime) {
            let source = env.dir + "/sleeper.c"
            try Self.sleeperSource.write(toFile: source, atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: rootfs + (interpreter as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let built = try run("/usr/bin/gcc", ["-nostdlib", "-static", "-O2", "-o", rootfs + interpreter, source])
            #expect(built.code == 0, "\(built.stderr)")
        }
        let out = try env.outDirectory()
        let id = env.id("cve-2019-5736")
        var spec = env.spec(id: id, args: ["/bin/sh", "-c", "berth-test-init exe-attack 90 /out/stop > /out/attack.txt"])
        spec.root = Root(path: rootfs, readonly: false)
        spec.mounts! += [Mount(destination: "/out", type: "bind", source: out, options: ["rbind", "rw"])]
        func attacked(_ args: [String]) throws -> Output { try run(runtime, ["--root", env.stateRoot] + args) }

        let started = try attacked(["run", "-d", "--bundle", try env.bundle(spec), id])
        #expect(started.code == 0, "\(started.stderr)")
        // Ordinary execs: the attacker scans /proc while each one enters (non-dumpable until its execve).
        for _ in 0..<3 {
            let exec = try attacked(["exec", id, "berth-test-init", "pid"])
            #expect(exec.code == 0 && exec.value("pid") != nil, "\(exec.stderr)")
        }
        // Then the container's /bin/evil re-enters whatever /proc/self/exe is at its execve: berth-dmz, which refuses.
        let evil = try attacked(["exec", id, "/bin/evil"])
        #expect(evil.code == 127 && evil.stderr.contains("berth-dmz: not started by berth-runtime"), "exit \(evil.code): \(evil.stderr)")
        #expect(FileManager.default.createFile(atPath: out + "/stop", contents: nil))
        // the attacker stops at the stop file, or at its own 90 s bound on a guest too slow to see it
        #expect(env.eventually(90) { readFile(out + "/attack.txt").contains("exe-write:") }, "the attacker reports: \(readFile(out + "/attack.txt"))")
        let report = Output(code: 0, stdout: readFile(out + "/attack.txt"), stderr: "")
        #expect(report.value("exe-write") != "ok", "the attacker rewrote the file it held: \(report.stdout)")
        #expect(!(report.value("exe-held") ?? "").contains("berth-runtime"), "the runtime binary was reachable: \(report.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: runtime)) == before, "the runtime binary changed")
        #expect(try attacked(["delete", "--force", id]).code == 0)
        env.expectNoLeaks(id: id)

        // The same entry point as a container's process: `run` ends in berth-dmz's refusal too.
        let second = env.id("cve-2019-5736-run")
        var entry = env.spec(id: second, args: ["/bin/evil"])
        entry.root = Root(path: rootfs, readonly: true)
        let ran = try attacked(["run", "--bundle", try env.bundle(entry), second])
        #expect(ran.code == 127 && ran.stderr.contains("berth-dmz: not started by berth-runtime"), "exit \(ran.code): \(ran.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: runtime)) == before)
        env.expectNoLeaks(id: second)
    }

    @Test("/proc and /sys with the default spec: sysrq-trigger, /proc/sys and /sys are read-only, kcore/keys/timer_list read empty, /dev/mem is denied")
    func procAndSys() throws {
        let env = try TestEnvironment()
        let id = env.id("procsys")
        // the default spec's masks and read-only paths, unchanged (env.spec starts from it)
        var spec = env.spec(id: id, args: ["berth-test-init", "write", "/proc/sysrq-trigger", "h", "write", "/proc/sys/kernel/hostname", "x",
                                           "write", "/sys/kernel/uevent_helper", "x", "read", "/proc/keys", "read", "/proc/timer_list",
                                           "mknod", "/dev/mem2", "1", "1", "open", "/dev/mem2", "r", "procs"])
        spec.process?.capabilities = Capabilities(bounding: ["CAP_MKNOD", "CAP_SYS_ADMIN"], effective: ["CAP_MKNOD", "CAP_SYS_ADMIN"],
                                                  permitted: ["CAP_MKNOD", "CAP_SYS_ADMIN"])
        #expect(spec.linux?.readonlyPaths?.contains("/proc/sysrq-trigger") == true)
        let result = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(result.code == 0, "\(result.stderr)")
        // this host's kernel may be built without magic sysrq: then the file is absent inside too
        let sysrq = FileManager.default.fileExists(atPath: "/proc/sysrq-trigger") ? "EROFS" : "ENOENT"
        #expect(result.value("write /proc/sysrq-trigger") == sysrq, "\(result.stdout)")
        #expect(result.value("write /proc/sys/kernel/hostname") == "EROFS")
        let sysWrite = result.value("write /sys/kernel/uevent_helper")
        #expect(sysWrite == "EROFS" || (sysWrite == "ENOENT" && !FileManager.default.fileExists(atPath: "/sys/kernel/uevent_helper")), "\(result.stdout)")
        #expect(result.value("read /proc/keys") == "", "masked by /dev/null even with CAP_SYS_ADMIN")
        #expect(result.value("read /proc/timer_list") == "")
        #expect(result.value("open /dev/mem2") == "EPERM", "a node made inside does not open host memory")
        #expect(result.value("procs") == "1", "no host pids visible")
        env.expectNoLeaks(id: id)
    }

    static let apparmorParser = "/usr/sbin/apparmor_parser"

    @Test("AppArmor: a loaded profile confines the container (attr/current names it, its deny rule holds); one not loaded fails create cleanly",
          .enabled(if: AppArmor.enabled && FileManager.default.isExecutableFile(atPath: apparmorParser), "needs AppArmor enabled and apparmor_parser"))
    func apparmorProfile() throws {
        let env = try TestEnvironment()
        let name = "berth-test-\(getpid())"
        let profile = env.dir + "/\(name).apparmor"
        try """
        abi <abi/3.0>,
        profile \(name) flags=(attach_disconnected,mediate_deleted) {
          file,
          capability,
          network,
          signal,
          unix,
          deny /out/denied w,
        }

        """.write(toFile: profile, atomically: true, encoding: .utf8)
        let loaded = try run(Self.apparmorParser, ["-r", "-K", profile])
        #expect(loaded.code == 0, "\(loaded.stderr)")
        defer { _ = try? run(Self.apparmorParser, ["-R", "-K", profile]) }

        let out = try env.outDirectory()
        let id = env.id("apparmor")
        var spec = env.spec(id: id, args: ["berth-test-init", "read", "/proc/self/attr/current", "write", "/out/denied", "x", "write", "/out/allowed", "x"])
        spec.process?.apparmorProfile = name
        spec.mounts! += [Mount(destination: "/out", type: "bind", source: out, options: ["rbind", "rw"])]
        let result = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(result.code == 0, "\(result.stderr)")
        #expect(result.value("read /proc/self/attr/current") == "\(name) (enforce)", "\(result.stdout)")
        #expect(result.value("write /out/denied") == "EACCES", "the profile's deny rule")
        #expect(result.value("write /out/allowed") == "ok")
        env.expectNoLeaks(id: id)

        let missing = env.id("apparmor-missing")
        var missingSpec = env.spec(id: missing, args: ["berth-test-init", "exit", "0"])
        missingSpec.process?.apparmorProfile = "berth-not-loaded-\(getpid())"
        let failed = try env.runtime(["create", "--bundle", try env.bundle(missingSpec), missing])
        #expect(failed.code == 1 && failed.stderr.contains("is not loaded in the kernel"), "\(failed.stderr)")
        env.expectNoLeaks(id: missing)
    }
}
