import Foundation
import Testing
import BerthOCI
import BerthSecurity

/// Filters are loaded and enforced: each test makes the container hit one.
@Suite("seccomp (libseccomp) on the real kernel", .enabled(if: Host.canRunContainers, Host.reason))
struct SeccompTests {
    func profile(_ rules: [Seccomp.Syscall], defaultAction: String = "SCMP_ACT_ALLOW") -> Seccomp {
        Seccomp(defaultAction: defaultAction, defaultErrnoRet: nil, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                flags: nil, listenerPath: nil, listenerMetadata: nil, syscalls: rules)
    }

    @Test("SCMP_ACT_ERRNO with errnoRet fails that syscall only, with and without no_new_privs")
    func errnoAction() throws {
        let env = try TestEnvironment()
        for nnp in [true, false] {
            let id = env.id("errno")
            var spec = env.spec(id: id, args: ["berth-test-init", "getppid", "kill0", "pid"])
            spec.process?.noNewPrivileges = nnp
            spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: nil)])
            let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
            #expect(out.code == 0, "nnp \(nnp): \(out.stderr)")
            #expect(out.value("getppid") == "errno42", "nnp \(nnp)")
            #expect(out.value("kill0") == "ok")
            #expect(out.value("pid") == "1")
            env.expectNoLeaks(id: id)
        }
    }

    @Test("argument comparisons: kill(pid, 0) is refused, other signals are not")
    func argumentRule() throws {
        let env = try TestEnvironment()
        let id = env.id("args")
        var spec = env.spec(id: id, args: ["berth-test-init", "kill0", "getppid"])
        spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["kill"], action: "SCMP_ACT_ERRNO", errnoRet: 13,
                                                       args: [Seccomp.Arg(index: 1, value: 0, valueTwo: nil, op: "SCMP_CMP_EQ")])])
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("kill0") == "EACCES")
        #expect(out.value("getppid") == "ok")
        env.expectNoLeaks(id: id)
    }

    @Test("SCMP_ACT_KILL_PROCESS ends the container with SIGSYS (exit 159)")
    func killProcess() throws {
        let env = try TestEnvironment()
        let id = env.id("sigsys")
        var spec = env.spec(id: id, args: ["berth-test-init", "getppid"])
        spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_KILL_PROCESS", errnoRet: nil, args: nil)])
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 128 + 31, "exit \(out.code): \(out.stderr)")
        env.expectNoLeaks(id: id)
    }

    @Test("exec'd processes get the container's filter")
    func execInherits() throws {
        let env = try TestEnvironment()
        let id = env.id("seccompexec")
        var spec = env.spec(id: id, args: ["berth-test-init", "sleep", "30"])
        spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: nil)])
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(spec), id]).code == 0)
        let out = try env.runtime(["exec", id, "berth-test-init", "getppid"])
        #expect(out.value("getppid") == "errno42", "\(out.stdout) \(out.stderr)")
        #expect(try env.runtime(["delete", "--force", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("the filter is loaded before start only when it allows what the child calls until execve")
    func beforeStart() throws {
        // the evaluator, on compiled programs: kernel semantics, arguments never guessed
        let plain = try SeccompCompiler.compile(profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: nil)]), warn: { _ in })
        #expect(plain.allowsRegardlessOfArguments(CompiledSeccomp.waitingSyscalls))
        let errnoRet: UInt32 = 0x0005_0000 | 42, allow: UInt32 = 0x7fff_0000
        #expect(plain.evaluate(nr: 110, arch: 0xC000_003E) == errnoRet, "getppid: SECCOMP_RET_ERRNO|42")
        #expect(plain.evaluate(nr: 39, arch: 0xC000_003E) == allow, "getpid: SECCOMP_RET_ALLOW")
        let docker = try SeccompCompiler.compile(DefaultSeccompProfile.profile(capabilities: []), warn: { _ in })
        #expect(docker.allowsRegardlessOfArguments(CompiledSeccomp.waitingSyscalls))
        let byArgument = try SeccompCompiler.compile(profile([Seccomp.Syscall(names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: 5,
                                                                               args: [Seccomp.Arg(index: 0, value: 99, valueTwo: nil, op: "SCMP_CMP_EQ")])]), warn: { _ in })
        #expect(!byArgument.allowsRegardlessOfArguments(CompiledSeccomp.waitingSyscalls), "read's verdict depends on its fd")
        let noPoll = profile([Seccomp.Syscall(names: ["poll", "ppoll"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: nil)])
        #expect(!(try SeccompCompiler.compile(noPoll, warn: { _ in })).allowsRegardlessOfArguments(CompiledSeccomp.waitingSyscalls))

        // and on the kernel: a filter refusing poll still lets create/start work (loaded after the fifo wait)
        let env = try TestEnvironment()
        let id = env.id("nopoll")
        var spec = env.spec(id: id, args: ["berth-test-init", "sleep", "30"])
        spec.linux?.seccomp = noPoll
        let bundle = try env.bundle(spec)
        #expect(try env.runtime(["create", "--bundle", bundle, id]).code == 0)
        let start = try env.runtime(["start", id])
        #expect(start.code == 0, "the child still waited for start: \(start.stderr)")
        #expect(try env.state(id)["status"] as? String == "running")
        #expect(try env.runtime(["kill", id, "KILL"]).code == 0)
        #expect(try env.eventually { try env.state(id)["status"] as? String == "stopped" })
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("compiled filters are cached by profile: one file for two starts")
    func cache() throws {
        let env = try TestEnvironment()
        for _ in 0..<2 {
            let id = env.id("cache")
            var spec = env.spec(id: id, args: ["berth-test-init", "getppid"])
            spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 7, args: nil)])
            let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
            #expect(out.value("getppid") == "errno7", "\(out.stderr)")
        }
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: env.stateRoot + "/.seccomp-cache")) ?? []
        #expect(cached.count == 1 && cached[0].hasSuffix(".bpf"), "\(cached)")
        #expect(try env.runtime(["list", "-q"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the cache is not a container")
    }

    @Test("an unknown syscall name is skipped with a warning; an unknown action is an error")
    func unknownNames() throws {
        let env = try TestEnvironment()
        let id = env.id("unknownsys")
        var spec = env.spec(id: id, args: ["berth-test-init", "getppid"])
        spec.linux?.seccomp = profile([Seccomp.Syscall(names: ["not_a_syscall", "getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: nil)])
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0)
        #expect(out.stderr.contains("warning: linux.seccomp: unknown syscall \"not_a_syscall\""), "\(out.stderr)")
        #expect(out.value("getppid") == "errno42")
        env.expectNoLeaks(id: id)

        let bad = env.id("badaction")
        var badSpec = env.spec(id: bad, args: ["berth-test-init", "getppid"])
        badSpec.linux?.seccomp = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_DANCE", errnoRet: nil, args: nil)])
        let failed = try env.runtime(["create", "--bundle", try env.bundle(badSpec), bad])
        #expect(failed.code == 1)
        #expect(failed.stderr.contains("linux.seccomp: unknown action \"SCMP_ACT_DANCE\""), "\(failed.stderr)")
        env.expectNoLeaks(id: bad)
    }

    @Test("SCMP_ACT_NOTIFY: the listener reaches the agent at listenerPath for init and exec; the agent's answer is the syscall's result",
          arguments: [true, false])
    func notifyListener(noNewPrivileges: Bool) throws {
        let env = try TestEnvironment()
        let socket = try env.outDirectory() + "/agent.sock"
        let agent = try spawn(Package.helper, ["seccomp-agent", socket, "2", "40"])
        defer { kill(agent.pid, SIGKILL) }
        #expect(env.eventually { FileManager.default.fileExists(atPath: socket) })
        let id = env.id("notify")
        var spec = env.spec(id: id, args: ["berth-test-init", "getppid-value", "sleep", "30"])
        spec.process?.noNewPrivileges = noNewPrivileges
        var rules = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_NOTIFY", errnoRet: nil, args: nil)])
        rules.listenerPath = socket
        rules.listenerMetadata = "berth-test;answer=4242"
        // the agent's answer is awaited killably (5.19+): both kernels here have it
        if noNewPrivileges { rules.flags = ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"] }
        spec.linux?.seccomp = rules
        let created = try env.runtime(["run", "-d", "--bundle", try env.bundle(spec), id])
        #expect(created.code == 0, "\(created.stderr)")
        let exec = try env.runtime(["exec", id, "berth-test-init", "getppid-value", "kill0"])
        #expect(exec.value("getppid-value") == "4242", "\(exec.stdout) \(exec.stderr)")
        #expect(exec.value("kill0") == "ok")
        #expect(try env.runtime(["delete", "--force", id]).code == 0)
        let out = agent.wait(timeout: 45)
        #expect(out.value("agent-connections") == "2", "\(out.stdout)")
        #expect(out.value("agent-answered") == "2", "init and exec each asked once: \(out.stdout)")
        for line in out.values("agent-state") {
            let state = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            #expect(state["fds"] as? [String] == ["seccompFd"])
            #expect(state["metadata"] as? String == "berth-test;answer=4242")
            #expect((state["pid"] as? Int ?? 0) > 0)
            let container = state["state"] as? [String: Any] ?? [:]
            #expect(container["id"] as? String == id)
        }
        env.expectNoLeaks(id: id)
    }

    @Test("SCMP_ACT_NOTIFY errors: no agent listening fails create and leaves nothing; no listenerPath, a notified sendmsg, a notify default are refused")
    func notifyErrors() throws {
        let env = try TestEnvironment()
        let id = env.id("noagent")
        var spec = env.spec(id: id, args: ["berth-test-init", "getppid-value"])
        var rules = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_NOTIFY", errnoRet: nil, args: nil)])
        rules.listenerPath = try env.outDirectory() + "/nobody.sock"
        spec.linux?.seccomp = rules
        let failed = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(failed.code == 1)
        #expect(failed.stderr.contains("connect to seccomp agent (linux.seccomp.listenerPath)") && failed.stderr.contains("nobody.sock"), "\(failed.stderr)")
        env.expectNoLeaks(id: id)

        let cases: [(Seccomp, String)] = [
            (profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_NOTIFY", errnoRet: nil, args: nil)]), "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
            ({ var p = profile([Seccomp.Syscall(names: ["sendmsg"], action: "SCMP_ACT_NOTIFY", errnoRet: nil, args: nil)]); p.listenerPath = "/x"; return p }(),
             "SCMP_ACT_NOTIFY on sendmsg is refused"),
            ({ var p = profile([], defaultAction: "SCMP_ACT_NOTIFY"); p.listenerPath = "/x"; return p }(), "defaultAction: SCMP_ACT_NOTIFY"),
            ({ var p = profile([]); p.flags = ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]; return p }(), "WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY"),
        ]
        for (bad, message) in cases {
            let badID = env.id("notifybad")
            var badSpec = env.spec(id: badID, args: ["berth-test-init", "getppid"])
            badSpec.linux?.seccomp = bad
            let out = try env.runtime(["create", "--bundle", try env.bundle(badSpec), badID])
            #expect(out.code == 1)
            #expect(out.stderr.contains(message), "\(out.stderr)")
            env.expectNoLeaks(id: badID)
        }
    }

    @Test("filter flags: TSYNC, LOG and SPEC_ALLOW load with the filter, which still applies")
    func flags() throws {
        let env = try TestEnvironment()
        let id = env.id("flags")
        var spec = env.spec(id: id, args: ["berth-test-init", "getppid", "kill0"])
        var rules = profile([Seccomp.Syscall(names: ["getppid"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: nil)])
        rules.flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        spec.linux?.seccomp = rules
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("getppid") == "errno42")
        #expect(out.value("kill0") == "ok")
        env.expectNoLeaks(id: id)

        let bad = env.id("badflag")
        var badSpec = env.spec(id: bad, args: ["berth-test-init", "getppid"])
        var badRules = profile([])
        badRules.flags = ["SECCOMP_FILTER_FLAG_EVERYTHING"]
        badSpec.linux?.seccomp = badRules
        let failed = try env.runtime(["create", "--bundle", try env.bundle(badSpec), bad])
        #expect(failed.code == 1 && failed.stderr.contains("linux.seccomp.flags: \"SECCOMP_FILTER_FLAG_EVERYTHING\" is not supported"), "\(failed.stderr)")
        env.expectNoLeaks(id: bad)
    }
}
