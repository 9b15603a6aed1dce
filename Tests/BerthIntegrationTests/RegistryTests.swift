import Foundation
import Testing
import BerthImage
import BerthSys

/// A docker-registry (Debian's distribution 2.8) on 127.0.0.1, storage in a temp
/// dir, access log kept to count requests. Killed (by its pid) on deinit.
final class LocalRegistry {
    let dir: String
    let port: Int
    let process: Spawned
    var address: String { "127.0.0.1:\(port)" }
    var log: String {
        [".out", ".err"].map { (try? String(contentsOfFile: process.base + $0, encoding: .utf8)) ?? "" }.joined()
    }

    init(htpasswd: String? = nil) throws {
        dir = NSTemporaryDirectory() + "berth-registry-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var chosen = 0
        var started: Spawned?
        for _ in 0..<5 {
            let port = Int.random(in: 20000...60000)
            var config = """
            version: 0.1
            log:
              level: info
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: \(dir)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)

            """
            if let htpasswd {
                try htpasswd.write(toFile: dir + "/htpasswd", atomically: true, encoding: .utf8)
                config += "auth:\n  htpasswd:\n    realm: berth-test\n    path: \(dir)/htpasswd\n"
            }
            try config.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
            let p = try spawn("/usr/bin/docker-registry", ["serve", dir + "/config.yml"])
            // up when /v2/ answers (200, or 401 with auth)
            for _ in 0..<100 {
                let probe = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/v2/"])
                if probe.stdout == "200" || probe.stdout == "401" { chosen = port; break }
                usleep(50_000)
            }
            if chosen != 0 { started = p; break }
            kill(p.pid, SIGKILL)
            _ = p.wait()
        }
        guard let started else { throw BerthError("docker-registry did not start") }
        port = chosen
        process = started
    }

    deinit {
        kill(process.pid, SIGKILL)
        _ = process.wait()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The registry's file for a blob (to corrupt it).
    func blobPath(_ d: Digest) -> String { dir + "/data/docker/registry/v2/blobs/sha256/\(d.hex.prefix(2))/\(d.hex)/data" }
}

let hasRegistry = FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")

@Suite("registry: push and pull against docker-registry on loopback", .serialized,
       .enabled(if: Host.canRunContainers && hasRegistry, "needs root and docker-registry (Debian package)"))
struct RegistryTests {
    @Test("push then pull keeps every digest; pushes skip, mount and chunk; tags list; the pulled image runs")
    func pushPull() throws {
        let registry = try LocalRegistry()
        let env = try EngineEnvironment()
        let ref = registry.address + "/berth/bb:v1"
        #expect(try env.berth(["tag", "busybox", ref]).code == 0)
        let push = try env.berth(["push", ref])
        #expect(push.code == 0, "\(push.stderr)")
        #expect(push.stdout.contains("Pushed"))
        let again = try env.berth(["push", ref])
        #expect(again.stdout.contains("Layer already exists") && !again.stdout.contains("Pushed"))
        let other = registry.address + "/elsewhere/bb:v2"
        #expect(try env.berth(["tag", "busybox", other]).code == 0)
        #expect(try env.berth(["push", other]).stdout.contains("Mounted from berth/bb"))
        #expect(try env.berth(["image", "tags", registry.address + "/berth/bb"]).stdout == "v1\n")

        let second = try EngineEnvironment(bootstrap: false)
        let pull = try second.berth(["pull", ref])
        #expect(pull.code == 0, "\(pull.stderr)")
        let pushed = try env.store.resolve(ref)
        let pulled = try second.store.resolve(ref)
        #expect(pulled.id == pushed.id && pulled.manifest == pushed.manifest && pulled.chain == pushed.chain)
        #expect(try second.store.manifest(of: pulled) == env.store.manifest(of: pushed))
        #expect(try second.berth(["pull", ref]).stdout.contains("Already exists"))
        let out = try second.runContainer(["--rm", ref, "echo", "from the registry"])
        #expect(out.stdout == "from the registry\n", "\(out.stderr)")

        // a chunked upload, into a store that knows no other repository to mount from
        let chunked = registry.address + "/chunked/bb:c"
        #expect(try second.berth(["tag", ref, chunked]).code == 0)
        #expect(try second.berth(["rmi", ref]).code == 0)
        let patches = registry.log.components(separatedBy: "\"PATCH /v2/chunked/bb/blobs/uploads/").count - 1
        let c = try second.berth(["push", "--chunk-size", "300000", chunked])
        #expect(c.code == 0 && c.stdout.contains("Pushed"), "\(c.stderr)")
        let after = registry.log.components(separatedBy: "\"PATCH /v2/chunked/bb/blobs/uploads/").count - 1
        #expect(after - patches >= 4, "a 1+ MB layer in 300 kB chunks takes several PATCH requests")
        second.expectNoLeaks()
    }

    @Test("skopeo inspects and copies what berth pushed; berth pulls what skopeo pushed; a skopeo docker-archive loads and runs",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "needs skopeo"))
    func skopeo() throws {
        let registry = try LocalRegistry()
        let env = try EngineEnvironment()
        let ref = registry.address + "/berth/bb:v1"
        #expect(try env.berth(["tag", "busybox", ref]).code == 0)
        #expect(try env.berth(["push", ref]).code == 0)
        let pushed = try env.store.resolve(ref)
        let inspect = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://" + ref])
        #expect(inspect.code == 0 && inspect.stdout.contains(pushed.manifest.description), "\(inspect.stderr)")
        let copied = registry.address + "/skopeo/bb:s"
        let copy = try run("/usr/bin/skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + ref, "docker://" + copied])
        #expect(copy.code == 0, "\(copy.stderr)")
        let second = try EngineEnvironment(bootstrap: false)
        #expect(try second.berth(["pull", copied]).code == 0)
        #expect(try second.store.resolve(copied).id == pushed.id)
        let archive = second.dir + "/skopeo.tar"
        let save = try run("/usr/bin/skopeo", ["copy", "--quiet", "--src-tls-verify=false", "docker://" + ref, "docker-archive:" + archive + ":made/by:skopeo"])
        #expect(save.code == 0, "\(save.stderr)")
        #expect(try second.berth(["load", "-i", archive]).stdout == "Loaded image: made/by:skopeo\n")
        #expect(try second.runContainer(["--rm", "made/by:skopeo", "echo", "ok"]).stdout == "ok\n")
        second.expectNoLeaks()
    }

    @Test("basic auth: refused without credentials, accepted with them",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/htpasswd"), "needs htpasswd (apache2-utils)"))
    func basicAuth() throws {
        let line = try run("/usr/bin/htpasswd", ["-Bbn", "berth", "s3cret"]).stdout
        let registry = try LocalRegistry(htpasswd: line)
        let env = try EngineEnvironment()
        let ref = registry.address + "/private/bb:1"
        #expect(try env.berth(["tag", "busybox", ref]).code == 0)
        let refused = try env.berth(["push", ref])
        #expect(refused.code == 1 && refused.stderr.contains("authentication required"), "\(refused.stderr)")
        let wrong = try env.berth(["push", "--username", "berth", "--password", "nope", ref])
        #expect(wrong.code == 1 && wrong.stderr.contains("401"), "\(wrong.stderr)")
        #expect(try env.berth(["push", "--username", "berth", "--password", "s3cret", ref]).code == 0)
    }

    /// The token proxy in front of `registry`, up and answering.
    func proxy(_ registry: LocalRegistry, _ extra: [String] = []) throws -> (Spawned, Int) {
        let port = Int.random(in: 20000...60000)
        let proxy = try spawn("/usr/bin/python3", [Package.root + "/Tests/Helpers/token-proxy.py", String(port), String(registry.port)] + extra)
        var up = false
        for _ in 0..<100 where !up {
            up = ["200", "401"].contains(try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/v2/"]).stdout)
            if !up { usleep(50_000) }
        }
        #expect(up, "the token proxy did not start")
        return (proxy, port)
    }

    @Test("a flaky registry (503s) is retried with backoff; a pull killed halfway leaves no image, and the next one resumes",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs python3"))
    func retriesAndInterruptedPull() throws {
        let registry = try LocalRegistry()
        let env = try EngineEnvironment()
        // three layers, the middle one big enough that a pull is still busy with it when killed
        let urandom = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        let random = [UInt8](try urandom.read(upToCount: 48 << 20) ?? Data())
        let blob = MemorySource(random)
        _ = try env.image("big:1", layers: [
            { w in let (e, c) = tarFile("small", "s"); try w.append(e, content: c) },
            { w in var e = TarEntry(path: "random", kind: .file); e.size = Int64(random.count); e.mode = 0o644; try w.append(e, content: blob) },
            { w in let (e, c) = tarFile("last", "l"); try w.append(e, content: c) },
        ])
        let ref = registry.address + "/big/img:1"
        #expect(try env.berth(["tag", "big:1", ref]).code == 0)
        #expect(try env.berth(["push", ref]).code == 0)

        let (flaky, flakyPort) = try proxy(registry, ["2"])
        defer { kill(flaky.pid, SIGKILL); _ = flaky.wait() }
        let second = try EngineEnvironment(bootstrap: false)
        let viaFlaky = "127.0.0.1:\(flakyPort)/big/img:1"
        let retried = try second.berth(["pull", viaFlaky])
        #expect(retried.code == 0, "\(retried.stderr)")
        #expect(try run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(flakyPort)/failed"]).stdout == "2")

        let third = try EngineEnvironment(bootstrap: false)
        let pull = try spawn(Package.binary("berth"), ["--data-root", third.data, "pull", ref])
        // killed once the first layer is in, while the big one streams
        var sawFirst = false
        for _ in 0..<20000 where !sawFirst {
            sawFirst = ((try? String(contentsOfFile: pull.base + ".out", encoding: .utf8)) ?? "").contains("Pull complete")
            if !sawFirst { usleep(500) }
        }
        kill(pull.pid, SIGKILL)
        _ = pull.wait()
        #expect(sawFirst)
        #expect(try third.berth(["images", "-q"]).stdout.isEmpty, "a killed pull shows no image")
        let resumed = try third.berth(["pull", ref])
        #expect(resumed.code == 0 && resumed.stdout.contains("Already exists"), "\(resumed.stdout) \(resumed.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: third.data + "/ingest")) ?? []).isEmpty)
        #expect(try third.runContainer(["--rm", ref, "cat", "/last"]).stdout == "l")
        third.expectNoLeaks()
    }

    @Test("Bearer tokens: the challenge is answered at the token service, with the scope of the operation",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs python3"))
    func bearer() throws {
        let registry = try LocalRegistry()
        let (tokens, port) = try proxy(registry)
        defer { kill(tokens.pid, SIGKILL); _ = tokens.wait() }
        let env = try EngineEnvironment()
        let ref = "127.0.0.1:\(port)/berth/bb:tok"
        #expect(try env.berth(["tag", "busybox", ref]).code == 0)
        let refused = try env.berth(["push", ref])
        #expect(refused.code == 1 && refused.stderr.contains("authentication required"), "\(refused.stderr)")
        let wrong = try env.berth(["push", "--username", "berth", "--password", "nope", ref])
        #expect(wrong.code == 1 && wrong.stderr.contains("credentials refused"), "\(wrong.stderr)")
        let pushed = try env.berth(["push", "--username", "berth", "--password", "s3cret", ref])
        #expect(pushed.code == 0 && pushed.stdout.contains("Pushed"), "\(pushed.stderr)")
        let second = try EngineEnvironment(bootstrap: false)
        let pulled = try second.berth(["pull", "--username", "berth", "--password", "s3cret", ref])
        #expect(pulled.code == 0, "\(pulled.stderr)")
        #expect(try second.store.resolve(ref).manifest == env.store.resolve(ref).manifest)
        let scopes = try run("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/scopes"]).stdout
        #expect(scopes.contains("scope=repository:berth/bb:pull,push") && scopes.contains("scope=repository:berth/bb:pull&scope"), "\(scopes)")
    }

    @Test("registry down, unknown repository, corrupt blob: one clear error, nothing stored, stale ingest cleaned")
    func failures() throws {
        let env = try EngineEnvironment(bootstrap: false)
        let down = try env.berth(["pull", "127.0.0.1:9/x/y:1"])
        #expect(down.code == 1 && down.stderr.contains("Couldn't connect") || down.stderr.contains("connect"), "\(down.stderr)")
        let registry = try LocalRegistry()
        let missing = try env.berth(["pull", registry.address + "/no/such:tag"])
        #expect(missing.code == 1 && missing.stderr.contains("not found"), "\(missing.stderr)")

        let pusher = try EngineEnvironment()
        let ref = registry.address + "/corrupt/bb:1"
        #expect(try pusher.berth(["tag", "busybox", ref]).code == 0)
        #expect(try pusher.berth(["push", ref]).code == 0)
        let layer = try pusher.store.manifest(of: pusher.store.resolve(ref)).layers[0].digest
        var bytes = try Data(contentsOf: URL(fileURLWithPath: registry.blobPath(layer)))
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: registry.blobPath(layer)))
        // a partial download left by a pull that was killed (its pid is gone)
        try FileManager.default.createDirectory(atPath: env.data + "/ingest", withIntermediateDirectories: true)
        try "partial".write(toFile: env.data + "/ingest/999999999-1", atomically: true, encoding: .utf8)
        let corrupt = try env.berth(["pull", ref])
        #expect(corrupt.code == 1 && corrupt.stderr.contains("hashes to"), "\(corrupt.stderr)")
        #expect(try env.berth(["images", "-q"]).stdout.isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: env.data + "/ingest")) ?? []).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: env.store.content.path(layer)))
    }
}
