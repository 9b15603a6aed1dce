#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthOCI
import BerthRuntime
import BerthSys
import CBerthLaunch

/// What `exec` runs: the CLI's flags and the API's exec config alike.
public struct ExecConfig: Codable, Sendable {
    public var command: [String]
    public var env: [String] = []
    public var user: String?
    public var workdir: String?
    public var tty = false
    public var interactive = false
    public var privileged = false
    public init(command: [String]) { self.command = command }

    /// The `berth exec` flags that say the same (the daemon runs exec as a child with them).
    var flags: [String] {
        var out: [String] = []
        if tty { out.append("--tty") }
        if interactive { out.append("--interactive") }
        if privileged { out.append("--privileged") }
        for e in env { out += ["--env", e] }
        if let user { out += ["--user", user] }
        if let workdir { out += ["--workdir", workdir] }
        return out
    }
}

extension Engine {
    /// The process an exec runs: the container's own (its capabilities, seccomp-bound
    /// identity, environment), with the command and what the exec overrides.
    func execProcess(_ c: EngineContainer, _ config: ExecConfig) throws(BerthError) -> BerthOCI.Process {
        guard !config.command.isEmpty else { throw BerthError("exec: give a command to run") }
        guard var process = try spec(of: c).process else { throw BerthError("container \(c.name): its config has no process") }
        process.args = config.command
        process.terminal = config.tty
        process.consoleSize = nil
        var env = process.env ?? []
        for e in config.env {
            let key = String(e.prefix { $0 != "=" })
            env.removeAll { $0.hasPrefix(key + "=") }
            env.append(e)
        }
        if config.tty && !env.contains(where: { $0.hasPrefix("TERM=") }) { env.append("TERM=xterm") }
        process.env = env
        if let user = config.user, !user.isEmpty {
            process.user = try ContainerSpec.user(user, rootfs: ContainerLayer(store: images, id: c.id).rootfs)
        }
        if let workdir = config.workdir, !workdir.isEmpty { process.cwd = workdir }
        if config.privileged {
            let all = Array(CapabilityTable.names.prefix(CapabilityTable.lastCap() + 1))
            process.capabilities = Capabilities(bounding: all, effective: all, permitted: all)
        }
        return process
    }

    /// Runs a command in a running container with this process's stdio (a pty between
    /// them with `tty`); returns its exit code, or 0 at once with `detach`.
    public func exec(_ ref: String, _ config: ExecConfig, pidFile: String? = nil, detach: Bool = false) throws(BerthError) -> Int32 {
        let c = refreshed(try container(ref))
        guard c.status == .running else { throw BerthError("container \(c.name) is not running") }
        if (try? runtime.record(id: c.id))?.cgroups.isFrozen == true {
            throw BerthError("container \(c.name) is paused; unpause it first")
        }
        var config = config
        if detach { config.tty = false }
        let process = try execProcess(c, config)
        var options = ExecOptions()
        options.pidFile = pidFile
        options.detach = detach
        Events.record(self, "exec_start: " + config.command.joined(separator: " "), c)
        let code = try runtime.exec(id: c.id, process: process, options: options)
        if !detach { Events.record(self, "exec_die", c, attributes: ["exitCode": String(code)]) }
        return code
    }

    /// For the daemon: `berth exec` as a child with the given stdio, so the exec's
    /// descriptors are that child's 0, 1 and 2; returns its pid. Its exit status is the exec's.
    public func spawnExec(_ id: String, _ config: ExecConfig, stdin: Int32, stdout: Int32, stderr: Int32, pidFile: String) throws(BerthError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let path = Engine.selfPath
        let args = [path, "--data-root", images.root, "--exec-root", execRoot, "exec", "--pid-file", pidFile] + config.flags + [id] + config.command
        let argv = CStringArray(args)
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, nil, argv.pointers, environ)
        guard r == 0 else { throw BerthError("start exec", path: path, errno: r) }
        return pid
    }
}
