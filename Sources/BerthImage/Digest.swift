import CBerthImage
import BerthSys

/// A content address, `sha256:<64 lowercase hex>` (the only algorithm the
/// distribution spec requires; others are refused with a clear error).
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let hex: String

    public init(hex: String) { self.hex = hex }

    /// Parses `sha256:…`, naming the text when it is not a digest.
    public init(parsing text: String) throws(BerthError) {
        guard text.hasPrefix("sha256:") else {
            throw BerthError("digest \"\(text)\": only sha256 digests are supported (want sha256:<64 hex digits>)")
        }
        let hex = text.dropFirst(7)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw BerthError("digest \"\(text)\": want sha256: and 64 lowercase hex digits")
        }
        self.hex = String(hex)
    }

    public var description: String { "sha256:" + hex }
    /// The 12-digit short form `docker images` prints.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    /// The digest of a byte string.
    public static func of(_ bytes: [UInt8]) -> Digest {
        let h = SHA256()
        bytes.withUnsafeBytes { h.update($0) }
        return h.finish()
    }

    public static func of(_ text: String) -> Digest { of(Array(text.utf8)) }
}

/// Incremental SHA-256 over libcrypto (SHA-NI where the CPU has it).
public final class SHA256 {
    private let ctx: OpaquePointer

    public init() {
        guard let ctx = berth_sha256_new() else { fatalError("libcrypto: cannot allocate a SHA-256 context") }
        self.ctx = ctx
    }

    deinit { berth_sha256_free(ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { berth_sha256_update(ctx, bytes.baseAddress, bytes.count) }
    }

    /// The digest so far; the hasher starts over afterwards.
    public func finish() -> Digest {
        var out = [UInt8](repeating: 0, count: 32)
        berth_sha256_final(ctx, &out)
        berth_sha256_reset(ctx)
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for b in out { hex.append(digits[Int(b >> 4)]); hex.append(digits[Int(b & 15)]) }
        return Digest(hex: String(decoding: hex, as: UTF8.self))
    }
}
