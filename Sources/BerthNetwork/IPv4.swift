#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// An IPv4 address as a number (host order), printed dotted.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    /// The socket address of `port` at this address.
    public func socketAddress(port: UInt16) -> sockaddr_in {
        var s = sockaddr_in()
        s.sin_family = sa_family_t(AF_INET)
        s.sin_port = port.bigEndian
        s.sin_addr.s_addr = value.bigEndian
        return s
    }

    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
    public var description: String { bytes.map(String.init).joined(separator: ".") }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv4Address(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IPv4 address: \(text)"))
        }
        self = a
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// `A.B.C.D/N`, normalised to its network address.
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public var network: IPv4Address
    public var prefix: Int

    public init(address: IPv4Address, prefix: Int) {
        self.prefix = prefix
        network = IPv4Address(address.value & IPv4Subnet.mask(prefix))
    }

    /// Parses CIDR text; the error names the text and what is wrong with it.
    public static func parse(_ text: String) throws(BerthError) -> IPv4Subnet {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let a = IPv4Address(String(parts[0])), let p = Int(parts[1]) else {
            throw BerthError("subnet \"\(text)\": want an IPv4 CIDR such as 172.28.0.0/16")
        }
        guard (8...30).contains(p) else { throw BerthError("subnet \"\(text)\": the prefix must be /8 to /30 (room for a gateway and containers)") }
        return IPv4Subnet(address: a, prefix: p)
    }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix) }
    public var mask: UInt32 { Self.mask(prefix) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }
    /// The first host address: the bridge's, as docker gives it.
    public var gateway: IPv4Address { IPv4Address(network.value + 1) }
    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == network.value }
    public func overlaps(_ other: IPv4Subnet) -> Bool {
        let m = Self.mask(min(prefix, other.prefix))
        return network.value & m == other.network.value & m
    }
    public var description: String { "\(network)/\(prefix)" }
    /// The usable addresses after the gateway, in order.
    public var hosts: ClosedRange<UInt32> { (network.value + 2)...(broadcast.value - 1) }
}

/// docker's MAC for an address: 02:42 then the four address bytes.
public func macAddress(for a: IPv4Address) -> [UInt8] { [0x02, 0x42] + a.bytes }
public func macText(_ mac: [UInt8]) -> String {
    mac.map { b in let s = String(b, radix: 16); return s.count == 1 ? "0" + s : s }.joined(separator: ":")
}
