import Testing
import BerthSys
@testable import BerthNetwork

@Suite("network logic: -p forms, subnets, netlink encoding, /etc/hosts")
struct NetworkLogicTests {
    @Test("-p takes docker's forms and refuses the rest by name")
    func portForms() throws {
        #expect(try PortBinding.parse("80") == [PortBinding(hostIP: "", hostPort: 0, containerPort: 80, proto: "tcp")])
        #expect(try PortBinding.parse("8080:80") == [PortBinding(hostIP: "", hostPort: 8080, containerPort: 80, proto: "tcp")])
        #expect(try PortBinding.parse("127.0.0.1:8080:80/udp") == [PortBinding(hostIP: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "udp")])
        #expect(try PortBinding.parse("127.0.0.1::53") == [PortBinding(hostIP: "127.0.0.1", hostPort: 0, containerPort: 53, proto: "tcp")])
        #expect(try PortBinding.parse("0.0.0.0:1-2:10-11").map { "\($0.hostPort)->\($0.containerPort)" } == ["1->10", "2->11"])
        for (bad, why) in [("80/sctp", "protocol sctp"), ("x:80", "host port x"), ("1-3:10-11", "differ in size"), ("::1:80:80", "want"),
                           ("300.0.0.1:80:80", "not an IPv4"), ("0:80", "host port 0"), ("80:", "container port is missing")] {
            #expect(throws: BerthError.self) { try PortBinding.parse(bad) }
            do { _ = try PortBinding.parse(bad) } catch { #expect(error.description.contains(why), "\(bad): \(error)") }
        }
        #expect(PortBinding(hostIP: "", hostPort: 8080, containerPort: 80, proto: "tcp").description == "0.0.0.0:8080->80/tcp")
    }

    @Test("subnets: normalised, gateway and hosts, overlaps, bad CIDRs named")
    func subnets() throws {
        let s = try IPv4Subnet.parse("10.89.3.77/24")
        #expect(s.description == "10.89.3.0/24" && s.gateway.description == "10.89.3.1" && s.broadcast.description == "10.89.3.255")
        #expect(s.hosts.count == 253 && IPv4Address(s.hosts.lowerBound).description == "10.89.3.2")
        let wide = try IPv4Subnet.parse("10.89.0.0/16"), next = try IPv4Subnet.parse("10.89.4.0/24")
        #expect(s.overlaps(wide) && !s.overlaps(next))
        for bad in ["10.0.0.0", "10.0.0.0/31", "10.0.0/8", "a.b.c.d/8"] {
            #expect(throws: BerthError.self) { try IPv4Subnet.parse(bad) }
        }
        #expect(macText(macAddress(for: IPv4Address("172.31.0.2")!)) == "02:42:ac:1f:00:02")
    }

    @Test("netlink messages: attributes padded to 4 bytes, nested lengths cover their children, the header has the total")
    func netlinkEncoding() {
        var m = NetlinkMessage(type: 16, flags: 0x605, header: Netlink.ifinfo())
        m.attribute(3, string: "br-x")               // 4 + 5 bytes → padded to 12
        m.nested(18) { $0.attribute(1, string: "bridge") }   // 4 + (4 + 7 → 12) = 16
        let bytes = m.finish(sequence: 9)
        #expect(bytes.count == 16 + 16 + 12 + 16)
        #expect(bytes[0] == UInt8(bytes.count) && bytes[4] == 16 && bytes[6] == 0x05 && bytes[7] == 0x06 && bytes[8] == 9)
        #expect(Array(bytes[32..<36]) == [9, 0, 3, 0])                  // nla_len 9, IFLA_IFNAME
        #expect(Array(bytes[44..<48]) == [16, 0, 18, 0x80])             // nested IFLA_LINKINFO, NLA_F_NESTED
        let reply = NetlinkReply(type: 16, payload: ArraySlice(bytes[16...]))
        let attrs = reply.attributes(after: 16)
        #expect(attrs[3].map { Array($0) } == Array("br-x".utf8) + [0])
        #expect(attrs[18]?.count == 12)
    }

    @Test("/etc/hosts: each container names itself; on a user network its peers too, not on the default one")
    func hostsFiles() {
        func endpoint(_ n: String, _ a: String) -> NetworkEndpoint {
            NetworkEndpoint(container: n + "-id", name: n, hostname: n + "-host", address: IPv4Address(a)!, mac: "", veth: "", hostsFile: "")
        }
        var r = NetworkRecord(id: "x", name: "mesh", created: "", subnet: "10.9.0.0/24", bridge: "br-x", chosenSubnet: true, internal: false,
                              labels: [:], endpoints: ["a-id": endpoint("a", "10.9.0.2"), "b-id": endpoint("b", "10.9.0.3")])
        let text = HostsFiles.text(for: r.endpoints["a-id"]!, in: r)
        #expect(text.hasSuffix("10.9.0.2\ta-host\ta\n10.9.0.3\tb\tb-host\n"), "\(text)")
        r.name = NetworkStore.defaultName
        #expect(!HostsFiles.text(for: r.endpoints["a-id"]!, in: r).contains("10.9.0.3"))
    }

    @Test("roots other than the default get a bridge, a table and a subnet search of their own")
    func perRootNames() {
        let main = NetworkStore(dataRoot: "/var/lib/berth", defaultRoot: "/var/lib/berth")
        let other = NetworkStore(dataRoot: "/tmp/x", defaultRoot: "/var/lib/berth")
        #expect(main.defaultBridge == "berth0" && main.natTable == "berth" && main.defaultPool.first?.description == "172.31.0.0/16")
        #expect(other.defaultBridge.hasPrefix("bz") && other.defaultBridge.count <= 15 && other.natTable.hasPrefix("berth_"))
        #expect(other.defaultPool.allSatisfy { $0.prefix == 24 && $0.description.hasPrefix("10.200.") } && Set(other.defaultPool).count == 256)
    }

    @Test("/proc/PID/net/dev: every interface but lo, receive and transmit counters in their columns")
    func interfaceCounters() {
        let text = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
          eth0:    1746      21    1    2    0     0          0         0     1580      19    3    4    0     0       0          0
        """
        #expect(InterfaceCounters.parse(text) == [InterfaceCounters(name: "eth0", rx_bytes: 1746, rx_packets: 21, rx_errors: 1, rx_dropped: 2,
                                                                     tx_bytes: 1580, tx_packets: 19, tx_errors: 3, tx_dropped: 4)])
    }
}
