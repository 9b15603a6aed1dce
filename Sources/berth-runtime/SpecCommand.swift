#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BerthOCI
import BerthRuntime
import BerthSys

struct SpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spec", abstract: "Write a default config.json into the bundle.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long]) var bundle: String = "."
    @Flag(help: "A config for running without root: user namespace, own uid mapped to 0.") var rootless = false
    func run() throws {
        let path = Files.absolute(bundle, relativeTo: Files.currentDirectory()) + "/config.json"
        guard !Files.exists(path) else { throw globals.fail("\(path) already exists; remove it first") }
        let spec = Spec.defaultSpec(rootless: rootless, uid: geteuid(), gid: getegid())
        try perform(globals) { try Files.writeAtomically(spec.encoded(), to: path, mode: 0o644) }
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the runtime-spec features document.")
    @OptionGroup var globals: GlobalOptions
    func run() throws {
        printLine(String(decoding: FeaturesDocument.current().encoded(), as: UTF8.self))
    }
}
