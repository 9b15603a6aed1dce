#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Tracing from the first instruction. A container whose config carries the
/// annotation `org.berth.trace.wait` (seconds) is not let go — by `start`, or by
/// `run` — until a tracer has registered its cgroup with the probes and said so
/// in the state dir; a tracer attaching to a container that already runs would
/// miss its start. The runtime itself loads no BPF: it only waits.
public enum Tracing {
    public static let waitAnnotation = "org.berth.trace.wait"

    /// The seconds to wait, or nil when the container does not ask.
    public static func waitSeconds(_ annotations: [String: String]?) throws(BerthError) -> Double? {
        guard let value = annotations?[waitAnnotation] else { return nil }
        guard let seconds = Double(value), seconds > 0, seconds <= 3600 else {
            throw BerthError("annotation \(waitAnnotation)=\"\(value)\": give the seconds to wait for a tracer (0 < s ≤ 3600)")
        }
        return seconds
    }
}

extension Runtime {
    /// Returns once a live tracer has marked the container (see Tracing), at once
    /// when the container does not ask; throws when none comes in time.
    func awaitTracer(_ record: ContainerRecord) throws(BerthError) {
        guard let seconds = try Tracing.waitSeconds(record.annotations) else { return }
        let marker = store.tracerMarker(record.id)
        let deadline = monotonicMilliseconds() + seconds * 1000
        while true {
            if let text = try? Files.read(marker), let pid = Int32(text.filter { $0.isNumber }), pid > 0, Glibc.kill(pid, 0) == 0 {
                return
            }
            if monotonicMilliseconds() > deadline {
                throw BerthError("container \"\(record.id)\" waits for a tracer (annotation \(Tracing.waitAnnotation)=\(record.annotations?[Tracing.waitAnnotation] ?? "")): none attached within \(seconds) s; start `berth trace \(record.id)`")
            }
            usleep(2000)
        }
    }
}
