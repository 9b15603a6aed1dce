import BerthOCI
import BerthSys

/// Docker's resource flags in the runtime spec's terms, with docker's rules:
/// `--memory-swap` is memory + swap (-1: unlimited), `--cpus` becomes a quota
/// over a 100 ms period, and a memory limit under 6 MiB is refused.
public enum DockerFlags {
    public static let minimumMemory: Int64 = 6 << 20

    /// `64m`, `1g`, `512k`, `1048576` (bytes; b k m g t, either case).
    public static func bytes(_ text: String, flag: String) throws(BerthError) -> Int64 {
        let lower = text.lowercased()
        let units: [(String, Int64)] = [("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10), ("b", 1)]
        for (suffix, scale) in units where lower.hasSuffix(suffix) {
            if let v = Double(lower.dropLast(suffix.count)), v >= 0 { return Int64(v * Double(scale)) }
        }
        if let v = Int64(lower), v >= 0 { return v }
        throw BerthError("\(flag) \"\(text)\": give a size like 64m, 1g or a number of bytes")
    }

    public static func resources(memory: Int64?, memorySwap: Int64?, memoryReservation: Int64?, cpus: Double?, cpuShares: UInt64?,
                                 cpuPeriod: UInt64?, cpuQuota: Int64?, cpusetCpus: String?, pidsLimit: Int64?,
                                 blockIO: Resources.BlockIO? = nil) throws(BerthError) -> Resources? {
        var r = Resources()
        r.blockIO = blockIO
        if let memory, memory > 0 {
            guard memory >= minimumMemory else { throw BerthError("--memory \(memory): the minimum memory limit is 6MiB") }
            var m = Resources.Memory()
            m.limit = memory
            if let swap = memorySwap {
                guard swap == -1 || swap >= memory else { throw BerthError("--memory-swap \(swap): must be at least --memory (\(memory)), or -1 for unlimited swap") }
                m.swap = swap
            } else {
                m.swap = memory * 2   // docker: as much swap as memory
            }
            m.reservation = memoryReservation
            r.memory = m
        } else if memorySwap != nil && memorySwap != 0 {
            throw BerthError("--memory-swap needs --memory")
        }
        if cpus != nil && (cpuQuota != nil || cpuPeriod != nil) { throw BerthError("--cpus and --cpu-quota/--cpu-period conflict: give one") }
        var cpu = Resources.CPU()
        var anyCPU = false
        if let cpus {
            guard cpus > 0 else { throw BerthError("--cpus \(cpus): must be more than 0") }
            cpu.period = 100_000
            cpu.quota = Int64((cpus * 100_000).rounded())
            anyCPU = true
        }
        if let cpuQuota { cpu.quota = cpuQuota; anyCPU = true }
        if let cpuPeriod { cpu.period = cpuPeriod; anyCPU = true }
        if let cpuShares, cpuShares > 0 { cpu.shares = cpuShares; anyCPU = true }
        if let cpusetCpus { cpu.cpus = cpusetCpus; anyCPU = true }
        if anyCPU { r.cpu = cpu }
        if let pidsLimit, pidsLimit != 0 { r.pids = Resources.Pids(limit: pidsLimit) }
        return r.memory == nil && r.cpu == nil && r.pids == nil && r.blockIO == nil ? nil : r
    }

    /// `--blkio-weight` (10–1000; 0 = unset) and the per-device throttles, as `DEVICE:RATE` texts.
    public static func blockIO(weight: UInt16?, readBps: [String], writeBps: [String], readIOPS: [String], writeIOPS: [String]) throws(BerthError) -> Resources.BlockIO? {
        var b = Resources.BlockIO()
        if let weight, weight != 0 {
            guard (10...1000).contains(weight) else { throw BerthError("--blkio-weight \(weight): must be 0 (unset) or between 10 and 1000") }
            b.weight = weight
        }
        func devices(_ texts: [String], _ flag: String, iops: Bool) throws(BerthError) -> [Resources.BlockIO.ThrottleDevice]? {
            var out: [Resources.BlockIO.ThrottleDevice] = []
            for t in texts { out.append(try RunFlags.throttle(t, flag: flag, iops: iops)) }
            return out.isEmpty ? nil : out
        }
        b.throttleReadBpsDevice = try devices(readBps, "--device-read-bps", iops: false)
        b.throttleWriteBpsDevice = try devices(writeBps, "--device-write-bps", iops: false)
        b.throttleReadIOPSDevice = try devices(readIOPS, "--device-read-iops", iops: true)
        b.throttleWriteIOPSDevice = try devices(writeIOPS, "--device-write-iops", iops: true)
        return b == Resources.BlockIO() ? nil : b
    }
}
