/// The runtime-spec state document printed by `state` and given to hooks on stdin.
public struct State: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable, CaseIterable {
        case creating, created, running, paused, stopped
    }
    public var ociVersion: String
    public var id: String
    public var status: Status
    public var pid: Int32?
    public var bundle: String
    public var annotations: [String: String]?

    public init(ociVersion: String = Spec.supportedVersion, id: String, status: Status, pid: Int32?, bundle: String, annotations: [String: String]?) {
        self.ociVersion = ociVersion; self.id = id; self.status = status; self.pid = pid; self.bundle = bundle; self.annotations = annotations
    }
}
