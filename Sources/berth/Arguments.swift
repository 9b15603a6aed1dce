/// Command-line options the way docker spells them: `--name value`,
/// `--name=value`, short aliases (`-d`), clustered short flags (`-it`),
/// repeatable values (`-e A=1 -e B=2`), and for `run` the end of options at
/// the first positional (the image), so the command's own flags pass through.
struct Arguments {
    var flags: Set<String> = []
    var lists: [String: [String]] = [:]
    var positional: [String] = []

    /// The last value given for an option.
    var values: [String: String] { lists.compactMapValues(\.last) }

    /// `aliases` maps short spellings to the long ones (`-d` → `--detach`).
    init(_ args: [String], flags known: Set<String>, values takesValue: Set<String>,
         aliases: [String: String] = [:], stopAtPositional: Bool = false) {
        var i = 0
        func canonical(_ a: String) -> String { aliases[a] ?? a }
        while i < args.count {
            let a = args[i]
            if a == "--" {
                positional += args[(i + 1)...]
                break
            }
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "="), takesValue.contains(canonical(String(a[..<eq]))) {
                lists[canonical(String(a[..<eq])), default: []].append(String(a[a.index(after: eq)...]))
            } else if takesValue.contains(canonical(a)) {
                guard i + 1 < args.count else { fail("\(a) needs a value\n\(usage)", code: 2) }
                lists[canonical(a), default: []].append(args[i + 1])
                i += 1
            } else if known.contains(canonical(a)) {
                flags.insert(canonical(a))
            } else if a.hasPrefix("-") && !a.hasPrefix("--") && a.count > 2 {
                // -it = -i -t; the last of a cluster may take a value (-ti NAME is not docker's, so no)
                let shorts = a.dropFirst().map { "-" + String($0) }
                guard shorts.allSatisfy({ known.contains(canonical($0)) }) else { fail("unknown option \(a)\n\(usage)", code: 2) }
                for s in shorts { flags.insert(canonical(s)) }
            } else if a.hasPrefix("-") && a != "-" {
                fail("unknown option \(a)\n\(usage)", code: 2)
            } else {
                positional.append(a)
                if stopAtPositional {
                    positional += args[(i + 1)...]
                    break
                }
            }
            i += 1
        }
    }
}
