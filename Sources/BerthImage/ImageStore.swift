#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys

/// One image the store knows: its config digest is its id, as in docker.
public struct ImageRecord: Codable, Sendable, Equatable {
    public var id: Digest
    public var manifest: Digest
    public var manifestMediaType: String
    /// The index (manifest list) it was chosen from, when it came as one.
    public var index: Digest?
    /// Full references (`docker.io/library/busybox:latest`), each on one image only.
    public var names: [String]
    /// When it entered this store (RFC 3339).
    public var stored: String
    /// The chain ids of its layers, base first: `layers/<hex>/diff` each.
    public var chain: [Digest]
    /// Bytes of its layers unpacked.
    public var size: Int64

    public var familiarNames: [String] { names.compactMap { try? Reference(parsing: $0).familiar } }
}

/// What a layer directory records about itself.
public struct LayerRecord: Codable, Sendable {
    public var chainID: Digest
    public var diffID: Digest
    /// The layer below it; nil for a base layer.
    public var parent: Digest?
    /// The blob it was unpacked from.
    public var blob: Digest
    public var size: Int64
    public var entries: Int
    public var unpackSeconds: Double
}

/// Images, layers and blobs under one root (`/var/lib/berth` by default):
///
///     blobs/sha256/<hex>     content, by digest
///     ingest/                blobs being written
///     layers/<chain>/diff    a layer unpacked (keyed by chain id: images sharing a base share it)
///     layers/<chain>/layer.json
///     images.json            the image records
///     containers/<id>/image  the image a container was made from (keeps its layers alive)
public final class ImageStore: Sendable {
    public let root: String
    public let content: ContentStore

    public static let defaultRoot = "/var/lib/berth"

    public init(root: String) {
        self.root = root
        content = ContentStore(root: root)
    }

    var recordsPath: String { root + "/images.json" }
    var layersDir: String { root + "/layers" }
    public func layerDirectory(_ chain: Digest) -> String { layersDir + "/" + chain.hex + "/diff" }
    /// A lower layer for images with none (overlayfs needs one).
    public var emptyLayer: String { layersDir + "/empty" }

    public func prepare() throws(BerthError) {
        try Files.makeDirectories(root, mode: 0o700)
        try content.prepare()
        try Files.makeDirectories(layersDir, mode: 0o700)
        try Files.makeDirectories(emptyLayer, mode: 0o755)
        try Files.makeDirectories(root + "/containers", mode: 0o700)
    }

    // MARK: locks

    /// Held shared by everything that adds content and exclusive by garbage
    /// collection, so a pull in flight never loses its blobs to a prune.
    public func contentLock(exclusive: Bool) throws(BerthError) -> StoreLock {
        try prepare()
        return try StoreLock(path: root + "/gc.lock", exclusive: exclusive)
    }

    private func recordsLock(exclusive: Bool) throws(BerthError) -> StoreLock {
        try prepare()
        return try StoreLock(path: root + "/images.lock", exclusive: exclusive)
    }

    // MARK: records

    private struct RecordsFile: Codable { var images: [ImageRecord] }

    private func loadRecords() throws(BerthError) -> [ImageRecord] {
        guard Files.exists(recordsPath) else { return [] }
        return try JSON.decode(RecordsFile.self, from: Files.readBytes(recordsPath), describing: recordsPath).images
    }

    private func saveRecords(_ records: [ImageRecord]) throws(BerthError) {
        try Files.writeAtomically(JSON.encode(RecordsFile(images: records), pretty: true), to: recordsPath, mode: 0o600)
    }

    public func images() throws(BerthError) -> [ImageRecord] {
        guard Files.exists(root) else { return [] }
        let lock = try recordsLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        return try loadRecords()
    }

    /// Read-modify-write of the records under the exclusive lock.
    @discardableResult
    public func updateRecords<T>(_ body: (inout [ImageRecord]) throws(BerthError) -> T) throws(BerthError) -> T {
        let lock = try recordsLock(exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        var records = try loadRecords()
        let result = try body(&records)
        try saveRecords(records)
        return result
    }

    /// An image by name (`busybox`, `busybox:1.36`, `name@sha256:…`) or id (`sha256:…`, or 4+ hex digits of it).
    public func resolve(_ text: String) throws(BerthError) -> ImageRecord {
        try ImageStore.find(text, in: images())
    }

    static func find(_ text: String, in records: [ImageRecord]) throws(BerthError) -> ImageRecord {
        let hex = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        if hex.count >= 4, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
            let matches = records.filter { $0.id.hex.hasPrefix(hex) || $0.manifest.hex.hasPrefix(hex) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 { throw BerthError("image \"\(text)\": the prefix matches \(matches.count) images; give more digits") }
        }
        guard let ref = try? Reference(parsing: text) else { throw BerthError("no such image: \(text)") }
        if let digest = ref.digest {
            let named = ref.familiarName
            if let r = records.first(where: { ($0.manifest == digest || $0.index == digest)
                && $0.names.contains { (try? Reference(parsing: $0))?.familiarName == named } }) { return r }
            if let r = records.first(where: { $0.manifest == digest || $0.index == digest }) { return r }
        } else if let r = records.first(where: { $0.names.contains(ref.description) }) {
            return r
        }
        throw BerthError("no such image: \(text)")
    }

    public func manifest(of record: ImageRecord) throws(BerthError) -> Manifest {
        try JSON.decode(Manifest.self, from: content.read(record.manifest, describing: "manifest"), describing: "manifest \(record.manifest)")
    }

    public func config(of record: ImageRecord) throws(BerthError) -> ImageConfig {
        try JSON.decode(ImageConfig.self, from: content.read(record.id, describing: "image config"), describing: "image config \(record.id)")
    }

    /// The layer directories of an image, top first, as overlayfs's lowerdir wants them.
    public func lowerDirectories(of record: ImageRecord) -> [String] {
        record.chain.isEmpty ? [emptyLayer] : record.chain.reversed().map(layerDirectory)
    }

    // MARK: adding an image

    /// Records an image whose manifest, config and layer blobs are all stored:
    /// unpacks the layers it lacks, then makes it visible under `names`
    /// (a name moves off any image that had it). Nothing is visible before the end.
    @discardableResult
    public func commit(manifest digest: Digest, index: Digest? = nil, names: [Reference],
                       progress: ((String) -> Void)? = nil) throws(BerthError) -> ImageRecord {
        let lock = try contentLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        let manifestBytes = try content.read(digest, describing: "manifest")
        let manifest = try JSON.decode(Manifest.self, from: manifestBytes, describing: "manifest \(digest)")
        let config = try JSON.decode(ImageConfig.self, from: content.read(manifest.config.digest, describing: "image config"),
                                     describing: "image config \(manifest.config.digest)")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw BerthError("image config \(manifest.config.digest): \(config.rootfs.diff_ids.count) diff_ids for \(manifest.layers.count) layers")
        }
        var chain: [Digest] = []
        var size: Int64 = 0
        for (i, layer) in manifest.layers.enumerated() {
            let diffID = config.rootfs.diff_ids[i]
            let chainID = ImageStore.chainID(parent: chain.last, diffID: diffID)
            let record = try unpackLayer(blob: layer.digest, diffID: diffID, chainID: chainID, parent: chain.last, progress: progress)
            size += record.size
            chain.append(chainID)
        }
        var record = ImageRecord(id: manifest.config.digest, manifest: digest, manifestMediaType: manifest.mediaType ?? MediaType.ociManifest,
                                 index: index, names: [], stored: Timestamp.now(), chain: chain, size: size)
        let full = names.map(\.description)
        return try updateRecords { (records: inout [ImageRecord]) throws(BerthError) -> ImageRecord in
            for i in records.indices { records[i].names.removeAll { full.contains($0) } }
            if let i = records.firstIndex(where: { $0.id == record.id && $0.manifest == record.manifest }) {
                records[i].names = Array(Set(records[i].names + full)).sorted()
                if records[i].index == nil { records[i].index = index }
                record = records[i]
            } else {
                record.names = full.sorted()
                records.append(record)
            }
            return record
        }
    }

    /// Unpacks one layer blob into `layers/<chain>/`, once per chain id, under a
    /// per-layer lock; the blob digest and the diff id are both checked, and a
    /// layer that fails either leaves no directory.
    func unpackLayer(blob: Digest, diffID: Digest, chainID: Digest, parent: Digest?,
                     progress: ((String) -> Void)?) throws(BerthError) -> LayerRecord {
        let dir = layersDir + "/" + chainID.hex
        if let existing = try? JSON.decode(LayerRecord.self, from: Files.readBytes(dir + "/layer.json"), describing: "") { return existing }
        let lock = try StoreLock(path: layersDir + "/" + chainID.hex + ".lock", exclusive: true)
        // the lock file stays (unlinking it would let a waiter lock a file no one else sees); GC removes it
        defer { withExtendedLifetime(lock) {} }
        if let existing = try? JSON.decode(LayerRecord.self, from: Files.readBytes(dir + "/layer.json"), describing: "") { return existing }
        try? Files.removeTree(dir)   // a crashed unpack's leftovers
        let partial = layersDir + "/" + chainID.hex + ".partial-\(getpid())"
        try? Files.removeTree(partial)
        try Files.makeDirectories(partial + "/diff", mode: 0o755)
        var corruptBlob = false
        do throws(BerthError) {
            progress?("unpacking \(blob.short)")
            let started = monotonicMilliseconds()
            let blobStream = DigestingSource(try content.open(blob))
            let decompressed = DecompressingSource(blobStream, describing: "layer \(blob.short)")
            let tarStream = DigestingSource(decompressed) { decompressed.compression == .none }
            // hashing and decompressing on one thread, writing files on this one
            let prefetched = PrefetchingSource(tarStream)
            defer { prefetched.close() }
            let reader = TarReader(prefetched, describing: "layer \(blob.short)")
            let result = try LayerUnpacker.unpack(reader, into: partial + "/diff", describing: "layer \(blob.short)")
            // the rest of the stream (padding after the end blocks) still counts for the digests
            let drain = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
            defer { drain.deallocate() }
            while try prefetched.read(into: drain) > 0 {}
            let blobDigest = blobStream.digest()
            guard blobDigest == blob else {
                corruptBlob = true
                throw BerthError("layer blob \(blob): content hashes to \(blobDigest) (corrupt blob; it was removed, pull again)")
            }
            let actualDiff = decompressed.compression == .none ? blobDigest : tarStream.digest()
            guard actualDiff == diffID else {
                throw BerthError("layer blob \(blob): its uncompressed content hashes to \(actualDiff), but the image config says \(diffID)")
            }
            let record = LayerRecord(chainID: chainID, diffID: diffID, parent: parent, blob: blob, size: result.bytes,
                                     entries: result.entries, unpackSeconds: (monotonicMilliseconds() - started) / 1000)
            try Files.writeAtomically(JSON.encode(record, pretty: true), to: partial + "/layer.json", mode: 0o600)
            guard rename(partial, dir) == 0 else { throw BerthError.sys("rename into place", path: dir) }
            return record
        } catch {
            try? Files.removeTree(partial)
            if corruptBlob { content.remove(blob) }
            throw error
        }
    }

    /// Takes a directory already in overlayfs's form (a build container's upper
    /// directory) as the unpacked layer of `blob`, instead of unpacking the blob again.
    public func adoptLayer(_ directory: String, blob: Digest, diffID: Digest, chainID: Digest, parent: Digest?,
                           size: Int64, entries: Int) throws(BerthError) {
        let dir = layersDir + "/" + chainID.hex
        let lock = try StoreLock(path: dir + ".lock", exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        if Files.exists(dir + "/layer.json") { return }   // the same content was unpacked before
        try? Files.removeTree(dir)
        let partial = dir + ".partial-\(getpid())"
        try? Files.removeTree(partial)
        try Files.makeDirectory(partial, mode: 0o700)
        do throws(BerthError) {
            guard rename(directory, partial + "/diff") == 0 else { throw BerthError.sys("move into the layer store", path: directory) }
            let record = LayerRecord(chainID: chainID, diffID: diffID, parent: parent, blob: blob, size: size, entries: entries, unpackSeconds: 0)
            try Files.writeAtomically(JSON.encode(record, pretty: true), to: partial + "/layer.json", mode: 0o600)
            guard rename(partial, dir) == 0 else { throw BerthError.sys("rename into place", path: dir) }
        } catch {
            try? Files.removeTree(partial)
            throw error
        }
    }

    /// Makes sure `blob` is unpacked as the layer `chainID` (build steps reuse cached layers this way).
    public func ensureLayer(blob: Digest, diffID: Digest, chainID: Digest, parent: Digest?) throws(BerthError) {
        _ = try unpackLayer(blob: blob, diffID: diffID, chainID: chainID, parent: parent, progress: nil)
    }

    /// The chain id of `diffID` on top of `parent`.
    public static func chainID(parent: Digest?, diffID: Digest) -> Digest {
        parent.map { Digest.of("\($0) \(diffID)") } ?? diffID
    }

    public func layer(_ chain: Digest) throws(BerthError) -> LayerRecord {
        let path = layersDir + "/" + chain.hex + "/layer.json"
        return try JSON.decode(LayerRecord.self, from: Files.readBytes(path), describing: path)
    }

    // MARK: names and removal

    /// Adds `name` to the image `source` names (moving it off another image).
    public func tag(_ source: String, as name: String) throws(BerthError) {
        let target = try Reference(parsing: name)
        guard target.digest == nil else { throw BerthError("tag \(name): a tag cannot name a digest") }
        try updateRecords { (records: inout [ImageRecord]) throws(BerthError) in
            let image = try ImageStore.find(source, in: records)
            for i in records.indices { records[i].names.removeAll { $0 == target.description } }
            guard let i = records.firstIndex(where: { $0.id == image.id && $0.manifest == image.manifest }) else { return }
            records[i].names = (records[i].names + [target.description]).sorted()
        }
    }

    /// Image ids that containers were made from (their layers stay).
    public func imagesInUse() -> Set<Digest> {
        let dir = root + "/containers"
        var used: Set<Digest> = []
        for id in (try? Files.list(dir)) ?? [] {
            if let text = try? Files.read(dir + "/" + id + "/image"),
               let d = try? Digest(parsing: text.trimmingCharacters(in: .whitespacesAndNewlines)) { used.insert(d) }
        }
        return used
    }

    /// `rmi`: a name is untagged; the image goes when no name is left, or when
    /// it was named by id. An image a container uses stays unless `force`.
    /// Returns docker's lines: `Untagged: …`, `Deleted: …`.
    public func remove(_ text: String, force: Bool) throws(BerthError) -> [String] {
        let inUse = imagesInUse()
        let lines = try updateRecords { (records: inout [ImageRecord]) throws(BerthError) -> [String] in
            let image = try ImageStore.find(text, in: records)
            guard let i = records.firstIndex(of: image) else { return [] }
            let used = inUse.contains(image.id)
            let usedMessage = "image \(text) (\(image.id.short)) is used by a container; remove the container first, or use --force"
            if let ref = try? Reference(parsing: text), image.names.contains(ref.description) {
                // by name: untag; the image goes with its last name unless a container holds it
                if image.names.count == 1 && used && !force { throw BerthError(usedMessage) }
                records[i].names.removeAll { $0 == ref.description }
                if !records[i].names.isEmpty || used { return ["Untagged: \(ref.familiar)"] }
                records.remove(at: i)
                return ["Untagged: \(ref.familiar)", "Deleted: \(image.id)"]
            }
            // by id
            if used && !force { throw BerthError(usedMessage) }
            if image.names.count > 1 && !force {
                throw BerthError("image \(image.id.short) has \(image.names.count) names (\(image.familiarNames.joined(separator: ", "))); remove them by name, or use --force")
            }
            let untagged = image.familiarNames.map { "Untagged: \($0)" }
            if used {
                records[i].names = []
                return untagged
            }
            records.remove(at: i)
            return untagged + ["Deleted: \(image.id)"]
        }
        try collectGarbage()
        return lines
    }

    public struct PruneResult: Sendable {
        public var images: [Digest] = []
        public var blobs = 0
        public var layers = 0
        public var bytes: Int64 = 0
    }

    /// Removes images without names (all unused images with `all`), then every
    /// blob and layer that no image or container refers to.
    public func prune(all: Bool) throws(BerthError) -> PruneResult {
        let inUse = imagesInUse()
        var result = PruneResult()
        result.images = try updateRecords { (records: inout [ImageRecord]) throws(BerthError) -> [Digest] in
            let gone = records.filter { !inUse.contains($0.id) && ($0.names.isEmpty || all) }
            records.removeAll { r in gone.contains(r) }
            return gone.map(\.id)
        }
        let swept = try collectGarbage()
        result.blobs = swept.blobs
        result.layers = swept.layers
        result.bytes = swept.bytes
        return result
    }

    /// Mark and sweep, under the exclusive content lock: what no record and no
    /// container reaches is deleted; stale partial unpacks and ingests too.
    @discardableResult
    public func collectGarbage() throws(BerthError) -> (blobs: Int, layers: Int, bytes: Int64) {
        let lock = try contentLock(exclusive: true)
        defer { withExtendedLifetime(lock) {} }
        let records = try images()
        var blobs: Set<Digest> = []
        var layers: Set<String> = []
        for r in records {
            blobs.insert(r.manifest)
            blobs.insert(r.id)
            if let index = r.index { blobs.insert(index) }
            if let m = try? manifest(of: r) { for l in m.layers { blobs.insert(l.digest) } }
            for c in r.chain { layers.insert(c.hex) }
        }
        // a container's image may have lost its record (rmi --force): keep its layers by the chain it wrote
        for id in (try? Files.list(root + "/containers")) ?? [] {
            if let text = try? Files.read(root + "/containers/" + id + "/chain") {
                for line in text.split(separator: "\n") { layers.insert(String(line)) }
            }
        }
        var removedBlobs = 0, removedLayers = 0
        var bytes: Int64 = 0
        for d in content.all() where !blobs.contains(d) {
            bytes += content.size(d) ?? 0
            content.remove(d)
            removedBlobs += 1
        }
        for name in (try? Files.list(layersDir)) ?? [] where name != "empty" {
            let key = String(name.prefix(64))
            if name.hasSuffix(".lock") {
                if !layers.contains(key) { unlink(layersDir + "/" + name) }
                continue
            }
            if layers.contains(key) && !name.contains(".partial-") { continue }
            if name.contains(".partial-") {
                // an unpack in flight holds its layer's lock
                if let pid = Int32(name.split(separator: "-").last ?? ""), kill(pid, 0) == 0 { continue }
            }
            if let l = try? layer(Digest(hex: key)) { bytes += l.size }
            try? Files.removeTree(layersDir + "/" + name)
            removedLayers += 1
        }
        content.cleanIngest()
        return (removedBlobs, removedLayers, bytes)
    }
}

/// RFC 3339 UTC timestamps, as image configs carry them.
public enum Timestamp {
    public static func now() -> String { format(time(nil)) }

    /// With nanoseconds, as docker records a container's start and end (two runs within
    /// one second must still tell apart).
    public static func nowPrecise() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return String(format(ts.tv_sec).dropLast()) + String(format: ".%09ldZ", ts.tv_nsec)
    }

    /// Seconds since the epoch of an RFC 3339 UTC time (`…Z`), with or without fractions.
    public static func parse(_ text: String) -> Double? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84, bytes[13] == 58, bytes[16] == 58 else { return nil }
        func number(_ from: Int, _ count: Int) -> Int32? { Int32(String(decoding: bytes[from..<(from + count)], as: UTF8.self)) }
        guard let y = number(0, 4), let mo = number(5, 2), let d = number(8, 2), let h = number(11, 2), let mi = number(14, 2), let sec = number(17, 2) else { return nil }
        var tmv = tm()
        tmv.tm_year = y - 1900; tmv.tm_mon = mo - 1; tmv.tm_mday = d; tmv.tm_hour = h; tmv.tm_min = mi; tmv.tm_sec = sec
        var seconds = Double(timegm(&tmv))
        if bytes[19] == 46 {
            let digits = bytes[20...].prefix { $0 >= 48 && $0 <= 57 }
            seconds += Double("0." + String(decoding: digits, as: UTF8.self)) ?? 0
        }
        return seconds
    }

    public static func format(_ t: time_t) -> String {
        var t = t
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
