#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import BerthImage
import BerthSys

@Suite("image store: import, tag, rmi, prune, save and load")
struct StoreTests {
    /// A small rootfs directory: a file, a symlink and a subdirectory.
    func rootfs(_ dir: TempDir, marker: String) throws -> String {
        let root = dir.path + "/rootfs-" + marker
        try Files.makeDirectories(root + "/etc")
        try write(marker, to: root + "/etc/marker")
        symlink("marker", root + "/etc/link")
        return root
    }

    @Test("import a directory: one layer, unpacked by chain id, resolvable by name and id")
    func importDirectory() throws {
        let dir = TempDir("import")
        let store = ImageStore(root: dir.path + "/store")
        let image = try ImageBuilder(store: store).importRootfs(try rootfs(dir, marker: "one"), name: "test/one:v1", changes: ["CMD [\"sh\"]", "ENV A=b"])
        #expect(image.names == ["docker.io/test/one:v1"])
        #expect(image.chain.count == 1)
        let config = try store.config(of: image)
        #expect(config.config?.Cmd == ["sh"] && config.config?.Env == ["A=b"])
        #expect(config.rootfs.diff_ids.first == image.chain.first)   // a base layer's chain id is its diff id
        #expect(try Files.read(store.layerDirectory(image.chain[0]) + "/etc/marker") == "one")
        #expect(try store.resolve("test/one:v1").id == image.id)
        #expect(try store.resolve(String(image.id.hex.prefix(12))).id == image.id)
        #expect(errorText { _ = try store.resolve("test/one:v2") } == "no such image: test/one:v2")
        let text = errorText { _ = try ImageBuilder(store: store).importRootfs(dir.path, name: "bad", changes: ["RUN true"]) }
        #expect(text.contains("RUN is not one of"))
    }

    @Test("tags move; rmi untags, then deletes; prune sweeps blobs and layers")
    func tagRemovePrune() throws {
        let dir = TempDir("rmi")
        let store = ImageStore(root: dir.path + "/store")
        let builder = ImageBuilder(store: store)
        let a = try builder.importRootfs(try rootfs(dir, marker: "a"), name: "a", changes: [])
        try store.tag("a", as: "alias:1")
        #expect(try store.resolve("alias:1").id == a.id)
        #expect(try store.remove("a", force: false) == ["Untagged: a:latest"])
        #expect(try store.images().count == 1)
        let lines = try store.remove("alias:1", force: false)
        #expect(lines == ["Untagged: alias:1", "Deleted: \(a.id)"])
        #expect(try store.images().isEmpty)
        #expect(store.content.all().isEmpty)
        #expect(!Files.exists(store.layerDirectory(a.chain[0])))
        // a name given to a new image leaves the old one dangling; prune removes it
        let b1 = try builder.importRootfs(try rootfs(dir, marker: "b1"), name: "b", changes: [])
        let b2 = try builder.importRootfs(try rootfs(dir, marker: "b2"), name: "b", changes: [])
        #expect(try store.images().first { $0.id == b1.id }?.names == [])
        let pruned = try store.prune(all: false)
        #expect(pruned.images == [b1.id] && pruned.layers == 1 && pruned.blobs == 3)
        #expect(try store.resolve("b").id == b2.id)
    }

    @Test("a container's image is kept from rmi and prune")
    func inUse() throws {
        let dir = TempDir("inuse")
        let store = ImageStore(root: dir.path + "/store")
        let image = try ImageBuilder(store: store).importRootfs(try rootfs(dir, marker: "c"), name: "c", changes: [])
        try Files.makeDirectories(store.root + "/containers/x")
        try write(image.id.description, to: store.root + "/containers/x/image")
        #expect(errorText { _ = try store.remove("c", force: false) }.contains("used by a container"))
        #expect(try store.prune(all: true).images.isEmpty)
        #expect(Files.exists(store.layerDirectory(image.chain[0])))
    }

    @Test("save then load into another store keeps every digest")
    func saveLoad() throws {
        let dir = TempDir("save")
        let first = ImageStore(root: dir.path + "/one")
        let image = try ImageBuilder(store: first).importRootfs(try rootfs(dir, marker: "s"), name: "saved:1", changes: ["CMD [\"true\"]"])
        let archive = dir.path + "/saved.tar"
        try ImageArchive(store: first).save(["saved:1"], to: archive)
        let second = ImageStore(root: dir.path + "/two")
        #expect(try ImageArchive(store: second).load(path: archive) == ["Loaded image: saved:1"])
        let loaded = try second.resolve("saved:1")
        #expect(loaded.id == image.id && loaded.manifest == image.manifest && loaded.chain == image.chain)
        #expect(try Files.read(second.layerDirectory(loaded.chain[0]) + "/etc/marker") == "s")
    }

    @Test("a corrupt blob or a truncated archive stores nothing")
    func corrupt() throws {
        let dir = TempDir("corrupt")
        let first = ImageStore(root: dir.path + "/one")
        let image = try ImageBuilder(store: first).importRootfs(try rootfs(dir, marker: "x"), name: "x", changes: [])
        let archive = dir.path + "/x.tar"
        try ImageArchive(store: first).save(["x"], to: archive)
        var bytes = try Files.readBytes(archive)
        // flip a byte inside the layer blob's content (the first blob member after its header)
        let layer = try first.manifest(of: image).layers[0].digest
        let marker = Array(("blobs/sha256/" + layer.hex).utf8)
        let at = (0..<(bytes.count - marker.count)).first { bytes[$0..<($0 + marker.count)].elementsEqual(marker) }!
        bytes[at + 512 + 20] ^= 0xff
        try Files.writeAtomically(bytes, to: dir.path + "/bad.tar")
        let second = ImageStore(root: dir.path + "/two")
        #expect(errorText { _ = try ImageArchive(store: second).load(path: dir.path + "/bad.tar") }.contains("hashes to"))
        #expect(try second.images().isEmpty)
        try Files.writeAtomically(Array(try Files.readBytes(archive)[0..<3000]), to: dir.path + "/cut.tar")
        #expect(errorText { _ = try ImageArchive(store: second).load(path: dir.path + "/cut.tar") }.contains("truncated"))
        #expect(try second.images().isEmpty)
        #expect(errorText { _ = try ImageArchive(store: second).load(path: dir.path + "/missing.tar") }.contains("ENOENT"))
    }
}
