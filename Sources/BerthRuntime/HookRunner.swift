#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthSys
import CBerthLaunch

/// Runs the hooks that execute in the runtime's namespaces (prestart,
/// createRuntime, poststart, poststop): the state JSON on stdin, `timeout` honoured.
enum HookRunner {
    static func run(_ hooks: [Hook], kind: String, state: [UInt8]) throws(BerthError) {
        for hook in hooks { try run(hook, kind: kind, state: state) }
    }

    static func run(_ hook: Hook, kind: String, state: [UInt8]) throws(BerthError) {
        var pipeFDs: [Int32] = [-1, -1]
        guard berth_pipe2(&pipeFDs, O_CLOEXEC) == 0 else { throw .sys("\(kind) hook: pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[0], 0)
        let argv = CStringArray(hook.args ?? [hook.path]), envp = CStringArray(hook.env ?? [])
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, hook.path, &actions, nil, argv.pointers, envp.pointers)
        close(pipeFDs[0])
        guard rc == 0 else {
            close(pipeFDs[1])
            throw BerthError("\(kind) hook", path: hook.path, errno: rc)
        }
        // A hook may not read its stdin: a short pipe write must not kill us with SIGPIPE.
        let old = signal(SIGPIPE, SIG_IGN)
        _ = state.withUnsafeBytes { write(pipeFDs[1], $0.baseAddress, $0.count) }
        close(pipeFDs[1])
        signal(SIGPIPE, old)

        var status: Int32 = 0
        let deadline = hook.timeout.map { monotonicMillis() + Int64($0) * 1000 }
        while true {
            let r = waitpid(pid, &status, deadline == nil ? 0 : WNOHANG)
            if r == pid { break }
            if r < 0 && errno == EINTR { continue }
            if r < 0 { throw .sys("\(kind) hook: wait", path: hook.path) }
            if let deadline, monotonicMillis() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw BerthError("\(kind) hook \(hook.path) timed out after \(hook.timeout!) s")
            }
            usleep(2000)
        }
        let code = exitCode(status)
        guard code == 0 else { throw BerthError("\(kind) hook \(hook.path) exited with status \(code)") }
    }
}

/// 128+signal for a signalled process, as shells report it.
public func exitCode(_ status: Int32) -> Int32 {
    let termsig = status & 0x7f
    if termsig == 0 { return (status >> 8) & 0xff }
    return 128 + termsig
}

func monotonicMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
