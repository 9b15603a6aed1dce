import Testing
@testable import BerthCgroups
import BerthOCI
import BerthSys
#if canImport(Glibc)
import Glibc
#endif

@Suite("v1 → v2 conversions (runc/crun formulas)")
struct ConversionTests {
    @Test("cpu.shares → cpu.weight", arguments: [(0, 0), (2, 1), (1024, 39), (262_144, 10000), (1, 1), (500_000, 10000)] as [(UInt64, UInt64)])
    func cpuWeight(shares: UInt64, weight: UInt64) {
        #expect(Conversions.cpuWeight(fromShares: shares) == weight)
    }

    @Test("blkio weight → io.weight", arguments: [(0, 0), (10, 1), (500, 4950), (1000, 10000)] as [(UInt16, UInt64)])
    func ioWeight(blkio: UInt16, io: UInt64) {
        #expect(Conversions.ioWeight(fromBlkioWeight: blkio) == io)
    }

    @Test("memory+swap → memory.swap.max", arguments: [
        (-1, Int64?.some(64), "max"), (128, 64, "64"), (64, 64, "0"), (32, 64, "0"), (128, nil, nil),
    ] as [(Int64, Int64?, String?)])
    func swapMax(swap: Int64, limit: Int64?, expected: String?) {
        #expect(Conversions.swapMax(memorySwap: swap, memoryLimit: limit) == expected)
    }

    @Test("quota and period → cpu.max", arguments: [
        (Int64?.some(50_000), UInt64?.some(100_000), String?.some("50000 100000")), (-1, 100_000, "max 100000"),
        (nil, 250_000, "max 250000"), (25_000, nil, "25000 100000"), (nil, nil, nil),
    ] as [(Int64?, UInt64?, String?)])
    func cpuMax(quota: Int64?, period: UInt64?, expected: String?) {
        #expect(Conversions.cpuMax(quota: quota, period: period) == expected)
    }
}

@Suite("v2 resources against a fake unified cgroupfs")
struct V2ResourceTests {
    /// /fake/berth/c1 with the v2 files a kernel would create.
    func unified() throws -> (FakeCgroupfs, FSCgroupManager) {
        let fs = try FakeCgroupfs()
        let v2 = Hierarchy(version: .v2, mountPoint: fs.root + "/unified", root: "/", controllers: [])
        let layout = CgroupLayout(mode: .unified, v1: [], v2: v2)
        let m = FSCgroupManager(layout: layout, path: CgroupPath("berth/c1"), caller: ProcessCgroups(paths: [:]))
        try m.create()
        for dir in ["", "/berth"] {
            try Files.writeAtomically(Array("cpuset cpu io memory hugetlb pids".utf8), to: fs.root + "/unified" + dir + "/cgroup.controllers")
            try Files.writeAtomically([], to: fs.root + "/unified" + dir + "/cgroup.subtree_control")
        }
        for file in ["memory.max", "memory.low", "memory.swap.max", "cpu.weight", "cpu.max", "cpuset.cpus", "pids.max", "io.weight", "io.max"] {
            try Files.writeAtomically([], to: fs.root + "/unified/berth/c1/" + file)
        }
        return (fs, m)
    }

    @Test("every field lands in its v2 file, and the ancestors enable the controllers")
    func fields() throws {
        let (fs, m) = try unified()
        var r = Resources()
        var memory = Resources.Memory()
        memory.limit = 64 << 20; memory.swap = 96 << 20; memory.reservation = 16 << 20
        r.memory = memory
        var cpu = Resources.CPU()
        cpu.shares = 1024; cpu.quota = 50_000; cpu.period = 100_000; cpu.cpus = "1"
        r.cpu = cpu
        r.pids = Resources.Pids(limit: 16)
        var warnings: [String] = []
        try m.apply(r) { warnings.append($0) }
        let dir = fs.root + "/unified/berth/c1/"
        #expect(try Files.read(dir + "memory.max") == "67108864")
        #expect(try Files.read(dir + "memory.swap.max") == "33554432")
        #expect(try Files.read(dir + "memory.low") == "16777216")
        #expect(try Files.read(dir + "cpu.weight") == "39")
        #expect(try Files.read(dir + "cpu.max") == "50000 100000")
        #expect(try Files.read(dir + "cpuset.cpus") == "1")
        #expect(try Files.read(dir + "pids.max") == "16")
        #expect(try Files.read(fs.root + "/unified/cgroup.subtree_control") == "+memory +cpu +cpuset +pids")
        #expect(try Files.read(fs.root + "/unified/berth/cgroup.subtree_control") == "+memory +cpu +cpuset +pids")
        #expect(warnings.isEmpty)
    }

    @Test("a controller the parent does not offer is an error naming it")
    func unavailable() throws {
        let (fs, m) = try unified()
        try Files.writeAtomically(Array("cpu memory".utf8), to: fs.root + "/unified/cgroup.controllers")
        var r = Resources()
        r.pids = Resources.Pids(limit: 4)
        #expect(throws: BerthError.self) { try m.apply(r) { _ in } }
    }

    @Test("what v2 cannot do is a warning: swappiness, disabling the OOM killer, realtime")
    func warnings() throws {
        let (fs, m) = try unified()
        var r = Resources()
        var memory = Resources.Memory()
        memory.swappiness = 10; memory.disableOOMKiller = true
        r.memory = memory
        var warnings: [String] = []
        try withExtendedLifetime(fs) { try m.apply(r) { warnings.append($0) } }
        #expect(warnings.count == 2)
    }
}

/// Runs a compiled device program on one request, as the kernel would: a small
/// interpreter of exactly the opcodes `V2Devices.compile` emits.
func runDeviceProgram(_ program: [BPFInstruction], type: Int32, access: Int32, major: Int64, minor: Int64) -> Int64 {
    var r = [Int64](repeating: 0, count: 11)
    let context: [Int16: Int64] = [0: Int64(access << 16 | type), 4: major, 8: minor]
    var pc = 0
    while pc < program.count {
        let i = program[pc]
        pc += 1
        switch i.code {
        case 0x61: r[Int(i.dst)] = context[i.off]!
        case 0x57: r[Int(i.dst)] &= Int64(i.imm)
        case 0x77: r[Int(i.dst)] >>= Int64(i.imm)
        case 0xbf: r[Int(i.dst)] = r[Int(i.src)]
        case 0xb7: r[Int(i.dst)] = Int64(i.imm)
        case 0x55: if r[Int(i.dst)] != Int64(i.imm) { pc += Int(i.off) }
        case 0x15: if r[Int(i.dst)] == Int64(i.imm) { pc += Int(i.off) }
        case 0x95: return r[0]
        default: Issue.record("opcode \(i.code) not expected"); return -1
        }
    }
    Issue.record("the program ran off its end")
    return -1
}

@Suite("cgroup v2 device program: rules compiled to eBPF decide as v1's lists do")
struct V2DeviceProgramTests {
    let read: Int32 = 2, write: Int32 = 4, mknod: Int32 = 1, char: Int32 = 2, block: Int32 = 1

    @Test("deny-all, the standard devices and a container device: the last rule that matches decides")
    func standardPolicy() {
        let rules = DeviceAccessRule.effective([Resources.DeviceRule(allow: false, access: "rwm")],
                                               devices: [Device(type: "c", path: "/dev/fuse", major: 10, minor: 229)])
        let p = V2Devices.compile(rules)
        #expect(runDeviceProgram(p, type: char, access: read | write, major: 1, minor: 3) == 1, "/dev/null")
        #expect(runDeviceProgram(p, type: char, access: read, major: 136, minor: 7) == 1, "/dev/pts/7")
        #expect(runDeviceProgram(p, type: char, access: read, major: 10, minor: 229) == 1, "the container's own device")
        #expect(runDeviceProgram(p, type: char, access: read, major: 1, minor: 1) == 0, "/dev/mem")
        #expect(runDeviceProgram(p, type: block, access: read, major: 8, minor: 0) == 0, "a disk")
        #expect(runDeviceProgram(p, type: block, access: mknod, major: 8, minor: 0) == 1, "mknod of anything")
        #expect(runDeviceProgram(p, type: block, access: mknod | read, major: 8, minor: 0) == 0, "mknod is not read")
    }

    @Test("access subsets, a later deny over an earlier allow, wildcards, no wildcard rule at all")
    func ordering() {
        let allowRead = DeviceAccessRule(allow: true, type: "c", major: 4, minor: nil, access: "r")
        let denyFour = DeviceAccessRule(allow: false, type: "c", major: 4, minor: 2, access: "w")
        let p = V2Devices.compile([DeviceAccessRule(allow: false, type: "a", access: "rwm"), allowRead, denyFour])
        #expect(runDeviceProgram(p, type: char, access: read, major: 4, minor: 9) == 1)
        #expect(runDeviceProgram(p, type: char, access: read | write, major: 4, minor: 9) == 0, "write is not in the allow")
        #expect(runDeviceProgram(p, type: char, access: read, major: 4, minor: 2) == 1, "the deny is of write only")
        #expect(runDeviceProgram(p, type: char, access: write, major: 4, minor: 2) == 0)
        #expect(runDeviceProgram(p, type: block, access: read, major: 4, minor: 9) == 0, "type is part of the match")
        // rules before the last "a" are dead; with none, what no rule denies is allowed
        let open = V2Devices.compile([denyFour])
        #expect(runDeviceProgram(open, type: block, access: read, major: 8, minor: 0) == 1)
        #expect(runDeviceProgram(open, type: char, access: write, major: 4, minor: 2) == 0)
        let allowAllLast = V2Devices.compile([denyFour, DeviceAccessRule(allow: true, type: "a", access: "rwm")])
        #expect(allowAllLast.count == 8, "the header, then allow: \(allowAllLast.count) instructions")
        #expect(BPFInstruction.jumpIfNot(2, 2, skip: 3).bytes == [0x55, 0x02, 3, 0, 2, 0, 0, 0])
    }
}
