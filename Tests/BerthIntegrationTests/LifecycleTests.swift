import Foundation
import Testing
import BerthOCI
import CBerthLaunch

@Suite("lifecycle: state machine, signals, exec, pause, hooks, terminal", .enabled(if: Host.canRunContainers, Host.reason))
struct LifecycleTests {
    @Test("create, start, kill and delete follow the runtime spec's state machine")
    func stateMachine() throws {
        let env = try TestEnvironment()
        let id = env.id("states")
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "sleep", "60"]))
        let pidFile = env.dir + "/pid"
        #expect(try env.runtime(["create", "--bundle", bundle, "--pid-file", pidFile, id]).code == 0)
        var state = try env.state(id)
        #expect(state["status"] as? String == "created")
        let pid = try #require(state["pid"] as? Int)
        #expect(readFile(pidFile) == String(pid))
        #expect(try env.runtime(["list", "-q"]).stdout.contains(id))

        #expect(try env.runtime(["start", id]).code == 0)
        state = try env.state(id)
        #expect(state["status"] as? String == "running")
        let again = try env.runtime(["start", id])
        #expect(again.code != 0)
        #expect(again.stderr.contains("must be created"))
        let early = try env.runtime(["delete", id])
        #expect(early.code != 0, "delete of a running container must fail without --force")
        #expect(early.stderr.contains("running"))
        #expect(try env.state(id)["status"] as? String == "running", "a refused delete must not touch the container")

        #expect(try env.runtime(["kill", id, "KILL"]).code == 0)
        #expect(try env.eventually { try env.state(id)["status"] as? String == "stopped" })
        let killStopped = try env.runtime(["kill", id])
        #expect(killStopped.code != 0)
        #expect(killStopped.stderr.contains("stopped"))
        #expect(try env.runtime(["delete", id]).code == 0)
        let gone = try env.runtime(["state", id])
        #expect(gone.code != 0)
        #expect(gone.stderr.contains("does not exist"))
        env.expectNoLeaks(id: id, pid: Int32(pid))
    }

    @Test("run --keep: the stopped container keeps its state and cgroup until delete, and its final stats stay readable")
    func runKeep() throws {
        let env = try TestEnvironment()
        let id = env.id("keep")
        var spec = env.spec(id: id, args: ["berth-test-init", "alloc", "8", "exit", "3"])
        var memory = Resources.Memory()
        memory.limit = 64 << 20
        spec.linux?.resources?.memory = memory
        let out = try env.runtime(["run", "--keep", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 3)
        #expect(try env.state(id)["status"] as? String == "stopped")
        let stats = try env.runtime(["events", "--stats", id])
        #expect(stats.code == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains("\"type\":\"stats\""))
        #expect(stats.stdout.contains("\"limit\":\(64 << 20)"), "the memory limit reads back: \(stats.stdout.prefix(400))")
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("delete of a created container kills it (it never ran anything)")
    func deleteCreated() throws {
        let env = try TestEnvironment()
        let id = env.id("created")
        #expect(try env.runtime(["create", "--bundle", try env.bundle(env.spec(id: id, args: ["berth-test-init", "exit", "0"])), id]).code == 0)
        let pid = try #require(env.state(id)["pid"] as? Int)
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id, pid: Int32(pid))
    }

    @Test("kill delivers the named signal to the container process")
    func killSignal() throws {
        let env = try TestEnvironment()
        let id = env.id("kill")
        let out = try env.outDirectory()
        var spec = env.spec(id: id, args: ["berth-test-init", "wait-signal", "/out/signal"])
        spec.mounts!.append(Mount(destination: "/out", type: "bind", source: out, options: ["rbind", "rw"]))
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(spec), id]).code == 0)
        #expect(env.eventually { readFile(out + "/signal") == "ready" })
        #expect(try env.runtime(["kill", id, "SIGUSR1"]).code == 0)
        #expect(env.eventually { readFile(out + "/signal") == "signal 10" })
        #expect(try env.eventually { try env.state(id)["status"] as? String == "stopped" })
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("kill --all signals every process of the container")
    func killAll() throws {
        let env = try TestEnvironment()
        let id = env.id("killall")
        let bundle = try env.bundle(env.spec(id: id, args: ["berth-test-init", "fork", "3", "sleep", "60"]))
        #expect(try env.runtime(["run", "-d", "--bundle", bundle, id]).code == 0)
        #expect(try env.eventually { try env.runtime(["ps", "--format", "json", id]).stdout.split(separator: ",").count == 4 })
        #expect(try env.runtime(["kill", "--all", id, "KILL"]).code == 0)
        #expect(try env.eventually { try env.runtime(["ps", "--format", "json", id]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[]" })
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("exec enters the container's namespaces and cgroups and returns the exit code")
    func exec() throws {
        let env = try TestEnvironment()
        let id = env.id("exec")
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(env.spec(id: id, args: ["berth-test-init", "sleep", "60"])), id]).code == 0)
        let pid = try #require(env.state(id)["pid"] as? Int)
        let out = try env.runtime(["exec", id, "berth-test-init", "ns", "pid", "ns", "net", "ns", "mnt", "ns", "uts", "hostname", "procs", "exit", "7"])
        #expect(out.code == 7, "\(out.stderr)")
        for kind in ["pid", "net", "mnt", "uts"] {
            #expect(out.value("ns \(kind)") == readLinkPath("/proc/\(pid)/ns/\(kind)"), "\(kind)")
        }
        #expect(out.value("hostname") == "berth-test")
        #expect(out.value("procs") == "2", "init and the exec'd process")

        let pidFile = env.dir + "/exec.pid"
        #expect(try env.runtime(["exec", "--detach", "--pid-file", pidFile, id, "berth-test-init", "sleep", "30"]).code == 0)
        let execPid = try #require(Int(readFile(pidFile)))
        #expect(readFile("/proc/\(execPid)/cgroup") == readFile("/proc/\(pid)/cgroup"), "exec'd process is in the container's cgroups")
        let ps = try env.runtime(["ps", "--format", "json", id])
        #expect(ps.stdout.contains(String(execPid)))
        let missing = try env.runtime(["exec", id, "/no/such/binary"])
        #expect(missing.code != 0)
        #expect(missing.stderr.contains("/no/such/binary"))
        let deleted = try env.runtime(["delete", "--force", id])
        #expect(deleted.code == 0, "\(deleted.stderr)")
        env.expectNoLeaks(id: id, pid: Int32(execPid))
    }

    @Test("pause stops progress and resume restarts it")
    func pauseResume() throws {
        let env = try TestEnvironment()
        let id = env.id("pause")
        let out = try env.outDirectory()
        var spec = env.spec(id: id, args: ["berth-test-init", "count", "/out/n"])
        spec.mounts!.append(Mount(destination: "/out", type: "bind", source: out, options: ["rbind", "rw"]))
        #expect(try env.runtime(["run", "-d", "--bundle", try env.bundle(spec), id]).code == 0)
        #expect(env.eventually { (Int(readFile(out + "/n")) ?? 0) > 3 })
        #expect(try env.runtime(["pause", id]).code == 0)
        #expect(try env.state(id)["status"] as? String == "paused")
        let frozen = Int(readFile(out + "/n")) ?? -1
        usleep(300_000)
        #expect(Int(readFile(out + "/n")) == frozen, "the counter advanced while paused")
        #expect(try env.runtime(["pause", id]).code != 0, "pausing a paused container fails")
        #expect(try env.runtime(["resume", id]).code == 0)
        #expect(env.eventually { (Int(readFile(out + "/n")) ?? 0) > frozen + 3 })
        #expect(try env.state(id)["status"] as? String == "running")
        #expect(try env.runtime(["delete", "--force", id]).code == 0)
        env.expectNoLeaks(id: id)
    }

    @Test("hooks run in spec order, in their namespaces, with the state on stdin")
    func hooks() throws {
        let env = try TestEnvironment()
        let id = env.id("hooks")
        let out = try env.outDirectory()
        func hostHook(_ name: String) -> Hook {
            Hook(path: "/bin/sh", args: ["sh", "-c", "cat > \(out)/\(name).json; echo \(name) >> \(out)/log"])
        }
        var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
        spec.mounts!.append(Mount(destination: "/out", type: "bind", source: out, options: ["rbind", "rw"]))
        var hooks = Hooks()
        hooks.prestart = [hostHook("prestart")]
        hooks.createRuntime = [hostHook("createRuntime")]
        hooks.createContainer = [hostHook("createContainer")]
        // startContainer runs inside the container, after pivot_root: container paths
        hooks.startContainer = [Hook(path: "/bin/sh", args: ["sh", "-c", "cat > /out/startContainer.json; echo startContainer >> /out/log"])]
        hooks.poststart = [hostHook("poststart")]
        hooks.poststop = [hostHook("poststop")]
        spec.hooks = hooks
        let result = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(result.code == 0, "\(result.stderr)")
        #expect(readFile(out + "/log").split(separator: "\n") == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
        for name in ["createRuntime", "createContainer", "startContainer", "poststop"] {
            let json = readFile(out + "/\(name).json")
            #expect(json.contains("\"id\":\"\(id)\""), "\(name) stdin: \(json)")
        }
        #expect(readFile(out + "/createRuntime.json").contains("\"status\":\"creating\""))
        #expect(readFile(out + "/poststop.json").contains("\"status\":\"stopped\""))
        env.expectNoLeaks(id: id)
    }

    @Test("a failing poststart or poststop hook warns and the command still succeeds")
    func failingPostHooks() throws {
        let env = try TestEnvironment()
        let id = env.id("posthook")
        var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
        var hooks = Hooks()
        hooks.poststart = [Hook(path: "/bin/false")]
        hooks.poststop = [Hook(path: "/bin/sh", args: ["sh", "-c", "exit 4"])]
        spec.hooks = hooks
        let out = try env.runtime(["run", "--bundle", try env.bundle(spec), id])
        #expect(out.code == 0, "\(out.stderr)")
        #expect(out.stderr.contains("warning: poststart hook /bin/false exited with status 1"))
        #expect(out.stderr.contains("warning: poststop hook /bin/sh exited with status 4"))
        env.expectNoLeaks(id: id)
    }

    @Test("a hook that runs past its timeout is killed and fails create")
    func hookTimeout() throws {
        let env = try TestEnvironment()
        let id = env.id("hooktimeout")
        var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
        var hooks = Hooks()
        hooks.createRuntime = [Hook(path: "/bin/sleep", args: ["sleep", "30"], timeout: 1)]
        spec.hooks = hooks
        let out = try env.runtime(["create", "--bundle", try env.bundle(spec), id])
        #expect(out.code != 0)
        #expect(out.stderr.contains("createRuntime hook /bin/sleep timed out after 1 s"))
        env.expectNoLeaks(id: id)
    }

    @Test("process.terminal: the pty master arrives on the console socket")
    func consoleSocket() throws {
        let env = try TestEnvironment()
        let id = env.id("tty")
        var spec = env.spec(id: id, args: ["berth-test-init", "tty", "exit", "0"])
        spec.process?.terminal = true
        let socketPath = env.dir + "/console.sock"
        let listener = try UnixListener(path: socketPath)
        let bundle = try env.bundle(spec)
        let create = try env.runtime(["create", "--bundle", bundle, "--console-socket", socketPath, id])
        #expect(create.code == 0, "\(create.stderr)")
        let conn = accept(listener.fd, nil, nil)
        #expect(conn >= 0)
        let master = berth_recv_fd(conn)
        close(conn)
        #expect(master >= 0)
        defer { if master >= 0 { close(master) } }
        #expect(try env.runtime(["start", id]).code == 0)
        var text = ""
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !text.contains("tty: ") {
            let n = read(master, &buf, buf.count)
            if n <= 0 { break }
            text += String(decoding: buf[0..<n], as: UTF8.self)
        }
        #expect(text.contains("tty: /dev/pts/0"), "terminal output: \(text)")
        #expect(try env.eventually { try env.state(id)["status"] as? String == "stopped" })
        #expect(try env.runtime(["delete", id]).code == 0)
        env.expectNoLeaks(id: id)
    }
}

/// A listening Unix socket, closed and unlinked on deinit.
final class UnixListener {
    let fd: Int32
    let path: String
    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0, listen(fd, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
    }
    deinit { close(fd); unlink(path) }
}
