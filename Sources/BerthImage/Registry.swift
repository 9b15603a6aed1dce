#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys

/// A client of the OCI distribution API for one registry: manifests and blobs
/// in and out, Bearer-token and basic auth, retries with backoff on 5xx and
/// connection errors, and every digest checked.
public final class RegistryClient {
    public struct Credentials: Sendable {
        public var username: String
        public var password: String
        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    public let registry: String
    public let base: String
    let credentials: Credentials?
    /// Bearer tokens by scope.
    private var tokens: [String: String] = [:]
    private var useBasic = false
    public var maxAttempts = 4
    public var backoff: Double = 0.5

    /// Plain HTTP with `insecure`, and for loopback registries (docker's default too).
    public init(registry: String, insecure: Bool = false, credentials: Credentials? = nil) {
        self.registry = registry
        let host = registry == Reference.defaultRegistry ? "registry-1.docker.io" : registry
        let name = host.split(separator: ":").first.map(String.init) ?? host
        let loopback = name == "localhost" || name.hasPrefix("127.") || name == "[::1]"
        base = (insecure || loopback ? "http://" : "https://") + host
        self.credentials = credentials
    }

    // MARK: requests with auth and retries

    private func authorization(scope: String) -> [String] {
        if let token = tokens[scope] { return ["Authorization: Bearer \(token)"] }
        return []
    }

    /// Sends a request, answering one auth challenge and retrying transient failures.
    /// `body` is made anew for each attempt (a stream cannot be rewound).
    func request(_ method: String, _ path: String, scope: String, headers: [String] = [],
                 body: (() throws(BerthError) -> (ByteSource, Int64))? = nil, into sink: (() throws(BerthError) -> ByteSink)? = nil,
                 progress: ((Int64) -> Void)? = nil) throws(BerthError) -> HTTPResponse {
        let url = path.hasPrefix("http://") || path.hasPrefix("https://") ? path : base + path
        var challenged = false
        var attempt = 0
        while true {
            attempt += 1
            let upload = try body?()
            let response: HTTPResponse
            do throws(BerthError) {
                response = try HTTP.perform(method, url, headers: headers + authorization(scope: scope), body: upload?.0, bodySize: upload?.1 ?? -1,
                                            into: try sink?(), basicAuth: useBasic ? credentials.map { "\($0.username):\($0.password)" } : nil,
                                            progress: progress)
            } catch {
                // connection refused, reset, timed out: worth another try, after a pause
                guard attempt < maxAttempts, !error.description.contains("corrupt") else {
                    throw BerthError("registry \(registry): \(error)")
                }
                usleep(useconds_t(backoff * Double(1 << (attempt - 1)) * 1_000_000))
                continue
            }
            if response.status == 401 && !challenged, let challenge = response.header("www-authenticate") {
                challenged = true
                try answer(challenge, scope: scope)
                attempt -= 1
                continue
            }
            if response.status >= 500 && attempt < maxAttempts {
                usleep(useconds_t(backoff * Double(1 << (attempt - 1)) * 1_000_000))
                continue
            }
            return response
        }
    }

    /// `Bearer realm="…",service="…",scope="…"` → fetch a token; `Basic` → send credentials.
    private func answer(_ challenge: String, scope: String) throws(BerthError) {
        let lower = challenge.lowercased()
        if lower.hasPrefix("basic") {
            guard credentials != nil else { throw BerthError("registry \(registry): authentication required (give --username and --password, or BERTH_REGISTRY_AUTH=user:password)") }
            useBasic = true
            return
        }
        guard lower.hasPrefix("bearer") else { throw BerthError("registry \(registry): unsupported auth challenge \"\(challenge)\"") }
        var params: [String: String] = [:]
        let body = challenge.dropFirst(6)
        let pattern = try? NSRegularExpression(pattern: #"(\w+)="([^"]*)""#)
        let ns = String(body) as NSString
        for m in pattern?.matches(in: String(body), range: NSRange(location: 0, length: ns.length)) ?? [] {
            params[ns.substring(with: m.range(at: 1)).lowercased()] = ns.substring(with: m.range(at: 2))
        }
        guard let realm = params["realm"] else { throw BerthError("registry \(registry): Bearer challenge without a realm") }
        var query: [String] = []
        if let service = params["service"] { query.append("service=" + escape(service)) }
        // the operation's own scope, and the challenge's when it names another
        query.append("scope=" + escape(scope))
        if let asked = params["scope"], asked != scope { query.append("scope=" + escape(asked)) }
        let url = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
        let sink = MemorySink()
        let response = try HTTP.perform("GET", url, into: sink, basicAuth: credentials.map { "\($0.username):\($0.password)" })
        guard response.status == 200 else {
            if response.status == 401 && credentials == nil {
                throw BerthError("registry \(registry): authentication required (give --username and --password, or BERTH_REGISTRY_AUTH=user:password)")
            }
            throw BerthError("registry \(registry): the token service at \(realm) answered \(response.status)" + (response.status == 401 ? " (credentials refused)" : ""))
        }
        struct Token: Decodable { var token: String?; var access_token: String? }
        guard let t = try? JSONDecoder().decode(Token.self, from: Data(sink.bytes)), let token = t.token ?? t.access_token else {
            throw BerthError("registry \(registry): the token service at \(realm) sent no token")
        }
        tokens[scope] = token
    }

    private func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/,*"))) ?? s
    }

    private func failure(_ what: String, _ response: HTTPResponse, _ body: [UInt8] = []) -> BerthError {
        struct Errors: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E]? }
        let detail = (try? JSONDecoder().decode(Errors.self, from: Data(body)))?.errors?.first.map { "\($0.code ?? ""): \($0.message ?? "")" }
        return BerthError("registry \(registry): \(what): HTTP \(response.status)" + (detail.map { " (\($0))" } ?? ""))
    }

    // MARK: the API

    static let manifestAccept = "Accept: " + [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].joined(separator: ", ")

    /// A manifest or index, its media type and digest (checked when asked for by digest).
    public func manifest(_ repository: String, reference: String) throws(BerthError) -> (bytes: [UInt8], mediaType: String, digest: Digest) {
        let sink = MemorySink()
        let response = try request("GET", "/v2/\(repository)/manifests/\(reference)", scope: "repository:\(repository):pull",
                                   headers: [RegistryClient.manifestAccept], into: { sink.bytes = []; return sink })
        guard response.status == 200 else {
            if response.status == 404 { throw BerthError("registry \(registry): manifest \(repository):\(reference) not found") }
            throw failure("manifest \(repository):\(reference)", response, sink.bytes)
        }
        let digest = Digest.of(sink.bytes)
        if let asked = try? Digest(parsing: reference), asked != digest {
            throw BerthError("registry \(registry): manifest \(reference) hashes to \(digest) (wrong content)")
        }
        if let said = response.header("docker-content-digest"), let d = try? Digest(parsing: said), d != digest {
            throw BerthError("registry \(registry): manifest \(repository):\(reference) hashes to \(digest), not the \(d) it was sent as")
        }
        var mediaType = response.header("content-type") ?? ""
        if !MediaType.manifests.contains(mediaType) && !MediaType.indexes.contains(mediaType) {
            mediaType = (try? JSONDecoder().decode(MediaTypeProbe.self, from: Data(sink.bytes))).map { p in
                p.mediaType ?? (p.manifests != nil ? MediaType.ociIndex : MediaType.ociManifest)
            } ?? mediaType
        }
        return (sink.bytes, mediaType, digest)
    }

    /// Streams a blob into the store, checked against its digest and size.
    public func fetchBlob(_ repository: String, _ descriptor: Descriptor, into store: ContentStore,
                          progress: ((Int64) -> Void)? = nil) throws(BerthError) {
        if store.has(descriptor.digest) { return }
        try store.prepare()
        var lastError: BerthError?
        for _ in 0..<2 {
            let tmp = store.ingestDir + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            defer { unlink(tmp) }
            let response = try request("GET", "/v2/\(repository)/blobs/\(descriptor.digest)", scope: "repository:\(repository):pull",
                                       into: { () throws(BerthError) in unlink(tmp); return try FileSink(path: tmp, mode: 0o644) }, progress: progress)
            guard response.status == 200 else {
                if response.status == 404 { throw BerthError("registry \(registry): blob \(descriptor.digest) of \(repository) not found") }
                throw failure("blob \(descriptor.digest)", response)
            }
            do throws(BerthError) {
                try store.ingest(try FileSource(path: tmp), expected: descriptor.digest, size: descriptor.size, describing: "blob \(descriptor.digest) from \(registry)")
                return
            } catch { lastError = error }   // a corrupted transfer: once more
        }
        throw lastError!
    }

    public func hasBlob(_ repository: String, _ digest: Digest) throws(BerthError) -> Bool {
        let response = try request("HEAD", "/v2/\(repository)/blobs/\(digest)", scope: "repository:\(repository):pull,push")
        return response.status == 200
    }

    /// Uploads a blob: mounted from `mountFrom` when the registry has it there,
    /// else in one PUT, or in PATCH chunks of `chunkSize` bytes when given.
    /// Returns "mounted" or "pushed".
    @discardableResult
    public func pushBlob(_ repository: String, _ descriptor: Descriptor, from store: ContentStore, mountFrom: String? = nil,
                         chunkSize: Int64? = nil) throws(BerthError) -> String {
        let scope = "repository:\(repository):pull,push"
        var start = "/v2/\(repository)/blobs/uploads/"
        if let from = mountFrom { start += "?mount=\(descriptor.digest)&from=\(from)" }
        let opened = try request("POST", start, scope: scope)
        if opened.status == 201 && mountFrom != nil { return "mounted" }
        guard opened.status == 202, var location = opened.header("location") else { throw failure("start upload of \(descriptor.digest)", opened) }
        location = absolute(location)
        if let chunkSize, chunkSize > 0 {
            var offset: Int64 = 0
            while offset < descriptor.size {
                let length = min(chunkSize, descriptor.size - offset)
                let from = offset
                let r = try request("PATCH", location, scope: scope,
                                    headers: ["Content-Type: application/octet-stream", "Content-Range: \(from)-\(from + length - 1)"],
                                    body: { () throws(BerthError) in (try SliceSource(path: store.path(descriptor.digest), offset: from, length: length), length) })
                guard r.status == 202, let next = r.header("location") else { throw failure("upload chunk \(from) of \(descriptor.digest)", r) }
                location = absolute(next)
                offset += length
            }
            let done = try request("PUT", location + (location.contains("?") ? "&" : "?") + "digest=\(descriptor.digest)", scope: scope)
            guard done.status == 201 else { throw failure("finish upload of \(descriptor.digest)", done) }
            return "pushed"
        }
        let done = try request("PUT", location + (location.contains("?") ? "&" : "?") + "digest=\(descriptor.digest)", scope: scope,
                               headers: ["Content-Type: application/octet-stream"],
                               body: { () throws(BerthError) in (try store.open(descriptor.digest), descriptor.size) })
        guard done.status == 201 else { throw failure("upload \(descriptor.digest)", done) }
        return "pushed"
    }

    public func putManifest(_ repository: String, reference: String, bytes: [UInt8], mediaType: String) throws(BerthError) {
        let response = try request("PUT", "/v2/\(repository)/manifests/\(reference)", scope: "repository:\(repository):pull,push",
                                   headers: ["Content-Type: \(mediaType)"], body: { (MemorySource(bytes), Int64(bytes.count)) })
        guard response.status == 201 else { throw failure("put manifest \(repository):\(reference)", response) }
    }

    /// Every tag of a repository, following `Link` pagination.
    public func tags(_ repository: String) throws(BerthError) -> [String] {
        var path: String? = "/v2/\(repository)/tags/list?n=1000"
        var out: [String] = []
        while let p = path {
            let sink = MemorySink()
            let response = try request("GET", p, scope: "repository:\(repository):pull", into: { sink.bytes = []; return sink })
            guard response.status == 200 else { throw failure("tags of \(repository)", response, sink.bytes) }
            struct List: Decodable { var tags: [String]? }
            out += (try? JSONDecoder().decode(List.self, from: Data(sink.bytes)))?.tags ?? []
            path = response.links.first.flatMap { link in
                guard let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">") else { return nil }
                return String(link[link.index(after: open)..<close])
            }
        }
        return out
    }

    private func absolute(_ location: String) -> String {
        location.hasPrefix("http://") || location.hasPrefix("https://") ? location : base + (location.hasPrefix("/") ? "" : "/") + location
    }
}

/// A byte range of a file (one upload chunk).
final class SliceSource: ByteSource {
    let file: FileSource
    var left: Int64
    init(path: String, offset: Int64, length: Int64) throws(BerthError) {
        file = try FileSource(path: path)
        guard lseek(file.fd, off_t(offset), SEEK_SET) == off_t(offset) else { throw .sys("seek", path: path) }
        left = length
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        guard left > 0 else { return 0 }
        let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), left))]))
        left -= Int64(n)
        return n
    }
}
