import Foundation
import Testing
import BerthOCI
import BerthSecurity

/// The engine's default profile on the real kernel: what a default container
/// must not be able to do fails with the errno Docker users expect, and
/// ordinary work (threads, processes, files, sockets) still runs.
@Suite("default seccomp profile", .enabled(if: Host.canRunContainers, Host.reason))
struct DefaultProfileTests {
    static let attacks = ["mount", "unshare-user", "clone-newuser", "clone3", "keyctl", "init_module", "reboot",
                          "settimeofday", "raw-socket", "vsock", "personality-aslr"]

    func run(caps: [String], env: TestEnvironment) throws -> Output {
        let id = env.id("default-profile")
        var spec = env.spec(id: id, args: ["berth-test-init", "procs", "caps"] + Self.attacks.flatMap { ["try", $0] }
                                + ["fork", "2", "spin-threads", "2", "0.05", "getppid", "bench-syscalls", "1000"])
        spec.process?.capabilities = Capabilities(bounding: caps, effective: caps, permitted: caps)
        spec.linux?.seccomp = DefaultSeccompProfile.profile(capabilities: caps)
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        env.expectNoLeaks(id: id)
        return out
    }

    @Test("a default container: escapes fail with EPERM (clone3 with ENOSYS), ordinary work runs")
    func defaultContainer() throws {
        let env = try TestEnvironment()
        let caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID", "CAP_SETUID",
                    "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
        let out = try run(caps: caps, env: env)
        #expect(out.code == 0, "\(out.stderr)")
        for attack in Self.attacks {
            let expected = attack == "clone3" ? "ENOSYS" : "EPERM"
            #expect(out.value("try \(attack)") == expected, "\(attack): \(out.value("try \(attack)") ?? "no output")")
        }
        #expect(out.value("procs") == "1", "no host pids visible")
        #expect(out.value("forked") == "2")
        #expect(out.value("getppid") == "ok")
        #expect(out.value("ns getpid") != nil)
        #expect(!out.stderr.contains("unknown syscall"), "every name in the table resolves: \(out.stderr)")
    }

    @Test("capabilities open their families: CAP_SYS_ADMIN allows mount and unshare, CAP_SYS_TIME reaches the clock check")
    func capabilityGates() throws {
        let env = try TestEnvironment()
        let caps = ["CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYS_BOOT", "CAP_NET_RAW"]
        let out = try run(caps: caps, env: env)
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("try mount") == "ok")
        #expect(out.value("try unshare-user") == "ok")
        #expect(out.value("try clone3") == "ok")
        #expect(out.value("try settimeofday") == "EINVAL", "the kernel, not seccomp, judged the (invalid) time")
        #expect(out.value("try reboot") == "EINVAL", "the kernel, not seccomp, judged the (invalid) command")
        #expect(out.value("try raw-socket") == "ok", "\(out.stdout)")
        #expect(out.value("try keyctl") == "EPERM", "keyrings stay blocked whatever the capabilities")
        #expect(out.value("try init_module") == "EPERM")
    }
}
