#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import BerthImage
import CBerthImage
import BerthSys

@Suite("tar, gzip and the layer unpacker")
struct TarTests {
    func readAll(_ bytes: [UInt8]) throws -> [(TarEntry, String)] {
        let reader = TarReader(DecompressingSource(MemorySource(bytes), describing: "test"), describing: "test")
        var out: [(TarEntry, String)] = []
        while let e = try reader.next() {
            let content = try ContentReader(reader).readAll(describing: "test")
            out.append((e, String(decoding: content, as: UTF8.self)))
        }
        return out
    }

    @Test("entries round-trip: long names, links, devices, xattrs, big ids")
    func roundTrip() throws {
        let long = String(repeating: "d/", count: 70) + "file.txt"
        var big = file("big-ids")
        big.uid = 5_000_000
        big.gid = 70_000
        var caps = file("bin/ping", mode: 0o4755)
        caps.xattrs = ["security.capability": [1, 0, 0, 2]]
        var dev = entry("dev/null", .character, mode: 0o666)
        dev.devMajor = 1; dev.devMinor = 3
        let entries: [(TarEntry, String?)] = [
            (entry("bin", .directory), nil), (caps, "ELF"), (file(long), "deep"),
            (entry("bin/sh", .symlink, target: String(repeating: "x", count: 150)), nil),
            (entry("bin/ping2", .hardlink, target: "bin/ping"), nil), (dev, nil), (big, "ids"),
        ]
        let got = try readAll(try tarBytes(entries))
        #expect(got.map(\.0.path) == ["bin", "bin/ping", long, "bin/sh", "bin/ping2", "dev/null", "big-ids"])
        #expect(got[1].0.mode == 0o4755 && got[1].1 == "ELF" && got[1].0.xattrs["security.capability"] == [1, 0, 0, 2])
        #expect(got[2].1 == "deep")
        #expect(got[3].0.linkTarget.count == 150)
        #expect(got[4].0.kind == .hardlink && got[4].0.linkTarget == "bin/ping")
        #expect(got[5].0.devMajor == 1 && got[5].0.devMinor == 3)
        #expect(got[6].0.uid == 5_000_000 && got[6].0.gid == 70_000 && got[6].1 == "ids")
    }

    @Test("gzip'd tar reads the same; a truncated gzip stream is an error")
    func gzipped() throws {
        let plain = try tarBytes([(file("a"), String(repeating: "hello ", count: 5000))])
        let compressed = try gzip(plain)
        #expect(compressed[0] == 0x1f && compressed.count < plain.count)
        #expect(try readAll(compressed).first?.1.count == 30000)
        let cut = Array(compressed[0..<(compressed.count / 2)])
        #expect(errorText { _ = try readAll(cut) }.contains("truncated"))
    }

    @Test("a corrupt header fails its checksum; a cut archive says truncated")
    func corrupt() throws {
        var bytes = try tarBytes([(file("a"), "content"), (file("b"), "more")])
        bytes[10] ^= 0xff
        #expect(errorText { _ = try readAll(bytes) }.contains("fails its checksum"))
        let whole = try tarBytes([(file("a"), String(repeating: "z", count: 4000))])
        #expect(errorText { _ = try readAll(Array(whole[0..<1500])) }.contains("truncated"))
    }

    @Test("whiteouts become overlayfs whiteouts; opaque directories get the xattr")
    func whiteouts() throws {
        let dir = TempDir("wh")
        let bytes = try tarBytes([
            (entry("etc", .directory), nil), (file("etc/.wh.motd"), ""),
            (entry("var/cache", .directory), nil), (file("var/cache/.wh..wh..opq"), ""), (file("var/cache/new"), "n"),
        ])
        let result = try LayerUnpacker.unpack(TarReader(MemorySource(bytes), describing: "t"), into: dir.path, describing: "t")
        #expect(result.whiteouts == 2)
        var st = stat()
        #expect(lstat(dir.path + "/etc/motd", &st) == 0)
        #expect((st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0)
        #expect(!Files.exists(dir.path + "/etc/.wh.motd"))
        var v = [UInt8](repeating: 0, count: 2)
        #expect(berth_lgetxattr(dir.path + "/var/cache", "trusted.overlay.opaque", &v, 2) == 1 && v[0] == UInt8(ascii: "y"))
        #expect(try Files.read(dir.path + "/var/cache/new") == "n")
    }

    @Test("a symlink in the layer cannot send a later entry outside it; .. is refused")
    func noEscape() throws {
        let outside = TempDir("outside")
        let dir = TempDir("escape")
        // an absolute symlink is read inside the layer: lib → /usr/lib lands in the layer's usr/lib
        let bytes = try tarBytes([(entry("usr/lib", .directory), nil), (entry("lib", .symlink, target: "/usr/lib"), nil),
                                  (file("lib/x"), "x"), (entry("up", .symlink, target: "../../../.."), nil), (file("up/y"), "y")])
        _ = try LayerUnpacker.unpack(TarReader(MemorySource(bytes), describing: "t"), into: dir.path, describing: "t")
        #expect(try Files.read(dir.path + "/usr/lib/x") == "x")
        #expect(try Files.read(dir.path + "/y") == "y")
        // a symlink to a host directory the layer lacks is refused, and nothing lands on the host
        let evil = try tarBytes([(entry("evil", .symlink, target: outside.path), nil), (file("evil/planted"), "x")])
        let second = TempDir("e2")
        let refused = errorText { _ = try LayerUnpacker.unpack(TarReader(MemorySource(evil), describing: "t"), into: second.path, describing: "t") }
        #expect(refused.contains("a symlink to a directory the layer does not have"), "\(refused)")
        #expect(!Files.exists(outside.path + "/planted"))
        let climb = try tarBytes([(file("../../etc/berth-test"), "x")])
        let message = errorText { _ = try LayerUnpacker.unpack(TarReader(MemorySource(climb), describing: "t"), into: dir.path, describing: "t") }
        #expect(message.contains("climbs out"))
    }

    @Test("owners, modes, setuid bits, hard links and mtimes are kept")
    func metadata() throws {
        let dir = TempDir("meta")
        var f = file("usr/bin/tool", mode: 0o4750)
        f.uid = 1234; f.gid = 5678; f.mtime = 1_600_000_000
        var d = entry("usr", .directory, mode: 0o711)
        d.mtime = 1_500_000_000
        let bytes = try tarBytes([(d, nil), (f, "bin"), (entry("usr/bin/alias", .hardlink, target: "usr/bin/tool"), nil)])
        _ = try LayerUnpacker.unpack(TarReader(MemorySource(bytes), describing: "t"), into: dir.path, describing: "t")
        var st = stat()
        #expect(stat(dir.path + "/usr/bin/tool", &st) == 0)
        #expect(st.st_uid == 1234 && st.st_gid == 5678 && st.st_mode & 0o7777 == 0o4750 && st.st_mtim.tv_sec == 1_600_000_000)
        #expect(st.st_nlink == 2)
        #expect(stat(dir.path + "/usr", &st) == 0 && st.st_mode & 0o7777 == 0o711 && st.st_mtim.tv_sec == 1_500_000_000)
    }
}
