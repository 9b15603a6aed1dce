#if canImport(Glibc)
import Glibc
#endif
import CBerthImage
import Foundation
import BerthSys

/// A pull stream of bytes: layers flow file → hash → decompress → hash → tar
/// without ever being held whole in memory.
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int
}

/// A push stream of bytes.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws(BerthError)
    /// Flushes whatever the sink holds back (a compressor's trailer).
    func finish() throws(BerthError)
}

extension ByteSink {
    public func finish() throws(BerthError) {}
    public func write(_ bytes: [UInt8]) throws(BerthError) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(BerthError) in try write(raw) } }
        try result.get()
    }
}

extension ByteSource {
    /// Copies everything into `sink`; returns the byte count.
    @discardableResult
    public func copy(to sink: ByteSink) throws(BerthError) -> Int64 {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try read(into: buffer)
            if n == 0 { return total }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
    }

    /// Everything that is left, in memory (manifests and configs only).
    public func readAll(limit: Int = 64 << 20, describing what: String) throws(BerthError) -> [UInt8] {
        let sink = MemorySink()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try read(into: buffer)
            if n == 0 { return sink.bytes }
            sink.bytes.append(contentsOf: buffer[0..<n])
            if sink.bytes.count > limit { throw BerthError("\(what): larger than \(limit >> 20) MiB, refused") }
        }
    }
}

/// A file read with read(2); owns its descriptor.
public final class FileSource: ByteSource {
    let fd: Int32
    public let path: String

    public init(path: String) throws(BerthError) {
        fd = try FileDescriptor(open: path, flags: O_RDONLY).release()
        self.path = path
    }

    public init(adopting fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno != EINTR { throw .sys("read", path: path) }
        }
    }
}

public final class MemorySource: ByteSource {
    let bytes: [UInt8]
    var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        let n = min(buffer.count, bytes.count - offset)
        if n > 0 {
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            offset += n
        }
        return n
    }
}

/// Hashes and counts what passes through.
public final class DigestingSource: ByteSource {
    let inner: ByteSource
    let hasher = SHA256()
    let skip: () -> Bool
    public private(set) var count: Int64 = 0
    /// `skip`, asked after each read: the bytes need no hashing here (an
    /// uncompressed layer's diff id is its blob digest, already being computed).
    public init(_ inner: ByteSource, skip: @escaping () -> Bool = { false }) {
        self.inner = inner
        self.skip = skip
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        let n = try inner.read(into: buffer)
        if !skip() { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        count += Int64(n)
        return n
    }
    /// Call once, at the end of the stream.
    public func digest() -> Digest { hasher.finish() }
}

/// How a layer's bytes are compressed, told by its first bytes (media types lie
/// in docker archives, where every layer is called a tar).
public enum Compression: String, Sendable {
    case none, gzip, zstd

    public static func detect(_ head: UnsafeRawBufferPointer) -> Compression {
        if head.count >= 2 && head[0] == 0x1f && head[1] == 0x8b { return .gzip }
        if head.count >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd { return .zstd }
        return .none
    }
}

/// Decompresses gzip or zstd from an inner source; anything else passes through.
/// A stream that ends inside a gzip member or zstd frame is an error.
public final class DecompressingSource: ByteSource {
    let inner: ByteSource
    let what: String
    private var inflater: OpaquePointer?
    private let input: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var innerDone = false
    private var atBoundary = true
    public private(set) var compression: Compression = .none
    private var detected = false

    public init(_ inner: ByteSource, describing what: String) {
        self.inner = inner
        self.what = what
        input = .allocate(byteCount: 1 << 18, alignment: 16)
    }

    deinit {
        input.deallocate()
        if let inflater { berth_inflater_free(inflater) }
    }

    private func fill() throws(BerthError) {
        if start == end { start = 0; end = 0 }
        guard !innerDone, end < input.count else { return }
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: input[end...]))
        if n == 0 { innerDone = true }
        end += n
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        if !detected {
            while end < 4 && !innerDone { try fill() }
            compression = Compression.detect(UnsafeRawBufferPointer(rebasing: input[0..<end]))
            detected = true
            if compression != .none {
                inflater = berth_inflater_new(compression == .gzip ? Int32(BERTH_CODEC_GZIP.rawValue) : Int32(BERTH_CODEC_ZSTD.rawValue))
                guard inflater != nil else { throw BerthError("\(what): cannot start a \(compression) decoder") }
            }
        }
        guard let inflater else {
            if start < end {
                let n = min(buffer.count, end - start)
                buffer.baseAddress!.copyMemory(from: input.baseAddress! + start, byteCount: n)
                start += n
                return n
            }
            if innerDone { return 0 }
            return try inner.read(into: buffer)
        }
        while true {
            if start == end {
                try fill()
                if start == end {
                    guard atBoundary else { throw BerthError("\(what): the \(compression) stream ends early (truncated)") }
                    return 0
                }
            }
            var consumed = 0, produced = 0
            let r = berth_inflater_run(inflater, input.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, end - start, &consumed,
                                       buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), buffer.count, &produced)
            if r < 0 { throw BerthError("\(what): \(String(cString: berth_inflater_error(inflater))) (corrupt \(compression) data)") }
            start += consumed
            if r == 1 { atBoundary = true } else if consumed > 0 || produced > 0 { atBoundary = false }
            if produced > 0 { return produced }
            if r == 0 && consumed == 0 && start < end {
                throw BerthError("\(what): the \(compression) decoder made no progress (corrupt data)")
            }
        }
    }
}

/// Collects bytes in memory.
public final class MemorySink: ByteSink {
    public var bytes: [UInt8] = []
    public init() {}
    public func write(_ raw: UnsafeRawBufferPointer) throws(BerthError) { bytes.append(contentsOf: raw) }
}

/// A file written with write(2); owns its descriptor.
public final class FileSink: ByteSink {
    let fd: Int32
    public let path: String
    public private(set) var count: Int64 = 0

    public init(path: String, mode: mode_t = 0o644, exclusive: Bool = false) throws(BerthError) {
        fd = try FileDescriptor(open: path, flags: O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC), mode: mode).release()
        self.path = path
    }

    public init(adopting fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    public func write(_ raw: UnsafeRawBufferPointer) throws(BerthError) {
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw .sys("write", path: path)
            }
            offset += n
        }
        count += Int64(raw.count)
    }

    /// fsync: blobs outlive a reboot (they are on disk, unlike runtime state).
    public func sync() throws(BerthError) {
        guard fsync(fd) == 0 else { throw .sys("fsync", path: path) }
    }
}

/// Hashes and counts what passes through to an inner sink.
public final class DigestingSink: ByteSink {
    let inner: ByteSink
    let hasher = SHA256()
    public private(set) var count: Int64 = 0
    public init(_ inner: ByteSink) { self.inner = inner }
    public func write(_ raw: UnsafeRawBufferPointer) throws(BerthError) {
        hasher.update(raw)
        count += Int64(raw.count)
        try inner.write(raw)
    }
    public func finish() throws(BerthError) { try inner.finish() }
    public func digest() -> Digest { hasher.finish() }
}

/// gzip-compresses into an inner sink.
public final class GzipSink: ByteSink {
    let inner: ByteSink
    let deflater: OpaquePointer
    let output: UnsafeMutableRawBufferPointer

    public init(_ inner: ByteSink, level: Int32 = 6) {
        self.inner = inner
        guard let d = berth_deflater_new(level) else { fatalError("zlib: cannot allocate a deflate stream") }
        deflater = d
        output = .allocate(byteCount: 1 << 18, alignment: 16)
    }

    deinit {
        berth_deflater_free(deflater)
        output.deallocate()
    }

    private func run(_ raw: UnsafeRawBufferPointer, finish: Bool) throws(BerthError) {
        var offset = 0
        while true {
            var consumed = 0, produced = 0
            let base = raw.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset }
            let r = berth_deflater_run(deflater, base, raw.count - offset, &consumed,
                                       output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count, &produced, finish ? 1 : 0)
            guard r >= 0 else { throw BerthError("gzip: compression failed") }
            offset += consumed
            if produced > 0 { try inner.write(UnsafeRawBufferPointer(rebasing: output[0..<produced])) }
            if finish ? r == 1 : (offset == raw.count && produced < output.count) { return }
        }
    }

    public func write(_ raw: UnsafeRawBufferPointer) throws(BerthError) {
        if raw.count > 0 { try run(raw, finish: false) }
    }

    public func finish() throws(BerthError) {
        try run(UnsafeRawBufferPointer(start: nil, count: 0), finish: true)
        try inner.finish()
    }
}

/// Runs an inner source on a thread of its own, a few chunks ahead of the
/// reader: unpacking a layer hashes and decompresses on one CPU while the tar
/// entries are written from another (GNU tar gets the same from running gzip as
/// a second process). The inner source must not be touched by anyone else until
/// this source has returned its end (or was closed).
public final class PrefetchingSource: ByteSource, @unchecked Sendable {
    private let inner: ByteSource
    private let condition = NSCondition()
    private var ready: [(buffer: UnsafeMutableRawBufferPointer, count: Int)] = []
    private var free: [UnsafeMutableRawBufferPointer] = []
    private var current: (buffer: UnsafeMutableRawBufferPointer, count: Int)?
    private var offset = 0
    private var finished = false
    private var cancelled = false
    private var running = true
    private var failure: BerthError?
    static let chunk = 1 << 20

    public init(_ inner: ByteSource, depth: Int = 4) {
        self.inner = inner
        for _ in 0..<depth { free.append(.allocate(byteCount: Self.chunk, alignment: 64)) }
        let thread = Thread { [self] in produce() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit {
        close()
        for b in free { b.deallocate() }
        for r in ready { r.buffer.deallocate() }
        if let c = current { c.buffer.deallocate() }
    }

    private func produce() {
        while true {
            condition.lock()
            while free.isEmpty && !cancelled { condition.wait() }
            if cancelled { running = false; condition.broadcast(); condition.unlock(); return }
            let buffer = free.removeLast()
            condition.unlock()
            // fill the chunk (small reads from the decompressor are gathered)
            var filled = 0
            var error: BerthError?
            do throws(BerthError) {
                while filled < buffer.count {
                    let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                    if n == 0 { break }
                    filled += n
                }
            } catch let e { error = e }
            condition.lock()
            if filled > 0 { ready.append((buffer, filled)) } else { free.append(buffer) }
            if let error { failure = error }
            if error != nil || filled < buffer.count { finished = true; running = false }
            condition.broadcast()
            let stop = finished
            condition.unlock()
            if stop { return }
        }
    }

    public func read(into out: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        if current == nil {
            condition.lock()
            while ready.isEmpty && !finished { condition.wait() }
            if ready.isEmpty {
                let error = failure
                condition.unlock()
                if let error { throw error }
                return 0
            }
            current = ready.removeFirst()
            offset = 0
            condition.unlock()
        }
        let c = current!
        let n = min(out.count, c.count - offset)
        out.baseAddress!.copyMemory(from: c.buffer.baseAddress! + offset, byteCount: n)
        offset += n
        if offset == c.count {
            condition.lock()
            free.append(c.buffer)
            current = nil
            condition.signal()
            condition.unlock()
        }
        return n
    }

    /// Stops the producer (a reader that gives up early) and waits for it to let go of the inner source.
    public func close() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }
}
