import Foundation
import Testing
import BerthCgroups
import BerthImage
import BerthNetwork
import BerthSys

/// An engine store on its own tmpfs (the same on the host and in the v2 guest,
/// whose /tmp may not take overlayfs upper layers), with busybox:latest made
/// by `berth image bootstrap`. Unmounted and removed on deinit.
final class EngineEnvironment {
    let dir: String
    let data: String
    let exec: String
    let cgroupParent = "berth-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init(size: String = "512m", bootstrap: Bool = true) throws {
        _ = becomeSubreaper
        dir = NSTemporaryDirectory() + "berth-engine-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        data = dir + "/data"
        exec = dir + "/exec"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        guard mount("tmpfs", data, "tmpfs", 0, "size=\(size),mode=0700") == 0 else { throw BerthError.sys("mount tmpfs on", path: data) }
        if bootstrap {
            let out = try berth(["image", "bootstrap", "busybox", "--helper", Package.helper])
            guard out.code == 0 else { throw BerthError("bootstrap: \(out.stderr)") }
        }
    }

    deinit {
        // devices and rules of a test that failed halfway: its networks' bridges and veths, its nft table
        let networks = NetworkStore(dataRoot: data, defaultRoot: ImageStore.defaultRoot)
        if let link = try? Netlink() {
            for r in networks.list() {
                for e in r.endpoints.values { _ = try? link.deleteLink(e.veth) }
                _ = try? link.deleteLink(r.bridge)
            }
        }
        _ = try? run("/usr/sbin/nft", ["delete", "table", "ip", networks.natTable])
        // container overlays first, then the store's tmpfs
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in mounts.split(separator: "\n").reversed() {
            let f = line.split(separator: " ")
            if f.count > 4, f[4].hasPrefix(dir) { umount2(String(f[4]), Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: dir)
        if let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() {
            for h in layout.controllerHierarchies + (layout.v2.map { [$0] } ?? []) {
                // a child removed just now may still be going offline, or a supervisor may still be
                // deleting a container (EBUSY meanwhile); berth keeps parents, so this is their cleanup
                // (the engine takes --cgroup-parent at each hierarchy's root; memory has this process elsewhere)
                for path in [cgroupParent, "/" + cgroupParent] {
                    let d = CgroupPath(path).directory(in: h, caller: caller)
                    for _ in 0..<400 where rmdir(d) != 0 && errno == EBUSY { usleep(25_000) }
                }
            }
        }
    }

    var store: ImageStore { ImageStore(root: data) }

    @discardableResult
    func berth(_ args: [String], timeout: Double = 120) throws -> Output {
        try run(Package.binary("berth"), ["--data-root", data, "--exec-root", exec] + args, timeout: timeout)
    }

    func runContainer(_ args: [String]) throws -> Output {
        try berth(["run", "--cgroup-parent", cgroupParent] + args)
    }

    /// No container directory, overlay mount, runtime state or cgroup is left.
    func expectNoLeaks(sourceLocation: SourceLocation = #_sourceLocation) {
        let containers = (try? FileManager.default.contentsOfDirectory(atPath: data + "/containers")) ?? []
        #expect(containers.isEmpty, "container directories left: \(containers)", sourceLocation: sourceLocation)
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let overlays = mounts.split(separator: "\n").filter { $0.contains(data + "/containers") }
        #expect(overlays.isEmpty, "overlay mounts left: \(overlays)", sourceLocation: sourceLocation)
        let state = (try? FileManager.default.contentsOfDirectory(atPath: exec + "/runtime")) ?? []
        #expect(state.filter { !$0.hasPrefix(".") }.isEmpty, "runtime state left: \(state)", sourceLocation: sourceLocation)
        // networks: no namespace file, address, default bridge or nft table outlives the containers
        let namespaces = (try? FileManager.default.contentsOfDirectory(atPath: exec + "/netns")) ?? []
        #expect(namespaces.isEmpty, "network namespace files left: \(namespaces)", sourceLocation: sourceLocation)
        let nsMounts = mounts.split(separator: "\n").filter { $0.contains(exec + "/netns/") }
        #expect(nsMounts.isEmpty, "network namespace mounts left: \(nsMounts)", sourceLocation: sourceLocation)
        let networks = NetworkStore(dataRoot: data, defaultRoot: ImageStore.defaultRoot)
        for r in networks.list() {
            #expect(r.endpoints.isEmpty, "addresses still held on \(r.name): \(r.endpoints.values.map(\.address))", sourceLocation: sourceLocation)
            for e in r.endpoints.values { #expect(!Files.exists("/sys/class/net/" + e.veth), "veth left: \(e.veth)", sourceLocation: sourceLocation) }
        }
        #expect(!Files.exists("/sys/class/net/" + networks.defaultBridge), "default bridge left: \(networks.defaultBridge)", sourceLocation: sourceLocation)
        let table = try? run("/usr/sbin/nft", ["list", "table", "ip", networks.natTable])
        #expect(table.map { $0.code != 0 } ?? true, "nft table left: \(networks.natTable)", sourceLocation: sourceLocation)
        if let layout = try? CgroupLayout.detect(), let caller = try? ProcessCgroups.current() {
            for h in layout.controllerHierarchies + (layout.v2.map { [$0] } ?? []) {
                let d = CgroupPath(cgroupParent).directory(in: h, caller: caller)
                let children = ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []).filter { $0.count == 64 }
                #expect(children.isEmpty, "cgroups left in \(d): \(children)", sourceLocation: sourceLocation)
            }
        }
    }

    /// An image of `layers` on top of busybox, each layer written by its closure.
    func image(_ name: String, layers: [(TarWriter) throws -> Void]) throws -> ImageRecord {
        let store = self.store
        let base = try store.resolve("busybox")
        let builder = ImageBuilder(store: store)
        var made: [ImageBuilder.Layer] = []
        for (i, write) in layers.enumerated() {
            made.append(try builder.layer(describing: "layer \(i)") { (w: TarWriter) throws(BerthError) in
                do { try write(w) } catch let e as BerthError { throw e } catch { throw BerthError("\(error)") }
                try w.finish()
            })
        }
        return try builder.image(base: try store.config(of: base), baseLayers: try store.manifest(of: base).layers, layers: made,
                                 config: try store.config(of: base).config, history: [], names: [try Reference(parsing: name)])
    }
}

func tarFile(_ path: String, _ content: String) -> (TarEntry, MemorySource) {
    var e = TarEntry(path: path, kind: .file)
    e.size = Int64(content.utf8.count)
    e.mode = 0o644
    return (e, MemorySource(Array(content.utf8)))
}

@Suite("images: store, layers on overlayfs, berth run, archives", .serialized, .enabled(if: Host.canRunContainers, Host.reason))
struct ImageTests {
    @Test("berth run busybox echo hi: an image-backed overlay rootfs, nothing left after --rm")
    func runEcho() throws {
        let env = try EngineEnvironment()
        let out = try env.runContainer(["--rm", "busybox", "echo", "hi"])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stdout == "hi\n")
        let code = try env.runContainer(["--rm", "busybox", "sh", "-c", "exit 7"])
        #expect(code.code == 7)
        env.expectNoLeaks()
    }

    @Test("a stopped container keeps its changes until rm; export has them; the image is untouched")
    func writableLayer() throws {
        let env = try EngineEnvironment()
        let out = try env.runContainer(["--name", "keep", "busybox", "sh", "-c", "echo changed > /etc/motd && rm /bin/vi"])
        #expect(out.code == 0, "\(out.stderr)")
        let ps = try env.berth(["ps", "-a"])
        #expect(ps.stdout.contains("Exited (0)") && ps.stdout.contains("keep"))
        let archive = env.dir + "/keep.tar"
        #expect(try env.berth(["export", "-o", archive, "keep"]).code == 0)
        let list = try run("/bin/tar", ["-tf", archive]).stdout.split(separator: "\n")
        #expect(list.contains("etc/motd") && !list.contains("bin/vi") && list.contains("bin/busybox"))
        let again = try env.runContainer(["--rm", "busybox", "sh", "-c", "ls /etc/motd; ls /bin/vi"])
        #expect(again.stdout == "/bin/vi\n", "a new container sees the image, not another container's layer")
        #expect(try env.berth(["rm", "keep"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("whiteouts: a layer deleting its parent's file hides it; an opaque directory hides the old contents")
    func whiteouts() throws {
        let env = try EngineEnvironment()
        _ = try env.image("wh:base", layers: [
            { w in
                try w.append(TarEntry(path: "data", kind: .directory))
                for name in ["keep", "gone"] { let (e, c) = tarFile("data/" + name, name); try w.append(e, content: c) }
                try w.append(TarEntry(path: "cache", kind: .directory))
                let (e, c) = tarFile("cache/old", "old"); try w.append(e, content: c)
            },
            { w in
                let (wh, c1) = tarFile("data/.wh.gone", ""); try w.append(wh, content: c1)
                let (opq, c2) = tarFile("cache/.wh..wh..opq", ""); try w.append(opq, content: c2)
                let (e, c3) = tarFile("cache/new", "new"); try w.append(e, content: c3)
                let (bin, c4) = tarFile("bin/.wh.vi", ""); try w.append(bin, content: c4)
            },
        ])
        let out = try env.runContainer(["--rm", "wh:base", "sh", "-c", "ls /data /cache; test -e /bin/vi || echo no-vi"])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stdout == "/cache:\nnew\n\n/data:\nkeep\nno-vi\n")
        env.expectNoLeaks()
    }

    @Test("many layers: 80 stacked layers mount (beyond one page of mount options)")
    func manyLayers() throws {
        let env = try EngineEnvironment()
        let layers: [(TarWriter) throws -> Void] = (0..<80).map { i in
            { w in let (e, c) = tarFile("layers/\(i)", "\(i)"); try w.append(e, content: c) }
        }
        let image = try env.image("many:80", layers: layers)
        #expect(image.chain.count == 81)
        let out = try env.runContainer(["--rm", "many:80", "sh", "-c", "ls /layers | wc -l; cat /layers/79"])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["80", "79"])
        env.expectNoLeaks()
    }

    @Test("bad input: unknown image, missing command, bad archive: one message, exit 1, nothing left")
    func badInput() throws {
        let env = try EngineEnvironment()
        let unknown = try env.runContainer(["--rm", "nosuch:image", "true"])
        #expect(unknown.code == 1 && unknown.stderr == "berth: no such image: nosuch:image\n")
        let missing = try env.runContainer(["--rm", "busybox", "/no/such/binary"])
        #expect(missing.code != 0 && missing.stderr.contains("/no/such/binary"))
        try "not a tar at all, but long enough to fill a header block…".padding(toLength: 1024, withPad: "x", startingAt: 0)
            .write(toFile: env.dir + "/junk.tar", atomically: true, encoding: .utf8)
        let junk = try env.berth(["load", "-i", env.dir + "/junk.tar"])
        #expect(junk.code == 1 && junk.stderr.contains("checksum"), "\(junk.stderr)")
        let images = try env.berth(["images", "-q"])
        #expect(images.stdout.split(separator: "\n").count == 1)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.data + "/ingest")) ?? []).isEmpty)
        env.expectNoLeaks()
    }

    @Test("disk full: a store on a 2 MiB tmpfs refuses the image with ENOSPC and keeps nothing")
    func diskFull() throws {
        let env = try EngineEnvironment(size: "2m", bootstrap: false)
        let out = try env.berth(["image", "bootstrap", "busybox"])
        #expect(out.code == 1 && out.stderr.contains("ENOSPC"), "\(out.stderr)")
        #expect(try env.berth(["images", "-q"]).stdout.isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.data + "/ingest")) ?? []).isEmpty)
        let layers = ((try? FileManager.default.contentsOfDirectory(atPath: env.data + "/layers")) ?? []).filter { $0 != "empty" && !$0.hasSuffix(".lock") }
        #expect(layers.isEmpty, "\(layers)")
    }

    @Test("save, rmi, prune, load: digests survive; concurrent loads share one layer")
    func saveLoadConcurrent() throws {
        let env = try EngineEnvironment()
        let before = try env.store.resolve("busybox")
        let archive = env.dir + "/bb.tar"
        #expect(try env.berth(["save", "-o", archive, "busybox"]).code == 0)
        #expect(try env.berth(["rmi", "busybox"]).stdout.contains("Deleted: \(before.id)"))
        #expect(try env.berth(["image", "prune", "-a"]).code == 0)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.data + "/blobs/sha256")) ?? []).isEmpty)
        let loads = try (0..<3).map { _ in try spawn(Package.binary("berth"), ["--data-root", env.data, "load", "-i", archive]) }
        let outs = loads.map { $0.wait() }
        for o in outs { #expect(o.code == 0 && o.stdout == "Loaded image: busybox:latest\n", "\(o.stderr)") }
        let after = try env.store.resolve("busybox")
        #expect(after.id == before.id && after.manifest == before.manifest && after.chain == before.chain)
        let layers = try FileManager.default.contentsOfDirectory(atPath: env.data + "/layers").filter { $0.count == 64 }
        #expect(layers == [before.chain[0].hex])
        #expect(try env.runContainer(["--rm", "busybox", "true"]).code == 0)
        env.expectNoLeaks()
    }

    @Test("skopeo reads what berth saves, and berth loads and runs what skopeo writes",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "needs skopeo (Debian package)"))
    func skopeoArchives() throws {
        let env = try EngineEnvironment()
        let saved = env.dir + "/berth.tar"
        #expect(try env.berth(["save", "-o", saved, "busybox"]).code == 0)
        let inspect = try run("/usr/bin/skopeo", ["inspect", "docker-archive:" + saved])
        #expect(inspect.code == 0 && inspect.stdout.contains("\"Architecture\": \"amd64\""), "\(inspect.stderr)")
        for (transport, file) in [("docker-archive", "from-skopeo-docker.tar"), ("oci-archive", "from-skopeo-oci.tar")] {
            let target = env.dir + "/" + file
            let copy = try run("/usr/bin/skopeo", ["copy", "--quiet", "docker-archive:" + saved, transport + ":" + target + ":skopeo/bb:\(transport)"])
            #expect(copy.code == 0, "\(copy.stderr)")
            let load = try env.berth(["load", "-i", target])
            #expect(load.code == 0, "\(load.stderr)")
            let out = try env.runContainer(["--rm", "skopeo/bb:\(transport)", "echo", transport])
            #expect(out.stdout == transport + "\n", "\(out.stderr)")
        }
        env.expectNoLeaks()
    }
}
