import Foundation
import BerthImage
import BerthNetwork
import BerthSys

/// What the engine keeps about a container in `containers/<id>/container.json`,
/// beside its writable layer.
public struct EngineContainer: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case created, running, exited }

    public var id: String
    public var name: String
    /// The image id and the name it was asked for by.
    public var image: Digest
    public var imageName: String
    public var created: String
    public var command: [String]
    public var status: Status
    public var exitCode: Int32?
    public var started: String?
    public var finished: String?
    /// Removed when it stops (`run --rm`).
    public var autoRemove: Bool
    /// The container's init on the host, while it runs.
    public var pid: Int32?
    /// The supervisor (`berth shim`) that owns it, while it runs.
    public var supervisorPid: Int32?
    public var supervisorStartTime: UInt64?
    public var oomKilled: Bool?
    /// `-i`: an attached client's stdin goes to the container.
    public var openStdin: Bool = false
    /// `-t`: a pty, whose output is one raw stream (no stdout/stderr frames).
    public var tty: Bool = false
    public var stopSignal: String?
    /// `--network` as given: bridge, a network's name, none, host, container:NAME (nil in records made before networks).
    public var networkMode: String?
    /// `-p`, as asked for (host port 0: the kernel picks one at each start).
    public var ports: [PortBinding]?
    /// Its place on its network while it runs (address, veth, the ports as bound).
    public var attachment: NetworkAttachment?

    /// Its own network namespace, joined to a bridge network.
    var onBridgeNetwork: Bool { !["none", "host"].contains(networkMode ?? "none") && !(networkMode ?? "").hasPrefix("container:") }

    public var shortID: String { String(id.prefix(12)) }

    /// Its supervisor still runs (the pid is the same process: its start time matches).
    var supervised: Bool {
        guard let pid = supervisorPid, let start = supervisorStartTime else { return false }
        return Processes.isAlive(pid, startTime: start)
    }
}

/// Docker-style names for containers started without `--name`.
enum ContainerNames {
    static let adjectives = ["agile", "bold", "brave", "calm", "clever", "eager", "fond", "gentle", "happy", "keen",
                             "lucid", "merry", "nimble", "proud", "quiet", "sharp", "steady", "swift", "tidy", "wise"]
    static let nouns = ["anchor", "beacon", "buoy", "cargo", "compass", "dock", "ferry", "harbor", "hull", "jetty",
                        "keel", "lantern", "mast", "pier", "quay", "rudder", "sail", "skiff", "tide", "wharf"]

    static func random() -> String {
        adjectives.randomElement()! + "_" + nouns.randomElement()!
    }

    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as docker requires.
    static func validate(_ name: String, what: String = "container name") throws(BerthError) {
        let bytes = Array(name.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) }
        guard let first = bytes.first, alnum(first), bytes.allSatisfy({ alnum($0) || $0 == 95 || $0 == 46 || $0 == 45 }), bytes.count <= 128 else {
            throw BerthError("\(what) \"\(name)\": want [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        }
    }
}

/// `3 minutes ago`, from an RFC 3339 time.
public func ago(_ stamp: String?) -> String {
    guard let stamp, let seconds = Timestamp.parse(stamp) else { return "N/A" }
    let date = Date(timeIntervalSince1970: seconds)
    let s = Int(Date().timeIntervalSince(date))
    if s < 60 { return s <= 1 ? "Less than a second ago" : "\(s) seconds ago" }
    let steps: [(Int, String)] = [(60, "minute"), (3600, "hour"), (86400, "day"), (604800, "week"), (2_592_000, "month"), (31_536_000, "year")]
    var chosen = steps[0]
    for step in steps where s >= step.0 { chosen = step }
    let n = s / chosen.0
    return n == 1 ? (chosen.1 == "hour" ? "About an hour ago" : "1 \(chosen.1) ago") : "\(n) \(chosen.1)s ago"
}

extension Engine {
    /// docker's STATUS column: `Up 5 minutes`, `Up 2 seconds (Paused)`, `Exited (0) 3 seconds ago`, `Created`.
    public func statusText(_ c: EngineContainer) -> String {
        switch c.status {
        case .created: return "Created"
        case .running:
            let up = "Up " + ago(c.started).replacingOccurrences(of: " ago", with: "")
            let paused = (try? runtime.record(id: c.id))?.cgroups.isFrozen == true
            return paused ? up + " (Paused)" : up
        case .exited: return "Exited (\(c.exitCode.map(String.init) ?? "?")) " + ago(c.finished)
        }
    }
}
