import Testing
@testable import BerthCgroups
import BerthSys
#if canImport(Glibc)
import Glibc
#endif

/// A cgroupfs made of plain directories in a temp dir: the manager's file I/O
/// is relative to mount points, so it runs against this without root.
final class FakeCgroupfs {
    let root: String
    let layout: CgroupLayout

    init() throws {
        var template = Array("/tmp/berth-fakecg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BerthError.sys("mkdtemp") }
        let base = String(cString: made)
        root = base
        let v1 = ["cpu", "cpuset", "memory", "freezer", "pids"].map {
            Hierarchy(version: .v1, mountPoint: base + "/" + $0, root: "/", controllers: [$0])
        }
        let v2 = Hierarchy(version: .v2, mountPoint: base + "/unified", root: "/", controllers: [])
        layout = CgroupLayout(mode: .hybrid, v1: v1, v2: v2)
        for h in v1 + [v2] { try Files.makeDirectories(h.mountPoint) }
        try Files.writeAtomically(Array("0-1\n".utf8), to: root + "/cpuset/cpuset.cpus")
        try Files.writeAtomically(Array("0\n".utf8), to: root + "/cpuset/cpuset.mems")
    }

    deinit { try? Files.removeTree(root) }

    /// A real cgroupfs creates empty cpuset.cpus/mems in every new v1 cpuset; the fake needs them written.
    func emptyCpusetFiles(under paths: [String]) throws {
        for path in paths {
            try Files.makeDirectories(root + "/cpuset/" + path)
            for file in ["cpuset.cpus", "cpuset.mems"] { try Files.writeAtomically([], to: root + "/cpuset/" + path + "/" + file) }
        }
    }
}

@Suite("cgroupfs driver against a fake cgroupfs")
struct FakeCgroupfsTests {
    @Test("create makes a directory in every controller hierarchy and the v2 tree")
    func create() throws {
        let fs = try FakeCgroupfs()
        let manager = FSCgroupManager(layout: fs.layout, path: CgroupPath("berth/c1"), caller: ProcessCgroups(paths: [:]))
        try fs.emptyCpusetFiles(under: ["berth", "berth/c1"])
        try manager.create()
        for dir in manager.directories { #expect(Files.isDirectory(dir)) }
        #expect(manager.directories.count == 6)
        #expect(manager.v2Directory == fs.root + "/unified/berth/c1")
    }

    @Test("an empty v1 cpuset inherits cpus and mems from the nearest ancestor that has them")
    func cpusetInheritance() throws {
        let fs = try FakeCgroupfs()
        let manager = FSCgroupManager(layout: fs.layout, path: CgroupPath("berth/c1"), caller: ProcessCgroups(paths: [:]))
        try fs.emptyCpusetFiles(under: ["berth", "berth/c1"])
        try manager.create()
        #expect(try Files.read(fs.root + "/cpuset/berth/cpuset.cpus") == "0-1")
        #expect(try Files.read(fs.root + "/cpuset/berth/c1/cpuset.cpus") == "0-1")
        #expect(try Files.read(fs.root + "/cpuset/berth/c1/cpuset.mems") == "0")
    }

    @Test("processes are read from the v2 cgroup.procs")
    func processes() throws {
        let fs = try FakeCgroupfs()
        let manager = FSCgroupManager(layout: fs.layout, path: CgroupPath("c2"), caller: ProcessCgroups(paths: [:]))
        try Files.makeDirectories(fs.root + "/unified/c2")
        try Files.writeAtomically(Array("42\n7\n".utf8), to: fs.root + "/unified/c2/cgroup.procs")
        #expect(manager.processes() == [7, 42])
    }

    @Test("destroy removes the container's directories and the empty parents it created")
    func destroy() throws {
        let fs = try FakeCgroupfs()
        let manager = FSCgroupManager(layout: fs.layout, path: CgroupPath("berth/c3"), caller: ProcessCgroups(paths: [:]))
        for dir in manager.directories { try Files.makeDirectories(dir) }
        try manager.destroy()
        for dir in manager.directories { #expect(!Files.exists(dir)) }
        #expect(!Files.exists(fs.root + "/memory/berth"))
        #expect(Files.exists(fs.root + "/memory"))
    }
}
