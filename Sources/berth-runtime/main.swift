/// runc's callers put global options before the command (`--root R create ID`);
/// ArgumentParser wants them after it. Move them, values included.
let globalOptionsWithValue: Set<String> = ["--root", "--log", "--log-format", "--criu", "--rootless"]
let globalFlags: Set<String> = ["--debug", "--systemd-cgroup"]

func rearranged(_ args: [String]) -> [String] {
    var globals: [String] = []
    var i = 0
    while i < args.count {
        let arg = args[i]
        let name = String(arg.split(separator: "=", maxSplits: 1).first ?? "")
        if globalOptionsWithValue.contains(name) {
            if name == "--rootless" { i += arg.contains("=") ? 1 : 2; continue } // runc's --rootless auto|true|false: detected here
            globals.append(arg)
            if !arg.contains("="), i + 1 < args.count { globals.append(args[i + 1]); i += 1 }
            i += 1
        } else if globalFlags.contains(name) {
            globals.append(arg)
            i += 1
        } else {
            break
        }
    }
    let rest = Array(args[i...])
    guard let command = rest.first, !command.hasPrefix("-") else { return rest + globals }
    return [command] + globals + rest.dropFirst()
}

BerthRuntimeCommand.main(rearranged(Array(CommandLine.arguments.dropFirst())))
