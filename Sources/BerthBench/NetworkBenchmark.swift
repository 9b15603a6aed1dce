#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthNetwork
import BerthSys

/// Container networking: what a bridge network costs to set up per container
/// (namespace file, address, veth pair, configuration inside, a published
/// port's DNAT rule; and the teardown), and what its path costs traffic: TCP
/// throughput and request/response latency container↔container (veth, bridge,
/// veth) and container↔host (veth, bridge, the host's stack) against the
/// host's loopback, in rounds whose order is shuffled, as paired ratios.
/// The traffic's ends are sockets made inside the containers' namespaces: the
/// path is the one a container's process gets, with no process start in it.
public struct NetworkBenchmark {
    public var context: BenchContext
    public init(context: BenchContext) { self.context = context }

    static let paths = ["loopback", "container↔container", "container↔host"]

    public func run(progress: Progress) throws -> NetworkResult {
        let profile = context.profile
        let store = NetworkStore(dataRoot: context.workDir + "/network-data", defaultRoot: ImageStore.defaultRoot)
        let sandbox = Sandbox(store: store, namespaceDirectory: context.workDir + "/netns")
        let network = try store.create(name: "bench", subnet: nil, created: "")
        var made: [String] = []
        defer {
            for id in made { sandbox.teardown(id: id) }
            try? store.remove(network.id)
        }
        func newID() -> String { (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined() }
        var result = NetworkResult(setups: profile.networkSetups, rounds: profile.networkRounds, megabytes: profile.networkMiB,
                                   exchanges: profile.networkExchanges, subnet: network.subnet, bridge: network.bridge)

        // setup and teardown, phase by phase, with one published port (its nft rule)
        progress.begin("network setup", total: profile.networkSetups)
        var phases: [String: [Double]] = [:]
        for _ in 0..<profile.networkSetups {
            let id = newID()
            var timing = Sandbox.Timing()
            let port = PortBinding(hostIP: "127.0.0.1", hostPort: UInt16.random(in: 40000...60000), containerPort: 80, proto: "tcp")
            made.append(id)
            let start = monotonicMilliseconds()
            _ = try sandbox.setup(id: id, name: "bench", hostname: "bench", network: network.name, ports: [port], hostsFile: "/dev/null",
                                  created: "", timing: &timing)
            let setUp = monotonicMilliseconds()
            sandbox.teardown(id: id)
            let end = monotonicMilliseconds()
            made.removeLast()
            for (name, v) in [("namespace", timing.namespace), ("address (IPAM)", timing.address), ("veth pair", timing.veth),
                              ("inside (lo, eth0, route)", timing.inside), ("published port (nft)", timing.ports),
                              ("setup total", setUp - start), ("teardown", end - setUp)] {
                phases[name, default: []].append(v)
            }
            progress.step()
        }
        progress.end()
        result.setupMilliseconds = phases.mapValues(Summary.init)
        result.samples["setup"] = ["ms": phases["setup total"] ?? [], "teardown ms": phases["teardown"] ?? []]

        // two containers on the network for the traffic
        let a = newID(), b = newID()
        made += [a, b]
        let atA = try sandbox.setup(id: a, name: "a", hostname: "a", network: network.name, ports: [], hostsFile: "/dev/null", created: "")
        _ = try sandbox.setup(id: b, name: "b", hostname: "b", network: network.name, ports: [], hostsFile: "/dev/null", created: "")
        let ends: [String: (server: () throws -> Int32, client: () throws -> Int32, address: IPv4Address)] = [
            "loopback": ({ try Self.hostSocket() }, { try Self.hostSocket() }, IPv4Address(0x7f00_0001)),
            "container↔container": ({ try sandbox.socket(in: a, type: Int32(SOCK_STREAM.rawValue)) },
                                    { try sandbox.socket(in: b, type: Int32(SOCK_STREAM.rawValue)) }, atA.address),
            "container↔host": ({ try Self.hostSocket() }, { try sandbox.socket(in: a, type: Int32(SOCK_STREAM.rawValue)) }, atA.gateway),
        ]
        var throughput: [String: [Double]] = [:], latency: [String: [Double]] = [:]
        var rng = SplitMix64(seed: 7)
        progress.begin("network traffic", total: profile.networkRounds)
        for _ in 0..<profile.networkRounds {
            var order = Self.paths
            order.shuffle(using: &rng)
            for path in order {
                let e = ends[path]!
                throughput[path, default: []].append(try Self.stream(server: e.server(), client: e.client(), at: e.address, megabytes: profile.networkMiB))
                latency[path, default: []].append(try Self.pingPong(server: e.server(), client: e.client(), at: e.address, exchanges: profile.networkExchanges))
            }
            progress.step()
        }
        progress.end()
        for path in Self.paths {
            result.megabytesPerSecond[path] = Summary(throughput[path] ?? [])
            result.roundTripMicroseconds[path] = Summary(latency[path] ?? [])
            result.samples[path] = ["MB/s": throughput[path] ?? [], "µs": latency[path] ?? []]
        }
        // throughput as a time ratio (loopback's MB/s over the path's: above 1 is slower), latency directly
        if let lo = throughput["loopback"], let rt = latency["loopback"] {
            for path in Self.paths.dropFirst() {
                if let t = throughput[path] { result.ratios["\(path) / loopback (time per MB)"] = Statistics.pairedRatio(lo, t) }
                if let l = latency[path] { result.ratios["\(path) / loopback (round trip)"] = Statistics.pairedRatio(l, rt) }
            }
        }
        return result
    }

    static func hostSocket() throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BerthError.sys("socket") }
        return fd
    }

    /// The server listening on `at` (a port of the kernel's), and the client connected to it.
    static func connectPair(server: Int32, client: Int32, at: IPv4Address) throws -> (listener: Int32, client: Int32) {
        var s = at.socketAddress(port: 0)
        let bound = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(server, 4) == 0 else { throw BerthError.sys("bind/listen on \(at)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &len) } }
        let connected = withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw BerthError.sys("connect to \(at):\(UInt16(bigEndian: s.sin_port))") }
        return (server, client)
    }

    /// MB/s of `megabytes` written by the client and read to EOF by the server.
    static func stream(server: Int32, client: Int32, at: IPv4Address, megabytes: Int) throws -> Double {
        let (listener, out) = try connectPair(server: server, client: client, at: at)
        defer { close(listener); close(out) }
        let conn = accept(listener, nil, nil)
        guard conn >= 0 else { throw BerthError.sys("accept") }
        let total = megabytes << 20
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var received = 0
        nonisolated(unsafe) var finished = 0.0
        Thread {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n = read(conn, buffer.baseAddress, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                received += n
            }
            finished = monotonicMilliseconds()
            close(conn)
            done.signal()
        }.start()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 17, alignment: 16)
        defer { chunk.deallocate() }
        chunk.initializeMemory(as: UInt8.self, repeating: 0x5a)
        let start = monotonicMilliseconds()
        var sent = 0
        while sent < total {
            let n = write(out, chunk.baseAddress, Swift.min(chunk.count, total - sent))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BerthError.sys("write to \(at)") }
            sent += n
        }
        shutdown(out, Int32(SHUT_WR))
        done.wait()
        guard received == total else { throw BerthError("stream to \(at): \(received) of \(total) bytes arrived") }
        return Double(total) / 1_000_000 / ((finished - start) / 1000)
    }

    /// Median round trip in µs of 64-byte requests echoed back, one at a time (TCP_NODELAY).
    static func pingPong(server: Int32, client: Int32, at: IPv4Address, exchanges: Int) throws -> Double {
        let (listener, out) = try connectPair(server: server, client: client, at: at)
        defer { close(listener); close(out) }
        let conn = accept(listener, nil, nil)
        guard conn >= 0 else { throw BerthError.sys("accept") }
        var one: Int32 = 1
        setsockopt(out, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let done = DispatchSemaphore(value: 0)
        Thread {
            var b = [UInt8](repeating: 0, count: 64)
            while b.withUnsafeMutableBytes({ readFully(conn, $0) }) { if !b.withUnsafeBytes({ writeFully(conn, $0) }) { break } }
            close(conn)
            done.signal()
        }.start()
        var message = [UInt8](repeating: 7, count: 64)
        var rtts: [Double] = []
        rtts.reserveCapacity(exchanges)
        for _ in 0..<exchanges {
            let t0 = monotonicNanoseconds()
            guard message.withUnsafeBytes({ writeFully(out, $0) }), message.withUnsafeMutableBytes({ readFully(out, $0) }) else { throw BerthError.sys("ping-pong with \(at)") }
            rtts.append(Double(monotonicNanoseconds() - t0) / 1000)
        }
        shutdown(out, Int32(SHUT_WR))
        done.wait()
        return Statistics.median(rtts)
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

public struct NetworkResult: Codable, Sendable {
    public var setups: Int
    public var rounds: Int
    public var megabytes: Int
    public var exchanges: Int
    public var subnet: String
    public var bridge: String
    /// Per phase of a bridge network's setup, and the teardown, in ms.
    public var setupMilliseconds: [String: Summary] = [:]
    public var megabytesPerSecond: [String: Summary] = [:]
    public var roundTripMicroseconds: [String: Summary] = [:]
    public var samples: [String: [String: [Double]]] = [:]
    /// Paired per-round ratios against the host's loopback (above 1: slower than loopback).
    public var ratios: [String: Ratio] = [:]

    static let phases = ["namespace", "address (IPAM)", "veth pair", "inside (lo, eth0, route)", "published port (nft)", "setup total", "teardown"]
}
