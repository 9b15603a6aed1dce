#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Any JSON document, for finding what a typed decode rejected without saying where.
public enum JSONValue: Codable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Fields the runtime-spec types as unsigned integers.
    static let unsignedKeys: Set<String> = ["uid", "gid", "umask", "additionalGids", "containerID", "hostID", "size", "fileMode",
                                            "hard", "soft", "height", "width", "timeout", "shares", "period", "swappiness",
                                            "weight", "leafWeight", "rate", "classID", "priority", "errnoRet", "index", "value"]

    /// The first number under an unsigned key that is negative, fractional or too large.
    func firstBadUnsigned(path: String = "", key: String = "") -> (path: String, value: Double)? {
        switch self {
        case .number(let n) where Self.unsignedKeys.contains(key):
            return (n < 0 || n != n.rounded() || n > Double(UInt64.max)) ? (path, n) : nil
        case .array(let items):
            for (i, item) in items.enumerated() { if let bad = item.firstBadUnsigned(path: path + "[\(i)]", key: key) { return bad } }
        case .object(let fields):
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) {
                if let bad = v.firstBadUnsigned(path: path.isEmpty ? k : path + "." + k, key: k) { return bad }
            }
        default: break
        }
        return nil
    }
}
