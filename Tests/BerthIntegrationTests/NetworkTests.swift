import Foundation
import Testing
import BerthImage
import BerthNetwork
import BerthSys

/// A port no one listens on now (the kernel's pick, released).
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: a.sin_port)
}

/// GET / over plain TCP from the host: the body, or nil when nothing answered.
func httpGet(_ address: String, _ port: UInt16, attempts: Int = 50) -> String? {
    for _ in 0..<attempts {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = (IPv4Address(address)?.value ?? 0).bigEndian
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r == 0 {
            let request = Array("GET / HTTP/1.0\r\nHost: x\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                out += buf[0..<n]
            }
            close(fd)
            let text = String(decoding: out, as: UTF8.self)
            if let body = text.range(of: "\r\n\r\n") { return String(text[body.upperBound...]) }
        } else {
            close(fd)
        }
        usleep(100_000)
    }
    return nil
}

@Suite("networks: bridge networks with veths and IPAM, names, published ports, container:, and nothing left after", .serialized,
       .enabled(if: Host.canRunContainers, Host.reason))
struct NetworkTests {
    func inspect(_ env: EngineEnvironment, _ what: [String]) throws -> [String: Any] {
        let out = try env.berth(["inspect"] + what)
        #expect(out.code == 0, "\(out.stderr)")
        let list = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]
        return try #require(list?.first)
    }

    @Test("two containers on a user network ping and talk TCP by name; container: shares a namespace; network rm refused while in use; nothing left after")
    func userNetwork() throws {
        let env = try EngineEnvironment()
        let created = try env.berth(["network", "create", "mesh"])
        #expect(created.code == 0 && created.stdout.count == 65, "\(created.stderr)")
        let netOut = try env.berth(["network", "inspect", "mesh"])
        let net = try #require((try JSONSerialization.jsonObject(with: Data(netOut.stdout.utf8)) as? [[String: Any]])?.first)
        let bridge = try #require((net["Options"] as? [String: String])?["com.docker.network.bridge.name"])
        let subnetText = try #require(((net["IPAM"] as? [String: Any])?["Config"] as? [[String: String]])?.first?["Subnet"])
        let subnet = try IPv4Subnet.parse(subnetText)
        #expect(Files.exists("/sys/class/net/" + bridge), "the bridge exists from network create on")

        #expect(try env.runContainer(["-d", "--name", "srv", "--network", "mesh", "busybox", "sh", "-c",
                                      "echo hello-over-tcp > /tmp/m; while true; do nc -l -p 7000 < /tmp/m; done"]).code == 0)
        let srv = try inspect(env, ["srv"])
        let srvID = try #require(srv["Id"] as? String)
        let settings = try #require(srv["NetworkSettings"] as? [String: Any])
        let address = try #require(IPv4Address(settings["IPAddress"] as? String ?? ""))
        #expect(subnet.contains(address) && address != subnet.gateway, "\(address) in \(subnet)")
        #expect(((settings["Networks"] as? [String: Any])?["mesh"]) != nil)
        let veth = Sandbox.vethName(srvID)
        #expect(readFile("/sys/class/net/\(veth)/master").isEmpty == false || readLinkPath("/sys/class/net/\(veth)/master").hasSuffix(bridge),
                "the host end is on the bridge")

        let client = try env.runContainer(["--rm", "--name", "cli", "--network", "mesh", "busybox", "sh", "-c",
                                           "ping -c 1 -W 3 srv >/dev/null && echo ping-ok; nc srv 7000 </dev/null; grep -c srv /etc/hosts; ip -4 route | grep default"])
        #expect(client.code == 0 && client.stdout.hasPrefix("ping-ok\nhello-over-tcp\n1\ndefault via \(subnet.gateway) dev eth0"), "\(client.stdout) \(client.stderr)")

        // the peer's own /etc/hosts learnt about the client while it ran, and forgot it after
        #expect(!(try env.berth(["exec", "srv", "cat", "/etc/hosts"]).stdout.contains("cli")))

        // --network container:srv: the same namespace, so the same address and lo
        let joined = try env.runContainer(["--rm", "--network", "container:srv", "busybox", "sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'"])
        #expect(joined.stdout == "inet \(address)\n", "\(joined.stdout) \(joined.stderr)")

        let busy = try env.berth(["network", "rm", "mesh"])
        #expect(busy.code != 0 && busy.stderr.contains("active endpoints") && busy.stderr.contains("srv"), "\(busy.stderr)")
        let stats = try env.berth(["stats", "--no-stream", "--format", "json", "srv"])
        let rx = ((try? JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])?["networks"] as? [String: [String: Any]])?["eth0"]?["rx_bytes"] as? Int
        #expect((rx ?? 0) > 0, "eth0's counters in stats: \(stats.stdout)")
        // the runtime's own view: runc's events --stats, with network_interfaces
        let events = try run(Package.runtimeBinary, ["--root", env.exec + "/runtime", "events", "--stats", srvID])
        let data = (try? JSONSerialization.jsonObject(with: Data(events.stdout.utf8)) as? [String: Any])?["data"] as? [String: Any]
        let interfaces = data?["network_interfaces"] as? [[String: Any]] ?? []
        #expect(interfaces.count == 1 && interfaces.first?["name"] as? String == "eth0" && (interfaces.first?["rx_packets"] as? Int ?? 0) > 0,
                "\(events.stdout) \(events.stderr)")

        #expect(try env.berth(["rm", "-f", "srv"]).code == 0)
        #expect(!Files.exists("/sys/class/net/" + veth), "the veth went with its container")
        #expect(try env.berth(["network", "rm", "mesh"]).code == 0)
        #expect(!Files.exists("/sys/class/net/" + bridge), "the bridge went with its network")
        #expect(!(try env.berth(["network", "ls"]).stdout.contains("mesh")))
        env.expectNoLeaks()
    }

    @Test("-p 127.0.0.1:PORT:80 reaches a server from the host's loopback (proxy); a host address through nft DNAT; the rules go with the container")
    func publishedPorts() throws {
        let env = try EngineEnvironment()
        let loopbackPort = freePort(), anyPort = freePort()
        #expect(try env.runContainer(["-d", "--name", "web", "-p", "127.0.0.1:\(loopbackPort):80", "-p", "\(anyPort):80", "busybox", "sh", "-c",
                                      "mkdir /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www"]).code == 0)
        #expect(httpGet("127.0.0.1", loopbackPort) == "served-by-web\n")
        let web = try inspect(env, ["web"])
        let settings = try #require(web["NetworkSettings"] as? [String: Any])
        let gateway = try #require(settings["Gateway"] as? String)
        let ports = settings["Ports"] as? [String: [[String: String]]]
        #expect(ports?["80/tcp"]?.contains { $0["HostIp"] == "127.0.0.1" && $0["HostPort"] == String(loopbackPort) } == true, "\(String(describing: ports))")
        // the bridge's address is the host's own: the output hook's DNAT takes it, and counts it
        #expect(httpGet(gateway, anyPort) == "served-by-web\n")
        let table = NetworkStore(dataRoot: env.data, defaultRoot: ImageStore.defaultRoot).natTable
        let rules = try run("/usr/sbin/nft", ["-j", "list", "chain", "ip", table, "ports"])
        let items = ((try? JSONSerialization.jsonObject(with: Data(rules.stdout.utf8)) as? [String: Any])?["nftables"] as? [[String: Any]]) ?? []
        let packets = items.compactMap { $0["rule"] as? [String: Any] }.compactMap { rule -> Int? in
            let expr = rule["expr"] as? [[String: Any]] ?? []
            guard expr.contains(where: { (($0["match"] as? [String: Any])?["right"] as? Int) == Int(anyPort) }) else { return nil }
            return expr.compactMap { ($0["counter"] as? [String: Any])?["packets"] as? Int }.first
        }
        #expect(packets.count == 1 && packets[0] > 0, "the DNAT rule for \(anyPort) carried the connection: \(rules.stdout)")
        #expect(try env.berth(["ps", "--format", "{{.Ports}}"]).stdout.contains("127.0.0.1:\(loopbackPort)->80/tcp"))

        // a port in use: the start fails by name, and leaves no namespace, address, veth or rule
        let taken = try env.runContainer(["-d", "--name", "clash", "-p", "127.0.0.1:\(loopbackPort):80", "busybox", "sleep", "30"])
        #expect(taken.code != 0 && taken.stderr.contains("127.0.0.1:\(loopbackPort)/tcp") && taken.stderr.contains("EADDRINUSE"), "\(taken.stderr)")
        #expect(try env.berth(["rm", "-f", "clash"]).code == 0)

        #expect(try env.berth(["rm", "-f", "web"]).code == 0)
        #expect(httpGet("127.0.0.1", loopbackPort, attempts: 1) == nil, "the proxy went with the container")
        env.expectNoLeaks()
    }

    @Test("errors: -p off a bridge, a bad -p, an unknown network, a taken name or subnet, the default network's removal; addresses are not handed out twice")
    func errorsAndIPAM() throws {
        let env = try EngineEnvironment()
        for (args, message) in [(["--network", "none", "-p", "80"], "do not go together"), (["-p", "80/sctp"], "protocol sctp"),
                                (["--network", "nosuch"], "no such network: nosuch"), (["--network", "container:nosuch"], "no such container: nosuch")] {
            let out = try env.runContainer(["--rm"] + args + ["busybox", "true"])
            #expect(out.code != 0 && out.stderr.contains(message), "\(args): \(out.stderr)")
        }
        #expect(try env.berth(["network", "create", "--subnet", "10.251.7.0/24", "fixed"]).code == 0)
        let twice = try env.berth(["network", "create", "fixed"])
        #expect(twice.code != 0 && twice.stderr.contains("already exists"), "\(twice.stderr)")
        let overlap = try env.berth(["network", "create", "--subnet", "10.251.0.0/16", "wide"])
        #expect(overlap.code != 0 && overlap.stderr.contains("overlaps"), "\(overlap.stderr)")
        let badSubnet = try env.berth(["network", "create", "--subnet", "10.1.2.3", "odd"])
        #expect(badSubnet.code != 0 && badSubnet.stderr.contains("want an IPv4 CIDR"), "\(badSubnet.stderr)")
        #expect(try env.berth(["network", "rm", "bridge"]).stderr.contains("pre-defined"))

        // three containers at once get three addresses; a stopped one's goes back, and is not given twice
        for n in ["a", "b", "c"] {
            #expect(try env.runContainer(["-d", "--name", n, "--network", "fixed", "busybox", "sleep", "60"]).code == 0)
        }
        func address(_ name: String) throws -> String {
            try inspect(env, [name])["NetworkSettings"].flatMap { ($0 as? [String: Any])?["IPAddress"] as? String } ?? ""
        }
        let first = try ["a", "b", "c"].map(address)
        #expect(Set(first).count == 3 && first.allSatisfy { $0.hasPrefix("10.251.7.") }, "\(first)")
        #expect(try env.berth(["stop", "-t", "0", "b"]).code == 0)
        #expect(try address("b") == "")
        #expect(try env.runContainer(["-d", "--name", "d", "--network", "fixed", "busybox", "sleep", "60"]).code == 0)
        #expect(try env.berth(["start", "b"]).code == 0)
        let after = try ["a", "b", "c", "d"].map(address)
        #expect(Set(after).count == 4, "\(after)")
        #expect(try env.berth(["rm", "-f", "a", "b", "c", "d"]).code == 0)
        #expect(try env.berth(["network", "rm", "fixed"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("a supervisor killed with its container leaves its network behind: the next start takes it back, rm releases it, and the daemon sweeps it")
    func staleEndpoints() throws {
        let env = try EngineEnvironment()
        func killSupervisorAndContainer(_ name: String) throws -> String {
            let c = try inspect(env, [name])
            let id = try #require(c["Id"] as? String)
            let record = try JSONSerialization.jsonObject(with: Data(readFile(env.data + "/containers/\(id)/container.json").utf8)) as? [String: Any]
            let supervisor = try #require(record?["supervisorPid"] as? Int)
            let pid = try #require((c["State"] as? [String: Any])?["Pid"] as? Int)
            kill(pid_t(supervisor), SIGKILL)
            kill(pid_t(pid), SIGKILL)
            for _ in 0..<200 where Files.exists("/proc/\(pid)") { usleep(20_000) }
            #expect(!Files.exists("/proc/\(pid)"))
            return id
        }
        #expect(try env.runContainer(["-d", "--name", "orphan", "busybox", "sleep", "60"]).code == 0)
        let id = try killSupervisorAndContainer("orphan")
        #expect(Files.exists(env.exec + "/netns/" + id) && Files.exists("/sys/class/net/" + Sandbox.vethName(id)), "left behind, as a crash leaves it")
        // the next start undoes the leftovers before it sets up again
        #expect(try env.berth(["start", "orphan"]).code == 0)
        #expect(try env.berth(["exec", "orphan", "sh", "-c", "ip -4 addr show eth0 | grep -c inet"]).stdout == "1\n")
        _ = try killSupervisorAndContainer("orphan")
        #expect(try env.berth(["rm", "orphan"]).code == 0)
        #expect(!Files.exists("/sys/class/net/" + Sandbox.vethName(id)))

        #expect(try env.runContainer(["-d", "--name", "swept", "busybox", "sleep", "60"]).code == 0)
        let swept = try killSupervisorAndContainer("swept")
        let daemon = try DaemonEnvironment.start(env)
        kill(daemon.pid, SIGKILL)
        _ = daemon.wait()
        #expect(!Files.exists(env.exec + "/netns/" + swept) && !Files.exists("/sys/class/net/" + Sandbox.vethName(swept)), "the daemon released it when it started")
        #expect(try env.berth(["rm", "swept"]).code == 0)
        env.expectNoLeaks()
    }
}
