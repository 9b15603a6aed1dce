import BerthOCI
import BerthSys

/// v1 devices controller: the config's rules in order, then the devices every
/// container may use (as runc appends them), then the container's own devices.
enum V1Devices {
    /// (type, major, minor, access); -1 is the wildcard.
    static let alwaysAllowed: [(String, Int64, Int64, String)] = [
        ("c", -1, -1, "m"), ("b", -1, -1, "m"),                     // mknod of any node; opening still needs a rule
        ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), // null, zero, full
        ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"),                     // random, urandom
        ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), // tty, console, ptmx
        ("c", 136, -1, "rwm"),                                      // /dev/pts/*
        ("c", 10, 200, "rwm"),                                      // tun
    ]

    /// "c 1:3 rwm", "a" for everything.
    static func entry(type: String?, major: Int64?, minor: Int64?, access: String?) -> String {
        let t = type ?? "a"
        if t == "a" { return "a" }
        func n(_ v: Int64?) -> String { (v == nil || v! < 0) ? "*" : String(v!) }
        return "\(t) \(n(major)):\(n(minor)) \(access ?? "rwm")"
    }

    static func apply(_ rules: [Resources.DeviceRule], devices: [Device], to dir: CgroupDirectory) throws(BerthError) {
        for rule in rules {
            try dir.write(rule.allow ? "devices.allow" : "devices.deny", entry(type: rule.type, major: rule.major, minor: rule.minor, access: rule.access))
        }
        for (t, major, minor, access) in alwaysAllowed {
            try dir.write("devices.allow", entry(type: t, major: major, minor: minor, access: access))
        }
        for d in devices where d.type != "p" {
            try dir.write("devices.allow", entry(type: d.type == "u" ? "c" : d.type, major: d.major, minor: d.minor, access: "rwm"))
        }
    }
}
