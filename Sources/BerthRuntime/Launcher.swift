#if canImport(Glibc)
import Glibc
#endif
import CBerthLaunch
import BerthOCI
import BerthSys

/// A container process that the C side has cloned and set up.
struct LaunchedProcess {
    var pid: pid_t
    var pidfd: Int32
    var sync: Int32
    /// The child's stage timestamps (CLOCK_MONOTONIC ns), from READY.
    var childMarks: [UInt64] = []
}

/// berth-dmz (programs/berth_dmz.c), the last exec before every container process.
enum Dmz {
    static let program: [UInt8] = Base64.decode(berthDmzProgram)

    /// A fresh sealed memfd of the program for one launch (~10 µs: create, write 2 KB, seal).
    static func sealedCopy() throws(BerthError) -> Int32 {
        let fd = program.withUnsafeBytes { berth_sealed_memfd("berth-dmz", $0.baseAddress, $0.count) }
        guard fd >= 0 else { throw BerthError("memfd for berth-dmz (the CVE-2019-5736 guard)", errno: -fd) }
        return fd
    }
}

/// Drives the parent half of the sync protocol documented in berth_launch.h.
enum Launcher {
    /// Clones the container init, writes id maps, sends GO with the state, runs
    /// the runtime-namespace hooks when asked, and returns once the child is READY.
    /// With `plan.deferCgroupJoin`, `makeCgroups` runs after GO, while the child
    /// mounts, and returns the v1 tasks fds the child joins (sent, then closed here).
    static func launchInit(plan: LaunchPlan, fds: LaunchFDs, preserveFDs: Int,
                           seccompListener: SeccompListener?,
                           state: (pid_t) -> State,
                           makeCgroups: () throws(BerthError) -> [Int32],
                           runtimeHooks: (pid_t) throws(BerthError) -> Void) throws(BerthError) -> LaunchedProcess {
        let arena = PlanArena()
        let dmz = try Dmz.sealedCopy()
        defer { close(dmz) }
        var cplan = plan.cPlan(arena, fds: fds, preserveFDs: preserveFDs, dmz: dmz)
        var pid: pid_t = 0, pidfd: Int32 = -1, sync: Int32 = -1
        var failure = berth_sync_msg()
        let r = berth_launch(&cplan, &pid, &pidfd, &sync, &failure)
        guard r == 0 else { failure.err = -r; throw childError(failure) }
        var launched = LaunchedProcess(pid: pid, pidfd: pidfd, sync: sync)
        do throws(BerthError) {
            if plan.userNamespace { try writeIDMaps(pid: pid, plan: plan) }
            try send(sync, BERTH_SYNC_GO)
            let blob = state(pid).encoded()
            let sent = blob.withUnsafeBytes { berth_sync_send_blob(sync, $0.baseAddress, $0.count) }
            guard sent == 0 else { throw BerthError("send state to container", errno: -sent) }
            if plan.deferCgroupJoin {
                let tasks = try makeCgroups()
                let r = tasks.withUnsafeBufferPointer { berth_sync_send_fds(sync, Int32(BERTH_SYNC_CGROUPS.rawValue), $0.baseAddress, Int32($0.count)) }
                tasks.forEach { close($0) }
                // a child that failed meanwhile has said why before it closed its end
                if r != 0 { _ = try receive(sync, pid: pid); throw BerthError("send cgroups to container", errno: -r) }
            }
            loop: while true {
                let msg = try receive(sync, pid: pid)
                switch msg.type {
                case Int32(BERTH_SYNC_HOOKS.rawValue):
                    try runtimeHooks(pid)
                    try send(sync, BERTH_SYNC_HOOKS_DONE)
                case Int32(BERTH_SYNC_SECCOMP_FD.rawValue):
                    try SeccompAgent.handOff(listenerFD: msg.fd, to: seccompListener, pid: pid, state: state(pid))
                case Int32(BERTH_SYNC_READY.rawValue):
                    launched.childMarks = withUnsafeBytes(of: msg.detail) { raw in
                        (0..<Int(BERTH_MARK_COUNT.rawValue)).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) }
                    }
                    break loop
                default:
                    throw BerthError("unexpected sync message \(msg.type) from container")
                }
            }
        } catch {
            abandon(launched)
            throw error
        }
        return launched
    }

    /// Exec: joins a running container; returns once the new process is READY.
    /// `state` is the container's, for a seccomp agent.
    static func launchExec(plan: LaunchPlan, fds: LaunchFDs, preserveFDs: Int,
                           seccompListener: SeccompListener?, state: () -> State) throws(BerthError) -> LaunchedProcess {
        let arena = PlanArena()
        let dmz = try Dmz.sealedCopy()
        defer { close(dmz) }
        var cplan = plan.cPlan(arena, fds: fds, preserveFDs: preserveFDs, dmz: dmz)
        var pid: pid_t = 0, sync: Int32 = -1
        var failure = berth_sync_msg()
        let r = berth_exec_launch(&cplan, &pid, &sync, &failure)
        guard r == 0 else { failure.err = -r; throw childError(failure) }
        let launched = LaunchedProcess(pid: pid, pidfd: -1, sync: sync)
        do throws(BerthError) {
            var msg = try receive(sync, pid: pid)
            if msg.type == Int32(BERTH_SYNC_SECCOMP_FD.rawValue) {
                try SeccompAgent.handOff(listenerFD: msg.fd, to: seccompListener, pid: pid, state: state())
                msg = try receive(sync, pid: pid)
            }
            guard msg.type == Int32(BERTH_SYNC_READY.rawValue) else { throw BerthError("unexpected sync message \(msg.type)") }
        } catch {
            abandon(launched)
            throw error
        }
        return launched
    }

    /// After START (or the fifo byte): EOF means execve succeeded; ERROR names why not.
    static func awaitExec(_ p: LaunchedProcess) throws(BerthError) {
        var msg = berth_sync_msg()
        let r = berth_sync_recv(p.sync, &msg)
        if r == 0 && msg.type == Int32(BERTH_SYNC_ERROR.rawValue) { throw childError(msg) }
    }

    static func send(_ fd: Int32, _ type: berth_sync_type) throws(BerthError) {
        var msg = berth_sync_msg()
        msg.type = Int32(type.rawValue)
        let r = berth_sync_send(fd, &msg)
        guard r == 0 else { throw BerthError("sync with container", errno: -r) }
    }

    static func receive(_ fd: Int32, pid: pid_t) throws(BerthError) -> berth_sync_msg {
        var msg = berth_sync_msg()
        let r = berth_sync_recv(fd, &msg)
        if r == -EPIPE {
            var status: Int32 = 0
            berth_wait_pid(pid, &status)
            throw BerthError("container process exited during setup (status \(exitCode(status)))")
        }
        guard r == 0 else { throw BerthError("sync with container", errno: -r) }
        if msg.type == Int32(BERTH_SYNC_ERROR.rawValue) { throw childError(msg) }
        return msg
    }

    /// Kills and reaps a half-made container process.
    static func abandon(_ p: LaunchedProcess) {
        kill(p.pid, SIGKILL)
        var status: Int32 = 0
        berth_wait_pid(p.pid, &status)
        close(p.sync)
        if p.pidfd >= 0 { close(p.pidfd) }
    }

    /// The parent writes the maps: the child cannot map ids it does not own.
    static func writeIDMaps(pid: pid_t, plan: LaunchPlan) throws(BerthError) {
        if geteuid() != 0 {
            // an unprivileged writer must give up setgroups before gid_map is accepted
            try Files.write("deny", to: "/proc/\(pid)/setgroups")
        }
        if let map = plan.uidMap, !map.isEmpty { try Files.write(map, to: "/proc/\(pid)/uid_map") }
        if let map = plan.gidMap, !map.isEmpty { try Files.write(map, to: "/proc/\(pid)/gid_map") }
    }
}
