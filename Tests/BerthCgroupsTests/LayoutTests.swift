import Testing
@testable import BerthCgroups

/// mountinfo lines as the three kinds of host write them.
enum SampleMountinfo {
    static let hybrid = """
    22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
    30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
    31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate
    32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,xattr,name=systemd
    33 30 0:29 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
    34 30 0:30 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpuacct
    35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
    36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
    """
    static let legacy = """
    22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
    33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
    35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
    """
    static let unified = """
    22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
    31 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
    """
}

@Suite("cgroup layout detection from mountinfo")
struct LayoutTests {
    @Test("hybrid: v1 controllers and a v2 mount")
    func hybrid() {
        let layout = CgroupLayout.parse(mountinfo: SampleMountinfo.hybrid)
        #expect(layout.mode == .hybrid)
        #expect(layout.v2?.mountPoint == "/sys/fs/cgroup/unified")
        #expect(layout.v1.map(\.controllers) == [["name=systemd"], ["cpu"], ["cpuacct"], ["memory"], ["pids"]])
        #expect(layout.controllerHierarchies.count == 4)
    }

    @Test("legacy: co-mounted controllers stay one hierarchy")
    func legacy() {
        let layout = CgroupLayout.parse(mountinfo: SampleMountinfo.legacy)
        #expect(layout.mode == .legacy)
        #expect(layout.v2 == nil)
        #expect(layout.v1.first?.controllers == ["cpu", "cpuacct"])
    }

    @Test("unified: only cgroup2")
    func unified() {
        let layout = CgroupLayout.parse(mountinfo: SampleMountinfo.unified)
        #expect(layout.mode == .unified)
        #expect(layout.v1.isEmpty)
        #expect(layout.v2?.mountPoint == "/sys/fs/cgroup")
    }

    @Test("mountinfo octal escapes are decoded")
    func escapes() {
        #expect(CgroupLayout.unescape(#"/mnt/with\040space"#) == "/mnt/with space")
    }

    @Test("the running host is detected from its own mount table")
    func runningHost() throws {
        let layout = try CgroupLayout.detect()
        #expect(layout.v1.isEmpty || layout.mode != .unified)
    }
}

@Suite("cgroupsPath resolution")
struct CgroupPathTests {
    let layout = CgroupLayout.parse(mountinfo: SampleMountinfo.hybrid)
    let caller = ProcessCgroups.parse("""
    5:memory:/process_api/abc
    4:cpu:/
    0::/user.slice
    """)

    @Test("a relative path goes under the caller's cgroup in each hierarchy")
    func relative() {
        let path = CgroupPath("berth/c1")
        let memory = layout.v1.first { $0.controllers == ["memory"] }!
        let cpu = layout.v1.first { $0.controllers == ["cpu"] }!
        #expect(path.directory(in: memory, caller: caller) == "/sys/fs/cgroup/memory/process_api/abc/berth/c1")
        #expect(path.directory(in: cpu, caller: caller) == "/sys/fs/cgroup/cpu/berth/c1")
        #expect(path.directory(in: layout.v2!, caller: caller) == "/sys/fs/cgroup/unified/user.slice/berth/c1")
    }

    @Test("an absolute path is taken as given")
    func absolute() {
        let memory = layout.v1.first { $0.controllers == ["memory"] }!
        #expect(CgroupPath("/machine/c1").directory(in: memory, caller: caller) == "/sys/fs/cgroup/memory/machine/c1")
    }

    @Test("the manager removes only the parents inside cgroupsPath")
    func ancestors() {
        let manager = FSCgroupManager(layout: layout, path: CgroupPath("berth/c1"), caller: caller)
        #expect(manager.ancestors.contains("/sys/fs/cgroup/memory/process_api/abc/berth"))
        #expect(!manager.ancestors.contains("/sys/fs/cgroup/memory/process_api/abc"))
        #expect(FSCgroupManager(layout: layout, path: CgroupPath("c1"), caller: caller).ancestors.isEmpty)
    }
}
