#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import BerthSys

extension Spec {
    /// The runtime-spec version berth writes in documents it produces.
    public static let supportedVersion = "1.2.0"

    /// Decodes and validates a config.json. Errors name the file and the field.
    public static func load(path: String) throws(BerthError) -> Spec {
        let bytes: [UInt8]
        do { bytes = try Files.readBytes(path) } catch { throw BerthError("read config", path: path, errno: error.errno) }
        let spec = try decode(bytes, source: path)
        try spec.validate(source: path)
        return spec
    }

    public static func decode(_ bytes: [UInt8], source: String) throws(BerthError) -> Spec {
        do {
            return try JSONDecoder().decode(Spec.self, from: Data(bytes))
        } catch let error as DecodingError {
            // a syntactically valid document rejected without a path: find the value that does not fit
            if case .dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty,
               let tree = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)), let bad = tree.firstBadUnsigned() {
                let shown = bad.value == bad.value.rounded() ? String(Int64(bad.value)) : String(bad.value)
                throw BerthError("\(source): \(bad.path): \(shown) is not a non-negative integer in range")
            }
            throw BerthError("\(source): \(describe(error))")
        } catch {
            throw BerthError("\(source): malformed JSON: \(error)")
        }
    }

    /// `linux.namespaces[2].type: expected a string` from a DecodingError.
    public static func describeDecoding(_ error: DecodingError) -> String { describe(error) }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for key in keys {
                if let index = key.intValue { out += "[\(index)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
            }
            return out.isEmpty ? "(top level)" : out
        }
        switch error {
        case .typeMismatch(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let ctx):
            return "\(path(ctx.codingPath)): expected \(typeName(type)), found null"
        case .keyNotFound(let key, let ctx):
            return "\(path(ctx.codingPath + [key])): required field is missing"
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty {
                let text = ctx.debugDescription
                return text.contains("not valid JSON") || text.isEmpty ? "malformed JSON" : "malformed JSON: \(text)"
            }
            return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        let name = String(describing: type)
        let table = ["String": "a string", "Bool": "a boolean", "UInt32": "a non-negative integer", "UInt64": "a non-negative integer",
                     "Int64": "an integer", "Int": "an integer", "UInt": "a non-negative integer", "UInt16": "a non-negative integer",
                     "Array<Any>": "an array", "Dictionary<String, Any>": "an object"]
        return table[name] ?? (name.hasPrefix("Array") ? "an array" : name.hasPrefix("Dictionary") ? "an object" : "an object (\(name))")
    }

    public func encoded(pretty: Bool = true) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

extension State {
    public func encoded(pretty: Bool = false) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

