#if canImport(Glibc)
import Glibc
#endif
import CBerthLaunch
import BerthCgroups
import BerthOCI
import BerthSecurity
import BerthSys

/// Options of `create` and `run`.
public struct CreateOptions: Sendable {
    public var bundle: String
    public var pidFile: String?
    public var consoleSocket: String?
    /// A connected socket to send the pty master over, for in-process callers
    /// (a supervisor holding the other end of a socketpair); used instead of a path.
    public var consoleSocketFD: Int32?
    public var noPivot = false
    public var noNewKeyring = false
    public var preserveFDs = 0
    public init(bundle: String) { self.bundle = bundle }
}

/// Options of `exec`.
public struct ExecOptions: Sendable {
    public var pidFile: String?
    public var consoleSocket: String?
    public var detach = false
    public var preserveFDs = 0
    public init() {}
}

/// The container lifecycle over one state root: what `berth-runtime` commands do.
public struct Runtime: Sendable {
    public let store: StateStore
    public let log: Logger

    /// Where `berth-runtime` keeps state unless `--root` says otherwise.
    public static let defaultRoot = "/run/berth-runtime"

    public init(root: String, log: Logger = Logger()) {
        store = StateStore(root: root)
        self.log = log
    }

    // MARK: create / start / run

    /// Sets the container up to the point of execve and leaves it waiting for `start`.
    @discardableResult
    public func create(id: String, options: CreateOptions) throws(BerthError) -> ContainerRecord {
        try launch(id: id, options: options, mode: .create).record
    }

    enum LaunchMode { case create, run }

    private func launch(id: String, options: CreateOptions, mode: LaunchMode) throws(BerthError) -> (record: ContainerRecord, process: LaunchedProcess, console: Int32) {
        var timeline = Timeline()
        try StateStore.validate(id: id)
        let bundle = try Files.realPath(Files.absolute(options.bundle, relativeTo: Files.currentDirectory()))
        let spec = try Spec.load(path: bundle + "/config.json")
        guard let process = spec.process else { throw BerthError("\(bundle)/config.json: process: required to create a container") }
        timeline.mark("config")

        let layout = try CgroupLayout.detect()
        let caller = try ProcessCgroups.current()
        let cgroupPath = CgroupPath(spec.linux?.cgroupsPath ?? "berth/\(id)")
        if cgroupPath.path.contains(":") {
            throw BerthError("linux.cgroupsPath \"\(cgroupPath.path)\" is in systemd slice:prefix:name form; the systemd cgroup driver is not supported")
        }
        var cgroups = FSCgroupManager(layout: layout, path: cgroupPath, caller: caller)
        cgroups.parentNotes = store.parentCgroupNotes
        // Rootless: without a delegated cgroup the container runs in the caller's cgroups.
        if geteuid() != 0 && !cgroups.canCreate {
            if spec.linux?.resources?.memory != nil || spec.linux?.resources?.cpu != nil || spec.linux?.resources?.pids != nil {
                throw BerthError("linux.resources: limits need a cgroup, and none is delegated to uid \(geteuid()) (rootless)")
            }
            log.warn("rootless: no cgroup is delegated to uid \(geteuid()); the container runs in the caller's cgroups, without limits")
            cgroups = FSCgroupManager(layout: layout, v1Directories: [], v2Directory: nil, removableAncestors: [])
        }

        var compiler = PlanCompiler(bundle: bundle, cgroupLayout: layout)
        compiler.noPivot = options.noPivot
        compiler.newSessionKeyring = !options.noNewKeyring
        compiler.cgroupDirectories = zip(layout.controllerHierarchies, cgroups.v1Directories).map { ($0, $1) }
            + (layout.v2.flatMap { h in cgroups.v2Directory.map { [(h, $0)] } } ?? [])
        var plan = try compiler.compile(spec)
        var seccomp: CompiledSeccomp?
        var seccompCacheFile: String?
        if let profile = spec.linux?.seccomp {
            let (compiled, file) = try SeccompCompiler.compileCached(profile, cacheDirectory: store.seccompCache, warn: { log.warn($0) })
            seccompCacheFile = file
            plan.seccompProgram = compiled.program
            plan.seccompFlags = compiled.flags
            // Early when nothing the child still calls could be refused: no notify
            // (loaded before READY anyway), no startContainer hook, the waiting syscalls allowed.
            plan.seccompBeforeStart = plan.noNewPrivileges && compiled.flags & 8 == 0 // SECCOMP_FILTER_FLAG_NEW_LISTENER
                && plan.startContainerHooks.isEmpty && compiled.allowsRegardlessOfArguments(CompiledSeccomp.waitingSyscalls)
            seccomp = compiled
        }
        timeline.mark("plan")

        try store.reserve(id)
        var fds = LaunchFDs()
        var cleanupCgroups = false
        // With v1 hierarchies the cgroups are made after the clone, on the other CPU
        // while the child mounts (a v2 directory comes first: CLONE_INTO_CGROUP needs it).
        plan.deferCgroupJoin = !cgroups.v1Directories.isEmpty && !plan.joins.contains { $0.kind == .cgroup }
        // Limits and device rules before the tasks files are handed out: a device the
        // child makes after its join meets complete rules, never half-written ones.
        func makeCgroups(openingV2 v2: Bool) throws(BerthError) -> Placement {
            try cgroups.create()
            if let resources = spec.linux?.resources { try cgroups.apply(resources, warn: { log.warn($0) }) }
            if let rules = spec.linux?.resources?.devices, !rules.isEmpty {
                try cgroups.applyDevices(rules, devices: spec.linux?.devices ?? [], warn: { log.warn($0) })
            }
            return try cgroups.placement(v1: true, v2: v2)
        }
        do throws(BerthError) {
            cleanupCgroups = true
            if plan.deferCgroupJoin {
                try cgroups.createV2Directory()
                fds.cgroup2 = try cgroups.placement(v1: false, v2: true).cgroup2FD ?? -1
            } else {
                let placement = try makeCgroups(openingV2: true)
                fds.cgroupTasks = placement.taskFDs
                fds.cgroup2 = placement.cgroup2FD ?? -1
            }
            timeline.mark("cgroups")

            if mode == .create {
                let fifo = store.fifoPath(id)
                guard mkfifo(fifo, 0o600) == 0 else { throw BerthError.sys("mkfifo", path: fifo) }
                fds.execFifo = try FileDescriptor(open: fifo, flags: O_RDONLY | O_NONBLOCK).release()
            }
            var localConsole: Int32 = -1
            if process.terminal == true {
                if let fd = options.consoleSocketFD {
                    fds.consoleSocket = dup(fd)
                } else if let socketPath = options.consoleSocket {
                    fds.consoleSocket = try connectUnix(socketPath)
                } else if mode == .run {
                    // foreground run with a terminal: we are the console socket's other end
                    var pair: [Int32] = [-1, -1]
                    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw BerthError.sys("socketpair") }
                    localConsole = pair[0]
                    fds.consoleSocket = pair[1]
                } else {
                    throw BerthError("process.terminal is true: --console-socket is required")
                }
            } else if options.consoleSocket != nil {
                throw BerthError("--console-socket given but process.terminal is false")
            }
            fds.joins = try openJoins(plan.joins)
            if plan.joins.contains(where: { $0.kind == .user }) { plan.userNamespace = false }

            let created = rfc3339Now()
            let me = getpid()
            let creating = ContainerRecord(
                id: id, bundle: bundle, rootfs: plan.rootfs, pid: me, startTime: Processes.stat(me)?.startTime ?? 0, created: created,
                phase: .creating, owner: geteuid(), cgroupLayout: CgroupLayoutRecord(layout), cgroupV1: cgroups.v1Directories,
                cgroupV2: cgroups.v2Directory, cgroupAncestors: cgroups.ancestors, process: nil, hooks: nil, annotations: spec.annotations, seccompFilter: nil)
            try store.save(creating)
            let hooks = spec.hooks ?? Hooks()
            let cloneStart = monotonicNanos()
            let seccompListener = SeccompListener(spec.linux?.seccomp)
            let creatingState = { (pid: pid_t) in State(id: id, status: .creating, pid: pid, bundle: bundle, annotations: spec.annotations) }
            let launched = try Launcher.launchInit(
                plan: plan, fds: fds, preserveFDs: options.preserveFDs,
                seccompListener: seccompListener,
                state: creatingState,
                makeCgroups: { () throws(BerthError) -> [Int32] in
                    let started = monotonicNanos()
                    let tasks = try makeCgroups(openingV2: false).taskFDs
                    timeline.record("cgroups-beside-child", nanoseconds: monotonicNanos() - started)
                    return tasks
                },
                runtimeHooks: { pid throws(BerthError) in
                    let state = creatingState(pid).encoded()
                    try HookRunner.run(hooks.prestart ?? [], kind: "prestart", state: state)
                    try HookRunner.run(hooks.createRuntime ?? [], kind: "createRuntime", state: state)
                })
            fds.closeAll()
            fds = LaunchFDs()
            timeline.mark("clone-to-ready")
            // where the child's time went (skipped with time-namespace offsets: its clock differs)
            let m = launched.childMarks
            if m.count == Int(BERTH_MARK_COUNT.rawValue), plan.timeOffsets == nil, m.allSatisfy({ $0 > 0 }), m[0] > cloneStart {
                let names = ["child:wait-go", "child:mounts-before-cgroups", "child:cgroup-wait", "child:mounts", "child:pivot-and-paths", "child:process"]
                timeline.record("child:clone", nanoseconds: m[0] - cloneStart)
                for i in 1..<m.count { timeline.record(names[i - 1], nanoseconds: m[i] &- m[i - 1]) }
            }
            guard let st = Processes.stat(launched.pid) else {
                Launcher.abandon(launched)
                throw BerthError("container process \(launched.pid) vanished after setup")
            }
            // the same record, now naming the container's process and what later commands need
            var record = creating
            record.pid = launched.pid
            record.startTime = st.startTime
            record.phase = .created
            record.process = spec.process
            record.hooks = spec.hooks
            record.seccompFilter = seccomp != nil ? true : nil
            record.seccompListener = seccompListener
            do throws(BerthError) {
                if let seccomp, let seccompCacheFile {
                    // the container's copy for exec: a hard link to the cache file, else a file of
                    // its own. On ext4 a write+rename and the unlink at delete cost ~0.3 ms; a link
                    // and its unlink ~0.05.
                    if link(seccompCacheFile, store.seccompFilter(id)) != 0 {
                        try Files.writeAtomically(seccomp.serialized, to: store.seccompFilter(id), mode: 0o600)
                    }
                }
                try store.save(record)
                if let pidFile = options.pidFile {
                    try Files.writeAtomically(Array("\(launched.pid)".utf8), to: Files.absolute(pidFile, relativeTo: Files.currentDirectory()), mode: 0o644)
                }
            } catch {
                Launcher.abandon(launched)
                throw error
            }
            timeline.mark("state")
            timeline.flush(command: mode == .create ? "create" : "run")
            if mode == .create {
                close(launched.sync)
                if launched.pidfd >= 0 { close(launched.pidfd) }
            }
            return (record, launched, localConsole)
        } catch {
            fds.closeAll()
            if cleanupCgroups { try? cgroups.destroy() }
            try? store.remove(id)
            throw error
        }
    }

    /// Lets a created container execve its process.
    public func start(id: String) throws(BerthError) {
        try store.withLock(id) { () throws(BerthError) in
            guard let record = try store.load(id) else { throw BerthError("container \"\(id)\" is still being created") }
            let status = self.status(of: record)
            guard status == .created else { throw BerthError("cannot start container \"\(id)\" in state \(status.rawValue): it must be created") }
            try awaitTracer(record)
            let fifo = store.fifoPath(id)
            let fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                throw BerthError("container \"\(id)\" is not waiting for start", path: fifo, errno: errno)
            }
            let one: [UInt8] = [1]
            let n = write(fd, one, 1)
            let e = errno
            close(fd)
            guard n == 1 else { throw BerthError.sys("write to exec fifo", path: fifo, errno: e) }
            unlink(fifo)
            var updated = record
            updated.phase = .running
            try store.save(updated)
            runWarning(record.hooks?.poststart, kind: "poststart", record: updated, status: .running)
        }
    }

    /// create + start in one process; in the foreground it waits and returns the exit code.
    /// With `keep` the stopped container stays (cgroup and state) until `delete`,
    /// so its final statistics can still be read, as with `runc run --keep`.
    public func run(id: String, options: CreateOptions, detach: Bool, keep: Bool = false) throws(BerthError) -> Int32 {
        if detach {
            try create(id: id, options: options)
            do { try start(id: id) } catch {
                try? delete(id: id, force: true)
                throw error
            }
            return 0
        }
        let (record, launched, console) = try launch(id: id, options: options, mode: .run)
        var timeline = Timeline()
        berth_forward_signals(launched.pid)
        // no exec fifo in this mode: the saved record already reads as running
        let running = record
        do throws(BerthError) {
            try awaitTracer(record)
            try Launcher.send(launched.sync, BERTH_SYNC_START)
            try Launcher.awaitExec(launched)
        } catch {
            berth_forward_signals(0)
            Launcher.abandon(launched)
            try? delete(id: id, force: true)
            throw error
        }
        close(launched.sync)
        timeline.mark("start-to-exec")
        runWarning(record.hooks?.poststart, kind: "poststart", record: running, status: .running)
        if console >= 0 {
            let master = berth_recv_fd(console)
            close(console)
            if master >= 0 {
                berth_pty_proxy(master)
                close(master)
            }
        }
        var status: Int32 = 0
        let r = berth_wait_pid(launched.pid, &status)
        timeline.mark("exec-to-exit")
        berth_forward_signals(0)
        if launched.pidfd >= 0 { close(launched.pidfd) }
        if !keep {
            try store.withLock(id) { () throws(BerthError) in try remove(record, force: true) }
            timeline.mark("delete")
        }
        timeline.flush(command: "run-after-start")
        guard r == 0 else { throw BerthError("wait for container process", errno: -r) }
        return exitCode(status)
    }

    // MARK: state

    /// The status from facts, not from a waiter: is the pid ours and alive, is
    /// the exec fifo still there, is the cgroup frozen.
    public func status(of record: ContainerRecord) -> State.Status {
        guard Processes.isAlive(record.pid, startTime: record.startTime) else { return .stopped }
        if record.phase == .creating { return .creating }
        if record.phase == .created && Files.exists(store.fifoPath(record.id)) { return .created }
        return record.cgroups.isFrozen ? .paused : .running
    }

    public func state(id: String) throws(BerthError) -> State {
        guard let record = try store.load(id) else {
            return State(id: id, status: .creating, pid: nil, bundle: "", annotations: nil)
        }
        let status = self.status(of: record)
        return State(id: id, status: status, pid: status == .stopped || record.phase == .creating ? 0 : record.pid, bundle: record.bundle,
                     annotations: record.annotations)
    }

    public func list() -> [(state: State, created: String, owner: UInt32)] {
        store.ids().compactMap { id in
            guard let record = try? store.load(id) else { return nil }
            let status = self.status(of: record)
            return (State(id: id, status: status, pid: status == .stopped || record.phase == .creating ? 0 : record.pid, bundle: record.bundle,
                          annotations: record.annotations), record.created, record.owner)
        }
    }

    public func record(id: String) throws(BerthError) -> ContainerRecord {
        guard let record = try store.load(id) else { throw BerthError("container \"\(id)\" is still being created") }
        return record
    }

    // MARK: signals, pause, delete

    public func kill(id: String, signal: Int32, all: Bool) throws(BerthError) {
        let record = try record(id: id)
        let status = self.status(of: record)
        guard status != .stopped else { throw BerthError("cannot kill container \"\(id)\": it is stopped") }
        guard status != .creating else { throw BerthError("cannot kill container \"\(id)\": it is still being created") }
        if all {
            try record.cgroups.signalAll(signal)
        } else {
            let pidfd = berth_pidfd_open(record.pid)
            if pidfd >= 0 {
                defer { close(pidfd) }
                // the pidfd pins the process: no signal to a reused pid after the liveness check
                guard Processes.isAlive(record.pid, startTime: record.startTime) else { throw BerthError("cannot kill container \"\(id)\": it is stopped") }
                guard berth_pidfd_send_signal(pidfd, signal) == 0 else {
                    throw .sys("send signal \(signal) to container \"\(id)\" pid", path: String(record.pid))
                }
            } else {
                try Processes.signal(record.pid, signal)
            }
        }
    }

    public func pause(id: String) throws(BerthError) {
        try store.withLock(id) { () throws(BerthError) in
            let record = try record(id: id)
            let status = self.status(of: record)
            guard status == .running || status == .created else { throw BerthError("cannot pause container \"\(id)\" in state \(status.rawValue)") }
            try record.cgroups.freeze()
        }
    }

    public func resume(id: String) throws(BerthError) {
        try store.withLock(id) { () throws(BerthError) in
            let record = try record(id: id)
            let status = self.status(of: record)
            guard status == .paused else { throw BerthError("cannot resume container \"\(id)\" in state \(status.rawValue): it is not paused") }
            try record.cgroups.thaw()
        }
    }

    /// Removes a stopped container (or, with `force`, kills it first): poststop
    /// hooks, cgroups in every hierarchy, the state directory.
    public func delete(id: String, force: Bool) throws(BerthError) {
        try StateStore.validate(id: id)
        guard store.exists(id) else { throw BerthError("container \"\(id)\" does not exist") }
        try store.withLock(id) { () throws(BerthError) in
            guard let record = try store.load(id) else {
                guard force else { throw BerthError("container \"\(id)\" is still being created; use --force") }
                try store.remove(id)
                return
            }
            try remove(record, force: force)
        }
    }

    /// The part of delete after the record is loaded (and locked): `run` has its record in hand.
    private func remove(_ record: ContainerRecord, force: Bool) throws(BerthError) {
        let id = record.id
        let status = self.status(of: record)
        var cgroups = record.cgroups
        cgroups.parentNotes = store.parentCgroupNotes
        switch status {
        case .stopped:
            break
        case .created:
            // never started: nothing of the user's runs yet, so delete kills it (as runc does)
            try killAndWait(record)
        case .creating:
            // another runtime process is creating it right now: its pid is not the container's
            throw BerthError("container \"\(id)\" is being created by pid \(record.pid); try again when create has finished")
        case .running, .paused:
            guard force else {
                throw BerthError("cannot delete container \"\(id)\" in state \(status.rawValue): stop it first or use --force")
            }
            try killAndWait(record)
        }
        // Whatever the init left behind (no pid namespace): kill it so the cgroups can go.
        if !cgroups.processes().isEmpty { try? cgroups.signalAll(SIGKILL); try? cgroups.thaw() }
        runWarning(record.hooks?.poststop, kind: "poststop", record: record, status: .stopped)
        var firstError: BerthError?
        do throws(BerthError) { try cgroups.destroy() } catch { firstError = error }
        do throws(BerthError) { try store.remove(id) } catch { firstError = firstError ?? error }
        if let firstError { throw firstError }
    }

    private func killAndWait(_ record: ContainerRecord) throws(BerthError) {
        let cgroups = record.cgroups
        try? cgroups.signalAll(SIGKILL)
        if Processes.isAlive(record.pid, startTime: record.startTime) { try? Processes.signal(record.pid, SIGKILL, ignoreMissing: true) }
        if cgroups.isFrozen { try? cgroups.thaw() }
        guard Processes.waitGone(record.pid, startTime: record.startTime, timeoutMs: 10_000) else {
            throw BerthError("container \"\(record.id)\" pid \(record.pid) did not die within 10 s of SIGKILL")
        }
        // wait for the cgroup to empty as well (children die after the init)
        var waited = 0
        while waited < 5000 && !cgroups.processes().isEmpty { usleep(1000); waited += 1 }
    }

    /// A failing poststart/poststop hook is a warning, not an error (runtime-spec).
    private func runWarning(_ hooks: [Hook]?, kind: String, record: ContainerRecord, status: State.Status) {
        guard let hooks, !hooks.isEmpty else { return }
        let state = State(id: record.id, status: status, pid: status == .stopped ? nil : record.pid, bundle: record.bundle,
                          annotations: record.annotations).encoded()
        do { try HookRunner.run(hooks, kind: kind, state: state) } catch { log.warn("\(error)") }
    }

    /// Changes the resources of a live container (runc update).
    public func update(id: String, resources: Resources) throws(BerthError) {
        try store.withLock(id) { () throws(BerthError) in
            let record = try record(id: id)
            let status = self.status(of: record)
            guard status == .running || status == .paused || status == .created else {
                throw BerthError("cannot update container \"\(id)\" in state \(status.rawValue)")
            }
            try record.cgroups.apply(resources, warn: { log.warn($0) })
        }
    }

    public func processes(id: String) throws(BerthError) -> [pid_t] {
        try record(id: id).cgroups.processes()
    }

    // MARK: helpers

    private func openJoins(_ joins: [(kind: NamespaceKind, path: String)]) throws(BerthError) -> [(kind: Int32, fd: Int32, path: String)] {
        var out: [(kind: Int32, fd: Int32, path: String)] = []
        for join in joins {
            let fd = open(join.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                out.forEach { close($0.fd) }
                throw BerthError("open \(join.kind.rawValue) namespace", path: join.path, errno: e)
            }
            out.append((Int32(truncatingIfNeeded: join.kind.cloneFlag), fd, join.path))
        }
        return out
    }
}

/// connect(2) to a Unix stream socket (the console socket, a seccomp agent).
func connectUnix(_ path: String, purpose: String = "console socket") throws(BerthError) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw .sys("socket for \(purpose)", path: path) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
        close(fd)
        throw BerthError("\(purpose) path is too long", path: path)
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard r == 0 else {
        let e = errno
        close(fd)
        throw .sys("connect to \(purpose)", path: path, errno: e)
    }
    return fd
}

/// 2026-11-29T06:30:00.123456789Z
func rfc3339Now() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    // UTC from the epoch by hand: glibc's gmtime_r first loads /etc/localtime (tzset)
    let days = Int(ts.tv_sec) / 86_400, secondOfDay = Int(ts.tv_sec) % 86_400
    let (year, month, day) = civilDate(daysSinceEpoch: days)
    func pad(_ v: Int, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
    return "\(year)-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(Int(ts.tv_nsec), 9))Z"
}

/// Proleptic Gregorian year, month (1-12) and day (1-31) of a day count from
/// 1970-01-01 (Howard Hinnant's civil_from_days).
func civilDate(daysSinceEpoch: Int) -> (year: Int, month: Int, day: Int) {
    let z = daysSinceEpoch + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
