#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthNetwork
import BerthOCI
import BerthRuntime
import BerthSecurity
import BerthSys
import CBerthLaunch

/// Options of `berth run` / `berth create`.
public struct RunOptions: Sendable {
    public var image: String
    /// Replaces the image's CMD when not empty.
    public var command: [String] = []
    public var entrypoint: [String]?
    public var name: String?
    public var remove = false
    public var detach = false
    public var tty = false
    /// `-i`: stdin stays open to an attached client.
    public var interactive = false
    public var env: [String] = []
    public var workdir: String?
    public var user: String?
    public var hostname: String?
    /// The cgroup the container's cgroup is made in (docker's --cgroup-parent).
    public var cgroupParent = "berth"
    /// A `build` RUN step: no per-container /etc files.
    public var buildStep = false
    /// Limits (`--memory`, `--cpus`, …), already in the runtime spec's terms.
    public var resources: Resources?
    /// `-v [SOURCE:]DESTINATION[:OPTIONS]`, as typed.
    public var binds: [String] = []
    /// `--tmpfs DESTINATION[:OPTIONS]`, as typed.
    public var tmpfs: [String] = []
    /// `--read-only`: the root filesystem is mounted read-only.
    public var readOnly = false
    public var ulimits: [Ulimit] = []
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    /// `--security-opt seccomp=…|no-new-privileges`.
    public var securityOptions: [String] = []
    /// `--init`: tini as PID 1, reaping and forwarding signals.
    public var initProcess = false
    /// `bridge` (the default network), a user network's name, `none` (only lo),
    /// `host` (the host's network and hostname) or `container:NAME` (another's).
    public var network = "bridge"
    /// `-p`: published ports (bridge networks only).
    public var ports: [PortBinding] = []
    public init(image: String) { self.image = image }
}

/// The engine: images and containers under one root (`/var/lib/berth`), the
/// containers' runtime state under `/run/berth/runtime`. Containers run through
/// the same `Runtime` as `berth-runtime`, in this process.
public struct Engine: Sendable {
    public let images: ImageStore
    public let runtime: Runtime
    public let execRoot: String
    /// Bridge networks and the containers' places on them.
    public let sandbox: Sandbox
    public var networks: NetworkStore { sandbox.store }

    public static let defaultRunRoot = "/run/berth"

    /// `bridgeSubnet`: the default network's subnet (docker's --bip), used when the network is first made.
    public init(root: String = ImageStore.defaultRoot, runRoot: String = Engine.defaultRunRoot, bridgeSubnet: String? = nil) {
        images = ImageStore(root: root)
        runtime = Runtime(root: runRoot + "/runtime")
        execRoot = runRoot
        sandbox = Sandbox(store: NetworkStore(dataRoot: root, defaultRoot: ImageStore.defaultRoot, defaultSubnet: bridgeSubnet),
                          namespaceDirectory: runRoot + "/netns")
    }

    var containersDir: String { images.root + "/containers" }
    func recordPath(_ id: String) -> String { containersDir + "/" + id + "/container.json" }

    // MARK: records

    public func containers() -> [EngineContainer] {
        ((try? Files.list(containersDir)) ?? []).compactMap { try? load($0) }.map(refreshed)
            .sorted { ($0.created, $0.id) > ($1.created, $1.id) }
    }

    func load(_ id: String) throws(BerthError) -> EngineContainer {
        let bytes = try Files.readBytes(recordPath(id))
        do { return try JSONDecoder().decode(EngineContainer.self, from: Data(bytes)) } catch {
            throw BerthError("container record \(recordPath(id)): not readable (\(error))")
        }
    }

    func save(_ c: EngineContainer) throws(BerthError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(c)) ?? Data()
        try Files.writeAtomically(Array(data), to: recordPath(c.id), mode: 0o600)
    }

    /// A running record whose supervisor is gone (killed with the machine, say) reads as exited.
    func refreshed(_ c: EngineContainer) -> EngineContainer {
        guard c.status == .running else { return c }
        if c.supervised { return c }
        if let record = try? runtime.record(id: c.id), runtime.status(of: record) != .stopped { return c }
        var c = c
        c.status = .exited
        return c
    }

    /// The runtime config the container was made with.
    func spec(of c: EngineContainer) throws(BerthError) -> Spec {
        try Spec.load(path: images.root + "/containers/" + c.id + "/config.json")
    }

    /// By full id, unique id prefix, or name.
    public func container(_ ref: String) throws(BerthError) -> EngineContainer {
        let all = containers()
        if let c = all.first(where: { $0.id == ref || $0.name == ref || "/" + $0.name == ref }) { return c }
        let matches = all.filter { $0.id.hasPrefix(ref) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw BerthError("container \"\(ref)\": the prefix matches \(matches.count) containers") }
        throw BerthError("no such container: \(ref)")
    }

    // MARK: run

    /// Creates a container from an image and starts it under its supervisor.
    /// Detached, returns 0 once it runs; attached, this process's stdio is the
    /// container's (through the supervisor) and the container's exit code is returned.
    public func run(_ options: RunOptions, onCreate: ((EngineContainer) -> Void)? = nil) throws(BerthError) -> Int32 {
        let container = try create(options)
        onCreate?(container)
        do {
            let supervisor = try start(container.id, attach: !options.detach)
            if options.detach { return 0 }
            return try waitAttached(container.id, supervisor: supervisor)
        } catch {
            if options.remove { try? remove(container.id, force: true) }
            throw error
        }
    }

    /// The supervisor's path: this very binary, started as `berth shim`.
    static var selfPath: String { (try? Files.realPath("/proc/self/exe")) ?? CommandLine.arguments[0] }

    /// A client's descriptors for an attached start: this process's stdio (the CLI),
    /// or a hijacked API connection, where output goes out in docker's multiplexed frames.
    public struct Attach: Sendable {
        public var stdin: Int32, stdout: Int32, stderr: Int32
        public var multiplexed: Bool
        public init(stdin: Int32, stdout: Int32, stderr: Int32, multiplexed: Bool) {
            self.stdin = stdin; self.stdout = stdout; self.stderr = stderr; self.multiplexed = multiplexed
        }
        public static let terminal = Attach(stdin: 0, stdout: 1, stderr: 2, multiplexed: false)
    }

    /// Starts a created (or exited) container under a new supervisor; returns its pid once the container runs.
    @discardableResult
    public func start(_ ref: String, attach: Bool) throws(BerthError) -> pid_t {
        try start(ref, attach: attach ? Attach.terminal : nil)
    }

    @discardableResult
    public func start(_ ref: String, attach: Attach? = nil) throws(BerthError) -> pid_t {
        var c = refreshed(try container(ref))
        guard c.status != .running else { throw BerthError("container \(c.name) is already running") }
        if c.status == .exited {
            // a restart: the previous run's runtime state is gone (or, its supervisor killed with
            // it, left behind: deleted now); the layer stays
            if (try? runtime.record(id: c.id)) != nil { try runtime.delete(id: c.id, force: true) }
            c.status = .created
            try save(c)
        }
        var ready: [Int32] = [-1, -1]
        guard berth_pipe2(&ready, O_CLOEXEC) == 0 else { throw .sys("pipe") }
        // above the descriptors the child's actions write (3…6), so no action clobbers another's source
        for i in 0..<2 {
            let high = fcntl(ready[i], F_DUPFD_CLOEXEC, 10)
            close(ready[i])
            ready[i] = high
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // the client's descriptors first (the actions run in order), then /dev/null for the supervisor's own
        if let attach {
            posix_spawn_file_actions_adddup2(&actions, attach.stdin, Supervisor.attachFDs.stdin)
            posix_spawn_file_actions_adddup2(&actions, attach.stdout, Supervisor.attachFDs.stdout)
            posix_spawn_file_actions_adddup2(&actions, attach.stderr, Supervisor.attachFDs.stderr)
        }
        posix_spawn_file_actions_adddup2(&actions, ready[1], Supervisor.readyFD)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, berth_POSIX_SPAWN_SETSID)
        let path = Engine.selfPath
        let args = [path, "--data-root", images.root, "--exec-root", execRoot, "shim"]
            + (attach == nil ? [] : attach!.multiplexed ? ["--attached", "--multiplexed"] : ["--attached"]) + [c.id]
        let argv = CStringArray(args)
        var pid: pid_t = 0
        let r = posix_spawn(&pid, path, &actions, &attributes, argv.pointers, environ)
        close(ready[1])
        guard r == 0 else {
            close(ready[0])
            throw BerthError("start the supervisor", path: path, errno: r)
        }
        let answer = (try? FileSource(adopting: ready[0], path: "supervisor").readAll(describing: "supervisor")) ?? []
        let text = String(decoding: answer, as: UTF8.self)
        guard text == "ok" else {
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            throw BerthError(text.isEmpty ? "container \(c.name): its supervisor ended before the container started" : text)
        }
        return pid
    }

    /// Waits for an attached run's supervisor (our child), passing Ctrl-C and TERM on to
    /// the container, and returns the container's exit code (the supervisor exits with it).
    public func waitAttached(_ id: String, supervisor: pid_t) throws(BerthError) -> Int32 {
        if let pid = (try? load(id))?.pid { berth_forward_signals(pid) }
        defer { berth_forward_signals(0) }
        var status: Int32 = 0
        guard berth_wait_pid(supervisor, &status) == 0 else { throw .sys("wait for the supervisor") }
        return exitCode(status)
    }

    /// Sends `signal` (a name or number) to the container's processes.
    public func kill(_ ref: String, signal: Int32 = SIGKILL) throws(BerthError) {
        let c = refreshed(try container(ref))
        guard c.status == .running else { throw BerthError("container \(c.name) is not running") }
        // the event first: the supervisor may record the container's death before this returns
        Events.record(self, "kill", c, attributes: ["signal": String(signal)])
        try runtime.kill(id: c.id, signal: signal, all: false)
        thawIfPaused(c)
    }

    /// A frozen task takes its signal only once thawed (v1 freezer): after a kill, let it go.
    func thawIfPaused(_ c: EngineContainer) {
        if let record = try? runtime.record(id: c.id), record.cgroups.isFrozen { try? runtime.resume(id: c.id) }
    }

    /// `stop`: the stop signal, then SIGKILL after `timeout` seconds; returns once it has ended.
    public func stop(_ ref: String, timeout: Double = 10) throws(BerthError) {
        let c = refreshed(try container(ref))
        guard c.status == .running else { return }
        let signal = c.stopSignal.flatMap { SignalTable.parse($0) } ?? SIGTERM
        try? runtime.kill(id: c.id, signal: signal, all: false)
        thawIfPaused(c)
        if try waitForExit(c.id, timeout: timeout) == nil {
            try? runtime.kill(id: c.id, signal: SIGKILL, all: true)
            _ = try waitForExit(c.id, timeout: 30)
        }
        Events.record(self, "stop", c)
    }

    /// The supervisor's socket for clients that attach to a running container (short: a
    /// Unix socket path has 107 bytes).
    func attachSocket(_ id: String) -> String { execRoot + "/attach/" + id.prefix(24) }

    /// Hands `client` (a connection, or one end of a socketpair) to the container's
    /// supervisor, which from then on writes the container's output to it (docker's frames
    /// with `multiplexed`) and, with `stdin` and a container made with -i, feeds its input in.
    public func attach(_ ref: String, client: Int32, stdin: Bool, multiplexed: Bool) throws(BerthError) {
        let c = refreshed(try container(ref))
        guard c.status == .running else { throw BerthError("container \(c.name) is not running") }
        let path = attachSocket(c.id)
        let fd: Int32
        do { fd = try UnixSocket.connect(path) } catch { throw BerthError("attach to \(c.name): its supervisor's socket: \(error)") }
        defer { close(fd) }
        let options = (stdin ? "stdin=1" : "stdin=0") + (multiplexed ? " mux=1" : " mux=0")
        guard berth_send_fd(fd, client, options, Int32(options.utf8.count)) == 0 else { throw BerthError.sys("attach to \(c.name): send the connection") }
        // the supervisor has it once the message is read: wait for it to close its end
        var byte: UInt8 = 0
        _ = recv(fd, &byte, 1, 0)
    }

    /// Where a supervisor leaves the exit code of a container it removed (`--rm`), for a waiting client.
    func exitFile(_ id: String) -> String { execRoot + "/exits/" + id }

    /// The exit code once the container has ended (nil if it still runs after `timeout`).
    public func waitForExit(_ ref: String, timeout: Double? = nil) throws(BerthError) -> Int32? {
        let id = try container(ref).id
        let deadline = timeout.map { monotonicMilliseconds() + $0 * 1000 }
        while true {
            guard let c = try? load(id) else {
                // removed (--rm): its supervisor left the code
                return (try? Files.read(exitFile(id))).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            switch refreshed(c).status {
            case .exited: return c.exitCode ?? 137   // a supervisor killed with its container left no code
            case .created: return nil
            case .running: break
            }
            if let deadline, monotonicMilliseconds() > deadline { return nil }
            usleep(5000)
        }
    }

    /// The container's layer, overlay and bundle, ready for the runtime.
    public func create(_ options: RunOptions) throws(BerthError) -> EngineContainer {
        let image = try images.resolve(options.image)
        let config = try images.config(of: image)
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let name = options.name ?? ContainerNames.random() + "_" + String(id.prefix(4))
        try ContainerNames.validate(name)
        if containers().contains(where: { $0.name == name }) {
            throw BerthError("container name \"\(name)\" is already in use; remove that container or pick another name")
        }
        let (mode, plan) = try networkPlan(options, id: id)
        let layer = ContainerLayer(store: images, id: id)
        do throws(BerthError) {
            try layer.create(from: image)
            let spec = try ContainerSpec.make(image: config, options: options, id: id, rootfs: layer.rootfs, directory: layer.directory,
                                              volumes: images.root + "/volumes", network: plan)
            try writeSpec(spec, of: id)
            var c = EngineContainer(id: id, name: name, image: image.id, imageName: options.image, created: Timestamp.now(),
                                    command: spec.process?.args ?? [], status: .created, autoRemove: options.remove)
            c.openStdin = options.interactive
            c.tty = options.tty
            c.stopSignal = config.config?.StopSignal
            c.networkMode = mode
            c.ports = options.ports.isEmpty ? nil : options.ports
            try save(c)
            Events.record(self, "create", c)
            return c
        } catch {
            try? layer.remove()
            throw error
        }
    }

    /// `--network` checked and normalised (`default` is `bridge`; a network by id is kept by name).
    func networkPlan(_ options: RunOptions, id: String) throws(BerthError) -> (String, ContainerSpec.NetworkPlan) {
        let mode = options.network == "default" || options.network.isEmpty ? NetworkStore.defaultName : options.network
        if mode == "none" || mode == "host" || mode.hasPrefix("container:") {
            guard options.ports.isEmpty else {
                throw BerthError("--network \(mode) and -p do not go together: ports are published from a bridge network")
            }
        }
        switch mode {
        case "none": return (mode, .none)
        case "host": return (mode, .host)
        case let m where m.hasPrefix("container:"):
            let other = try container(String(m.dropFirst("container:".count)))
            guard other.networkMode.map({ !$0.hasPrefix("container:") }) ?? true else {
                throw BerthError("--network \(m): that container shares another's network; name that one")
            }
            return ("container:" + other.id, .container(other, directory: containersDir + "/" + other.id))
        case NetworkStore.defaultName:
            return (mode, .bridge(namespace: sandbox.namespacePath(id)))
        default:
            let network = try networks.find(mode)
            return (network.name, .bridge(namespace: sandbox.namespacePath(id)))
        }
    }

    /// `--network container:X`: the runtime config names X's namespace as it is at this start.
    func joinNetwork(of c: EngineContainer) throws(BerthError) {
        guard let mode = c.networkMode, mode.hasPrefix("container:") else { return }
        let other = refreshed(try container(String(mode.dropFirst("container:".count))))
        guard other.status == .running, let pid = other.pid else {
            throw BerthError("container \(c.name) joins the network of \(other.name), which is not running")
        }
        var spec = try self.spec(of: c)
        let namespace = other.onBridgeNetwork ? sandbox.namespacePath(other.id) : "/proc/\(pid)/ns/net"
        ContainerSpec.setNetworkNamespace(&spec, path: namespace)
        try writeSpec(spec, of: c.id)
    }

    /// Deletes a container: its runtime state, overlay and writable layer.
    public func remove(_ ref: String, force: Bool, volumes: Bool = false) throws(BerthError) {
        let c = try container(ref)
        let anonymous = volumes ? anonymousVolumes(of: c) : []
        if refreshed(c).status == .running {
            guard force else { throw BerthError("container \(c.name) is running; stop it first, or use --force") }
            Events.record(self, "kill", c, attributes: ["signal": String(SIGKILL)])
            try? runtime.kill(id: c.id, signal: SIGKILL, all: true)
            thawIfPaused(c)
            // its supervisor records the end and cleans the runtime state; give it a moment
            _ = try? waitForExit(c.id, timeout: 10)
        }
        if (try? runtime.record(id: c.id)) != nil { try runtime.delete(id: c.id, force: true) }
        // a supervisor that died with its container left its network behind
        if c.onBridgeNetwork && !refreshed((try? load(c.id)) ?? c).supervised { sandbox.teardown(id: c.id) }
        try ContainerLayer(store: images, id: c.id).remove()
        for name in anonymous { try? removeVolume(name) }
        Events.record(self, "destroy", c)
    }

    /// The container's log entries (the last `tail`), then with `follow` new ones as
    /// they come, until the container has ended.
    public func logs(_ ref: String, follow: Bool, tail: Int?, _ emit: (ContainerLog.Entry) -> Void) throws(BerthError) {
        let c = try container(ref)
        let path = images.root + "/containers/\(c.id)/\(c.id)-json.log"
        var (entries, offset) = ContainerLog.readWithOffset(path: path)
        if let tail { entries = Array(entries.suffix(max(0, tail))) }
        entries.forEach(emit)
        guard follow else { return }
        let decoder = JSONDecoder()
        followLines(path, from: offset,
                    stop: { refreshed((try? load(c.id)) ?? c).status != .running }) { line in
            if let e = try? decoder.decode(ContainerLog.Entry.self, from: Data(line)) { emit(e) }
            return true
        }
    }

    /// `berth export`: the container's filesystem as a tar stream.
    public func export(_ ref: String, to path: String) throws(BerthError) {
        let c = try container(ref)
        let layer = ContainerLayer(store: images, id: c.id)
        let wasMounted = layer.isMounted
        try layer.mount()
        defer { if !wasMounted { try? layer.unmount() } }
        let tmp = path == "-" ? nil : path + ".tmp.\(getpid())"
        do throws(BerthError) {
            let sink = try tmp.map { (t) throws(BerthError) in try FileSink(path: t, mode: 0o644) } ?? FileSink(adopting: dup(1), path: "stdout")
            let writer = TarWriter(sink)
            var archiver = TreeArchiver()
            try archiver.append(layer.rootfs, to: writer)
            try writer.finish()
            if let tmp { guard Glibc.rename(tmp, path) == 0 else { throw BerthError.sys("rename to", path: path) } }
        } catch {
            if let tmp { unlink(tmp) }
            throw error
        }
    }
}
