/// A JSON document as a tree, with its own parser and writer.
///
/// Why not Codable on the launch path: every Codable type costs a generic metadata
/// instantiation on first use (`KeyedDecodingContainer<T.CodingKeys>`, each with a
/// scan of the binary's conformance records), and a process decodes each type once:
/// for config.json and the state record that was ~1.5 ms of a ~14 ms container start.
/// Numbers keep their text, so 64-bit integers (seccomp argument values) stay exact.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// An integer as a JSON number.
    public static func int<T: BinaryInteger>(_ value: T) -> JSON { .number(String(value)) }

    // MARK: parsing

    /// Parses a whole document; the error says what is wrong and where (line and column).
    public static func parse(_ bytes: [UInt8]) throws(BerthError) -> JSON {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        if parser.index < bytes.count { throw parser.error("unexpected text after the document") }
        return value
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ what: String) -> BerthError {
            var line = 1, column = 1
            for b in bytes[0..<min(index, bytes.count)] {
                if b == UInt8(ascii: "\n") { line += 1; column = 1 } else { column += 1 }
            }
            return BerthError("malformed JSON: \(what) at line \(line), column \(column)")
        }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0a || bytes[index] == 0x0d || bytes[index] == 0x09 { index += 1 }
        }

        mutating func expect(_ literal: StaticString, _ value: JSON) throws(BerthError) -> JSON {
            let text = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            guard index + text.count <= bytes.count, bytes[index..<index + text.count].elementsEqual(text) else { throw error("unexpected character") }
            index += text.count
            return value
        }

        mutating func value(depth: Int) throws(BerthError) -> JSON {
            guard depth < 512 else { throw error("nesting deeper than 512") }
            guard index < bytes.count else { throw error("unexpected end of input") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var fields: [String: JSON] = [:]
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(fields) }
                while true {
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                    let key = try string()
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    index += 1
                    skipSpace()
                    fields[key] = try value(depth: depth + 1)
                    skipSpace()
                    guard index < bytes.count else { throw error("unexpected end of input") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(fields) }
                    throw error("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                index += 1
                var items: [JSON] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard index < bytes.count else { throw error("unexpected end of input") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected character")
            }
        }

        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
            return index - start
        }

        /// RFC 8259 number grammar; the text is kept.
        mutating func number() throws(BerthError) -> JSON {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            let intStart = index
            guard digits() > 0 else { throw error("malformed number") }
            if bytes[intStart] == UInt8(ascii: "0"), index - intStart > 1 { throw error("leading zero in a number") }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("malformed number") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("malformed number") }
            }
            return .number(String(decoding: bytes[start..<index], as: UTF8.self))
        }

        mutating func hex4() throws(BerthError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("short \\u escape") }
            var v: UInt32 = 0
            for b in bytes[index..<index + 4] {
                let d: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
                default: throw error("bad \\u escape")
                }
                v = v << 4 | UInt32(d)
            }
            index += 4
            return v
        }

        mutating func string() throws(BerthError) -> String {
            index += 1 // the opening quote
            let start = index
            // the common case: no escapes, one copy
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") {
                guard bytes[index] >= 0x20 else { throw error("control character in a string") }
                index += 1
            }
            guard index < bytes.count else { throw error("unterminated string") }
            if bytes[index] == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: bytes[start..<index - 1], as: UTF8.self)
            }
            var out = Array(bytes[start..<index])
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let b = bytes[index]
                if b == UInt8(ascii: "\"") { index += 1; return String(decoding: out, as: UTF8.self) }
                guard b >= 0x20 else { throw error("control character in a string") }
                guard b == UInt8(ascii: "\\") else { out.append(b); index += 1; continue }
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800, scalar < 0xDC00 {
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in a \\u escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00, low < 0xE000 else { throw error("unpaired surrogate in a \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("unpaired surrogate in a \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw error("bad escape")
                }
            }
        }
    }

    // MARK: writing

    /// Compact (or pretty, two-space indent) JSON with sorted keys and unescaped slashes.
    public func serialized(pretty: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        write(to: &out, pretty: pretty, indent: 0)
        return out
    }

    func write(to out: inout [UInt8], pretty: Bool, indent: Int) {
        func newline(_ level: Int) {
            guard pretty else { return }
            out.append(0x0a)
            out.append(contentsOf: repeatElement(0x20, count: level * 2))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                item.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if !items.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, key) in fields.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                Self.writeString(key, to: &out)
                out.append(contentsOf: (pretty ? " : " : ":").utf8)
                fields[key]!.write(to: &out, pretty: pretty, indent: indent + 1)
            }
            if !fields.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0a: out.append(contentsOf: "\\n".utf8)
            case 0x0d: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x08: out.append(contentsOf: "\\b".utf8)
            case 0x0c: out.append(contentsOf: "\\f".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xf)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// What a field's error calls this kind of value.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

// MARK: typed reading, with the field's path in every error

/// A value read from a JSON document; errors name its path (`linux.namespaces[1].type`).
public protocol JSONReadable {
    /// How an error names what was expected (`a string`, `a non-negative integer`).
    static var jsonExpected: String { get }
    init(json: JSON, path: String) throws(BerthError)
    /// The value when reading it needs no path (it cannot fail), else nil: an array
    /// of these then builds no `[i]` path per element (a seccomp profile has
    /// hundreds of syscall names).
    static func withoutPath(_ json: JSON) -> Self?
}

extension JSONReadable {
    public static func withoutPath(_ json: JSON) -> Self? { nil }
}

/// A JSON object read field by field: `init(_:)` gets the fields, with the object's path for errors.
public protocol JSONObjectReadable: JSONReadable {
    init(_ object: JSONObject) throws(BerthError)
}

extension JSONObjectReadable {
    public static var jsonExpected: String { "an object" }
    public init(json: JSON, path: String) throws(BerthError) { try self.init(JSONObject(json, path: path)) }
}

/// A value written to a JSON document.
public protocol JSONWritable {
    var json: JSON { get }
}

extension JSON {
    /// `path: expected a string` (or `…, found null`).
    public static func mismatch(_ path: String, expected: String, found: JSON) -> BerthError {
        if case .null = found { return BerthError("\(path): expected \(expected), found null") }
        return BerthError("\(path): expected \(expected)")
    }

    public static func child(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

/// The fields of one JSON object, read by name. Absent and null optional fields are nil.
public struct JSONObject {
    public let fields: [String: JSON]
    public let path: String

    public init(_ json: JSON, path: String) throws(BerthError) {
        guard case .object(let fields) = json else { throw JSON.mismatch(path.isEmpty ? "(top level)" : path, expected: "an object", found: json) }
        self.fields = fields
        self.path = path
    }

    @inlinable
    public func required<T: JSONReadable>(_ key: String, as: T.Type = T.self) throws(BerthError) -> T {
        guard let value = fields[key] else { throw BerthError("\(JSON.child(path, key)): required field is missing") }
        return try T(json: value, path: JSON.child(path, key))
    }

    @inlinable
    public func optional<T: JSONReadable>(_ key: String, as: T.Type = T.self) throws(BerthError) -> T? {
        guard let value = fields[key] else { return nil }
        if case .null = value { return nil }
        return try T(json: value, path: JSON.child(path, key))
    }
}

extension String: JSONReadable, JSONWritable {
    public static var jsonExpected: String { "a string" }
    public static func withoutPath(_ json: JSON) -> String? {
        if case .string(let s) = json { return s }
        return nil
    }
    public init(json: JSON, path: String) throws(BerthError) {
        guard case .string(let s) = json else { throw JSON.mismatch(path, expected: Self.jsonExpected, found: json) }
        self = s
    }
    public var json: JSON { .string(self) }
}

extension Bool: JSONReadable, JSONWritable {
    public static var jsonExpected: String { "a boolean" }
    public init(json: JSON, path: String) throws(BerthError) {
        guard case .bool(let b) = json else { throw JSON.mismatch(path, expected: Self.jsonExpected, found: json) }
        self = b
    }
    public var json: JSON { .bool(self) }
}

/// Integers: exact from integer text; `1.0` or `1e3` only when the value is integral and fits.
public protocol JSONInteger: FixedWidthInteger, JSONReadable, JSONWritable {}

extension JSONInteger {
    public static var jsonExpected: String { Self.isSigned ? "an integer" : "a non-negative integer" }
    public init(json: JSON, path: String) throws(BerthError) {
        guard case .number(let text) = json else { throw JSON.mismatch(path, expected: Self.jsonExpected, found: json) }
        if let exact = Self(text) { self = exact; return }
        let range = Self.isSigned ? "an integer in range" : "a non-negative integer in range"
        guard let d = Double(text), d == d.rounded(), let exact = Self(exactly: d) else { throw BerthError("\(path): \(text) is not \(range)") }
        self = exact
    }
    public var json: JSON { .number(String(self)) }
}

extension Int: JSONInteger {}
extension Int32: JSONInteger {}
extension Int64: JSONInteger {}
extension UInt: JSONInteger {}
extension UInt16: JSONInteger {}
extension UInt32: JSONInteger {}
extension UInt64: JSONInteger {}

extension Array: JSONReadable where Element: JSONReadable {
    public static var jsonExpected: String { "an array" }
    public init(json: JSON, path: String) throws(BerthError) {
        guard case .array(let items) = json else { throw JSON.mismatch(path, expected: Self.jsonExpected, found: json) }
        var out: [Element] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            if let plain = Element.withoutPath(item) { out.append(plain); continue }
            out.append(try Element(json: item, path: "\(path)[\(i)]"))
        }
        self = out
    }
}

extension Array: JSONWritable where Element: JSONWritable {
    @inlinable public var json: JSON { .array(map { $0.json }) }
}

extension Dictionary: JSONReadable where Key == String, Value: JSONReadable {
    public static var jsonExpected: String { "an object" }
    public init(json: JSON, path: String) throws(BerthError) {
        guard case .object(let fields) = json else { throw JSON.mismatch(path, expected: Self.jsonExpected, found: json) }
        var out: [String: Value] = [:]
        for (k, v) in fields { out[k] = try Value(json: v, path: JSON.child(path, k)) }
        self = out
    }
}

extension Dictionary: JSONWritable where Key == String, Value: JSONWritable {
    @inlinable public var json: JSON { .object(mapValues { $0.json }) }
}

/// String-backed enums read and written as their raw value.
extension RawRepresentable where RawValue == String, Self: JSONReadable {
    public static var jsonExpected: String { "a string" }
    public init(json: JSON, path: String) throws(BerthError) {
        let raw = try String(json: json, path: path)
        guard let value = Self(rawValue: raw) else { throw BerthError("\(path): unknown value \"\(raw)\"") }
        self = value
    }
}

extension RawRepresentable where RawValue == String, Self: JSONWritable {
    public var json: JSON { .string(rawValue) }
}

/// Builds an object from optional fields: nil ones are left out (as JSONEncoder does).
public struct JSONObjectBuilder {
    public var fields: [String: JSON] = [:]
    public init() {}
    @inlinable public mutating func set<T: JSONWritable>(_ key: String, _ value: T?) {
        if let value { fields[key] = value.json }
    }
    public var json: JSON { .object(fields) }
}
