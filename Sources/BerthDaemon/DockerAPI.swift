#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthImage
import BerthNetwork
import BerthOCI
import BerthSys

/// The Docker Engine API (the part berth serves) over the engine.
public final class DockerAPI: @unchecked Sendable {
    public static let version = "1.47"
    public static let minimumVersion = "1.24"
    let engine: Engine
    private let lock = NSLock()
    /// Hijacked `attach` connections waiting for their container's start.
    private var pendingAttach: [String: (fd: Int32, stdin: Bool)] = [:]
    /// Supervisors this daemon started, reaped by pid (never waitpid(-1): the runtime waits for its own children).
    private var supervisors: Set<pid_t> = []
    /// `--probes`: eBPF syscall and run-queue figures for /metrics.
    public var probes: DaemonProbes?
    /// Exec instances by id (docker keeps them in memory too).
    var execs: [String: ExecInstance] = [:]

    /// Runs `body` holding the API's lock.
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public init(engine: Engine) {
        self.engine = engine
        let reaper = Thread { [self] in
            while true {
                lock.lock()
                let pids = supervisors
                lock.unlock()
                for pid in pids {
                    var status: Int32 = 0
                    if waitpid(pid, &status, WNOHANG) == pid { lock.lock(); supervisors.remove(pid); lock.unlock() }
                }
                usleep(100_000)
            }
        }
        reaper.start()
    }

    // MARK: routing

    public func handle(_ r: HTTPRequest, _ c: HTTPConnection) {
        let parts = r.path.split(separator: "/").map(String.init)
        do throws(APIError) {
            switch (r.method, parts.first ?? "", parts.count) {
            case ("GET", "_ping", 1), ("HEAD", "_ping", 1):
                c.respond(200, Array("OK".utf8), contentType: "text/plain; charset=utf-8", headers: [("Cache-Control", "no-cache, no-store, must-revalidate")])
            case ("GET", "version", 1): c.json(200, versionDocument())
            case ("GET", "info", 1): c.json(200, infoDocument())
            case ("GET", "containers", 2) where parts[1] == "json": c.json(200, containerList(all: r.flag("all")))
            case ("POST", "containers", 2) where parts[1] == "create": try createContainer(r, c)
            case (_, "containers", 3): try container(r, c, id: parts[1], action: parts[2])
            case ("DELETE", "containers", 2): try removeContainer(r, c, id: parts[1])
            case (_, "exec", 3): try exec(r, c, id: parts[1], action: parts[2])
            case ("GET", "images", 2) where parts[1] == "json": c.json(200, try imageList())
            case ("GET", "events", 1): events(r, c)
            case (_, "volumes", _): try volumes(r, c, parts)
            case (_, "networks", _): try networks(r, c, parts)
            case ("GET", "system", 2) where parts[1] == "df": c.json(200, try systemDF())
            case ("GET", "metrics", 1): metrics(c)
            case ("POST", "images", 2) where parts[1] == "create": try pull(r, c)
            case ("POST", "images", 2) where parts[1] == "load": try load(r, c)
            case ("GET", "images", 2) where parts[1] == "get": try save(r.query["names"].map { [$0] } ?? [], c)
            // DELETE first: a name with a registry host has slashes of its own (127.0.0.1:5000/a/b:1)
            case ("DELETE", "images", _) where parts.count >= 2: try removeImage(r, c, name: parts[1...].joined(separator: "/"))
            case (_, "images", _) where parts.count >= 3: try image(r, c, name: parts[1..<(parts.count - 1)].joined(separator: "/"), action: parts.last!)
            default: throw APIError(404, "page not found: \(r.method) \(r.path)")
            }
        } catch {
            if !c.responded { c.error(error.status, error.message) }
        }
    }

    // MARK: system

    struct Version: Encodable {
        var Platform = ["Name": "berth"]
        var Version = "0.3.0"
        var ApiVersion = DockerAPI.version
        var MinAPIVersion = DockerAPI.minimumVersion
        var GitCommit = ""
        var GoVersion = "swift"
        var Os = "linux"
        var Arch = Platform_arch
        var KernelVersion = kernelRelease()
        var BuildTime = ""
    }

    func versionDocument() -> Version { Version() }

    struct Info: Encodable {
        var ID = "berth"
        var Containers: Int
        var ContainersRunning: Int
        var ContainersPaused = 0
        var ContainersStopped: Int
        var Images: Int
        var Driver = "overlay"
        var DockerRootDir: String
        var KernelVersion = kernelRelease()
        var OperatingSystem = "Linux"
        var OSType = "linux"
        var Architecture = Platform_arch
        var NCPU = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        var MemTotal = Int64(sysconf(Int32(_SC_PHYS_PAGES))) * Int64(sysconf(Int32(_SC_PAGESIZE)))
        var Name: String = {
            var b = [CChar](repeating: 0, count: 256)
            gethostname(&b, 255)
            return String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }()
        var ServerVersion = "0.3.0"
        var CgroupDriver = "cgroupfs"
        var CgroupVersion: String
        var DefaultRuntime = "berth"
        var SecurityOptions = ["name=seccomp,profile=builtin"]
    }

    func infoDocument() -> Info {
        let all = engine.containers()
        let running = all.filter { $0.status == .running }.count
        let v2 = Files.exists("/sys/fs/cgroup/cgroup.controllers")
        return Info(Containers: all.count, ContainersRunning: running, ContainersStopped: all.count - running,
                    Images: (try? engine.images.images().count) ?? 0, DockerRootDir: engine.images.root, CgroupVersion: v2 ? "2" : "1")
    }

    // MARK: containers

    struct ContainerSummary: Encodable {
        var Id: String
        var Names: [String]
        var Image: String
        var ImageID: String
        var Command: String
        var Created: Int
        var State: String
        var Status: String
        struct Port: Encodable { var IP: String?; var PrivatePort: UInt16; var PublicPort: UInt16?; var `Type`: String }
        struct Networks: Encodable { var Networks: [String: NetworkSettings.Network] }
        var Ports: [Port] = []
        var Labels: [String: String] = [:]
        var Mounts: [String] = []
        var HostConfig: [String: String] = [:]
        var NetworkSettings: Networks?
        /// system df only: the writable layer's bytes, and those with the image's.
        var SizeRw: Int64?
        var SizeRootFs: Int64?
    }

    func summary(_ c: EngineContainer) -> ContainerSummary {
        let status = engine.statusText(c)
        var s = ContainerSummary(Id: c.id, Names: ["/" + c.name], Image: c.imageName, ImageID: c.image.description,
                                 Command: c.command.joined(separator: " "), Created: unixTime(c.created),
                                 State: status.hasSuffix("(Paused)") ? "paused" : c.status.rawValue, Status: status)
        let settings = NetworkSettings(c, engine: engine)
        s.Ports = (c.status == .running ? c.attachment?.ports : nil).map { ports in
            ports.map { ContainerSummary.Port(IP: $0.hostIP.isEmpty ? "0.0.0.0" : $0.hostIP, PrivatePort: $0.containerPort, PublicPort: $0.hostPort, Type: $0.proto) }
        } ?? (c.ports ?? []).map { ContainerSummary.Port(IP: nil, PrivatePort: $0.containerPort, PublicPort: nil, Type: $0.proto) }
        s.HostConfig = ["NetworkMode": c.networkMode ?? "none"]
        s.NetworkSettings = ContainerSummary.Networks(Networks: settings.Networks)
        return s
    }

    func containerList(all: Bool) -> [ContainerSummary] {
        engine.containers().filter { all || $0.status == .running }.map(summary)
    }

    struct CreateBody: Decodable {
        struct HostConfig: Decodable {
            var AutoRemove: Bool?
            var Memory: Int64?
            var MemorySwap: Int64?
            var MemoryReservation: Int64?
            var NanoCpus: Int64?
            var CpuShares: UInt64?
            var CpuPeriod: UInt64?
            var CpuQuota: Int64?
            var CpusetCpus: String?
            var PidsLimit: Int64?
            var CgroupParent: String?
            var Binds: [String]?
            var Mounts: [MountBody]?
            var Tmpfs: [String: String]?
            var ReadonlyRootfs: Bool?
            var Ulimits: [UlimitBody]?
            var CapAdd: [String]?
            var CapDrop: [String]?
            var SecurityOpt: [String]?
            var Init: Bool?
            var NetworkMode: String?
            var PortBindings: [String: [PortBindingBody]?]?
            var Privileged: Bool?
            var BlkioWeight: UInt16?
            var BlkioDeviceReadBps: [ThrottleBody]?
            var BlkioDeviceWriteBps: [ThrottleBody]?
            var BlkioDeviceReadIOps: [ThrottleBody]?
            var BlkioDeviceWriteIOps: [ThrottleBody]?
        }
        struct PortBindingBody: Decodable { var HostIp: String?; var HostPort: String? }
        struct MountBody: Decodable { var `Type`: String?; var Source: String?; var Target: String; var ReadOnly: Bool? }
        struct UlimitBody: Decodable { var Name: String; var Soft: Int64; var Hard: Int64 }
        struct ThrottleBody: Decodable { var Path: String; var Rate: UInt64 }
        var Image: String?
        var Cmd: StringOrList?
        var Entrypoint: StringOrList?
        var Env: [String]?
        var Tty: Bool?
        var OpenStdin: Bool?
        var WorkingDir: String?
        var User: String?
        var Hostname: String?
        var HostConfig: HostConfig?
    }

    func createContainer(_ r: HTTPRequest, _ c: HTTPConnection) throws(APIError) {
        let body: CreateBody
        do { body = try JSONDecoder().decode(CreateBody.self, from: Data(r.body)) } catch {
            throw APIError(400, "malformed container config: \(error)")
        }
        guard let image = body.Image, !image.isEmpty else { throw APIError(400, "config: Image is required") }
        var options = RunOptions(image: image)
        options.name = r.query["name"].flatMap { $0.isEmpty ? nil : String($0.drop { $0 == "/" }) }
        options.command = body.Cmd?.list ?? []
        options.entrypoint = body.Entrypoint?.list
        options.env = body.Env ?? []
        options.tty = body.Tty ?? false
        options.interactive = body.OpenStdin ?? false
        options.workdir = body.WorkingDir.flatMap { $0.isEmpty ? nil : $0 }
        options.user = body.User.flatMap { $0.isEmpty ? nil : $0 }
        options.hostname = body.Hostname.flatMap { $0.isEmpty ? nil : $0 }
        if let h = body.HostConfig {
            options.remove = h.AutoRemove ?? false
            if let p = h.CgroupParent, !p.isEmpty { options.cgroupParent = p }
            if h.Privileged == true { throw APIError(400, "privileged containers are not supported by berth") }
            options.binds = h.Binds ?? []
            for m in h.Mounts ?? [] {
                switch m.Type ?? "volume" {
                case "bind", "volume":
                    guard let source = m.Source, !source.isEmpty else { throw APIError(400, "mount \(m.Target): a source is required") }
                    options.binds.append(source + ":" + m.Target + (m.ReadOnly == true ? ":ro" : ""))
                case "tmpfs": options.tmpfs.append(m.Target)
                default: throw APIError(400, "mount \(m.Target): type \(m.Type ?? "") is not supported (bind, volume, tmpfs)")
                }
            }
            options.tmpfs += (h.Tmpfs ?? [:]).sorted { $0.key < $1.key }.map { $0.value.isEmpty ? $0.key : $0.key + ":" + $0.value }
            options.readOnly = h.ReadonlyRootfs ?? false
            options.capAdd = h.CapAdd ?? []
            options.capDrop = h.CapDrop ?? []
            options.securityOptions = h.SecurityOpt ?? []
            options.initProcess = h.Init ?? false
            options.network = h.NetworkMode.flatMap { $0.isEmpty || $0 == "default" ? nil : $0 } ?? "bridge"
            for (key, hostPorts) in (h.PortBindings ?? [:]).sorted(by: { $0.key < $1.key }) {
                for hp in hostPorts ?? [CreateBody.PortBindingBody(HostIp: nil, HostPort: nil)] {
                    // docker's HostIp "" and HostPort "" mean every address and a port the kernel picks
                    let ip = hp.HostIp ?? "", port = hp.HostPort ?? ""
                    let text = ip.isEmpty && port.isEmpty ? key : ip.isEmpty ? port + ":" + key : ip + ":" + port + ":" + key
                    do throws(BerthError) { options.ports += try PortBinding.parse(text) } catch { throw APIError(400, error.description) }
                }
            }
            do {
                options.ulimits = try (h.Ulimits ?? []).map { (u) throws(BerthError) in
                    try Ulimit.parse("\(u.Name)=\(u.Soft < 0 ? "-1" : String(u.Soft)):\(u.Hard < 0 ? "-1" : String(u.Hard))")
                }
                options.resources = try resources(h)
            } catch { throw APIError(400, error.description) }
        }
        do {
            let created = try engine.create(options)
            c.json(201, CreateResponse(Id: created.id))
        } catch {
            throw APIError.from(error)
        }
    }

    /// A HostConfig's limits (create and update) in the runtime spec's terms; 0 means unset, as in docker.
    func resources(_ h: CreateBody.HostConfig) throws(BerthError) -> Resources? {
        func devices(_ list: [CreateBody.ThrottleBody]?) -> [String] { (list ?? []).map { "\($0.Path):\($0.Rate)" } }
        let blockIO = try DockerFlags.blockIO(weight: h.BlkioWeight, readBps: devices(h.BlkioDeviceReadBps), writeBps: devices(h.BlkioDeviceWriteBps),
                                              readIOPS: devices(h.BlkioDeviceReadIOps), writeIOPS: devices(h.BlkioDeviceWriteIOps))
        return try DockerFlags.resources(memory: h.Memory.flatMap { $0 > 0 ? $0 : nil }, memorySwap: h.MemorySwap.flatMap { $0 != 0 ? $0 : nil },
                                         memoryReservation: h.MemoryReservation.flatMap { $0 > 0 ? $0 : nil },
                                         cpus: h.NanoCpus.flatMap { $0 > 0 ? Double($0) / 1e9 : nil }, cpuShares: h.CpuShares,
                                         cpuPeriod: h.CpuPeriod.flatMap { $0 > 0 ? $0 : nil }, cpuQuota: h.CpuQuota.flatMap { $0 > 0 ? $0 : nil },
                                         cpusetCpus: h.CpusetCpus.flatMap { $0.isEmpty ? nil : $0 }, pidsLimit: h.PidsLimit.flatMap { $0 != 0 ? $0 : nil },
                                         blockIO: blockIO)
    }

    func container(_ r: HTTPRequest, _ c: HTTPConnection, id ref: String, action: String) throws(APIError) {
        let record: EngineContainer
        do { record = try engine.container(ref) } catch { throw APIError.from(error) }
        let id = record.id
        switch (r.method, action) {
        case ("GET", "json"):
            c.json(200, ContainerInspect(record, engine: engine))
        case ("POST", "start"):
            if record.status == .running { return c.respond(304) }
            lock.lock()
            let attach = pendingAttach.removeValue(forKey: id)
            lock.unlock()
            do {
                let pid = try engine.start(id, attach: attach.map { Engine.Attach(stdin: $0.fd, stdout: $0.fd, stderr: $0.fd, multiplexed: !record.tty) })
                if let attach { close(attach.fd) }
                lock.lock(); supervisors.insert(pid); lock.unlock()
                c.respond(204)
            } catch {
                if let attach { close(attach.fd) }
                throw APIError.from(error)
            }
        case ("POST", "attach"):
            let upgrade = r.headers["upgrade"]?.lowercased() == "tcp"
            let tty = record.tty
            if record.status == .running {
                // its supervisor takes the connection over
                c.hijack(upgrade: upgrade, contentType: tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream")
                try? engine.attach(id, client: c.fd, stdin: r.flag("stdin"), multiplexed: !tty)
                close(c.fd)
                return
            }
            // registered before the answer: the client may send `start` as soon as it reads the 101
            lock.lock()
            if let old = pendingAttach[id] { close(old.fd) }
            pendingAttach[id] = (c.fd, r.flag("stdin"))
            lock.unlock()
            c.hijack(upgrade: upgrade, contentType: tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream")
        case ("POST", "wait"):
            let condition = r.query["condition"] ?? "not-running"
            // the headers go out now (docker's CLI starts the container only once the wait is accepted),
            // the body when the condition is met; next-exit and removed wait through a start to come
            c.beginStream(contentType: "application/json")
            var code: Int32?
            // next-exit: an exit after this call (a container that ended before must first start again)
            let startedBefore = record.started
            while code == nil {
                if let current = try? engine.container(id) {
                    let fresh = condition != "next-exit" || record.status != .exited || current.started != startedBefore
                    if current.status == .exited && condition != "removed" && fresh { code = current.exitCode ?? 0 }
                    else if current.status == .created && condition == "not-running" { code = current.exitCode ?? 0 }
                } else {
                    code = (try? Files.read(engine.execRoot + "/exits/" + id)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
                }
                if code == nil { usleep(20_000) }
            }
            c.chunk(Array((try? JSONEncoder().encode(WaitResponse(StatusCode: Int(code!)))) ?? Data()) + [10])
            c.endStream()
        case ("POST", "stop"), ("POST", "restart"):
            let timeout = r.query["t"].flatMap(Double.init) ?? 10
            if r.method == "POST" && action == "stop" && record.status != .running { return c.respond(304) }
            do {
                try engine.stop(id, timeout: timeout)
                if action == "restart" {
                    let pid = try engine.start(id)
                    lock.lock(); supervisors.insert(pid); lock.unlock()
                }
            } catch { throw APIError.from(error) }
            c.respond(204)
        case ("POST", "kill"):
            let name = r.query["signal"] ?? "KILL"
            guard let signal = SignalTable.parse(name) else { throw APIError(400, "invalid signal: \(name)") }
            do { try engine.kill(id, signal: signal) } catch { throw APIError(409, error.description) }
            c.respond(204)
        case ("GET", "logs"):
            try logs(r, c, record)
        case ("POST", "exec"):
            try createExec(r, c, record)
        case ("POST", "pause"), ("POST", "unpause"):
            do { if action == "pause" { try engine.pause(id) } else { try engine.unpause(id) } } catch { throw APIError(409, error.description) }
            c.respond(204)
        case ("POST", "rename"):
            guard let name = r.query["name"], !name.isEmpty else { throw APIError(400, "rename: name is required") }
            do { try engine.rename(id, to: name) } catch {
                throw error.description.contains("already in use") ? APIError(409, error.description) : APIError(400, error.description)
            }
            c.respond(204)
        case ("POST", "update"):
            try update(r, c, id)
        case ("GET", "top"):
            do {
                let top = try engine.top(id)
                c.json(200, TopResponse(Titles: top.titles, Processes: top.processes))
            } catch { throw APIError(409, error.description) }
        case ("GET", "stats"):
            try stats(r, c, id)
        case ("GET", "archive"), ("HEAD", "archive"), ("PUT", "archive"):
            try archive(r, c, id)
        case ("POST", "resize"):
            if let pid = record.pid { resizeTerminal(of: pid, r) }
            c.respond(200)
        default:
            throw APIError(404, "page not found: \(r.method) /containers/\(ref)/\(action)")
        }
    }

    struct CreateResponse: Encodable {
        var Id: String
        var Warnings: [String] = []
    }

    struct WaitResponse: Encodable {
        var StatusCode: Int
        var Error: [String: String]? = nil
    }

    func removeContainer(_ r: HTTPRequest, _ c: HTTPConnection, id: String) throws(APIError) {
        do { try engine.remove(id, force: r.flag("force"), volumes: r.flag("v")) } catch {
            throw error.description.contains("is running") ? APIError(409, error.description) : APIError.from(error)
        }
        c.respond(204)
    }

    func logs(_ r: HTTPRequest, _ c: HTTPConnection, _ record: EngineContainer) throws(APIError) {
        let tty = record.tty
        let wantOut = r.flag("stdout"), wantErr = r.flag("stderr")
        let timestamps = r.flag("timestamps")
        let tail = r.query["tail"].flatMap { $0 == "all" ? nil : Int($0) }
        c.beginStream(contentType: tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream")
        do {
            try engine.logs(record.id, follow: r.flag("follow"), tail: tail) { entry in
                guard entry.stream == "stderr" ? wantErr : wantOut else { return }
                let payload = Array(((timestamps ? entry.time + " " : "") + entry.log).utf8)
                if tty { c.chunk(payload); return }
                let n = UInt32(payload.count)
                c.chunk([entry.stream == "stderr" ? 2 : 1, 0, 0, 0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + payload)
            }
        } catch {}
        c.endStream()
    }

    // MARK: images

    struct ImageSummary: Encodable {
        var Id: String
        var ParentId = ""
        var RepoTags: [String]
        var RepoDigests: [String]
        var Created: Int
        var Size: Int64
        var SharedSize = -1
        var VirtualSize: Int64
        var Labels: [String: String] = [:]
        var Containers = -1
    }

    func imageList() throws(APIError) -> [ImageSummary] {
        let store = engine.images
        let records: [ImageRecord]
        do { records = try store.images() } catch { throw APIError.from(error) }
        return records.map { r in
            let config = try? store.config(of: r)
            let tags = r.familiarNames.isEmpty ? ["<none>:<none>"] : r.familiarNames
            return ImageSummary(Id: r.id.description, RepoTags: tags, RepoDigests: ImageInspect.repoDigests(r),
                                Created: unixTime(config?.created ?? r.stored), Size: r.size, VirtualSize: r.size,
                                Labels: config?.config?.Labels ?? [:])
        }
    }

    func image(_ r: HTTPRequest, _ c: HTTPConnection, name: String, action: String) throws(APIError) {
        let store = engine.images
        switch (r.method, action) {
        case ("GET", "json"):
            do {
                let record = try store.resolve(name)
                let config = try store.config(of: record)
                c.json(200, ImageInspect(record, config: config))
            } catch { throw APIError.from(error) }
        case ("POST", "tag"):
            guard let repo = r.query["repo"] else { throw APIError(400, "repo is required") }
            let target = repo + (r.query["tag"].flatMap { $0.isEmpty ? nil : ":" + $0 } ?? "")
            do { try store.tag(name, as: target) } catch { throw APIError.from(error) }
            c.respond(201)
        case ("GET", "get"):
            try save([name], c)
        case ("POST", "push"):
            let target = name + (r.query["tag"].flatMap { $0.isEmpty ? nil : ":" + $0 } ?? "")
            c.beginStream(contentType: "application/json")
            var d = Distribution(store: store)
            d.insecure = true
            d.say = { line in c.chunk(Self.statusLine(line)) }
            do { try d.push(target) } catch { c.chunk(Self.errorLine(error.description)) }
            c.endStream()
        default:
            throw APIError(404, "page not found: \(r.method) /images/\(name)/\(action)")
        }
    }

    func removeImage(_ r: HTTPRequest, _ c: HTTPConnection, name: String) throws(APIError) {
        do {
            let lines = try engine.images.remove(name, force: r.flag("force"))
            let items = lines.map { line -> [String: String] in
                line.hasPrefix("Untagged: ") ? ["Untagged": String(line.dropFirst(10))] : ["Deleted": String(line.dropFirst(9))]
            }
            c.json(200, items)
        } catch {
            throw error.description.contains("used by a container") ? APIError(409, error.description) : APIError.from(error)
        }
    }

    static func statusLine(_ status: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array((try? encoder.encode(["status": status])) ?? Data()) + [13, 10]
    }

    struct ErrorLine: Encodable {
        var errorDetail: [String: String]
        var error: String
    }

    static func errorLine(_ message: String) -> [UInt8] {
        Array((try? JSONEncoder().encode(ErrorLine(errorDetail: ["message": message], error: message))) ?? Data()) + [13, 10]
    }

    func pull(_ r: HTTPRequest, _ c: HTTPConnection) throws(APIError) {
        guard let from = r.query["fromImage"], !from.isEmpty else { throw APIError(400, "fromImage is required (import from a URL is not supported)") }
        let tag = r.query["tag"].flatMap { $0.isEmpty ? nil : $0 }
        let ref = tag.map { $0.hasPrefix("sha256:") ? from + "@" + $0 : from + ":" + $0 } ?? from
        c.beginStream(contentType: "application/json")
        var d = Distribution(store: engine.images)
        d.say = { line in c.chunk(Self.statusLine(line)) }
        if let auth = r.headers["x-registry-auth"], let creds = Self.credentials(auth) { d.credentials = creds }
        do { try d.pull(ref) } catch { c.chunk(Self.errorLine(error.description)) }
        c.endStream()
    }

    /// X-Registry-Auth: base64url JSON {"username", "password"}.
    static func credentials(_ header: String) -> RegistryClient.Credentials? {
        var b64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let user = object["username"] as? String, !user.isEmpty else { return nil }
        return .init(username: user, password: object["password"] as? String ?? "")
    }

    func load(_ r: HTTPRequest, _ c: HTTPConnection) throws(APIError) {
        let tmp = engine.execRoot + "/load-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tar"
        do { try Files.writeAtomically(r.body, to: tmp, mode: 0o600) } catch { throw APIError.from(error) }
        defer { unlink(tmp) }
        let lines: [String]
        do { lines = try ImageArchive(store: engine.images).load(path: tmp) } catch { throw APIError(400, error.description) }
        c.beginStream(contentType: "application/json")
        for line in lines {
            let encoder = JSONEncoder()
            c.chunk(Array((try? encoder.encode(["stream": line + "\n"])) ?? Data()) + [13, 10])
        }
        c.endStream()
    }

    func save(_ names: [String], _ c: HTTPConnection) throws(APIError) {
        guard !names.isEmpty else { throw APIError(400, "names is required") }
        let tmp = engine.execRoot + "/save-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tar"
        defer { unlink(tmp) }
        do { try ImageArchive(store: engine.images).save(names, to: tmp) } catch { throw APIError.from(error) }
        guard let bytes = try? Files.readBytes(tmp) else { throw APIError(500, "read \(tmp)") }
        c.respond(200, bytes, contentType: "application/x-tar")
    }
}

/// An error with its HTTP status; berth's messages map to docker's codes.
struct APIError: Error {
    var status: Int
    var message: String
    init(_ status: Int, _ message: String) { self.status = status; self.message = message }

    static func from(_ error: BerthError) -> APIError {
        let text = error.description
        if text.hasPrefix("no such ") { return APIError(404, text) }
        if text.contains("already in use") || text.contains("is running") || text.contains("is already running") { return APIError(409, text) }
        if text.contains("not found") { return APIError(404, text) }
        return APIError(500, text)
    }
}

/// `"sh"` or `["sh", "-c", …]` (the API takes both for Cmd and Entrypoint).
struct StringOrList: Decodable {
    var list: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { list = []; return }
        if let s = try? c.decode(String.self) { list = ["/bin/sh", "-c", s]; return }
        list = try c.decode([String].self)
    }
}

let Platform_arch: String = {
    #if arch(x86_64)
    "amd64"
    #else
    "arm64"
    #endif
}()

func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// Seconds since the epoch of an RFC 3339 time.
func unixTime(_ stamp: String) -> Int {
    Int(Timestamp.parse(stamp) ?? 0)
}
