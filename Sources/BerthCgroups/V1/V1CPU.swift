import BerthOCI
import BerthSys

/// v1 cpu controller: shares, CFS quota/period/burst, realtime, idle.
enum V1CPU {
    static func apply(_ c: Resources.CPU, to dir: CgroupDirectory) throws(BerthError) {
        if let shares = c.shares, shares != 0 { try dir.write("cpu.shares", String(shares)) }
        // period before quota: the kernel checks quota against the period in force
        if let period = c.period, period != 0 { try dir.write("cpu.cfs_period_us", String(period)) }
        if let quota = c.quota, quota != 0 { try dir.write("cpu.cfs_quota_us", String(quota)) }
        if let burst = c.burst, dir.has("cpu.cfs_burst_us") { try dir.write("cpu.cfs_burst_us", String(burst)) }
        if let period = c.realtimePeriod, period != 0 { try dir.write("cpu.rt_period_us", String(period)) }
        if let runtime = c.realtimeRuntime, runtime != 0 { try dir.write("cpu.rt_runtime_us", String(runtime)) }
        if let idle = c.idle, dir.has("cpu.idle") { try dir.write("cpu.idle", String(idle)) }
    }
}

/// v1 cpuset controller.
enum V1Cpuset {
    static func apply(_ c: Resources.CPU, to dir: CgroupDirectory) throws(BerthError) {
        if let cpus = c.cpus, !cpus.isEmpty { try dir.write("cpuset.cpus", cpus) }
        if let mems = c.mems, !mems.isEmpty { try dir.write("cpuset.mems", mems) }
    }
}

/// v1 pids controller: a limit of 0 or less means no limit.
enum V1Pids {
    static func apply(_ p: Resources.Pids, to dir: CgroupDirectory) throws(BerthError) {
        try dir.write("pids.max", p.limit > 0 ? String(p.limit) : "max")
    }
}
