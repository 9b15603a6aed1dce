import Foundation
import Testing
import BerthOCI

@Suite("CLI: spec, features, version, global options")
struct CLITests {
    @Test("spec writes a config that validates, and refuses to overwrite it")
    func spec() throws {
        let env = try TestEnvironment()
        let dir = env.dir + "/specdir"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(try env.runtime(["spec", "--bundle", dir]).code == 0)
        let spec = try Spec.load(path: dir + "/config.json")
        #expect(spec.linux?.namespaces?.map(\.type).contains("pid") == true)
        #expect(try env.runtime(["spec", "--bundle", dir]).code != 0)
        let rootless = env.dir + "/rootless"
        try FileManager.default.createDirectory(atPath: rootless, withIntermediateDirectories: true)
        #expect(try env.runtime(["spec", "--rootless", "--bundle", rootless]).code == 0)
        #expect(try Spec.load(path: rootless + "/config.json").linux?.uidMappings?.first?.hostID == geteuid())
    }

    @Test("features lists what is implemented")
    func features() throws {
        let out = try run(Package.runtimeBinary, ["features"])
        let doc = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
        #expect(doc?["ociVersionMax"] as? String == "1.3.0")
        #expect((doc?["hooks"] as? [String])?.count == 6)
        let linux = doc?["linux"] as? [String: Any]
        #expect((linux?["namespaces"] as? [String])?.contains("time") == true)
        let seccomp = linux?["seccomp"] as? [String: Any]
        #expect(seccomp?["enabled"] as? Bool == true)
        #expect((seccomp?["actions"] as? [String])?.contains("SCMP_ACT_NOTIFY") == true, "notify is implemented")
        #expect((seccomp?["supportedFlags"] as? [String])?.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") == true)
    }

    @Test("global options may come before the command, as runc's callers put them")
    func globalOptionsFirst() throws {
        let env = try TestEnvironment()
        let out = try run(Package.runtimeBinary, ["--root", env.stateRoot, "--log-format", "json", "list", "--format", "json"])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
        let systemd = try run(Package.runtimeBinary, ["--systemd-cgroup", "--root", env.stateRoot, "list"])
        #expect(systemd.code == 1)
        #expect(systemd.stderr.contains("systemd cgroup driver is not supported"))
        #expect(try run(Package.runtimeBinary, ["--version"]).stdout.contains("berth-runtime version"))
    }
}
