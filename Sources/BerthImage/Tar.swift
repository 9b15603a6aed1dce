import BerthSys

/// One member of a tar stream (ustar with pax and GNU long-name extensions:
/// what docker, buildah and Go's archive/tar write).
public struct TarEntry: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case file = 48, hardlink = 49, symlink = 50, character = 51, block = 52, directory = 53, fifo = 54
    }

    public var path: String
    public var kind: Kind
    public var mode: UInt32 = 0o644
    public var uid: Int = 0
    public var gid: Int = 0
    public var size: Int64 = 0
    public var mtime: Int64 = 0
    public var linkTarget: String = ""
    public var devMajor: UInt32 = 0
    public var devMinor: UInt32 = 0
    /// Extended attributes (pax `SCHILY.xattr.*`), e.g. `security.capability`.
    public var xattrs: [String: [UInt8]] = [:]

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }
}

/// Reads tar entries from a stream, checking every header's checksum.
public final class TarReader {
    let source: ByteSource
    let what: String
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0, end = 0
    private var remaining: Int64 = 0   // content bytes of the current entry not yet read
    private var padding = 0
    private var globalPax: [String: String] = [:]
    public private(set) var entries = 0

    public init(_ source: ByteSource, describing what: String) {
        self.source = source
        self.what = what
        buffer = .allocate(byteCount: 1 << 18, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Makes at least `n` bytes available (fewer only at the end of the stream).
    private func ensure(_ n: Int) throws(BerthError) -> Bool {
        if end - start >= n { return true }
        if start > 0 {
            let held = end - start
            if held > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: held) }
            start = 0; end = held
        }
        while end - start < n {
            let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if got == 0 { return false }
            end += got
        }
        return true
    }

    private func skip(_ count: Int64) throws(BerthError) {
        var left = count
        while left > 0 {
            if start == end { guard try ensure(1) else { throw truncated() } }
            let n = Int(min(Int64(end - start), left))
            start += n
            left -= Int64(n)
        }
    }

    private func truncated() -> BerthError { BerthError("\(what): the tar stream ends inside entry \(entries) (truncated archive)") }

    /// Reads the current entry's content; 0 at its end.
    public func readContent(into out: UnsafeMutableRawBufferPointer) throws(BerthError) -> Int {
        if remaining == 0 { return 0 }
        if start == end {
            // large contents bypass the buffer
            if Int64(out.count) <= remaining && out.count >= 65536 {
                let n = try source.read(into: out)
                guard n > 0 else { throw truncated() }
                remaining -= Int64(n)
                return n
            }
            guard try ensure(1) else { throw truncated() }
        }
        let n = Int(min(Int64(end - start), remaining, Int64(out.count)))
        out.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: n)
        start += n
        remaining -= Int64(n)
        return n
    }

    private func readContentBytes(_ size: Int64) throws(BerthError) -> [UInt8] {
        guard size <= 16 << 20 else { throw BerthError("\(what): an extended header of \(size) bytes, refused") }
        let bytes = try ContentReader(self).readAll(limit: 16 << 20, describing: what)
        guard bytes.count == Int(size) else { throw truncated() }
        try skip(Int64(padding)); padding = 0
        return bytes
    }

    /// The next entry, or nil at the end-of-archive blocks (or a clean EOF).
    public func next() throws(BerthError) -> TarEntry? {
        try skip(remaining + Int64(padding))
        remaining = 0; padding = 0
        var pax: [String: String] = [:]
        var longName: String?
        var longLink: String?
        while true {
            guard try ensure(512) else {
                if end - start == 0 { return nil }
                throw truncated()
            }
            let header = UnsafeRawBufferPointer(start: buffer.baseAddress! + start, count: 512)
            if header.allSatisfy({ $0 == 0 }) { start += 512; return nil }
            try verifyChecksum(header)
            let type = header[156]
            let size = try number(header, 124, 12, field: "size")
            guard size >= 0 else { throw BerthError("\(what): entry \(entries + 1) has a negative size") }
            start += 512
            remaining = size
            padding = Int((512 - size % 512) % 512)
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let records = try parsePax(try readContentBytes(size))
                if type == UInt8(ascii: "g") { globalPax.merge(records) { $1 } } else { pax.merge(records) { $1 } }
                continue
            case UInt8(ascii: "L"):
                longName = cString(try readContentBytes(size))
                continue
            case UInt8(ascii: "K"):
                longLink = cString(try readContentBytes(size))
                continue
            default: break
            }
            entries += 1
            var name = field(header, 0, 100)
            let magic = field(header, 257, 6)
            if magic.hasPrefix("ustar") {
                let prefix = field(header, 345, 155)
                if !prefix.isEmpty && magic == "ustar" { name = prefix + "/" + name }
            }
            let kind: TarEntry.Kind
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = name.hasSuffix("/") ? .directory : .file
            case UInt8(ascii: "1"): kind = .hardlink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "3"): kind = .character
            case UInt8(ascii: "4"): kind = .block
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            default:
                throw BerthError("\(what): entry \(entries) (\(name)) has tar type '\(Character(Unicode.Scalar(type)))', which berth does not unpack")
            }
            var entry = TarEntry(path: longName ?? name, kind: kind)
            entry.mode = UInt32(truncatingIfNeeded: try number(header, 100, 8, field: "mode")) & 0o7777
            entry.uid = Int(try number(header, 108, 8, field: "uid"))
            entry.gid = Int(try number(header, 116, 8, field: "gid"))
            entry.size = kind == .file ? size : 0
            entry.mtime = try number(header, 136, 12, field: "mtime")
            entry.linkTarget = longLink ?? field(header, 157, 100)
            if kind == .character || kind == .block {
                entry.devMajor = UInt32(truncatingIfNeeded: try number(header, 329, 8, field: "devmajor"))
                entry.devMinor = UInt32(truncatingIfNeeded: try number(header, 337, 8, field: "devminor"))
            }
            for (key, value) in globalPax.merging(pax, uniquingKeysWith: { $1 }) {
                switch key {
                case "path": entry.path = value
                case "linkpath": entry.linkTarget = value
                case "size":
                    guard let v = Int64(value), v >= 0 else { throw BerthError("\(what): pax size \"\(value)\" of \(entry.path)") }
                    if kind == .file { entry.size = v }
                    remaining = v
                    padding = Int((512 - v % 512) % 512)
                case "uid": entry.uid = Int(value) ?? entry.uid
                case "gid": entry.gid = Int(value) ?? entry.gid
                case "mtime": entry.mtime = Int64(value.split(separator: ".").first ?? "") ?? entry.mtime
                default:
                    if key.hasPrefix("SCHILY.xattr.") { entry.xattrs[String(key.dropFirst(13))] = Array(value.utf8) }
                }
            }
            while entry.path.hasPrefix("./") { entry.path.removeFirst(2) }
            if entry.path.hasSuffix("/") && entry.path.count > 1 { entry.path.removeLast() }
            return entry
        }
    }

    private func verifyChecksum(_ h: UnsafeRawBufferPointer) throws(BerthError) {
        var unsigned = 0, signed = 0
        for i in 0..<512 {
            let b = (148..<156).contains(i) ? UInt8(ascii: " ") : h[i]
            unsigned += Int(b)
            signed += Int(Int8(bitPattern: b))
        }
        let stored = try number(h, 148, 8, field: "checksum")
        guard stored == Int64(unsigned) || stored == Int64(signed) else {
            throw BerthError("\(what): header \(entries + 1) fails its checksum (not a tar stream, or corrupt)")
        }
    }

    /// Octal, or GNU base-256 when the first byte has its high bit set.
    private func number(_ h: UnsafeRawBufferPointer, _ offset: Int, _ length: Int, field: String) throws(BerthError) -> Int64 {
        if h[offset] & 0x80 != 0 {
            var v: Int64 = Int64(h[offset] & 0x7f)
            for i in 1..<length { v = (v << 8) | Int64(h[offset + i]) }
            return v
        }
        var v: Int64 = 0
        var seen = false
        for i in 0..<length {
            let c = h[offset + i]
            if c == 0 || (c == 32 && seen) { break }
            if c == 32 { continue }
            guard c >= 48 && c <= 55 else {
                throw BerthError("\(what): header \(entries + 1) has a bad \(field) field (not octal)")
            }
            v = v * 8 + Int64(c - 48)
            seen = true
        }
        return v
    }

    private func field(_ h: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> String {
        let slice = UnsafeRawBufferPointer(rebasing: h[offset..<(offset + length)])
        let n = slice.firstIndex(of: 0) ?? length
        return String(decoding: slice[0..<n], as: UTF8.self)
    }

    private func cString(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    private func parsePax(_ bytes: [UInt8]) throws(BerthError) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: 32),
                  let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)), length > 0, i + length <= bytes.count,
                  let eq = bytes[(space + 1)..<(i + length)].firstIndex(of: UInt8(ascii: "=")) else {
                throw BerthError("\(what): a malformed pax extended header")
            }
            let key = String(decoding: bytes[(space + 1)..<eq], as: UTF8.self)
            let value = String(decoding: bytes[(eq + 1)..<(i + length - 1)], as: UTF8.self)
            out[key] = value
            i += length
        }
        return out
    }
}

/// Writes a tar stream: ustar headers, with a pax header in front when a name,
/// a size or an id does not fit, or when the entry has xattrs.
public final class TarWriter {
    let sink: ByteSink
    public init(_ sink: ByteSink) { self.sink = sink }

    /// Appends one entry; `content` must yield exactly `entry.size` bytes.
    public func append(_ entry: TarEntry, content: ByteSource? = nil) throws(BerthError) {
        var pax: [(String, String)] = []
        let path = entry.kind == .directory && !entry.path.hasSuffix("/") ? entry.path + "/" : entry.path
        if path.utf8.count > 100 { pax.append(("path", path)) }
        if entry.linkTarget.utf8.count > 100 { pax.append(("linkpath", entry.linkTarget)) }
        if entry.size > 0o77777777777 { pax.append(("size", String(entry.size))) }
        if entry.uid > 0o7777777 { pax.append(("uid", String(entry.uid))) }
        if entry.gid > 0o7777777 { pax.append(("gid", String(entry.gid))) }
        for (key, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
            pax.append(("SCHILY.xattr." + key, String(decoding: value, as: UTF8.self)))
        }
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (key, value) in pax {
                let record = " \(key)=\(value)\n"
                var length = record.utf8.count + 1
                while String(length).utf8.count + record.utf8.count != length { length = String(length).utf8.count + record.utf8.count }
                body += Array((String(length) + record).utf8)
            }
            var paxHeader = TarEntry(path: "PaxHeaders/" + String(path.suffix(80)), kind: .file)
            paxHeader.size = Int64(body.count)
            try writeHeader(paxHeader, type: UInt8(ascii: "x"), path: paxHeader.path)
            try sink.write(body)
            try pad(Int64(body.count))
        }
        try writeHeader(entry, type: entry.kind.rawValue, path: path)
        if entry.kind == .file && entry.size > 0 {
            guard let content else { throw BerthError("tar: \(entry.path) has \(entry.size) bytes but no content") }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
            defer { buffer.deallocate() }
            var left = entry.size
            while left > 0 {
                let n = try content.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), left))]))
                guard n > 0 else { throw BerthError("tar: \(entry.path) changed size while being archived") }
                try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                left -= Int64(n)
            }
            try pad(entry.size)
        }
    }

    /// The two zero blocks that end an archive.
    public func finish() throws(BerthError) {
        try sink.write([UInt8](repeating: 0, count: 1024))
        try sink.finish()
    }

    private func pad(_ size: Int64) throws(BerthError) {
        let n = Int((512 - size % 512) % 512)
        if n > 0 { try sink.write([UInt8](repeating: 0, count: n)) }
    }

    private func writeHeader(_ e: TarEntry, type: UInt8, path: String) throws(BerthError) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ offset: Int, _ length: Int) {
            for (i, b) in text.utf8.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ value: Int64, _ offset: Int, _ length: Int) {
            let clamped = min(max(value, 0), (Int64(1) << (3 * Int64(length - 1))) - 1)
            var digits = String(clamped, radix: 8)
            while digits.count < length - 1 { digits = "0" + digits }
            put(digits, offset, length - 1)
        }
        put(path, 0, 100)
        octal(Int64(e.mode & 0o7777), 100, 8)
        octal(Int64(e.uid), 108, 8)
        octal(Int64(e.gid), 116, 8)
        octal(e.kind == .file || type == UInt8(ascii: "x") ? e.size : 0, 124, 12)
        octal(e.mtime, 136, 12)
        h[156] = type
        put(e.linkTarget, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        octal(Int64(e.devMajor), 329, 8)
        octal(Int64(e.devMinor), 337, 8)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        var digits = String(sum, radix: 8)
        while digits.count < 6 { digits = "0" + digits }
        put(digits, 148, 6)
        h[154] = 0; h[155] = 32
        try sink.write(h)
    }
}
