#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ArgumentParser
import BerthOCI
import BerthRuntime
import BerthSys

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a process inside a running container.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "process.json with the process to run.") var process: String?
    @Flag(name: [.short, .long]) var tty = false
    @Flag(name: [.short, .long]) var detach = false
    @Option(name: [.short, .long], help: "KEY=VALUE to add to the environment.") var env: [String] = []
    @Option(name: .long) var cwd: String?
    @Option(name: [.short, .long], help: "uid[:gid]") var user: String?
    @Option(name: [.short, .customLong("additional-gids")]) var additionalGids: [UInt32] = []
    @Option(name: .customLong("cap"), help: "Add a capability.") var caps: [String] = []
    @Flag(name: .customLong("no-new-privs")) var noNewPrivs = false
    @Option(name: .customLong("pid-file")) var pidFile: String?
    @Option(name: .customLong("console-socket")) var consoleSocket: String?
    @Option(name: .customLong("preserve-fds")) var preserveFDs: Int = 0
    @Option(name: .customLong("process-label")) var processLabel: String?
    @Option(name: .customLong("apparmor")) var apparmor: String?
    @Argument var id: String
    @Argument(parsing: .captureForPassthrough) var args: [String] = []

    func run() throws {
        let runtime = try globals.runtime()
        let code = try perform(globals) { () throws -> Int32 in
            let record = try runtime.record(id: id)
            var proc: BerthOCI.Process
            if let process {
                let bytes = try Files.readBytes(process)
                do { proc = try JSONDecoder().decode(BerthOCI.Process.self, from: Data(bytes)) } catch let error as DecodingError {
                    throw BerthError("\(process): \(Spec.describeDecoding(error))")
                }
            } else {
                // runc: the container's process is the template; the command line overrides it
                var command = args
                if command.first == "--" { command.removeFirst() }
                guard !command.isEmpty else { throw BerthError("exec: give a command or --process") }
                proc = record.process ?? BerthOCI.Process(args: command)
                proc.args = command
                proc.terminal = tty
                proc.consoleSize = nil
                proc.env = (proc.env ?? []) + env
                if let cwd { proc.cwd = cwd }
                if let user {
                    let parts = user.split(separator: ":")
                    guard let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                        throw BerthError("exec: --user \"\(user)\" is not uid[:gid]")
                    }
                    proc.user = User(uid: uid, gid: parts.count > 1 ? UInt32(parts[1])! : proc.user.gid)
                }
                if !additionalGids.isEmpty { proc.user.additionalGids = additionalGids }
                if noNewPrivs { proc.noNewPrivileges = true }
                if !caps.isEmpty {
                    var c = proc.capabilities ?? Capabilities()
                    c.bounding = (c.bounding ?? []) + caps
                    c.effective = (c.effective ?? []) + caps
                    c.permitted = (c.permitted ?? []) + caps
                    proc.capabilities = c
                }
                if let apparmor { proc.apparmorProfile = apparmor }
                if let processLabel { proc.selinuxLabel = processLabel }
            }
            var options = ExecOptions()
            options.pidFile = pidFile
            options.consoleSocket = consoleSocket
            options.detach = detach
            options.preserveFDs = preserveFDs
            return try runtime.exec(id: id, process: proc, options: options)
        }
        if code != 0 { throw ExitCode(code) }
    }
}
