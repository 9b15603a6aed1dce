#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthCgroups
import BerthImage
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

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        return true
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

        // the container's stdio: pipes to us (or a pty, whose master comes over the console socket)
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        _ = berth_pipe2(&outPipe, O_CLOEXEC)
        _ = berth_pipe2(&errPipe, O_CLOEXEC)
        let devnull = open("/dev/null", O_RDWR | O_CLOEXEC)
        dup2(clientIn >= 0 && !tty ? clientIn : devnull, 0)
        dup2(outPipe[1], 1)
        dup2(errPipe[1], 2)
        close(outPipe[1]); close(errPipe[1])

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
        Events.record(engine, "start", c)
        report("ok")

        // output pumps: pipe or pty → log and the attached client
        var pumps: [Thread] = []
        let frameLock = NSLock()   // stdout and stderr frames share one connection
        func pump(_ from: Int32, _ stream: String, _ client: Int32) {
            let t = Thread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32768, alignment: 16)
                defer { buffer.deallocate() }
                while true {
                    let n = read(from, buffer.baseAddress, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    log.write(stream: stream, UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    if client >= 0 {
                        if multiplexed {
                            let size = UInt32(n)
                            var frame: [UInt8] = [stream == "stderr" ? 2 : 1, 0, 0, 0, UInt8(size >> 24), UInt8((size >> 16) & 0xff), UInt8((size >> 8) & 0xff), UInt8(size & 0xff)]
                            frame.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                            frameLock.lock()
                            _ = writeAll(client, frame)
                            frameLock.unlock()
                        } else {
                            _ = write(client, buffer.baseAddress, n)
                        }
                    }
                }
                close(from)
            }
            t.start()
            pumps.append(t)
        }
        if master >= 0 {
            close(outPipe[0]); close(errPipe[0])
            pump(master, "stdout", clientOut)
            if clientIn >= 0 && c.openStdin {
                let master = master
                let input = Thread {
                    var b = [UInt8](repeating: 0, count: 4096)
                    while true {
                        let n = read(clientIn, &b, b.count)
                        if n <= 0 { break }
                        _ = write(master, b, n)
                    }
                }
                input.start()
            }
        } else {
            pump(outPipe[0], "stdout", clientOut)
            pump(errPipe[0], "stderr", clientErr)
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
        try? layer.unmount()
        try? engine.withRecordLock(id) { () throws(BerthError) in
            c = (try? engine.load(id)) ?? c
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
            try? engine.remove(id, force: true)
        }
        if clientOut >= 0 {
            // the client sees the end of the stream now (a hijacked connection: shut down, not just our copy closed)
            shutdown(clientOut, Int32(SHUT_RDWR))
        }
        // an attached caller (`run` without -d) takes the container's exit code from ours
        return c.exitCode ?? 0
    }
}
