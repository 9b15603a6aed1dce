#if canImport(Glibc)
import Glibc
#endif

/// Process facts from /proc, used to tell a live container from a reused pid.
public enum Processes {
    /// Field 22 of /proc/PID/stat (start time in clock ticks), and field 3 (state).
    public static func stat(_ pid: pid_t) -> (startTime: UInt64, state: Character)? {
        guard let text = try? Files.read("/proc/\(pid)/stat") else { return nil }
        // comm may contain spaces and parentheses: split after the last ')'
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (start, state)
    }

    /// True when `pid` runs (not a zombie) and started at `startTime`.
    public static func isAlive(_ pid: pid_t, startTime: UInt64) -> Bool {
        guard pid > 0, let st = stat(pid) else { return false }
        return st.startTime == startTime && st.state != "Z" && st.state != "X"
    }

    public static func parentPid(_ pid: pid_t) -> pid_t? {
        guard let text = try? Files.read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
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
