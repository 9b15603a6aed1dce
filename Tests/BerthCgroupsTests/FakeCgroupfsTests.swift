import Testing
@testable import BerthCgroups
import BerthSys
#if canImport(Glibc)
import Glibc
#endif

/// The scratch cgroupfs, removed when the test is done with it.
final class FakeCgroupfs {
    let scratch: ScratchCgroupfs
    var root: String { scratch.root }
    var layout: CgroupLayout { scratch.layout }

    init() throws { scratch = try ScratchCgroupfs.make() }
    deinit { try? Files.removeTree(scratch.root) }

    func emptyCpusetFiles(under paths: [String]) throws { try scratch.emptyCpusetFiles(under: paths) }
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

    @Test("the v2 directory made before the clone (a deferred join) notes its new parent too")
    func v2FirstNotesParent() throws {
        let fs = try FakeCgroupfs()
        let notes = ParentCgroupNotes(directory: fs.root + "/notes")
        var m = FSCgroupManager(layout: fs.layout, path: CgroupPath("berth/c9"), caller: ProcessCgroups(paths: [:]))
        m.parentNotes = notes
        try fs.emptyCpusetFiles(under: ["berth", "berth/c9"])
        try m.createV2Directory()
        try m.create()
        #expect(notes.isNoted(fs.root + "/unified/berth"), "made by createV2Directory, so berth's to remove")
        #expect(notes.isNoted(fs.root + "/memory/berth"))
    }

    @Test("destroy removes the container's directories, and a parent berth made once its last container goes; a parent that was there before stays")
    func destroy() throws {
        let fs = try FakeCgroupfs()
        let notes = ParentCgroupNotes(directory: fs.root + "/notes")
        func manager(_ path: String) throws -> FSCgroupManager {
            var m = FSCgroupManager(layout: fs.layout, path: CgroupPath(path), caller: ProcessCgroups(paths: [:]))
            m.parentNotes = notes
            for dir in m.directories { try Files.makeDirectories(dir) }
            return m
        }
        // "berth" made for c3 (noted as create does), then shared by c4
        let c3 = try manager("berth/c3")
        try notes.note(c3.ancestors)
        let c4 = try manager("berth/c4")
        try c3.destroy()
        for dir in c3.directories { #expect(!Files.exists(dir)) }
        #expect(Files.exists(fs.root + "/memory/berth"), "c4 still uses it")
        try c4.destroy()
        #expect(!Files.exists(fs.root + "/memory/berth"), "the last container removes the parent, whoever made it")
        #expect(try Files.list(fs.root + "/notes").isEmpty, "and its notes")
        #expect(Files.exists(fs.root + "/memory"))
        // a parent that was there before (a slice, a benchmark's) is not berth's
        let c5 = try manager("slice/c5")
        try c5.destroy()
        for dir in c5.directories { #expect(!Files.exists(dir)) }
        #expect(Files.exists(fs.root + "/memory/slice"))
    }
}
