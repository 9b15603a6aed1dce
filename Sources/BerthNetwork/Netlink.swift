#if canImport(Glibc)
import Glibc
#endif
import BerthSys
import CBerthNet

/// An rtnetlink message being built: the header, a fixed struct (ifinfomsg,
/// ifaddrmsg, rtmsg) and attributes, nested where the kernel wants them, each
/// padded to 4 bytes as NLA_ALIGN does.
struct NetlinkMessage {
    var bytes: [UInt8]

    init(type: UInt16, flags: UInt16, header fixed: [UInt8]) {
        bytes = [UInt8](repeating: 0, count: 16) + fixed
        put(UInt16(type), at: 4)
        put(UInt16(flags), at: 6)
    }

    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }

    mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }

    mutating func attribute(_ type: UInt16, _ payload: [UInt8]) {
        pad()
        let start = bytes.count
        bytes += [0, 0, 0, 0] + payload
        put(UInt16(4 + payload.count), at: start)
        put(type, at: start + 2)
        pad()
    }

    mutating func attribute(_ type: UInt16, string: String) { attribute(type, Array(string.utf8) + [0]) }
    mutating func attribute<T: FixedWidthInteger>(_ type: UInt16, value: T) {
        attribute(type, withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    /// An attribute whose payload is what `body` adds (IFLA_LINKINFO, VETH_INFO_PEER, …).
    mutating func nested(_ type: UInt16, _ body: (inout NetlinkMessage) -> Void) {
        pad()
        let start = bytes.count
        bytes += [0, 0, 0, 0]
        body(&self)
        put(UInt16(bytes.count - start), at: start)
        put(type | 0x8000, at: start + 2)   // NLA_F_NESTED
        pad()
    }

    /// Raw bytes inside a nested attribute (the ifinfomsg of a veth peer).
    mutating func raw(_ payload: [UInt8]) { bytes += payload }

    mutating func finish(sequence: UInt32) -> [UInt8] {
        put(UInt32(bytes.count), at: 0)
        put(sequence, at: 8)
        return bytes
    }
}

/// One reply message: its type and what follows the header.
struct NetlinkReply {
    var type: UInt16
    var payload: ArraySlice<UInt8>

    func u32(_ offset: Int) -> UInt32 {
        let i = payload.startIndex + offset
        return UInt32(payload[i]) | UInt32(payload[i + 1]) << 8 | UInt32(payload[i + 2]) << 16 | UInt32(payload[i + 3]) << 24
    }

    /// The attributes after a fixed struct of `skip` bytes: type → payload.
    func attributes(after skip: Int) -> [UInt16: ArraySlice<UInt8>] {
        var out: [UInt16: ArraySlice<UInt8>] = [:]
        var i = payload.startIndex + skip
        while i + 4 <= payload.endIndex {
            let len = Int(payload[i]) | Int(payload[i + 1]) << 8
            let type = (UInt16(payload[i + 2]) | UInt16(payload[i + 3]) << 8) & 0x3fff
            guard len >= 4, i + len <= payload.endIndex else { break }
            out[type] = payload[(i + 4)..<(i + len)]
            i += (len + 3) & ~3
        }
        return out
    }
}

/// A NETLINK_ROUTE socket, in the caller's network namespace or in another
/// one (`namespace`: an open nsfs descriptor). Every request is acked, so a
/// failure comes back as the errno of the message that caused it.
public final class Netlink {
    let fd: Int32
    private var sequence: UInt32 = 0
    let place: String

    static let newLink: UInt16 = 16, delLink: UInt16 = 17, getLink: UInt16 = 18
    static let newAddr: UInt16 = 20, newRoute: UInt16 = 24
    static let request: UInt16 = 1, ack: UInt16 = 4, excl: UInt16 = 0x200, create: UInt16 = 0x400

    public init(namespace: Int32? = nil, describing place: String = "host") throws(BerthError) {
        let type = Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let s = namespace.map { berth_socket_in_netns($0, AF_NETLINK, type, 0) } ?? socket(AF_NETLINK, type, 0)
        guard s >= 0 else { throw .sys("open a netlink socket in the network namespace of", path: place) }
        fd = s
        self.place = place
    }

    deinit { close(fd) }

    /// Sends one request and reads to its ack; returns the replies before it (a GETLINK's answer).
    @discardableResult
    func send(_ message: NetlinkMessage, describing what: String) throws(BerthError) -> [NetlinkReply] {
        var m = message
        sequence += 1
        let bytes = m.finish(sequence: sequence)
        // an unconnected netlink socket sends to the kernel (port id 0)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw .sys("netlink: send \(what) in", path: place) }
        var replies: [NetlinkReply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .sys("netlink: read the answer to \(what) in", path: place)
            }
            var i = 0
            while i + 16 <= n {
                let len = Int(UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8 | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                let type = UInt16(buffer[i + 4]) | UInt16(buffer[i + 5]) << 8
                guard len >= 16, i + len <= n else { break }
                let reply = NetlinkReply(type: type, payload: buffer[(i + 16)..<(i + len)])
                if type == 2 {   // NLMSG_ERROR: 0 is the ack
                    let code = Int32(bitPattern: reply.u32(0))
                    if code == 0 { return replies }
                    throw BerthError("netlink: \(what) in", path: place, errno: -code)
                }
                if type == 3 { return replies }   // NLMSG_DONE
                replies.append(reply)
                i += (len + 3) & ~3
            }
        }
    }

    // MARK: links

    /// struct ifinfomsg.
    static func ifinfo(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        b[0] = UInt8(AF_UNSPEC)
        withUnsafeBytes(of: index.littleEndian) { for (i, x) in $0.enumerated() { b[4 + i] = x } }
        withUnsafeBytes(of: flags.littleEndian) { for (i, x) in $0.enumerated() { b[8 + i] = x } }
        withUnsafeBytes(of: change.littleEndian) { for (i, x) in $0.enumerated() { b[12 + i] = x } }
        return b
    }

    static let ifnameAttr: UInt16 = 3, addressAttr: UInt16 = 1, masterAttr: UInt16 = 10, linkinfoAttr: UInt16 = 18
    static let netnsFDAttr: UInt16 = 28, mtuAttr: UInt16 = 4

    /// The interface index of `name`, nil when there is none.
    public func index(of name: String) throws(BerthError) -> Int32? {
        var m = NetlinkMessage(type: Self.getLink, flags: Self.request | Self.ack, header: Self.ifinfo())
        m.attribute(Self.ifnameAttr, string: name)
        do {
            let replies = try send(m, describing: "find link \(name)")
            guard let r = replies.first(where: { $0.type == Self.newLink }) else { return nil }
            return Int32(bitPattern: r.u32(4))
        } catch {
            if error.errno == ENODEV { return nil }
            throw error
        }
    }

    /// A Linux bridge named `name`.
    public func createBridge(_ name: String) throws(BerthError) {
        var m = NetlinkMessage(type: Self.newLink, flags: Self.request | Self.ack | Self.create | Self.excl, header: Self.ifinfo())
        m.attribute(Self.ifnameAttr, string: name)
        m.nested(Self.linkinfoAttr) { $0.attribute(1, string: "bridge") }
        try send(m, describing: "create bridge \(name)")
    }

    /// A veth pair: `host` here, attached to the bridge `master`, and its peer `peer`
    /// (with `mac`) created directly in the namespace `peerNamespace`.
    public func createVeth(host: String, master: Int32, peer: String, peerMAC: [UInt8], peerNamespace: Int32, mtu: UInt32) throws(BerthError) {
        var m = NetlinkMessage(type: Self.newLink, flags: Self.request | Self.ack | Self.create | Self.excl, header: Self.ifinfo())
        m.attribute(Self.ifnameAttr, string: host)
        m.attribute(Self.masterAttr, value: UInt32(bitPattern: master))
        m.attribute(Self.mtuAttr, value: mtu)
        m.nested(Self.linkinfoAttr) { info in
            info.attribute(1, string: "veth")
            info.nested(2) { data in
                data.nested(1) { p in   // VETH_INFO_PEER: an ifinfomsg, then the peer's attributes
                    p.raw(Self.ifinfo())
                    p.attribute(Self.ifnameAttr, string: peer)
                    p.attribute(Self.addressAttr, peerMAC)
                    p.attribute(Self.mtuAttr, value: mtu)
                    p.attribute(Self.netnsFDAttr, value: UInt32(bitPattern: peerNamespace))
                }
            }
        }
        try send(m, describing: "create veth \(host) ↔ \(peer)")
    }

    public func setUp(_ index: Int32, name: String) throws(BerthError) {
        let m = NetlinkMessage(type: Self.newLink, flags: Self.request | Self.ack, header: Self.ifinfo(index: index, flags: 1, change: 1))
        try send(m, describing: "set \(name) up")
    }

    /// Deletes a link by name; false when there was none.
    @discardableResult
    public func deleteLink(_ name: String) throws(BerthError) -> Bool {
        var m = NetlinkMessage(type: Self.delLink, flags: Self.request | Self.ack, header: Self.ifinfo())
        m.attribute(Self.ifnameAttr, string: name)
        do { try send(m, describing: "delete link \(name)") } catch {
            if error.errno == ENODEV { return false }
            throw error
        }
        return true
    }

    // MARK: addresses and routes

    public func addAddress(_ address: IPv4Address, prefix: Int, to index: Int32, name: String) throws(BerthError) {
        var fixed = [UInt8](repeating: 0, count: 8)
        fixed[0] = UInt8(AF_INET)
        fixed[1] = UInt8(prefix)
        withUnsafeBytes(of: UInt32(bitPattern: index).littleEndian) { for (i, x) in $0.enumerated() { fixed[4 + i] = x } }
        var m = NetlinkMessage(type: Self.newAddr, flags: Self.request | Self.ack | Self.create | Self.excl, header: fixed)
        m.attribute(2, address.bytes)   // IFA_LOCAL
        m.attribute(1, address.bytes)   // IFA_ADDRESS
        let broadcast = IPv4Subnet(address: address, prefix: prefix).broadcast
        m.attribute(4, broadcast.bytes) // IFA_BROADCAST
        try send(m, describing: "add address \(address)/\(prefix) to \(name)")
    }

    /// The default route through `gateway`, out of `index`.
    public func addDefaultRoute(via gateway: IPv4Address, index: Int32) throws(BerthError) {
        // struct rtmsg: family, dst_len, src_len, tos, table (main), protocol (boot), scope (universe), type (unicast), flags
        var fixed = [UInt8](repeating: 0, count: 12)
        fixed[0] = UInt8(AF_INET)
        fixed[4] = 254
        fixed[5] = 3
        fixed[6] = 0
        fixed[7] = 1
        var m = NetlinkMessage(type: Self.newRoute, flags: Self.request | Self.ack | Self.create | Self.excl, header: fixed)
        m.attribute(5, gateway.bytes)                            // RTA_GATEWAY
        m.attribute(4, value: UInt32(bitPattern: index))          // RTA_OIF
        try send(m, describing: "add the default route via \(gateway)")
    }
}
