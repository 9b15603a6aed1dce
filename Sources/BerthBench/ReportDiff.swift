/// `berth report diff A B`: every measurement both runs have, B against A,
/// flagged only when the change is beyond the noise (its bootstrap 95% CI
/// excludes 1 and the change exceeds `threshold`).
public struct ReportDiff: Sendable {
    public enum Verdict: String, Sendable { case regression, improvement, same = "within noise" }
    public struct Row: Sendable {
        public var metric: String
        public var unit: String
        public var a: Double
        public var b: Double
        public var change: Ratio
        public var verdict: Verdict
    }
    public var rows: [Row] = []
    public var regressions: [Row] { rows.filter { $0.verdict == .regression } }

    /// Lower is better for every metric compared (times, ns per call).
    public init(_ a: BenchResults, _ b: BenchResults, threshold: Double = 0.03) {
        func add(_ metric: String, _ unit: String, _ x: [Double], _ y: [Double]) {
            guard !x.isEmpty, !y.isEmpty else { return }
            let r = Statistics.medianRatio(x, y)
            let verdict: Verdict = r.low > 1 + threshold ? .regression : r.high < 1 - threshold ? .improvement : .same
            rows.append(Row(metric: metric, unit: unit, a: Statistics.median(x), b: Statistics.median(y), change: r, verdict: verdict))
        }
        if let sa = a.startup, let sb = b.startup {
            for name in sa.runtimes.keys.sorted(by: { runtimeOrder($0) < runtimeOrder($1) }) {
                if let x = sa.runtimes[name], let y = sb.runtimes[name] { add("startup \(name)", "ms", x.samples, y.samples) }
            }
        }
        if let ya = a.syscalls, let yb = b.syscalls {
            for variant in ya.variantOrder {
                for op in ya.operations {
                    if let x = ya.nanoseconds[variant]?[op], let y = yb.nanoseconds[variant]?[op] {
                        add("\(op) (\(variant))", "ns", x.samples, y.samples)
                    }
                }
            }
        }
        if let ia = a.images, let ib = b.images {
            for v in ImageResult.variants {
                if let x = ia.samples[v], let y = ib.samples[v] { add("layer unpack (\(v))", "s", x, y) }
            }
        }
        if let na = a.network, let nb = b.network {
            if let x = na.samples["setup"]?["ms"], let y = nb.samples["setup"]?["ms"] { add("bridge network setup", "ms", x, y) }
            for path in NetworkBenchmark.paths {
                if let x = na.samples[path]?["µs"], let y = nb.samples[path]?["µs"] { add("TCP round trip (\(path))", "µs", x, y) }
                // throughput compared as time per MB, so that lower is better here too
                if let x = na.samples[path]?["MB/s"], let y = nb.samples[path]?["MB/s"] {
                    add("TCP time per MB (\(path))", "ms", x.map { 1000 / $0 }, y.map { 1000 / $0 })
                }
            }
        }
        if let da = a.density, let db = b.density {
            for p in da.points {
                if let q = db.points.first(where: { $0.containers == p.containers }) {
                    // one total per run: a change without an interval, never flagged on its own
                    rows.append(Row(metric: "density N=\(p.containers) total", unit: "ms", a: p.totalMilliseconds, b: q.totalMilliseconds,
                                    change: Ratio(value: q.totalMilliseconds / p.totalMilliseconds, low: 0, high: .infinity), verdict: .same))
                }
            }
        }
    }

    public func markdown(nameA: String, nameB: String) -> String {
        var md = "# berth report diff\n\nA: \(nameA)\nB: \(nameB)\n\n"
        md += "| metric | A | B | B/A | 95% CI | verdict |\n|---|---:|---:|---:|---|---|\n"
        for r in rows {
            let ci = r.change.high.isFinite ? "\(f(r.change.low, 3)) – \(f(r.change.high, 3))" : "–"
            let verdict = r.verdict == .regression ? "**regression**" : r.verdict.rawValue
            md += "| \(r.metric) | \(f(r.a)) \(r.unit) | \(f(r.b)) \(r.unit) | \(f(r.change.value, 3)) | \(ci) | \(verdict) |\n"
        }
        md += "\n\(regressions.count) regression(s), \(rows.filter { $0.verdict == .improvement }.count) improvement(s) beyond the noise.\n"
        return md
    }
}
