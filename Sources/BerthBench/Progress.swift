#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Progress of the scenario running now: a bar with an ETA on a terminal,
/// a plain line every 10% otherwise (CI logs stay readable).
public final class Progress: @unchecked Sendable {
    private let tty: Bool
    private let sink: (String) -> Void
    private var label = ""
    private var total = 1
    private var done = 0
    private var started = 0.0
    private var lastDecile = -1

    /// Lines go straight to fd 1: print() is block-buffered into a pipe or file, and a
    /// progress line that arrives at the end is no progress line.
    public init(tty: Bool = isatty(1) != 0, sink: @escaping (String) -> Void = { line in
        (line + "\n").withCString { _ = write(1, $0, strlen($0)) }
    }) {
        self.tty = tty; self.sink = sink
    }

    public func begin(_ label: String, total: Int) {
        self.label = label; self.total = Swift.max(1, total); done = 0; lastDecile = -1
        started = monotonicMilliseconds()
        if !tty { sink("\(label): started (\(total) steps)") }
    }

    public func step(_ count: Int = 1) {
        done = Swift.min(total, done + count)
        let elapsed = (monotonicMilliseconds() - started) / 1000
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        if tty {
            let width = 30, filled = width * done / total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            var line = "\r\(label) [\(bar)] \(done)/\(total)  ETA \(Self.duration(eta))   "
            line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
        } else {
            let decile = 10 * done / total
            if decile != lastDecile && decile > 0 {
                lastDecile = decile
                sink("\(label): \(done)/\(total), \(Self.duration(elapsed)) elapsed, ETA \(Self.duration(eta))")
            }
        }
    }

    public func end() {
        let elapsed = (monotonicMilliseconds() - started) / 1000
        if tty { "\r".withCString { _ = write(1, $0, 1) } }
        sink("\(label): done in \(Self.duration(elapsed))" + (tty ? String(repeating: " ", count: 40) : ""))
    }

    public func note(_ text: String) { sink(text) }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 60 ? "\(s / 60)m\(s % 60 < 10 ? "0" : "")\(s % 60)s" : "\(s)s"
    }
}
