#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthEngine
import BerthImage
import BerthNetwork
import BerthOCI
import BerthSys
import CBerthLaunch

/// Where the engine keeps images and containers: `--data-root` / `--exec-root`
/// before the command (docker daemon's names), or BERTH_DATA_ROOT / BERTH_EXEC_ROOT.
struct EngineRoots {
    var data = ProcessInfo.processInfo.environment["BERTH_DATA_ROOT"] ?? ImageStore.defaultRoot
    var exec = ProcessInfo.processInfo.environment["BERTH_EXEC_ROOT"] ?? Engine.defaultRunRoot
    var engine: Engine { Engine(root: data, runRoot: exec) }
}

/// The terminal in raw mode until `restore` (an attached `run -t`).
final class RawTerminal {
    var saved = termios()
    init?() {
        guard tcgetattr(0, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        tcsetattr(0, TCSANOW, &raw)
    }
    func restore() { tcsetattr(0, TCSANOW, &saved) }
}

/// `12 MB`, `1.5 GB`, as docker prints sizes (decimal units).
func humanSize(_ bytes: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(bytes)
    var u = 0
    while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
    return u == 0 ? "\(bytes)B" : (v < 10 ? String(format: "%.2f%@", v, units[u]) : String(format: "%.1f%@", v, units[u]))
}

/// `1.5MiB`, as docker stats prints memory (binary units).
func binarySize(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(bytes)
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(bytes)B" : String(format: "%.2f%@", v, units[u])
}

func kernelVersion() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

func table(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for r in rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c.padding(toLength: widths[i] + 3, withPad: " ", startingAt: 0)
        }
        print(line)
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}

func imageCommand(_ command: String, _ rest: [String], roots: EngineRoots) {
    let engine = roots.engine
    let store = engine.images
    do {
        switch command {
        case "images", "ls", "list":
            let a = Arguments(rest, flags: ["--quiet", "--all", "--digests", "--no-trunc"], values: [], aliases: ["-q": "--quiet", "-a": "--all"])
            var images = try store.images().sorted { $0.stored > $1.stored }
            if let filter = a.positional.first {
                images = images.filter { r in r.familiarNames.contains { $0 == filter || $0.hasPrefix(filter + ":") } }
            }
            if a.flags.contains("--quiet") {
                var seen = Set<Digest>()
                for r in images where seen.insert(r.id).inserted { print(a.flags.contains("--no-trunc") ? r.id.description : r.id.short) }
                return
            }
            var rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
            for r in images {
                let created = ago(try? store.config(of: r).created)
                let id = a.flags.contains("--no-trunc") ? r.id.description : r.id.short
                let refs = r.names.compactMap { try? Reference(parsing: $0) }
                if refs.isEmpty { rows.append(["<none>", "<none>", id, created, humanSize(r.size)]) }
                for ref in refs { rows.append([ref.familiarName, ref.tag ?? "<none>", id, created, humanSize(r.size)]) }
            }
            table(rows)
        case "inspect":
            guard !rest.isEmpty else { fail("image inspect: name at least one image\n\(usage)", code: 2) }
            var out: [ImageInspect] = []
            for ref in rest {
                let r = try store.resolve(ref)
                out.append(ImageInspect(r, config: try store.config(of: r)))
            }
            printJSON(out)
        case "tag":
            guard rest.count == 2 else { fail("tag takes SOURCE and TARGET\n\(usage)", code: 2) }
            try store.tag(rest[0], as: rest[1])
        case "rmi", "rm", "remove":
            let a = Arguments(rest, flags: ["--force"], values: [], aliases: ["-f": "--force"])
            guard !a.positional.isEmpty else { fail("rmi: name at least one image\n\(usage)", code: 2) }
            var failed = false
            for ref in a.positional {
                do { for line in try store.remove(ref, force: a.flags.contains("--force")) { print(line) } } catch {
                    "berth: \(error)\n".withCString { berth_write_stderr($0) }
                    failed = true
                }
            }
            if failed { exit(1) }
        case "prune":
            let a = Arguments(rest, flags: ["--all", "--force"], values: [], aliases: ["-a": "--all", "-f": "--force"])
            let result = try store.prune(all: a.flags.contains("--all"))
            for id in result.images { print("deleted: \(id)") }
            print("Total reclaimed space: \(humanSize(result.bytes)) (\(result.layers) layers, \(result.blobs) blobs)")
        case "load":
            let a = Arguments(rest, flags: ["--quiet"], values: ["--input"], aliases: ["-i": "--input", "-q": "--quiet"])
            for line in try ImageArchive(store: store).load(path: a.values["--input"] ?? "-") { print(line) }
        case "save":
            let a = Arguments(rest, flags: [], values: ["--output"], aliases: ["-o": "--output"])
            let output = a.values["--output"] ?? "-"
            if output == "-" && isatty(1) != 0 { fail("save: refusing to write an archive to a terminal; use -o FILE or a pipe", code: 2) }
            try ImageArchive(store: store).save(a.positional, to: output)
        case "import":
            let a = Arguments(rest, flags: [], values: ["--change", "--message"], aliases: ["-c": "--change", "-m": "--message"])
            guard (1...2).contains(a.positional.count) else { fail("import takes FILE|DIR|- and an optional NAME\n\(usage)", code: 2) }
            let record = try ImageBuilder(store: store).importRootfs(a.positional[0], name: a.positional.count > 1 ? a.positional[1] : nil,
                                                                    changes: a.lists["--change"] ?? [])
            print(record.id)
        case "pull", "push", "tags":
            let a = Arguments(rest, flags: ["--insecure", "--quiet"], values: ["--chunk-size", "--username", "--password", "--platform"],
                              aliases: ["-q": "--quiet"])
            guard a.positional.count == 1 else { fail("\(command) takes one image reference\n\(usage)", code: 2) }
            var d = Distribution(store: store)
            d.insecure = a.flags.contains("--insecure")
            if let user = a.values["--username"] {
                d.credentials = .init(username: user, password: a.values["--password"] ?? "")
            } else if let auth = ProcessInfo.processInfo.environment["BERTH_REGISTRY_AUTH"], let colon = auth.firstIndex(of: ":") {
                d.credentials = .init(username: String(auth[..<colon]), password: String(auth[auth.index(after: colon)...]))
            }
            if let c = a.values["--chunk-size"] {
                guard let n = Int64(c), n > 0 else { fail("--chunk-size \"\(c)\": give a positive number of bytes", code: 2) }
                d.chunkSize = n
            }
            if let p = a.values["--platform"] {
                let parts = p.split(separator: "/").map(String.init)
                guard parts.count >= 2 else { fail("--platform \"\(p)\": want os/arch[/variant]", code: 2) }
                d.platform = Platform(architecture: parts[1], os: parts[0], variant: parts.count > 2 ? parts[2] : nil)
            }
            // each status line as it happens, even into a pipe or file
            d.say = { line in print(line); fflush(nil) }
            if a.flags.contains("--quiet") { d.say = { _ in } }
            // a progress line per layer, rewritten in place, only on a terminal
            if isatty(1) != 0 && !a.flags.contains("--quiet") {
                d.progress = { line in print("\r\u{1B}[K" + line, terminator: ""); fflush(nil) }
                d.say = { line in print("\r\u{1B}[K" + line) }
            }
            switch command {
            case "pull":
                let record = try d.pull(a.positional[0])
                if a.flags.contains("--quiet") { print(record.names.first.flatMap { try? Reference(parsing: $0).familiar } ?? record.id.description) }
            case "push": try d.push(a.positional[0])
            default: for t in try d.tags(a.positional[0]) { print(t) }
            }
        case "bootstrap":
            let a = Arguments(rest, flags: [], values: ["--helper", "--busybox"])
            guard a.positional == ["busybox"] || a.positional == ["busybox:latest"] else {
                fail("image bootstrap: only busybox is made locally (from busybox-static)\n\(usage)", code: 2)
            }
            let record = try Bootstrap(store: store).busybox(binary: a.values["--busybox"] ?? "/bin/busybox", helper: a.values["--helper"])
            print("busybox:latest \(record.id)")
        default:
            fail("unknown image command \"\(command)\"\n\(usage)", code: 2)
        }
    } catch { fail("\(error)") }
}

/// docker's resource flags (run, create, update) in the runtime spec's terms.
func resourceFlags(_ a: Arguments) throws(BerthError) -> Resources? {
    func number<T: LosslessStringConvertible>(_ flag: String) -> T? {
        a.values[flag].map { text in
            guard let v = T(text) else { fail("\(flag) \"\(text)\": not a number", code: 2) }
            return v
        }
    }
    func size(_ flag: String) throws(BerthError) -> Int64? {
        try a.values[flag].map { (t) throws(BerthError) in flag == "--memory-swap" && t == "-1" ? -1 : try DockerFlags.bytes(t, flag: flag) }
    }
    let blockIO = try DockerFlags.blockIO(weight: number("--blkio-weight"), readBps: a.lists["--device-read-bps"] ?? [],
                                          writeBps: a.lists["--device-write-bps"] ?? [], readIOPS: a.lists["--device-read-iops"] ?? [],
                                          writeIOPS: a.lists["--device-write-iops"] ?? [])
    return try DockerFlags.resources(
        memory: try size("--memory"), memorySwap: try size("--memory-swap"), memoryReservation: try size("--memory-reservation"),
        cpus: number("--cpus"), cpuShares: number("--cpu-shares"), cpuPeriod: number("--cpu-period"), cpuQuota: number("--cpu-quota"),
        cpusetCpus: a.values["--cpuset-cpus"], pidsLimit: number("--pids-limit"), blockIO: blockIO)
}

/// `CONTAINER:PATH` (a path alone, or `-`, is the host's).
func containerPath(_ text: String) -> (container: String, path: String)? {
    guard !text.hasPrefix("/"), !text.hasPrefix("."), let colon = text.firstIndex(of: ":") else { return nil }
    return (String(text[..<colon]), String(text[text.index(after: colon)...]))
}

/// `berth cp`: docker's rules. Into an existing directory the source keeps its name;
/// otherwise it takes the destination's. `-` is a tar on stdin or stdout.
func copy(_ source: String, _ destination: String, engine: Engine) throws(BerthError) {
    let scratch = engine.execRoot + "/cp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try Files.makeDirectories(engine.execRoot, mode: 0o711)
    defer { _ = try? Files.removeTree(scratch); unlink(scratch + ".tar") }
    switch (containerPath(source), containerPath(destination)) {
    case (let from?, nil):
        if destination == "-" {
            try engine.archive(from.container, from.path, to: FileSink(adopting: dup(1), path: "stdout"))
            return
        }
        let name = (from.path as NSString).lastPathComponent
        try engine.archive(from.container, from.path, to: try FileSink(path: scratch + ".tar", mode: 0o600))
        if Files.isDirectory(destination) {
            _ = try LayerUnpacker.unpack(TarReader(try FileSource(path: scratch + ".tar"), describing: source), into: destination, describing: source)
            return
        }
        let parent = (destination as NSString).deletingLastPathComponent
        guard Files.isDirectory(parent.isEmpty ? "." : parent) else { throw BerthError("cp: the destination's directory", path: parent, errno: ENOENT) }
        let staging = (parent.isEmpty ? "." : parent) + "/.berth-cp-\(getpid())"
        try Files.makeDirectories(staging, mode: 0o700)
        defer { _ = try? Files.removeTree(staging) }
        _ = try LayerUnpacker.unpack(TarReader(try FileSource(path: scratch + ".tar"), describing: source), into: staging, describing: source)
        guard rename(staging + "/" + name, destination) == 0 else { throw BerthError.sys("cp: rename into place", path: destination) }
    case (nil, let to?):
        if source == "-" {
            try engine.extract(to.container, into: to.path, from: FileSource(adopting: dup(0), path: "stdin"))
            return
        }
        var st = stat()
        guard lstat(source, &st) == 0 else { throw BerthError.sys("cp: the source", path: source) }
        let target = try? engine.statPath(to.container, to.path)
        let intoDirectory = target?.isDirectory == true
        let member = intoDirectory ? (source as NSString).lastPathComponent : (to.path as NSString).lastPathComponent
        let directory = intoDirectory ? to.path : (to.path as NSString).deletingLastPathComponent
        let writer = TarWriter(try FileSink(path: scratch + ".tar", mode: 0o600))
        var archiver = TreeArchiver()
        try archiver.appendPath(source, as: member, to: writer)
        try writer.finish()
        try engine.extract(to.container, into: directory.isEmpty ? "/" : directory, from: try FileSource(path: scratch + ".tar"))
    default:
        throw BerthError("cp: one side must be CONTAINER:PATH and the other a host path (or -)")
    }
}

/// docker ps's PORTS: as bound while the container runs, as asked for otherwise.
func portsText(_ c: EngineContainer) -> String {
    (c.status == .running ? c.attachment?.ports : nil)?.map(\.description).joined(separator: ", ") ?? ""
}

/// `volume inspect` / `network inspect`: each named object, as one JSON array.
func inspectEach<T: Encodable>(_ kind: String, _ refs: [String], _ get: (String) throws(BerthError) -> T) throws(BerthError) {
    guard !refs.isEmpty else { fail("\(kind) inspect: name at least one \(kind)\n\(usage)", code: 2) }
    var out: [T] = []
    for ref in refs { out.append(try get(ref)) }
    printJSON(out)
}

/// `berth network create|ls|inspect|rm|prune`.
func networkCommand(_ rest: [String], engine: Engine) throws(BerthError) {
    let sub = rest.first ?? ""
    let a = Arguments(Array(rest.dropFirst()), flags: ["--quiet", "--internal", "--force", "--no-trunc"], values: ["--subnet", "--driver", "--label", "--format"],
                      aliases: ["-q": "--quiet", "-d": "--driver", "-f": "--force"])
    switch sub {
    case "create":
        guard a.positional.count == 1 else { fail("network create: name one network\n\(usage)", code: 2) }
        var labels: [String: String] = [:]
        for l in a.lists["--label"] ?? [] { let kv = l.split(separator: "=", maxSplits: 1).map(String.init); labels[kv[0]] = kv.count > 1 ? kv[1] : "" }
        print(try engine.createNetwork(name: a.positional[0], subnet: a.values["--subnet"], internal: a.flags.contains("--internal"),
                                       labels: labels, driver: a.values["--driver"] ?? "bridge").Id)
    case "ls", "list":
        let all = engine.networkList()
        if a.flags.contains("--quiet") { for n in all { print(a.flags.contains("--no-trunc") ? n.Id : String(n.Id.prefix(12))) }; return }
        table([["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"]] + all.map { n in
            [String(n.Id.prefix(12)), n.Name, n.Driver, n.Scope, n.IPAM.Config.first?.Subnet ?? ""]
        })
    case "inspect":
        try inspectEach("network", a.positional, engine.network)
    case "rm", "remove":
        guard !a.positional.isEmpty else { fail("network rm: name at least one network\n\(usage)", code: 2) }
        var failed = false
        for ref in a.positional {
            do { try engine.removeNetwork(ref); print(ref) } catch {
                FileHandle.standardError.write(Data("berth: \(error)\n".utf8))
                failed = true
            }
        }
        if failed { exit(1) }
    case "prune":
        let removed = engine.pruneNetworks()
        if !removed.isEmpty { print("Deleted Networks:\n" + removed.joined(separator: "\n")) }
    default:
        fail("network: give a command (create, ls, inspect, rm, prune)\n\(usage)", code: 2)
    }
}

/// `run` and `create`'s flags, docker's spellings, as engine options.
func parseRunOptions(_ rest: [String], command: String) throws(BerthError) -> RunOptions {
    let a = Arguments(rest, flags: ["--rm", "--detach", "--tty", "--interactive", "--read-only", "--init"],
                      values: ["--name", "--env", "--env-file", "--workdir", "--user", "--entrypoint", "--hostname", "--cgroup-parent",
                               "--memory", "--memory-swap", "--memory-reservation", "--cpus", "--cpu-shares", "--cpu-period",
                               "--cpu-quota", "--cpuset-cpus", "--pids-limit", "--blkio-weight", "--device-read-bps",
                               "--device-write-bps", "--device-read-iops", "--device-write-iops", "--volume", "--tmpfs",
                               "--ulimit", "--cap-add", "--cap-drop", "--security-opt", "--network", "--publish"],
                      aliases: ["-p": "--publish", "-d": "--detach", "-t": "--tty", "-i": "--interactive", "-e": "--env", "-w": "--workdir", "-u": "--user",
                                "-h": "--hostname", "-m": "--memory", "-c": "--cpu-shares", "-v": "--volume", "--net": "--network"],
                      stopAtPositional: true)
    guard let image = a.positional.first else { fail("\(command): name an image\n\(usage)", code: 2) }
    var options = RunOptions(image: image)
    options.command = Array(a.positional.dropFirst())
    options.remove = a.flags.contains("--rm")
    options.detach = a.flags.contains("--detach")
    options.tty = a.flags.contains("--tty")
    options.interactive = a.flags.contains("--interactive")
    options.name = a.values["--name"]
    let environment = ProcessInfo.processInfo.environment
    var env: [String] = []
    for file in a.lists["--env-file"] ?? [] { env += try RunFlags.envFile(file, environment: environment) }
    // -e NAME takes the value from berth's own environment, as docker does (and is left out when unset)
    env += (a.lists["--env"] ?? []).compactMap { e in e.contains("=") ? e : environment[e].map { e + "=" + $0 } }
    options.env = env
    options.workdir = a.values["--workdir"]
    options.user = a.values["--user"]
    options.hostname = a.values["--hostname"]
    options.cgroupParent = a.values["--cgroup-parent"] ?? options.cgroupParent
    if let e = a.values["--entrypoint"] { options.entrypoint = e.isEmpty ? [] : [e] }
    options.binds = a.lists["--volume"] ?? []
    options.tmpfs = a.lists["--tmpfs"] ?? []
    options.readOnly = a.flags.contains("--read-only")
    options.initProcess = a.flags.contains("--init")
    options.ulimits = try (a.lists["--ulimit"] ?? []).map { (t) throws(BerthError) in try Ulimit.parse(t) }
    options.capAdd = a.lists["--cap-add"] ?? []
    options.capDrop = a.lists["--cap-drop"] ?? []
    options.securityOptions = a.lists["--security-opt"] ?? []
    options.network = a.values["--network"] ?? options.network
    for p in a.lists["--publish"] ?? [] { options.ports += try PortBinding.parse(p) }
    options.resources = try resourceFlags(a)
    return options
}

func containerCommand(_ command: String, _ rest: [String], roots: EngineRoots) {
    let engine = roots.engine
    do {
        switch command {
        case "run", "create":
            let options = try parseRunOptions(rest, command: command)
            if command == "create" {
                print(try engine.create(options).id)
                return
            }
            // attached to a terminal with -t: raw, so keys reach the container as typed
            let raw = options.tty && !options.detach && isatty(0) != 0 ? RawTerminal() : nil
            let code: Int32
            do { code = try engine.run(options) { c in if options.detach { print(c.id) } } } catch {
                raw?.restore()
                throw error
            }
            raw?.restore()
            exit(code)
        case "exec":
            let a = Arguments(rest, flags: ["--detach", "--tty", "--interactive", "--privileged"],
                              values: ["--env", "--env-file", "--user", "--workdir", "--pid-file"],
                              aliases: ["-d": "--detach", "-t": "--tty", "-i": "--interactive", "-e": "--env", "-u": "--user", "-w": "--workdir"],
                              stopAtPositional: true)
            guard a.positional.count >= 2 else { fail("exec: name a container and a command\n\(usage)", code: 2) }
            var config = ExecConfig(command: Array(a.positional.dropFirst()))
            let environment = ProcessInfo.processInfo.environment
            for file in a.lists["--env-file"] ?? [] { config.env += try RunFlags.envFile(file, environment: environment) }
            config.env += (a.lists["--env"] ?? []).compactMap { e in e.contains("=") ? e : environment[e].map { e + "=" + $0 } }
            config.user = a.values["--user"]
            config.workdir = a.values["--workdir"]
            config.tty = a.flags.contains("--tty")
            config.interactive = a.flags.contains("--interactive")
            config.privileged = a.flags.contains("--privileged")
            let detach = a.flags.contains("--detach")
            // without -i the command reads nothing (docker's behaviour); detached, it writes nowhere
            let null = open("/dev/null", O_RDWR)
            if !config.interactive || detach { dup2(null, 0) }
            if detach { dup2(null, 1); dup2(null, 2) }
            do { exit(try engine.exec(a.positional[0], config, pidFile: a.values["--pid-file"], detach: detach)) } catch {
                // docker's codes: 127 for a command not found, 126 for one that cannot be run
                "berth: \(error)\n".withCString { berth_write_stderr($0) }
                exit(error.errno == ENOENT ? 127 : error.errno != nil ? 126 : 1)
            }
        case "attach":
            let a = Arguments(rest, flags: ["--no-stdin"], values: [])
            guard a.positional.count == 1 else { fail("attach takes one container\n\(usage)", code: 2) }
            let c = try engine.container(a.positional[0])
            var pair: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { throw BerthError.sys("socketpair") }
            let stdin = !a.flags.contains("--no-stdin") && c.openStdin
            try engine.attach(c.id, client: pair[1], stdin: stdin, multiplexed: !c.tty)
            close(pair[1])
            let raw = c.tty && stdin && isatty(0) != 0 ? RawTerminal() : nil
            if stdin { forwardStdin(pair[0]) }
            demultiplex(pair[0], raw: c.tty)
            raw?.restore()
            exit(try engine.waitForExit(c.id, timeout: 10) ?? 0)
        case "network":
            try networkCommand(rest, engine: engine)
        case "volume":
            let sub = rest.first ?? ""
            let a = Arguments(Array(rest.dropFirst()), flags: ["--quiet", "--force", "--all"], values: [], aliases: ["-q": "--quiet", "-f": "--force", "-a": "--all"])
            switch sub {
            case "create":
                guard a.positional.count <= 1 else { fail("volume create takes at most one name\n\(usage)", code: 2) }
                print(try engine.createVolume(a.positional.first).Name)
            case "ls", "list":
                if a.flags.contains("--quiet") { for v in engine.volumes() { print(v.name) }; return }
                table([["DRIVER", "VOLUME NAME"]] + engine.volumes().map { ["local", $0.name] })
            case "inspect":
                try inspectEach("volume", a.positional, engine.volume)
            case "rm", "remove":
                guard !a.positional.isEmpty else { fail("volume rm: name at least one volume\n\(usage)", code: 2) }
                for name in a.positional { try engine.removeVolume(name); print(name) }
            case "prune":
                let result = engine.pruneVolumes(all: a.flags.contains("--all"))
                if !result.names.isEmpty { print("Deleted Volumes:\n" + result.names.joined(separator: "\n") + "\n") }
                print("Total reclaimed space: \(humanSize(result.bytes))")
            default:
                fail("volume: give a command (create, ls, inspect, rm, prune)\n\(usage)", code: 2)
            }
        case "info":
            let all = engine.containers()
            let paused = all.filter { engine.statusText($0).hasSuffix("(Paused)") }.count
            let running = all.filter { $0.status == .running }.count
            let images = (try? engine.images.images().count) ?? 0
            print("""
            Containers: \(all.count)
             Running: \(running - paused)
             Paused: \(paused)
             Stopped: \(all.count - running)
            Images: \(images)
            Storage Driver: overlay
            Logging Driver: json-file
            Cgroup Driver: cgroupfs
            Cgroup Version: \(Files.exists("/sys/fs/cgroup/cgroup.controllers") ? "2" : "1")
            Runtime: berth (in-process; berth-runtime for other engines)
            Kernel Version: \(kernelVersion())
            CPUs: \(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            Total Memory: \(binarySize(UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))))
            Data Root: \(engine.images.root)
            Exec Root: \(engine.execRoot)
            """)
        case "system":
            guard rest.first == "df" else { fail("system: only df here (info and events are their own commands)\n\(usage)", code: 2) }
            let containers = engine.containers()
            let records = try engine.images.images()
            let used = Set(containers.map(\.image))
            let usage = engine.diskUsage()
            let imageBytes = usage.layers, unusedImageBytes = records.filter { !used.contains($0.id) }.reduce(Int64(0)) { $0 + $1.size - (usage.sharedSize[$1.id] ?? 0) }
            let sizes = containers.map { engine.sizeRw($0) }
            let stoppedBytes = zip(containers, sizes).filter { $0.0.status != .running }.reduce(Int64(0)) { $0 + $1.1 }
            let volumes = engine.volumes()
            func reclaim(_ part: Int64, _ whole: Int64) -> String { humanSize(part) + (whole > 0 ? " (\(Int(Double(part) / Double(whole) * 100))%)" : "") }
            table([["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                   ["Images", String(records.count), String(records.filter { used.contains($0.id) }.count), humanSize(imageBytes), reclaim(unusedImageBytes, imageBytes)],
                   ["Containers", String(containers.count), String(containers.filter { $0.status == .running }.count), humanSize(sizes.reduce(0, +)),
                    reclaim(stoppedBytes, sizes.reduce(0, +))],
                   ["Local Volumes", String(volumes.count), String(volumes.filter { $0.containers > 0 }.count), humanSize(volumes.reduce(0) { $0 + $1.size }),
                    reclaim(volumes.filter { $0.containers == 0 }.reduce(0) { $0 + $1.size }, volumes.reduce(0) { $0 + $1.size })]])
        case "cp":
            guard rest.count == 2 else { fail("cp takes SOURCE and DESTINATION, one of them CONTAINER:PATH\n\(usage)", code: 2) }
            try copy(rest[0], rest[1], engine: engine)
        case "pause", "unpause":
            guard !rest.isEmpty else { fail("\(command): name at least one container\n\(usage)", code: 2) }
            for ref in rest {
                if command == "pause" { try engine.pause(ref) } else { try engine.unpause(ref) }
                print(ref)
            }
        case "rename":
            guard rest.count == 2 else { fail("rename takes a container and its new name\n\(usage)", code: 2) }
            try engine.rename(rest[0], to: rest[1])
        case "update":
            let a = Arguments(rest, flags: [], values: ["--memory", "--memory-swap", "--memory-reservation", "--cpus", "--cpu-shares", "--cpu-period",
                                                        "--cpu-quota", "--cpuset-cpus", "--pids-limit", "--blkio-weight"],
                              aliases: ["-m": "--memory", "-c": "--cpu-shares"])
            guard !a.positional.isEmpty else { fail("update: name at least one container\n\(usage)", code: 2) }
            guard let resources = try resourceFlags(a) else { fail("update: give at least one limit to change\n\(usage)", code: 2) }
            for ref in a.positional { try engine.update(ref, resources); print(ref) }
        case "top":
            guard rest.count == 1 else { fail("top takes one container\n\(usage)", code: 2) }
            let top = try engine.top(rest[0])
            table([top.titles] + top.processes)
        case "stats":
            let a = Arguments(rest, flags: ["--no-stream", "--all", "--no-trunc"], values: ["--format"], aliases: ["-a": "--all"])
            let refs = a.positional.isEmpty ? engine.containers().filter { $0.status == .running }.map(\.id) : a.positional
            var previous: [String: ContainerStats] = [:]
            for ref in refs { previous[ref] = try? engine.stats(ref) }
            while true {
                usleep(a.flags.contains("--no-stream") ? 500_000 : 1_000_000)
                var rows = [["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]]
                var json: [ContainerStats] = []
                for ref in refs {
                    guard let s = try? engine.stats(ref, previous: previous[ref]) else {
                        if !a.positional.isEmpty { fail("container \(ref) is not running") }
                        continue
                    }
                    previous[ref] = s
                    json.append(s)
                    let net = (s.networks ?? [:]).values.reduce((UInt64(0), UInt64(0))) { ($0.0 + $1.rx_bytes, $0.1 + $1.tx_bytes) }
                    let mem = s.workingSet, limit = s.memory_stats.limit
                    rows.append([String(s.id.prefix(12)), String(s.name.dropFirst()), String(format: "%.2f%%", s.cpuPercent),
                                 binarySize(mem) + " / " + binarySize(limit), String(format: "%.2f%%", limit > 0 ? Double(mem) / Double(limit) * 100 : 0),
                                 humanSize(Int64(net.0)) + " / " + humanSize(Int64(net.1)),
                                 humanSize(Int64(s.blockRead)) + " / " + humanSize(Int64(s.blockWrite)), String(s.pids_stats.current)])
                }
                if a.values["--format"] == "json" || a.values["--format"] == "{{json .}}" {
                    for s in json { printJSON(s) }
                } else {
                    if !a.flags.contains("--no-stream") { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    table(rows)
                }
                fflush(nil)
                if a.flags.contains("--no-stream") { return }
            }
        case "events":
            let a = Arguments(rest, flags: [], values: ["--since", "--until", "--filter", "--format"], aliases: ["-f": "--filter"])
            var filters: [String: [String]] = [:]
            for f in a.lists["--filter"] ?? [] {
                let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { fail("--filter \"\(f)\": want KEY=VALUE (type, event, container, image)", code: 2) }
                filters[kv[0], default: []].append(kv[1])
            }
            func time(_ flag: String) -> Double? {
                a.values[flag].map { text in
                    if let v = Double(text) { return v }
                    if let d = Timestamp.parse(text) { return d }
                    // a duration back from now: 10m, 30s, 1h
                    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
                    for (suffix, scale) in units where text.hasSuffix(suffix) {
                        if let v = Double(text.dropLast(suffix.count)) { return Date().timeIntervalSince1970 - v * scale }
                    }
                    fail("\(flag) \"\(text)\": give Unix seconds, an RFC 3339 time, or a duration like 10m", code: 2)
                }
            }
            let until = time("--until")
            Events.read(engine, since: time("--since"), until: until, filters: filters, follow: until == nil || until! > Date().timeIntervalSince1970) { e in
                if a.values["--format"] == "json" || a.values["--format"] == "{{json .}}" {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: (try? encoder.encode(e)) ?? Data(), as: UTF8.self))
                } else {
                    let date = Date(timeIntervalSince1970: Double(e.timeNano) / 1e9)
                    let formatter = ISO8601DateFormatter()
                    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                    let attributes = e.Actor.Attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    print("\(formatter.string(from: date)) \(e.Type) \(e.Action) \(e.Actor.ID) (\(attributes))")
                }
                fflush(nil)
                return true
            }
        case "start":
            let a = Arguments(rest, flags: ["--attach", "--interactive"], values: [], aliases: ["-a": "--attach", "-i": "--interactive"])
            guard !a.positional.isEmpty else { fail("start: name at least one container\n\(usage)", code: 2) }
            if a.flags.contains("--attach") {
                guard a.positional.count == 1 else { fail("start -a takes one container", code: 2) }
                let c = try engine.container(a.positional[0])
                let supervisor = try engine.start(c.id, attach: true)
                exit(try engine.waitAttached(c.id, supervisor: supervisor))
            }
            for ref in a.positional { try engine.start(ref); print(ref) }
        case "stop", "restart":
            let a = Arguments(rest, flags: [], values: ["--time"], aliases: ["-t": "--time"])
            guard !a.positional.isEmpty else { fail("\(command): name at least one container\n\(usage)", code: 2) }
            let timeout = a.values["--time"].map { Double($0) ?? -1 } ?? 10
            guard timeout >= 0 else { fail("--time: give whole seconds", code: 2) }
            for ref in a.positional {
                try engine.stop(ref, timeout: timeout)
                if command == "restart" { try engine.start(ref) }
                print(ref)
            }
        case "kill":
            let a = Arguments(rest, flags: [], values: ["--signal"], aliases: ["-s": "--signal"])
            guard !a.positional.isEmpty else { fail("kill: name at least one container\n\(usage)", code: 2) }
            let name = a.values["--signal"] ?? "KILL"
            guard let signal = SignalTable.parse(name) else { fail("--signal \"\(name)\": not a signal", code: 2) }
            for ref in a.positional { try engine.kill(ref, signal: signal); print(ref) }
        case "wait":
            guard !rest.isEmpty else { fail("wait: name at least one container\n\(usage)", code: 2) }
            for ref in rest { print(try engine.waitForExit(ref).map(String.init) ?? "-1") }
        case "logs":
            let a = Arguments(rest, flags: ["--follow", "--timestamps"], values: ["--tail"], aliases: ["-f": "--follow", "-t": "--timestamps", "-n": "--tail"])
            guard a.positional.count == 1 else { fail("logs takes one container\n\(usage)", code: 2) }
            let tail = a.values["--tail"].flatMap { $0 == "all" ? nil : Int($0) }
            try engine.logs(a.positional[0], follow: a.flags.contains("--follow"), tail: tail) { entry in
                let text = (a.flags.contains("--timestamps") ? entry.time + " " : "") + entry.log
                let fd: Int32 = entry.stream == "stderr" ? 2 : 1
                text.withCString { _ = write(fd, $0, strlen($0)) }
            }
        case "inspect":
            guard !rest.isEmpty else { fail("inspect: name at least one container\n\(usage)", code: 2) }
            var out: [ContainerInspect] = []
            for ref in rest { out.append(ContainerInspect(try engine.container(ref), engine: engine)) }
            printJSON(out)
        case "ps":
            let a = Arguments(rest, flags: ["--all", "--quiet", "--no-trunc"], values: ["--format"], aliases: ["-a": "--all", "-q": "--quiet"])
            let list = engine.containers().filter { a.flags.contains("--all") || $0.status == .running }
            if a.flags.contains("--quiet") { for c in list { print(a.flags.contains("--no-trunc") ? c.id : c.shortID) }; return }
            if let format = a.values["--format"] {
                // docker's placeholders ({{.ID}}, {{.Names}}, …), or each container as JSON
                let fields: [(EngineContainer) -> [String: String]] = [{ c in
                    ["ID": a.flags.contains("--no-trunc") ? c.id : c.shortID, "Image": c.imageName, "Command": "\"" + c.command.joined(separator: " ") + "\"",
                     "CreatedAt": c.created, "RunningFor": ago(c.created), "Status": engine.statusText(c),
                     "State": engine.statusText(c).hasSuffix("(Paused)") ? "paused" : c.status.rawValue, "Names": c.name, "Ports": portsText(c), "Labels": "",
                     "Networks": c.attachment?.network ?? (c.networkMode ?? "none")]
                }]
                for c in list {
                    let values = fields[0](c)
                    if format == "json" || format == "{{json .}}" {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                        print(String(decoding: (try? encoder.encode(values)) ?? Data(), as: UTF8.self))
                        continue
                    }
                    var line = format.replacingOccurrences(of: "\\t", with: "\t")
                    for (key, value) in values { line = line.replacingOccurrences(of: "{{.\(key)}}", with: value) }
                    print(line)
                }
                return
            }
            var rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
            for c in list {
                var command = c.command.joined(separator: " ")
                if command.count > 20 && !a.flags.contains("--no-trunc") { command = String(command.prefix(19)) + "…" }
                rows.append([c.shortID, c.imageName, "\"\(command)\"", ago(c.created), engine.statusText(c), portsText(c), c.name])
            }
            table(rows)
        case "rm":
            let a = Arguments(rest, flags: ["--force", "--volumes"], values: [], aliases: ["-f": "--force", "-v": "--volumes"])
            guard !a.positional.isEmpty else { fail("rm: name at least one container\n\(usage)", code: 2) }
            var failed = false
            for ref in a.positional {
                do {
                    try engine.remove(ref, force: a.flags.contains("--force"), volumes: a.flags.contains("--volumes"))
                    print(ref)
                } catch {
                    "berth: \(error)\n".withCString { berth_write_stderr($0) }
                    failed = true
                }
            }
            if failed { exit(1) }
        case "build":
            let a = Arguments(rest, flags: ["--no-cache", "--quiet"], values: ["--file", "--tag", "--build-arg", "--cgroup-parent", "--target"],
                              aliases: ["-f": "--file", "-t": "--tag", "-q": "--quiet"])
            guard a.positional.count == 1 else { fail("build takes one context directory\n\(usage)", code: 2) }
            var options = BuildOptions(context: a.positional[0])
            options.file = a.values["--file"]
            options.tags = a.lists["--tag"] ?? []
            options.noCache = a.flags.contains("--no-cache")
            options.target = a.values["--target"]
            options.cgroupParent = a.values["--cgroup-parent"] ?? options.cgroupParent
            for arg in a.lists["--build-arg"] ?? [] {
                let key = String(arg.prefix { $0 != "=" })
                options.buildArgs[key] = arg.contains("=") ? String(arg.dropFirst(key.count + 1)) : ProcessInfo.processInfo.environment[key] ?? ""
            }
            var builder = Builder(engine: engine)
            if a.flags.contains("--quiet") { builder.say = { _ in } }
            let record = try builder.build(options)
            print(record.id)
        case "export":
            let a = Arguments(rest, flags: [], values: ["--output"], aliases: ["-o": "--output"])
            guard a.positional.count == 1 else { fail("export takes one container\n\(usage)", code: 2) }
            let output = a.values["--output"] ?? "-"
            if output == "-" && isatty(1) != 0 { fail("export: refusing to write an archive to a terminal; use -o FILE or a pipe", code: 2) }
            try engine.export(a.positional[0], to: output)
        default:
            fail("unknown command \"\(command)\"\n\(usage)", code: 2)
        }
    } catch { fail("\(error)") }
}
