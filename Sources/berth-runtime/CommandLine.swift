/// A runc-style command line, parsed by table: `berth-runtime [GLOBAL…] COMMAND [OPTION…] ARG…`.
/// Hand-written rather than ArgumentParser: its reflection over the command tree cost
/// milliseconds on every start, and podman or containerd start the runtime several times per container.
struct ParsedCommandLine {
    var command: String
    var options: [String: [String]] = [:]
    var flags: Set<String> = []
    var arguments: [String] = []

    func value(_ name: String) -> String? { options[name]?.last }
    func values(_ name: String) -> [String] { options[name] ?? [] }
    func has(_ name: String) -> Bool { flags.contains(name) }
}

struct UsageError: Error { var message: String }

/// One command's options: long name → takes a value; short aliases map to long names.
struct CommandSyntax {
    var name: String
    var summary: String
    var usage: String
    var valued: Set<String> = []
    var flags: Set<String> = []
    var short: [Character: String] = [:]
    /// After this many positional arguments the rest is passed through (exec's command, ps's options).
    var passthroughAfter: Int? = nil
}

enum Syntax {
    static let globalValued: Set<String> = ["root", "log", "log-format", "criu", "rootless"]
    static let globalFlags: Set<String> = ["debug", "systemd-cgroup", "help", "version"]

    static let commands: [CommandSyntax] = [
        CommandSyntax(name: "create", summary: "create a container, ready for start",
                      usage: "create [--bundle B] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID",
                      valued: ["bundle", "pid-file", "console-socket", "preserve-fds"], flags: ["no-pivot", "no-new-keyring"], short: ["b": "bundle"]),
        CommandSyntax(name: "start", summary: "start a created container", usage: "start ID"),
        CommandSyntax(name: "run", summary: "create and start a container; in the foreground, exit with its status",
                      usage: "run [-d] [--bundle B] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] [--preserve-fds N] ID",
                      valued: ["bundle", "pid-file", "console-socket", "preserve-fds"], flags: ["detach", "no-pivot", "no-new-keyring", "keep"],
                      short: ["b": "bundle", "d": "detach"]),
        CommandSyntax(name: "state", summary: "print a container's state as JSON", usage: "state ID"),
        CommandSyntax(name: "kill", summary: "send a signal (default TERM) to a container", usage: "kill [--all] ID [SIGNAL]",
                      flags: ["all"], short: ["a": "all"]),
        CommandSyntax(name: "delete", summary: "delete a stopped container (--force: any)", usage: "delete [--force] ID",
                      flags: ["force"], short: ["f": "force"]),
        CommandSyntax(name: "list", summary: "list containers", usage: "list [--format table|json] [-q]",
                      valued: ["format"], flags: ["quiet"], short: ["f": "format", "q": "quiet"]),
        CommandSyntax(name: "ps", summary: "list the processes of a container", usage: "ps [--format table|json] ID",
                      valued: ["format"], short: ["f": "format"], passthroughAfter: 1),
        CommandSyntax(name: "exec", summary: "run a process inside a running container",
                      usage: "exec [--process F | ARGS…] [--tty] [--detach] [--env K=V] [--cwd D] [--user UID[:GID]] [--additional-gids G] [--cap C] [--no-new-privs] [--pid-file F] [--console-socket S] [--preserve-fds N] ID [COMMAND…]",
                      valued: ["process", "env", "cwd", "user", "additional-gids", "cap", "pid-file", "console-socket", "preserve-fds",
                               "process-label", "apparmor"],
                      flags: ["tty", "detach", "no-new-privs", "ignore-paused"],
                      short: ["p": "process", "t": "tty", "d": "detach", "e": "env", "u": "user", "g": "additional-gids", "c": "cap"],
                      passthroughAfter: 1),
        CommandSyntax(name: "update", summary: "change the resources of a running container",
                      usage: "update [--cpu-period N] [--cpu-quota N] [--cpu-share N] [--cpu-rt-period N] [--cpu-rt-runtime N] [--cpuset-cpus L] [--cpuset-mems L] [--memory B] [--memory-reservation B] [--memory-swap B] [--pids-limit N] [--blkio-weight N] [-r resources.json] ID",
                      valued: ["cpu-period", "cpu-quota", "cpu-share", "cpu-rt-period", "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems",
                               "memory", "memory-reservation", "memory-swap", "pids-limit", "blkio-weight", "kernel-memory", "kernel-memory-tcp", "resources"],
                      short: ["r": "resources"]),
        CommandSyntax(name: "events", summary: "stats and OOM events of a container, as JSON lines",
                      usage: "events [--stats] [--interval SECONDS] ID", valued: ["interval"], flags: ["stats"]),
        CommandSyntax(name: "pause", summary: "freeze every process of a container", usage: "pause ID"),
        CommandSyntax(name: "resume", summary: "thaw a paused container", usage: "resume ID"),
        CommandSyntax(name: "spec", summary: "write a default config.json into the bundle", usage: "spec [--rootless] [--bundle B]",
                      valued: ["bundle"], flags: ["rootless"], short: ["b": "bundle"]),
        CommandSyntax(name: "features", summary: "print the runtime-spec features document", usage: "features"),
    ]

    static func syntax(of name: String) -> CommandSyntax? { commands.first { $0.name == name } }

    static var help: String {
        var text = """
        berth-runtime: an OCI container runtime that measures itself

        usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup] COMMAND [OPTIONS] ARGS

        commands:

        """
        for c in commands { text += "  " + c.usage + "\n      " + c.summary + "\n" }
        return text
    }

    /// Splits `--name=value`, `--name value`, `-n value`, Go-style `-name value`, and clustered short flags.
    static func parse(_ args: [String]) throws(UsageError) -> (globals: ParsedCommandLine, command: ParsedCommandLine?) {
        var globals = ParsedCommandLine(command: "")
        var current: ParsedCommandLine?
        var syntax: CommandSyntax?
        var i = 0
        var positionalOnly = false
        while i < args.count {
            let arg = args[i]
            i += 1
            if positionalOnly || !arg.hasPrefix("-") || arg == "-" {
                if current == nil {
                    guard let s = Self.syntax(of: arg) else { throw UsageError(message: "unknown command \"\(arg)\"; see berth-runtime --help") }
                    syntax = s
                    current = ParsedCommandLine(command: arg)
                    continue
                }
                current!.arguments.append(arg)
                if let limit = syntax!.passthroughAfter, current!.arguments.count >= limit { positionalOnly = true }
                continue
            }
            if arg == "--" {
                positionalOnly = true
                continue
            }
            // name and inline value
            var name: String
            var inline: String?
            let body = arg.hasPrefix("--") ? String(arg.dropFirst(2)) : String(arg.dropFirst())
            if let eq = body.firstIndex(of: "=") { name = String(body[..<eq]); inline = String(body[body.index(after: eq)...]) } else { name = body }
            if !arg.hasPrefix("--") && name.count == 1, let s = syntax, let long = s.short[name.first!] { name = long }
            else if !arg.hasPrefix("--") && name.count == 1 && current == nil && name == "v" { name = "version" }
            else if !arg.hasPrefix("--") && name.count == 1 && name == "h" { name = "help" }
            else if !arg.hasPrefix("--") && name.count > 1, let s = syntax, !s.valued.contains(name), !s.flags.contains(name),
                    !globalValued.contains(name), !globalFlags.contains(name) {
                // clustered short flags: -dt
                let longs = name.compactMap { s.short[$0] }
                guard longs.count == name.count, longs.allSatisfy({ s.flags.contains($0) }) else {
                    throw UsageError(message: "unknown option \(arg) for \(s.name)")
                }
                for l in longs { current!.flags.insert(l) }
                continue
            }
            let valued = syntax.map { $0.valued.contains(name) } ?? false
            let flag = syntax.map { $0.flags.contains(name) } ?? false
            if valued || (!flag && globalValued.contains(name)) {
                let value: String
                if let inline { value = inline } else {
                    guard i < args.count else { throw UsageError(message: "option \(arg) needs a value") }
                    value = args[i]
                    i += 1
                }
                if valued { current!.options[name, default: []].append(value) } else { globals.options[name, default: []].append(value) }
            } else if flag {
                if let inline, inline == "false" { continue }
                current!.flags.insert(name)
            } else if globalFlags.contains(name) {
                globals.flags.insert(name)
            } else {
                throw UsageError(message: "unknown option \(arg)" + (syntax.map { " for \($0.name)" } ?? ""))
            }
        }
        return (globals, current)
    }
}
