import Foundation
import PackagePlugin

/// Compiles the target's eBPF programs (`bpf/*.bpf.c`) with clang's `bpf` target
/// during the normal build, then embeds each object in a generated Swift file, so
/// the binaries carry their probes and nothing prebuilt is committed. The objects
/// are CO-RE: field offsets are resolved by libbpf against the running kernel's BTF.
@main
struct BerthBPFPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let bpfDirectory = target.directoryURL.appending(path: "bpf")
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path)
        let headers = files.filter { $0.hasSuffix(".h") }.map { bpfDirectory.appending(path: $0) }
        // The record layout shared with the C loader lives in its public header.
        let abiInclude = context.package.directoryURL.appending(path: "Sources/CBerthProbes/include")
        let abiHeaders = ((try? FileManager.default.contentsOfDirectory(atPath: abiInclude.path)) ?? [])
            .map { abiInclude.appending(path: $0) }
        let clang = try clangURL(context)
        let embed = try context.tool(named: "berth-bpf-embed").url

        var commands: [Command] = []
        for file in files.sorted() where file.hasSuffix(".bpf.c") {
            let source = bpfDirectory.appending(path: file)
            let stem = String(file.dropLast(".bpf.c".count))
            let object = context.pluginWorkDirectoryURL.appending(path: "\(stem).bpf.o")
            let swift = context.pluginWorkDirectoryURL.appending(path: "\(stem)_bpf.swift")
            commands.append(.buildCommand(
                displayName: "Compiling eBPF \(file)",
                executable: clang,
                arguments: ["-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
                            "-I", abiInclude.path, "-I", bpfDirectory.path,
                            "-c", source.path, "-o", object.path],
                inputFiles: [source] + headers + abiHeaders,
                outputFiles: [object]
            ))
            commands.append(.buildCommand(
                displayName: "Embedding eBPF \(stem).bpf.o",
                executable: embed,
                arguments: [object.path, swift.path, symbolName(stem)],
                inputFiles: [object],
                outputFiles: [swift]
            ))
        }
        return commands
    }

    /// `berth_probes` → `berthProbesObject`.
    func symbolName(_ stem: String) -> String {
        let parts = stem.split(separator: "_")
        return parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined() + "Object"
    }

    /// The toolchain's clang (the one beside swift), else the first clang on PATH.
    func clangURL(_ context: PluginContext) throws -> URL {
        if let tool = try? context.tool(named: "clang") { return tool.url }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appending(path: "clang")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw BPFPluginError("no clang found (toolchain or PATH): clang's bpf target compiles the probes")
    }
}

struct BPFPluginError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
