import Foundation
import BerthSys

/// One Containerfile instruction: its keyword and its arguments, in the JSON
/// (exec) form when it was written as a JSON array, else as the raw text.
public struct Instruction: Sendable, Equatable {
    public var keyword: String
    public var text: String
    public var json: [String]?
    /// Flags before the arguments (`COPY --from=x`, `ADD --chown=…`).
    public var flags: [String: String] = [:]
    public var line: Int

    public init(keyword: String, text: String, json: [String]? = nil, flags: [String: String] = [:], line: Int) {
        self.keyword = keyword
        self.text = text
        self.json = json
        self.flags = flags
        self.line = line
    }

    /// Parses a Containerfile: `\` continues a line, `#` starts a comment.
    public static func parse(_ source: String, describing what: String) throws(BerthError) -> [Instruction] {
        var out: [Instruction] = []
        var pending = ""
        var startLine = 0
        for (n, raw) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
            if !pending.isEmpty && trimmed.hasPrefix("#") { continue }
            if pending.isEmpty { startLine = n + 1 }
            if trimmed.hasSuffix("\\") {
                pending += String(trimmed.dropLast()) + " "
                continue
            }
            pending += trimmed
            out.append(try single(pending, line: startLine, describing: what))
            pending = ""
        }
        if !pending.isEmpty { out.append(try single(pending, line: startLine, describing: what)) }
        return out
    }

    /// One instruction line (also what `import --change` takes).
    public static func single(_ line: String, line number: Int = 1, describing what: String) throws(BerthError) -> Instruction {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let keyword = String(trimmed.prefix { !$0.isWhitespace }).uppercased()
        guard !keyword.isEmpty else { throw BerthError("\(what) line \(number): empty instruction") }
        var rest = trimmed.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
        var flags: [String: String] = [:]
        // only these take flags: elsewhere `--x` is an argument (`CMD --help`)
        while ["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"].contains(keyword) && rest.hasPrefix("--") {
            let flag = String(rest.prefix { !$0.isWhitespace })
            let body = flag.dropFirst(2)
            if let eq = body.firstIndex(of: "=") { flags[String(body[..<eq])] = String(body[body.index(after: eq)...]) }
            else { flags[String(body)] = "true" }
            rest = rest.dropFirst(flag.count).trimmingCharacters(in: .whitespaces)
        }
        var json: [String]?
        if rest.hasPrefix("["), let data = rest.data(using: .utf8), let array = try? JSONDecoder().decode([String].self, from: data) {
            json = array
        }
        return Instruction(keyword: keyword, text: rest, json: json, flags: flags, line: number)
    }

    /// Exec form as written, or shell form run by `/bin/sh -c`.
    public var command: [String] { json ?? ["/bin/sh", "-c", text] }

    /// `KEY=VALUE KEY2="V 2"` pairs, or the legacy `KEY VALUE` form.
    public func pairs(describing what: String) throws(BerthError) -> [(String, String)] {
        let words = Instruction.words(text)
        if let first = words.first, !first.contains("=") {
            let value = text.dropFirst(text.prefix { !$0.isWhitespace }.count).trimmingCharacters(in: .whitespaces)
            return [(first, Instruction.unquote(value))]
        }
        var out: [(String, String)] = []
        for w in words {
            guard let eq = w.firstIndex(of: "="), eq != w.startIndex else { throw BerthError("\(what) line \(line): \(keyword) \"\(w)\": want KEY=VALUE") }
            out.append((String(w[..<eq]), Instruction.unquote(String(w[w.index(after: eq)...]))))
        }
        return out
    }

    /// Splits on whitespace outside quotes.
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        var quote: Character?
        var escaped = false
        var inWord = false
        for c in text {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" { escaped = true; current.append(c); continue }
            if let q = quote { current.append(c); if c == q { quote = nil }; continue }
            if c == "\"" || c == "'" { quote = c; current.append(c); inWord = true; continue }
            if c.isWhitespace {
                if inWord { out.append(current); current = ""; inWord = false }
                continue
            }
            current.append(c)
            inWord = true
        }
        if inWord { out.append(current) }
        return out
    }

    public static func unquote(_ s: String) -> String {
        var out = ""
        var quote: Character?
        var escaped = false
        for c in s {
            if escaped { out.append(c); escaped = false; continue }
            if c == "\\" && quote != "'" { escaped = true; continue }
            if let q = quote, c == q { quote = nil; continue }
            if quote == nil && (c == "\"" || c == "'") { quote = c; continue }
            out.append(c)
        }
        return out
    }

    /// Applies a metadata instruction (the ones that make no layer) to an image config.
    /// Returns false for keywords that are not metadata.
    public func apply(to config: inout ImageConfig.Config, describing what: String) throws(BerthError) -> Bool {
        switch keyword {
        case "CMD": config.Cmd = command
        case "ENTRYPOINT": config.Entrypoint = command
        case "WORKDIR":
            let dir = Instruction.unquote(text)
            config.WorkingDir = dir.hasPrefix("/") ? dir : ((config.WorkingDir ?? "/") as NSString).appendingPathComponent(dir)
        case "USER": config.User = text
        case "STOPSIGNAL": config.StopSignal = text
        case "ENV":
            var env = config.Env ?? []
            for (k, v) in try pairs(describing: what) {
                env.removeAll { $0.hasPrefix(k + "=") }
                env.append(k + "=" + v)
            }
            config.Env = env
        case "LABEL":
            var labels = config.Labels ?? [:]
            for (k, v) in try pairs(describing: what) { labels[Instruction.unquote(k)] = v }
            config.Labels = labels
        case "EXPOSE":
            var ports = config.ExposedPorts ?? [:]
            for p in Instruction.words(text) { ports[p.contains("/") ? p : p + "/tcp"] = JSONObject() }
            config.ExposedPorts = ports
        case "VOLUME":
            var volumes = config.Volumes ?? [:]
            for v in json ?? Instruction.words(text) { volumes[v] = JSONObject() }
            config.Volumes = volumes
        default: return false
        }
        return true
    }
}
