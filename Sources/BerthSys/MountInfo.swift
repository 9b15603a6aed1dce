/// /proc/self/mountinfo, read the way the kernel writes it.
public enum MountInfo {
    /// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
    public static func unescape(_ s: String) -> String {
        guard s.utf8.contains(UInt8(ascii: "\\")) else { return s }
        var out = [UInt8]()
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(bytes[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `path` (resolved) is itself a mount point in this mount namespace.
    public static func isMountPoint(_ path: String) -> Bool {
        guard let text = try? Files.read("/proc/self/mountinfo") else { return false }
        let real = (try? Files.realPath(path)) ?? path
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5)
            if fields.count > 4 && unescape(String(fields[4])) == real { return true }
        }
        return false
    }
}
