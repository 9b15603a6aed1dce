#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthSys

/// A container's output as docker's json-file driver keeps it: one JSON object
/// a line, `{"log":"…\n","stream":"stdout","time":"…Z"}`, in
/// `containers/<id>/<id>-json.log`, rotated at `maxSize` into `.1` … `.N`.
public final class ContainerLog: @unchecked Sendable {
    public let path: String
    public let maxSize: Int64
    public let maxFiles: Int
    private var fd: Int32
    private var size: Int64
    private let lock = NSLock()

    public init(path: String, maxSize: Int64 = 10 << 20, maxFiles: Int = 3) throws(BerthError) {
        self.path = path
        self.maxSize = maxSize
        self.maxFiles = max(1, maxFiles)
        fd = try FileDescriptor(open: path, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o640).release()
        var st = stat()
        size = fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    deinit { close(fd) }

    /// Appends `data` from `stream`, a log line per output line (docker splits at 16 KiB too).
    public func write(stream: String, _ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let time = ContainerLog.now()
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 96)
        var start = 0
        while start < data.count {
            var end = start
            while end < data.count && data[end] != 10 && end - start < 16384 { end += 1 }
            if end < data.count && data[end] == 10 { end += 1 }
            out += Array(#"{"log":""#.utf8)
            ContainerLog.escape(UnsafeRawBufferPointer(rebasing: data[start..<end]), into: &out)
            out += Array("\",\"stream\":\"\(stream)\",\"time\":\"\(time)\"}\n".utf8)
            start = end
        }
        lock.lock()
        defer { lock.unlock() }
        out.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                off += n
            }
        }
        size += Int64(out.count)
        if size >= maxSize { rotate() }
    }

    private func rotate() {
        if maxFiles == 1 {
            _ = ftruncate(fd, 0)
            size = 0
            return
        }
        unlink(path + ".\(maxFiles - 1)")
        for i in stride(from: maxFiles - 2, through: 1, by: -1) { rename(path + ".\(i)", path + ".\(i + 1)") }
        rename(path, path + ".1")
        close(fd)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        size = 0
    }

    /// RFC 3339 with nanoseconds, UTC.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func p(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        let ns = String(ts.tv_nsec)
        return "\(tmv.tm_year + 1900)-\(p(tmv.tm_mon + 1, 2))-\(p(tmv.tm_mday, 2))T\(p(tmv.tm_hour, 2)):\(p(tmv.tm_min, 2)):\(p(tmv.tm_sec, 2))."
            + String(repeating: "0", count: 9 - ns.count) + ns + "Z"
    }

    /// JSON string escaping; bytes that are not UTF-8 become U+FFFD.
    static func escape(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            case 0x22: out += [92, 34]
            case 0x5c: out += [92, 92]
            case 0x0a: out += [92, 110]
            case 0x0d: out += [92, 114]
            case 0x09: out += [92, 116]
            case 0..<0x20, 0x7f:
                out += [92, 117, 48, 48, hex[Int(scalar.value >> 4)], hex[Int(scalar.value & 15)]]
            default: out += Array(String(scalar).utf8)
            }
        }
    }

    public struct Entry: Decodable, Sendable {
        public var log: String
        public var stream: String
        public var time: String
    }

    /// Every entry kept, oldest first (rotated files included).
    public static func read(path: String, maxFiles: Int = 3) -> [Entry] { readWithOffset(path: path, maxFiles: maxFiles).entries }

    /// The entries, and where the current file's last complete line ends: following from
    /// there misses nothing written after this read (a line written between a read and a
    /// later stat of the size would be lost).
    public static func readWithOffset(path: String, maxFiles: Int = 3) -> (entries: [Entry], offset: Int64) {
        var out: [Entry] = []
        var offset: Int64 = 0
        let decoder = JSONDecoder()
        for i in stride(from: maxFiles - 1, through: 0, by: -1) {
            let file = i == 0 ? path : path + ".\(i)"
            guard let bytes = try? Files.readBytes(file) else { continue }
            let complete = bytes.lastIndex(of: 10).map { bytes.index(after: $0) } ?? 0
            if i == 0 { offset = Int64(complete) }
            for line in bytes[..<complete].split(separator: 10) {
                if let e = try? decoder.decode(Entry.self, from: Data(line)) { out.append(e) }
            }
        }
        return (out, offset)
    }
}
