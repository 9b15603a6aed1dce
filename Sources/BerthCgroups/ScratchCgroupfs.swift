#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// A cgroupfs made of plain directories in a temp dir, laid out like this hybrid
/// host (v1 cpu, cpuset, memory, freezer, pids, and a v2 tree). The manager's file
/// I/O is relative to the mount points, so unit tests and in-process benchmarks run
/// it without root or a kernel. The caller removes `root`.
public struct ScratchCgroupfs: Sendable {
    public let root: String
    public let layout: CgroupLayout

    public static func make() throws(BerthError) -> ScratchCgroupfs {
        var template = Array("/tmp/berth-fakecg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BerthError.sys("mkdtemp", path: "/tmp/berth-fakecg-XXXXXX") }
        let base = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        _ = made
        let v1 = ["cpu", "cpuset", "memory", "freezer", "pids"].map {
            Hierarchy(version: .v1, mountPoint: base + "/" + $0, root: "/", controllers: [$0])
        }
        let v2 = Hierarchy(version: .v2, mountPoint: base + "/unified", root: "/", controllers: [])
        for h in v1 + [v2] { try Files.makeDirectories(h.mountPoint) }
        try Files.writeAtomically(Array("0-1\n".utf8), to: base + "/cpuset/cpuset.cpus")
        try Files.writeAtomically(Array("0\n".utf8), to: base + "/cpuset/cpuset.mems")
        return ScratchCgroupfs(root: base, layout: CgroupLayout(mode: .hybrid, v1: v1, v2: v2))
    }

    /// What the kernel makes in a new cgroup at `path` and `apply` writes to: the
    /// directories, empty cpuset cpus/mems, and the v1 memory, cpu and pids files.
    public func populate(_ path: String) throws(BerthError) {
        try emptyCpusetFiles(under: [path])
        for file in ["memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "memory/memory.soft_limit_in_bytes",
                     "memory/memory.swappiness", "memory/memory.oom_control", "cpu/cpu.shares", "cpu/cpu.cfs_period_us",
                     "cpu/cpu.cfs_quota_us", "pids/pids.max"] {
            let controller = file.prefix { $0 != "/" }
            let dir = root + "/" + controller + "/" + path
            try Files.makeDirectories(dir)
            try Files.writeAtomically(Array("9223372036854771712\n".utf8), to: dir + "/" + file.drop { $0 != "/" }.dropFirst())
        }
    }

    /// A real cgroupfs creates empty cpuset.cpus/mems in every new v1 cpuset; the scratch one needs them written.
    public func emptyCpusetFiles(under paths: [String]) throws(BerthError) {
        for path in paths {
            try Files.makeDirectories(root + "/cpuset/" + path)
            for file in ["cpuset.cpus", "cpuset.mems"] { try Files.writeAtomically([], to: root + "/cpuset/" + path + "/" + file) }
        }
    }
}
