import Foundation
import PackagePlugin

/// Compiles C programs that a target carries inside its binary, during the normal
/// build, and embeds each result in a generated Swift file, so nothing prebuilt
/// is committed:
/// - `bpf/*.bpf.c`: eBPF programs, clang's `bpf` target, CO-RE (field offsets are
///   resolved by libbpf against the running kernel's BTF) → `<name>Object`;
/// - `programs/*.c`: freestanding static executables for the host (no libc, no
///   interpreter: they run from a memfd inside a container) → `<name>Program`.
@main
struct BerthEmbedPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let clang = try clangURL(context)
        let embed = try context.tool(named: "berth-embed").url
        // Shared record layouts live in the C modules' public headers.
        let includes = ["CBerthProbes", "CBerthLaunch"].map { context.package.directoryURL.appending(path: "Sources/\($0)/include") }
        let includeHeaders = includes.flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).map { dir.appending(path: $0) }
        }
        var commands: [Command] = []
        for kind in Kind.allCases {
            let directory = target.directoryURL.appending(path: kind.directory)
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { continue }
            let headers = files.filter { $0.hasSuffix(".h") }.map { directory.appending(path: $0) }
            for file in files.sorted() where file.hasSuffix(kind.suffix) {
                let source = directory.appending(path: file)
                let stem = String(file.dropLast(kind.suffix.count))
                let output = context.pluginWorkDirectoryURL.appending(path: stem + kind.outputSuffix)
                let swift = context.pluginWorkDirectoryURL.appending(path: "\(stem)_\(kind.directory).swift")
                // one command: the object is berth-embed's scratch file, not a declared output
                // (a declared non-Swift output would become a resource bundle)
                commands.append(.buildCommand(
                    displayName: "Compiling and embedding \(kind.displayName) \(file)",
                    executable: embed,
                    arguments: [output.path, swift.path, symbolName(stem, suffix: kind.symbolSuffix), "--", clang.path]
                        + kind.flags + ["-Wall", "-Werror", "-I", directory.path]
                        + includes.flatMap { ["-I", $0.path] } + [source.path, "-o", output.path],
                    inputFiles: [source] + headers + includeHeaders,
                    outputFiles: [swift]
                ))
            }
        }
        return commands
    }

    enum Kind: CaseIterable {
        case bpf, program
        var directory: String { self == .bpf ? "bpf" : "programs" }
        var suffix: String { self == .bpf ? ".bpf.c" : ".c" }
        var outputSuffix: String { self == .bpf ? ".bpf.o" : ".elf" }
        var symbolSuffix: String { self == .bpf ? "Object" : "Program" }
        var displayName: String { self == .bpf ? "eBPF" : "static program" }
        var flags: [String] {
            switch self {
            case .bpf: ["-target", "bpf", "-O2", "-g", "-c"]
            case .program: ["-O2", "-static", "-nostdlib", "-fno-pic", "-ffreestanding", "-fno-stack-protector",
                            "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fuse-ld=lld",
                            "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-s"]
            }
        }
    }

    /// `berth_probes` → `berthProbesObject`.
    func symbolName(_ stem: String, suffix: String) -> String {
        let parts = stem.split(separator: "_")
        return parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined() + suffix
    }

    /// The toolchain's clang (the one beside swift), else the first clang on PATH.
    func clangURL(_ context: PluginContext) throws -> URL {
        if let tool = try? context.tool(named: "clang") { return tool.url }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appending(path: "clang")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw EmbedPluginError("no clang found (toolchain or PATH): it compiles the eBPF probes and berth-dmz")
    }
}

struct EmbedPluginError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
