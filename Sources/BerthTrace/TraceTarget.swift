#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import BerthRuntime
import BerthCgroups

/// A container as the probes know it: its runtime record and its cgroup v2 id.
public struct TraceTarget: Sendable {
    public let id: String
    public let record: ContainerRecord
    public let cgroupID: UInt64

    public static func resolve(_ id: String, runtime: Runtime) throws(BerthError) -> TraceTarget {
        let record = try runtime.record(id: id)
        guard let cgroupID = try record.cgroups.v2CgroupID() else {
            throw BerthError("container \"\(id)\" has no cgroup v2 directory (a v1-only host): the probes attribute by cgroup v2 id")
        }
        return TraceTarget(id: id, record: record, cgroupID: cgroupID)
    }

    /// Stopped: its process is gone.
    public func isStopped(_ runtime: Runtime) -> Bool { runtime.status(of: record) == .stopped }
}

/// Lines to stdout as they come (a pipe sees each at once, unlike print's buffer).
public struct LineWriter: Sendable {
    public let fd: Int32
    public init(fd: Int32 = 1) { self.fd = fd }
    public func callAsFunction(_ text: String) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// SIGINT and SIGTERM, blocked and polled: a trace stops between two polls and
/// still prints its summary and frees its probes.
struct StopSignals {
    var set = sigset_t()
    init() {
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigprocmask(SIG_BLOCK, &set, nil)
    }
    mutating func pending() -> Bool {
        var zero = timespec()
        return sigtimedwait(&set, nil, &zero) > 0
    }
}

/// ns → "812 ns", "3.4 µs", "12.0 ms", "1.20 s".
func duration(_ ns: Double?) -> String {
    guard let ns else { return "-" }
    switch ns {
    case ..<1_000: return "\(Int(ns.rounded())) ns"
    case ..<1_000_000: return format(ns / 1_000, 1) + " µs"
    case ..<1_000_000_000: return format(ns / 1_000_000, 1) + " ms"
    default: return format(ns / 1_000_000_000, 2) + " s"
    }
}

func format(_ v: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var s = "\(r)"
    if decimals == 0, s.hasSuffix(".0") { s.removeLast(2) }
    if let dot = s.firstIndex(of: "."), decimals > 0 {
        let have = s.distance(from: dot, to: s.endIndex) - 1
        if have < decimals { s += String(repeating: "0", count: decimals - have) }
    }
    return s
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let n = max(0, width - s.count)
    return right ? String(repeating: " ", count: n) + s : s + String(repeating: " ", count: n)
}
