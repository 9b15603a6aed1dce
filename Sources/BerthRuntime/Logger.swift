#if canImport(Glibc)
import Glibc
#endif
import CBerthLaunch

/// Errors and warnings to stderr and, with `--log`, to a file in text or JSON
/// lines (containerd's shim reads runc's JSON log to report errors).
public struct Logger: Sendable {
    public enum Format: String, Sendable { case text, json }
    public var file: String?
    public var format: Format = .text
    public var debug = false
    /// Warnings and errors also on stderr (not for a supervisor, whose stderr is the container's).
    public var toStderr = true

    public init(file: String? = nil, format: Format = .text, debug: Bool = false, toStderr: Bool = true) {
        self.toStderr = toStderr
        self.file = file; self.format = format; self.debug = debug
    }

    public func error(_ message: String) { emit("error", message, toStderr: true) }
    public func warn(_ message: String) { emit("warning", message, toStderr: true) }
    public func debugMessage(_ message: String) { if debug { emit("debug", message, toStderr: true) } }

    private func emit(_ level: String, _ message: String, toStderr: Bool) {
        if toStderr && self.toStderr {
            let line = "berth-runtime: \(level == "error" ? "" : level + ": ")\(message)\n"
            berth_write_stderr(line)
        }
        guard let file else { return }
        let line: String
        switch format {
        case .text: line = "time=\"\(rfc3339Now())\" level=\(level) msg=\"\(escape(message))\"\n"
        case .json: line = "{\"level\":\"\(level)\",\"msg\":\"\(escape(message))\",\"time\":\"\(rfc3339Now())\"}\n"
        }
        let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = line.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    private func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) }
                else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}

/// Phase timestamps of one command, appended as a JSON line to
/// $BERTH_TIMINGS_FILE when set (the benchmark's per-phase breakdown).
struct Timeline {
    private var start = monotonicNanos()
    private var last = monotonicNanos()
    private var phases: [(String, UInt64)] = []
    /// CLOCK_MONOTONIC at each mark: comparable with the kernel's (and BPF's) timestamps.
    private var marks: [(String, UInt64)] = []

    mutating func mark(_ phase: String) {
        let now = monotonicNanos()
        phases.append((phase, now - last))
        marks.append((phase, now))
        last = now
    }

    /// Sub-phases measured elsewhere (the child's stages), recorded as they are.
    mutating func record(_ phase: String, nanoseconds: UInt64) {
        phases.append((phase, nanoseconds))
    }


    func flush(command: String) {
        guard let path = getenv("BERTH_TIMINGS_FILE").map({ String(cString: $0) }), !path.isEmpty else { return }
        let fields = phases.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        // child sub-phases overlap "clone-to-ready": the total is wall time from the first mark
        let at = marks.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
        let line = "{\"command\":\"\(command)\",\"total_ns\":\(last - start),\"phases_ns\":{\(fields)},\"marks_monotonic_ns\":{\(at)}}\n"
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = line.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
