/// Any Encodable as a JSON tree, so the runtime binary needs no Foundation for its
/// rarer documents (`spec`, `features`, `events`): linking FoundationEssentials added
/// ~1,200 protocol conformance records, and the Swift runtime scans all of them on
/// every first lookup of a type's conformance, in every command.
/// Nil optionals are left out, as JSONEncoder does.
extension JSON {
    public init<T: Encodable>(encoding value: T) throws {
        let root = EncodingNode()
        try root.encode(value, codingPath: [])
        self = root.resolved()
    }
}

/// One value being encoded: a leaf, or an object or array filled in by containers
/// that share it (a class: nested containers write into the same node).
final class EncodingNode {
    var leaf: JSON = .null
    var object: [String: EncodingNode]?
    var array: [EncodingNode]?

    func resolved() -> JSON {
        if let object { return .object(object.mapValues { $0.resolved() }) }
        if let array { return .array(array.map { $0.resolved() }) }
        return leaf
    }

    func child(_ key: String) -> EncodingNode {
        let node = EncodingNode()
        if object == nil { object = [:] }
        object![key] = node
        return node
    }

    func appended() -> EncodingNode {
        let node = EncodingNode()
        if array == nil { array = [] }
        array!.append(node)
        return node
    }

    func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws {
        if let writable = value as? any JSONWritable { leaf = writable.json; return }
        try value.encode(to: TreeEncoder(node: self, codingPath: codingPath))
    }

    static func number<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F, codingPath: [any CodingKey]) throws -> JSON {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: codingPath, debugDescription: "\(value) is not a JSON number"))
        }
        if value == value.rounded(), abs(value) < 1e15 { return .number(String(Int64(value))) }
        return .number(String(value))
    }
}

struct TreeEncoder: Encoder {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if node.object == nil { node.object = [:] }
        return KeyedEncodingContainer(KeyedTreeContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if node.array == nil { node.array = [] }
        return UnkeyedTreeContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleTreeContainer(node: node, codingPath: codingPath) }
}

struct KeyedTreeContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    var codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.child(key.stringValue).leaf = .null }
    mutating func encode(_ value: Bool, forKey key: Key) throws { node.child(key.stringValue).leaf = .bool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { node.child(key.stringValue).leaf = .string(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { node.child(key.stringValue).leaf = try EncodingNode.number(value, codingPath: codingPath + [key]) }
    mutating func encode(_ value: Float, forKey key: Key) throws { node.child(key.stringValue).leaf = try EncodingNode.number(value, codingPath: codingPath + [key]) }
    mutating func encode(_ value: Int, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { node.child(key.stringValue).leaf = .int(value) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try node.child(key.stringValue).encode(value, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        TreeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        TreeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { TreeEncoder(node: node.child("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { TreeEncoder(node: node.child(key.stringValue), codingPath: codingPath + [key]) }
}

/// A position in an array, as a coding key for paths in errors.
struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

struct UnkeyedTreeContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]
    var count: Int { node.array?.count ?? 0 }

    private var nextPath: [any CodingKey] { codingPath + [IndexKey(intValue: count)] }

    mutating func encodeNil() throws { node.appended().leaf = .null }
    mutating func encode(_ value: Bool) throws { node.appended().leaf = .bool(value) }
    mutating func encode(_ value: String) throws { node.appended().leaf = .string(value) }
    mutating func encode(_ value: Double) throws { let path = nextPath; node.appended().leaf = try EncodingNode.number(value, codingPath: path) }
    mutating func encode(_ value: Float) throws { let path = nextPath; node.appended().leaf = try EncodingNode.number(value, codingPath: path) }
    mutating func encode(_ value: Int) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: Int8) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: Int16) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: Int32) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: Int64) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: UInt) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: UInt8) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: UInt16) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: UInt32) throws { node.appended().leaf = .int(value) }
    mutating func encode(_ value: UInt64) throws { node.appended().leaf = .int(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { let path = nextPath; try node.appended().encode(value, codingPath: path) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        return TreeEncoder(node: node.appended(), codingPath: path).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        return TreeEncoder(node: node.appended(), codingPath: path).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { let path = nextPath; return TreeEncoder(node: node.appended(), codingPath: path) }
}

struct SingleTreeContainer: SingleValueEncodingContainer {
    let node: EncodingNode
    var codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.leaf = .null }
    mutating func encode(_ value: Bool) throws { node.leaf = .bool(value) }
    mutating func encode(_ value: String) throws { node.leaf = .string(value) }
    mutating func encode(_ value: Double) throws { node.leaf = try EncodingNode.number(value, codingPath: codingPath) }
    mutating func encode(_ value: Float) throws { node.leaf = try EncodingNode.number(value, codingPath: codingPath) }
    mutating func encode(_ value: Int) throws { node.leaf = .int(value) }
    mutating func encode(_ value: Int8) throws { node.leaf = .int(value) }
    mutating func encode(_ value: Int16) throws { node.leaf = .int(value) }
    mutating func encode(_ value: Int32) throws { node.leaf = .int(value) }
    mutating func encode(_ value: Int64) throws { node.leaf = .int(value) }
    mutating func encode(_ value: UInt) throws { node.leaf = .int(value) }
    mutating func encode(_ value: UInt8) throws { node.leaf = .int(value) }
    mutating func encode(_ value: UInt16) throws { node.leaf = .int(value) }
    mutating func encode(_ value: UInt32) throws { node.leaf = .int(value) }
    mutating func encode(_ value: UInt64) throws { node.leaf = .int(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try node.encode(value, codingPath: codingPath) }
}
