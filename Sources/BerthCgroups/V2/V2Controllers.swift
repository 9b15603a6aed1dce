import BerthOCI
import BerthSys

/// v2 memory: memory.max, memory.low (reservation), memory.swap.max, oom.group untouched.
enum V2Memory {
    static func apply(_ m: Resources.Memory, to dir: CgroupDirectory, warn: (String) -> Void) throws(BerthError) {
        if let swap = m.swap, let value = Conversions.swapMax(memorySwap: swap, memoryLimit: m.limit) {
            guard dir.has("memory.swap.max") else {
                warn("memory.swap: this kernel has no memory.swap.max (swap accounting off); ignored")
                return try applyLimits(m, dir)
            }
            // swap.max first: it does not depend on memory.max, but a failing limit then leaves nothing half-set
            try dir.write("memory.swap.max", value)
        }
        try applyLimits(m, dir)
        if m.swappiness != nil { warn("memory.swappiness: cgroup v2 has no per-cgroup swappiness; ignored") }
        if m.disableOOMKiller == true { warn("memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer; ignored") }
    }

    private static func applyLimits(_ m: Resources.Memory, _ dir: CgroupDirectory) throws(BerthError) {
        if let limit = m.limit { try dir.write("memory.max", Conversions.bytesOrMax(limit)) }
        if let reservation = m.reservation { try dir.write("memory.low", Conversions.bytesOrMax(reservation)) }
    }
}

/// v2 cpu: cpu.weight from shares, cpu.max, cpu.max.burst, cpu.idle.
enum V2CPU {
    static func apply(_ c: Resources.CPU, to dir: CgroupDirectory, warn: (String) -> Void) throws(BerthError) {
        if let shares = c.shares, shares != 0 { try dir.write("cpu.weight", String(Conversions.cpuWeight(fromShares: shares))) }
        if let max = Conversions.cpuMax(quota: c.quota, period: c.period) { try dir.write("cpu.max", max) }
        if let burst = c.burst { try dir.write("cpu.max.burst", String(burst)) }
        if let idle = c.idle, dir.has("cpu.idle") { try dir.write("cpu.idle", String(idle)) }
        if c.realtimeRuntime != nil || c.realtimePeriod != nil { warn("cpu.realtime*: cgroup v2 has no realtime bandwidth; ignored") }
        if let cpus = c.cpus, !cpus.isEmpty { try dir.write("cpuset.cpus", cpus) }
        if let mems = c.mems, !mems.isEmpty { try dir.write("cpuset.mems", mems) }
    }
}

/// v2 pids and io.
enum V2PidsIO {
    static func apply(_ p: Resources.Pids, to dir: CgroupDirectory) throws(BerthError) {
        try dir.write("pids.max", p.limit > 0 ? String(p.limit) : "max")
    }

    static func apply(_ b: Resources.BlockIO, to dir: CgroupDirectory) throws(BerthError) {
        if let weight = b.weight, weight != 0 { try dir.write("io.weight", "default \(Conversions.ioWeight(fromBlkioWeight: weight))") }
        for d in b.weightDevice ?? [] {
            if let w = d.weight { try dir.write("io.weight", "\(d.major):\(d.minor) \(Conversions.ioWeight(fromBlkioWeight: w))") }
        }
        let throttles: [(KeyPath<Resources.BlockIO, [Resources.BlockIO.ThrottleDevice]?>, String)] = [
            (\.throttleReadBpsDevice, "rbps"), (\.throttleWriteBpsDevice, "wbps"),
            (\.throttleReadIOPSDevice, "riops"), (\.throttleWriteIOPSDevice, "wiops"),
        ]
        for (path, key) in throttles {
            for d in b[keyPath: path] ?? [] { try dir.write("io.max", "\(d.major):\(d.minor) \(key)=\(d.rate == 0 ? "max" : String(d.rate))") }
        }
    }
}
