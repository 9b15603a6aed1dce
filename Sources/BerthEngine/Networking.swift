import Foundation
import BerthImage
import BerthNetwork
import BerthSys

/// `docker network inspect`'s shape: the CLI's `network inspect` and the API's `/networks`.
public struct NetworkInspect: Codable, Sendable {
    public struct IPAMConfig: Codable, Sendable { public var Subnet: String; public var Gateway: String }
    public struct IPAMInfo: Codable, Sendable { public var Driver = "default"; public var Options: [String: String]? = nil; public var Config: [IPAMConfig] }
    public struct Endpoint: Codable, Sendable {
        public var Name: String
        public var EndpointID: String
        public var MacAddress: String
        public var IPv4Address: String
        public var IPv6Address = ""
    }
    public var Name: String
    public var Id: String
    public var Created: String
    public var Scope = "local"
    public var Driver: String
    public var EnableIPv6 = false
    public var IPAM: IPAMInfo
    public var Internal: Bool
    public var Attachable = false
    public var Ingress = false
    public var Containers: [String: Endpoint]
    public var Options: [String: String]
    public var Labels: [String: String]

    init(_ r: NetworkRecord) {
        Name = r.name
        Id = r.id
        Created = r.created
        Driver = r.driver
        IPAM = IPAMInfo(Config: [IPAMConfig(Subnet: r.subnet, Gateway: r.gateway.description)])
        Internal = r.internal
        Containers = Dictionary(uniqueKeysWithValues: r.endpoints.values.map { e in
            (e.container, Endpoint(Name: e.name, EndpointID: e.veth, MacAddress: e.mac, IPv4Address: "\(e.address)/\(r.parsedSubnet.prefix)"))
        })
        Options = ["com.docker.network.bridge.name": r.bridge]
        Labels = r.labels
    }

    /// docker's two modes that read as networks: `host` and `none`.
    static func mode(_ name: String, driver: String) -> NetworkInspect {
        var n = NetworkInspect(NetworkRecord(id: String(repeating: name == "host" ? "1" : "0", count: 64), name: name, created: "0001-01-01T00:00:00Z",
                                             subnet: "0.0.0.0/8", bridge: "", chosenSubnet: false, internal: false, labels: [:], endpoints: [:]))
        n.Driver = driver
        n.IPAM.Config = []
        n.Options = [:]
        return n
    }
}

/// docker inspect's NetworkSettings: the address a container has while it runs, and its ports.
public struct NetworkSettings: Encodable, Sendable {
    public struct Network: Encodable, Sendable {
        public var NetworkID: String
        public var EndpointID: String
        public var Gateway: String
        public var IPAddress: String
        public var IPPrefixLen: Int
        public var MacAddress: String
    }
    public struct HostPort: Encodable, Sendable { public var HostIp: String; public var HostPort: String }
    public var SandboxKey: String
    public var IPAddress: String
    public var IPPrefixLen: Int
    public var Gateway: String
    public var MacAddress: String
    public var Ports: [String: [HostPort]?]
    public var Networks: [String: Network]

    public init(_ c: EngineContainer, engine: Engine) {
        let a = c.status == .running ? c.attachment : nil
        SandboxKey = a == nil ? "" : engine.sandbox.namespacePath(c.id)
        IPAddress = a?.address.description ?? ""
        IPPrefixLen = a?.prefix ?? 0
        Gateway = a?.gateway.description ?? ""
        MacAddress = a?.mac ?? ""
        var ports: [String: [HostPort]?] = [:]
        for p in c.ports ?? [] { ports["\(p.containerPort)/\(p.proto)"] = .some(nil) }
        for p in a?.ports ?? [] {
            let key = "\(p.containerPort)/\(p.proto)"
            ports[key] = ((ports[key] ?? nil) ?? []) + [HostPort(HostIp: p.hostIP.isEmpty ? "0.0.0.0" : p.hostIP, HostPort: String(p.hostPort))]
        }
        Ports = ports
        let mode = c.networkMode ?? "none"
        if let a {
            Networks = [a.network: Network(NetworkID: a.networkID, EndpointID: a.veth, Gateway: a.gateway.description, IPAddress: a.address.description,
                                           IPPrefixLen: a.prefix, MacAddress: a.mac)]
        } else if mode.hasPrefix("container:") {
            Networks = [:]
        } else {
            Networks = [mode: Network(NetworkID: "", EndpointID: "", Gateway: "", IPAddress: "", IPPrefixLen: 0, MacAddress: "")]
        }
    }
}

extension Engine {
    /// Every network, docker's `host` and `none` among them; the default one's record is made if missing.
    public func networkList() -> [NetworkInspect] {
        _ = try? networks.withLock { () throws(BerthError) in _ = try networks.defaultNetwork(created: Timestamp.now()) }
        return networks.list().map(NetworkInspect.init) + [NetworkInspect.mode("host", driver: "host"), NetworkInspect.mode("none", driver: "null")]
    }

    public func network(_ ref: String) throws(BerthError) -> NetworkInspect {
        if let mode = networkList().first(where: { $0.Name == ref || $0.Id == ref }) { return mode }
        return NetworkInspect(try networks.find(ref))
    }

    public func createNetwork(name: String, subnet: String?, `internal`: Bool = false, labels: [String: String] = [:], driver: String = "bridge") throws(BerthError) -> NetworkInspect {
        guard driver == "bridge" else { throw BerthError("network driver \"\(driver)\": berth has bridge networks") }
        try ContainerNames.validate(name, what: "network name")
        let r = try networks.create(name: name, subnet: subnet, internal: `internal`, labels: labels, created: Timestamp.now())
        Events.recordNetwork(self, "create", r.id, name: r.name)
        return NetworkInspect(r)
    }

    public func removeNetwork(_ ref: String) throws(BerthError) {
        if ["host", "none", NetworkStore.defaultName].contains(ref) { throw BerthError("\(ref) is a pre-defined network and cannot be removed") }
        let r = try networks.find(ref)
        try networks.remove(r.id)
        Events.recordNetwork(self, "destroy", r.id, name: r.name)
    }

    /// User networks no container is attached to.
    public func pruneNetworks() -> [String] {
        networks.list().filter { !$0.isDefault && $0.endpoints.isEmpty }.compactMap { r in
            (try? removeNetwork(r.id)).map { r.name }
        }
    }

    /// Endpoints whose container no longer runs under a supervisor (one killed with it, a
    /// reboot): their addresses, veths, rules and namespace files are released. The daemon
    /// does this when it starts.
    public func releaseStaleNetworks() {
        // a created container may be one whose supervisor is setting its network up right now: kept
        sandbox.sweep { id in (try? load(id)).map { refreshed($0).status != .exited } ?? false }
    }

    /// `--bip`: the default network's subnet, while no container is on it.
    public func setDefaultSubnet(_ cidr: String) throws(BerthError) {
        let subnet = try IPv4Subnet.parse(cidr)
        try networks.withLock { () throws(BerthError) in
            var r = try networks.defaultNetwork(created: Timestamp.now())
            guard r.subnet != subnet.description else { return }
            guard r.endpoints.isEmpty else { throw BerthError("--bip \(cidr): containers are on the default network (\(r.subnet)); stop them first") }
            r.subnet = subnet.description
            r.chosenSubnet = false
            try networks.save(r)
        }
    }
}
