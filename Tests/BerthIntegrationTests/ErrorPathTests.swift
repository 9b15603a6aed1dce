import Foundation
import Testing
import BerthOCI

@Suite("error paths: one clear message, non-zero exit, nothing left behind", .enabled(if: Host.canRunContainers, Host.reason))
struct ErrorPathTests {
    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case malformedJSON, missingRootfs, unknownNamespace, failingPrestartHook, missingBinary, failingMount, badUser, apparmorWithoutLSM
        var testDescription: String { rawValue }
    }

    /// What each broken bundle must say.
    func expectation(_ c: Case) -> String {
        switch c {
        case .malformedJSON: "config.json: malformed JSON"
        case .missingRootfs: "rootfs /nonexistent/rootfs: ENOENT"
        case .unknownNamespace: "linux.namespaces[0].type: unknown namespace \"bogus\""
        case .failingPrestartHook: "prestart hook /bin/false exited with status 1"
        case .missingBinary: "look up executable no-such-binary: ENOENT"
        case .failingMount: "mount /mnt/bad: ENODEV"
        case .badUser: "process.user.uid: -5 is not a non-negative integer in range"
        // no AppArmor on the host: "not enabled"; AppArmor without this profile: "not loaded"
        case .apparmorWithoutLSM: "process.apparmorProfile: \"berth-default\""
        }
    }

    @Test("a broken bundle fails create and run cleanly", arguments: Case.allCases)
    func brokenBundle(_ c: Case) throws {
        let env = try TestEnvironment()
        for command in ["create", "run"] {
            let id = env.id("\(c.rawValue)-\(command)")
            var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
            var rawOverride: String?
            switch c {
            case .malformedJSON: rawOverride = #"{"ociVersion": "1.2.0", "root": {"path": "#
            case .missingRootfs: spec.root = Root(path: "/nonexistent/rootfs")
            case .unknownNamespace: spec.linux?.namespaces = [Namespace(type: "bogus")]
            case .failingPrestartHook:
                var hooks = Hooks()
                hooks.prestart = [Hook(path: "/bin/false")]
                spec.hooks = hooks
            case .missingBinary: spec.process?.args = ["no-such-binary"]
            case .failingMount: spec.mounts!.append(Mount(destination: "/mnt/bad", type: "no-such-fs", source: "none"))
            case .apparmorWithoutLSM: spec.process?.apparmorProfile = "berth-default"
            case .badUser: rawOverride = String(decoding: spec.encoded(), as: UTF8.self).replacingOccurrences(of: "\"uid\" : 0", with: "\"uid\" : -5")
            }
            let bundle = try env.bundle(spec)
            if let rawOverride { try rawOverride.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8) }
            let out = try env.runtime([command, "--bundle", bundle, id])
            #expect(out.code == 1, "\(command): exit \(out.code)")
            // warnings (a v2 host warns that device rules are not enforced yet) may precede the one error line
            let lines = out.stderr.split(separator: "\n").filter { !$0.hasPrefix("berth-runtime: warning:") }
            #expect(lines.count == 1, "\(command): one line of error, got: \(out.stderr)")
            #expect(out.stderr.contains(expectation(c)), "\(command): \(out.stderr)")
            env.expectNoLeaks(id: id)
        }
    }

    @Test("--log with --log-format json records the error as a JSON line")
    func jsonLog() throws {
        let env = try TestEnvironment()
        let id = env.id("log")
        let log = env.dir + "/runtime.log"
        var spec = env.spec(id: id, args: ["no-such-binary"])
        spec.process?.args = ["no-such-binary"]
        let out = try run(Package.runtimeBinary, ["--root", env.stateRoot, "--log", log, "--log-format", "json", "create", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 1)
        let line = readFile(log).split(separator: "\n").last { $0.contains("\"level\":\"error\"") } ?? ""
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(object?["level"] as? String == "error")
        #expect((object?["msg"] as? String)?.contains("no-such-binary") == true)
        env.expectNoLeaks(id: id)
    }

    @Test("commands on unknown containers name the id")
    func unknownContainer() throws {
        let env = try TestEnvironment()
        for args in [["state", "ghost"], ["start", "ghost"], ["kill", "ghost"], ["delete", "ghost"], ["pause", "ghost"], ["exec", "ghost", "true"]] {
            let out = try env.runtime(args)
            #expect(out.code == 1, "\(args)")
            #expect(out.stderr.contains("container \"ghost\" does not exist"), "\(args): \(out.stderr)")
        }
        #expect(try env.runtime(["delete", "--force", "ghost"]).code == 0, "runc: delete --force of a missing container succeeds")
        let bad = try env.runtime(["create", "--bundle", env.dir, "../evil"])
        #expect(bad.stderr.contains("invalid container id"))
    }

    @Test("create with an id in use fails and leaves the existing container alone")
    func duplicateID() throws {
        let env = try TestEnvironment()
        let id = env.id("dup")
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "sleep", "30"]))
        #expect(try env.runtime(["create", "--bundle", bundle, id]).code == 0)
        let second = try env.runtime(["create", "--bundle", bundle, id])
        #expect(second.code == 1)
        #expect(second.stderr.contains("already exists"))
        #expect(try env.state(id)["status"] as? String == "created")
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("create killed halfway: state says creating, then stopped, and delete removes everything")
    func crashDuringCreate() throws {
        let env = try TestEnvironment()
        let id = env.id("crash")
        var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
        var hooks = Hooks()
        hooks.createRuntime = [Hook(path: "/bin/sleep", args: ["sleep", "2"])]
        spec.hooks = hooks
        let creating = try spawn(Package.runtimeBinary, ["--root", env.stateRoot, "create", "--bundle", try env.bundle(spec), id])
        #expect(try env.eventually { try env.state(id)["status"] as? String == "creating" })
        #expect(try env.runtime(["kill", id, "KILL"]).stderr.contains("still being created"))
        kill(creating.pid, SIGKILL)
        #expect(creating.wait().code == 137)
        #expect(try env.eventually { try env.state(id)["status"] as? String == "stopped" })
        let deleted = try env.runtime(["delete", id])
        #expect(deleted.code == 0, "\(deleted.stderr)")
        env.expectNoLeaks(id: id)
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        components(separatedBy: a).joined(separator: b)
    }
}