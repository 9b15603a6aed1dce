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
        try decodeJSON(bytes, source: source)
    }

    /// Any JSONReadable document (config.json, `exec --process`, `update -r`): errors are
    /// `SOURCE: field.path: what is wrong`.
    public static func decodeJSON<T: JSONReadable>(_ bytes: [UInt8], as: T.Type = T.self, source: String) throws(BerthError) -> T {
        do {
            return try T(json: JSON.parse(bytes), path: "")
        } catch {
            throw BerthError("\(source): \(error.description)")
        }
    }

    public func encoded(pretty: Bool = true) -> [UInt8] {
        ((try? JSON(encoding: self)) ?? .null).serialized(pretty: pretty)
    }
}

extension State {
    public func encoded(pretty: Bool = false) -> [UInt8] { json.serialized(pretty: pretty) }
}

