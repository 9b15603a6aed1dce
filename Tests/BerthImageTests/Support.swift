#if canImport(Glibc)
import Glibc
#endif
import BerthImage
import BerthSys

/// A temp directory removed when the test ends, passing or failing.
final class TempDir {
    let path: String
    init(_ tag: String) {
        var template = Array("/tmp/berth-image-test-\(tag)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }
    deinit {
        // overlays first: a test that failed halfway may leave one mounted
        if let text = try? Files.read("/proc/self/mountinfo") {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count > 4, f[4].hasPrefix(path) { umount2(String(f[4]), Int32(MNT_DETACH)) }
            }
        }
        try? Files.removeTree(path)
    }
}

func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
    try Files.writeAtomically(Array(text.utf8), to: path, mode: mode)
    chmod(path, mode)
}

/// A tar stream in memory made from entries and their contents.
func tarBytes(_ entries: [(TarEntry, String?)]) throws -> [UInt8] {
    let sink = MemorySink()
    let writer = TarWriter(sink)
    for (var e, content) in entries {
        if let content { e.size = Int64(content.utf8.count) }
        try writer.append(e, content: content.map { MemorySource(Array($0.utf8)) })
    }
    try writer.finish()
    return sink.bytes
}

func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
    let sink = MemorySink()
    let gz = GzipSink(sink)
    try gz.write(bytes)
    try gz.finish()
    return sink.bytes
}

func file(_ path: String, mode: UInt32 = 0o644) -> TarEntry {
    var e = TarEntry(path: path, kind: .file)
    e.mode = mode
    return e
}

func entry(_ path: String, _ kind: TarEntry.Kind, target: String = "", mode: UInt32 = 0o755) -> TarEntry {
    var e = TarEntry(path: path, kind: kind)
    e.linkTarget = target
    e.mode = mode
    return e
}

func errorText(_ body: () throws -> Void) -> String {
    do { try body(); return "" } catch { return "\(error)" }
}
