import Foundation
import Testing
import BerthImage
import BerthSys

@Suite("berth build: Containerfile instructions, RUN in berth containers, the layer cache", .serialized,
       .enabled(if: Host.canRunContainers, Host.reason))
struct BuildTests {
    /// A build context with a file, a directory and a gzip'd tar.
    func context(_ env: EngineEnvironment, _ containerfile: String) throws -> String {
        let dir = env.dir + "/ctx-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try "hello\n".write(toFile: dir + "/hello.txt", atomically: true, encoding: .utf8)
        try "in sub\n".write(toFile: dir + "/sub/a", atomically: true, encoding: .utf8)
        #expect(try run("/bin/tar", ["-czf", dir + "/arch.tgz", "-C", dir + "/sub", "."]).code == 0)
        try containerfile.write(toFile: dir + "/Containerfile", atomically: true, encoding: .utf8)
        return dir
    }

    func build(_ env: EngineEnvironment, _ args: [String]) throws -> Output {
        try env.berth(["build", "--cgroup-parent", env.cgroupParent] + args)
    }

    @Test("every instruction lands: files, whiteouts from RUN, env, workdir, user, cmd; the second build is cached")
    func singleStage() throws {
        let env = try EngineEnvironment()
        let ctx = try context(env, """
        FROM busybox
        ARG GREETING=hi
        ENV APP=/app MODE="two words"
        WORKDIR $APP
        COPY hello.txt .
        COPY sub ./sub/
        ADD arch.tgz /extracted/
        RUN echo "$GREETING from run" > /app/run.txt && rm /bin/vi && mkdir -p /var/cache && touch /var/cache/x
        USER nobody
        LABEL org.berth.test="yes"
        EXPOSE 8080
        CMD ["sh", "-c", "id -u; pwd; cat hello.txt run.txt sub/a /extracted/a; test -e /bin/vi || echo no-vi; echo $MODE"]
        """)
        let first = try build(env, ["-t", "built:1", "--build-arg", "GREETING=hey", ctx])
        #expect(first.code == 0, "\(first.stderr)")
        #expect(!first.stdout.contains("Using cache"))
        let out = try env.runContainer(["--rm", "built:1"])
        #expect(out.stdout == "65534\n/app\nhello\nhey from run\nin sub\nin sub\nno-vi\ntwo words\n", "\(out.stderr)")
        let image = try env.store.resolve("built:1")
        let config = try env.store.config(of: image)
        #expect(config.config?.User == "nobody" && config.config?.Labels?["org.berth.test"] == "yes")
        #expect(config.config?.ExposedPorts?.keys.sorted() == ["8080/tcp"])
        #expect(config.rootfs.diff_ids.count == image.chain.count && image.chain.count == 6)   // busybox + WORKDIR, 2×COPY, ADD, RUN
        // the RUN layer holds the whiteout for /bin/vi in its tar form too
        let runLayer = try env.store.manifest(of: image).layers.last!
        let list = try run("/bin/tar", ["-tzf", env.store.content.path(runLayer.digest)]).stdout
        #expect(list.contains("bin/.wh.vi") && list.contains("app/run.txt"))

        let second = try build(env, ["-t", "built:2", "--build-arg", "GREETING=hey", ctx])
        #expect(second.code == 0 && second.stdout.contains("Using cache"), "\(second.stderr)")
        #expect(try env.store.resolve("built:2").chain == image.chain)
        let changed = try build(env, ["-t", "built:3", "--build-arg", "GREETING=other", ctx])
        #expect(changed.code == 0)
        #expect(try env.store.resolve("built:3").chain.last != image.chain.last, "a changed ARG reruns the RUN step")
        env.expectNoLeaks()
    }

    @Test("stages: COPY --from another stage, --chown by name, --target")
    func multiStage() throws {
        let env = try EngineEnvironment()
        let ctx = try context(env, """
        FROM busybox AS base
        RUN echo made in base > /made.txt
        FROM busybox
        COPY --from=base /made.txt /final.txt
        COPY --chown=nobody:nogroup hello.txt /owned.txt
        CMD ["sh", "-c", "cat /final.txt; stat -c '%u:%g' /owned.txt"]
        """)
        #expect(try build(env, ["-t", "multi", ctx]).code == 0)
        #expect(try env.runContainer(["--rm", "multi"]).stdout == "made in base\n65534:65534\n")
        #expect(try build(env, ["-t", "base-only", "--target", "base", ctx]).code == 0)
        #expect(try env.runContainer(["--rm", "base-only", "cat", "/made.txt"]).stdout == "made in base\n")
        // images built FROM busybox share its layer: removing them keeps it, and busybox still runs
        let busybox = try env.store.resolve("busybox")
        #expect(try env.store.resolve("multi").chain.first == busybox.chain.first)
        #expect(try env.berth(["rmi", "multi", "base-only"]).code == 0)
        #expect(try env.berth(["image", "prune"]).code == 0)
        #expect(FileManager.default.fileExists(atPath: env.store.layerDirectory(busybox.chain[0])))
        #expect(try env.runContainer(["--rm", "busybox", "echo", "still here"]).stdout == "still here\n")
        env.expectNoLeaks()
    }

    @Test("a failing RUN, an unknown instruction, a missing source: one message, exit 1, no image, nothing left")
    func failures() throws {
        let env = try EngineEnvironment()
        let before = try env.berth(["images", "-q"]).stdout
        let failing = try context(env, "FROM busybox\nRUN echo partial > /p && exit 3\n")
        let f = try build(env, ["-t", "never", failing])
        #expect(f.code == 1 && f.stderr.contains("line 2") && f.stderr.contains("exit code 3"), "\(f.stderr)")
        let unknown = try context(env, "FROM busybox\nHEALTHCHECK CMD true\n")
        let u = try build(env, ["-t", "never", unknown])
        #expect(u.code == 1 && u.stderr.contains("line 2: HEALTHCHECK is not supported"), "\(u.stderr)")
        let missing = try context(env, "FROM busybox\nCOPY nothere /x\n")
        let m = try build(env, ["-t", "never", missing])
        #expect(m.code == 1 && m.stderr.contains("nothere: no such file in the build context"), "\(m.stderr)")
        let escape = try context(env, "FROM busybox\nCOPY ../../../etc/passwd /x\n")
        let e = try build(env, ["-t", "never", escape])
        #expect(e.code == 1 && e.stderr.contains("outside the build context"), "\(e.stderr)")
        #expect(try env.berth(["images", "-q"]).stdout == before)
        env.expectNoLeaks()
    }
}
