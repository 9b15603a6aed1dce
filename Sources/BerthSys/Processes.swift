#if canImport(Glibc)
import Glibc
#endif

/// Process facts from /proc, used to tell a live container from a reused pid.
public enum Processes {
    /// Field 22 of /proc/PID/stat (start time in clock ticks), and field 3 (state).
    public static func stat(_ pid: pid_t) -> (startTime: UInt64, state: Character)? {
        guard let fields = statFields(pid), fields.count > 19, let state = fields[0].first,
              let start = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        return (start, Character(Unicode.Scalar(state)))
    }

    /// True when `pid` runs (not a zombie) and started at `startTime`.
    public static func isAlive(_ pid: pid_t, startTime: UInt64) -> Bool {
        guard pid > 0, let st = stat(pid) else { return false }
        return st.startTime == startTime && st.state != "Z" && st.state != "X"
    }

    public static func parentPid(_ pid: pid_t) -> pid_t? {
        guard let fields = statFields(pid), fields.count > 1 else { return nil }
        return pid_t(String(decoding: fields[1], as: UTF8.self))
    }

    /// /proc/PID/stat after the command name, split at spaces: field 3 (state) is [0].
    /// Bytes, not Characters: comm may hold anything, and every command reads this file
    /// (a Character search would pay grapheme breaking for a byte's work).
    static func statFields(_ pid: pid_t) -> [ArraySlice<UInt8>]? {
        guard let bytes = try? Files.readBytes("/proc/\(pid)/stat"), let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        return bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
    }

    /// The command line of a process, NULs turned into spaces.
    public static func commandLine(_ pid: pid_t) -> String {
        guard let bytes = try? Files.readBytes("/proc/\(pid)/cmdline") else { return "" }
        return String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).trimmingTrailingSpaces()
    }

    /// Sends a signal; ESRCH is not an error when `ignoreMissing`.
    public static func signal(_ pid: pid_t, _ sig: Int32, ignoreMissing: Bool = false) throws(BerthError) {
        guard kill(pid, sig) == 0 else {
            if ignoreMissing && errno == ESRCH { return }
            throw .sys("send signal \(sig) to pid", path: String(pid))
        }
    }

    /// Polls until the process is gone (or a zombie) or the timeout passes.
    public static func waitGone(_ pid: pid_t, startTime: UInt64, timeoutMs: Int) -> Bool {
        var waited = 0
        while waited <= timeoutMs {
            if !isAlive(pid, startTime: startTime) { return true }
            usleep(2000)
            waited += 2
        }
        return false
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " || s.last == "\n" { s.removeLast() }
        return s
    }
}

/// One network interface's counters from /proc/PID/net/dev, under the names the
/// kernel, runc's `events --stats` and docker's stats give them.
public struct InterfaceCounters: Codable, Sendable, Equatable {
    public var name: String
    public var rx_bytes: UInt64 = 0, rx_packets: UInt64 = 0, rx_errors: UInt64 = 0, rx_dropped: UInt64 = 0
    public var tx_bytes: UInt64 = 0, tx_packets: UInt64 = 0, tx_errors: UInt64 = 0, tx_dropped: UInt64 = 0

    public init(name: String, rx_bytes: UInt64, rx_packets: UInt64, rx_errors: UInt64, rx_dropped: UInt64,
                tx_bytes: UInt64, tx_packets: UInt64, tx_errors: UInt64, tx_dropped: UInt64) {
        self.name = name
        self.rx_bytes = rx_bytes; self.rx_packets = rx_packets; self.rx_errors = rx_errors; self.rx_dropped = rx_dropped
        self.tx_bytes = tx_bytes; self.tx_packets = tx_packets; self.tx_errors = tx_errors; self.tx_dropped = tx_dropped
    }

    /// The interfaces of `pid`'s network namespace but lo; nil when that is this process's own
    /// namespace (a container on the host's network has no counters of its own).
    public static func of(pid: Int32) -> [InterfaceCounters]? {
        func target(_ path: String) -> String? {
            var buf = [CChar](repeating: 0, count: 256)
            let n = readlink(path, &buf, buf.count - 1)
            return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        }
        guard let theirs = target("/proc/\(pid)/ns/net"), theirs != target("/proc/self/ns/net"),
              let text = try? Files.read("/proc/\(pid)/net/dev") else { return nil }
        return parse(text)
    }

    /// /proc/net/dev's table: two header lines, then `name: 8 receive and 8 transmit counters`.
    public static func parse(_ text: String) -> [InterfaceCounters] {
        text.split(separator: "\n").dropFirst(2).compactMap { line -> InterfaceCounters? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = String(line[..<colon].filter { $0 != " " })
            let v = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
            guard name != "lo", v.count >= 12 else { return nil }
            return InterfaceCounters(name: name, rx_bytes: v[0], rx_packets: v[1], rx_errors: v[2], rx_dropped: v[3],
                                     tx_bytes: v[8], tx_packets: v[9], tx_errors: v[10], tx_dropped: v[11])
        }
    }
}
