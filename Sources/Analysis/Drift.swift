import Foundation
import Tensor

/// A gold metric of a run at its evaluated steps, with each point's standard error.
public struct GoldSeries {
    public var metric: GoldMetric
    public var points: [(x: Double, y: Double)]
    /// Each point's standard error (nil where the metrics file has none).
    public var se: [Double?] = []
    /// Each point's standard error of the change since step 0, paired over the same images (nil
    /// where the metric is not per image, at step 0, and in metrics written before it was logged).
    public var changeSE: [Double?] = []
    public var name: String { metric.name }
}

/// Over-optimisation analysis of a run's evaluations.
///
/// The proxy is the eval images' weighted reward. Gold metrics: every metric of the evaluation
/// (`EvalRecord.metrics`) but the optimised scorers and the task breakdowns: shape-eval, the
/// weight-0 scorers, the Frechet distance (lower is better), diversity, and the distances from
/// the base model. A gold metric "has fallen" at a step when it is worse than at step 0 by more
/// than twice the standard error of the difference: paired over the same eval images where the
/// evaluation logs it (shape-eval, the scorers), else sqrt(se0^2 + se^2) (the Frechet distance,
/// diversity: the evaluations' own standard errors, treated as independent, which is
/// conservative, since every evaluation draws the same noise); in metrics written before standard
/// errors were logged, by more than a fixed band: max(5% of its step-0 magnitude, 10% of its
/// spread over the run's evaluations, 1e-6). The onset of over-optimisation is the first
/// evaluated step at which the proxy still rises (above step 0 and not below the previous
/// evaluation) while a gold metric has fallen.
public struct DriftAnalysis {
    public var proxy: [(x: Double, y: Double)]
    public var gold: [GoldSeries]
    public var onset: Int?
    public var onsetMetrics: [GoldMetric]

    public init(_ m: RunMetrics, optimised: Set<String>) {
        let evals = m.evals
        proxy = evals.map { e in (Double(e.step), e.eval.proxy) }
        gold = m.goldMetrics.filter { g in !g.isBreakdown && !optimised.contains(g.name) }.compactMap { g in
            let kept = evals.compactMap { e in e.eval.value(g).map { (x: Double(e.step), y: $0, se: e.eval.se[g.id], change: e.eval.changeSE[g.id]) } }
            return kept.isEmpty ? nil : GoldSeries(metric: g, points: kept.map { ($0.x, $0.y) }, se: kept.map(\.se), changeSE: kept.map(\.change))
        }
        onset = nil; onsetMetrics = []
        guard proxy.count >= 2 else { return }
        for i in 1..<proxy.count {
            let rising = proxy[i].y > proxy[0].y && proxy[i].y >= proxy[i - 1].y
            guard rising else { continue }
            let fallen = gold.filter { g in
                guard !g.metric.measuresDistance, let j = g.points.firstIndex(where: { $0.x == proxy[i].x }), let base = g.points.first else { return false }
                let ys = g.points.map(\.y)
                let band: Double
                if j < g.changeSE.count, let paired = g.changeSE[j] {
                    band = max(2 * paired, 1e-6)
                } else if let se0 = g.se.first ?? nil, j < g.se.count, let se = g.se[j] {
                    band = max(2 * (se0 * se0 + se * se).squareRoot(), 1e-6)
                } else {
                    band = max(0.05 * abs(base.y), 0.1 * (ys.max()! - ys.min()!), 1e-6)
                }
                let worse = g.metric.higherIsBetter ? base.y - g.points[j].y : g.points[j].y - base.y
                return worse > band
            }
            if !fallen.isEmpty { onset = Int(proxy[i].x); onsetMetrics = fallen.map(\.metric); return }
        }
    }
}

/// What one run did, as report, sweep and compare tell it: the proxy's gain and each gold
/// metric's change from step 0 at every evaluation, at the end and at equal proxy gains; the
/// onset of over-optimisation; the training time.
public struct RunSummary {
    public let drift: DriftAnalysis
    /// (step, proxy gain, change of each gold metric) at every evaluated step, in step order.
    public let trajectory: [(step: Int, gain: Double, gold: [GoldMetric: Double])]
    /// Seconds of training (the iterations' own times).
    public let seconds: Double

    public init(_ m: RunMetrics, optimised: Set<String>) {
        let drift = DriftAnalysis(m, optimised: optimised)
        self.drift = drift
        seconds = m.lines.compactMap(\.seconds).reduce(0, +)
        guard let p0 = drift.proxy.first?.y else { trajectory = []; return }
        trajectory = drift.proxy.map { step, proxy in
            var g: [GoldMetric: Double] = [:]
            for s in drift.gold {
                if let base = s.points.first?.y, let v = s.points.first(where: { $0.x == step })?.y { g[s.metric] = v - base }
            }
            return (Int(step), proxy - p0, g)
        }
    }

    public var golds: [GoldMetric] { drift.gold.map(\.metric) }
    public var onset: Int? { drift.onset }
    public var proxyGain: Double { trajectory.last?.gain ?? 0 }
    /// The metric's change from step 0 at the last evaluation.
    public func change(_ m: GoldMetric) -> Double? { trajectory.last?.gold[m] }
    /// The metric's change where the proxy gain first reaches `gain` (interpolated), or nil.
    public func change(_ m: GoldMetric, atProxyGain gain: Double) -> Double? {
        valueWhereFirstReached(trajectory.compactMap { t in t.gold[m].map { (t.gain, $0) } }, level: gain)
    }
}

/// The runs of one configuration (its seeds), summarised together: each quantity's mean with a
/// 95% bootstrap interval over the runs that have it.
public struct SummaryGroup {
    public var label: String
    public var runs: [RunSummary]
    public init(label: String, runs: [RunSummary]) { self.label = label; self.runs = runs }

    /// Mean, interval and how many runs have the quantity (nil: none has it).
    public func interval(_ f: (RunSummary) -> Double?) -> (mean: Double, low: Double, high: Double, n: Int)? {
        let values = runs.compactMap(f)
        return bootstrapMeanInterval(values).map { ($0.mean, $0.low, $0.high, values.count) }
    }

    /// The quantities a configurations table lists, with their JSON names: the proxy gain, each
    /// gold metric's change, the training time (the onset is counted apart).
    public var columns: [(name: String, value: (RunSummary) -> Double?)] {
        var golds: [GoldMetric] = []
        for r in runs { for g in r.golds where !golds.contains(g) { golds.append(g) } }
        return [("proxy_gain", { $0.proxyGain })] + golds.map { g in (g.name + " change", { $0.change(g) }) } + [("seconds", { $0.seconds })]
    }
}

/// The configurations table of compare and sweep: a row per configuration, each quantity's value
/// (one run) or mean with its 95% bootstrap interval over the seeds, and the onsets.
public enum ConfigurationTable {
    public static func markdown(_ groups: [SummaryGroup]) -> String {
        guard let first = groups.first else { return "" }
        let columns = first.columns
        var md = "| configuration | " + columns.map(\.name).joined(separator: " | ") + " | onset |\n"
        md += "|---|" + columns.map { _ in "---" }.joined(separator: "|") + "|---|\n"
        for g in groups {
            md += "| \(g.label.isEmpty ? "(all)" : g.label) |"
            for c in columns {
                if let v = g.interval(c.value) {
                    md += g.runs.count == 1 ? " \(JSONValue.double(v.mean).text) |" : String(format: " %.4g [%.4g, %.4g] |", v.mean, v.low, v.high)
                } else {
                    md += " - |"
                }
            }
            md += " \(onsetText(g)) |\n"
        }
        return md
    }

    static func onsetText(_ g: SummaryGroup) -> String {
        let onsets = g.runs.compactMap(\.onset)
        if g.runs.count == 1 { return onsets.first.map(String.init) ?? "-" }
        return "\(onsets.count)/\(g.runs.count) runs" + (onsets.isEmpty ? "" : ", median \(onsets.sorted()[onsets.count / 2])")
    }

    public static func json(_ groups: [SummaryGroup]) -> JSONValue {
        .array(groups.map { g in
            var o: [(String, JSONValue)] = [("configuration", .string(g.label)), ("runs", .int(g.runs.count))]
            for c in g.columns {
                guard let v = g.interval(c.value) else { o.append((c.name, .null)); continue }
                o.append((c.name, g.runs.count == 1 ? .double(v.mean)
                          : .object([("mean", .double(v.mean)), ("low", .double(v.low)), ("high", .double(v.high)),
                                     ("values", .array(g.runs.map { c.value($0).map { .double($0) } ?? .null }))])))
            }
            o.append(("onset_step", g.runs.count == 1 ? (g.runs[0].onset.map { .int($0) } ?? .null) : .array(g.runs.map { $0.onset.map { .int($0) } ?? .null })))
            return .object(o)
        })
    }
}
