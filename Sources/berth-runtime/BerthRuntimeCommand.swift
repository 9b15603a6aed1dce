#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BerthOCI
import BerthRuntime
import BerthSys

/// `berth-runtime`: the OCI runtime CLI that podman and containerd call the way they call runc.
struct BerthRuntimeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-runtime",
        abstract: "An OCI container runtime that measures itself.",
        version: berthVersion,
        subcommands: [Create.self, Start.self, Run.self, StateCommand.self, Kill.self, Delete.self, List.self, Ps.self,
                      Exec.self, Pause.self, Resume.self, SpecCommand.self, Features.self]
    )
}

let berthVersion = """
    berth-runtime version 0.1.0
    spec: \(Spec.supportedVersion)
    """

/// The options runc accepts before any command.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Root directory for container state.")
    var root: String = "/run/berth-runtime"
    @Option(help: "Log file for errors and warnings (also printed on stderr).")
    var log: String?
    @Option(name: .customLong("log-format"), help: "Log format: text or json.")
    var logFormat: String = "text"
    @Flag(help: "Log debug messages.")
    var debug = false
    @Flag(name: .customLong("systemd-cgroup"), help: "Use the systemd cgroup driver (not supported).")
    var systemdCgroup = false
    @Option(help: .hidden)
    var criu: String?

    var logger: Logger { Logger(file: log, format: Logger.Format(rawValue: logFormat) ?? .text, debug: debug) }

    func runtime() throws -> Runtime {
        if systemdCgroup {
            throw fail("--systemd-cgroup: the systemd cgroup driver is not supported (no systemd on this host); use cgroupfs paths")
        }
        return Runtime(root: root, log: logger)
    }

    /// Logs the error (stderr and --log) and exits 1: one readable line per failure.
    func fail(_ message: String) -> ExitCode {
        logger.error(message)
        return ExitCode(1)
    }
}

/// Runs a command body, turning a BerthError into one logged line and exit 1.
func perform<T>(_ globals: GlobalOptions, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as BerthError {
        throw globals.fail(error.description)
    }
}

func printLine(_ text: String) {
    print(text)
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container, ready for start.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "Bundle directory (default: current directory).") var bundle: String = "."
    @Option(name: .customLong("pid-file"), help: "Write the container's pid here.") var pidFile: String?
    @Option(name: .customLong("console-socket"), help: "Unix socket to receive the pty master.") var consoleSocket: String?
    @Flag(name: .customLong("no-pivot"), help: "chroot instead of pivot_root.") var noPivot = false
    @Flag(name: .customLong("no-new-keyring"), help: "Keep the caller's session keyring.") var noNewKeyring = false
    @Option(name: .customLong("preserve-fds"), help: "Pass N extra fds (from 3) to the container.") var preserveFDs: Int = 0
    @Argument var id: String

    func run() throws {
        let runtime = try globals.runtime()
        try perform(globals) { try runtime.create(id: id, options: createOptions(bundle, pidFile, consoleSocket, noPivot, noNewKeyring, preserveFDs)) }
    }
}

func createOptions(_ bundle: String, _ pidFile: String?, _ consoleSocket: String?, _ noPivot: Bool, _ noNewKeyring: Bool, _ preserveFDs: Int) -> CreateOptions {
    var options = CreateOptions(bundle: bundle)
    options.pidFile = pidFile
    options.consoleSocket = consoleSocket
    options.noPivot = noPivot
    options.noNewKeyring = noNewKeyring
    options.preserveFDs = preserveFDs
    return options
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a created container.")
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String
    func run() throws {
        let runtime = try globals.runtime()
        try perform(globals) { try runtime.start(id: id) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create and start a container; in the foreground, exit with its status.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long]) var bundle: String = "."
    @Option(name: .customLong("pid-file")) var pidFile: String?
    @Option(name: .customLong("console-socket")) var consoleSocket: String?
    @Flag(name: [.short, .long], help: "Detach: return once the container runs.") var detach = false
    @Flag(name: .customLong("no-pivot")) var noPivot = false
    @Flag(name: .customLong("no-new-keyring")) var noNewKeyring = false
    @Option(name: .customLong("preserve-fds")) var preserveFDs: Int = 0
    @Flag(name: .customLong("keep"), help: "Ignored (compatibility).") var keep = false
    @Argument var id: String

    func run() throws {
        let runtime = try globals.runtime()
        let code = try perform(globals) {
            try runtime.run(id: id, options: createOptions(bundle, pidFile, consoleSocket, noPivot, noNewKeyring, preserveFDs), detach: detach)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Print a container's state as JSON.")
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String
    func run() throws {
        let runtime = try globals.runtime()
        let state = try perform(globals) { try runtime.state(id: id) }
        printLine(String(decoding: state.encoded(pretty: true), as: UTF8.self))
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal (default TERM) to a container.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.short, .long], help: "Signal every process in the container.") var all = false
    @Argument var id: String
    @Argument var signal: String = "TERM"
    func run() throws {
        let runtime = try globals.runtime()
        guard let number = SignalTable.parse(signal) else { throw globals.fail("unknown signal \"\(signal)\"") }
        try perform(globals) { try runtime.kill(id: id, signal: number, all: all) }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a stopped container (--force: any).")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.short, .long]) var force = false
    @Argument var id: String
    func run() throws {
        let runtime = try globals.runtime()
        try perform(globals) {
            // runc: deleting a container that does not exist with --force is not an error
            if force && !runtime.store.exists(id) { return }
            try runtime.delete(id: id, force: force)
        }
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List containers.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "table or json") var format: String = "table"
    @Flag(name: [.short, .long], help: "Only ids.") var quiet = false
    func run() throws {
        let runtime = try globals.runtime()
        let items = runtime.list()
        if quiet { items.forEach { printLine($0.state.id) }; return }
        if format == "json" {
            let entries = items.map { item in
                "{\"ociVersion\":\"\(item.state.ociVersion)\",\"id\":\"\(item.state.id)\",\"pid\":\(item.state.pid ?? 0),\"status\":\"\(item.state.status.rawValue)\",\"bundle\":\"\(item.state.bundle)\",\"created\":\"\(item.created)\",\"owner\":\"\(userName(item.owner))\"}"
            }
            printLine("[" + entries.joined(separator: ",") + "]")
            return
        }
        var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += items.map { [$0.state.id, String($0.state.pid ?? 0), $0.state.status.rawValue, $0.state.bundle, $0.created, userName($0.owner)] }
        printTable(rows)
    }
}

func userName(_ uid: UInt32) -> String {
    guard let pw = getpwuid(uid) else { return "#\(uid)" }
    return String(cString: pw.pointee.pw_name)
}

func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    let widths = (0..<first.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        printLine(row.enumerated().map { $0.element.padding(widths[$0.offset]) }.joined(separator: "   ").trimmingTrailing())
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    func trimmingTrailing() -> String { var s = self; while s.last == " " { s.removeLast() }; return s }
}

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the processes of a container.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "table or json") var format: String = "table"
    @Argument var id: String
    @Argument(parsing: .captureForPassthrough, help: "Ignored ps(1) options.") var psArgs: [String] = []
    func run() throws {
        let runtime = try globals.runtime()
        let pids = try perform(globals) { try runtime.processes(id: id) }
        if format == "json" {
            printLine("[" + pids.map(String.init).joined(separator: ",") + "]")
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
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Freeze every process of a container.")
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String
    func run() throws {
        let runtime = try globals.runtime()
        try perform(globals) { try runtime.pause(id: id) }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Thaw a paused container.")
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String
    func run() throws {
        let runtime = try globals.runtime()
        try perform(globals) { try runtime.resume(id: id) }
    }
}
