import BerthOCI
import BerthSys

/// v1 blkio: proportional weights (only where the device's scheduler has them:
/// CFQ's blkio.weight or BFQ's blkio.bfq.weight) and the throttle limits, which
/// work under any scheduler.
enum V1Blkio {
    static func apply(_ b: Resources.BlockIO, to dir: CgroupDirectory) throws(BerthError) {
        if let weight = b.weight, weight != 0 {
            try dir.write(try weightFile(dir, "weight"), String(weight))
        }
        for d in b.weightDevice ?? [] {
            if let w = d.weight { try dir.write(try weightFile(dir, "weight_device"), "\(d.major):\(d.minor) \(w)") }
        }
        let throttles: [(KeyPath<Resources.BlockIO, [Resources.BlockIO.ThrottleDevice]?>, String)] = [
            (\.throttleReadBpsDevice, "read_bps_device"), (\.throttleWriteBpsDevice, "write_bps_device"),
            (\.throttleReadIOPSDevice, "read_iops_device"), (\.throttleWriteIOPSDevice, "write_iops_device"),
        ]
        for (path, file) in throttles {
            // 0 removes the limit, as in the v1 interface itself
            for d in b[keyPath: path] ?? [] { try dir.write("blkio.throttle." + file, "\(d.major):\(d.minor) \(d.rate)") }
        }
    }

    /// blkio.weight (CFQ) or blkio.bfq.weight (BFQ); neither exists under mq-deadline or none.
    static func weightFile(_ dir: CgroupDirectory, _ name: String) throws(BerthError) -> String {
        for candidate in ["blkio." + name, "blkio.bfq." + name] where dir.has(candidate) { return candidate }
        throw BerthError("linux.resources.blockIO.\(name == "weight" ? "weight" : "weightDevice"): this host's I/O schedulers have no weights (no blkio.\(name) or blkio.bfq.\(name) in \(dir.path)); use BFQ, or throttle limits instead")
    }
}
