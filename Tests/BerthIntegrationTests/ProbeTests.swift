import Foundation
import Testing
import BerthOCI
import BerthRuntime

/// berth trace on the real kernel: what the probes count and report for a container
/// traced from its first instruction (org.berth.trace.wait), and that nothing of
/// berth stays in the kernel afterwards.
@Suite("probes: berth trace and berth top with eBPF", .enabled(if: Host.canRunContainers, Host.reason), .enabled(if: Host.probesRun, Host.probesReason))
struct ProbeTests {
    /// One trace: its JSON lines split into events and the summary.
    struct Trace {
        var events: [[String: Any]] = []
        var summary: [String: Any] = [:]
        var stderr = ""
        var code: Int32 = 0

        init(_ out: Output) {
            code = out.code
            stderr = out.stderr
            for line in out.stdout.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                if object["type"] as? String == "summary" { summary = object } else if let e = object["event"] as? [String: Any] { events.append(e) }
            }
        }

        func events(_ kind: String) -> [[String: Any]] { events.filter { $0["kind"] as? String == kind } }
        var container: [String: Any] { ((summary["containers"] as? [[String: Any]])?.first) ?? [:] }
        var snapshot: [String: Any] { container["snapshot"] as? [String: Any] ?? [:] }
        func syscall(_ name: String) -> [String: Any]? {
            (snapshot["syscalls"] as? [[String: Any]])?.first { $0["name"] as? String == name }
        }
        func count(_ key: String) -> Int { snapshot[key] as? Int ?? -1 }
    }

    /// A container that waits for its tracer, traced by `berth trace ARGS` in the
    /// background; `whileAttached` runs once the trace counts it, before it starts.
    func traced(_ env: TestEnvironment, id: String, args: [String], traceArgs: [String] = ["--json"],
                adjust: (inout Spec) -> Void = { _ in }, whileAttached: () -> Void = {}) throws -> (Trace, Output) {
        var spec = env.spec(id: id, args: args)
        spec.annotations = [Tracing.waitAnnotation: "60"]
        adjust(&spec)
        #expect(try env.runtime(["create", "--bundle", try env.bundle(spec), id]).code == 0)
        let trace = try spawn(Package.binary("berth"), ["trace", "--root", env.stateRoot] + traceArgs + [id])
        let marker = env.stateRoot + "/" + id + "/tracer"
        #expect(env.eventually(60) { FileManager.default.fileExists(atPath: marker) }, "the tracer never marked the container")
        whileAttached()
        let start = try env.runtime(["start", id])
        #expect(start.code == 0, "\(start.stderr)")
        let out = trace.wait(timeout: 120)
        return (Trace(out), start)
    }

    /// Nothing of the trace is left in the kernel: its programs, links and maps are
    /// gone. The kernel frees tracing programs after an RCU-tasks grace period, so
    /// "gone" is polled for, not expected the instant the tracer exits.
    func expectNothingLeft(_ trace: Trace, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let programs = trace.summary["programIDs"] as? [Int] ?? []
        let maps = trace.summary["mapIDs"] as? [Int] ?? []
        #expect(!programs.isEmpty && !maps.isEmpty, "the summary names the trace's programs and maps", sourceLocation: sourceLocation)
        func remaining() throws -> [String] {
            var left: [String] = []
            for id in programs where try run("/usr/sbin/bpftool", ["prog", "show", "id", String(id)]).code == 0 { left.append("program \(id)") }
            for id in maps where try run("/usr/sbin/bpftool", ["map", "show", "id", String(id)]).code == 0 { left.append("map \(id)") }
            let links = try run("/usr/sbin/bpftool", ["link", "list"]).stdout
            for id in programs where links.contains("prog \(id)\n") || links.contains("prog \(id) ") { left.append("link to program \(id)") }
            return left
        }
        let deadline = Date().addingTimeInterval(30)
        var left = try remaining()
        while !left.isEmpty && Date() < deadline {
            usleep(100_000)
            left = try remaining()
        }
        #expect(left.isEmpty, "still in the kernel 30 s after the trace ended: \(left)", sourceLocation: sourceLocation)
    }

    /// The end of every traced test: the kernel holds nothing of the trace, the
    /// container goes, and it leaves nothing behind.
    func finish(_ env: TestEnvironment, id: String, _ trace: Trace, sourceLocation: SourceLocation = #_sourceLocation) throws {
        try expectNothingLeft(trace, sourceLocation: sourceLocation)
        _ = try env.runtime(["delete", "--force", id])
        env.expectNoLeaks(id: id, sourceLocation: sourceLocation)
    }

    @Test("N getppid calls in a container count N for it, and a host process's calls are not counted")
    func syscallCounts() throws {
        let env = try TestEnvironment()
        let id = env.id("sysc")
        let n = 20_000
        let (trace, _) = try traced(env, id: id, args: ["berth-test-init", "syscalls", String(n)],
                                    traceArgs: ["--json", "--syscalls"], whileAttached: {
            // the host makes the same calls while the trace runs: none may count
            for _ in 0..<n { _ = Glibc.getppid() }
        })
        #expect(trace.code == 0, "\(trace.stderr)")
        let counted = try #require(trace.syscall("getppid"), "no getppid in \(trace.snapshot)")
        let count = counted["count"] as? Int ?? 0
        #expect(count >= n && count <= n + 20, "getppid counted \(count) for \(n) calls in the container")
        #expect((counted["timed"] as? Int ?? 0) >= n, "every call's latency is measured")
        let buckets = (counted["latency"] as? [String: Any])?["buckets"] as? [Int] ?? []
        #expect(buckets.reduce(0, +) >= n, "the latency histogram holds every call")
        let total = (trace.snapshot["syscalls"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
        #expect(total >= n && total < n + 400, "the container's total \(total) is its getppid calls plus a start's worth")
        #expect(trace.count("lostEvents") == 0)
        try finish(env, id: id, trace)
    }

    @Test("before Linux 6.4 the run-queue probes are withheld, and the trace says so",
          .enabled(if: !Host.kernelAtLeast(6, 4), "this kernel runs them"))
    func runQueueWithheld() throws {
        let env = try TestEnvironment()
        let id = env.id("norunq")
        let (trace, _) = try traced(env, id: id, args: ["berth-test-init", "exit", "0"], traceArgs: ["--json", "--runq", "--exec"])
        #expect(trace.code == 0, "\(trace.stderr)")
        #expect(trace.stderr.contains("not traced on this kernel (needs Linux 6.4 or later): runq"), "\(trace.stderr)")
        try finish(env, id: id, trace)
    }

    @Test("--counts loads the syscall counter alone: calls are counted, none is timed")
    func countsOnly() throws {
        let env = try TestEnvironment()
        let id = env.id("counts")
        let (trace, _) = try traced(env, id: id, args: ["berth-test-init", "syscalls", "5000"], traceArgs: ["--json", "--counts"])
        #expect(trace.code == 0, "\(trace.stderr)")
        let counted = try #require(trace.syscall("getppid"))
        #expect((counted["count"] as? Int ?? 0) >= 5000)
        #expect(counted["timed"] as? Int == 0 && counted["latency"] == nil, "no sys_exit program, no latency: \(counted)")
        #expect((trace.summary["programIDs"] as? [Int])?.count == 1, "only the sys_enter counter is loaded")
        try finish(env, id: id, trace)
    }

    @Test("exec of a known binary gives one exec event with its filename and argv, and exits report their codes")
    func execAndExit() throws {
        let env = try TestEnvironment()
        let id = env.id("exec")
        let (trace, _) = try traced(env, id: id, args: ["/bin/sh", "-c", "/bin/true marker-arg; exit 3"], traceArgs: ["--json", "--exec"])
        #expect(trace.code == 0, "\(trace.stderr)")
        let execs = trace.events("exec")
        let shell = execs.filter { $0["filename"] as? String == "/bin/sh" }
        let child = execs.filter { $0["filename"] as? String == "/bin/true" }
        #expect(shell.count == 1, "the container's own execve is seen: \(execs)")
        #expect(child.count == 1, "one exec event for /bin/true: \(execs)")
        #expect(child.first?["arguments"] as? [String] == ["/bin/true", "marker-arg"])
        let exits = trace.events("exit")
        let trueExit = exits.first { $0["pid"] as? Int == child.first?["pid"] as? Int }
        #expect(trueExit?["exitCode"] as? Int == 0, "\(exits)")
        let shellExit = exits.first { $0["pid"] as? Int == shell.first?["pid"] as? Int }
        #expect(shellExit?["exitCode"] as? Int == 3, "\(exits)")
        #expect(trace.count("execs") == 2 && trace.count("forks") >= 1)
        try finish(env, id: id, trace)
    }

    @Test("a memory-limited container touching too much gives one OOM event naming the victim, though it exits at once")
    func oomKill() throws {
        let env = try TestEnvironment()
        let id = env.id("oom")
        let (trace, _) = try traced(env, id: id, args: ["berth-test-init", "alloc", "64"], traceArgs: ["--json", "--oom", "--exec"]) {
            $0.linux?.resources = .memory(limit: 32 << 20)
        }
        #expect(trace.code == 0, "\(trace.stderr)")
        let ooms = trace.events("oom")
        #expect(ooms.count == 1, "\(trace.events)")
        let victim = try #require(trace.events("exec").first?["pid"] as? Int)
        #expect(ooms.first?["pid"] as? Int == victim)
        #expect(ooms.first?["comm"] as? String == "berth-test-init")
        let usage = ooms.first?["memcgUsagePages"] as? Int ?? 0
        let pageKiB = Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
        #expect(usage * pageKiB >= 30 * 1024 && usage * pageKiB <= 33 * 1024, "memcg usage at the kill: \(usage) pages")
        #expect(trace.events("exit").first { $0["pid"] as? Int == victim }?["signal"] as? Int == 9)
        #expect(trace.count("oomKills") == 1)
        try finish(env, id: id, trace)
    }

    @Test("run-queue latency: more spinning threads than CPUs wait on the run queue, and the waits are measured",
          .enabled(if: Host.kernelAtLeast(6, 4), "run-queue probes need Linux 6.4 (task storage under the run-queue lock)"))
    func runQueue() throws {
        let env = try TestEnvironment()
        let id = env.id("runq")
        let threads = 4
        let (trace, _) = try traced(env, id: id, args: ["berth-test-init", "spin-threads", String(threads), "0.5"],
                                    traceArgs: ["--json", "--runq", "--exec"]) {
            $0.linux?.resources = .cpu(cpus: "0")
        }
        #expect(trace.code == 0, "\(trace.stderr)")
        let runq = (trace.snapshot["runQueue"] as? [String: Any])?["buckets"] as? [Int] ?? []
        #expect(runq.reduce(0, +) > threads, "waits measured: \(runq)")
        // 4 threads on one CPU for 0.5 s: some waits are at least a scheduler slice (> 1 ms)
        #expect(runq.dropFirst(20).reduce(0, +) > 0, "no wait over 1 ms: \(runq)")
        #expect(trace.count("threads") >= threads)
        try finish(env, id: id, trace)
    }

    @Test("berth top reports a running container's CPU, memory, pids and syscalls per second")
    func top() throws {
        let env = try TestEnvironment()
        let id = env.id("top")
        let spec = env.spec(id: id, args: ["berth-test-init", "spin", "30"])
        #expect(try env.runtime(["run", "--detach", "--bundle", try env.bundle(spec), id]).code == 0)
        let out = try run(Package.binary("berth"), ["top", "--root", env.stateRoot, "--json", "--interval", "0.5", "--iterations", "2"])
        #expect(out.code == 0, "\(out.stderr)")
        let rows = out.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["container"] as? String == id }
        #expect(rows.count == 2, "one row per refresh: \(out.stdout)")
        let costs = out.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["type"] as? String == "probe-cost" }
        #expect(costs.count == 2 && costs.allSatisfy { ($0["runs"] as? Int ?? 0) > 0 }, "the probes' own cost each refresh: \(costs)")
        for row in rows {
            // under emulation, with every other suite running beside it, a spinner gets well under a CPU
            #expect((row["cpuPercent"] as? Double ?? 0) > (Host.emulated ? 10 : 50), "a spinning container uses a CPU: \(row)")
            #expect((row["pids"] as? Int ?? 0) >= 1)
            #expect((row["memoryWorkingSetBytes"] as? Int ?? 0) > 0)
        }
        _ = try env.runtime(["delete", "--force", id])
        env.expectNoLeaks(id: id)
    }

    @Test("bad input: an unknown container, a stopped one, a tracer that never comes — one message each, nothing left")
    func badInput() throws {
        let env = try TestEnvironment()
        let unknown = try run(Package.binary("berth"), ["trace", "--root", env.stateRoot, "--json", "no-such-container"])
        #expect(unknown.code == 1)
        #expect(unknown.stderr.contains("\"no-such-container\" does not exist"), "\(unknown.stderr)")
        #expect(unknown.stdout.isEmpty)
        let badDuration = try run(Package.binary("berth"), ["trace", "--duration", "soon", "x"])
        #expect(badDuration.code == 2 && badDuration.stderr.contains("--duration \"soon\""))

        let done = env.id("stopped")
        #expect(try env.runtime(["run", "--keep", "--bundle", try env.bundle(env.spec(id: done, args: ["berth-test-init", "exit", "0"])), done]).code == 0)
        let stopped = try run(Package.binary("berth"), ["trace", "--root", env.stateRoot, done])
        #expect(stopped.code == 1 && stopped.stderr.contains("\"\(done)\" is stopped"), "\(stopped.stderr)")
        #expect(try env.runtime(["delete", done]).code == 0)
        env.expectNoLeaks(id: done)

        // asks for a tracer, none comes: start fails and says why, the container stays created
        let id = env.id("notracer")
        var spec = env.spec(id: id, args: ["berth-test-init", "exit", "0"])
        spec.annotations = [Tracing.waitAnnotation: "0.2"]
        #expect(try env.runtime(["create", "--bundle", try env.bundle(spec), id]).code == 0)
        let start = try env.runtime(["start", id])
        #expect(start.code == 1)
        #expect(start.stderr.contains("waits for a tracer"), "\(start.stderr)")
        #expect(try env.state(id)["status"] as? String == "created")
        #expect(try env.runtime(["delete", "--force", id]).code == 0)
        env.expectNoLeaks(id: id)

        let bad = env.id("badwait")
        var badSpec = env.spec(id: bad, args: ["berth-test-init", "exit", "0"])
        badSpec.annotations = [Tracing.waitAnnotation: "forever"]
        let run = try env.runtime(["run", "--bundle", try env.bundle(badSpec), bad])
        #expect(run.code == 1 && run.stderr.contains("org.berth.trace.wait=\"forever\""), "\(run.stderr)")
        env.expectNoLeaks(id: bad)
    }

    @Test("a trace stopped by SIGINT prints its summary and unloads everything")
    func interrupted() throws {
        let env = try TestEnvironment()
        let id = env.id("sigint")
        let spec = env.spec(id: id, args: ["berth-test-init", "sleep", "30"])
        #expect(try env.runtime(["run", "--detach", "--bundle", try env.bundle(spec), id]).code == 0)
        let trace = try spawn(Package.binary("berth"), ["trace", "--root", env.stateRoot, "--json", id])
        #expect(env.eventually(60) { FileManager.default.fileExists(atPath: env.stateRoot + "/" + id + "/tracer") })
        kill(trace.pid, SIGINT)
        let result = Trace(trace.wait(timeout: 60))
        #expect(result.code == 0, "\(result.stderr)")
        #expect(result.container["id"] as? String == id)
        #expect(!FileManager.default.fileExists(atPath: env.stateRoot + "/" + id + "/tracer"), "the tracer's mark goes with it")
        try finish(env, id: id, result)
    }
}
