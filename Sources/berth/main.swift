#if canImport(Glibc)
import Glibc
#endif
import BerthBench
import BerthSys
import CBerthLaunch

/// `berth`: the engine CLI. For now its report commands: regenerate a
/// benchmark report from results.json, and compare two runs.
let usage = """
usage: berth report [DIR]                 regenerate DIR/report.md and DIR/index.html from DIR/results.json
                                          (DIR defaults to the newest reports/<timestamp>)
       berth report diff [--fail] A B     compare two runs (directories or results.json files); with --fail,
                                          exit 1 when B regressed beyond the noise
       berth --version
"""

func fail(_ message: String, code: Int32 = 1) -> Never {
    let line = "berth: \(message)\n"
    line.withCString { berth_write_stderr($0) }
    exit(code)
}

func newestReport() -> String? {
    let dir = Files.currentDirectory() + "/reports"
    let runs = ((try? Files.list(dir)) ?? []).filter { $0.first?.isNumber == true && Files.isDirectory(dir + "/" + $0) }.sorted()
    return runs.last.map { dir + "/" + $0 }
}

var args = Array(CommandLine.arguments.dropFirst())
switch args.first {
case "--version", "version":
    print("berth 0.2.0")
case "report":
    args.removeFirst()
    do {
        if args.first == "diff" {
            args.removeFirst()
            let failOnRegression = args.contains("--fail")
            args.removeAll { $0 == "--fail" }
            guard args.count == 2 else { fail("report diff takes two runs\n\(usage)", code: 2) }
            let diff = ReportDiff(try BenchResults.read(args[0]), try BenchResults.read(args[1]))
            print(diff.markdown(nameA: args[0], nameB: args[1]), terminator: "")
            if failOnRegression && !diff.regressions.isEmpty { exit(1) }
        } else {
            guard args.count <= 1 else { fail("report takes one directory\n\(usage)", code: 2) }
            guard let dir = args.first ?? newestReport() else { fail("no reports/ directory here: give the report directory") }
            try BenchResults.read(dir).writeReports(to: dir)
            print("wrote \(dir)/report.md and \(dir)/index.html")
        }
    } catch { fail("\(error)") }
case "-h", "--help", "help", nil:
    print(usage)
default:
    fail("unknown command \"\(args[0])\"\n\(usage)", code: 2)
}
