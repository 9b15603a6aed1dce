import Foundation
import Testing
import BerthOCI

/// An unprivileged user (a uid with no passwd entry, entered with setpriv) runs a container.
@Suite("rootless", .enabled(if: Host.canRunContainers && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root to drop to an unprivileged uid with setpriv"))
struct RootlessTests {
    static let uid = 23456

    func asUser(_ args: [String]) throws -> Output {
        try run("/usr/bin/setpriv", ["--reuid=\(Self.uid)", "--regid=\(Self.uid)", "--clear-groups", Package.runtimeBinary] + args)
    }

    @Test("spec --rootless + run: the user's uid is root inside, cgroups are skipped with a warning")
    func rootlessRun() throws {
        let env = try TestEnvironment()
        let dir = env.dir + "/rootless"
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        for path in [dir, state] { chown(path, uid_t(Self.uid), gid_t(Self.uid)) }
        let specOut = try asUser(["spec", "--rootless", "--bundle", dir])
        #expect(specOut.code == 0, "\(specOut.stderr)")
        var spec = try Spec.load(path: dir + "/config.json")
        spec.root = Root(path: SharedRootfs.path, readonly: true)
        spec.process?.terminal = false
        spec.process?.args = ["berth-test-init", "ids", "pid", "read", "/proc/self/uid_map", "write", "/proc/sys/kernel/hostname", "x"]
        try Data(spec.encoded()).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let id = env.id("rootless")
        let out = try asUser(["--root", state, "run", "--bundle", dir, id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.value("uid") == "0")
        #expect(out.value("pid") == "1")
        #expect(out.value("read /proc/self/uid_map")?.split(separator: " ").map(String.init) == ["0", String(Self.uid), "1"])
        #expect(out.value("write /proc/sys/kernel/hostname") == "EROFS")
        #expect(out.stderr.contains("warning: rootless: no cgroup is delegated to uid \(Self.uid)"))
        #expect(!FileManager.default.fileExists(atPath: state + "/" + id))

        // limits without a delegated cgroup are refused, and nothing is left
        spec.linux?.resources = Resources.cpu(quota: 10_000, period: 100_000)
        try Data(spec.encoded()).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let limited = try asUser(["--root", state, "run", "--bundle", dir, id])
        #expect(limited.code == 1)
        #expect(limited.stderr.contains("none is delegated to uid \(Self.uid)"), "\(limited.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state + "/" + id))
    }
}
