#if canImport(Glibc)
import Glibc
#endif
import BerthCgroups
import CBerthLaunch
import BerthSys

extension Runtime {
    /// runc's `events`: with `statsOnly`, one stats event; otherwise stats every
    /// `interval` and an `oom` event for each OOM kill, until the container stops.
    /// OOM kills are counted from memory.oom_control, so one that ends the
    /// container is still reported after it exited.
    public func events(id: String, statsOnly: Bool, interval: Double, emit: (String) -> Void) throws(BerthError) {
        let record = try record(id: id)
        let cgroups = record.cgroups
        func stats() -> Stats {
            var s = cgroups.stats()
            s.network_interfaces = InterfaceCounters.of(pid: record.pid)
            return s
        }
        if statsOnly {
            emit(event("stats", id: id, data: stats()))
            return
        }
        let notifier = OOMNotifier(cgroups.v1Directory(for: "memory"))
        var reported = cgroups.oomKills
        let timeoutMs = Int32(max(0.05, interval) * 1000)
        while true {
            let woke = notifier?.wait(timeoutMs: timeoutMs) ?? { usleep(UInt32(timeoutMs) * 1000); return false }()
            let kills = cgroups.oomKills
            while reported < kills { emit(event("oom", id: id, data: nil as Stats?)); reported += 1 }
            guard status(of: record) != .stopped else { return }
            if !woke { emit(event("stats", id: id, data: stats())) }
        }
    }

    private func event(_ type: String, id: String, data: Stats?) -> String {
        struct Event: Encodable { var type: String; var id: String; var data: Stats? }
        return String(decoding: ((try? JSON(encoding: Event(type: type, id: id, data: data))) ?? .null).serialized(), as: UTF8.self)
    }
}

/// v1 OOM notification: an eventfd registered in cgroup.event_control against
/// memory.oom_control. It also fires when the cgroup goes away.
final class OOMNotifier {
    private let eventFD: Int32
    private let controlFD: Int32

    init?(_ memoryDirectory: String?) {
        guard let dir = memoryDirectory else { return nil }
        let efd = berth_eventfd()
        guard efd >= 0 else { return nil }
        let cfd = open(dir + "/memory.oom_control", O_RDONLY | O_CLOEXEC)
        guard cfd >= 0 else { close(efd); return nil }
        eventFD = efd
        controlFD = cfd
        guard (try? Files.write("\(efd) \(cfd)", to: dir + "/cgroup.event_control")) != nil else { return nil }
    }

    deinit { close(eventFD); close(controlFD) }

    /// True when the eventfd fired within the timeout.
    func wait(timeoutMs: Int32) -> Bool {
        var pfd = pollfd(fd: eventFD, events: Int16(POLLIN), revents: 0)
        let r = poll(&pfd, 1, timeoutMs)
        guard r > 0 else { return false }
        var value: UInt64 = 0
        _ = read(eventFD, &value, 8)
        return true
    }
}
