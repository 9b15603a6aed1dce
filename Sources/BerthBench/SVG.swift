/// Inline SVG charts for the HTML report: no scripts, no external files, so a
/// report opens offline and survives being mailed around.
enum SVG {
    static let palette = ["#2f6fb0", "#d9822b", "#3a9d5d", "#c23b3b", "#7b5ea7", "#8c6d3f", "#d16ba5", "#5f6b73", "#1b9aaa"]

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    /// "Nice" axis ticks covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, hi.isFinite, lo.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(count)
        var step = 1.0
        while step * 10 <= raw { step *= 10 }
        while step > raw { step /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where step * m >= raw { step *= m; break }
        var t = (lo / step).rounded(.down) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { if t >= lo - step * 1e-9 { out.append(t) }; t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if abs(v) >= 100 || v == v.rounded() { return f(v, 0) }
        return abs(v) >= 1 ? f(v, 1) : f(v, 2)
    }

    /// A frame with a title, an x axis (linear, lo...hi) and room for labelled rows or series.
    struct Frame {
        var width = 760.0, height: Double
        var left = 150.0, right = 24.0, top = 34.0, bottom = 40.0
        var lo: Double, hi: Double
        var title: String, xLabel: String
        var plotWidth: Double { width - left - right }
        var plotHeight: Double { height - top - bottom }
        func x(_ v: Double) -> Double { left + (v - lo) / (hi - lo) * plotWidth }

        func open() -> String {
            var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(width, 0)) \(f(height, 0))\" role=\"img\" aria-label=\"\(escape(title))\">"
            s += "<text x=\"\(f(left, 0))\" y=\"20\" class=\"title\">\(escape(title))</text>"
            for t in ticks(lo, hi) {
                let px = f(x(t), 1)
                s += "<line x1=\"\(px)\" y1=\"\(f(top, 0))\" x2=\"\(px)\" y2=\"\(f(top + plotHeight, 0))\" class=\"grid\"/>"
                s += "<text x=\"\(px)\" y=\"\(f(top + plotHeight + 16, 0))\" class=\"tick\" text-anchor=\"middle\">\(label(t))</text>"
            }
            s += "<text x=\"\(f(left + plotWidth / 2, 0))\" y=\"\(f(height - 6, 0))\" class=\"axis\" text-anchor=\"middle\">\(escape(xLabel))</text>"
            return s
        }
    }

    /// Horizontal box plots (p5–p95 whiskers, quartile box, median bar) with the samples as dots.
    static func boxPlots(title: String, unit: String, rows: [(name: String, samples: [Double])]) -> String {
        let rows = rows.filter { !$0.samples.isEmpty }
        guard !rows.isEmpty else { return "" }
        let all = rows.flatMap(\.samples).sorted()
        let hi = Statistics.percentile(all, 99.5) * 1.05
        let frame = Frame(height: 34 + 40 + Double(rows.count) * 30, lo: 0, hi: hi, title: title, xLabel: unit)
        var s = frame.open()
        var rng = SplitMix64(seed: 1)
        for (i, row) in rows.enumerated() {
            let sorted = row.samples.sorted()
            let y = frame.top + Double(i) * 30 + 15
            let color = palette[i % palette.count]
            func px(_ v: Double) -> String { f(frame.x(Swift.min(v, hi)), 1) }
            s += "<text x=\"\(f(frame.left - 8, 0))\" y=\"\(f(y + 4, 1))\" class=\"row\" text-anchor=\"end\">\(escape(row.name))</text>"
            for v in sorted {
                let jitter = Double(rng.next() % 1000) / 1000 * 16 - 8
                s += "<circle cx=\"\(px(v))\" cy=\"\(f(y + jitter, 1))\" r=\"1.6\" fill=\"\(color)\" opacity=\"0.35\"/>"
            }
            let p5 = Statistics.percentile(sorted, 5), q1 = Statistics.percentile(sorted, 25), med = Statistics.percentile(sorted, 50)
            let q3 = Statistics.percentile(sorted, 75), p95 = Statistics.percentile(sorted, 95)
            s += "<line x1=\"\(px(p5))\" y1=\"\(f(y, 1))\" x2=\"\(px(p95))\" y2=\"\(f(y, 1))\" stroke=\"\(color)\" stroke-width=\"1.5\"/>"
            s += "<rect x=\"\(px(q1))\" y=\"\(f(y - 8, 1))\" width=\"\(f(Swift.max(1, frame.x(q3) - frame.x(q1)), 1))\" height=\"16\" fill=\"\(color)\" fill-opacity=\"0.25\" stroke=\"\(color)\"/>"
            s += "<line x1=\"\(px(med))\" y1=\"\(f(y - 9, 1))\" x2=\"\(px(med))\" y2=\"\(f(y + 9, 1))\" stroke=\"\(color)\" stroke-width=\"3\"><title>\(escape(row.name)) median \(f(med)) \(escape(unit))</title></line>"
            s += "<text x=\"\(f(frame.left + frame.plotWidth, 0))\" y=\"\(f(y + 4, 1))\" class=\"value\" text-anchor=\"end\">\(f(med))</text>"
        }
        return s + "</svg>"
    }

    /// Ratio bars from 0 with 95% CI whiskers, a line at 1 (parity) and each row's target if it has one.
    static func ratioBars(title: String, rows: [(name: String, ratio: Ratio, target: Double?)]) -> String {
        guard !rows.isEmpty else { return "" }
        let hi = Swift.max(1.2, (rows.map(\.ratio.high) + rows.compactMap(\.target)).max()! * 1.1)
        let frame = Frame(height: 34 + 40 + Double(rows.count) * 26, left: 190, lo: 0, hi: hi, title: title, xLabel: "ratio (lower is faster)")
        var s = frame.open()
        for (i, row) in rows.enumerated() {
            let y = frame.top + Double(i) * 26 + 13
            let met = row.target.map { row.ratio.value <= $0 }
            let color = met == false ? "#c23b3b" : "#2f6fb0"
            s += "<text x=\"\(f(frame.left - 8, 0))\" y=\"\(f(y + 4, 1))\" class=\"row\" text-anchor=\"end\">\(escape(row.name))</text>"
            s += "<rect x=\"\(f(frame.left, 1))\" y=\"\(f(y - 8, 1))\" width=\"\(f(frame.x(row.ratio.value) - frame.left, 1))\" height=\"16\" fill=\"\(color)\" fill-opacity=\"0.7\"><title>\(escape(row.name)): \(f(row.ratio.value, 3)) [\(f(row.ratio.low, 3))–\(f(row.ratio.high, 3))]</title></rect>"
            s += "<line x1=\"\(f(frame.x(row.ratio.low), 1))\" y1=\"\(f(y, 1))\" x2=\"\(f(frame.x(row.ratio.high), 1))\" y2=\"\(f(y, 1))\" stroke=\"#222\" stroke-width=\"1.5\"/>"
            for v in [row.ratio.low, row.ratio.high] {
                s += "<line x1=\"\(f(frame.x(v), 1))\" y1=\"\(f(y - 5, 1))\" x2=\"\(f(frame.x(v), 1))\" y2=\"\(f(y + 5, 1))\" stroke=\"#222\" stroke-width=\"1.5\"/>"
            }
            if let t = row.target {
                s += "<line x1=\"\(f(frame.x(t), 1))\" y1=\"\(f(y - 11, 1))\" x2=\"\(f(frame.x(t), 1))\" y2=\"\(f(y + 11, 1))\" class=\"target\"><title>target ≤ \(f(t))</title></line>"
            }
            s += "<text x=\"\(f(frame.x(row.ratio.high) + 6, 1))\" y=\"\(f(y + 4, 1))\" class=\"value\">\(f(row.ratio.value, 3))</text>"
        }
        s += "<line x1=\"\(f(frame.x(1), 1))\" y1=\"\(f(frame.top, 0))\" x2=\"\(f(frame.x(1), 1))\" y2=\"\(f(frame.top + frame.plotHeight, 0))\" class=\"parity\"/>"
        return s + "</svg>"
    }

    /// Plain horizontal bars (one value per row).
    static func bars(title: String, unit: String, rows: [(name: String, value: Double)], colors: [String]? = nil) -> String {
        guard !rows.isEmpty else { return "" }
        let hi = Swift.max(1e-9, rows.map(\.value).max()!) * 1.12
        let frame = Frame(height: 34 + 40 + Double(rows.count) * 22, left: 170, lo: 0, hi: hi, title: title, xLabel: unit)
        var s = frame.open()
        for (i, row) in rows.enumerated() {
            let y = frame.top + Double(i) * 22 + 11
            let color = colors?[i % (colors?.count ?? 1)] ?? palette[0]
            s += "<text x=\"\(f(frame.left - 8, 0))\" y=\"\(f(y + 4, 1))\" class=\"row\" text-anchor=\"end\">\(escape(row.name))</text>"
            s += "<rect x=\"\(f(frame.left, 1))\" y=\"\(f(y - 7, 1))\" width=\"\(f(Swift.max(0.5, frame.x(row.value) - frame.left), 1))\" height=\"14\" fill=\"\(color)\" fill-opacity=\"0.75\"/>"
            s += "<text x=\"\(f(frame.x(row.value) + 5, 1))\" y=\"\(f(y + 4, 1))\" class=\"value\">\(label(row.value))</text>"
        }
        return s + "</svg>"
    }

    /// Series of (x, y) points on linear axes, with an optional ideal line y = x.
    static func lines(title: String, xLabel: String, yLabel: String, series: [(name: String, points: [(Double, Double)])],
                      ideal: Bool = false, markersOnly: Bool = false) -> String {
        let pts = series.flatMap(\.points)
        guard !pts.isEmpty else { return "" }
        let xHi = (pts.map(\.0).max() ?? 1) * 1.08
        var yHi = (pts.map(\.1).max() ?? 1) * 1.12
        if ideal { yHi = Swift.max(yHi, xHi) }
        let width = 760.0, height = 320.0, left = 64.0, right = 190.0, top = 34.0, bottom = 42.0
        let pw = width - left - right, ph = height - top - bottom
        func px(_ v: Double) -> Double { left + v / xHi * pw }
        func py(_ v: Double) -> Double { top + ph - v / yHi * ph }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(width, 0)) \(f(height, 0))\" role=\"img\" aria-label=\"\(escape(title))\">"
        s += "<text x=\"\(f(left, 0))\" y=\"20\" class=\"title\">\(escape(title))</text>"
        for t in ticks(0, xHi) {
            s += "<line x1=\"\(f(px(t), 1))\" y1=\"\(f(top, 0))\" x2=\"\(f(px(t), 1))\" y2=\"\(f(top + ph, 0))\" class=\"grid\"/>"
            s += "<text x=\"\(f(px(t), 1))\" y=\"\(f(top + ph + 16, 0))\" class=\"tick\" text-anchor=\"middle\">\(label(t))</text>"
        }
        for t in ticks(0, yHi) {
            s += "<line x1=\"\(f(left, 0))\" y1=\"\(f(py(t), 1))\" x2=\"\(f(left + pw, 0))\" y2=\"\(f(py(t), 1))\" class=\"grid\"/>"
            s += "<text x=\"\(f(left - 6, 0))\" y=\"\(f(py(t) + 4, 1))\" class=\"tick\" text-anchor=\"end\">\(label(t))</text>"
        }
        s += "<text x=\"\(f(left + pw / 2, 0))\" y=\"\(f(height - 6, 0))\" class=\"axis\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        s += "<text x=\"14\" y=\"\(f(top + ph / 2, 0))\" class=\"axis\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(f(top + ph / 2, 0)))\">\(escape(yLabel))</text>"
        if ideal {
            let m = Swift.min(xHi, yHi)
            s += "<line x1=\"\(f(px(0), 1))\" y1=\"\(f(py(0), 1))\" x2=\"\(f(px(m), 1))\" y2=\"\(f(py(m), 1))\" class=\"ideal\"/>"
            s += "<text x=\"\(f(px(m) - 4, 1))\" y=\"\(f(py(m) - 6, 1))\" class=\"tick\" text-anchor=\"end\">ideal</text>"
        }
        for (i, serie) in series.enumerated() {
            let color = palette[i % palette.count]
            let sorted = serie.points.sorted { $0.0 < $1.0 }
            if !markersOnly && sorted.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"" + sorted.map { "\(f(px($0.0), 1)),\(f(py($0.1), 1))" }.joined(separator: " ") + "\"/>"
            }
            for p in sorted {
                s += "<circle cx=\"\(f(px(p.0), 1))\" cy=\"\(f(py(p.1), 1))\" r=\"3.5\" fill=\"\(color)\"><title>\(escape(serie.name)): \(label(p.0)) → \(label(p.1))</title></circle>"
            }
            let ly = top + 10 + Double(i) * 18
            s += "<rect x=\"\(f(left + pw + 14, 0))\" y=\"\(f(ly - 8, 1))\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
            s += "<text x=\"\(f(left + pw + 30, 0))\" y=\"\(f(ly + 1, 1))\" class=\"row\">\(escape(serie.name))</text>"
        }
        return s + "</svg>"
    }

    /// A histogram of samples (equal-width bins between p0.5 and p99.5).
    static func histogram(title: String, unit: String, samples: [Double], bins: Int = 30) -> String {
        guard samples.count > 1 else { return "" }
        let sorted = samples.sorted()
        let lo = Statistics.percentile(sorted, 0.5), hi = Statistics.percentile(sorted, 99.5)
        guard hi > lo else { return "" }
        var counts = [Int](repeating: 0, count: bins)
        for v in sorted where v >= lo && v <= hi { counts[Swift.min(bins - 1, Int((v - lo) / (hi - lo) * Double(bins)))] += 1 }
        let frame = Frame(height: 220, left: 50, lo: lo, hi: hi, title: title, xLabel: unit)
        var s = frame.open()
        let maxCount = Double(counts.max() ?? 1)
        let bw = frame.plotWidth / Double(bins)
        for (i, c) in counts.enumerated() where c > 0 {
            let h = Double(c) / maxCount * frame.plotHeight
            s += "<rect x=\"\(f(frame.left + Double(i) * bw + 0.5, 1))\" y=\"\(f(frame.top + frame.plotHeight - h, 1))\" width=\"\(f(bw - 1, 1))\" height=\"\(f(h, 1))\" fill=\"#2f6fb0\" fill-opacity=\"0.75\"><title>\(c)</title></rect>"
        }
        return s + "</svg>"
    }
}
