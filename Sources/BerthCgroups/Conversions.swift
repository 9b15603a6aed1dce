/// The v1 → v2 value conversions, in one place, with the formulas runc and crun use.
public enum Conversions {
    /// cpu.shares [2, 262144] → cpu.weight [1, 10000]: the linear map runc and crun
    /// (before crun 1.13's quadratic one) use: 1 + ((shares - 2) * 9999) / 262142. 0 = unset.
    public static func cpuWeight(fromShares shares: UInt64) -> UInt64 {
        guard shares != 0 else { return 0 }
        let s = min(max(shares, 2), 262_144)
        return 1 + ((s - 2) * 9999) / 262_142
    }

    /// blkio weight [10, 1000] → io.weight [1, 10000]: 1 + ((weight - 10) * 9999) / 990. 0 = unset.
    public static func ioWeight(fromBlkioWeight weight: UInt16) -> UInt64 {
        guard weight != 0 else { return 0 }
        let w = UInt64(min(max(weight, 10), 1000))
        return 1 + ((w - 10) * 9999) / 990
    }

    /// OCI memory.swap is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.
    /// -1 (unlimited) stays "max"; with a limit, swap.max = swap - limit (never negative).
    public static func swapMax(memorySwap swap: Int64, memoryLimit limit: Int64?) -> String? {
        if swap == -1 { return "max" }
        guard let limit, limit > 0 else { return nil } // memsw without a memory limit has no v2 meaning
        return String(max(0, swap - limit))
    }

    /// cpu.max "quota period": "max" for no quota.
    public static func cpuMax(quota: Int64?, period: UInt64?) -> String? {
        guard quota != nil || period != nil else { return nil }
        let q = quota.map { $0 > 0 ? String($0) : "max" } ?? "max"
        return "\(q) \(period ?? 100_000)"
    }

    /// A limit in bytes or "max" for -1 / none.
    public static func bytesOrMax(_ v: Int64) -> String { v < 0 ? "max" : String(v) }
}
