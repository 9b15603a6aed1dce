#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys

/// v1 devices controller: each rule of the effective list (`DeviceAccessRule.effective`)
/// written in order to devices.allow or devices.deny, one write(2) per rule on one open
/// of each file (a default container has a dozen rules; kernfs opens are not cheap).
enum V1Devices {
    static func apply(_ rules: [DeviceAccessRule], to dir: CgroupDirectory) throws(BerthError) {
        var allow: Int32 = -1, deny: Int32 = -1
        defer { for fd in [allow, deny] where fd >= 0 { close(fd) } }
        for rule in rules {
            let file = rule.allow ? "devices.allow" : "devices.deny"
            if rule.allow && allow < 0 { allow = try dir.open(file, toWrite: rule.v1Entry) }
            if !rule.allow && deny < 0 { deny = try dir.open(file, toWrite: rule.v1Entry) }
            try dir.write(rule.v1Entry + "\n", to: rule.allow ? allow : deny, file)
        }
    }
}
