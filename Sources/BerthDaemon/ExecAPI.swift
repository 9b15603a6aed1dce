#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthRuntime
import BerthSys
import CBerthLaunch

/// One `docker exec`: made by POST /containers/{id}/exec, run by POST /exec/{id}/start.
struct ExecInstance: Sendable {
    var id: String
    var container: String
    var config: ExecConfig
    var attachStdin: Bool
    var attachStdout: Bool
    var attachStderr: Bool
    var running = false
    var exitCode: Int32?
    /// The `berth exec` child, and the process it runs in the container.
    var childPid: pid_t?
    var pid: Int32 = 0
}

extension DockerAPI {
    struct ExecCreateBody: Decodable {
        var AttachStdin: Bool?
        var AttachStdout: Bool?
        var AttachStderr: Bool?
        var Tty: Bool?
        var Env: [String]?
        var Cmd: [String]?
        var User: String?
        var WorkingDir: String?
        var Privileged: Bool?
    }

    struct ExecStartBody: Decodable {
        var Detach: Bool?
        var Tty: Bool?
    }

    struct ExecInspect: Encodable {
        struct ProcessConfig: Encodable { var tty: Bool; var entrypoint: String; var arguments: [String]; var privileged: Bool; var user: String }
        var ID: String
        var Running: Bool
        var ExitCode: Int32?
        var ProcessConfig: ProcessConfig
        var OpenStdin: Bool
        var OpenStderr: Bool
        var OpenStdout: Bool
        var CanRemove = false
        var ContainerID: String
        var DetachKeys = ""
        var Pid: Int32
    }

    func createExec(_ r: HTTPRequest, _ c: HTTPConnection, _ record: EngineContainer) throws(APIError) {
        let body: ExecCreateBody
        do { body = try JSONDecoder().decode(ExecCreateBody.self, from: Data(r.body)) } catch {
            throw APIError(400, "malformed exec config: \(error)")
        }
        guard let cmd = body.Cmd, !cmd.isEmpty else { throw APIError(400, "exec: Cmd is required") }
        guard record.status == .running else { throw APIError(409, "container \(record.id) is not running") }
        var config = ExecConfig(command: cmd)
        config.env = body.Env ?? []
        config.user = body.User.flatMap { $0.isEmpty ? nil : $0 }
        config.workdir = body.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }
        config.tty = body.Tty ?? false
        config.interactive = body.AttachStdin ?? false
        config.privileged = body.Privileged ?? false
        let id = (0..<4).map { _ in String(format: "%016llx", UInt64.random(in: 0...UInt64.max)) }.joined()
        let instance = ExecInstance(id: id, container: record.id, config: config, attachStdin: body.AttachStdin ?? false,
                                    attachStdout: body.AttachStdout ?? true, attachStderr: body.AttachStderr ?? true)
        locked { execs[id] = instance }
        c.json(201, ["Id": id])
    }

    func exec(_ r: HTTPRequest, _ c: HTTPConnection, id: String, action: String) throws(APIError) {
        guard let instance = locked({ execs[id] }) else { throw APIError(404, "no such exec instance: \(id)") }
        switch (r.method, action) {
        case ("GET", "json"):
            let cmd = instance.config.command
            c.json(200, ExecInspect(ID: id, Running: instance.running, ExitCode: instance.exitCode,
                                    ProcessConfig: .init(tty: instance.config.tty, entrypoint: cmd.first ?? "", arguments: Array(cmd.dropFirst()),
                                                         privileged: instance.config.privileged, user: instance.config.user ?? ""),
                                    OpenStdin: instance.attachStdin, OpenStderr: instance.attachStderr, OpenStdout: instance.attachStdout,
                                    ContainerID: instance.container, Pid: instance.pid))
        case ("POST", "resize"):
            if instance.pid > 0 { resizeTerminal(of: instance.pid, r) }
            c.respond(200)
        case ("POST", "start"):
            try startExec(r, c, instance)
        default:
            throw APIError(404, "page not found: \(r.method) /exec/\(id)/\(action)")
        }
    }

    /// Runs the exec: detached with /dev/null for its stdio, or over the hijacked
    /// connection (raw with a tty, docker's stdout/stderr frames without). The exit
    /// code is recorded before the connection closes, so an inspect right after sees it.
    func startExec(_ r: HTTPRequest, _ c: HTTPConnection, _ instance: ExecInstance) throws(APIError) {
        let body = (try? JSONDecoder().decode(ExecStartBody.self, from: Data(r.body.isEmpty ? Array("{}".utf8) : r.body))) ?? ExecStartBody()
        let started: Bool = locked {
            guard execs[instance.id]?.running == false && execs[instance.id]?.exitCode == nil else { return false }
            execs[instance.id]?.running = true
            return true
        }
        guard started else { throw APIError(409, "exec \(instance.id) has already run") }
        let id = instance.id
        let pidFile = engine.execRoot + "/exec-\(id).pid"
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let tty = instance.config.tty
        @Sendable func finish(_ child: pid_t) {
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            unlink(pidFile)
            locked {
                execs[id]?.running = false
                execs[id]?.exitCode = exitCode(status)
            }
        }
        func remember(_ child: pid_t) {
            // the pid inside comes from the pid file the child writes once the process runs
            var pid: Int32 = 0
            for _ in 0..<200 {
                if let text = try? Files.read(pidFile), let p = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { pid = p; break }
                if Processes.stat(child)?.state ?? "Z" == "Z" { break }   // it ended before the process ran
                usleep(5000)
            }
            locked { execs[id]?.childPid = child; execs[id]?.pid = pid }
        }
        if body.Detach == true {
            var config = instance.config
            config.tty = false
            let child: pid_t
            do { child = try engine.spawnExec(instance.container, config, stdin: null, stdout: null, stderr: null, pidFile: pidFile) } catch {
                locked { execs[id]?.running = false }
                throw APIError.from(error)
            }
            c.respond(200)
            remember(child)
            Thread { finish(child) }.start()
            return
        }
        let upgrade = r.headers["upgrade"]?.lowercased() == "tcp"
        c.hijack(upgrade: upgrade, contentType: tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream")
        let stdin = instance.attachStdin ? c.fd : null
        var child: pid_t = -1
        if tty {
            let out = instance.attachStdout ? c.fd : null
            child = (try? engine.spawnExec(instance.container, instance.config, stdin: stdin, stdout: out, stderr: out, pidFile: pidFile)) ?? -1
            if child > 0 { remember(child); finish(child) }
        } else {
            var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
            _ = berth_pipe2(&outPipe, O_CLOEXEC)
            _ = berth_pipe2(&errPipe, O_CLOEXEC)
            child = (try? engine.spawnExec(instance.container, instance.config, stdin: stdin, stdout: outPipe[1], stderr: errPipe[1], pidFile: pidFile)) ?? -1
            close(outPipe[1]); close(errPipe[1])
            let frames = FrameWriter(fd: c.fd)
            let pumps = [(outPipe[0], UInt8(1), instance.attachStdout), (errPipe[0], UInt8(2), instance.attachStderr)].map { fd, stream, wanted in
                let t = Thread { frames.pump(from: fd, stream: wanted ? stream : nil) }
                t.start()
                return t
            }
            if child > 0 {
                remember(child)
                finish(child)
            }
            // what the process wrote before it ended still goes out (a background child holding the pipe gets 2 s)
            let deadline = monotonicMilliseconds() + 2000
            while pumps.contains(where: { !$0.isFinished }) && monotonicMilliseconds() < deadline { usleep(1000) }
        }
        if child <= 0 { locked { execs[id]?.running = false; execs[id]?.exitCode = 126 } }
        shutdown(c.fd, Int32(SHUT_RDWR))
        close(c.fd)
    }

    /// A tty's size, set on the terminal the process has as its stdin (the pty's
    /// slave, reached through /proc); the kernel sends the process SIGWINCH.
    func resizeTerminal(of pid: Int32, _ r: HTTPRequest) {
        guard let h = r.query["h"].flatMap(UInt16.init), let w = r.query["w"].flatMap(UInt16.init) else { return }
        let fd = open("/proc/\(pid)/fd/0", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard isatty(fd) != 0 else { return }
        var size = winsize(ws_row: h, ws_col: w, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(fd, UInt(TIOCSWINSZ), &size)
    }
}

/// docker's multiplexed frames (`[stream, 0, 0, 0, size as big-endian UInt32]` + bytes)
/// onto one connection that stdout's and stderr's pumps share.
final class FrameWriter: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    init(fd: Int32) { self.fd = fd }

    /// Copies `from` until its end; nil `stream`: read and dropped (not attached).
    func pump(from: Int32, stream: UInt8?) {
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            let n = read(from, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            guard let stream else { continue }
            let size = UInt32(n)
            let frame = [stream, 0, 0, 0, UInt8(size >> 24), UInt8((size >> 16) & 0xff), UInt8((size >> 8) & 0xff), UInt8(size & 0xff)] + buffer[0..<n]
            lock.lock()
            var off = 0
            while off < frame.count {
                let w = frame.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { break }
                off += w
            }
            lock.unlock()
        }
        close(from)
    }
}
