#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Makes images from files: `berth import` (a rootfs tarball or directory
/// becomes a one-layer image) and the layers `build` and `commit` add.
public struct ImageBuilder {
    public let store: ImageStore

    public init(store: ImageStore) { self.store = store }

    /// A new layer: a gzip'd tar blob and the digest of its uncompressed tar (the diff id).
    public struct Layer: Sendable {
        public var descriptor: Descriptor
        public var diffID: Digest
    }

    /// Stores a layer that `write` produces as a tar stream.
    public func layer(describing what: String, _ write: (TarWriter) throws(BerthError) -> Void) throws(BerthError) -> Layer {
        var diffID = Digest(hex: "")
        let (digest, size) = try store.content.ingest(describing: what) { (blob: ByteSink) throws(BerthError) in
            let tar = DigestingSink(GzipSink(blob, level: 1))
            try write(TarWriter(tar))
            diffID = tar.digest()
        }
        return Layer(descriptor: Descriptor(mediaType: MediaType.ociLayerGzip, digest: digest, size: size), diffID: diffID)
    }

    /// Stores a tar stream (plain or compressed) as a gzip'd layer, checking it is tar as it passes.
    public func layer(fromTar source: ByteSource, describing what: String) throws(BerthError) -> Layer {
        try layer(describing: what) { (writer: TarWriter) throws(BerthError) in
            let reader = TarReader(DecompressingSource(source, describing: what), describing: what)
            while let entry = try reader.next() {
                try writer.append(entry, content: entry.kind == .file ? ContentReader(reader) : nil)
            }
            try writer.finish()
        }
    }

    /// Writes config and manifest for `layers` on top of `base` and records the image.
    public func image(base: ImageConfig?, baseLayers: [Descriptor], layers: [Layer], config: ImageConfig.Config?,
                      history: [ImageConfig.History], names: [Reference]) throws(BerthError) -> ImageRecord {
        let created = Timestamp.now()
        var image = base ?? ImageConfig(config: nil, rootfs: .init(diffIDs: []))
        image.created = created
        image.config = config
        image.rootfs.diff_ids += layers.map(\.diffID)
        image.history = (image.history ?? []) + history
        return try record(image, layers: baseLayers + layers.map(\.descriptor), names: names)
    }

    /// Stores `config` and a manifest of `layers`, and records the image under `names`.
    public func record(_ config: ImageConfig, layers: [Descriptor], names: [Reference]) throws(BerthError) -> ImageRecord {
        let configBytes = JSON.encode(config)
        let configDigest = try store.content.write(configBytes, describing: "image config")
        let manifest = Manifest(config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)),
                                layers: layers)
        let manifestDigest = try store.content.write(JSON.encode(manifest), describing: "manifest")
        return try store.commit(manifest: manifestDigest, names: names)
    }

    /// `berth import`: `path` is a tarball (gzip/zstd or plain; "-" for stdin) or a directory.
    public func importRootfs(_ path: String, name: String?, changes: [String], createdBy: String? = nil) throws(BerthError) -> ImageRecord {
        let names = try name.map { n throws(BerthError) in [try Reference(parsing: n)] } ?? []
        var config = ImageConfig.Config()
        for change in changes {
            let instruction = try Instruction.single(change, describing: "--change")
            guard try instruction.apply(to: &config, describing: "--change") else {
                throw BerthError("--change \"\(change)\": \(instruction.keyword) is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR")
            }
        }
        let lock = try store.contentLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        let layer: Layer
        if path != "-" && Files.isDirectory(path) {
            layer = try self.layer(describing: "import \(path)") { (writer: TarWriter) throws(BerthError) in
                var archiver = TreeArchiver()
                try archiver.append(path, to: writer)
                try writer.finish()
            }
        } else {
            let source: ByteSource = path == "-" ? FileSource(adopting: dup(0), path: "stdin") : try FileSource(path: path)
            layer = try self.layer(fromTar: source, describing: "import \(path == "-" ? "stdin" : path)")
        }
        return try image(base: nil, baseLayers: [], layers: [layer], config: config,
                         history: [.init(created: Timestamp.now(), createdBy: createdBy ?? "berth import \(path)", comment: "imported")], names: names)
    }
}
