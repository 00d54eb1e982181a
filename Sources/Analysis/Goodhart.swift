import Foundation
import Tensor
import Imaging

/// Best-of-n from the base model (Gao, Schulman and Hilton 2022): for every prompt N candidates;
/// for n = 1, 2, 4, ..., N the candidate the proxy likes best among n, and its gold. Each n uses
/// all N candidates as N / n disjoint groups (the mean over the groups estimates the best-of-n
/// expectation with less variance than one group). KL(bon_n || base) = log n - (n - 1) / n.
public struct BestOfN {
    public struct Row: Equatable {
        public var n: Int
        public var kl: Double
        public var proxy: Double, proxySE: Double
        public var gold: [String: Double], goldSE: [String: Double]
        /// The standard error of the gold's gain over n = 1 (the mean of all candidates), paired
        /// over prompts: the same candidates enter every n, so it is smaller than goldSE's.
        public var goldGainSE: [String: Double] = [:]
        public var d: Double { kl.squareRoot() }
    }

    /// The analytic KL of best-of-n sampling to the base distribution.
    public static func kl(n: Int) -> Double { log(Double(n)) - Double(n - 1) / Double(n) }

    /// n = 1, 2, 4, ... up to `maxN` (and `maxN` itself when it is not a power of two).
    public static func sizes(maxN: Int) -> [Int] {
        var out: [Int] = [], n = 1
        while n <= maxN { out.append(n); n *= 2 }
        if out.last != maxN { out.append(maxN) }
        return out
    }

    /// The index of the candidate the proxy likes best in each disjoint group of n of `proxy`
    /// (a tie goes to the first); a last group shorter than n is left out.
    public static func selections(proxy: [Float], n: Int) -> [Int] {
        stride(from: 0, to: proxy.count - n + 1, by: n).map { start in
            (start..<(start + n)).max { proxy[$0] < proxy[$1] || (proxy[$0] == proxy[$1] && $0 > $1) }!
        }
    }

    /// The rows from the candidates' scores: proxy[p][c] and gold[name][p][c] for prompt p and
    /// candidate c. Standard errors are over prompts (each prompt's mean over its groups).
    public static func rows(proxy: [[Float]], gold: [String: [[Float]]], maxN: Int) -> [Row] {
        // each prompt's mean gold over all its candidates: the n = 1 value the gains are paired with
        let candidateMean = gold.mapValues { g in g.map { c in c.reduce(0.0) { $0 + Double($1) } / Double(max(1, c.count)) } }
        return sizes(maxN: maxN).map { n in
            var proxyPerPrompt: [Double] = [], goldPerPrompt: [String: [Double]] = [:], gainPerPrompt: [String: [Double]] = [:]
            for p in proxy.indices {
                let picks = selections(proxy: proxy[p], n: n)
                proxyPerPrompt.append(picks.reduce(0.0) { $0 + Double(proxy[p][$1]) } / Double(picks.count))
                for (name, g) in gold {
                    let picked = picks.reduce(0.0) { $0 + Double(g[p][$1]) } / Double(picks.count)
                    goldPerPrompt[name, default: []].append(picked)
                    gainPerPrompt[name, default: []].append(picked - candidateMean[name]![p])
                }
            }
            let mean: ([Double]) -> Double = { $0.reduce(0, +) / Double(max(1, $0.count)) }
            var row = Row(n: n, kl: kl(n: n), proxy: mean(proxyPerPrompt), proxySE: standardError(proxyPerPrompt),
                          gold: goldPerPrompt.mapValues(mean), goldSE: goldPerPrompt.mapValues(standardError))
            row.goldGainSE = gainPerPrompt.mapValues(standardError)
            return row
        }
    }

    public static func jsonLine(_ r: Row) -> String {
        func obj(_ d: [String: Double]) -> JSONValue { .object(d.sorted { $0.key < $1.key }.map { ($0.key, .double($0.value)) }) }
        return jsonObject(["n": .int(r.n), "kl": .double(r.kl), "d": .double(r.d), "proxy": .double(r.proxy), "proxy_se": .double(r.proxySE),
                           "gold": obj(r.gold), "gold_se": obj(r.goldSE), "gold_gain_se": obj(r.goldGainSE)])
    }
}

/// Gao et al.'s functional forms of the gold score's change against d = sqrt(KL):
///     best-of-n:  g(d) - g(0) = d (alpha - beta d)
///     RL:         g(d) - g(0) = d (alpha - beta log d)
/// both linear in (alpha, beta), fitted by least squares through the origin.
public enum GoodhartForm: String, CaseIterable, Sendable {
    case bestOfN = "bon"
    case rl

    /// The two regressors of the form at d (the fit is alpha * f1 - beta * f2).
    func features(_ d: Double) -> (Double, Double) {
        switch self {
        case .bestOfN: return (d, d * d)
        case .rl: return (d, d > 0 ? d * log(d) : 0)
        }
    }

    public func value(_ d: Double, alpha: Double, beta: Double) -> Double {
        let (f1, f2) = features(d)
        return alpha * f1 - beta * f2
    }

    /// (alpha, beta) minimising the squared error of gain = alpha f1(d) - beta f2(d); nil when
    /// the points do not determine both (fewer than two distinct d > 0).
    public func fit(_ points: [(d: Double, gain: Double)]) -> (alpha: Double, beta: Double)? {
        var s11 = 0.0, s12 = 0.0, s22 = 0.0, s1y = 0.0, s2y = 0.0
        for p in points {
            let (f1, f2n) = features(p.d)
            let f2 = -f2n
            s11 += f1 * f1; s12 += f1 * f2; s22 += f2 * f2; s1y += f1 * p.gain; s2y += f2 * p.gain
        }
        let det = s11 * s22 - s12 * s12
        guard det.magnitude > 1e-12 * max(1, s11 * s22) else { return nil }
        return ((s22 * s1y - s12 * s2y) / det, (s11 * s2y - s12 * s1y) / det)
    }

    /// The fit with a bootstrap over groups (runs, say): `groups` of points resampled with
    /// replacement; the 2.5% and 97.5% quantiles of alpha and beta over `resamples` fits.
    public func fitWithIntervals(_ groups: [[(d: Double, gain: Double)]], resamples: Int = 200, seed: UInt64 = 0x60DA)
        -> (alpha: Double, beta: Double, alphaCI: (Double, Double), betaCI: (Double, Double))? {
        guard let best = fit(groups.flatMap { $0 }) else { return nil }
        var rng = RNG(seed: seed)
        var alphas: [Double] = [], betas: [Double] = []
        for _ in 0..<resamples {
            let pick = (0..<groups.count).flatMap { _ in groups[rng.int(groups.count)] }
            if let f = fit(pick) { alphas.append(f.alpha); betas.append(f.beta) }
        }
        func ci(_ x: [Double]) -> (Double, Double) {
            guard !x.isEmpty else { return (.nan, .nan) }
            let s = x.sorted()
            return (s[Int(Double(s.count - 1) * 0.025)], s[Int(Double(s.count - 1) * 0.975)])
        }
        return (best.alpha, best.beta, ci(alphas), ci(betas))
    }
}

/// The Goodhart chart of groups of runs: the gold and the proxy against d = sqrt(KL to the base
/// model), every RL run's evaluations (their kl_base) and best-of-n's rows, Gao et al.'s form of
/// each group fitted to the gold's change from each run's start (bootstrap over the group's runs).
public struct GoodhartChart {
    public struct Point {
        public var d, gold, proxy: Double
        public var goldSE: Double? = nil     // the evaluation's standard error of the gold, where known
        /// The standard error of the gold's gain over the run's first point, where it is known
        /// paired (best-of-n: the same candidates at every n; RL: the same eval images and noise
        /// at every evaluation); else the two goldSEs combine.
        public var gainSE: Double? = nil
        public init(d: Double, gold: Double, proxy: Double, goldSE: Double? = nil, gainSE: Double? = nil) {
            self.d = d; self.gold = gold; self.proxy = proxy; self.goldSE = goldSE; self.gainSE = gainSE
        }
    }
    public struct Group {
        public var label: String
        public var form: GoodhartForm
        public var runs: [[Point]] = []
        public init(label: String, form: GoodhartForm, runs: [[Point]] = []) { self.label = label; self.form = form; self.runs = runs }
        public var name: String { "\(label) (\(form == .rl ? "RL" : "best-of-n"), \(runs.count) run\(runs.count == 1 ? "" : "s"))" }
    }
    public struct Fit {
        public var group: String, form: GoodhartForm, runs: Int, points: Int
        public var goldStart, alpha, beta: Double
        public var alphaCI, betaCI: (Double, Double)
        /// Where the fitted gold peaks (nil when beta <= 0: it does not turn over).
        public var peakD: Double? {
            guard beta > 0 else { return nil }
            return form == .rl ? exp(alpha / beta - 1) : alpha / (2 * beta)
        }
        public var json: String {
            jsonObject(["label": .string(group), "form": .string(form.rawValue), "runs": .int(runs), "points": .int(points),
                        "gold_start": .double(goldStart), "alpha": .double(alpha), "beta": .double(beta),
                        "alpha_ci": .array([.double(alphaCI.0), .double(alphaCI.1)]), "beta_ci": .array([.double(betaCI.0), .double(betaCI.1)]),
                        "peak_d": peakD.map { .double($0) } ?? .null])
        }
        public var summary: String {
            String(format: "%@ (%@): alpha %.4g [%.4g, %.4g], beta %.4g [%.4g, %.4g]", group, form.rawValue, alpha, alphaCI.0, alphaCI.1, beta, betaCI.0, betaCI.1)
                + (peakD.map { String(format: ", gold peaks at d = %.3g", $0) } ?? ", no peak")
        }
    }

    public let gold: String
    public var groups: [Group] = []
    public init(gold: String) { self.gold = gold }

    mutating func add(_ label: String, _ form: GoodhartForm, _ points: [Point]) {
        if let k = groups.firstIndex(where: { $0.label == label && $0.form == form }) { groups[k].runs.append(points) }
        else { groups.append(Group(label: label, form: form, runs: [points])) }
    }

    /// Where a run's curve leaves its start unmeasured: the first evaluation's d after the start,
    /// when it is more than a third of the run's largest (the fitted form's shape between the
    /// base model and it is then the form's, not the data's); nil otherwise.
    public static func unmeasuredStart(_ points: [Point]) -> Double? {
        guard let first = points.map(\.d).filter({ $0 > 0 }).min(), let last = points.map(\.d).max(), first > last / 3 else { return nil }
        return first
    }

    /// The RL groups none of whose runs is measured near the base model, with the smallest first
    /// d among their runs (`unmeasuredStart` of every run).
    public var unmeasuredStarts: [(label: String, d: Double)] {
        groups.compactMap { g in
            guard g.form == .rl else { return nil }
            let starts = g.runs.compactMap(Self.unmeasuredStart)
            guard starts.count == g.runs.count, let d = starts.min() else { return nil }
            return (g.label, d)
        }
    }

    /// The evaluations of one run's metrics that have kl_base and the gold.
    public static func points(of m: RunMetrics, gold: String) -> [Point] {
        m.evals.compactMap { e in
            // the gold's scorer where the run logs it, else the checker's own shape-eval
            let metric: GoldMetric? = e.eval.scores[gold] != nil ? .scorer(gold) : gold == GoldMetric.shapeEval.name ? .shapeEval : nil
            guard let kl = e.eval.klBase, let metric, let g = e.eval.value(metric) else { return nil }
            return Point(d: max(kl, 0).squareRoot(), gold: g, proxy: e.eval.proxy, goldSE: e.eval.se[metric.id], gainSE: e.eval.changeSE[metric.id])
        }
    }

    /// The gold of a run's chart: shape-eval unless the run optimises it, else its first weight-0
    /// scorer (nil: it has none).
    public static func gold(optimised: Set<String>, scorers: [String]) -> String? {
        optimised.contains("shape-eval") ? scorers.sorted().first { !optimised.contains($0) } : "shape-eval"
    }

    /// Adds a run's evaluations; false (nothing added) when fewer than two carry kl_base and the gold.
    @discardableResult
    public mutating func add(run m: RunMetrics, label: String) -> Bool {
        let points = Self.points(of: m, gold: gold)
        guard points.count >= 2 else { return false }
        add(label, .rl, points)
        return true
    }

    public mutating func addRun(label: String, folder: URL) throws {
        guard add(run: try RunMetrics(url: folder.appendingPathComponent("metrics.jsonl")), label: label) else {
            throw AnalysisError("\(folder.path): fewer than two evaluations with kl_base and \(gold) (give the gold as a weight-0 scorer of the run, or shape-eval)")
        }
    }

    public mutating func addBestOfN(label: String, folder: URL) throws {
        let path = folder.appendingPathComponent("bon.jsonl")
        guard let text = try? String(contentsOf: path, encoding: .utf8) else { throw AnalysisError("\(path.path): cannot read it (run flowtune best-of-n first)") }
        var points: [Point] = []
        for (n, line) in text.split(separator: "\n").enumerated() {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let d = o["d"] as? Double,
                  let p = o["proxy"] as? Double, let g = (o["gold"] as? [String: Any])?[gold] as? Double else {
                throw AnalysisError("\(path.path) line \(n + 1): not a best-of-n row with the gold \(gold)")
            }
            points.append(Point(d: d, gold: g, proxy: p, goldSE: (o["gold_se"] as? [String: Any])?[gold] as? Double,
                                gainSE: (o["gold_gain_se"] as? [String: Any])?[gold] as? Double))
        }
        guard points.count >= 2 else { throw AnalysisError("\(path.path): fewer than two rows") }
        add(label, .bestOfN, points)
    }

    /// The fit of each group (nil for a group whose points do not determine it).
    public func fits() -> [Fit?] {
        groups.map { g in
            let gains = g.runs.map { run in run.map { (d: $0.d, gain: $0.gold - run[0].gold) } }
            // the bootstrap resamples runs; a group of one run resamples its points
            guard let f = g.form.fitWithIntervals(gains.count > 1 ? gains : gains[0].map { [$0] }) else { return nil }
            return Fit(group: g.label, form: g.form, runs: g.runs.count, points: gains.reduce(0) { $0 + $1.count },
                       goldStart: g.runs.map { $0[0].gold }.reduce(0, +) / Double(g.runs.count),
                       alpha: f.alpha, beta: f.beta, alphaCI: f.alphaCI, betaCI: f.betaCI)
        }
    }

    /// The fits as one JSON array, a fit per line.
    public static func json(_ fits: [Fit]) -> String { "[" + fits.map(\.json).joined(separator: ",\n ") + "]\n" }

    /// Two panels side by side (gold with the fitted forms; proxy), and the fits.
    public func render() -> (RGBImage, [Fit]) {
        var goldChart = LineChart(title: "gold (\(gold)) against sqrt(KL); lines: Gao et al.'s forms fitted", xLabel: "d = sqrt(KL to the base model, nats)", yLabel: gold)
        var proxyChart = LineChart(title: "proxy against sqrt(KL)", xLabel: "d = sqrt(KL to the base model, nats)", yLabel: "proxy")
        goldChart.width = 720; goldChart.height = 420; proxyChart.width = 720; proxyChart.height = 420
        goldChart.legend = true; proxyChart.legend = true
        let fitted = fits()
        for (k, g) in groups.enumerated() {
            let color = LineChart.palette[k % LineChart.palette.count]
            let all = g.runs.flatMap { $0 }
            goldChart.scatter.append(.init(points: all.map { ($0.d, $0.gold) }, color: color))
            for (r, run) in g.runs.enumerated() {
                proxyChart.series.append(.init(name: r == 0 ? g.name : "", points: run.map { ($0.d, $0.proxy) }, color: color))
            }
            if let f = fitted[k] {
                let dMax = all.map(\.d).max() ?? 1
                let curve = (0...40).map { i -> (x: Double, y: Double) in
                    let d = dMax * Double(i) / 40
                    return (d, f.goldStart + g.form.value(d, alpha: f.alpha, beta: f.beta))
                }
                goldChart.series.append(.init(name: g.name + String(format: ": alpha %.3g, beta %.3g", f.alpha, f.beta), points: curve, color: color))
            } else {
                goldChart.series.append(.init(name: g.name + ": too few points to fit", points: all.map { ($0.d, $0.gold) }, color: color))
            }
        }
        let a = goldChart.render(), b = proxyChart.render()
        var img = RGBImage(width: a.width + b.width, height: max(a.height, b.height), fill: (255, 255, 255))
        img.blit(a, x: 0, y: 0); img.blit(b, x: a.width, y: 0)
        return (img, fitted.compactMap { $0 })
    }
}

/// The study's numbers of one group of the chart: how far its gold rose above the start, where
/// it peaked, how far it fell from the peak by the end, and its gold at equal distance (d) and at
/// equal proxy, so that groups can be compared at the same KL or the same proxy score. With
/// several runs each number is the mean over runs with a 95% bootstrap interval over runs; with
/// one, the value +-1.96 standard errors: of a gain over the start, the paired one where the
/// points have it (best-of-n), else the two evaluations' combined as if independent (RL: an
/// overestimate, since the evaluations share their prompts and noise); of the fall from the
/// peak, always the combined one. A run's peak is its best evaluation, which
/// the noise of the evaluations biases upward.
public struct GoodhartSummary {
    public struct Estimate {
        public var mean, low, high: Double
        public var text: String { low.isNaN ? String(format: "%+.3f", mean) : String(format: "%+.3f [%+.3f, %+.3f]", mean, low, high) }
    }
    public var label: String, form: GoodhartForm, runs: Int
    public var goldStart: Double
    public var peakGain: Estimate, peakD: Double
    public var endGain: Estimate, fall: Estimate, endD: Double, endProxy: Double
    /// The gold's gain over the start where the run first reaches each d, or each proxy score
    /// (linear between evaluations); nil where a run of the group does not reach it.
    public var atD: [(d: Double, gain: Estimate?)], atProxy: [(proxy: Double, gain: Estimate?)]

    /// The mean and interval of per-run values (value, its standard error if known).
    static func estimate(_ perRun: [(value: Double, se: Double?)]) -> Estimate {
        if perRun.count > 1, let b = bootstrapMeanInterval(perRun.map(\.value)) { return Estimate(mean: b.mean, low: b.low, high: b.high) }
        let v = perRun[0].value
        guard let se = perRun[0].se else { return Estimate(mean: v, low: .nan, high: .nan) }
        return Estimate(mean: v, low: v - 1.96 * se, high: v + 1.96 * se)
    }

    /// The standard error of the difference of two evaluations (nil when one is unknown; 0 for
    /// one with itself): the paired one of a gain over the start where it is known, else the two
    /// standard errors combined as if independent.
    static func seOfDifference(_ a: GoodhartChart.Point, _ b: GoodhartChart.Point, same: Bool, fromStart: Bool = false) -> Double? {
        if same { return 0 }
        if fromStart, let g = a.gainSE { return g }
        guard let x = a.goldSE, let y = b.goldSE else { return nil }
        return (x * x + y * y).squareRoot()
    }

    public init(group g: GoodhartChart.Group, atD ds: [Double] = [], atProxy ps: [Double] = []) {
        label = g.label; form = g.form; runs = g.runs.count
        goldStart = g.runs.map { $0[0].gold }.reduce(0, +) / Double(g.runs.count)
        var peak: [(value: Double, se: Double?)] = [], end: [(value: Double, se: Double?)] = [], falls: [(value: Double, se: Double?)] = []
        var peakDs: [Double] = []
        for run in g.runs {
            let k = run.indices.max { run[$0].gold < run[$1].gold }!
            let first = run[0], best = run[k], last = run[run.count - 1]
            peak.append((best.gold - first.gold, Self.seOfDifference(best, first, same: k == 0, fromStart: true)))
            end.append((last.gold - first.gold, Self.seOfDifference(last, first, same: run.count == 1, fromStart: true)))
            falls.append((last.gold - best.gold, Self.seOfDifference(last, best, same: k == run.count - 1)))
            peakDs.append(best.d)
        }
        let mean: ([Double]) -> Double = { $0.reduce(0, +) / Double($0.count) }
        peakGain = Self.estimate(peak); endGain = Self.estimate(end); fall = Self.estimate(falls); peakD = mean(peakDs)
        endD = mean(g.runs.map { $0[$0.count - 1].d }); endProxy = mean(g.runs.map { $0[$0.count - 1].proxy })
        /// the gain (and its standard error) where `axis` first reaches `level` in every run, else nil
        func gain(at level: Double, _ axis: (GoodhartChart.Point) -> Double) -> Estimate? {
            var perRun: [(value: Double, se: Double?)] = []
            for run in g.runs {
                guard let gold = valueWhereFirstReached(run.map { (axis($0), $0.gold) }, level: level) else { return nil }
                // the standard error of the gain there, interpolated like the gold (paired where known)
                let gainSEs = run.enumerated().map { k, p in Self.seOfDifference(p, run[0], same: k == 0, fromStart: true) }
                let se = gainSEs.allSatisfy { $0 != nil } ? valueWhereFirstReached(zip(run, gainSEs).map { (axis($0), $1!) }, level: level) : nil
                perRun.append((gold - run[0].gold, se))
            }
            return Self.estimate(perRun)
        }
        atD = ds.map { ($0, gain(at: $0, \.d)) }
        atProxy = ps.map { ($0, gain(at: $0, \.proxy)) }
    }

    /// A Markdown table of summaries (one row each).
    public static func markdown(_ rows: [GoodhartSummary], gold: String) -> String {
        guard let first = rows.first else { return "" }
        var head = ["group", "runs", "\(gold) at d = 0", "peak gain", "d at peak", "gain at the end", "end minus peak", "d at the end", "proxy at the end"]
        head += first.atD.map { String(format: "gain at d = %g", $0.d) } + first.atProxy.map { String(format: "gain at proxy %g", $0.proxy) }
        var out = "| " + head.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: head.count) + "\n"
        for r in rows {
            var cells = ["\(r.label) (\(r.form == .rl ? "RL" : "best-of-n"))", "\(r.runs)", String(format: "%.3f", r.goldStart), r.peakGain.text,
                         String(format: "%.2f", r.peakD), r.endGain.text, r.fall.text, String(format: "%.2f", r.endD), String(format: "%.3f", r.endProxy)]
            cells += r.atD.map { $0.gain?.text ?? "not reached" } + r.atProxy.map { $0.gain?.text ?? "not reached" }
            out += "| " + cells.joined(separator: " | ") + " |\n"
        }
        return out
    }
}
