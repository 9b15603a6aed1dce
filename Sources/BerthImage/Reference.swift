import BerthSys

/// An image reference as docker reads it: `[registry/]repository[:tag][@digest]`,
/// where `busybox` means `docker.io/library/busybox:latest`.
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    public var registry: String
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public static let defaultRegistry = "docker.io"

    public init(registry: String, repository: String, tag: String?, digest: Digest?) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    public init(parsing text: String) throws(BerthError) {
        func bad(_ why: String) -> BerthError { BerthError("image reference \"\(text)\": \(why)") }
        guard !text.isEmpty else { throw bad("empty") }
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            digest = try Digest(parsing: String(rest[rest.index(after: at)...]))
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
            guard let t = tag, Reference.validTag(t) else { throw bad("tag \"\(tag ?? "")\" is not valid (letters, digits, _ . -; at most 128)") }
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = Reference.defaultRegistry
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" || first.contains(where: { $0.isUppercase }) {
            registry = first
            components.removeFirst()
        }
        if registry == "index.docker.io" { registry = Reference.defaultRegistry }
        guard !components.isEmpty, components.allSatisfy(Reference.validComponent) else {
            throw bad("repository \"\(components.joined(separator: "/"))\" is not valid (lowercase letters, digits and separators . _ __ -)")
        }
        if registry == Reference.defaultRegistry && components.count == 1 { components.insert("library", at: 0) }
        let repository = components.joined(separator: "/")
        guard repository.utf8.count <= 255 else { throw bad("repository is longer than 255 characters") }
        self.init(registry: registry, repository: repository, tag: tag ?? (digest == nil ? "latest" : nil), digest: digest)
    }

    static func validTag(_ t: String) -> Bool {
        guard let first = t.utf8.first, t.utf8.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 }
        return word(first) && t.utf8.allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }

    static func validComponent(_ c: String) -> Bool {
        let bytes = Array(c.utf8)
        guard let first = bytes.first, let last = bytes.last else { return false }
        func alnum(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 97 && b <= 122) }
        guard alnum(first), alnum(last) else { return false }
        var i = 0
        while i < bytes.count {
            if alnum(bytes[i]) { i += 1; continue }
            // separators: ".", "_", "__", or one or more "-"
            if bytes[i] == 46 || bytes[i] == 95 {
                if bytes[i] == 95 && i + 1 < bytes.count && bytes[i + 1] == 95 { i += 1 }
                i += 1
                guard i < bytes.count, alnum(bytes[i]) else { return false }
                continue
            }
            if bytes[i] == 45 {
                while i < bytes.count && bytes[i] == 45 { i += 1 }
                guard i < bytes.count, alnum(bytes[i]) else { return false }
                continue
            }
            return false
        }
        return true
    }

    /// `docker.io/library/busybox:latest`.
    public var description: String {
        var s = registry + "/" + repository
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest.description }
        return s
    }

    /// The repository as docker prints it: `busybox`, `me/app`, `localhost:5000/app`.
    public var familiarName: String {
        if registry == Reference.defaultRegistry {
            return repository.hasPrefix("library/") ? String(repository.dropFirst(8)) : repository
        }
        return registry + "/" + repository
    }

    /// `busybox:latest` (or `name@sha256:…`).
    public var familiar: String {
        var s = familiarName
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest.description }
        return s
    }

    /// The same repository with another tag.
    public func with(tag: String) -> Reference { Reference(registry: registry, repository: repository, tag: tag, digest: nil) }
}
