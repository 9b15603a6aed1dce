#if canImport(Glibc)
import Glibc
#endif
import BerthOCI
import BerthRuntime
import BerthSys

let berthVersion = "berth-runtime version 0.1.0\nspec: \(Spec.supportedVersion)"

/// One line on stderr (and the --log file), exit 1: every failure looks the same.
func fail(_ message: String, _ logger: Logger) -> Never {
    logger.error(message)
    exit(1)
}

/// A line on stdout, written at once (events stream; a pipe must see each line as it comes).
func out(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(1, $0, strlen($0)) }
}

func main() -> Never {
    let parsed: (globals: ParsedCommandLine, command: ParsedCommandLine?)
    do { parsed = try Syntax.parse(Array(CommandLine.arguments.dropFirst())) } catch {
        fail(error.message, Logger())
    }
    let globals = parsed.globals
    let logger = Logger(file: globals.value("log"), format: Logger.Format(rawValue: globals.value("log-format") ?? "text") ?? .text,
                        debug: globals.has("debug"))
    if globals.has("version") { out(berthVersion); exit(0) }
    guard let command = parsed.command, !globals.has("help"), !command.has("help") else {
        out(Syntax.help)
        exit(parsed.command == nil && !globals.has("help") ? 1 : 0)
    }
    if globals.has("systemd-cgroup") {
        fail("--systemd-cgroup: the systemd cgroup driver is not supported (no systemd on this host); use cgroupfs paths", logger)
    }
    if let format = globals.value("log-format"), Logger.Format(rawValue: format) == nil {
        fail("--log-format \"\(format)\": use text or json", logger)
    }
    let runtime = Runtime(root: globals.value("root") ?? Runtime.defaultRoot, log: logger)
    do {
        exit(try dispatch(command, runtime))
    } catch let error as BerthError {
        fail(error.description, logger)
    } catch let error as UsageError {
        fail(error.message, logger)
    } catch {
        fail("\(error)", logger)
    }
}

/// Exactly `count` positional arguments, named for the message.
func positional(_ c: ParsedCommandLine, _ names: String...) throws(UsageError) -> [String] {
    guard c.arguments.count == names.count else {
        throw UsageError(message: "\(c.command): expected \(names.joined(separator: " ")), got \(c.arguments.isEmpty ? "nothing" : c.arguments.joined(separator: " "))")
    }
    return c.arguments
}

func createOptions(_ c: ParsedCommandLine) throws(UsageError) -> CreateOptions {
    var options = CreateOptions(bundle: c.value("bundle") ?? ".")
    options.pidFile = c.value("pid-file")
    options.consoleSocket = c.value("console-socket")
    options.noPivot = c.has("no-pivot")
    options.noNewKeyring = c.has("no-new-keyring")
    if let n = c.value("preserve-fds") {
        guard let count = Int(n), count >= 0 else { throw UsageError(message: "--preserve-fds \"\(n)\" is not a count") }
        options.preserveFDs = count
    }
    return options
}

func dispatch(_ c: ParsedCommandLine, _ runtime: Runtime) throws -> Int32 {
    switch c.command {
    case "create":
        let id = try positional(c, "ID")[0]
        try runtime.create(id: id, options: try createOptions(c))
    case "start":
        try runtime.start(id: try positional(c, "ID")[0])
    case "run":
        let id = try positional(c, "ID")[0]
        return try runtime.run(id: id, options: try createOptions(c), detach: c.has("detach"), keep: c.has("keep"))
    case "state":
        let state = try runtime.state(id: try positional(c, "ID")[0])
        out(String(decoding: state.encoded(pretty: true), as: UTF8.self))
    case "kill":
        guard c.arguments.count == 1 || c.arguments.count == 2 else { throw UsageError(message: "kill: expected ID [SIGNAL]") }
        let name = c.arguments.count == 2 ? c.arguments[1] : "TERM"
        guard let signal = SignalTable.parse(name) else { throw UsageError(message: "unknown signal \"\(name)\"") }
        try runtime.kill(id: c.arguments[0], signal: signal, all: c.has("all"))
    case "delete":
        let id = try positional(c, "ID")[0]
        // runc: deleting a container that does not exist with --force is not an error
        if c.has("force") && !runtime.store.exists(id) { return 0 }
        try runtime.delete(id: id, force: c.has("force"))
    case "list":
        list(runtime, format: c.value("format") ?? "table", quiet: c.has("quiet"))
    case "ps":
        guard !c.arguments.isEmpty else { throw UsageError(message: "ps: expected ID") }
        try ps(runtime, id: c.arguments[0], format: c.value("format") ?? "table")
    case "exec":
        return try exec(c, runtime)
    case "update":
        let id = try positional(c, "ID")[0]
        try runtime.update(id: id, resources: try updateResources(c))
    case "events":
        let id = try positional(c, "ID")[0]
        let text = c.value("interval") ?? "5s"
        guard let interval = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), interval > 0 else {
            throw UsageError(message: "--interval \"\(text)\" is not a number of seconds")
        }
        try runtime.events(id: id, statsOnly: c.has("stats"), interval: interval) { line in
            out(line)
        }
    case "pause":
        try runtime.pause(id: try positional(c, "ID")[0])
    case "resume":
        try runtime.resume(id: try positional(c, "ID")[0])
    case "spec":
        _ = try positional(c)
        let path = Files.absolute(c.value("bundle") ?? ".", relativeTo: Files.currentDirectory()) + "/config.json"
        guard !Files.exists(path) else { throw BerthError("\(path) already exists; remove it first") }
        let spec = Spec.defaultSpec(rootless: c.has("rootless"), uid: geteuid(), gid: getegid())
        try Files.writeAtomically(spec.encoded(), to: path, mode: 0o644)
    case "features":
        out(String(decoding: FeaturesDocument.current().encoded(), as: UTF8.self))
    default:
        throw UsageError(message: "unknown command \"\(c.command)\"")
    }
    return 0
}

func list(_ runtime: Runtime, format: String, quiet: Bool) {
    let items = runtime.list()
    if quiet { items.forEach { out($0.state.id) }; return }
    if format == "json" {
        let entries = items.map { item in
            "{\"ociVersion\":\"\(item.state.ociVersion)\",\"id\":\"\(item.state.id)\",\"pid\":\(item.state.pid ?? 0),\"status\":\"\(item.state.status.rawValue)\",\"bundle\":\"\(item.state.bundle)\",\"created\":\"\(item.created)\",\"owner\":\"\(userName(item.owner))\"}"
        }
        out("[" + entries.joined(separator: ",") + "]")
        return
    }
    var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += items.map { [$0.state.id, String($0.state.pid ?? 0), $0.state.status.rawValue, $0.state.bundle, $0.created, userName($0.owner)] }
    printTable(rows)
}

func ps(_ runtime: Runtime, id: String, format: String) throws {
    let pids = try runtime.processes(id: id)
    if format == "json" {
        out("[" + pids.map(String.init).joined(separator: ",") + "]")
        return
    }
    var rows = [["UID", "PID", "PPID", "CMD"]]
    for pid in pids {
        let uid = (try? Files.read("/proc/\(pid)/status"))?.split(separator: "\n").first { $0.hasPrefix("Uid:") }?
            .split(separator: "\t").dropFirst().first.map(String.init) ?? "?"
        rows.append([uid, String(pid), String(Processes.parentPid(pid) ?? 0), Processes.commandLine(pid)])
    }
    printTable(rows)
}

func exec(_ c: ParsedCommandLine, _ runtime: Runtime) throws -> Int32 {
    guard let id = c.arguments.first else { throw UsageError(message: "exec: expected ID") }
    let record = try runtime.record(id: id)
    var proc: BerthOCI.Process
    if let path = c.value("process") {
        let bytes = try Files.readBytes(path)
        proc = try Spec.decodeJSON(bytes, as: BerthOCI.Process.self, source: path)
    } else {
        // runc: the container's process is the template; the command line overrides it
        let command = Array(c.arguments.dropFirst())
        guard !command.isEmpty else { throw UsageError(message: "exec: give a command or --process") }
        proc = record.process ?? BerthOCI.Process(args: command)
        proc.args = command
        proc.terminal = c.has("tty")
        proc.consoleSize = nil
        proc.env = (proc.env ?? []) + c.values("env")
        if let cwd = c.value("cwd") { proc.cwd = cwd }
        if let user = c.value("user") {
            let parts = user.split(separator: ":")
            guard let uid = UInt32(parts.first ?? ""), parts.count <= 2, parts.count == 1 || UInt32(parts[1]) != nil else {
                throw UsageError(message: "exec: --user \"\(user)\" is not uid[:gid]")
            }
            proc.user = User(uid: uid, gid: parts.count > 1 ? UInt32(parts[1])! : proc.user.gid)
        }
        let gids = try c.values("additional-gids").map { (g: String) throws(UsageError) -> UInt32 in
            guard let v = UInt32(g) else { throw UsageError(message: "exec: --additional-gids \"\(g)\" is not a gid") }
            return v
        }
        if !gids.isEmpty { proc.user.additionalGids = gids }
        if c.has("no-new-privs") { proc.noNewPrivileges = true }
        let caps = c.values("cap")
        if !caps.isEmpty {
            var set = proc.capabilities ?? Capabilities()
            set.bounding = (set.bounding ?? []) + caps
            set.effective = (set.effective ?? []) + caps
            set.permitted = (set.permitted ?? []) + caps
            proc.capabilities = set
        }
        if let apparmor = c.value("apparmor") { proc.apparmorProfile = apparmor }
        if let label = c.value("process-label") { proc.selinuxLabel = label }
    }
    var options = ExecOptions()
    options.pidFile = c.value("pid-file")
    options.consoleSocket = c.value("console-socket")
    options.detach = c.has("detach")
    if let n = c.value("preserve-fds") { options.preserveFDs = Int(n) ?? 0 }
    return try runtime.exec(id: id, process: proc, options: options)
}

/// runc update's flags, or a resources JSON file (`-r -` reads stdin).
func updateResources(_ c: ParsedCommandLine) throws -> Resources {
    if let path = c.value("resources") {
        let bytes = path == "-" ? Array(readAllStdin()) : try Files.readBytes(path)
        return try Spec.decodeJSON(bytes, as: Resources.self, source: path == "-" ? "stdin" : path)
    }
    func int(_ name: String) throws(UsageError) -> Int64? {
        guard let text = c.value(name) else { return nil }
        guard let v = Int64(text) else { throw UsageError(message: "--\(name) \"\(text)\" is not an integer") }
        return v
    }
    func bytes(_ name: String) throws(UsageError) -> Int64? {
        guard let text = c.value(name) else { return nil }
        guard let v = parseBytes(text) else { throw UsageError(message: "--\(name) \"\(text)\" is not a size (bytes, or with k, m, g)") }
        return v
    }
    var r = Resources()
    var cpu = Resources.CPU()
    cpu.period = try int("cpu-period").map { UInt64(max(0, $0)) }
    cpu.quota = try int("cpu-quota")
    cpu.shares = try int("cpu-share").map { UInt64(max(0, $0)) }
    cpu.realtimePeriod = try int("cpu-rt-period").map { UInt64(max(0, $0)) }
    cpu.realtimeRuntime = try int("cpu-rt-runtime")
    cpu.cpus = c.value("cpuset-cpus")
    cpu.mems = c.value("cpuset-mems")
    if cpu != Resources.CPU() { r.cpu = cpu }
    var memory = Resources.Memory()
    memory.limit = try bytes("memory")
    memory.reservation = try bytes("memory-reservation")
    memory.swap = try bytes("memory-swap")
    memory.kernel = try bytes("kernel-memory")
    memory.kernelTCP = try bytes("kernel-memory-tcp")
    if memory != Resources.Memory() { r.memory = memory }
    if let limit = try int("pids-limit") { r.pids = Resources.Pids(limit: limit) }
    if let weight = try int("blkio-weight") {
        throw UsageError(message: "--blkio-weight \(weight): blkio weights are not supported on this host (no CFQ/BFQ io scheduler)")
    }
    return r
}

/// 1024, 64k, 64m, 1g (binary units, as runc and docker read them); -1 stays -1.
func parseBytes(_ text: String) -> Int64? {
    let lower = text.lowercased()
    let units: [(String, Int64)] = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10), ("b", 1)]
    for (suffix, scale) in units where lower.hasSuffix(suffix) {
        guard let n = Int64(lower.dropLast(suffix.count)) else { return nil }
        return n * scale
    }
    return Int64(lower)
}

func readAllStdin() -> [UInt8] {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(0, &buf, buf.count)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

/// The owner column of `list`, from the host's /etc/passwd: the binary is static, and glibc's
/// getpwuid would dlopen NSS modules of the exact glibc it was linked with.
func userName(_ uid: UInt32) -> String {
    let passwd = String(decoding: (try? Files.readBytes("/etc/passwd")) ?? [], as: UTF8.self)
    for line in passwd.split(separator: "\n") {
        let fields = line.split(separator: ":", omittingEmptySubsequences: false)
        if fields.count > 2, UInt32(fields[2]) == uid { return String(fields[0]) }
    }
    return "#\(uid)"
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        var line = row.enumerated().map { $0.element + String(repeating: " ", count: max(0, widths[$0.offset] - $0.element.count)) }
            .joined(separator: "   ")
        while line.last == " " { line.removeLast() }
        out(line)
    }
}

main()
