/// Decodes what the build plugin embeds (RFC 4648 alphabet, padded): BPF objects, berth-dmz.
public enum Base64 {
    public static func decode(_ text: StaticString) -> [UInt8] {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = UInt8(i) }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8CodeUnitCount * 3 / 4)
        var accumulator: UInt32 = 0, bits = 0
        let input = UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        for c in input {
            let v = table[Int(c)]
            if v == 0xff { continue }
            accumulator = accumulator << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}
