#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys
import CBerthNet

/// One published port: `-p [IP:][HOST:]CONTAINER[/tcp|udp]`.
public struct PortBinding: Codable, Sendable, Hashable {
    /// "" for every address of the host.
    public var hostIP: String
    /// 0 until the port is bound: then the one the kernel picked.
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var proto: String

    public init(hostIP: String, hostPort: UInt16, containerPort: UInt16, proto: String) {
        self.hostIP = hostIP; self.hostPort = hostPort; self.containerPort = containerPort; self.proto = proto
    }

    /// docker's forms: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`, ranges `8080-8081:80-81`, `/udp`.
    public static func parse(_ text: String) throws(BerthError) -> [PortBinding] {
        func bad(_ why: String) -> BerthError { BerthError("-p \(text): \(why)") }
        var spec = Substring(text)
        var proto = "tcp"
        if let slash = spec.lastIndex(of: "/") {
            proto = String(spec[spec.index(after: slash)...]).lowercased()
            spec = spec[..<slash]
            guard proto == "tcp" || proto == "udp" else { throw bad("protocol \(proto): want tcp or udp") }
        }
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count) else { throw bad("want [IP:][HOST:]CONTAINER[/PROTO]") }
        var ip = ""
        if parts.count == 3 {
            ip = parts.removeFirst()
            if ip == "0.0.0.0" { ip = "" }
            guard ip.isEmpty || IPv4Address(ip) != nil else { throw bad("host address \(ip) is not an IPv4 address") }
        }
        func range(_ s: String, what: String) throws(BerthError) -> ClosedRange<UInt16>? {
            if s.isEmpty { return nil }
            let ends = s.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let lo = UInt16(ends[0]), lo > 0, let hi = ends.count == 2 ? UInt16(ends[1]) : lo, hi >= lo else {
                throw bad("\(what) port \(s): want 1-65535 or a range LOW-HIGH")
            }
            return lo...hi
        }
        guard let container = try range(parts.last!, what: "container") else { throw bad("the container port is missing") }
        let host = parts.count == 2 ? try range(parts[0], what: "host") : nil
        if let host, host.count != container.count { throw bad("the host range and the container range differ in size") }
        return container.enumerated().map { i, port in
            PortBinding(hostIP: ip, hostPort: host.map { $0.lowerBound + UInt16(i) } ?? 0, containerPort: port, proto: proto)
        }
    }

    /// `127.0.0.1:8080->80/tcp`, as docker ps shows it.
    public var description: String { "\(hostIP.isEmpty ? "0.0.0.0" : hostIP):\(hostPort)->\(containerPort)/\(proto)" }
}

/// The published ports' DNAT rules, in this root's nftables table (`ip berth`),
/// driven through libnftables in its JSON form. The table has base chains on the
/// prerouting hook (traffic from elsewhere, only while the host forwards) and on
/// the output hook (the host's own traffic to its non-loopback addresses), both
/// jumping to `ports`, where each rule carries the comment `berth:ID` it is
/// removed by. The table goes with the last rule. Loopback is the userland
/// proxy's (`PortProxy`): DNAT of 127.0.0.1 would need route_localnet and SNAT.
struct PortRules {
    let table: String
    let lock: NetworkStore

    static func run(_ commands: [[String: Any]], listing: Bool = false) throws(BerthError) -> [String: Any]? {
        let data = (try? JSONSerialization.data(withJSONObject: ["nftables": commands])) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
        var output: UnsafeMutablePointer<CChar>?
        var error: UnsafeMutablePointer<CChar>?
        let r = listing ? berth_nft_run(text, 1, &output, &error) : berth_nft_run(text, 1, nil, &error)
        defer { free(output); free(error) }
        guard r == 0 else {
            let message = error.map { String(cString: $0) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw BerthError("nftables: \(message.split(separator: "\n").first.map(String.init) ?? "command failed")")
        }
        guard let output, let json = try? JSONSerialization.jsonObject(with: Data(String(cString: output).utf8)) as? [String: Any] else { return nil }
        return json
    }

    func ruleHandles() -> [(handle: Int, comment: String)]? {
        guard let json = try? Self.run([["list": ["chain": ["family": "ip", "table": table, "name": "ports"]]]], listing: true),
              let items = json["nftables"] as? [[String: Any]] else { return nil }
        return items.compactMap { item in
            guard let rule = item["rule"] as? [String: Any], let handle = rule["handle"] as? Int else { return nil }
            return (handle, rule["comment"] as? String ?? "")
        }
    }

    static func match(_ left: [String: Any], _ right: Any, op: String = "==") -> [String: Any] {
        ["match": ["op": op, "left": left, "right": right]]
    }

    func add(id: String, address: IPv4Address, ports: [PortBinding]) throws(BerthError) {
        try lock.withLock { () throws(BerthError) in
            var commands: [[String: Any]] = []
            if ruleHandles() == nil {
                let localDestination = Self.match(["fib": ["result": "type", "flags": ["daddr"]]], "local")
                commands += [
                    ["add": ["table": ["family": "ip", "name": table]]],
                    ["add": ["chain": ["family": "ip", "table": table, "name": "ports"]]],
                    ["add": ["chain": ["family": "ip", "table": table, "name": "output", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"]]],
                    ["add": ["rule": ["family": "ip", "table": table, "chain": "output", "expr": [
                        Self.match(["payload": ["protocol": "ip", "field": "daddr"]], ["prefix": ["addr": "127.0.0.0", "len": 8]], op: "!="),
                        localDestination, ["jump": ["target": "ports"]]]]]],
                ]
                // from other hosts (and containers) only when the host routes between interfaces:
                // berth never turns forwarding on; without it the proxy serves them
                if (try? Files.read("/proc/sys/net/ipv4/ip_forward"))?.hasPrefix("1") == true {
                    commands += [
                        ["add": ["chain": ["family": "ip", "table": table, "name": "prerouting", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"]]],
                        ["add": ["rule": ["family": "ip", "table": table, "chain": "prerouting", "expr": [localDestination, ["jump": ["target": "ports"]]]]]],
                    ]
                }
            }
            for p in ports {
                var expr: [[String: Any]] = []
                if !p.hostIP.isEmpty { expr.append(Self.match(["payload": ["protocol": "ip", "field": "daddr"]], p.hostIP)) }
                expr.append(Self.match(["payload": ["protocol": p.proto, "field": "dport"]], Int(p.hostPort)))
                // counted: the packets a rule rewrote are how DNAT (not the proxy) is seen to carry a connection
                expr.append(["counter": ["packets": 0, "bytes": 0]])
                expr.append(["dnat": ["addr": address.description, "port": Int(p.containerPort)]])
                commands.append(["add": ["rule": ["family": "ip", "table": table, "chain": "ports", "comment": "berth:" + id, "expr": expr]]])
            }
            _ = try Self.run(commands)
        }
    }

    /// Deletes container `id`'s rules, and the table when no container has any left.
    func remove(id: String) throws(BerthError) {
        try lock.withLock { () throws(BerthError) in
            guard let rules = ruleHandles() else { return }
            let mine = rules.filter { $0.comment == "berth:" + id }
            if mine.count == rules.count {
                _ = try Self.run([["delete": ["table": ["family": "ip", "name": table]]]])
            } else if !mine.isEmpty {
                _ = try Self.run(mine.map { ["delete": ["rule": ["family": "ip", "table": table, "chain": "ports", "handle": $0.handle]]] })
            }
        }
    }
}

/// The userland half of publishing (docker-proxy's job), run by the container's
/// supervisor: it holds each host port (so no one else takes it while the
/// container runs) and relays what reaches it, loopback above all, to the
/// container's address. Binding happens before the container is created, so a
/// port in use fails the start with its name.
public final class PortProxy: @unchecked Sendable {
    struct Listener { var fd: Int32; var binding: PortBinding }
    var listeners: [Listener] = []

    /// Binds every port; `bindings` come back with the ports the kernel picked for 0.
    public init(bindings: inout [PortBinding]) throws(BerthError) {
        do throws(BerthError) {
            for i in bindings.indices {
                let b = bindings[i]
                let type = b.proto == "udp" ? SOCK_DGRAM : SOCK_STREAM
                let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else { throw .sys("socket for port \(b.hostPort)/\(b.proto)") }
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                var address = (IPv4Address(b.hostIP) ?? IPv4Address(0)).socketAddress(port: b.hostPort)
                let r = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                guard r == 0 else {
                    let e = errno
                    Glibc.close(fd)
                    throw BerthError("publish port \(b.hostIP.isEmpty ? "0.0.0.0" : b.hostIP):\(b.hostPort)/\(b.proto): bind", errno: e)
                }
                if type == SOCK_STREAM { listen(fd, 128) }
                var bound = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
                bindings[i].hostPort = UInt16(bigEndian: bound.sin_port)
                listeners.append(Listener(fd: fd, binding: bindings[i]))
            }
        } catch {
            close()
            throw error
        }
    }

    public func close() {
        for l in listeners { Glibc.close(l.fd) }
        listeners = []
    }

    /// Relays from now on, on threads of its own, to `container`.
    public func start(container: IPv4Address) {
        for l in listeners {
            let target = container.socketAddress(port: l.binding.containerPort)
            let t = l.binding.proto == "udp" ? Thread { Self.relayDatagrams(l.fd, to: target) } : Thread { Self.acceptStreams(l.fd, to: target) }
            t.start()
        }
    }

    static func connect(to target: sockaddr_in, type: Int32) -> Int32 {
        let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var t = target
        let r = withUnsafePointer(to: &t) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 { Glibc.close(fd); return -1 }
        return fd
    }

    static func acceptStreams(_ listener: Int32, to target: sockaddr_in) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let upstream = connect(to: target, type: Int32(SOCK_STREAM.rawValue))
            guard upstream >= 0 else { Glibc.close(client); continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            // each direction on its own thread; the last one to finish closes both
            let done = ManagedAtomicCounter()
            for (from, to) in [(client, upstream), (upstream, client)] {
                Thread {
                    copyStream(from, to)
                    if done.increment() == 2 { Glibc.close(client); Glibc.close(upstream) }
                }.start()
            }
        }
    }

    static func copyStream(_ from: Int32, _ to: Int32) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(from, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || !writeFully(to, UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { break }
        }
        shutdown(to, Int32(SHUT_WR))
    }

    /// UDP: one connected socket to the container per client address, and a thread
    /// per client carrying the answers back.
    static func relayDatagrams(_ listener: Int32, to target: sockaddr_in) {
        var upstreams: [String: Int32] = [:]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            var peer = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(listener, buffer.baseAddress, buffer.count, 0, $0, &len) } }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            let key = "\(peer.sin_addr.s_addr):\(peer.sin_port)"
            var upstream = upstreams[key] ?? -1
            if upstream < 0 {
                upstream = connect(to: target, type: Int32(SOCK_DGRAM.rawValue))
                guard upstream >= 0 else { continue }
                upstreams[key] = upstream
                let answerTo = peer
                let u = upstream
                Thread {
                    let back = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
                    defer { back.deallocate() }
                    var to = answerTo
                    while true {
                        let m = recv(u, back.baseAddress, back.count, 0)
                        if m < 0 && errno == EINTR { continue }
                        if m < 0 { return }
                        _ = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            sendto(listener, back.baseAddress, m, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                    }
                }.start()
            }
            _ = send(upstream, buffer.baseAddress, n, 0)
        }
    }
}

/// A counter two threads bump: the second to finish knows it is last.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
