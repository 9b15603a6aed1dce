#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// `berth pull` / `berth push`: images between the store and a registry.
/// A pull holds the shared content lock throughout and makes the image visible
/// only at its end (`ImageStore.commit`); blobs it already has are not fetched
/// again, so a pull that was interrupted resumes at the blob it stopped in.
public struct Distribution {
    public let store: ImageStore
    public var insecure = false
    public var credentials: RegistryClient.Credentials?
    public var chunkSize: Int64?
    public var platform = Platform.host
    /// One status line at a time (docker's wording); `progress` updates the current one in place.
    public var say: (String) -> Void = { print($0) }
    public var progress: ((String) -> Void)?

    public init(store: ImageStore) { self.store = store }

    func client(for ref: Reference) -> RegistryClient {
        RegistryClient(registry: ref.registry, insecure: insecure, credentials: credentials)
    }

    @discardableResult
    public func pull(_ text: String) throws(BerthError) -> ImageRecord {
        let ref = try Reference(parsing: text)
        let client = self.client(for: ref)
        let lock = try store.contentLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        store.content.cleanIngest()   // what an interrupted pull left half-written
        say("\(ref.tag ?? ref.digest!.description): Pulling from \(ref.familiarName)")
        var (bytes, mediaType, digest) = try client.manifest(ref.repository, reference: ref.digest?.description ?? ref.tag!)
        var index: Digest?
        if MediaType.indexes.contains(mediaType) {
            try store.content.write(bytes, expected: digest, describing: "index \(digest)")
            let list = try JSON.decode(Index.self, from: bytes, describing: "index \(digest) of \(ref)")
            guard let chosen = list.select(platform) else {
                let offered = list.manifests.compactMap { $0.platform.map { "\($0.os)/\($0.architecture)" } }.joined(separator: ", ")
                throw BerthError("\(ref.familiar): no \(platform.os)/\(platform.architecture) image (the index has \(offered))")
            }
            index = digest
            (bytes, mediaType, digest) = try client.manifest(ref.repository, reference: chosen.digest.description)
            guard digest == chosen.digest else { throw BerthError("\(ref.familiar): manifest \(chosen.digest) came back as \(digest)") }
        }
        guard MediaType.manifests.contains(mediaType) else {
            throw BerthError("\(ref.familiar): \(mediaType) is not an image manifest berth can run (want OCI or Docker schema 2)")
        }
        let manifest = try JSON.decode(Manifest.self, from: bytes, describing: "manifest \(digest) of \(ref)")
        try store.content.write(bytes, expected: digest, describing: "manifest \(digest)")
        try client.fetchBlob(ref.repository, manifest.config, into: store.content)
        let before = try? store.resolve(ref.description)
        for layer in manifest.layers {
            guard MediaType.layers.contains(layer.mediaType) else { throw BerthError("\(ref.familiar): layer \(layer.digest) has media type \(layer.mediaType), which berth cannot unpack") }
            if store.content.has(layer.digest) { say("\(layer.digest.short): Already exists"); continue }
            let total = layer.size
            try client.fetchBlob(ref.repository, layer, into: store.content) { got in
                progress?("\(layer.digest.short): Downloading \(Self.size(got))/\(Self.size(total))")
            }
            say("\(layer.digest.short): Pull complete")
        }
        let record = try store.commit(manifest: digest, index: index, names: ref.digest == nil ? [ref] : [])
        say("Digest: \(index ?? digest)")
        say(before?.manifest == record.manifest ? "Status: Image is up to date for \(ref.familiar)" : "Status: Downloaded newer image for \(ref.familiar)")
        return record
    }

    public func push(_ text: String) throws(BerthError) {
        let ref = try Reference(parsing: text)
        guard ref.digest == nil else { throw BerthError("push \(text): push a tag, not a digest") }
        let all = try store.images()
        let image = try ImageStore.find(text, in: all)
        let manifest = try store.manifest(of: image)
        let client = self.client(for: ref)
        say("The push refers to repository [\(ref.registry)/\(ref.repository)]")
        // another repository of the same registry that has a blob lets the registry mount it instead
        func mountSource(_ d: Digest) -> String? {
            for other in all {
                guard let m = try? store.manifest(of: other), m.layers.contains(where: { $0.digest == d }) || m.config.digest == d else { continue }
                for name in other.names {
                    if let r = try? Reference(parsing: name), r.registry == ref.registry, r.repository != ref.repository { return r.repository }
                }
            }
            return nil
        }
        for blob in manifest.layers + [manifest.config] {
            guard store.content.has(blob.digest) else { throw BerthError("push \(ref.familiar): blob \(blob.digest) is not in the store (corrupt store; pull the image again)") }
            if try client.hasBlob(ref.repository, blob.digest) {
                say("\(blob.digest.short): Layer already exists")
                continue
            }
            let how = try client.pushBlob(ref.repository, blob, from: store.content, mountFrom: mountSource(blob.digest), chunkSize: chunkSize)
            say("\(blob.digest.short): \(how == "mounted" ? "Mounted from \(mountSource(blob.digest) ?? "")" : "Pushed")")
        }
        let bytes = try store.content.read(image.manifest, describing: "manifest")
        try client.putManifest(ref.repository, reference: ref.tag ?? "latest", bytes: bytes, mediaType: image.manifestMediaType)
        say("\(ref.tag ?? "latest"): digest: \(image.manifest) size: \(bytes.count)")
    }

    public func tags(_ text: String) throws(BerthError) -> [String] {
        let ref = try Reference(parsing: text)
        return try client(for: ref).tags(ref.repository)
    }

    static func size(_ n: Int64) -> String {
        n >= 1_000_000 ? "\(Double(n / 10_000) / 100)MB" : n >= 1000 ? "\(Double(n / 10) / 100)kB" : "\(n)B"
    }
}
