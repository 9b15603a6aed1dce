import BerthOCI
import BerthSys

/// v1 devices controller: each rule of the effective list (`DeviceAccessRule.effective`)
/// written in order to devices.allow or devices.deny.
enum V1Devices {
    static func apply(_ rules: [DeviceAccessRule], to dir: CgroupDirectory) throws(BerthError) {
        for rule in rules { try dir.write(rule.allow ? "devices.allow" : "devices.deny", rule.v1Entry) }
    }
}
