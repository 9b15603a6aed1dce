#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthSys

/// One event in the Engine API's shape (`docker events`).
public struct EngineEvent: Codable, Sendable {
    public struct EventActor: Codable, Sendable {
        public var ID: String
        public var Attributes: [String: String]
    }
    public var status: String?
    public var id: String?
    public var from: String?
    public var `Type`: String
    public var Action: String
    public var Actor: EventActor
    public var scope = "local"
    public var time: Int64
    public var timeNano: Int64

    /// docker's filters: type, event (or action), container (id, prefix or name), image.
    public func matches(_ filters: [String: [String]]) -> Bool {
        for (key, values) in filters where !values.isEmpty {
            let ok: Bool
            switch key {
            case "type": ok = values.contains(self.Type)
            case "event", "action": ok = values.contains(Action) || values.contains(String(Action.prefix { $0 != ":" }))
            case "container": ok = self.Type == "container" && values.contains { $0 == self.Actor.ID || self.Actor.ID.hasPrefix($0) || $0 == self.Actor.Attributes["name"] }
            case "image": ok = values.contains { $0 == self.Actor.Attributes["image"] || $0 == from || (self.Type == "image" && $0 == self.Actor.ID) }
            default: ok = true
            }
            if !ok { return false }
        }
        return true
    }
}

/// The event log every part of the engine appends to (CLI, daemon, supervisors: they
/// are different processes): JSON lines in EXEC-ROOT/events.log, each written with
/// one O_APPEND write, so lines from several writers never interleave.
public enum Events {
    static let rotateBytes: Int64 = 4 << 20

    static func path(_ engine: Engine) -> String { engine.execRoot + "/events.log" }

    static func record(_ engine: Engine, _ action: String, _ c: EngineContainer, attributes: [String: String] = [:]) {
        var attrs = ["image": c.imageName, "name": c.name]
        attrs.merge(attributes) { $1 }
        append(engine, EngineEvent(status: action, id: c.id, from: c.imageName, Type: "container", Action: action,
                                   Actor: .init(ID: c.id, Attributes: attrs), time: 0, timeNano: 0))
    }

    static func recordNetwork(_ engine: Engine, _ action: String, _ id: String, name: String, container: String? = nil) {
        var attrs = ["name": name, "type": "bridge"]
        if let container { attrs["container"] = container }
        append(engine, EngineEvent(status: nil, id: nil, from: nil, Type: "network", Action: action,
                                   Actor: .init(ID: id, Attributes: attrs), time: 0, timeNano: 0))
    }

    public static func recordImage(_ engine: Engine, _ action: String, _ name: String) {
        append(engine, EngineEvent(status: action, id: name, from: nil, Type: "image", Action: action,
                                   Actor: .init(ID: name, Attributes: ["name": name]), time: 0, timeNano: 0))
    }

    static func append(_ engine: Engine, _ event: EngineEvent) {
        var event = event
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        event.time = Int64(ts.tv_sec)
        event.timeNano = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(event) else { return }
        let file = path(engine)
        var st = stat()
        if stat(file, &st) == 0 && Int64(st.st_size) > rotateBytes { rename(file, file + ".1") }
        var fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT {
            // the first thing an engine does may be to create a container: its exec root is not there yet
            try? Files.makeDirectories(engine.execRoot, mode: 0o711)
            fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { return }
        let line = Array(data) + [10]
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// The events between `since` and `until` (Unix seconds, fractions allowed) that match
    /// `filters`; with `follow`, new ones as they come until `until` or `stop` says so.
    public static func read(_ engine: Engine, since: Double?, until: Double?, filters: [String: [String]], follow: Bool,
                            stop: () -> Bool = { false }, _ emit: (EngineEvent) -> Bool) {
        let file = path(engine)
        let decoder = JSONDecoder()
        let sinceNano = since.map { Int64($0 * 1e9) }, untilNano = until.map { Int64($0 * 1e9) }
        func wanted(_ e: EngineEvent) -> Bool {
            if let sinceNano, e.timeNano < sinceNano { return false }
            return e.matches(filters)
        }
        var offset: Int64 = 0
        // the past (only when asked for: docker streams from now on without --since)
        if since != nil {
            for name in [file + ".1", file] {
                let bytes = (try? Files.readBytes(name)) ?? []
                if name == file { offset = Int64(bytes.count) }
                for line in bytes.split(separator: 10) {
                    guard let e = try? decoder.decode(EngineEvent.self, from: Data(line)) else { continue }
                    if let untilNano, e.timeNano > untilNano { return }
                    if wanted(e) && !emit(e) { return }
                }
            }
        } else {
            var st = stat()
            offset = stat(file, &st) == 0 ? Int64(st.st_size) : 0
        }
        guard follow else { return }
        followLines(file, from: offset, stop: { stop() || untilNano.map { Int64(Date().timeIntervalSince1970 * 1e9) > $0 } ?? false }) { line in
            guard let e = try? decoder.decode(EngineEvent.self, from: Data(line)), wanted(e) else { return true }
            if let untilNano, e.timeNano > untilNano { return false }
            return emit(e)
        }
    }
}

extension Engine {
    /// Serializes changes to a container's record between processes (a rename here and
    /// the supervisor's record of the end, say).
    func withRecordLock<T>(_ id: String, _ body: () throws(BerthError) -> T) throws(BerthError) -> T {
        let lock = try StoreLock(path: containersDir + "/" + id + "/container.lock", exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }
}
