#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import CBerthLaunch

/// Where a filter with SCMP_ACT_NOTIFY sends its listener (linux.seccomp.listenerPath
/// and listenerMetadata), kept in the record so `exec`'d processes reach the same agent.
public struct SeccompListener: Sendable, Equatable {
    public var path: String
    public var metadata: String?
    public init(path: String, metadata: String?) { self.path = path; self.metadata = metadata }

    init?(_ profile: Seccomp?) {
        guard let path = profile?.listenerPath, !path.isEmpty else { return nil }
        self.init(path: path, metadata: profile?.listenerMetadata)
    }
}

extension SeccompListener: JSONObjectReadable, JSONWritable {
    public init(_ o: JSONObject) throws(BerthError) {
        self.init(path: try o.required("path"), metadata: try o.optional("metadata"))
    }
    public var json: JSON {
        var b = JSONObjectBuilder()
        b.set("path", self.path); b.set("metadata", metadata)
        return b.json
    }
}

/// The runtime-spec "container process state" sent to a seccomp agent, with the
/// listener fd beside it (SCM_RIGHTS), named by `fds`.
struct ContainerProcessState: JSONWritable {
    var ociVersion: String = Spec.supportedVersion
    var fds: [String] = ["seccompFd"]
    var pid: Int32
    var metadata: String?
    var state: State

    var json: JSON {
        var b = JSONObjectBuilder()
        b.set("ociVersion", ociVersion); b.set("fds", fds); b.set("pid", pid); b.set("metadata", metadata); b.set("state", state)
        return b.json
    }
}

enum SeccompAgent {
    /// One connection per listener fd, closed after the one message, as the spec asks.
    /// A failure here fails the create or exec: a notified syscall would have no answer.
    static func handOff(listenerFD: Int32, to listener: SeccompListener?, pid: pid_t, state: State) throws(BerthError) {
        defer { if listenerFD >= 0 { close(listenerFD) } }
        guard listenerFD >= 0 else { throw BerthError("seccomp: the container sent no listener fd") }
        guard let listener else { throw BerthError("seccomp: a listener fd arrived, but linux.seccomp.listenerPath is not set") }
        let bytes = ContainerProcessState(pid: pid, metadata: listener.metadata, state: state).json.serialized()
        let sock = try connectUnix(listener.path, purpose: "seccomp agent (linux.seccomp.listenerPath)")
        defer { close(sock) }
        let sent = bytes.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) { berth_send_fd(sock, listenerFD, $0, Int32(buf.count)) }
        }
        guard sent == 0 else { throw BerthError("send the seccomp listener to the agent", path: listener.path, errno: errno) }
    }
}
