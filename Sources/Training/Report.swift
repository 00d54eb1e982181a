import Foundation
import Tensor
import Imaging
import Rewards

/// A gold metric tracked for over-optimisation, oriented so that higher is better.
public struct GoldSeries {
    public var name: String
    public var points: [(x: Double, y: Double)]
    public var higherIsBetter: Bool
    /// Each point's standard error (nil where the metrics file has none).
    public var se: [Double?] = []
    /// A distance from the base model (w2, the KL): it grows whenever the policy moves, so it
    /// marks drift, not a fall in quality (no onset, no frontier panel).
    public var measuresDistance = false
}

/// Over-optimisation analysis of a run's evaluations.
///
/// The proxy is the eval images' weighted reward. Gold metrics: shape-eval (unless it is
/// optimised), every weight-0 scorer, the Frechet distance to rendered data (lower is better),
/// within-prompt diversity, and the W2 proxy (lower is better: distance from the base model).
/// A gold metric "has fallen" at a step when it is worse than at step 0 by more than twice the
/// standard error of the difference, sqrt(se0^2 + se^2) (the evaluations' own standard errors,
/// treated as independent: conservative, since every evaluation draws the same noise); in
/// metrics written before standard errors were logged, by more than a fixed band: max(5% of its
/// step-0 magnitude, 10% of its spread over the run's evaluations, 1e-6). The onset of
/// over-optimisation is the first evaluated step at which the proxy still rises (above step 0
/// and not below the previous evaluation) while a gold metric has fallen.
public struct DriftAnalysis {
    public var proxy: [(x: Double, y: Double)]
    public var gold: [GoldSeries]
    public var onset: Int?
    public var onsetMetrics: [String]

    public init(_ m: RunMetrics, optimised: Set<String>) {
        let evals = m.evals
        proxy = evals.map { e in (Double(e.step), e.eval.proxy) }
        var gold: [GoldSeries] = []
        func add(_ name: String, _ key: String, _ higher: Bool, distance: Bool = false, _ f: (EvalRecord) -> Double?) {
            let kept = evals.compactMap { e in f(e.eval).map { (x: Double(e.step), y: $0, se: e.eval.se?[key]) } }
            if !kept.isEmpty {
                gold.append(GoldSeries(name: name, points: kept.map { ($0.x, $0.y) }, higherIsBetter: higher, se: kept.map(\.se), measuresDistance: distance))
            }
        }
        if !optimised.contains("shape-eval") { add("shape-eval", "shape_eval", true) { $0.shapeEval } }
        let scorerNames = evals.first.map { Array($0.eval.scores.keys).sorted() } ?? []
        for s in scorerNames where !optimised.contains(s) && s != "shape-eval" {
            add(s, "scores/" + s, true) { $0.scores[s] }
        }
        add("frechet distance", "fd", false) { $0.fd }
        add("frechet distance 21-d", "fd21", false) { $0.fd21 }
        add("diversity", "diversity", true) { $0.diversity }
        add("w2 to base", "w2", false, distance: true) { $0.w2 }
        add("KL to base", "kl_base", false, distance: true) { $0.klBase }
        self.gold = gold
        onset = nil; onsetMetrics = []
        guard proxy.count >= 2 else { return }
        for i in 1..<proxy.count {
            let rising = proxy[i].y > proxy[0].y && proxy[i].y >= proxy[i - 1].y
            guard rising else { continue }
            let fallen = gold.filter { g in
                guard let j = g.points.firstIndex(where: { $0.x == proxy[i].x }), let base = g.points.first else { return false }
                let ys = g.points.map(\.y)
                let band: Double
                if let se0 = g.se.first ?? nil, j < g.se.count, let se = g.se[j] {
                    band = max(2 * (se0 * se0 + se * se).squareRoot(), 1e-6)
                } else {
                    band = max(0.05 * abs(base.y), 0.1 * (ys.max()! - ys.min()!), 1e-6)
                }
                let worse = g.higherIsBetter ? base.y - g.points[j].y : g.points[j].y - base.y
                return !g.measuresDistance && worse > band
            }
            if !fallen.isEmpty { onset = Int(proxy[i].x); onsetMetrics = fallen.map(\.name); return }
        }
    }
}

/// The scorers a reward spec optimises (non-zero weight), by the reward parser's own reading;
/// an unparsable spec optimises nothing known.
/// The optimised scorers of a run's reward spec; a spec that does not parse is an error (it
/// would otherwise turn the optimised scorer into a gold metric).
public func optimisedScorers(_ rewardSpec: String) throws -> Set<String> {
    try RewardSpec(parsing: rewardSpec).optimisedNames
}

/// Where a run stands when its report is written: a live report (written at every
/// evaluation) reloads itself until the run ends.
public struct RunProgress {
    public var iteration: Int
    public var steps: Int
    public var eta: String
    public init(iteration: Int, steps: Int, eta: String) { self.iteration = iteration; self.steps = steps; self.eta = eta }
}

/// Writes drift.png, ratios.png (or critic.png), the per-prompt strips and report.html for a run folder.
public enum Report {
    /// Seconds between reloads of a live report.
    public static let reloadSeconds = 10

    public static func write(runDir: URL, progress: RunProgress? = nil) throws -> URL {
        let m = try RunMetrics(url: runDir.appendingPathComponent("metrics.jsonl"))
        let config = try? JSONDecoder().decode(FinetuneConfig.self, from: Data(contentsOf: runDir.appendingPathComponent("config.json")))
        let drift = DriftAnalysis(m, optimised: try config.map { try optimisedScorers($0.reward) } ?? [])
        let chart = metricPanels([RunCurves(name: m.algo, color: LineChart.palette[1], drift: drift, train: m.series(\.rewardMean))],
                                 title: "\(m.algo): the proxy reward it optimises (gold metrics below)")
        try writeAtomically(try chart.pngData(), to: runDir.appendingPathComponent("drift.png"))

        // per-step diagnostics: ratio statistics (GRPO family) or the critic (AC-Flow)
        var diag = LineChart(title: "", xLabel: "iteration", yLabel: "")
        let timesteps = m.lines.compactMap { l -> (Int, [TimestepRecord])? in l.timesteps.map { (l.step, $0) } }
        let diagName = m.algo == Algorithm.acflow.rawValue ? "critic.png" : "ratios.png"
        if let first = timesteps.first {
            diag.title = "mean log-ratio used in the loss, per SDE step k (t)"
            diag.yLabel = "log r"
            for (idx, ts) in first.1.enumerated() {
                let k = ts.k, t = ts.t
                let pts = timesteps.compactMap { step, arr in idx < arr.count ? (Double(step), arr[idx].logratioMean) : nil }
                diag.series.append(.init(name: String(format: "k=%ld t=%.2f", k, t), points: pts, color: LineChart.palette[idx % LineChart.palette.count]))
            }
            diag.height = 300 + first.1.count * BitmapFont.lineHeight
        } else if diagName == "critic.png" {
            diag.title = "critic: MSE and explained variance"
            diag.series = [.init(name: "critic mse", points: m.series(\.criticMse), color: LineChart.palette[0]),
                           .init(name: "explained variance", points: m.series(\.criticExplainedVariance), color: LineChart.palette[1]),
                           .init(name: "w2", points: m.series(\.w2), color: LineChart.palette[2])]
        }
        let trained = m.lines.contains { $0.rewardMean != nil }
        if trained { try writeAtomically(try diag.render().pngData(), to: runDir.appendingPathComponent(diagName)) }
        let strips = try writeStrips(runDir: runDir, evals: m.evals)
        // the gold against sqrt(KL to the base model), with Gao et al.'s RL form fitted
        var goodhart: [GoodhartChart.Fit]? = nil
        let optimised = try config.map { try optimisedScorers($0.reward) } ?? []
        if let goldName = GoodhartChart.gold(optimised: optimised, scorers: m.evals.first.map { Array($0.eval.scores.keys) } ?? []) {
            var g = GoodhartChart(gold: goldName)
            if g.add(run: m, label: m.algo) {
                let (image, fits) = g.render()
                try writeAtomically(try image.pngData(), to: runDir.appendingPathComponent("goodhart.png"))
                goodhart = fits
            }
        }
        let html = page(m, drift: drift, config: config, diagnostics: trained ? diagName : nil, timesteps: timesteps, strips: strips,
                        progress: progress, runDir: runDir, goodhart: goodhart)
        let url = runDir.appendingPathComponent("report.html")
        try writeAtomically(html, to: url)
        return url
    }

    /// One run's curves on a metric-panels chart.
    public struct RunCurves {
        public var name: String
        public var color: (UInt8, UInt8, UInt8)
        public var drift: DriftAnalysis
        public var train: [(x: Double, y: Double)]
        public init(name: String, color: (UInt8, UInt8, UInt8), drift: DriftAnalysis, train: [(x: Double, y: Double)] = []) {
            self.name = name; self.color = color; self.drift = drift; self.train = train
        }
    }

    /// What a gold metric's axis measures.
    static func unit(_ metric: String) -> String {
        switch metric {
        case "shape-eval": return "fraction correct"
        case "frechet distance": return "FD of features"
        case "frechet distance 21-d": return "FD of 21 features"
        case "diversity": return "mean feature distance"
        case "w2 to base": return "mean sq. velocity diff."
        case "KL to base": return "nats (SDE path)"
        default: return "score"
        }
    }

    /// Small multiples: the proxy across the top, then one panel per gold metric in its own
    /// units and axis, each with every run's onset of over-optimisation marked (in the run's
    /// colour; "fell" where that metric is one of the onset's). One run: the training reward too.
    public static func metricPanels(_ runs: [RunCurves], title: String) -> RGBImage {
        let single = runs.count == 1
        func onsetMarkers(_ metric: String?) -> [LineChart.Marker] {
            runs.compactMap { r in
                r.drift.onset.map { x in
                    let fell = metric.map { r.drift.onsetMetrics.contains($0) } ?? false
                    var label = metric == nil ? "onset: " + r.drift.onsetMetrics.joined(separator: ", ") : (fell ? "onset (fell)" : "onset")
                    if !single { label = r.name + " " + label }
                    return LineChart.Marker(x: Double(x), label: label, color: single ? (200, 0, 0) : r.color)
                }
            }
        }
        var proxy = LineChart(title: title, xLabel: "iteration", yLabel: "reward")
        proxy.width = 860; proxy.height = single ? 250 : 250 + runs.count * BitmapFont.lineHeight
        for r in runs {
            if single && !r.train.isEmpty { proxy.series.append(.init(name: "train batch reward", points: r.train, color: (185, 185, 185))) }
            proxy.series.append(.init(name: single ? "eval proxy (held-out prompts, fixed seeds)" : r.name, points: r.drift.proxy, color: r.color))
        }
        proxy.legend = true
        proxy.markers = onsetMarkers(nil)
        var names: [String] = []
        var lowerIsBetter: Set<String> = []
        for r in runs { for g in r.drift.gold where !names.contains(g.name) { names.append(g.name); if !g.higherIsBetter { lowerIsBetter.insert(g.name) } } }
        let panels = names.map { name -> RGBImage in
            var c = LineChart(title: name + (lowerIsBetter.contains(name) ? " (lower is better)" : " (higher is better)"),
                              xLabel: "iteration", yLabel: unit(name))
            c.width = 430; c.height = 200
            for r in runs { if let g = r.drift.gold.first(where: { $0.name == name }) { c.series.append(.init(name: r.name, points: g.points, color: r.color)) } }
            c.legend = false
            c.markers = onsetMarkers(name)
            return c.render()
        }
        return smallMultiples(top: proxy.render(), panels: panels, columns: 2)
    }

    /// strips/prompt-NN.png: one eval prompt's images at every evaluated step (a row per step,
    /// the fixed seeds across), from the bare grids each evaluation keeps (grids/raw/), so a
    /// resumed run's strips hold each step once. Returns (prompt, path) of the strips written.
    static func writeStrips(runDir: URL, evals: [(step: Int, eval: EvalRecord)]) throws -> [(String, String)] {
        guard let text = try? String(contentsOf: runDir.appendingPathComponent("grids/prompts.txt"), encoding: .utf8) else { return [] }
        let prompts = text.split(separator: "\n").map(String.init)
        var rowsPerPrompt = [[GridRow]](repeating: [], count: prompts.count)
        for e in evals {
            let raw = runDir.appendingPathComponent("grids/raw/" + URL(fileURLWithPath: e.eval.grid).lastPathComponent)
            guard let bytes = try? [UInt8](Data(contentsOf: raw)), let image = try? RGBImage(pngData: bytes),
                  !prompts.isEmpty, image.height % prompts.count == 0 else { continue }
            let t = tiles(of: image, tile: image.height / prompts.count)
            for (p, row) in t.enumerated() where p < prompts.count { rowsPerPrompt[p].append(GridRow(caption: "step \(e.step)", images: row)) }
        }
        var out: [(String, String)] = []
        for (p, rows) in rowsPerPrompt.enumerated() where !rows.isEmpty {
            let name = String(format: "strips/prompt-%02ld.png", p)
            let strip = composeGrid(rows: rows, scale: 2, title: "\(prompts[p]) (fixed seeds across, evaluations down)", captionsLeft: true)
            try writeAtomically(try strip.pngData(), to: runDir.appendingPathComponent(name))
            out.append((prompts[p], name))
        }
        return out
    }

    /// The run's gradient noise scale (GradientNoise) beside its batch, or nothing before it is measured.
    static func noiseScaleParagraph(_ m: RunMetrics, batch: Int?) -> String {
        let pairs = m.lines.compactMap { l in l.gradSignal.flatMap { s in l.gradNoise.map { (s, $0) } } }
        guard !pairs.isEmpty else { return "" }
        // AC-Flow's passes draw transitions of the same rollouts, whose correlation the pairing
        // counts as signal: its figure is low
        let unit = m.algo == Algorithm.acflow.rawValue
            ? "actor samples (a visited transition or an interpolant each; the passes share rollouts, so read it as low)"
            : "samples (trajectories)"
        let (estimate, atLeast) = gradientNoiseScale(signal: pairs.map(\.0), noise: pairs.map(\.1))
        func count(_ v: Double) -> String { String(format: "%.0f", v) }
        let bound = atLeast.map { ", at least \(count($0)) (the signal two standard errors higher)" } ?? ""
        let head = estimate.map { "Gradient noise scale B<sub>simple</sub> = \(count($0)) \(unit)\(bound)" }
            ?? "Gradient noise scale: the gradient is not told from its noise (the mean signal estimate is not positive)\(atLeast.map { "; B<sub>simple</sub> is at least \(count($0)) \(unit) (the signal two standard errors higher)" } ?? "")"
        return "<p>\(head), over \(pairs.count) iterations\(batch.map { "; this run's rollout batch: \($0) trajectories" } ?? ""). B<sub>simple</sub> is the batch at which a gradient estimate's noise equals the gradient (McCandlish et al. 2018): a batch far below it takes steps that mostly follow noise.</p>"
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
    static func fmt(_ v: Double?) -> String {
        guard let d = v else { return "-" }
        return String(format: abs(d) >= 1000 || (abs(d) < 0.001 && d != 0) ? "%.3e" : "%.4f", d)
    }

    static func page(_ m: RunMetrics, drift: DriftAnalysis, config: FinetuneConfig?, diagnostics: String?,
                     timesteps: [(Int, [TimestepRecord])], strips: [(String, String)], progress: RunProgress?, runDir: URL,
                     goodhart: [GoodhartChart.Fit]? = nil) -> String {
        let evals = m.evals
        let grids = evals.map { e in (e.step, e.eval.grid) }
        let last = m.lines.last?.step ?? 0
        let version = "?v=\(last)"      // charts keep their names: a reloading page must not show a cached one
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate, .withSpaceBetweenDateAndTime])
        var h = """
        <!doctype html><html><head><meta charset="utf-8"><title>flowtune report: \(esc(m.algo))</title>
        \(progress == nil ? "" : "<meta http-equiv=\"refresh\" content=\"\(reloadSeconds)\">")
        <style>body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;font-size:13px}
        td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}img{image-rendering:pixelated;max-width:100%}
        .strip img{width:180px;margin:2px;border:1px solid #bbb;cursor:pointer}.onset{color:#b00}
        .status{padding:6px 10px;border-radius:4px;background:#eef5ff}.status.live{background:#fff6d8}.status.stopped{background:#fde8e8}</style></head><body>
        <h1>flowtune run: \(esc(m.algo))</h1>
        """
        if let p = progress {
            h += "<p class=\"status live\"><b>Run in progress</b>: iteration \(p.iteration) of \(p.steps), ETA \(esc(p.eta)); report of \(stamp). This page reloads itself every \(reloadSeconds) s until the run ends.</p>"
        } else if let steps = config?.steps, last < steps {
            h += "<p class=\"status stopped\"><b>Run stopped</b> at iteration \(last) of \(steps) (report of \(stamp)); continue it with <code>flowtune finetune --resume \(esc(runDir.path))</code>.</p>"
        } else {
            h += "<p class=\"status\"><b>Run finished</b>: \(last) iterations (report of \(stamp)).</p>"
        }
        if let c = config {
            h += "<p>reward <code>\(esc(c.reward))</code>, \(c.steps) iterations of \(c.batchSize) samples (\(c.promptsPerIteration) prompts x \(c.groupSize)), lr \(c.lr), seed \(c.seed), base <code>\(esc(c.model))</code>.</p>"
        }
        h += noiseScaleParagraph(m, batch: config?.batchSize)
        if let onset = drift.onset {
            h += "<p class=\"onset\"><b>Over-optimisation onset at iteration \(onset)</b>: the proxy still rises while \(esc(drift.onsetMetrics.joined(separator: ", "))) fell beyond its noise band.</p>"
        } else {
            h += "<p>No over-optimisation onset detected: no gold metric fell beyond its noise band while the proxy rose.</p>"
        }
        h += "<h2>Proxy and gold metrics</h2><img src=\"drift.png\(version)\" alt=\"drift chart\">"
        if let fits = goodhart {
            h += "<h2>Gold against sqrt(KL to the base model)</h2><img src=\"goodhart.png\(version)\" alt=\"gold against sqrt(KL)\">"
            h += "<p>" + (fits.first.map { esc($0.summary) + " (Gao et al.'s RL form, gold - gold(0) = d (alpha - beta log d), d = sqrt(kl_base))" } ?? "Too few evaluations to fit Gao et al.'s form.") + "</p>"
        }
        h += "<h2>Evaluations</h2><table><tr><th>step</th><th>proxy</th>"
        // every scorer of the reward (shape-eval has its own column)
        let scoreNames = (evals.first.map { Array($0.eval.scores.keys).sorted() } ?? []).filter { $0 != "shape-eval" }
        for s in scoreNames { h += "<th>\(esc(s))</th>" }
        let floor = evals.compactMap(\.eval.fdFloor).first, floor21 = evals.compactMap(\.eval.fd21Floor).first
        let hasFD21 = evals.contains { $0.eval.fd21 != nil }
        // the checker's columns where the prompts are of the shapes world
        let checks = evals.contains { $0.eval.shapeEval != nil }
        if checks { h += "<th>shape-eval</th><th>single</th><th>two objects</th><th>counting</th><th>position</th>" }
        h += "<th>frechet dist.\(floor.map { "<br><small>(floor \(fmt($0)))</small>" } ?? "")</th>"
        if hasFD21 { h += "<th>FD, 21 features\(floor21.map { "<br><small>(floor \(fmt($0)))</small>" } ?? "")</th>" }
        let hasKL = evals.contains { $0.eval.klBase != nil }
        h += "<th>diversity</th><th>w2 to base</th>" + (hasKL ? "<th>KL to base<br><small>(nats)</small></th>" : "") + "</tr>"
        for e in evals {
            let byTask = e.eval.shapeEvalByTask
            // a value with its standard error, where the metrics have one
            func cell(_ v: Double?, _ key: String) -> String {
                "<td>\(fmt(v))\(e.eval.se?[key].map { "<small> &plusmn; \(fmt($0))</small>" } ?? "")</td>"
            }
            h += "<tr\(e.step == drift.onset ? " class=\"onset\"" : "")><td>\(e.step)</td>" + cell(e.eval.proxy, "proxy")
            for s in scoreNames { h += cell(e.eval.scores[s], "scores/" + s) }
            if checks {
                h += cell(e.eval.shapeEval, "shape_eval")
                for t in ["single", "two_objects", "counting", "position"] { h += cell(byTask[t] ?? nil, "shape_eval_by_task/" + t) }
            }
            h += cell(e.eval.fd, "fd") + (hasFD21 ? cell(e.eval.fd21, "fd21") : "") + cell(e.eval.diversity, "diversity") + cell(e.eval.w2, "w2")
                + (hasKL ? cell(e.eval.klBase, "kl_base") : "") + "</tr>"
        }
        h += "</table><p><small>&plusmn; one standard error (over the images; over prompts for diversity; the Frechet distance's from a bootstrap of the images). " + (checks ? "The Frechet distance's floor is its value between two independent renderings of the eval prompts: what it reads when nothing differs." : "The Frechet distance compares with the folder's held-out images; its floor is as many of its training images against them: what it reads between real images.") + "</small></p>"
        if !grids.isEmpty {
            h += """
            <h2>Grids (eval prompts x fixed seeds, Euler ODE; labels are the proxy reward)</h2>
            <p><input type="range" id="slider" min="0" max="\(grids.count - 1)" value="\(grids.count - 1)" style="width:60%"> <span id="label"></span></p>
            <img id="grid" src="\(esc(grids.last!.1))" alt="grid">
            <div class="strip">
            """
            for (i, g) in grids.enumerated() {
                h += "<img src=\"\(esc(g.1))\" alt=\"step \(g.0)\" title=\"step \(g.0)\" onclick=\"show(\(i))\">"
            }
            let list = grids.map { "[\($0.0),\"\(esc($0.1))\"]" }.joined(separator: ",")
            h += """
            </div><script>const grids=[\(list)];const s=document.getElementById('slider');
            function show(i){s.value=i;document.getElementById('grid').src=grids[i][1];document.getElementById('label').textContent='iteration '+grids[i][0];}
            s.oninput=()=>show(+s.value);show(grids.length-1);</script>
            """
        }
        if !strips.isEmpty {
            h += "<h2>Per-prompt strips (one prompt's fixed seeds at every evaluation, top to bottom)</h2><p><select id=\"prompt\">"
            for (i, st) in strips.enumerated() { h += "<option value=\"\(i)\">\(esc(st.0))</option>" }
            h += "</select></p><div id=\"strips\">"
            for (i, st) in strips.enumerated() {
                h += "<img class=\"stripimg\" src=\"\(esc(st.1))\(version)\" alt=\"strip: \(esc(st.0))\"\(i == 0 ? "" : " style=\"display:none\"")>"
            }
            h += """
            </div><script>const sel=document.getElementById('prompt');const strips=document.querySelectorAll('.stripimg');
            sel.onchange=()=>strips.forEach((im,i)=>im.style.display=(i==+sel.value)?'':'none');</script>
            """
        }
        if let diagnostics { h += "<h2>Per-step diagnostics</h2><img src=\"\(diagnostics)\(version)\" alt=\"diagnostics\">" }
        if let last = timesteps.last {
            h += "<p>Last iteration (\(last.0)), per trained SDE step:</p><table><tr><th>k</th><th>t</th><th>ratio mean</th><th>ratio std</th><th>log-ratio mean</th><th>plain log-ratio mean</th><th>clip high</th><th>clip low</th></tr>"
            for ts in last.1 {
                h += "<tr><td>\(ts.k)</td><td>\(fmt(ts.t))</td><td>\(fmt(ts.ratioMean))</td><td>\(fmt(ts.ratioStd))</td><td>\(fmt(ts.logratioMean))</td><td>\(fmt(ts.plainLogratioMean))</td><td>\(fmt(ts.clipHigh))</td><td>\(fmt(ts.clipLow))</td></tr>"
            }
            h += "</table>"
        }
        let secs = m.lines.compactMap(\.seconds)
        h += "<p>\(secs.count) iterations, \(String(format: "%.1f", secs.reduce(0, +))) s of training (mean \(String(format: "%.2f", secs.reduce(0, +) / Double(max(secs.count, 1)))) s per iteration). Raw data: <a href=\"metrics.jsonl\">metrics.jsonl</a>, <a href=\"config.json\">config.json</a>; TensorBoard: <code>tensorboard --logdir \(esc(runDir.path))</code>.</p>"
        // after loading, the page records its images that did not load (what scripts/check-report.sh reads)
        h += """
        <script>window.addEventListener('load',()=>{const bad=[...document.images].filter(i=>!i.complete||i.naturalWidth===0).map(i=>i.getAttribute('src'));
        document.body.dataset.brokenImages=bad.length;document.body.dataset.images=document.images.length;
        if(bad.length){const p=document.createElement('p');p.className='onset';p.textContent='images that did not load: '+bad.join(', ');document.body.prepend(p);}});</script>
        </body></html>

        """
        return h
    }
}
