#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys
import CBerthNet

/// What a container got on its network while it runs: kept in its record for
/// inspect, and what teardown undoes.
public struct NetworkAttachment: Codable, Sendable, Equatable {
    public var network: String
    public var networkID: String
    public var address: IPv4Address
    public var prefix: Int
    public var gateway: IPv4Address
    public var mac: String
    public var bridge: String
    public var veth: String
    public var ports: [PortBinding]
}

/// A container's network namespace on a bridge network: made before the
/// container is created, torn down after it ended. The namespace is a file
/// (`EXEC-ROOT/netns/ID`, an nsfs bind mount) that the runtime config names, so
/// it exists before the container's first process and is there to configure.
/// Steps and their undo (teardown undoes whatever exists, so it serves a
/// failure halfway as well as a normal end):
///   address (IPAM)  → released;     namespace file → unmounted and removed;
///   veth pair       → host end deleted (the peer goes with it);
///   published ports → nft rules deleted (the table with the last of them).
public struct Sandbox: Sendable {
    public let store: NetworkStore
    public let namespaceDirectory: String

    public init(store: NetworkStore, namespaceDirectory: String) {
        self.store = store
        self.namespaceDirectory = namespaceDirectory
    }

    public func namespacePath(_ id: String) -> String { namespaceDirectory + "/" + id }

    /// A socket inside container `id`'s network namespace (the benchmark's traffic
    /// takes the container's path without a process in it).
    public func socket(in id: String, type: Int32) throws(BerthError) -> Int32 {
        let path = namespacePath(id)
        let nsfd = open(path, O_RDONLY | O_CLOEXEC)
        guard nsfd >= 0 else { throw .sys("open the network namespace", path: path) }
        defer { close(nsfd) }
        let fd = berth_socket_in_netns(nsfd, AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .sys("make a socket in the network namespace", path: path) }
        return fd
    }
    public static func vethName(_ id: String) -> String { "bv" + id.prefix(12) }

    /// Timings of a setup, for the startup breakdown.
    public struct Timing: Sendable {
        public var namespace = 0.0, address = 0.0, veth = 0.0, inside = 0.0, ports = 0.0
        public init() {}
    }

    /// Joins container `id` to `network` (a name or id; `bridge` is the default network).
    public func setup(id: String, name: String, hostname: String, network: String, ports: [PortBinding], hostsFile: String,
                      created: String, timing: UnsafeMutablePointer<Timing>? = nil) throws(BerthError) -> NetworkAttachment {
        var t = Timing()
        defer { timing?.pointee = t }
        do throws(BerthError) {
            var mark = monotonicMilliseconds()
            func lap(_ field: WritableKeyPath<Timing, Double>) {
                let now = monotonicMilliseconds()
                t[keyPath: field] += now - mark
                mark = now
            }
            let path = namespacePath(id)
            // left by a supervisor that died with its container: undone before this start
            if Files.exists(path) { teardown(id: id) }
            try Files.makeDirectories(namespaceDirectory, mode: 0o700)
            let placeholder = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
            guard placeholder >= 0 else { throw .sys("create the network namespace file", path: path) }
            close(placeholder)
            guard berth_netns_create(path) == 0 else { throw .sys("create a network namespace on", path: path) }
            lap(\.namespace)

            let veth = Self.vethName(id)
            let (record, address) = try store.withLock { () throws(BerthError) -> (NetworkRecord, IPv4Address) in
                var r = network == NetworkStore.defaultName ? try store.defaultNetwork(created: created) : try store.find(network)
                try store.ensureBridge(&r)
                let used = Set(r.endpoints.values.filter { $0.container != id }.map(\.address.value))
                guard let free = r.parsedSubnet.hosts.first(where: { !used.contains($0) }) else {
                    throw BerthError("network \(r.name): no free address left in \(r.subnet)")
                }
                let a = IPv4Address(free)
                r.endpoints[id] = NetworkEndpoint(container: id, name: name, hostname: hostname, address: a,
                                                  mac: macText(macAddress(for: a)), veth: veth, hostsFile: hostsFile)
                try store.save(r)
                try HostsFiles.rewrite(r)
                return (r, a)
            }
            lap(\.address)

            let nsfd = open(path, O_RDONLY | O_CLOEXEC)
            guard nsfd >= 0 else { throw .sys("open the network namespace", path: path) }
            defer { close(nsfd) }
            let host = try Netlink()
            guard let bridge = try host.index(of: record.bridge) else { throw BerthError("network \(record.name): its bridge \(record.bridge) is gone") }
            try host.createVeth(host: veth, master: bridge, peer: "eth0", peerMAC: macAddress(for: address), peerNamespace: nsfd, mtu: 1500)
            guard let hostEnd = try host.index(of: veth) else { throw BerthError("veth \(veth) vanished after it was made") }
            try host.setUp(hostEnd, name: veth)
            lap(\.veth)

            let inside = try Netlink(namespace: nsfd, describing: path)
            if let lo = try inside.index(of: "lo") { try inside.setUp(lo, name: "lo") }
            guard let eth0 = try inside.index(of: "eth0") else { throw BerthError("eth0 is missing in", path: path) }
            let prefix = record.parsedSubnet.prefix
            try inside.addAddress(address, prefix: prefix, to: eth0, name: "eth0")
            try inside.setUp(eth0, name: "eth0")
            if !record.internal { try inside.addDefaultRoute(via: record.gateway, index: eth0) }
            lap(\.inside)

            if !ports.isEmpty { try PortRules(table: store.natTable, lock: store).add(id: id, address: address, ports: ports) }
            lap(\.ports)
            return NetworkAttachment(network: record.name, networkID: record.id, address: address, prefix: prefix, gateway: record.gateway,
                                     mac: macText(macAddress(for: address)), bridge: record.bridge, veth: veth, ports: ports)
        } catch {
            teardown(id: id)
            throw error
        }
    }

    /// Undoes `setup` for container `id`, whatever part of it exists. Each step is
    /// tried, so one that fails does not keep the others from running; what failed is returned.
    @discardableResult
    public func teardown(id: String) -> [BerthError] {
        var problems: [BerthError] = []
        func attempt(_ step: () throws(BerthError) -> Void) {
            do { try step() } catch { problems.append(error) }
        }
        let path = namespacePath(id)
        attempt { () throws(BerthError) in try Netlink().deleteLink(Self.vethName(id)) }
        attempt { () throws(BerthError) in try PortRules(table: store.natTable, lock: store).remove(id: id) }
        if umount2(path, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            problems.append(.sys("unmount", path: path))
        }
        if unlink(path) != 0 && errno != ENOENT { problems.append(.sys("remove", path: path)) }
        attempt { () throws(BerthError) in try store.withLock { () throws(BerthError) in
            for var r in store.list() where r.endpoints[id] != nil {
                r.endpoints[id] = nil
                try store.save(r)
                try? HostsFiles.rewrite(r)
                // the default network's bridge lives as long as its containers
                if r.isDefault && r.endpoints.isEmpty { try Netlink().deleteLink(r.bridge) }
            }
        } }
        return problems
    }

    /// Containers' endpoints left by a supervisor that died with them (killed, or a reboot):
    /// `isAlive(id)` says which containers still run; the others' endpoints are torn down.
    public func sweep(isRunning: (String) -> Bool) {
        for r in store.list() {
            for id in r.endpoints.keys where !isRunning(id) { teardown(id: id) }
        }
    }
}

/// /etc/hosts of the containers on a network: each names itself, and on a user
/// network every peer by name and hostname. The file is bind-mounted into its
/// container, so it is rewritten in place (a rename would leave the mount on the old inode).
enum HostsFiles {
    static func text(for e: NetworkEndpoint, in r: NetworkRecord) -> String {
        var text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        text += "\(e.address)\t\(e.hostname)\(e.name == e.hostname ? "" : "\t" + e.name)\n"
        guard !r.isDefault else { return text }
        for p in r.endpoints.values.sorted(by: { $0.address < $1.address }) where p.container != e.container {
            text += "\(p.address)\t\(p.name)\(p.name == p.hostname ? "" : "\t" + p.hostname)\n"
        }
        return text
    }

    static func rewrite(_ r: NetworkRecord) throws(BerthError) {
        for e in r.endpoints.values {
            let fd = open(e.hostsFile, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard fd >= 0 else { continue }   // its container is being removed
            defer { close(fd) }
            let bytes = Array(text(for: e, in: r).utf8)
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
                throw .sys("write", path: e.hostsFile)
            }
        }
    }
}
