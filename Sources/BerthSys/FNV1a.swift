/// 64-bit FNV-1a: a stable hash for names and cache keys (Swift's Hasher is seeded
/// per process, so its values cannot name files or subnets across runs).
public struct FNV1a: Sendable {
    public var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inlinable public mutating func add(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }

    @inlinable public mutating func add(_ s: String) { for b in s.utf8 { add(b) } }

    public static func hash(_ s: String) -> UInt64 {
        var h = FNV1a()
        h.add(s)
        return h.value
    }
}
