import Testing
@testable import BerthCgroups
import BerthOCI
import BerthSys

/// Every resource field lands in the exact v1 file with the exact value.
@Suite("v1 resources against a fake cgroupfs")
struct V1ResourceTests {
    func manager(_ fs: FakeCgroupfs) throws -> FSCgroupManager {
        let m = FSCgroupManager(layout: fs.layout, path: CgroupPath("c1"), caller: ProcessCgroups(paths: [:]))
        // the kernel creates controller files; the fake needs the ones apply() checks for
        try fs.scratch.populate("c1")
        try m.create()
        return m
    }

    @Test("memory limit, swap, reservation, swappiness and the OOM killer switch")
    func memory() throws {
        let fs = try FakeCgroupfs()
        let m = try manager(fs)
        var r = Resources()
        var mem = Resources.Memory()
        mem.limit = 64 << 20; mem.swap = 128 << 20; mem.reservation = 32 << 20; mem.swappiness = 10; mem.disableOOMKiller = true
        r.memory = mem
        var warnings: [String] = []
        try m.apply(r) { warnings.append($0) }
        let dir = fs.root + "/memory/c1/"
        #expect(try Files.read(dir + "memory.limit_in_bytes") == "67108864")
        #expect(try Files.read(dir + "memory.memsw.limit_in_bytes") == "134217728")
        #expect(try Files.read(dir + "memory.soft_limit_in_bytes") == "33554432")
        #expect(try Files.read(dir + "memory.swappiness") == "10")
        #expect(try Files.read(dir + "memory.oom_control") == "1")
        #expect(warnings.isEmpty)
    }

    @Test("cpu shares, quota and period; cpuset cpus and mems")
    func cpu() throws {
        let fs = try FakeCgroupfs()
        let m = try manager(fs)
        var r = Resources()
        var cpu = Resources.CPU()
        cpu.shares = 512; cpu.quota = 50_000; cpu.period = 100_000; cpu.cpus = "1"; cpu.mems = "0"
        r.cpu = cpu
        try m.apply(r) { _ in }
        #expect(try Files.read(fs.root + "/cpu/c1/cpu.shares") == "512")
        #expect(try Files.read(fs.root + "/cpu/c1/cpu.cfs_quota_us") == "50000")
        #expect(try Files.read(fs.root + "/cpu/c1/cpu.cfs_period_us") == "100000")
        #expect(try Files.read(fs.root + "/cpuset/c1/cpuset.cpus") == "1")
        #expect(try Files.read(fs.root + "/cpuset/c1/cpuset.mems") == "0")
    }

    @Test("pids limit, and 0 or less is no limit", arguments: [(16, "16"), (0, "max"), (-1, "max")] as [(Int64, String)])
    func pids(limit: Int64, expected: String) throws {
        let fs = try FakeCgroupfs()
        let m = try manager(fs)
        var r = Resources()
        r.pids = Resources.Pids(limit: limit)
        try m.apply(r) { _ in }
        #expect(try Files.read(fs.root + "/pids/c1/pids.max") == expected)
    }

    @Test("a resource whose controller is not mounted is an error naming it")
    func missingController() throws {
        let fs = try FakeCgroupfs()
        let layout = CgroupLayout(mode: .legacy, v1: fs.layout.v1.filter { $0.controllers != ["pids"] }, v2: nil)
        let m = FSCgroupManager(layout: layout, path: CgroupPath("c2"), caller: ProcessCgroups(paths: [:]))
        var r = Resources()
        r.pids = Resources.Pids(limit: 5)
        #expect(throws: BerthError("linux.resources.pids: the pids controller is not mounted on this host")) { try m.apply(r) { _ in } }
    }

    @Test("raw unified keys are refused on a host that is not v2-only")
    func unifiedOnHybrid() throws {
        let fs = try FakeCgroupfs()
        let m = try manager(fs)
        var r = Resources()
        r.unified = ["memory.high": "1G"]
        #expect(throws: BerthError.self) { try m.apply(r) { _ in } }
    }

    @Test("device rules are written in order: config, the standard devices, the container's own")
    func devices() throws {
        let fs = try FakeCgroupfs()
        let devicesHierarchy = Hierarchy(version: .v1, mountPoint: fs.root + "/devices", root: "/", controllers: ["devices"])
        let layout = CgroupLayout(mode: .legacy, v1: fs.layout.v1 + [devicesHierarchy], v2: nil)
        try Files.makeDirectories(fs.root + "/devices/c1")
        for file in ["devices.allow", "devices.deny"] { try Files.writeAtomically([], to: fs.root + "/devices/c1/" + file) }
        let m = FSCgroupManager(layout: layout, path: CgroupPath("c1"), caller: ProcessCgroups(paths: [:]))
        let entries = DeviceAccessRule.effective([Resources.DeviceRule(allow: false, access: "rwm"),
                                                  Resources.DeviceRule(allow: true, type: "c", major: 1, minor: 3, access: "rw"),
                                                  Resources.DeviceRule(allow: true, type: "b", major: -1)], devices: []).map(\.v1Entry)
        #expect(Array(entries.prefix(4)) == ["a", "c 1:3 rw", "b *:* rwm", "c *:* m"])
        // one open per file, one line per write: the plain file shows every rule, in order
        try m.applyDevices([Resources.DeviceRule(allow: false, access: "rwm")],
                           devices: [Device(type: "c", path: "/dev/fuse", major: 10, minor: 229)], warn: { _ in })
        let all = DeviceAccessRule.effective([Resources.DeviceRule(allow: false, access: "rwm")],
                                             devices: [Device(type: "c", path: "/dev/fuse", major: 10, minor: 229)])
        #expect(try Files.read(fs.root + "/devices/c1/devices.deny") == "a\n")
        #expect(try Files.read(fs.root + "/devices/c1/devices.allow") == all.filter(\.allow).map { $0.v1Entry + "\n" }.joined())
        #expect(all.last?.v1Entry == "c 10:229 rwm", "the container's own device comes last")
    }
}
