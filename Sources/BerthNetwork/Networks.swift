#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys

/// A container's place on a network: its address, and the host end of its veth.
public struct NetworkEndpoint: Codable, Sendable, Equatable {
    public var container: String
    /// The container's name and hostname: what its peers reach it by.
    public var name: String
    public var hostname: String
    public var address: IPv4Address
    public var mac: String
    public var veth: String
    /// The container's /etc/hosts on the host, rewritten as peers come and go.
    public var hostsFile: String
}

/// A bridge network: its subnet, its bridge device and the addresses handed out
/// on it (`networks/<id>.json`). The records are the IPAM: an address is taken
/// while an endpoint holds it, and every change happens under `networks/lock`,
/// so two containers started at once never get one address, before or after a
/// restart of whatever started them.
public struct NetworkRecord: Codable, Sendable {
    public var id: String
    public var name: String
    public var driver = "bridge"
    public var created: String
    public var subnet: String
    public var bridge: String
    /// berth picked the subnet (none was given): it may pick another while no one is attached.
    public var chosenSubnet: Bool
    public var `internal`: Bool
    public var labels: [String: String]
    public var endpoints: [String: NetworkEndpoint]

    public init(id: String, name: String, created: String, subnet: String, bridge: String, chosenSubnet: Bool, internal: Bool,
                labels: [String: String], endpoints: [String: NetworkEndpoint]) {
        self.id = id; self.name = name; self.created = created; self.subnet = subnet; self.bridge = bridge
        self.chosenSubnet = chosenSubnet; self.internal = `internal`; self.labels = labels; self.endpoints = endpoints
    }

    public var parsedSubnet: IPv4Subnet { (try? IPv4Subnet.parse(subnet)) ?? IPv4Subnet(address: IPv4Address(0), prefix: 8) }
    public var gateway: IPv4Address { parsedSubnet.gateway }
    /// docker's default network: created with its first container, its bridge gone with its last,
    /// and no names resolved on it (as on docker's default bridge).
    public var isDefault: Bool { name == NetworkStore.defaultName }
}

/// The networks of one berth root.
public struct NetworkStore: Sendable {
    public static let defaultName = "bridge"
    /// Names that are modes, not networks.
    public static let reserved: Set<String> = ["bridge", "host", "none", "default"]

    public let root: String
    /// The default network's bridge: `berth0` for the default root; another root gets
    /// names of its own so that two roots on one host never share a device.
    public let defaultBridge: String
    /// The nftables table that holds this root's published ports.
    public let natTable: String
    /// `--bip`: the default network's subnet (else berth picks a free one).
    public let defaultSubnet: String?
    /// Where the default network's subnet is picked from: docker-like /16s for the default
    /// root; /24s for another (tests' roots), the search starting at a place of the root's own,
    /// so that roots made at once seldom reach for the same one.
    let defaultPool: [IPv4Subnet]

    public init(dataRoot: String, defaultRoot: String, defaultSubnet: String? = nil) {
        root = dataRoot + "/networks"
        let tag = dataRoot == defaultRoot ? "" : String(FNV1a.hash(dataRoot), radix: 16).prefix(8).description
        defaultBridge = tag.isEmpty ? "berth0" : "bz" + tag
        natTable = tag.isEmpty ? "berth" : "berth_" + tag
        self.defaultSubnet = defaultSubnet
        if tag.isEmpty {
            defaultPool = (0..<12).map { IPv4Subnet(address: IPv4Address(UInt32(172 << 24 | (31 - $0) << 16)), prefix: 16) }
        } else {
            let start = Int(FNV1a.hash(dataRoot) % 256)
            defaultPool = (0..<256).map { IPv4Subnet(address: IPv4Address(UInt32(10 << 24 | 200 << 16 | ((start + $0) % 256) << 8)), prefix: 24) }
        }
    }

    func path(_ id: String) -> String { root + "/" + id + ".json" }

    /// Runs `body` holding the store's lock (every read-modify-write of a record).
    public func withLock<T>(_ body: () throws(BerthError) -> T) throws(BerthError) -> T {
        try Files.makeDirectories(root, mode: 0o700)
        let lock = try StoreLock(path: root + "/lock", exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        return try body()
    }

    public func list() -> [NetworkRecord] {
        let decoder = JSONDecoder()
        return ((try? Files.list(root)) ?? []).filter { $0.hasSuffix(".json") }.compactMap { name in
            (try? Files.readBytes(root + "/" + name)).flatMap { try? decoder.decode(NetworkRecord.self, from: Data($0)) }
        }.sorted { $0.name < $1.name }
    }

    public func save(_ r: NetworkRecord) throws(BerthError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.writeAtomically(Array((try? encoder.encode(r)) ?? Data()), to: path(r.id), mode: 0o600)
    }

    /// By name, full id or unique id prefix.
    public func find(_ ref: String) throws(BerthError) -> NetworkRecord {
        let all = list()
        if let r = all.first(where: { $0.name == ref || $0.id == ref }) { return r }
        let matches = all.filter { $0.id.hasPrefix(ref) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw BerthError("network \"\(ref)\": the prefix matches \(matches.count) networks") }
        throw BerthError("no such network: \(ref)")
    }

    static func newID() -> String {
        (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
    }

    /// `network create`: the record and its bridge, up with the gateway address.
    public func create(name: String, subnet: String?, internal: Bool = false, labels: [String: String] = [:], created: String) throws(BerthError) -> NetworkRecord {
        guard !Self.reserved.contains(name) else { throw BerthError("network name \"\(name)\" is reserved (bridge, host, none and default are modes)") }
        return try withLock { () throws(BerthError) -> NetworkRecord in
            guard !list().contains(where: { $0.name == name }) else { throw BerthError("network with name \(name) already exists") }
            let id = Self.newID()
            let chosen: IPv4Subnet
            if let subnet {
                chosen = try IPv4Subnet.parse(subnet)
                if let other = list().first(where: { $0.parsedSubnet.overlaps(chosen) }) {
                    throw BerthError("subnet \(chosen) overlaps network \(other.name)'s \(other.subnet)")
                }
                if let route = HostRoutes.current().first(where: { $0.overlaps(chosen) }) {
                    throw BerthError("subnet \(chosen) overlaps the host's route to \(route)")
                }
            } else {
                chosen = try freeSubnet(pool: Self.userPool, excluding: nil)
            }
            var r = NetworkRecord(id: id, name: name, created: created, subnet: chosen.description, bridge: "br-" + id.prefix(12),
                                  chosenSubnet: subnet == nil, internal: `internal`, labels: labels, endpoints: [:])
            try ensureBridge(&r)
            do throws(BerthError) { try save(r) } catch {
                _ = try? Netlink().deleteLink(r.bridge)
                throw error
            }
            return r
        }
    }

    /// `network rm`: refused while containers are attached.
    public func remove(_ ref: String) throws(BerthError) {
        try withLock { () throws(BerthError) in
            let r = try find(ref)
            guard !r.isDefault else { throw BerthError("bridge is a pre-defined network and cannot be removed") }
            guard r.endpoints.isEmpty else {
                throw BerthError("network \(r.name) has active endpoints (\(r.endpoints.values.map(\.name).sorted().joined(separator: ", "))): remove or stop them first")
            }
            try Netlink().deleteLink(r.bridge)
            guard unlink(path(r.id)) == 0 || errno == ENOENT else { throw .sys("remove", path: path(r.id)) }
        }
    }

    /// The default network's record, made on first use. Called under the lock.
    public func defaultNetwork(created: String) throws(BerthError) -> NetworkRecord {
        if let r = list().first(where: { $0.isDefault }) { return r }
        let subnet: IPv4Subnet
        if let defaultSubnet { subnet = try IPv4Subnet.parse(defaultSubnet) } else { subnet = try freeSubnet(pool: defaultPool, excluding: nil) }
        let r = NetworkRecord(id: Self.newID(), name: Self.defaultName, created: created, subnet: subnet.description, bridge: defaultBridge,
                              chosenSubnet: defaultSubnet == nil, internal: false, labels: [:], endpoints: [:])
        try save(r)
        return r
    }

    /// User networks get /24s, as podman hands them out.
    static let userPool: [IPv4Subnet] = (0..<256).map { IPv4Subnet(address: IPv4Address(UInt32(10 << 24 | 89 << 16 | $0 << 8)), prefix: 24) }

    /// The first subnet of `pool` that no other network of this root and no host route overlaps.
    func freeSubnet(pool: [IPv4Subnet], excluding own: String?) throws(BerthError) -> IPv4Subnet {
        let taken = list().filter { $0.id != own }.map(\.parsedSubnet) + HostRoutes.current()
        guard let s = pool.first(where: { candidate in !taken.contains { $0.overlaps(candidate) } }) else {
            throw BerthError("no free subnet left in \(pool.first!)…\(pool.last!): give one with --subnet")
        }
        return s
    }

    /// The bridge exists and is up with the gateway's address (made again after a reboot,
    /// say). A subnet berth chose moves if the host has since routed it elsewhere.
    func ensureBridge(_ r: inout NetworkRecord) throws(BerthError) {
        let link = try Netlink()
        if try link.index(of: r.bridge) != nil { return }
        let pool = r.isDefault ? defaultPool : Self.userPool
        let routes = HostRoutes.current()
        if r.chosenSubnet && r.endpoints.isEmpty && routes.contains(where: { $0.overlaps(r.parsedSubnet) }) {
            r.subnet = try freeSubnet(pool: pool, excluding: r.id).description
        }
        if let route = routes.first(where: { $0.overlaps(r.parsedSubnet) }) {
            throw BerthError("network \(r.name): its subnet \(r.subnet) overlaps the host's route to \(route)")
        }
        try link.createBridge(r.bridge)
        do throws(BerthError) {
            guard let index = try link.index(of: r.bridge) else { throw BerthError("bridge \(r.bridge) vanished after it was made") }
            try link.addAddress(r.gateway, prefix: r.parsedSubnet.prefix, to: index, name: r.bridge)
            try link.setUp(index, name: r.bridge)
        } catch {
            _ = try? link.deleteLink(r.bridge)
            throw error
        }
    }
}

/// The host's IPv4 routes (main table), from /proc/net/route: the subnets a
/// new network must not overlap.
enum HostRoutes {
    static func current() -> [IPv4Subnet] {
        guard let text = try? Files.read("/proc/net/route") else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard f.count > 7, let dst = UInt32(f[1], radix: 16), let mask = UInt32(f[7], radix: 16), mask != 0 else { return nil }
            // the file prints the kernel's network-order words as host-order hex
            let d = dst.byteSwapped, m = mask.byteSwapped
            return IPv4Subnet(address: IPv4Address(d), prefix: m.nonzeroBitCount)
        }
    }
}
