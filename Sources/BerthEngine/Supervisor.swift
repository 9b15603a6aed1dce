#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthCgroups
import BerthImage
import BerthNetwork
import BerthRuntime
import BerthSys
import CBerthLaunch

/// The per-container supervisor (`berth shim ID`, conmon's job): it creates and
/// starts the container through the runtime, stays its parent and subreaper,
/// writes its output to the json log (and to an attached client's descriptors),
/// and records how it ended: exit code, OOM kill, time. The CLI or the daemon
/// that started it may go away; the supervisor and the container do not.
///
/// Descriptors when started: 3 = a pipe that gets "ok" once the container runs
/// (or the error), and for an attached client 4, 5, 6 = its stdin, stdout, stderr.
public struct Supervisor: Sendable {
    public let engine: Engine
    public let id: String

    public init(engine: Engine, id: String) {
        self.engine = engine
        self.id = id
    }

    static let readyFD: Int32 = 3
    static let attachFDs: (stdin: Int32, stdout: Int32, stderr: Int32) = (4, 5, 6)

    /// Runs the container to its end; returns the supervisor's exit status.
    /// `multiplexed`: the client is a hijacked API connection: output goes to it in
    /// docker's frames (`[stream, 0, 0, 0, size as big-endian UInt32]` + bytes).
    public func run(attached: Bool, multiplexed: Bool = false) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // the container's end is ours to see, not a terminal's or a caller's signal to take
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] { signal(s, SIG_IGN) }
        _ = berth_set_child_subreaper(1)
        let ready = Self.readyFD
        func report(_ text: String) {
            text.withCString { _ = write(ready, $0, strlen($0)) }
            close(ready)
        }
        var c: EngineContainer
        do { c = try engine.load(id) } catch {
            report("\(error)")
            return 1
        }
        let layer = ContainerLayer(store: engine.images, id: id)
        let directory = layer.directory
        let log: ContainerLog
        do {
            try layer.mount()
            log = try ContainerLog(path: directory + "/\(id)-json.log")
        } catch {
            report("\(error)")
            return 1
        }
        let tty = c.tty
        // the runtime's warnings go to a file: this process's stderr is about to be the container's
        let runtime = Runtime(root: engine.execRoot + "/runtime", log: Logger(file: directory + "/runtime.log", toStderr: false))
        let clientIn: Int32 = attached && c.openStdin ? Self.attachFDs.stdin : -1
        let clientOut: Int32 = attached ? Self.attachFDs.stdout : -1
        let clientErr: Int32 = attached ? Self.attachFDs.stderr : -1

        // the container's stdio: pipes to us (or a pty, whose master comes over the console socket);
        // with -i its stdin is a pipe we hold, fed by whichever clients attach with stdin
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1], inPipe: [Int32] = [-1, -1]
        _ = berth_pipe2(&outPipe, O_CLOEXEC)
        _ = berth_pipe2(&errPipe, O_CLOEXEC)
        if c.openStdin && !tty { _ = berth_pipe2(&inPipe, O_CLOEXEC) }
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        dup2(inPipe[0] >= 0 ? inPipe[0] : devnull, 0)
        dup2(outPipe[1], 1)
        dup2(errPipe[1], 2)
        close(outPipe[1]); close(errPipe[1])
        if inPipe[0] >= 0 { close(inPipe[0]) }

        // the network before the container: its namespace file is in the runtime config
        var proxy: PortProxy?
        do throws(BerthError) {
            try engine.joinNetwork(of: c)
            if c.onBridgeNetwork {
                var ports = c.ports ?? []
                proxy = try PortProxy(bindings: &ports)
                let hostname = ((try? Files.read(directory + "/hostname")) ?? c.shortID).trimmingCharacters(in: .whitespacesAndNewlines)
                let a = try engine.sandbox.setup(id: id, name: c.name, hostname: hostname, network: c.networkMode ?? NetworkStore.defaultName,
                                                 ports: ports, hostsFile: directory + "/hosts", created: Timestamp.now())
                c.attachment = a
                Events.recordNetwork(engine, "connect", a.networkID, name: a.network, container: id)
            }
        } catch {
            proxy?.close()
            report("\(error)")
            try? layer.unmount()
            return 1
        }
        func releaseNetwork() {
            proxy?.close()
            if c.onBridgeNetwork { engine.sandbox.teardown(id: id) }
            if let a = c.attachment { Events.recordNetwork(engine, "disconnect", a.networkID, name: a.network, container: id) }
            c.attachment = nil
        }

        var options = CreateOptions(bundle: directory)
        var console: [Int32] = [-1, -1]
        if tty {
            _ = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &console)
            options.consoleSocketFD = console[1]
        }
        do throws(BerthError) {
            try runtime.create(id: id, options: options)
        } catch {
            report("\(error)")
            releaseNetwork()
            c.status = .created
            try? engine.save(c)
            try? layer.unmount()
            return 1
        }
        var master: Int32 = -1
        if tty {
            close(console[1])
            master = berth_recv_fd(console[0])
            close(console[0])
        }
        // our own stdio is no longer the container's
        dup2(devnull, 1)
        dup2(devnull, 2)
        dup2(devnull, 0)
        let record: ContainerRecord
        do throws(BerthError) {
            try runtime.start(id: id)
            record = try runtime.record(id: id)
        } catch {
            report("\(error)")
            try? runtime.delete(id: id, force: true)
            releaseNetwork()
            try? layer.unmount()
            return 1
        }
        c.status = .running
        c.pid = record.pid
        c.started = Timestamp.nowPrecise()
        c.supervisorPid = getpid()
        c.supervisorStartTime = Processes.stat(getpid())?.startTime
        c.exitCode = nil
        c.finished = nil
        c.oomKilled = false
        try? engine.withRecordLock(id) { () throws(BerthError) in
            let latest = (try? engine.load(id)) ?? c
            c.name = latest.name
            try engine.save(c)
        }
        // clients, and the socket later ones attach through, exist before anyone hears the container runs
        let clients = AttachedClients(tty: tty, input: master >= 0 ? master : inPipe[1])
        if attached {
            clients.add(out: clientOut, err: clientErr, multiplexed: multiplexed)
            // run -i: the first client's end of input is the container's (docker's StdinOnce)
            if clientIn >= 0 { clients.forwardInput(from: clientIn, closesInput: !tty) }
        }
        let listener = AttachListener(path: engine.attachSocket(id), clients: clients, openStdin: c.openStdin)
        if let address = c.attachment?.address { proxy?.start(container: address) }
        Events.record(engine, "start", c)
        report("ok")

        // output pumps: pipe or pty → log and every attached client
        var pumps: [Thread] = []
        func pump(_ from: Int32, _ stream: String) {
            let t = Thread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32768, alignment: 16)
                defer { buffer.deallocate() }
                while true {
                    let n = read(from, buffer.baseAddress, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                    log.write(stream: stream, bytes)
                    clients.broadcast(stream: stream == "stderr" ? 2 : 1, bytes)
                }
                close(from)
            }
            t.start()
            pumps.append(t)
        }
        if master >= 0 {
            close(outPipe[0]); close(errPipe[0])
            pump(master, "stdout")
        } else {
            pump(outPipe[0], "stdout")
            pump(errPipe[0], "stderr")
        }

        // reap everything; the container's init is the one that counts
        var status: Int32 = 0
        while true {
            var s: Int32 = 0
            let r = waitpid(-1, &s, 0)
            if r == record.pid { status = s; break }
            if r < 0 && errno == ECHILD { break }
        }
        // output still in flight comes before the end is recorded
        let deadline = monotonicMilliseconds() + 2000
        while pumps.contains(where: { !$0.isFinished }) && monotonicMilliseconds() < deadline { usleep(1000) }
        let oom = ((try? runtime.record(id: id))?.cgroups.oomKills ?? 0) > 0
        try? runtime.delete(id: id, force: true)
        releaseNetwork()
        try? layer.unmount()
        try? engine.withRecordLock(id) { () throws(BerthError) in
            c = (try? engine.load(id)) ?? c
            c.attachment = nil
            c.status = .exited
            c.exitCode = exitCode(status)
            c.oomKilled = oom
            c.finished = Timestamp.nowPrecise()
            c.pid = nil
            c.supervisorPid = nil
            c.supervisorStartTime = nil
            try engine.save(c)
        }
        if oom { Events.record(engine, "oom", c) }
        Events.record(engine, "die", c, attributes: ["exitCode": String(c.exitCode ?? 0)])
        if c.autoRemove {
            try? Files.makeDirectories(engine.execRoot + "/exits", mode: 0o700)
            try? Files.writeAtomically(Array("\(c.exitCode ?? 0)\n".utf8), to: engine.exitFile(id), mode: 0o600)
            try? engine.remove(id, force: true, volumes: true)
        }
        // clients see the end of the stream now (a hijacked connection: shut down, not just our copy closed)
        listener?.stop()
        clients.endAll()
        // an attached caller (`run` without -d) takes the container's exit code from ours
        return c.exitCode ?? 0
    }
}

/// The clients attached to a container's output (the one that started it, and any that
/// attach later through the supervisor's socket), and the container's input they share.
final class AttachedClients: @unchecked Sendable {
    struct Client { var out: Int32; var err: Int32; var multiplexed: Bool }
    private let lock = NSLock()
    private var clients: [Client] = []
    private var input: Int32
    let tty: Bool

    init(tty: Bool, input: Int32) {
        self.tty = tty
        self.input = input
    }

    func add(out: Int32, err: Int32, multiplexed: Bool) {
        lock.lock(); clients.append(Client(out: out, err: err, multiplexed: multiplexed && !tty)); lock.unlock()
    }

    /// stdout (1) or stderr (2) bytes to every client: docker's frames
    /// (`[stream, 0, 0, 0, size as big-endian UInt32]` + bytes) to a multiplexed one.
    func broadcast(stream: UInt8, _ bytes: UnsafeRawBufferPointer) {
        lock.lock()
        defer { lock.unlock() }
        clients.removeAll { c in
            let ok: Bool
            if c.multiplexed {
                let n = UInt32(bytes.count)
                let frame = [stream, 0, 0, 0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + Array(bytes)
                ok = frame.withUnsafeBytes { writeFully(c.out, $0) }
            } else {
                ok = writeFully(stream == 2 ? c.err : c.out, bytes)
            }
            if !ok { shutdown(c.out, Int32(SHUT_RDWR)) }
            return !ok
        }
    }

    /// A client's keystrokes or piped input into the container; with `closesInput`,
    /// its end is the end of the container's stdin.
    func forwardInput(from fd: Int32, closesInput: Bool) {
        Thread { [self] in
            var b = [UInt8](repeating: 0, count: 32768)
            while true {
                let n = read(fd, &b, b.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                let target = input
                lock.unlock()
                if target < 0 || !b.withUnsafeBytes({ writeFully(target, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) { break }
            }
            if closesInput {
                lock.lock()
                if input >= 0 { close(input); input = -1 }
                lock.unlock()
            }
        }.start()
    }

    func endAll() {
        lock.lock()
        for c in clients {
            shutdown(c.out, Int32(SHUT_RDWR))
            if c.err != c.out { shutdown(c.err, Int32(SHUT_RDWR)) }
        }
        clients = []
        lock.unlock()
    }
}

/// The supervisor's Unix socket where a client attaches to a running container: the
/// client's own connection comes over it as a descriptor (SCM_RIGHTS) with a line of
/// options (`stdin=1 mux=1`), and from then on it is one of the container's clients.
final class AttachListener: @unchecked Sendable {
    let path: String
    let fd: Int32

    init?(path: String, clients: AttachedClients, openStdin: Bool) {
        try? Files.makeDirectories((path as NSString).deletingLastPathComponent, mode: 0o700)
        guard let fd = try? UnixSocket.listen(path, mode: 0o600, backlog: 16) else { return nil }
        self.path = path
        self.fd = fd
        Thread {
            UnixSocket.acceptLoop(fd) { conn in
                var data = [CChar](repeating: 0, count: 128)
                var length: Int32 = 0
                let client = berth_recv_fd_data(conn, &data, Int32(data.count), &length)
                close(conn)
                guard client >= 0 else { return }
                let options = String(decoding: data.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
                clients.add(out: client, err: client, multiplexed: options.contains("mux=1"))
                if openStdin && options.contains("stdin=1") { clients.forwardInput(from: client, closesInput: false) }
            }
        }.start()
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}
