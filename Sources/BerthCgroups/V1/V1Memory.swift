import BerthOCI
import BerthSys

/// v1 memory controller: limit, reservation, memory+swap, swappiness, OOM killer.
enum V1Memory {
    static func apply(_ m: Resources.Memory, to dir: CgroupDirectory, warn: (String) -> Void) throws(BerthError) {
        // memsw must stay >= limit: when the limit grows, raise memsw first; when it shrinks, lower the limit first.
        let current = Int64(dir.read("memory.limit_in_bytes") ?? "") ?? Int64.max
        let raising = (m.limit ?? 0) > current || m.limit == -1
        if let swap = m.swap, raising, dir.has("memory.memsw.limit_in_bytes") {
            try dir.write("memory.memsw.limit_in_bytes", String(swap))
        }
        if let limit = m.limit { try dir.write("memory.limit_in_bytes", String(limit)) }
        if let swap = m.swap, !raising {
            guard dir.has("memory.memsw.limit_in_bytes") else {
                warn("memory.swap: this kernel has no swap accounting (memory.memsw.limit_in_bytes); ignored")
                return
            }
            try dir.write("memory.memsw.limit_in_bytes", String(swap))
        }
        if let reservation = m.reservation { try dir.write("memory.soft_limit_in_bytes", String(reservation)) }
        if let swappiness = m.swappiness {
            guard swappiness <= 100 else { throw BerthError("linux.resources.memory.swappiness: \(swappiness) is outside 0...100") }
            try dir.write("memory.swappiness", String(swappiness))
        }
        if m.disableOOMKiller == true { try dir.write("memory.oom_control", "1") }
        if m.kernel != nil && !dir.has("memory.kmem.limit_in_bytes") { warn("memory.kernel: kernel memory limits are not available on this kernel; ignored") }
        if m.kernelTCP != nil && !dir.has("memory.kmem.tcp.limit_in_bytes") { warn("memory.kernelTCP: not available on this kernel; ignored") }
    }
}
