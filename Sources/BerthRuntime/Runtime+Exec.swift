#if canImport(Glibc)
import Glibc
#endif
import CBerthLaunch
import BerthOCI
import BerthSecurity
import BerthSys

extension Runtime {
    /// Runs `process` inside a running container: the same namespaces (every one
    /// that differs from ours), the same cgroups, the container's root.
    /// Returns the exit code, or 0 at once with `detach`.
    public func exec(id: String, process: Process, options: ExecOptions) throws(BerthError) -> Int32 {
        let record = try record(id: id)
        let status = self.status(of: record)
        guard status == .running || status == .created else {
            throw BerthError("cannot exec in container \"\(id)\" in state \(status.rawValue): it must be running")
        }
        try Spec(ociVersion: Spec.supportedVersion, process: process, root: Root(path: "/")).validate(source: "process")
        var plan = LaunchPlan()
        try PlanCompiler.applyProcess(process, to: &plan)
        plan.oomScoreAdj = nil
        if record.seccompFilter == true {
            let path = store.seccompFilter(id)
            guard let compiled = CompiledSeccomp(serialized: try Files.readBytes(path)) else {
                throw BerthError("\(path): not a compiled seccomp filter; the container's state is damaged")
            }
            plan.seccompProgram = compiled.program
            plan.seccompFlags = compiled.flags
        }

        var fds = LaunchFDs()
        defer { fds.closeAll() }
        for kind in [NamespaceKind.user, .mount, .pid, .network, .ipc, .uts, .cgroup, .time] {
            let theirs = "/proc/\(record.pid)/ns/\(kind.procName)"
            guard let target = readLink(theirs), target != readLink("/proc/self/ns/\(kind.procName)") else { continue }
            let fd = open(theirs, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .sys("open namespace", path: theirs) }
            fds.joins.append((Int32(truncatingIfNeeded: kind.cloneFlag), fd, theirs))
        }
        fds.root = open("/proc/\(record.pid)/root", berth_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fds.root >= 0 else { throw .sys("open container root", path: "/proc/\(record.pid)/root") }
        fds.cgroupTasks = try record.cgroups.joinFiles()
        // the process pid was checked live above; recheck after opening its namespaces
        guard Processes.isAlive(record.pid, startTime: record.startTime) else { throw BerthError("container \"\(id)\" stopped") }

        var localConsole: Int32 = -1
        if plan.terminal {
            if let path = options.consoleSocket {
                fds.consoleSocket = try connectUnix(path)
            } else if !options.detach {
                var pair: [Int32] = [-1, -1]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw .sys("socketpair") }
                localConsole = pair[0]
                fds.consoleSocket = pair[1]
            } else {
                throw BerthError("--tty with --detach needs --console-socket")
            }
        }
        let launched = try Launcher.launchExec(plan: plan, fds: fds, preserveFDs: options.preserveFDs, seccompListener: record.seccompListener,
                                               state: { State(id: id, status: status, pid: record.pid, bundle: record.bundle, annotations: record.annotations) })
        fds.closeAll()
        fds = LaunchFDs()
        do throws(BerthError) {
            try Launcher.awaitExec(launched)
            if let pidFile = options.pidFile {
                try Files.writeAtomically(Array("\(launched.pid)".utf8), to: Files.absolute(pidFile, relativeTo: Files.currentDirectory()), mode: 0o644)
            }
        } catch {
            if localConsole >= 0 { close(localConsole) }
            Launcher.abandon(launched)
            throw error
        }
        close(launched.sync)
        if options.detach { return 0 }
        berth_forward_signals(launched.pid)
        defer { berth_forward_signals(0) }
        if localConsole >= 0 {
            let master = berth_recv_fd(localConsole)
            close(localConsole)
            if master >= 0 { berth_pty_proxy(master); close(master) }
        }
        var waitStatus: Int32 = 0
        let r = berth_wait_pid(launched.pid, &waitStatus)
        guard r == 0 else { throw BerthError("wait for exec process", errno: -r) }
        return exitCode(waitStatus)
    }
}

func readLink(_ path: String) -> String? {
    var buf = [CChar](repeating: 0, count: 256)
    let n = readlink(path, &buf, buf.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
