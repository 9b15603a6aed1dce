#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// `berth load` / `berth save`: image archives in the two formats in use.
///
/// - docker: `manifest.json` (`[{Config, RepoTags, Layers}]`) naming files in the tar;
/// - OCI: `oci-layout`, `index.json` and `blobs/sha256/…`.
///
/// `save` writes one archive that is both (as docker 25+ does): an OCI layout
/// plus a `manifest.json` whose paths point into `blobs/`, so `docker load`,
/// `skopeo copy docker-archive:` and `oci-archive:` all read it.
public struct ImageArchive {
    let store: ImageStore

    public init(store: ImageStore) { self.store = store }

    struct DockerManifestEntry: Codable {
        var Config: String
        var RepoTags: [String]?
        var Layers: [String]
    }

    /// Loads every image in the archive at `path` ("-" is stdin); returns what
    /// docker prints: `Loaded image: busybox:latest` or `Loaded image ID: sha256:…`.
    public func load(path: String) throws(BerthError) -> [String] {
        let what = path == "-" ? "archive on stdin" : "archive \(path)"
        let source: ByteSource = path == "-" ? FileSource(adopting: dup(0), path: "stdin") : try FileSource(path: path)
        let lock = try store.contentLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        let reader = TarReader(DecompressingSource(source, describing: what), describing: what)
        var small: [String: [UInt8]] = [:]      // JSON members, by path
        var files: [String: Digest] = [:]       // every other file, stored as a blob
        var links: [String: String] = [:]        // docker save links identical layers
        while let entry = try reader.next() {
            if entry.kind == .symlink || entry.kind == .hardlink {
                let base = entry.kind == .hardlink ? "" : String(entry.path[..<(entry.path.lastIndex(of: "/") ?? entry.path.startIndex)])
                links[entry.path] = normalize(base.isEmpty ? entry.linkTarget : base + "/" + entry.linkTarget)
                continue
            }
            guard entry.kind == .file else { continue }
            let name = entry.path
            if name.hasSuffix(".json") || name == "oci-layout" || name == "repositories" {
                small[name] = try ContentReader(reader).readAll(limit: 16 << 20, describing: "\(what): \(name)")
                continue
            }
            let expected = digestOfBlobPath(name)
            files[name] = try store.content.ingest(ContentReader(reader), expected: expected, size: entry.size, describing: "\(what): \(name)").digest
        }
        for (name, target) in links { if let d = files[target] { files[name] = d } }
        if let indexBytes = small["index.json"], small["oci-layout"] != nil {
            return try loadOCI(indexBytes, what: what)
        }
        guard let manifestBytes = small["manifest.json"] else {
            throw BerthError("\(what): neither an OCI layout (oci-layout + index.json) nor a docker archive (manifest.json)")
        }
        return try loadDocker(manifestBytes, small: small, files: files, what: what)
    }

    /// `a/../b/layer.tar` → `b/layer.tar`.
    private func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") where p != "." {
            if p == ".." { _ = parts.popLast() } else { parts.append(p) }
        }
        return parts.joined(separator: "/")
    }

    private func digestOfBlobPath(_ name: String) -> Digest? {
        guard name.hasPrefix("blobs/sha256/") else { return nil }
        return try? Digest(parsing: "sha256:" + name.dropFirst(13))
    }

    private func loadOCI(_ indexBytes: [UInt8], what: String) throws(BerthError) -> [String] {
        let index = try JSON.decode(Index.self, from: indexBytes, describing: "\(what): index.json")
        var lines: [String] = []
        for descriptor in index.manifests {
            var manifestDescriptor = descriptor
            var fromIndex: Digest?
            if MediaType.indexes.contains(descriptor.mediaType) {
                let nested = try JSON.decode(Index.self, from: store.content.read(descriptor.digest, describing: "index"), describing: "\(what): index \(descriptor.digest)")
                guard let chosen = nested.select(.host) else { throw BerthError("\(what): index \(descriptor.digest) has no \(Platform.host.os)/\(Platform.host.architecture) image") }
                manifestDescriptor = chosen
                fromIndex = descriptor.digest
            }
            guard MediaType.manifests.contains(manifestDescriptor.mediaType) else { continue }
            let name = descriptor.annotations?["io.containerd.image.name"] ?? descriptor.annotations?["org.opencontainers.image.ref.name"]
            // a bare tag ("latest") names no repository: such an image loads without a name
            let names = name.flatMap { n in n.contains("/") || n.contains(":") ? try? Reference(parsing: n) : nil }.map { [$0] } ?? []
            let record = try store.commit(manifest: manifestDescriptor.digest, index: fromIndex, names: names)
            lines += names.isEmpty ? ["Loaded image ID: \(record.id)"] : names.map { "Loaded image: \($0.familiar)" }
        }
        guard !lines.isEmpty else { throw BerthError("\(what): index.json lists no image manifest") }
        return lines
    }

    private func loadDocker(_ bytes: [UInt8], small: [String: [UInt8]], files: [String: Digest], what: String) throws(BerthError) -> [String] {
        let entries = try JSON.decode([DockerManifestEntry].self, from: bytes, describing: "\(what): manifest.json")
        var lines: [String] = []
        for entry in entries {
            let configBytes: [UInt8]
            if let b = small[entry.Config] { configBytes = b }
            else if let d = files[entry.Config] { configBytes = try store.content.read(d, describing: "image config") }
            else { throw BerthError("\(what): manifest.json names config \(entry.Config), which the archive does not hold") }
            let configDigest = try store.content.write(configBytes, describing: "\(what): \(entry.Config)")
            var layers: [Descriptor] = []
            for path in entry.Layers {
                guard let d = files[path] else { throw BerthError("\(what): manifest.json names layer \(path), which the archive does not hold") }
                layers.append(Descriptor(mediaType: try layerMediaType(d), digest: d, size: store.content.size(d) ?? 0))
            }
            let manifest = Manifest(config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)), layers: layers)
            let manifestDigest = try store.content.write(JSON.encode(manifest), describing: "manifest")
            var names: [Reference] = []
            for tag in entry.RepoTags ?? [] { names.append(try Reference(parsing: tag)) }
            let record = try store.commit(manifest: manifestDigest, names: names)
            lines += names.isEmpty ? ["Loaded image ID: \(record.id)"] : names.map { "Loaded image: \($0.familiar)" }
        }
        return lines
    }

    /// Docker archives call every layer a tar; the first bytes tell.
    func layerMediaType(_ d: Digest) throws(BerthError) -> String {
        let src = try store.content.open(d)
        let head = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
        defer { head.deallocate() }
        let n = try src.read(into: head)
        switch Compression.detect(UnsafeRawBufferPointer(rebasing: head[0..<n])) {
        case .gzip: return MediaType.ociLayerGzip
        case .zstd: return MediaType.ociLayerZstd
        case .none: return MediaType.ociLayer
        }
    }

    /// Writes `references` (names or ids) to `path` ("-" is stdout) as one archive.
    public func save(_ references: [String], to path: String) throws(BerthError) {
        guard !references.isEmpty else { throw BerthError("save: name at least one image") }
        let all = try store.images()
        var chosen: [(ImageRecord, [Reference])] = []
        for text in references {
            let image = try ImageStore.find(text, in: all)
            var names: [Reference] = []
            // by name: that name; by id: all of its names
            if let ref = try? Reference(parsing: text), image.names.contains(ref.description) { names = [ref] }
            else { names = image.names.compactMap { try? Reference(parsing: $0) } }
            if let i = chosen.firstIndex(where: { $0.0 == image }) { chosen[i].1 += names } else { chosen.append((image, names)) }
        }
        let tmp = path == "-" ? nil : path + ".tmp.\(getpid())"
        do throws(BerthError) {
            let sink = try tmp.map { (t) throws(BerthError) in try FileSink(path: t, mode: 0o644) } ?? FileSink(adopting: dup(1), path: "stdout")
            let writer = TarWriter(sink)
            var written: Set<Digest> = []
            var indexEntries: [Descriptor] = []
            var dockerEntries: [DockerManifestEntry] = []
            var repositories: [String: [String: String]] = [:]
            let now = Int64(time(nil))
            var dir = TarEntry(path: "blobs", kind: .directory); dir.mode = 0o755; dir.mtime = now
            try writer.append(dir)
            dir.path = "blobs/sha256"
            try writer.append(dir)
            func blob(_ d: Digest) throws(BerthError) {
                guard written.insert(d).inserted else { return }
                var e = TarEntry(path: "blobs/sha256/" + d.hex, kind: .file)
                e.size = store.content.size(d) ?? 0
                e.mtime = now
                // checked while copied: a corrupt store does not leak into an archive
                let src = DigestingSource(try store.content.open(d))
                try writer.append(e, content: src)
                guard src.digest() == d else { throw BerthError("blob \(d) in the store is corrupt (hashes to \(src.digest()))") }
            }
            for (image, names) in chosen {
                let manifest = try store.manifest(of: image)
                try blob(image.manifest)
                try blob(manifest.config.digest)
                for l in manifest.layers { try blob(l.digest) }
                let descriptor = Descriptor(mediaType: image.manifestMediaType, digest: image.manifest, size: store.content.size(image.manifest) ?? 0)
                if names.isEmpty { indexEntries.append(descriptor) }
                for n in names {
                    var d = descriptor
                    d.annotations = ["io.containerd.image.name": n.description, "org.opencontainers.image.ref.name": n.tag ?? "latest"]
                    indexEntries.append(d)
                    repositories[n.familiarName, default: [:]][n.tag ?? "latest"] = image.id.hex
                }
                dockerEntries.append(DockerManifestEntry(Config: "blobs/sha256/" + manifest.config.digest.hex,
                                                         RepoTags: names.isEmpty ? nil : names.map(\.familiar),
                                                         Layers: manifest.layers.map { "blobs/sha256/" + $0.digest.hex }))
            }
            func file(_ name: String, _ bytes: [UInt8]) throws(BerthError) {
                var e = TarEntry(path: name, kind: .file)
                e.size = Int64(bytes.count)
                e.mtime = now
                try writer.append(e, content: MemorySource(bytes))
            }
            try file("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
            try file("index.json", JSON.encode(Index(manifests: indexEntries)))
            try file("manifest.json", JSON.encode(dockerEntries))
            try file("repositories", JSON.encode(repositories))
            try writer.finish()
            if let tmp {
                try sink.sync()
                guard rename(tmp, path) == 0 else { throw BerthError.sys("rename to", path: path) }
            }
        } catch {
            if let tmp { unlink(tmp) }
            throw error
        }
    }
}

/// The current tar entry's content as a stream.
public final class ContentReader: ByteSource {
    let reader: TarReader
    public init(_ reader: TarReader) { self.reader = reader }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int { try reader.readContent(into: buffer) }
}
