#if canImport(Glibc)
import Glibc
#endif
import Foundation
import BerthImage
import BerthOCI
import BerthRuntime
import BerthSys

/// Options of `berth build`.
public struct BuildOptions: Sendable {
    public var context: String
    /// The Containerfile; `<context>/Containerfile` or `<context>/Dockerfile` when nil.
    public var file: String?
    public var tags: [String] = []
    public var buildArgs: [String: String] = [:]
    public var noCache = false
    /// Build up to this stage (`FROM … AS name`) and make it the image.
    public var target: String?
    public var cgroupParent = "berth"
    public init(context: String) { self.context = context }
}

/// `berth build`: a Containerfile's instructions, one layer per RUN, COPY and
/// ADD. RUN steps run in berth containers (an overlay over the layers so far,
/// the step's changes taken from its upper directory); layers are cached by
/// parent + instruction (+ the copied files' content for COPY/ADD).
public struct Builder {
    public let engine: Engine
    public var say: (String) -> Void = { print($0) }

    public init(engine: Engine) { self.engine = engine }

    var store: ImageStore { engine.images }
    var cacheDir: String { store.root + "/build-cache" }

    struct Stage {
        var name: String?
        var config: ImageConfig
        var layers: [Descriptor] = []
        var chain: [Digest] = []
        var args: [String: String] = [:]
    }

    struct CacheEntry: Codable {
        var layer: Descriptor?
        var diffID: Digest?
    }

    public func build(_ options: BuildOptions) throws(BerthError) -> ImageRecord {
        let context = try Files.realPath(options.context)
        guard Files.isDirectory(context) else { throw BerthError("build context \(options.context): not a directory") }
        let file = options.file ?? (Files.exists(context + "/Containerfile") ? context + "/Containerfile" : context + "/Dockerfile")
        let text = try Files.read(file)
        let instructions = try Instruction.parse(text, describing: file)
        guard instructions.contains(where: { $0.keyword == "FROM" }) else { throw BerthError("\(file): no FROM instruction") }
        let tags = try options.tags.map { (t) throws(BerthError) in try Reference(parsing: t) }
        let lock = try store.contentLock(exclusive: false)
        defer { withExtendedLifetime(lock) {} }
        try Files.makeDirectories(cacheDir, mode: 0o700)

        var globalArgs: [String: String] = [:]
        var stages: [Stage] = []
        var stage: Stage?
        for (n, instruction) in instructions.enumerated() {
            let flags = instruction.flags.sorted { $0.key < $1.key }.map { "--\($0.key)=\($0.value) " }.joined()
            let step = "STEP \(n + 1)/\(instructions.count): \(instruction.keyword) \(flags)\(instruction.text)"
            let what = "\(file) line \(instruction.line)"
            if instruction.keyword == "ARG" && stage == nil {
                say(step)
                let (k, v) = try argument(instruction, options: options, env: globalArgs, what: what)
                globalArgs[k] = v
                continue
            }
            if instruction.keyword == "FROM" {
                say(step)
                if let s = stage {
                    stages.append(s)
                    if let target = options.target, s.name == target.lowercased() { break }
                }
                stage = try from(instruction, stages: stages, env: globalArgs, what: what)
                continue
            }
            guard var current = stage else { throw BerthError("\(what): \(instruction.keyword) before FROM") }
            say(step)
            try apply(instruction, to: &current, stages: stages, context: context, options: options, what: what)
            stage = current
        }
        if let target = options.target, let chosen = stages.first(where: { $0.name == target.lowercased() }) { stage = chosen }
        else if let target = options.target, stage?.name != target.lowercased() { throw BerthError("\(file): no stage named \(target)") }
        guard var final = stage else { throw BerthError("\(file): no FROM instruction") }
        final.config.created = Timestamp.now()
        say("COMMIT \(tags.map(\.familiar).joined(separator: ", "))")
        let record = try ImageBuilder(store: store).record(final.config, layers: final.layers, names: tags)
        say("--> \(record.id.short)")
        for t in tags { say("Successfully tagged \(t.familiar)") }
        return record
    }

    // MARK: instructions

    private func from(_ i: Instruction, stages: [Stage], env: [String: String], what: String) throws(BerthError) -> Stage {
        let words = Instruction.words(expand(i.text, env, what: what))
        guard let source = words.first else { throw BerthError("\(what): FROM needs an image") }
        var name: String?
        if words.count == 3 && words[1].uppercased() == "AS" { name = words[2].lowercased() }
        else if words.count != 1 { throw BerthError("\(what): FROM IMAGE [AS NAME]") }
        if let earlier = stages.first(where: { $0.name == source.lowercased() }) {
            var s = earlier
            s.name = name
            s.args = [:]
            return s
        }
        if source == "scratch" {
            return Stage(name: name, config: ImageConfig(config: ImageConfig.Config(), rootfs: .init(diffIDs: []), history: []))
        }
        let image: ImageRecord
        if let local = try? store.resolve(source) { image = local } else {
            var d = Distribution(store: store)
            d.say = say
            image = try d.pull(source)
        }
        let manifest = try store.manifest(of: image)
        return Stage(name: name, config: try store.config(of: image), layers: manifest.layers, chain: image.chain)
    }

    private func argument(_ i: Instruction, options: BuildOptions, env: [String: String], what: String) throws(BerthError) -> (String, String) {
        let text = i.text
        let key = String(text.prefix { $0 != "=" && !$0.isWhitespace })
        guard !key.isEmpty else { throw BerthError("\(what): ARG needs a name") }
        let fallback = text.contains("=") ? Instruction.unquote(expand(String(text[text.index(after: text.firstIndex(of: "=")!)...]), env, what: what)) : ""
        return (key, options.buildArgs[key] ?? env[key] ?? fallback)
    }

    private func apply(_ i: Instruction, to s: inout Stage, stages: [Stage], context: String, options: BuildOptions, what: String) throws(BerthError) {
        var env = s.args
        for e in s.config.config?.Env ?? [] {
            if let eq = e.firstIndex(of: "=") { env[String(e[..<eq])] = String(e[e.index(after: eq)...]) }
        }
        switch i.keyword {
        case "ARG":
            let (k, v) = try argument(i, options: options, env: env, what: what)
            s.args[k] = v
        case "RUN":
            try run(i.command, instruction: i, stage: &s, options: options, what: what)
        case "COPY", "ADD":
            try copy(i, stage: &s, stages: stages, context: context, env: env, options: options, what: what)
        case "WORKDIR":
            var expanded = i
            expanded.text = expand(i.text, env, what: what)
            var config = s.config.config ?? ImageConfig.Config()
            _ = try expanded.apply(to: &config, describing: what)
            s.config.config = config
            try ensureDirectory(config.WorkingDir ?? "/", stage: &s, instruction: "WORKDIR \(expanded.text)")
        case "CMD", "ENTRYPOINT", "ENV", "LABEL", "EXPOSE", "VOLUME", "STOPSIGNAL", "USER":
            var expanded = i
            if !["CMD", "ENTRYPOINT"].contains(i.keyword) { expanded.text = expand(i.text, env, what: what) }
            var config = s.config.config ?? ImageConfig.Config()
            _ = try expanded.apply(to: &config, describing: what)
            s.config.config = config
            s.config.history = (s.config.history ?? []) + [.init(created: Timestamp.now(), createdBy: "/bin/sh -c #(nop) \(i.keyword) \(i.text)", emptyLayer: true)]
        case "MAINTAINER":
            s.config.author = i.text
        default:
            throw BerthError("\(what): \(i.keyword) is not supported by berth build (FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME, STOPSIGNAL are)")
        }
    }

    /// `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}`; `\$` is a dollar.
    func expand(_ text: String, _ env: [String: String], what: String) -> String {
        var out = ""
        let chars = Array(text)
        var i = 0
        func isName(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        while i < chars.count {
            let c = chars[i]
            if c == "\\" && i + 1 < chars.count && chars[i + 1] == "$" { out.append("$"); i += 2; continue }
            guard c == "$", i + 1 < chars.count else { out.append(c); i += 1; continue }
            if chars[i + 1] == "{", let close = chars[(i + 2)...].firstIndex(of: "}") {
                let body = String(chars[(i + 2)..<close])
                if let r = body.range(of: ":-") { out += env[String(body[..<r.lowerBound])].flatMap { $0.isEmpty ? nil : $0 } ?? String(body[r.upperBound...]) }
                else if let r = body.range(of: ":+") { out += (env[String(body[..<r.lowerBound])]?.isEmpty == false) ? String(body[r.upperBound...]) : "" }
                else { out += env[body] ?? "" }
                i = close + 1
                continue
            }
            var j = i + 1
            while j < chars.count && isName(chars[j]) { j += 1 }
            if j == i + 1 { out.append(c); i += 1; continue }
            out += env[String(chars[(i + 1)..<j])] ?? ""
            i = j
        }
        return out
    }

    // MARK: layers

    private func cacheKey(_ parts: [String]) -> String { Digest.of(parts.joined(separator: "\n")).hex }

    private func cached(_ key: String) -> CacheEntry? {
        guard let bytes = try? Files.readBytes(cacheDir + "/" + key),
              let entry = try? JSONDecoder().decode(CacheEntry.self, from: Data(bytes)) else { return nil }
        if let l = entry.layer, !store.content.has(l.digest) { return nil }   // swept since
        return entry
    }

    private func remember(_ key: String, _ entry: CacheEntry) {
        if let data = try? JSONEncoder().encode(entry) { try? Files.writeAtomically(Array(data), to: cacheDir + "/" + key, mode: 0o600) }
    }

    /// Puts a layer on the stage: unpacked (or adopted from `upper`) under its chain id.
    private func push(_ layer: Descriptor, diffID: Digest, on s: inout Stage, createdBy: String, adopting upper: String? = nil, size: Int64 = 0) throws(BerthError) {
        let chainID = ImageStore.chainID(parent: s.chain.last, diffID: diffID)
        if let upper, !Files.exists(store.layerDirectory(chainID)) {
            try store.adoptLayer(upper, blob: layer.digest, diffID: diffID, chainID: chainID, parent: s.chain.last, size: size, entries: 0)
        } else {
            try store.ensureLayer(blob: layer.digest, diffID: diffID, chainID: chainID, parent: s.chain.last)
        }
        s.layers.append(layer)
        s.chain.append(chainID)
        s.config.rootfs.diff_ids.append(diffID)
        s.config.history = (s.config.history ?? []) + [.init(created: Timestamp.now(), createdBy: createdBy)]
        say("--> \(diffID.short)")
    }

    private func run(_ command: [String], instruction: Instruction, stage s: inout Stage, options: BuildOptions, what: String) throws(BerthError) {
        let createdBy = "RUN " + (instruction.json.map { "\($0)" } ?? "/bin/sh -c " + instruction.text)
        let configKey = String(decoding: try JSONEncoder.sorted(s.config.config), as: UTF8.self)
        let key = cacheKey(["run", s.chain.last?.description ?? "scratch", configKey, s.args.sorted { $0.key < $1.key }.description, command.description])
        if !options.noCache, let hit = cached(key) {
            say("--> Using cache \(key.prefix(12))")
            if let layer = hit.layer, let diffID = hit.diffID { try push(layer, diffID: diffID, on: &s, createdBy: createdBy) }
            else { s.config.history = (s.config.history ?? []) + [.init(created: Timestamp.now(), createdBy: createdBy, emptyLayer: true)] }
            return
        }
        let id = "build-" + String(Digest.of("\(getpid()) \(UInt64.random(in: 0...UInt64.max))").hex.prefix(24))
        let container = ContainerLayer(store: store, id: id)
        try container.create(chain: s.chain, image: nil)
        defer { try? container.remove() }
        var run = RunOptions(image: "build step")
        run.command = command
        run.entrypoint = []
        run.cgroupParent = options.cgroupParent
        run.buildStep = true
        // ARGs are in the step's environment, as docker gives them
        run.env = s.args.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let spec = try ContainerSpec.make(image: s.config, options: run, id: id, rootfs: container.rootfs, directory: container.directory,
                                          volumes: engine.images.root + "/volumes")
        try Files.writeAtomically(Array(try JSONEncoder.sorted(spec)), to: container.directory + "/config.json", mode: 0o600)
        let code = try engine.runtime.run(id: id, options: CreateOptions(bundle: container.directory), detach: false)
        guard code == 0 else { throw BerthError("\(what): \(createdBy): exit code \(code)") }
        try container.unmount()
        if try Files.list(container.upper).isEmpty {
            remember(key, CacheEntry(layer: nil, diffID: nil))
            s.config.history = (s.config.history ?? []) + [.init(created: Timestamp.now(), createdBy: createdBy, emptyLayer: true)]
            return
        }
        let layer = try ImageBuilder(store: store).layer(describing: "\(what): RUN layer") { (w: TarWriter) throws(BerthError) in
            var archiver = TreeArchiver(overlayUpper: true)
            try archiver.append(container.upper, to: w)
            try w.finish()
        }
        try push(layer.descriptor, diffID: layer.diffID, on: &s, createdBy: createdBy, adopting: container.upper, size: layer.descriptor.size)
        remember(key, CacheEntry(layer: layer.descriptor, diffID: layer.diffID))
    }

    private func copy(_ i: Instruction, stage s: inout Stage, stages: [Stage], context: String, env: [String: String],
                      options: BuildOptions, what: String) throws(BerthError) {
        let words = i.json ?? Instruction.words(expand(i.text, env, what: what)).map(Instruction.unquote)
        guard words.count >= 2 else { throw BerthError("\(what): \(i.keyword) SOURCE… DEST") }
        var sources = Array(words.dropLast())
        var dest = words.last!
        let workdir = s.config.config?.WorkingDir ?? "/"
        let destIsDirectory = dest.hasSuffix("/") || dest == "." || dest.hasSuffix("/.") || sources.count > 1
        if !dest.hasPrefix("/") { dest = (workdir as NSString).appendingPathComponent(dest) }
        dest = String((dest as NSString).standardizingPath.drop { $0 == "/" })
        if dest.hasSuffix("/") { dest.removeLast() }

        // where the sources come from: the context, another stage, or an image
        var root = context
        var fromContainer: ContainerLayer?
        defer { try? fromContainer?.remove() }
        if let from = i.flags["from"] {
            let other: Stage
            if let named = stages.first(where: { $0.name == from.lowercased() }) { other = named }
            else if let n = Int(from), n < stages.count { other = stages[n] }
            else { other = try self.from(Instruction(keyword: "FROM", text: from, line: i.line), stages: [], env: [:], what: what) }
            let c = ContainerLayer(store: store, id: "build-from-" + String(Digest.of("\(getpid()) \(UInt64.random(in: 0...UInt64.max))").hex.prefix(20)))
            try c.create(chain: other.chain, image: nil)
            fromContainer = c
            root = c.rootfs
        }
        var owner: (uid: Int, gid: Int)?
        if let chown = i.flags["chown"] { owner = try resolveOwner(chown, stage: s, what: what) }

        var resolved: [String] = []
        for source in sources {
            let matches = glob(root + "/" + source.drop { $0 == "/" })
            guard !matches.isEmpty else { throw BerthError("\(what): \(i.keyword) \(source): no such file in the \(fromContainer == nil ? "build context" : "source stage")") }
            for m in matches {
                let real = (try? Files.realPath(m)) ?? m
                guard real == root || real.hasPrefix(root + "/") || fromContainer != nil else {
                    throw BerthError("\(what): \(i.keyword) \(source): outside the build context")
                }
                resolved.append(m)
            }
        }
        sources = resolved
        let intoDirectory = destIsDirectory || sources.count > 1 || (sources.count == 1 && Files.isDirectory(sources[0]))
        let isAdd = i.keyword == "ADD"
        let layer = try ImageBuilder(store: store).layer(describing: "\(what): \(i.keyword) layer") { (w: TarWriter) throws(BerthError) in
            // the destination's parents, as root-owned directories
            let parents = (intoDirectory ? dest : (dest as NSString).deletingLastPathComponent).split(separator: "/")
            var path = ""
            for p in parents {
                path += path.isEmpty ? String(p) : "/" + p
                var e = TarEntry(path: path, kind: .directory)
                e.mode = 0o755
                if let owner, path == dest { e.uid = owner.uid; e.gid = owner.gid }
                try w.append(e)
            }
            var archiver = TreeArchiver()
            archiver.owner = owner
            for source in sources {
                let name = (source as NSString).lastPathComponent
                if isAdd, !Files.isDirectory(source), let entries = try? Self.tarEntries(source) , entries > 0 {
                    // ADD of a local tar (plain, gzip or zstd): its contents, extracted into dest
                    let reader = TarReader(DecompressingSource(try FileSource(path: source), describing: source), describing: source)
                    while var e = try reader.next() {
                        e.path = dest.isEmpty ? e.path : dest + "/" + e.path
                        if e.kind == .hardlink { e.linkTarget = dest.isEmpty ? e.linkTarget : dest + "/" + e.linkTarget }
                        try w.append(e, content: e.kind == .file ? ContentReader(reader) : nil)
                    }
                } else if Files.isDirectory(source) {
                    try archiver.append(source, prefix: dest, to: w)
                } else {
                    try archiver.appendPath(source, as: intoDirectory ? (dest.isEmpty ? name : dest + "/" + name) : dest, to: w)
                }
            }
            try w.finish()
        }
        let createdBy = "\(i.keyword) \(i.text)"
        let key = cacheKey(["copy", s.chain.last?.description ?? "scratch", createdBy, layer.diffID.description])
        if !options.noCache, cached(key) != nil { say("--> Using cache \(key.prefix(12))") }
        try push(layer.descriptor, diffID: layer.diffID, on: &s, createdBy: createdBy)
        remember(key, CacheEntry(layer: layer.descriptor, diffID: layer.diffID))
    }

    /// WORKDIR makes its directory when the layers so far lack it.
    private func ensureDirectory(_ path: String, stage s: inout Stage, instruction: String) throws(BerthError) {
        let relative = String(path.drop { $0 == "/" })
        guard !relative.isEmpty else { return }
        for chain in s.chain.reversed() {
            var st = stat()
            if lstat(store.layerDirectory(chain) + "/" + relative, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR { return }
                break   // a whiteout or a file: make it
            }
        }
        let layer = try ImageBuilder(store: store).layer(describing: instruction) { (w: TarWriter) throws(BerthError) in
            var walked = ""
            for p in relative.split(separator: "/") {
                walked += walked.isEmpty ? String(p) : "/" + p
                var e = TarEntry(path: walked, kind: .directory)
                e.mode = 0o755
                try w.append(e)
            }
            try w.finish()
        }
        try push(layer.descriptor, diffID: layer.diffID, on: &s, createdBy: instruction)
    }

    /// `uid:gid` numbers, or names from the stage's /etc/passwd and /etc/group.
    private func resolveOwner(_ text: String, stage s: Stage, what: String) throws(BerthError) -> (uid: Int, gid: Int) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        func lookup(_ file: String, _ name: String) -> Int? {
            for chain in s.chain.reversed() {
                guard let text = ContainerLayer.readFile(root: store.layerDirectory(chain), path: file) else { continue }
                for line in text.split(separator: "\n") {
                    let f = line.split(separator: ":", omittingEmptySubsequences: false)
                    if f.count > 2 && f[0] == name { return Int(f[2]) }
                }
                return nil
            }
            return nil
        }
        guard let uid = Int(parts[0]) ?? lookup("/etc/passwd", parts[0]) else { throw BerthError("\(what): --chown=\(text): no user \(parts[0]) in the image") }
        let gid: Int
        if parts.count > 1 {
            guard let g = Int(parts[1]) ?? lookup("/etc/group", parts[1]) else { throw BerthError("\(what): --chown=\(text): no group \(parts[1]) in the image") }
            gid = g
        } else { gid = uid }
        return (uid, gid)
    }

    private func glob(_ pattern: String) -> [String] {
        guard pattern.contains(where: { "*?[".contains($0) }) else { return Files.exists(pattern) || isSymlink(pattern) ? [pattern] : [] }
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        return (0..<Int(g.gl_pathc)).compactMap { g.gl_pathv[$0].map { String(cString: $0) } }
    }

    private func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    /// Entries of `path` when it is a tar archive (ADD extracts those), else nil.
    static func tarEntries(_ path: String) throws(BerthError) -> Int? {
        let reader = TarReader(DecompressingSource(try FileSource(path: path), describing: path), describing: path)
        var n = 0
        while try reader.next() != nil { n += 1 }
        return n
    }
}

extension JSONEncoder {
    /// Sorted-key JSON: stable bytes for cache keys and config files.
    static func sorted<T: Encodable>(_ value: T) throws(BerthError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return Array(try encoder.encode(value)) } catch { throw BerthError("encode JSON: \(error)") }
    }
}
