import Foundation
import Tensor
import Imaging

/// One SDE step's ratio statistics, averaged over a run's iterations.
public struct StepRatios {
    public var k: Int
    public var t, ratioMean, plainLogratio, clipped: Double
}

/// A run of a grid (a sweep's point, a compare's algorithm and seed) as its tables read it.
public struct SummaryRow {
    /// The settings that make the run (the varied ones and the seed), in grid order.
    public var settings: [(String, String)]
    public var summary: RunSummary
    public var finished: Bool
    /// Per trained SDE step (with its t): the mean over the run's iterations of the ratio mean,
    /// of the plain log-ratio mean (before RatioNorm) and of the clipped fraction (clipped-ratio
    /// algorithms; empty otherwise).
    public var ratios: [StepRatios]

    public init(settings: [(String, String)], metrics: RunMetrics, optimised: Set<String>, finished: Bool) {
        self.settings = settings
        self.finished = finished
        summary = RunSummary(metrics, optimised: optimised)
        let steps = metrics.lines.compactMap(\.algorithm.steps)
        ratios = (steps.first ?? []).enumerated().map { i, first in
            let at = steps.compactMap { i < $0.count ? $0[i] : nil }
            func mean(_ f: (Scalars) -> Double) -> Double { at.map(f).reduce(0, +) / Double(max(at.count, 1)) }
            return StepRatios(k: Int(first["k"] ?? 0), t: first["t"] ?? 0, ratioMean: mean { $0["ratio_mean"] ?? 1 },
                              plainLogratio: mean { $0["plain_logratio_mean"] ?? 0 }, clipped: mean { ($0["clip_high"] ?? 0) + ($0["clip_low"] ?? 0) })
        }
    }

    /// The settings but the seed: the runs of one configuration share it.
    public var configurationKey: String { Self.configurationKey(settings) }
    public static func configurationKey(_ settings: [(String, String)]) -> String {
        settings.filter { $0.0 != "seed" }.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
    }

    public func json(run: String) -> JSONValue {
        var o: [(String, JSONValue)] = [("run", .string(run))]
        for (k, v) in settings { o.append((k, Double(v).map { .double($0) } ?? .string(v))) }
        o.append(("finished", .bool(finished)))
        o.append(("proxy_gain", .double(summary.proxyGain)))
        for g in summary.golds { o.append((g.name + " change", .double(summary.change(g) ?? 0))) }
        o.append(("onset_step", summary.onset.map { .int($0) } ?? .null))
        return .object(o)
    }
}

/// The tables and frontier chart of a grid of runs (sweep.md, compare.md, frontier.png).
public enum SweepReport {
    /// The runs grouped by configuration (settings but the seed), in grid order.
    public static func configurations(_ rows: [SummaryRow]) -> [(String, [SummaryRow])] {
        var order: [String] = [], groups: [String: [SummaryRow]] = [:]
        for r in rows {
            let k = r.configurationKey
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        return order.map { ($0, groups[$0]!) }
    }

    /// Each configuration's runs as a summary group.
    public static func groups(_ rows: [SummaryRow]) -> [SummaryGroup] {
        configurations(rows).map { SummaryGroup(label: $0.0, runs: $0.1.map(\.summary)) }
    }

    /// Markdown: one row per run; each configuration's means over its seeds; each gold metric's
    /// change at equal proxy gains (shape-eval and the Frechet distance) with a 95% bootstrap
    /// interval over the seeds; the ratio statistics per SDE step.
    public static func markdown(_ rows: [SummaryRow], reward: String, gains: [Double] = [0.05, 0.1, 0.2, 0.3]) -> String {
        let golds = rows.first?.summary.golds ?? []
        let axes = rows.first?.settings.map(\.0) ?? []
        var md = "# Sweep\n\nReward `\(reward)`; \(rows.count) runs (\(rows.filter(\.finished).count) finished).\n\n## Runs\n\n"
        md += "| " + (axes + ["proxy gain"] + golds.map { $0.name + " change" } + ["onset"]).joined(separator: " | ") + " |\n"
        md += "|" + Array(repeating: "---", count: axes.count + golds.count + 2).joined(separator: "|") + "|\n"
        for r in rows {
            md += "| " + (r.settings.map(\.1) + [String(format: "%+.4f", r.summary.proxyGain)]
                + golds.map { String(format: "%+.4f", r.summary.change($0) ?? 0) } + [r.summary.onset.map(String.init) ?? "-"]).joined(separator: " | ")
            md += r.finished ? " |\n" : " (unfinished) |\n"
        }
        md += "\n## Configurations (mean over seeds, 95% bootstrap interval)\n\n" + ConfigurationTable.markdown(groups(rows))
        for gold in golds where gold == .shapeEval || gold == .fd {
            md += "\n## \(gold.name) change at equal proxy gain (mean over seeds, 95% bootstrap interval; runs reaching the gain)\n\n"
            md += "| configuration | " + gains.map { String(format: "proxy %+.3g", $0) }.joined(separator: " | ") + " |\n"
            md += "|---|" + gains.map { _ in "---" }.joined(separator: "|") + "|\n"
            for g in groups(rows) {
                md += "| \(g.label.isEmpty ? "(all)" : g.label) |"
                for gain in gains {
                    if let ci = g.interval({ $0.change(gold, atProxyGain: gain) }) {
                        md += String(format: " %+.3f [%+.3f, %+.3f] (%ld/%ld) |", ci.mean, ci.low, ci.high, ci.n, g.runs.count)
                    } else {
                        md += " not reached (0/\(g.runs.count)) |"
                    }
                }
                md += "\n"
            }
        }
        // the ratio statistics per configuration (the mean over seeds of each run's mean over iterations)
        let withRatios = configurations(rows).filter { !$0.1.contains { $0.ratios.isEmpty } }
        if let first = withRatios.first?.1.first?.ratios, !first.isEmpty {
            md += "\n## Ratio statistics per SDE step (mean over iterations and seeds): ratio mean / plain log-ratio mean / clipped fraction\n\n"
            md += "| configuration | " + first.map { String(format: "k=%ld (t=%.2f)", $0.k, $0.t) }.joined(separator: " | ") + " |\n"
            md += "|---|" + first.map { _ in "---" }.joined(separator: "|") + "|\n"
            for (key, group) in withRatios {
                md += "| \(key.isEmpty ? "(all)" : key) |"
                for i in first.indices {
                    let at = group.compactMap { i < $0.ratios.count ? $0.ratios[i] : nil }
                    func mean(_ f: (StepRatios) -> Double) -> Double {
                        at.map(f).reduce(0, +) / Double(max(at.count, 1))
                    }
                    md += String(format: " %.6f / %+.2e / %.3f |", mean(\.ratioMean), mean(\.plainLogratio), mean(\.clipped))
                }
                md += "\n"
            }
        }
        return md
    }

    /// The non-dominated points (higher proxy gain and higher gold are both better), by gain.
    static func paretoFront(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        var front: [(x: Double, y: Double)] = []
        for p in points.sorted(by: { $0.x > $1.x || ($0.x == $1.x && $0.y > $1.y) }) where front.last.map({ p.y > $0.y }) ?? true {
            front.append(p)
        }
        return front.reversed()
    }

    /// frontier.png: each gold metric's change against the proxy gain, one point per run and
    /// evaluated step, a colour per configuration (the seeds of one share it), and each
    /// configuration's Pareto front as a line (lower-is-better metrics negated for the front).
    public static func frontier(_ rows: [SummaryRow]) -> RGBImage {
        let golds = (rows.first?.summary.golds ?? []).filter { !$0.measuresDistance }
        let configs = configurations(rows)
        let panels = golds.map { g -> RGBImage in
            var c = LineChart(title: "\(g.name) change vs proxy gain\(g.higherIsBetter ? "" : " (lower is better)")",
                              xLabel: "proxy gain", yLabel: "\(g.name) change")
            c.width = 640; c.height = 300 + configs.count * BitmapFont.lineHeight
            for (i, (key, group)) in configs.enumerated() {
                let color = LineChart.palette[i % LineChart.palette.count]
                let pts = group.flatMap { r in r.summary.trajectory.compactMap { t in t.gold[g].map { (x: t.gain, y: $0) } } }
                let sign = g.higherIsBetter ? 1.0 : -1.0
                let front = paretoFront(pts.map { ($0.x, sign * $0.y) }).map { (x: $0.x, y: sign * $0.y) }
                c.series.append(.init(name: key.isEmpty ? "runs" : key, points: front, color: color))
                c.scatter.append(.init(points: pts, color: color))
            }
            c.legend = true
            return c.render()
        }
        return smallMultiples(top: nil, panels: panels, columns: 1)
    }
}
