import Foundation
import Rewards
import Tensor
import Imaging

/// A setting a sweep varies: any sweepable setting of `FinetuneConfig.table` by its name, or
/// `rm`, the reward model of the reward's rm: term (its path, or P1+P2 for an ensemble).
public struct SweepAxis: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public var description: String { name }

    /// The axis named `name`; an unknown one is an error naming the known ones.
    public init(_ name: String) throws {
        guard name == Self.rm || FinetuneConfig.table.sweepable.contains(where: { $0.name == name }) else {
            throw InvalidOption("--vary \(name): not a setting a sweep can vary; axes: \(Self.names.joined(separator: ", "))")
        }
        self.name = name
    }

    static let rm = "rm"
    /// Every axis a sweep can vary.
    public static var names: [String] { FinetuneConfig.table.sweepable.map { $0.name } + [rm] }

    /// Sets this axis of `c` to `value`; a value the option would refuse is an error naming both.
    func apply(_ value: String, to c: inout FinetuneConfig) throws {
        guard name == Self.rm else {
            let s = FinetuneConfig.table[name]!
            // (its range is checked with the whole point's configuration, which names the point)
            do { try s.set(&c, value) } catch let e as InvalidOption { throw InvalidOption("--vary \(name): \(e.description)") }
            return
        }
        var terms = try RewardSpec(parsing: c.reward).terms
        guard let k = terms.firstIndex(where: { $0.name.hasPrefix(ScorerRegistry.learnedPrefix) }) else {
            throw InvalidOption("--vary rm: the reward \"\(c.reward)\" has no rm: term whose model to vary (give e.g. --reward rm:RM.safetensors,shape-eval=0)")
        }
        guard !value.isEmpty else { throw InvalidOption("--vary rm: an empty path") }
        terms[k].name = ScorerRegistry.learnedPrefix + value
        c.reward = RewardSpec(terms: terms).description
    }
}

/// One run of a sweep: its settings (the varied axes and the seed) and its configuration.
public struct SweepPoint: Sendable {
    public var settings: [(String, String)]
    public var config: FinetuneConfig
    /// The run folder's name: the settings as key=value joined by "_" (file-name safe).
    public var name: String {
        settings.map { k, v in "\(k)=\(v)" }.joined(separator: "_")
            .map { $0.isLetter || $0.isNumber || "=._-+".contains($0) ? String($0) : "-" }.joined()
    }
    /// The settings but the seed: the runs of one configuration share it.
    public var configurationKey: String { settings.filter { $0.0 != "seed" }.map { "\($0.0)=\($0.1)" }.joined(separator: ", ") }
}

/// The grid of a sweep: every combination of the varied values (the first axis slowest), each
/// with seeds base, base + 1, ..., base + seeds - 1.
public func sweepGrid(base: FinetuneConfig, vary: [(SweepAxis, [String])], seeds: Int) throws -> [SweepPoint] {
    guard seeds >= 1 else { throw InvalidOption("--seeds must be at least 1, got \(seeds)") }
    var seen: Set<SweepAxis> = []
    for (axis, values) in vary {
        guard seen.insert(axis).inserted else { throw InvalidOption("--vary \(axis.name) is given twice") }
        guard !values.isEmpty, Set(values).count == values.count else {
            throw InvalidOption("--vary \(axis.name) needs distinct values, got '\(values.joined(separator: ","))'")
        }
    }
    var points = [SweepPoint(settings: [], config: base)]
    for (axis, values) in vary {
        points = try points.flatMap { p in
            try values.map { v in
                var q = p
                try axis.apply(v, to: &q.config)
                q.settings.append((axis.name, v))
                return q
            }
        }
    }
    points = points.flatMap { p in
        (0..<seeds).map { s in
            var q = p
            q.config.seed = base.seed &+ UInt64(s)
            q.settings.append(("seed", String(q.config.seed)))
            return q
        }
    }
    for p in points {
        do { try p.config.validate() } catch { throw InvalidOption("sweep point \(p.name): \(error)") }
    }
    return points
}

/// One SDE step's ratio statistics, averaged over a run's iterations.
public struct StepRatios {
    public var k: Int
    public var t, ratioMean, plainLogratio, clipped: Double
}

/// What a finished run contributes to a sweep's tables.
public struct SweepRow {
    public var point: SweepPoint
    public var drift: DriftAnalysis
    public var finished: Bool
    /// (proxy gain, change of each gold metric) at every evaluated step, in step order.
    public var trajectory: [(gain: Double, gold: [String: Double])] {
        guard let p0 = drift.proxy.first?.y else { return [] }
        return drift.proxy.map { step, proxy in
            var g: [String: Double] = [:]
            for s in drift.gold {
                if let base = s.points.first?.y, let v = s.points.first(where: { $0.x == step })?.y { g[s.name] = v - base }
            }
            return (proxy - p0, g)
        }
    }

    /// Per trained SDE step k (with its t): the mean over the run's iterations of the ratio
    /// mean, of the plain log-ratio mean (before RatioNorm) and of the clipped fractions
    /// (clipped-ratio algorithms; empty otherwise).
    public var ratios: [StepRatios]

    public init(point: SweepPoint, metrics: RunMetrics) throws {
        self.point = point
        let steps = metrics.lines.compactMap(\.timesteps)
        ratios = (steps.first ?? []).enumerated().map { i, first in
            let at = steps.compactMap { i < $0.count ? $0[i] : nil }
            func mean(_ f: (TimestepRecord) -> Double) -> Double { at.map(f).reduce(0, +) / Double(max(at.count, 1)) }
            return StepRatios(k: first.k, t: first.t, ratioMean: mean(\.ratioMean), plainLogratio: mean(\.plainLogratioMean),
                              clipped: mean { $0.clipHigh + $0.clipLow })
        }
        drift = DriftAnalysis(metrics, optimised: try optimisedScorers(point.config.reward))
        finished = (metrics.lines.last?.step ?? 0) >= point.config.steps
    }

    public var json: JSONValue {
        var o: [(String, JSONValue)] = [("run", .string(point.name))]
        for (k, v) in point.settings { o.append((k, Double(v).map { .double($0) } ?? .string(v))) }
        o.append(("finished", .bool(finished)))
        let last = trajectory.last
        o.append(("proxy_gain", .double(last?.gain ?? 0)))
        for g in drift.gold { o.append((g.name + " change", .double(last?.gold[g.name] ?? 0))) }
        o.append(("onset_step", drift.onset.map { .int($0) } ?? .null))
        return .object(o)
    }
}

/// The value of `gold` where the trajectory's proxy gain first reaches `gain`, linearly
/// interpolated between the two evaluations around it; nil if the run never reaches it.
public func goldAtProxyGain(_ trajectory: [(gain: Double, gold: Double)], gain: Double) -> Double? {
    guard let first = trajectory.first else { return nil }
    if first.gain >= gain { return first.gold }
    for i in 1..<max(1, trajectory.count) {
        let a = trajectory[i - 1], b = trajectory[i]
        if b.gain >= gain {
            let f = b.gain == a.gain ? 1 : (gain - a.gain) / (b.gain - a.gain)
            return a.gold + f * (b.gold - a.gold)
        }
    }
    return nil
}

/// A percentile-bootstrap confidence interval of the mean of `values` (`level` e.g. 0.95),
/// from `resamples` resamples drawn with a fixed seed (the same data give the same interval).
public func bootstrapMeanInterval(_ values: [Double], level: Double = 0.95, resamples: Int = 2000, seed: UInt64 = 0xB007)
    -> (mean: Double, low: Double, high: Double)? {
    guard !values.isEmpty else { return nil }
    let mean = values.reduce(0, +) / Double(values.count)
    guard values.count > 1 else { return (mean, mean, mean) }
    var rng = RNG(seed: seed)
    var means = (0..<resamples).map { _ in
        (0..<values.count).reduce(0.0) { acc, _ in acc + values[rng.int(values.count)] } / Double(values.count)
    }
    means.sort()
    let tail = (1 - level) / 2
    func q(_ p: Double) -> Double { means[min(means.count - 1, max(0, Int((p * Double(means.count - 1)).rounded())))] }
    return (mean, q(tail), q(1 - tail))
}

/// The sweep's tables and frontier chart, from the rows of its runs.
public enum SweepReport {
    /// Markdown: one row per run, then each configuration's gold change at equal proxy gains
    /// with a 95% bootstrap interval over its seeds.
    public static func markdown(_ rows: [SweepRow], reward: String, gains: [Double] = [0.05, 0.1, 0.2, 0.3]) -> String {
        let golds = rows.first?.drift.gold.map(\.name) ?? []
        let axes = rows.first?.point.settings.map(\.0) ?? []
        var md = "# Sweep\n\nReward `\(reward)`; \(rows.count) runs (\(rows.filter(\.finished).count) finished).\n\n## Runs\n\n"
        md += "| " + (axes + ["proxy gain"] + golds.map { $0 + " change" } + ["onset"]).joined(separator: " | ") + " |\n"
        md += "|" + Array(repeating: "---", count: axes.count + golds.count + 2).joined(separator: "|") + "|\n"
        for r in rows {
            let last = r.trajectory.last
            md += "| " + (r.point.settings.map(\.1) + [String(format: "%+.4f", last?.gain ?? 0)]
                + golds.map { String(format: "%+.4f", last?.gold[$0] ?? 0) } + [r.drift.onset.map(String.init) ?? "-"]).joined(separator: " | ")
            md += r.finished ? " |\n" : " (unfinished) |\n"
        }
        for gold in golds where gold == "shape-eval" || gold == "frechet distance" {
            md += "\n## \(gold) change at equal proxy gain (mean over seeds, 95% bootstrap interval; runs reaching the gain)\n\n"
            md += "| configuration | " + gains.map { String(format: "proxy %+.3g", $0) }.joined(separator: " | ") + " |\n"
            md += "|---|" + gains.map { _ in "---" }.joined(separator: "|") + "|\n"
            for (key, group) in configurations(rows) {
                md += "| \(key.isEmpty ? "(all)" : key) |"
                for g in gains {
                    let values = group.compactMap { r in
                        goldAtProxyGain(r.trajectory.map { ($0.gain, $0.gold[gold] ?? 0) }, gain: g)
                    }
                    if let ci = bootstrapMeanInterval(values) {
                        md += String(format: " %+.3f [%+.3f, %+.3f] (%ld/%ld) |", ci.mean, ci.low, ci.high, values.count, group.count)
                    } else {
                        md += " not reached (0/\(group.count)) |"
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

    /// The runs grouped by configuration (settings but the seed), in sweep order.
    static func configurations(_ rows: [SweepRow]) -> [(String, [SweepRow])] {
        var order: [String] = [], groups: [String: [SweepRow]] = [:]
        for r in rows {
            let k = r.point.configurationKey
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        return order.map { ($0, groups[$0]!) }
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
    public static func frontier(_ rows: [SweepRow]) -> RGBImage {
        let golds = (rows.first?.drift.gold ?? []).filter { !$0.measuresDistance }
        let higher = Dictionary(uniqueKeysWithValues: golds.map { ($0.name, $0.higherIsBetter) })
        let configs = configurations(rows)
        let panels = golds.map { g -> RGBImage in
            var c = LineChart(title: "\(g.name) change vs proxy gain\(g.higherIsBetter ? "" : " (lower is better)")",
                              xLabel: "proxy gain", yLabel: "\(g.name) change")
            c.width = 640; c.height = 300 + configs.count * BitmapFont.lineHeight
            for (i, (key, group)) in configs.enumerated() {
                let color = LineChart.palette[i % LineChart.palette.count]
                let pts = group.flatMap { r in r.trajectory.compactMap { t in t.gold[g.name].map { (x: t.gain, y: $0) } } }
                let sign = higher[g.name] ?? true ? 1.0 : -1.0
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
