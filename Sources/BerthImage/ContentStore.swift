#if canImport(Glibc)
import Glibc
#endif
import BerthSys

/// Blobs by sha256 under `<root>/blobs/sha256/`. A blob is streamed into
/// `<root>/ingest/`, hashed on the way, checked against the digest it was asked
/// for, fsync'd and renamed into place: a reader never sees a partial blob, and
/// a blob's name is always its content's hash.
public struct ContentStore: Sendable {
    public let root: String
    var blobs: String { root + "/blobs/sha256" }
    var ingestDir: String { root + "/ingest" }

    public init(root: String) { self.root = root }

    func prepare() throws(BerthError) {
        try Files.makeDirectories(blobs, mode: 0o700)
        try Files.makeDirectories(ingestDir, mode: 0o700)
    }

    public func path(_ d: Digest) -> String { blobs + "/" + d.hex }
    public func has(_ d: Digest) -> Bool { Files.exists(path(d)) }

    public func size(_ d: Digest) -> Int64? {
        var st = stat()
        return stat(path(d), &st) == 0 ? Int64(st.st_size) : nil
    }

    /// Streams `source` into the store. With `expected`, content hashing to
    /// anything else (or of another size) is refused and nothing is stored.
    @discardableResult
    public func ingest(_ source: ByteSource, expected: Digest? = nil, size: Int64? = nil, describing what: String) throws(BerthError) -> (digest: Digest, size: Int64) {
        if let expected, has(expected) {
            // already here: the content is the same by construction
            return (expected, self.size(expected) ?? 0)
        }
        try prepare()
        let tmp = ingestDir + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do throws(BerthError) {
            let file = try FileSink(path: tmp, mode: 0o644, exclusive: true)
            let hashing = DigestingSink(file)
            try source.copy(to: hashing)
            try file.sync()
            let digest = hashing.digest()
            if let expected, digest != expected {
                throw BerthError("\(what): content hashes to \(digest), not \(expected) (corrupt or tampered blob)")
            }
            if let size, hashing.count != size {
                throw BerthError("\(what): \(hashing.count) bytes, but its descriptor says \(size)")
            }
            guard rename(tmp, path(digest)) == 0 else { throw BerthError.sys("rename into the blob store", path: path(digest)) }
            return (digest, hashing.count)
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Lets `body` write a blob through a sink (a compressor in front, say);
    /// the blob is named by the hash of what reached the file.
    @discardableResult
    public func ingest(describing what: String, _ body: (ByteSink) throws(BerthError) -> Void) throws(BerthError) -> (digest: Digest, size: Int64) {
        try prepare()
        let tmp = ingestDir + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do throws(BerthError) {
            let file = try FileSink(path: tmp, mode: 0o644, exclusive: true)
            let hashing = DigestingSink(file)
            try body(hashing)
            try hashing.finish()
            try file.sync()
            let digest = hashing.digest()
            guard rename(tmp, path(digest)) == 0 else { throw BerthError.sys("rename into the blob store", path: path(digest)) }
            return (digest, hashing.count)
        } catch {
            unlink(tmp)
            throw BerthError("\(what): \(error)")
        }
    }

    @discardableResult
    public func write(_ bytes: [UInt8], expected: Digest? = nil, describing what: String) throws(BerthError) -> Digest {
        try ingest(MemorySource(bytes), expected: expected, size: Int64(bytes.count), describing: what).digest
    }

    /// A small blob (manifest, config, index), checked against its digest on read.
    public func read(_ d: Digest, describing what: String) throws(BerthError) -> [UInt8] {
        guard has(d) else { throw BerthError("\(what) \(d): not in the store at \(root)") }
        let bytes = try FileSource(path: path(d)).readAll(describing: "\(what) \(d)")
        let actual = Digest.of(bytes)
        guard actual == d else { throw BerthError("\(what) \(d): the stored blob hashes to \(actual) (corrupt store; `berth image prune` and pull again)") }
        return bytes
    }

    /// A blob as a stream whose digest the caller checks at the end (`DigestingSource`).
    public func open(_ d: Digest) throws(BerthError) -> FileSource {
        try FileSource(path: path(d))
    }

    public func all() -> [Digest] {
        ((try? Files.list(blobs)) ?? []).compactMap { try? Digest(parsing: "sha256:" + $0) }
    }

    public func remove(_ d: Digest) { unlink(path(d)) }

    /// Partial blobs of writers that are gone (a pull killed halfway).
    public func cleanIngest() {
        for name in (try? Files.list(ingestDir)) ?? [] {
            guard let pid = Int32(name.split(separator: "-").first ?? ""), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(ingestDir + "/" + name)
        }
    }
}

