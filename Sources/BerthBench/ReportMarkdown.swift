/// A target an issue sets, checked against a ratio of this run.
public struct Target: Sendable {
    public var what: String
    public var ratio: String
    public var limit: Double
    public var value: Ratio?
    /// "" for a ratio; " ns" for a difference in nanoseconds.
    public var unit = ""
    public var met: Bool? { value.map { $0.value <= limit } }

    /// The cells after the name: ratio, limit, measured, CI, verdict.
    var cells: [String] {
        guard let v = value, let met else { return [] }
        let digits = unit.isEmpty ? 3 : 1
        return [ratio, "≤ \(f(limit))\(unit)", f(v.value, digits) + unit, "\(f(v.low, digits)) – \(f(v.high, digits))", met ? "met" : "not met"]
    }
}

extension BenchResults {
    /// The speed targets the issues set, as ratios measured side by side.
    public var targets: [Target] {
        var out: [Target] = []
        if let s = startup {
            out.append(Target(what: "startup: berth vs crun", ratio: "berth/crun", limit: 0.5, value: s.ratios["berth/crun"]))
            out.append(Target(what: "startup: limits cost little", ratio: "berth+limits/berth", limit: 1.1, value: s.ratios["berth+limits/berth"]))
            out.append(Target(what: "startup: default seccomp (cache hit) costs little", ratio: "berth+seccomp/berth", limit: 1.1, value: s.ratios["berth+seccomp/berth"]))
        }
        if let y = syscalls {
            for op in ["getpid", "read", "write"] {
                out.append(Target(what: "\(op): default profile vs one-rule filter", ratio: "seccomp default / seccomp one-rule",
                                  limit: 1.05, value: y.ratios["seccomp default / seccomp one-rule"]?[op]))
                out.append(Target(what: "\(op): container (no seccomp) vs host", ratio: "container / host",
                                  limit: 1.02, value: y.ratios["container / host"]?[op]))
            }
            out.append(Target(what: "getpid: probes attached, untracked host process", ratio: "host + probes − host",
                              limit: 120, value: y.differences?["host + probes − host"]?["getpid"], unit: " ns"))
            out.append(Target(what: "getpid: syscall counter only (trace --counts), untracked host process", ratio: "host + counts only − host",
                              limit: 120, value: y.differences?["host + counts only − host"]?["getpid"], unit: " ns"))
            out.append(Target(what: "getpid: probes attached, tracked container (counts + latency)", ratio: "container + probes − container",
                              limit: 250, value: y.differences?["container + probes − container"]?["getpid"], unit: " ns"))
        }
        return out
    }

    /// report.md: what a person reads first.
    public func markdown() -> String {
        var md = "# berth benchmark report\n\n"
        md += "Run \(started), profile `\(profile)`, on \(environment.cpuModel) (\(environment.cpus) CPUs), "
        md += "kernel \(environment.kernel), cgroups \(environment.cgroupMode).\n\n"
        md += "Versions: " + environment.versions.sorted { $0.key < $1.key }.map { "\($0.key) `\($0.value)`" }.joined(separator: ", ") + "\n\n"
        let t = targets.filter { $0.value != nil }
        if !t.isEmpty {
            md += "## Targets\n\n| target | ratio | limit | measured | 95% CI | |\n|---|---|---:|---:|---|---|\n"
            for x in t {
                var cells = x.cells
                if x.met == false { cells[4] = "**not met**" }
                md += "| \(x.what) | " + cells.joined(separator: " | ") + " |\n"
            }
            md += "\n"
        }
        if let s = startup { md += startupMarkdown(s) }
        if let y = syscalls { md += syscallMarkdown(y) }
        if let q = quota { md += quotaMarkdown(q) }
        if let d = density { md += densityMarkdown(d) }
        if let i = images { md += imagesMarkdown(i) }
        if let n = network { md += networkMarkdown(n) }
        if let e = engines { md += enginesMarkdown(e) }
        return md
    }

    func startupMarkdown(_ s: StartupResult) -> String {
        var md = "## Startup: `run` of /bin/true\n\n"
        md += "\(s.iterations) interleaved iterations (after \(s.warmup) warm-up), shuffled order per iteration, wall time from spawn to exit. "
        md += "`berth+X` / `berth-X` change one factor of the baseline `berth` (which has a network namespace, no seccomp, a plain directory rootfs, no user namespace, no limits).\n\n"
        md += "| runtime | median ms | p95 ms | p99 ms | min ms | failures |\n|---|---:|---:|---:|---:|---:|\n"
        for name in s.runtimes.keys.sorted(by: { runtimeOrder($0) < runtimeOrder($1) }) {
            let r = s.runtimes[name]!
            md += "| \(name) | \(f(r.summary.median)) | \(f(r.summary.p95)) | \(f(r.summary.p99)) | \(f(r.summary.min)) | \(r.failures) |\n"
        }
        if !s.ratios.isEmpty {
            md += "\n| ratio (paired, per iteration) | median | 95% CI |\n|---|---:|---|\n"
            md += ratioRows(s.ratios)
        }
        if !s.berthPhases.isEmpty {
            md += "\nberth's own phases (from the timestamps it records, median ms; `child:` phases are inside clone-to-ready):\n\n| phase | ms |\n|---|---:|\n"
            for phase in phaseOrder { if let v = s.berthPhases[phase] { md += "| \(phase) | \(f(v, 3)) |\n" } }
        }
        if let x = s.execCrossCheck {
            md += "\nCross-check with the probes: in \(x.microseconds.count) traced runs, berth recorded the container's exec "
            md += "\(f(x.median, 1)) µs (median; range \(f(x.microseconds.min() ?? 0, 1)) – \(f(x.microseconds.max() ?? 0, 1))) after the kernel's exec event for it.\n"
        }
        if !s.notes.isEmpty { md += "\nNotes:\n" + s.notes.map { "- \($0)\n" }.joined() }
        return md + "\n"
    }

    func syscallMarkdown(_ y: SyscallResult) -> String {
        var md = "## Syscall cost: ns per call\n\n"
        md += "The static helper times \(y.calls) calls of getpid, read, write and clock_gettime and a tenth as many of the dearer open-close, stat and mmap-munmap "
        md += "(the fastest of 500-call batches, five times the calls in all, on one CPU), \(y.rounds) interleaved rounds; medians over rounds. "
        md += "clock_gettime goes through the vDSO (no syscall): the control.\n\n"
        let variants = y.variantOrder.filter { y.nanoseconds[$0] != nil }
        md += "| operation | " + variants.joined(separator: " | ") + " |\n|---|" + variants.map { _ in "---:|" }.joined() + "\n"
        for op in y.operations {
            md += "| \(op) | " + variants.map { v in y.nanoseconds[v]?[op].map { f($0.summary.median, 1) } ?? "–" }.joined(separator: " | ") + " |\n"
        }
        if !y.ratios.isEmpty {
            md += "\n| ratio (paired per round) | " + y.operations.joined(separator: " | ") + " |\n|---|" + y.operations.map { _ in "---:|" }.joined() + "\n"
            for (k, per) in y.ratios.sorted(by: { $0.key < $1.key }) {
                md += "| \(k) | " + y.operations.map { op in per[op].map { f($0.value, 3) } ?? "–" }.joined(separator: " | ") + " |\n"
            }
        }
        if let d = y.differences, !d.isEmpty {
            md += "\nWhat berth's eBPF probes add per call (paired per round, ns; the probes are attached only for the `+` variants, "
            md += "the host process is not tracked, the container is tracked with syscall counts and latency histograms; `counts only` attaches just the sys_enter counter; "
            md += "`host + empty programs` is the floor: empty programs on sys_enter and sys_exit, what any syscall tracer pays on this kernel):\n\n"
            md += "| difference | " + y.operations.joined(separator: " | ") + " |\n|---|" + y.operations.map { _ in "---:|" }.joined() + "\n"
            for (k, per) in d.sorted(by: { $0.key < $1.key }) {
                md += "| \(k) | " + y.operations.map { op in per[op].map { "\(f($0.value, 1)) [\(f($0.low, 1)), \(f($0.high, 1))]" } ?? "–" }.joined(separator: " | ") + " |\n"
            }
        }
        if let cost = y.probeSelfCost, !cost.isEmpty {
            md += "\nProbe self-cost over one tracked run (kernel BPF statistics; every syscall on the machine runs the syscall programs):\n\n"
            md += "| program | runs | ns per run | total ms |\n|---|---:|---:|---:|\n"
            for c in cost where c.runCount > 0 {
                md += "| \(c.program) | \(c.runCount) | \(f(c.nanosecondsPerRun, 1)) | \(f(Double(c.runTimeNanoseconds) / 1e6, 3)) |\n"
            }
        }
        if !y.notes.isEmpty { md += "\nNotes:\n" + y.notes.map { "- \($0)\n" }.joined() }
        return md + "\n"
    }

    func quotaMarkdown(_ q: QuotaResult) -> String {
        var md = "## Quotas: requested vs achieved\n\n"
        if !q.cpu.isEmpty {
            md += "CPU quota (period 100 ms), a multi-threaded spinner; achieved = CPU-seconds per wall-second.\n\n"
            md += "| requested CPUs | achieved | error | periods | throttled |\n|---:|---:|---:|---:|---:|\n"
            for p in q.cpu { md += "| \(f(p.requested)) | \(f(p.achieved, 3)) | \(f(p.error * 100, 1)) % | \(p.periods) | \(p.throttledPeriods) |\n" }
            md += "\n"
        }
        if !q.memory.isEmpty {
            md += "Memory limit (swap limited to the same), a workload touching 1 MiB at a time up to 4× the limit.\n\n"
            md += "| limit MiB | largest allocation that survived MiB | exit | OOM kills | peak usage MiB |\n|---:|---:|---:|---:|---:|\n"
            for p in q.memory {
                md += "| \(p.limitMiB) | \(p.largestAllocationMiB) | \(p.exitCode) | \(p.oomKills) | \(f(Double(p.peakBytes) / 1048576, 1)) |\n"
            }
            md += "\n"
        }
        if !q.pids.isEmpty {
            md += "| pids limit | processes at once | first fork error |\n|---:|---:|---|\n"
            for p in q.pids { md += "| \(p.limit) | \(p.processes) | \(p.firstError) |\n" }
            md += "\n"
        }
        if let s = q.shares {
            md += "CPU shares \(s.shares[0]):\(s.shares[1]), two spinners pinned to CPU 0: the first got \(f(s.achievedFraction * 100, 1)) % "
            md += "(expected \(f(s.expectedFraction * 100, 1)) %; CPU-seconds \(f(s.cpuSeconds[0], 3)) vs \(f(s.cpuSeconds[1], 3))).\n\n"
        }
        if !q.notes.isEmpty { md += "Notes:\n" + q.notes.map { "- \($0)\n" }.joined() + "\n" }
        return md
    }

    func densityMarkdown(_ d: DensityResult) -> String {
        var md = "## Density: N detached containers started at once\n\n"
        md += "Each runs `sleep`; machine memory is /proc/meminfo's in-use memory (MemTotal − MemFree − Buffers − Cached − SReclaimable) before vs 1.5 s after the start, "
        md += "the cgroup-charged figure what the containers' memory cgroups account.\n\n"
        md += "| N | started | total ms | per container median ms | p95 ms | machine memory per container MiB | cgroup-charged per container MiB | teardown ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for p in d.points {
            md += "| \(p.containers) | \(p.started) | \(f(p.totalMilliseconds, 1)) | \(f(p.perContainer.median, 1)) | \(f(p.perContainer.p95, 1)) | "
            md += "\(f(p.memoryPerContainerBytes / 1048576, 2)) | \(f(p.chargedPerContainerBytes / 1048576, 2)) | \(f(p.teardownMilliseconds, 1)) |\n"
        }
        for p in d.points { if let e = p.firstError { md += "\n- N=\(p.containers): \(e)" } }
        return md + "\n"
    }

    func imagesMarkdown(_ i: ImageResult) -> String {
        var md = "## Images: layer unpack\n\n"
        md += "One layer of \(i.files) files (\(f(Double(i.layerBytes) / 1_048_576, 1)) MiB of content from \(i.sources.joined(separator: ", ")); "
        md += "tar \(f(Double(i.plainBytes) / 1_048_576, 1)) MiB, gzip'd \(f(Double(i.compressedBytes) / 1_048_576, 1)) MiB), unpacked \(i.rounds) times per variant, interleaved, on \(i.filesystem == "tmpfs" ? "a tmpfs (so the disk's writeback does not set the pace)" : i.filesystem + " filesystem"). "
        md += "berth's time runs from the blob in its store to the layer record: the blob's digest, gunzip, the diff id's digest, entries written with openat2, whiteouts converted. "
        md += "tar is GNU tar extracting the same file (`tar -xzf` runs gzip in a second process). MB/s is file content over the median time.\n\n"
        md += "| variant | median s | p95 s | MB/s |\n|---|---:|---:|---:|\n"
        for v in ImageResult.variants {
            guard let s = i.seconds[v] else { continue }
            md += "| \(v) | \(f(s.median, 3)) | \(f(s.p95, 3)) | \(f(i.megabytesPerSecond[v] ?? 0, 0)) |\n"
        }
        md += "\n| ratio (time) | median | 95% CI |\n|---|---:|---|\n"
        md += ratioRows(i.ratios)
        if let overlay = startup?.ratios["berth+overlay/berth"] {
            md += "| overlay rootfs vs bind rootfs at startup (berth+overlay/berth, from the startup scenario) | \(f(overlay.value, 3)) | \(f(overlay.low, 3)) – \(f(overlay.high, 3)) |\n"
        }
        return md + "\n"
    }

    func networkMarkdown(_ n: NetworkResult) -> String {
        var md = "## Network: bridge setup and traffic\n\n"
        md += "A user bridge network (\(n.subnet)). Setup of one container's place on it, \(n.setups) times: its namespace file (nsfs bind mount), "
        md += "an address from the IPAM under its lock, the veth pair made with its peer inside the namespace, lo and eth0 up with the address and "
        md += "default route (netlink in the namespace), and one published port's DNAT rule (libnftables); then the teardown of all of it.\n\n"
        md += "| phase | median ms | p95 ms |\n|---|---:|---:|\n"
        for p in NetworkResult.phases { if let s = n.setupMilliseconds[p] { md += "| \(p) | \(f(s.median, 3)) | \(f(s.p95, 3)) |\n" } }
        if let berth = startup?.runtimes["berth"]?.summary.median, let total = n.setupMilliseconds["setup total"]?.median, berth > 0 {
            md += "\nA bridge network adds \(f(total, 2)) ms to a container's start, \(f(total / berth * 100, 0))% of berth's median `run` of /bin/true (\(f(berth, 2)) ms).\n"
        }
        md += "\nTraffic: \(n.rounds) rounds, paths in shuffled order each round; per round \(n.megabytes) MiB streamed over one TCP connection "
        md += "and \(n.exchanges) 64-byte request/response exchanges (TCP_NODELAY), whose median round trip is the round's latency. "
        md += "The ends are sockets made inside the containers' namespaces (container↔host: the host end listens on the bridge's address).\n\n"
        md += "| path | MB/s (median) | MB/s p5 | round trip µs (median) | round trip µs p95 |\n|---|---:|---:|---:|---:|\n"
        for p in NetworkBenchmark.paths {
            guard let t = n.megabytesPerSecond[p], let l = n.roundTripMicroseconds[p] else { continue }
            md += "| \(p) | \(f(t.median, 0)) | \(f(t.p5, 0)) | \(f(l.median, 1)) | \(f(l.p95, 1)) |\n"
        }
        md += "\n| ratio against loopback (above 1: slower) | median | 95% CI |\n|---|---:|---|\n"
        md += ratioRows(n.ratios)
        return md + "\n"
    }

    func enginesMarkdown(_ e: EngineResult) -> String {
        var md = "## Engines: `podman run --rm` and `ctr run --rm` of /bin/true\n\n"
        md += "The engine-level view of startup: podman (through conmon) and containerd's runc shim calling berth-runtime, crun or runc, "
        md += "\(e.iterations) times each after one warm-up, interleaved in a shuffled order; each engine has its own root in the work directory.\n\n"
        md += "| engine/runtime | median ms | p95 ms | failures |\n|---|---:|---:|---:|\n"
        for (name, s) in e.runs.sorted(by: { $0.key < $1.key }) {
            md += "| \(name) | \(f(s.summary.median, 1)) | \(f(s.summary.p95, 1)) | \(s.failures) |\n"
        }
        if !e.ratios.isEmpty {
            md += "\n| ratio | median | 95% CI |\n|---|---:|---|\n"
            md += ratioRows(e.ratios)
        }
        for n in e.notes { md += "\n- \(n)" }
        return md + "\n"
    }

    /// `| name | median | low – high |` rows of a ratio table, by name.
    func ratioRows(_ ratios: [String: Ratio]) -> String {
        ratios.sorted { $0.key < $1.key }.map { "| \($0.key) | \(f($0.value.value, 3)) | \(f($0.value.low, 3)) – \(f($0.value.high, 3)) |\n" }.joined()
    }
}
