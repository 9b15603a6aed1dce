extension BenchResults {
    /// index.html: self-contained (inline CSS and SVG, no scripts), readable offline.
    public func html() -> String {
        var body = "<h1>berth benchmark report</h1>"
        body += "<p class=\"meta\">Run \(SVG.escape(started)), profile <code>\(SVG.escape(profile))</code>, on \(SVG.escape(environment.cpuModel)) "
        body += "(\(environment.cpus) CPUs), kernel \(SVG.escape(environment.kernel)), cgroups \(SVG.escape(environment.cgroupMode)).<br>"
        body += environment.versions.sorted { $0.key < $1.key }.map { "\(SVG.escape($0.key)) <code>\(SVG.escape($0.value))</code>" }.joined(separator: " · ") + "</p>"
        let t = targets.filter { $0.value != nil }
        if !t.isEmpty {
            body += "<h2>Targets</h2><table><tr><th>target</th><th>ratio</th><th>limit</th><th>measured</th><th>95% CI</th><th></th></tr>"
            for x in t {
                let c = x.cells
                body += "<tr><td>\(SVG.escape(x.what))</td><td><code>\(SVG.escape(c[0]))</code></td>" + c[1...3].map { "<td>\(SVG.escape($0))</td>" }.joined()
                body += "<td class=\"\(x.met! ? "met" : "missed")\">\(c[4])</td></tr>"
            }
            body += "</table>"
        }
        if let s = startup {
            body += "<h2>Startup</h2><p>\(s.iterations) interleaved iterations of <code>run</code> /bin/true per contender; boxes span the quartiles, whiskers p5–p95, dots are the samples.</p>"
            let rows = s.runtimes.keys.sorted { runtimeOrder($0) < runtimeOrder($1) }.map { ($0, s.runtimes[$0]!.samples) }
            body += SVG.boxPlots(title: "Startup time per runtime", unit: "milliseconds, spawn to exit", rows: rows)
            let targetsByRatio = Dictionary(targets.map { ($0.ratio, $0.limit) }, uniquingKeysWith: { a, _ in a })
            // berth/host (~10×) would squash the others to slivers: it stays in the table
            let ratios = s.ratios.filter { !$0.key.hasSuffix("/host") }.sorted { $0.key < $1.key }.map { (name: $0.key, ratio: $0.value, target: targetsByRatio[$0.key]) }
            body += SVG.ratioBars(title: "Paired ratios with 95% bootstrap CI (dashed: target; grey: parity)", rows: ratios)
            let phases = phaseOrder.filter { !$0.hasPrefix("total") }.compactMap { p in s.berthPhases[p].map { (name: p, value: $0) } }
            body += SVG.bars(title: "berth's own phases (median ms)", unit: "milliseconds", rows: phases,
                             colors: phases.map { $0.name.hasPrefix("child:") ? "#7b5ea7" : "#2f6fb0" })
            if let berth = s.runtimes["berth"] {
                body += SVG.histogram(title: "berth startup latency distribution", unit: "milliseconds", samples: berth.samples)
            }
            body += tableHTML(markdownTable(startupMarkdown(s)))
            if !s.notes.isEmpty { body += "<ul class=\"notes\">" + s.notes.map { "<li>\(SVG.escape($0))</li>" }.joined() + "</ul>" }
        }
        if let y = syscalls {
            body += "<h2>Syscall cost</h2><p>ns per call, median over \(y.rounds) rounds (each the fastest 500-call batch of 5 × \(y.calls) calls, on one CPU). clock_gettime is the no-syscall control.</p>"
            body += "<div class=\"grid\">"
            for op in y.operations {
                let rows = y.variantOrder.compactMap { v in y.nanoseconds[v]?[op].map { (name: v, value: $0.summary.median) } }
                body += SVG.bars(title: op, unit: "ns per call", rows: rows, colors: SVG.palette)
            }
            body += "</div>"
            if let d = y.differences, !d.isEmpty {
                // one colour per variant, grouped by operation; labels short enough for the axis
                let variants = [("host + empty programs − host", "floor (empty)"), ("host + counts only − host", "counts only, host"),
                                ("host + probes − host", "untracked host"), ("container + probes − container", "tracked container")]
                var rows: [(name: String, value: Double)] = [], colors: [String] = []
                for op in ["getpid", "read", "write"] {
                    for (i, (key, label)) in variants.enumerated() {
                        if let r = d[key]?[op] { rows.append((name: "\(op) · \(label)", value: r.value)); colors.append(SVG.palette[i]) }
                    }
                }
                body += SVG.bars(title: "What the eBPF probes add per call (ns, paired per round)", unit: "ns per call", rows: rows, colors: colors)
            }
            body += tableHTML(markdownTable(syscallMarkdown(y)))
        }
        if let q = quota {
            body += "<h2>Quotas</h2>"
            if !q.cpu.isEmpty {
                body += SVG.lines(title: "CPU quota: requested vs achieved", xLabel: "requested CPUs", yLabel: "achieved CPUs",
                                  series: [("achieved", q.cpu.map { ($0.requested, $0.achieved) })], ideal: true)
            }
            if !q.memory.isEmpty {
                body += SVG.lines(title: "Memory limit vs largest allocation that survived", xLabel: "limit MiB", yLabel: "MiB",
                                  series: [("largest allocation", q.memory.map { (Double($0.limitMiB), Double($0.largestAllocationMiB)) }),
                                           ("peak usage", q.memory.map { (Double($0.limitMiB), Double($0.peakBytes) / 1048576) })], ideal: true)
            }
            if !q.pids.isEmpty {
                body += SVG.lines(title: "pids limit vs processes that existed", xLabel: "pids.max", yLabel: "processes",
                                  series: [("processes", q.pids.map { (Double($0.limit), Double($0.processes)) })], ideal: true)
            }
            if let s = q.shares {
                body += SVG.bars(title: "CPU shares \(s.shares[0]):\(s.shares[1]) on one CPU (CPU-seconds)", unit: "CPU-seconds",
                                 rows: [("shares \(s.shares[0])", s.cpuSeconds[0]), ("shares \(s.shares[1])", s.cpuSeconds[1])], colors: SVG.palette)
            }
            body += tableHTML(markdownTable(quotaMarkdown(q)))
        }
        if let d = density, !d.points.isEmpty {
            body += "<h2>Density</h2>"
            body += SVG.lines(title: "Starting N containers at once", xLabel: "containers (N)", yLabel: "milliseconds",
                              series: [("total", d.points.map { (Double($0.containers), $0.totalMilliseconds) }),
                                       ("per container (median)", d.points.map { (Double($0.containers), $0.perContainer.median) }),
                                       ("teardown", d.points.map { (Double($0.containers), $0.teardownMilliseconds) })])
            body += SVG.lines(title: "Memory per running container", xLabel: "containers (N)", yLabel: "MiB",
                              series: [("machine (meminfo)", d.points.map { (Double($0.containers), $0.memoryPerContainerBytes / 1048576) }),
                                       ("cgroup-charged", d.points.map { (Double($0.containers), $0.chargedPerContainerBytes / 1048576) })])
            body += tableHTML(markdownTable(densityMarkdown(d)))
        }
        if let i = images, !i.seconds.isEmpty {
            body += "<h2>Images: layer unpack</h2>"
            body += SVG.bars(title: "Layer unpack throughput (MB/s of file content, higher is better)", unit: "MB/s",
                             rows: ImageResult.variants.compactMap { v in i.megabytesPerSecond[v].map { (v, $0) } }, colors: SVG.palette)
            body += tableHTML(markdownTable(imagesMarkdown(i)))
        }
        if let n = network, !n.megabytesPerSecond.isEmpty {
            body += "<h2>Network: bridge setup and traffic</h2>"
            body += SVG.bars(title: "Bridge network setup per container (median ms)", unit: "ms",
                             rows: NetworkResult.phases.filter { $0 != "setup total" }.compactMap { p in n.setupMilliseconds[p].map { (p, $0.median) } }, colors: SVG.palette)
            body += SVG.bars(title: "TCP throughput (MB/s, higher is better)", unit: "MB/s",
                             rows: NetworkBenchmark.paths.compactMap { p in n.megabytesPerSecond[p].map { (p, $0.median) } }, colors: SVG.palette)
            body += SVG.bars(title: "TCP round trip, 64 bytes (µs, lower is better)", unit: "µs",
                             rows: NetworkBenchmark.paths.compactMap { p in n.roundTripMicroseconds[p].map { (p, $0.median) } }, colors: SVG.palette)
            body += tableHTML(markdownTable(networkMarkdown(n)))
        }
        if let e = engines, !e.runs.isEmpty {
            body += "<h2>Engines: podman and ctr run --rm</h2>"
            body += SVG.bars(title: "run --rm of /bin/true through an engine (median ms, lower is better)", unit: "ms",
                             rows: e.runs.sorted(by: { $0.key < $1.key }).filter { !$0.value.samples.isEmpty }.map { ($0.key, $0.value.summary.median) }, colors: SVG.palette)
            body += tableHTML(markdownTable(enginesMarkdown(e)))
        }
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>berth benchmark report \(SVG.escape(started))</title>
        <style>
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2329;max-width:1100px;margin:2em auto;padding:0 1.2em;background:#fbfbfa}
        h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
        .meta{color:#555;font-size:.9em}code{background:#eef0f2;padding:0 .3em;border-radius:3px}
        table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #d8dcdf;padding:.25em .6em;text-align:right}
        th:first-child,td:first-child{text-align:left}th{background:#eef0f2}
        .met{color:#2a7a46;font-weight:600}.missed{color:#b42d2d;font-weight:600}
        svg{width:100%;height:auto;background:#fff;border:1px solid #e3e5e7;border-radius:6px;margin:.6em 0}
        .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:.6em}
        svg .title{font-size:14px;font-weight:600;fill:#1d2329}svg .tick{font-size:11px;fill:#666}svg .axis{font-size:12px;fill:#444}
        svg .row{font-size:12px;fill:#1d2329}svg .value{font-size:11px;fill:#333}svg .grid{stroke:#eceef0}
        svg .parity{stroke:#888;stroke-dasharray:2 3}svg .target{stroke:#c23b3b;stroke-width:2;stroke-dasharray:4 3}svg .ideal{stroke:#888;stroke-dasharray:5 4}
        .notes{color:#555;font-size:.9em}
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// The pipe tables of a Markdown section, parsed back into rows (one renderer of the numbers, two outputs).
    func markdownTable(_ md: String) -> [[[String]]] {
        var tables: [[[String]]] = [], current: [[String]] = []
        for line in md.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("|") {
                let cells = line.dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false).map { String($0).trimmingCharacters() }
                if !cells.allSatisfy({ $0.allSatisfy { "-:".contains($0) } }) { current.append(cells) }
            } else if !current.isEmpty { tables.append(current); current = [] }
        }
        if !current.isEmpty { tables.append(current) }
        return tables
    }

    func tableHTML(_ tables: [[[String]]]) -> String {
        tables.map { rows in
            "<table>" + rows.enumerated().map { i, cells in
                "<tr>" + cells.map { i == 0 ? "<th>\(SVG.escape($0))</th>" : "<td>\(SVG.escape($0.replacingBackticks()))</td>" }.joined() + "</tr>"
            }.joined() + "</table>"
        }.joined()
    }
}

extension String {
    func replacingBackticks() -> String { String(filter { $0 != "`" && $0 != "*" }) }
}
