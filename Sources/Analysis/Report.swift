import Foundation
import Tensor
import Imaging

/// What a report says about a run's settings (read from its config.json by the caller).
public struct RunDescription {
    public var reward: String
    /// The scorers the reward optimises (the others are gold metrics).
    public var optimised: Set<String>
    public var steps: Int, promptsPerIteration: Int, groupSize: Int
    public var lr: Float, seed: UInt64
    public var model: String
    /// The chart of the algorithm's own metrics.
    public var diagnostics: DiagnosticsChart?
    public var batchSize: Int { promptsPerIteration * groupSize }

    public init(reward: String, optimised: Set<String>, steps: Int, promptsPerIteration: Int, groupSize: Int, lr: Float, seed: UInt64,
                model: String, diagnostics: DiagnosticsChart?) {
        self.reward = reward; self.optimised = optimised; self.steps = steps; self.promptsPerIteration = promptsPerIteration
        self.groupSize = groupSize; self.lr = lr; self.seed = seed; self.model = model; self.diagnostics = diagnostics
    }
}

/// Where a run stands when its report is written: a live report (written at every
/// evaluation) reloads itself until the run ends.
public struct RunProgress {
    public var iteration: Int
    public var steps: Int
    public var eta: String
    public init(iteration: Int, steps: Int, eta: String) { self.iteration = iteration; self.steps = steps; self.eta = eta }
}

/// Writes drift.png, diagnostics.png (the algorithm's own chart), goodhart.png, the per-prompt
/// strips and report.html for a run folder.
public enum Report {
    /// Seconds between reloads of a live report.
    public static let reloadSeconds = 10

    public static func write(runDir: URL, description: RunDescription?, progress: RunProgress? = nil) throws -> URL {
        let m = try RunMetrics(url: runDir.appendingPathComponent("metrics.jsonl"))
        let optimised = description?.optimised ?? []
        let summary = RunSummary(m, optimised: optimised)
        let name = m.algo?.rawValue ?? "run"
        let chart = metricPanels([RunCurves(name: name, color: LineChart.palette[1], drift: summary.drift, train: m.series("reward_mean"))],
                                 title: "\(name): the proxy reward it optimises (gold metrics below)")
        try writeAtomically(try chart.pngData(), to: runDir.appendingPathComponent("drift.png"))
        let trained = m.lines.contains { $0.rewardMean != nil }
        var diagnostics: String? = nil
        if trained, let spec = description?.diagnostics, let image = diagnosticsChart(spec, m) {
            try writeAtomically(try image.pngData(), to: runDir.appendingPathComponent("diagnostics.png"))
            diagnostics = "diagnostics.png"
        }
        let strips = try writeStrips(runDir: runDir, evals: m.evals)
        // the gold against sqrt(KL to the base model), with Gao et al.'s RL form fitted
        var goodhart: [GoodhartChart.Fit]? = nil, unmeasured: Double? = nil
        if let gold = GoodhartChart.gold(optimised: optimised, scorers: m.evals.first.map { Array($0.eval.scores.keys) } ?? []) {
            var g = GoodhartChart(gold: gold)
            if g.add(run: m, label: name) {
                let (image, fits) = g.render()
                try writeAtomically(try image.pngData(), to: runDir.appendingPathComponent("goodhart.png"))
                goodhart = fits
                unmeasured = g.unmeasuredStarts.first?.d
            }
        }
        let page = Page(m: m, summary: summary, description: description, diagnostics: diagnostics, strips: strips,
                        progress: progress, runDir: runDir, goodhart: goodhart, unmeasuredStart: unmeasured)
        let url = runDir.appendingPathComponent("report.html")
        try writeAtomically(page.html, to: url)
        return url
    }

    /// The algorithm's own chart: a curve per trained SDE step of a per-step statistic, or a curve
    /// per named metric (nil when the run has none of them).
    static func diagnosticsChart(_ spec: DiagnosticsChart, _ m: RunMetrics) -> RGBImage? {
        var chart = LineChart(title: "", xLabel: "iteration", yLabel: "")
        switch spec {
        case .perStep(let key, let title, let yLabel):
            let perStep = m.lines.compactMap { l in l.algorithm.steps.map { (l.step, $0) } }
            guard let first = perStep.first?.1, !first.isEmpty else { return nil }
            chart.title = title; chart.yLabel = yLabel
            for (i, s) in first.enumerated() {
                let points = perStep.compactMap { step, steps in i < steps.count ? steps[i][key].map { (Double(step), $0) } : nil }
                chart.series.append(.init(name: String(format: "k=%ld t=%.2f", Int(s["k"] ?? 0), s["t"] ?? 0), points: points,
                                          color: LineChart.palette[i % LineChart.palette.count]))
            }
            chart.height = 300 + first.count * BitmapFont.lineHeight
        case .scalars(let keys, let title):
            chart.title = title
            chart.series = keys.enumerated().map { i, k in .init(name: k.replacingOccurrences(of: "_", with: " "), points: m.series(k), color: LineChart.palette[i % LineChart.palette.count]) }
            guard chart.series.contains(where: { !$0.points.isEmpty }) else { return nil }
        }
        return chart.render()
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

    /// Small multiples: the proxy across the top, then one panel per gold metric in its own
    /// units and axis, each with every run's onset of over-optimisation marked (in the run's
    /// colour; "fell" where that metric is one of the onset's). One run: the training reward too.
    public static func metricPanels(_ runs: [RunCurves], title: String) -> RGBImage {
        let single = runs.count == 1
        func onsetMarkers(_ metric: GoldMetric?) -> [LineChart.Marker] {
            runs.compactMap { r in
                r.drift.onset.map { x in
                    let fell = metric.map { r.drift.onsetMetrics.contains($0) } ?? false
                    var label = metric == nil ? "onset: " + r.drift.onsetMetrics.map(\.name).joined(separator: ", ") : (fell ? "onset (fell)" : "onset")
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
        var metrics: [GoldMetric] = []
        for r in runs { for g in r.drift.gold where !metrics.contains(g.metric) { metrics.append(g.metric) } }
        let panels = metrics.map { metric -> RGBImage in
            var c = LineChart(title: metric.name + (metric.higherIsBetter ? " (higher is better)" : " (lower is better)"),
                              xLabel: "iteration", yLabel: metric.unit)
            c.width = 430; c.height = 200
            for r in runs { if let g = r.drift.gold.first(where: { $0.metric == metric }) { c.series.append(.init(name: r.name, points: g.points, color: r.color)) } }
            c.legend = false
            c.markers = onsetMarkers(metric)
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

    /// A number as the report's tables show it.
    static func format(_ v: Double?) -> String {
        guard let d = v else { return "-" }
        return String(format: abs(d) >= 1000 || (abs(d) < 0.001 && d != 0) ? "%.3e" : "%.4f", d)
    }
}

/// report.html: a run's status and settings, its onset, the charts, the evaluations, the
/// algorithm's metrics, the grids behind a slider and the per-prompt strips.
struct Page {
    let m: RunMetrics
    let summary: RunSummary
    let description: RunDescription?
    let diagnostics: String?
    let strips: [(String, String)]
    let progress: RunProgress?
    let runDir: URL
    let goodhart: [GoodhartChart.Fit]?
    let unmeasuredStart: Double?     // the first evaluation's d, where it leaves the start of the curve unmeasured

    static let style = """
    body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;font-size:13px}
    td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}img{image-rendering:pixelated;max-width:100%}
    .strip img{width:180px;margin:2px;border:1px solid #bbb;cursor:pointer}.onset{color:#b00}
    .status{padding:6px 10px;border-radius:4px;background:#eef5ff}.status.live{background:#fff6d8}.status.stopped{background:#fde8e8}
    """
    /// After loading, the page records its images that did not load (what scripts/check-report.sh reads).
    static let brokenImageCheck = """
    window.addEventListener('load',()=>{const bad=[...document.images].filter(i=>!i.complete||i.naturalWidth===0).map(i=>i.getAttribute('src'));
    document.body.dataset.brokenImages=bad.length;document.body.dataset.images=document.images.length;
    if(bad.length){const p=document.createElement('p');p.className='onset';p.textContent='images that did not load: '+bad.join(', ');document.body.prepend(p);}});
    """

    var name: String { m.algo?.rawValue ?? "run" }
    var lastStep: Int { m.lines.last?.step ?? 0 }
    /// Charts keep their names: a reloading page must not show a cached one.
    var version: String { "?v=\(lastStep)" }

    var html: String {
        var h = HTML()
        h.raw("<!doctype html>")
        h.element("html") { h in
            h.element("head") { h in
                h.void("meta", [("charset", "utf-8")])
                h.element("title", text: "flowtune report: \(name)")
                if progress != nil { h.void("meta", [("http-equiv", "refresh"), ("content", "\(Report.reloadSeconds)")]) }
                h.element("style") { $0.raw(Self.style) }
            }
            h.element("body") { h in
                h.element("h1", text: "flowtune run: \(name)")
                status(&h)
                settings(&h)
                noiseScale(&h)
                onset(&h)
                h.heading("Proxy and gold metrics")
                h.image("drift.png" + version, alt: "drift chart")
                goodhartSection(&h)
                evaluations(&h)
                requirements(&h)
                algorithmMetrics(&h)
                grids(&h)
                stripsSection(&h)
                diagnosticsSection(&h)
                footer(&h)
                h.element("script") { $0.raw(Self.brokenImageCheck) }
            }
        }
        return h.text + "\n"
    }

    func status(_ h: inout HTML) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate, .withSpaceBetweenDateAndTime])
        if let p = progress {
            h.element("p", [("class", "status live")]) { h in
                h.element("b", text: "Run in progress")
                h.text(": iteration \(p.iteration) of \(p.steps), ETA \(p.eta); report of \(stamp). This page reloads itself every \(Report.reloadSeconds) s until the run ends.")
            }
        } else if let steps = description?.steps, lastStep < steps {
            h.element("p", [("class", "status stopped")]) { h in
                h.element("b", text: "Run stopped")
                h.text(" at iteration \(lastStep) of \(steps) (report of \(stamp)); continue it with ")
                h.element("code", text: "flowtune finetune --resume \(runDir.path)")
                h.text(".")
            }
        } else {
            h.element("p", [("class", "status")]) { h in
                h.element("b", text: "Run finished")
                h.text(": \(lastStep) iterations (report of \(stamp)).")
            }
        }
    }

    func settings(_ h: inout HTML) {
        guard let c = description else { return }
        h.element("p") { h in
            h.text("reward "); h.element("code", text: c.reward)
            h.text(", \(c.steps) iterations of \(c.batchSize) samples (\(c.promptsPerIteration) prompts x \(c.groupSize)), lr \(c.lr), seed \(c.seed), base ")
            h.element("code", text: c.model); h.text(".")
        }
    }

    /// The run's gradient noise scale (GradientNoise) beside its batch, when it was measured.
    func noiseScale(_ h: inout HTML) {
        let pairs = m.lines.compactMap { l in l["grad_signal"].flatMap { s in l["grad_noise"].map { (s, $0) } } }
        guard !pairs.isEmpty else { return }
        // AC-Flow's passes draw transitions of the same rollouts, whose correlation the pairing
        // counts as signal: its figure is low
        let unit = m.algo == .acflow
            ? "actor samples (a visited transition or an interpolant each; the passes share rollouts, so read it as low)"
            : "samples (trajectories)"
        let (estimate, atLeast) = gradientNoiseScale(signal: pairs.map(\.0), noise: pairs.map(\.1))
        func count(_ v: Double) -> String { String(format: "%.0f", v) }
        h.element("p") { h in
            h.text("Gradient noise scale ")
            if let estimate {
                h.text("B"); h.element("sub", text: "simple"); h.text(" = \(count(estimate)) \(unit)")
                if let atLeast { h.text(", at least \(count(atLeast)) (the signal two standard errors higher)") }
            } else {
                h.text(": the gradient is not told from its noise (the mean signal estimate is not positive)")
                if let atLeast { h.text("; B"); h.element("sub", text: "simple"); h.text(" is at least \(count(atLeast)) \(unit) (the signal two standard errors higher)") }
            }
            h.text(", over \(pairs.count) iterations" + (description.map { "; this run's rollout batch: \($0.batchSize) trajectories" } ?? "") + ". B")
            h.element("sub", text: "simple")
            h.text(" is the batch at which a gradient estimate's noise equals the gradient (McCandlish et al. 2018): a batch far below it takes steps that mostly follow noise.")
        }
    }

    func onset(_ h: inout HTML) {
        let drift = summary.drift
        if let onset = drift.onset {
            h.element("p", [("class", "onset")]) { h in
                h.element("b", text: "Over-optimisation onset at iteration \(onset)")
                h.text(": the proxy still rises while \(drift.onsetMetrics.map(\.name).joined(separator: ", ")) fell beyond its noise band.")
            }
        } else {
            h.paragraph("No over-optimisation onset detected: no gold metric fell beyond its noise band while the proxy rose.")
        }
    }

    func goodhartSection(_ h: inout HTML) {
        guard let fits = goodhart else { return }
        h.heading("Gold against sqrt(KL to the base model)")
        h.image("goodhart.png" + version, alt: "gold against sqrt(KL)")
        h.paragraph(fits.first.map { $0.summary + " (Gao et al.'s RL form, gold - gold(0) = d (alpha - beta log d), d = sqrt(kl_base))" } ?? "Too few evaluations to fit Gao et al.'s form.")
        if let d = unmeasuredStart {
            h.paragraph(String(format: "No evaluation between the base model and d = %.3g (the first after the start): the curve's shape there is the fitted form's, not measured. --eval-early evaluates at iterations 1, 2, 4, ... below --eval-every as well.", d))
        }
    }

    /// Every evaluation: the proxy and each gold metric with its standard error.
    func evaluations(_ h: inout HTML) {
        let evals = m.evals
        let metrics = m.goldMetrics.filter { !$0.isRequirement }
        let floors: [GoldMetric: Double?] = [.fd: evals.compactMap(\.eval.fdFloor).first, .fd21: evals.compactMap(\.eval.fd21Floor).first]
        h.heading("Evaluations")
        func header(_ g: GoldMetric) -> String {
            g.name + ((floors[g] ?? nil).map { " (floor \(Report.format($0)))" } ?? "") + (g == .klBase ? " (nats)" : "")
        }
        h.table(header: ["step", "proxy"] + metrics.map(header), rows: evals.map { e in
            func cell(_ v: Double?, _ id: String) -> (inout HTML) -> Void {
                { h in
                    h.text(Report.format(v))
                    if let se = e.eval.se[id] { h.element("small", text: " ± \(Report.format(se))") }
                    if let c = e.eval.changeSE[id] { h.element("small", text: " (Δ ± \(Report.format(c)))") }
                }
            }
            return (e.step == summary.onset ? [("class", "onset")] : [],
                    [{ $0.text("\(e.step)") }, cell(e.eval.proxy, "proxy")] + metrics.map { cell(e.eval.value($0), $0.id) })
        })
        let checks = evals.contains { $0.eval.shapeEval != nil }
        h.element("p") { h in
            h.element("small", text: "± one standard error (over the images; over prompts for diversity; the Frechet distance's from a bootstrap of the images); "
                + "(Δ ± s): the standard error of the change since step 0, paired over the same images and noise. "
                + (checks ? "The Frechet distance's floor is its value between two independent renderings of the eval prompts: what it reads when nothing differs."
                          : "The Frechet distance compares with the folder's held-out images; its floor is as many of its training images against them: what it reads between real images."))
        }
    }

    /// Shapes-world evaluations: each kind of requirement's pass rate at the evaluations (at most
    /// `requirementColumns` of them, evenly spread, the first and last always), and its change
    /// since step 0 with the paired standard error.
    func requirements(_ h: inout HTML) {
        let evals = m.evals
        let metrics = m.goldMetrics.filter(\.isRequirement)
        guard !metrics.isEmpty, let last = evals.last else { return }
        let n = evals.count, k = min(n, Self.requirementColumns)
        let shown = k < 2 ? [n - 1] : Array(Set((0..<k).map { ($0 * (n - 1) + (k - 1) / 2) / (k - 1) })).sorted()
        h.heading("What the prompts ask, requirement by requirement")
        h.table(header: ["requirement"] + shown.map { "step \(evals[$0].step)" } + ["change"], rows: metrics.map { g in
            let change: (inout HTML) -> Void = { h in
                guard let a = last.eval.value(g), let b = evals[0].eval.value(g), n > 1 else { return }
                h.text(String(format: "%+.3f", a - b))
                if let c = last.eval.changeSE[g.id] { h.element("small", text: " ± \(Report.format(c))") }
            }
            return ([], [{ $0.text(g.name) }] + shown.map { i in { $0.text(evals[i].eval.value(g).map { String(format: "%.3f", $0) } ?? "-") } } + [change])
        })
        h.element("p") { h in
            h.element("small", text: "The pass rate of each kind of requirement on the eval images, by the strict checker: its requirements are the lenient one's, checked alike, "
                + "and extra (nothing but the asked objects drawn). A score that rises while extra falls is bought with duplicated or stray objects. "
                + "Change: the last evaluation's minus step 0's, ± the standard error paired over the same requirements of the same images.")
        }
    }
    /// The most evaluations the requirements table shows.
    static let requirementColumns = 9

    /// The algorithm's own metrics: each one's value at the first and last iteration and its mean.
    func algorithmMetrics(_ h: inout HTML) {
        let names = m.algorithmMetricNames
        guard !names.isEmpty else { return }
        h.heading("Training metrics (\(name))")
        h.table(header: ["metric", "first iteration", "mean", "last iteration"], rows: names.map { n in
            let s = m.series(n).map(\.y)
            let mean = s.isEmpty ? nil : s.reduce(0, +) / Double(s.count)
            return ([], [{ $0.text(n) }, { $0.text(Report.format(s.first)) }, { $0.text(Report.format(mean)) }, { $0.text(Report.format(s.last)) }])
        })
    }

    func grids(_ h: inout HTML) {
        let grids = m.evals.map { e in (e.step, e.eval.grid) }
        guard let last = grids.last else { return }
        h.heading("Grids (eval prompts x fixed seeds, Euler ODE; labels are the proxy reward)")
        h.element("p") { h in
            h.void("input", [("type", "range"), ("id", "slider"), ("min", "0"), ("max", "\(grids.count - 1)"), ("value", "\(grids.count - 1)"), ("style", "width:60%")])
            h.text(" "); h.element("span", [("id", "label")])
        }
        h.image(last.1, alt: "grid", attributes: [("id", "grid")])
        h.element("div", [("class", "strip")]) { h in
            for (i, g) in grids.enumerated() {
                h.image(g.1, alt: "step \(g.0)", attributes: [("title", "step \(g.0)"), ("onclick", "show(\(i))")])
            }
        }
        let list = grids.map { "[\($0.0),\(HTML.scriptString($0.1))]" }.joined(separator: ",")
        h.element("script") {
            $0.raw("""
            const grids=[\(list)];const s=document.getElementById('slider');
            function show(i){s.value=i;document.getElementById('grid').src=grids[i][1];document.getElementById('label').textContent='iteration '+grids[i][0];}
            s.oninput=()=>show(+s.value);show(grids.length-1);
            """)
        }
    }

    func stripsSection(_ h: inout HTML) {
        guard !strips.isEmpty else { return }
        h.heading("Per-prompt strips (one prompt's fixed seeds at every evaluation, top to bottom)")
        h.element("p") { h in
            h.element("select", [("id", "prompt")]) { h in
                for (i, st) in strips.enumerated() { h.element("option", [("value", "\(i)")], text: st.0) }
            }
        }
        h.element("div", [("id", "strips")]) { h in
            for (i, st) in strips.enumerated() {
                h.image(st.1 + version, alt: "strip: \(st.0)", attributes: [("class", "stripimg")] + (i == 0 ? [] : [("style", "display:none")]))
            }
        }
        h.element("script") {
            $0.raw("const sel=document.getElementById('prompt');const strips=document.querySelectorAll('.stripimg');sel.onchange=()=>strips.forEach((im,i)=>im.style.display=(i==+sel.value)?'':'none');")
        }
    }

    /// The algorithm's chart, and its per-step statistics at the last iteration.
    func diagnosticsSection(_ h: inout HTML) {
        if let diagnostics {
            h.heading("Per-step diagnostics")
            h.image(diagnostics + version, alt: "diagnostics")
        }
        guard let (step, steps) = m.lines.last(where: { $0.algorithm.steps != nil }).map({ ($0.step, $0.algorithm.steps!) }), let first = steps.first else { return }
        h.paragraph("Last iteration (\(step)), per trained SDE step:")
        let keys = first.names
        h.table(header: keys.map { $0.replacingOccurrences(of: "_", with: " ") }, rows: steps.map { s in
            ([], keys.map { k in { h in h.text(k == "k" ? "\(Int(s[k] ?? 0))" : Report.format(s[k])) } })
        })
    }

    func footer(_ h: inout HTML) {
        let secs = m.lines.compactMap(\.seconds)
        h.element("p") { h in
            h.text("\(secs.count) iterations, \(String(format: "%.1f", secs.reduce(0, +))) s of training (mean \(String(format: "%.2f", secs.reduce(0, +) / Double(max(secs.count, 1)))) s per iteration). Raw data: ")
            h.element("a", [("href", "metrics.jsonl")], text: "metrics.jsonl"); h.text(", ")
            h.element("a", [("href", "config.json")], text: "config.json"); h.text("; TensorBoard: ")
            h.element("code", text: "tensorboard --logdir \(runDir.path)"); h.text(".")
        }
    }
}
