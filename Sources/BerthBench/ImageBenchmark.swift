#if canImport(Glibc)
import Glibc
#endif
import BerthImage
import BerthSys

/// Layer unpacking: berth's path (blob digest, gunzip, diff-id digest, tar
/// entries written with openat2 and whiteout handling, layer record) against
/// GNU tar extracting the same layer, gzip'd (tar -xzf, gzip in a second
/// process) and plain (tar -xf), interleaved round by round. The layer is made
/// of this machine's /usr files up to the profile's size.
public struct ImageBenchmark {
    public var context: BenchContext
    public init(context: BenchContext) { self.context = context }

    static let sources = ["/usr/include", "/usr/share/doc", "/usr/lib/x86_64-linux-gnu", "/usr/bin"]

    public func run(progress: Progress) throws -> ImageResult {
        let dir = context.workDir + "/images"
        try Files.makeDirectories(dir)
        let cap = Int64(context.profile.imageLayerMiB) << 20
        // on a tmpfs of its own: the disk's writeback would otherwise set the pace for both
        let onTmpfs = mount("tmpfs", dir, "tmpfs", 0, "size=\((cap >> 20) * 5 + 64)m,mode=0755") == 0
        defer {
            if onTmpfs { umount2(dir, Int32(MNT_DETACH)) }
            try? Files.removeTree(dir)
        }
        // the layer, plain and gzip'd, written once
        let plainPath = dir + "/layer.tar", gzipPath = dir + "/layer.tar.gz"
        var files = 0
        var bytes: Int64 = 0
        do {
            let plain = try FileSink(path: plainPath)
            let writer = TarWriter(plain)
            var walker = CappedWalker(cap: cap)
            for source in Self.sources where walker.total < cap { try walker.walk(source, member: String(source.dropFirst()), writer) }
            try writer.finish()
            files = walker.files
            bytes = walker.total
            let gz = GzipSink(try FileSink(path: gzipPath))
            try FileSource(path: plainPath).copy(to: gz)
            try gz.finish()
        }
        let diffID = try digest(plainPath)
        let compressed = try digest(gzipPath)
        var result = ImageResult(layerBytes: bytes, plainBytes: size(plainPath), compressedBytes: size(gzipPath), files: files,
                                 rounds: context.profile.imageRounds, sources: Self.sources, filesystem: onTmpfs ? "tmpfs" : "the work directory's")
        var samples: [String: [Double]] = [:]
        progress.begin("images", total: context.profile.imageRounds * 4)
        for round in 0..<context.profile.imageRounds {
            var order: [(String, () throws -> Double)] = [
                ("berth gzip", { try self.berth(blobPath: gzipPath, blob: compressed, diffID: diffID, dir: dir + "/b\(round)") }),
                ("tar gzip", { try self.tar(["-xzf", gzipPath], dir: dir + "/t\(round)") }),
                ("berth plain", { try self.berth(blobPath: plainPath, blob: diffID, diffID: diffID, dir: dir + "/bp\(round)") }),
                ("tar plain", { try self.tar(["-xf", plainPath], dir: dir + "/tp\(round)") }),
            ]
            if round % 2 == 1 { order.reverse() }
            for (name, measure) in order {
                samples[name, default: []].append(try measure())
                progress.step()
            }
        }
        progress.end()
        for (name, s) in samples {
            result.seconds[name] = Summary(s)
            result.samples[name] = s
            result.megabytesPerSecond[name] = Double(bytes) / 1_000_000 / Statistics.median(s)
        }
        for kind in ["gzip", "plain"] {
            if let b = samples["berth \(kind)"], let t = samples["tar \(kind)"] { result.ratios["berth/tar (\(kind))"] = Statistics.pairedRatio(b, t) }
        }
        return result
    }

    private func digest(_ path: String) throws -> Digest {
        let s = DigestingSource(try FileSource(path: path))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { buffer.deallocate() }
        while try s.read(into: buffer) > 0 {}
        return s.digest()
    }

    private func size(_ path: String) -> Int64 {
        var st = stat()
        return stat(path, &st) == 0 ? Int64(st.st_size) : 0
    }

    /// One unpack through the image store, timed from blob to layer record; the blob is put in place untimed.
    private func berth(blobPath: String, blob: Digest, diffID: Digest, dir: String) throws -> Double {
        let store = ImageStore(root: dir)
        try store.prepare()
        guard link(blobPath, store.content.path(blob)) == 0 else { throw BerthError.sys("link blob into", path: store.content.path(blob)) }
        let start = monotonicMilliseconds()
        try store.ensureLayer(blob: blob, diffID: diffID, chainID: diffID, parent: nil)
        let elapsed = (monotonicMilliseconds() - start) / 1000
        try Files.removeTree(dir)
        return elapsed
    }

    private func tar(_ args: [String], dir: String) throws -> Double {
        try Files.makeDirectories(dir)
        let r = Spawned.run("/bin/tar", ["tar"] + args + ["-C", dir], capture: true)
        guard r.succeeded else { throw BerthError("tar \(args.joined(separator: " ")): \(BenchEnvironment.firstLine(r.output))") }
        try Files.removeTree(dir)
        return r.elapsed / 1000
    }
}

/// Walks directories into a tar stream until `cap` bytes of file content
/// (directories and symlinks are archived as met; files while they fit).
struct CappedWalker {
    let cap: Int64
    var total: Int64 = 0
    var files = 0

    mutating func walk(_ path: String, member: String, _ writer: TarWriter) throws {
        var st = stat()
        guard lstat(path, &st) == 0, total < cap - 4096 else { return }
        var e = TarEntry(path: member, kind: .file)
        e.mode = UInt32(st.st_mode & 0o7777)
        e.mtime = Int64(st.st_mtim.tv_sec)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            e.kind = .directory
            try writer.append(e)
            for name in (try? Files.list(path)) ?? [] { try walk(path + "/" + name, member: member + "/" + name, writer) }
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: 4097)
            let n = readlink(path, &buf, 4096)
            guard n > 0 else { return }
            e.kind = .symlink
            e.linkTarget = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            try writer.append(e)
        case S_IFREG:
            guard total + Int64(st.st_size) <= cap else { return }   // a file past the cap is left out, smaller ones still fit
            guard let source = try? FileSource(path: path) else { return }   // unreadable: skipped
            e.size = Int64(st.st_size)
            try writer.append(e, content: source)
            total += e.size
            files += 1
        default: return
        }
    }
}

public struct ImageResult: Codable, Sendable {
    public static let variants = ["berth gzip", "tar gzip", "berth plain", "tar plain"]

    /// File content in the layer, the tar's size, and the gzip'd blob's.
    public var layerBytes: Int64
    public var plainBytes: Int64
    public var compressedBytes: Int64
    public var files: Int
    public var rounds: Int
    public var sources: [String]
    /// Where the layers were unpacked (a tmpfs, unless one could not be mounted).
    public var filesystem: String = "tmpfs"
    /// Per variant ("berth gzip", "tar gzip", "berth plain", "tar plain").
    public var seconds: [String: Summary] = [:]
    public var samples: [String: [Double]] = [:]
    public var megabytesPerSecond: [String: Double] = [:]
    /// berth time / tar time, paired by round.
    public var ratios: [String: Ratio] = [:]
}
