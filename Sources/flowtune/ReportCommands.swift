import ArgumentParser
import Foundation
import Tensor
import Imaging
import Training

/// Writes the report of a run; a failure is reported but does not fail the run that made it.
func writeReportIfPossible(_ dir: URL, progress: RunProgress? = nil) {
    do {
        let url = try Report.write(runDir: dir, progress: progress)
        if progress == nil { log("wrote \(url.path) and \(dir.appendingPathComponent("drift.png").path)") }
    } catch {
        log("warning: no report for \(dir.path): \(error)")
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write drift.png (proxy vs gold metrics, onset of over-optimisation marked) and report.html for a run.")
    @Argument(help: "Run folder (holding metrics.jsonl).") var runFolder: String

    func run() throws {
        let url = try Report.write(runDir: URL(fileURLWithPath: runFolder))
        log("wrote \(url.path)")
    }
}

struct TensorBoardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tensorboard",
        abstract: "Write (or rewrite) the TensorBoard event file of runs from their metrics.jsonl and grids (fine-tuning writes it as it goes unless --no-tensorboard).")
    @Argument(help: "Run folders (holding metrics.jsonl).") var runFolders: [String]

    func run() throws {
        guard !runFolders.isEmpty else { throw CLIError("give at least one run folder") }
        for folder in runFolders {
            let dir = URL(fileURLWithPath: folder)
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("metrics.jsonl").path) else {
                throw CLIError("\(folder): not a run folder (no metrics.jsonl)")
            }
            let log = try TensorBoardLog(runDir: dir)
            print(log.url.path)
        }
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run several algorithms on the same prompts, seeds and budget; write a table (markdown + JSON) and one chart.",
        discussion: FinetuneOptions.help("Every setting below applies to each algorithm's runs."))
    @Option(help: "Comma-separated algorithms.") var algos = "grpo,grpo-guard,acflow"
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Output folder (one run folder per algorithm inside).") var out = "outputs/compare"
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into each run folder.") var tensorboard = true
    @Option(help: "Runs per algorithm (seeds --seed, --seed + 1, ...); with more than one, means with 95% bootstrap intervals.") var seeds = 1
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        enableGracefulInterrupt()
        let names = algos.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let list = try names.map { name -> Algorithm in
            guard let a = Algorithm(rawValue: name) else {
                throw CLIError("--algos: unknown algorithm '\(name)'; known: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return a
        }
        guard !list.isEmpty, Set(list).count == list.count else { throw CLIError("--algos needs distinct algorithm names") }
        try OptionCheck.positive("--seeds", seeds)
        let dir = try outputURL(out)
        let base = try options.config
        var rows: [[(String, JSONValue)]] = []
        var curves: [Report.RunCurves] = []
        var perAlgo: [(Algorithm, [[(String, Double)]])] = []
        for (i, algo) in list.enumerated() {
            var runs: [[(String, Double)]] = []
            for s in 0..<seeds {
                var c = base
                c.precision = threads.chosenPrecision
                c.algo = algo
                c.seed = base.seed &+ UInt64(s)
                try c.validate()
                let runDir = dir.appendingPathComponent(seeds == 1 ? algo.rawValue : "\(algo.rawValue)-seed\(c.seed)")
                log("== \(algo)\(seeds == 1 ? "" : ", seed \(c.seed)") ==")
                let t0 = Date()
                _ = try runFinetune(config: c, out: runDir, resume: false, tensorboard: tensorboard)
                let seconds = Date().timeIntervalSince(t0)
                writeReportIfPossible(runDir)
                let m = try RunMetrics(url: runDir.appendingPathComponent("metrics.jsonl"))
                let d = DriftAnalysis(m, optimised: try optimisedScorers(c.reward))
                var row: [(String, Double)] = [("proxy_gain", (d.proxy.last?.y ?? 0) - (d.proxy.first?.y ?? 0))]
                for g in d.gold { row.append((g.name + " change", (g.points.last?.y ?? 0) - (g.points.first?.y ?? 0))) }
                row.append(("onset_step", d.onset.map(Double.init) ?? .nan))
                row.append(("seconds", seconds))
                runs.append(row)
                curves.append(Report.RunCurves(name: seeds == 1 ? algo.rawValue : "\(algo.rawValue) seed \(c.seed)",
                                               color: LineChart.palette[i % LineChart.palette.count], drift: d))
            }
            perAlgo.append((algo, runs))
        }
        // one row per algorithm: the value (one seed), or the mean with a 95% bootstrap interval over seeds
        var md = ""
        for (algo, runs) in perAlgo {
            var row: [(String, JSONValue)] = [("algo", .string(algo.rawValue))]
            var cells = [algo.rawValue]
            for (k, key) in runs[0].map(\.0).enumerated() {
                let values = runs.map { $0[k].1 }
                if key == "onset_step" {
                    let onsets = values.filter { !$0.isNaN }
                    row.append((key, seeds == 1 ? (onsets.first.map { .int(Int($0)) } ?? .null) : .array(values.map { $0.isNaN ? .null : .int(Int($0)) })))
                    cells.append(seeds == 1 ? (onsets.first.map { String(Int($0)) } ?? "-") : "\(onsets.count)/\(seeds) runs" + (onsets.isEmpty ? "" : String(format: ", median %.0f", onsets.sorted()[onsets.count / 2])))
                } else if seeds == 1 {
                    row.append((key, .double(values[0])))
                    cells.append(JSONValue.double(values[0]).text)
                } else if let ci = bootstrapMeanInterval(values) {
                    row.append((key, .object([("mean", .double(ci.mean)), ("low", .double(ci.low)), ("high", .double(ci.high)),
                                              ("values", .array(values.map { .double($0) }))])))
                    cells.append(String(format: "%.4g [%.4g, %.4g]", ci.mean, ci.low, ci.high))
                }
            }
            rows.append(row)
            if md.isEmpty {
                let keys = ["algo"] + runs[0].map(\.0)
                md = "| " + keys.joined(separator: " | ") + " |\n|" + keys.map { _ in "---" }.joined(separator: "|") + "|\n"
            }
            md += "| " + cells.joined(separator: " | ") + " |\n"
        }
        // one chart: the proxy per algorithm on top, a panel per gold metric below, onsets marked
        let both = Report.metricPanels(curves, title: "eval proxy reward per algorithm (same prompts, seeds, budget; gold metrics below)")
        try writeAtomically(try both.pngData(), to: dir.appendingPathComponent("compare.png"))
        md += "\nReward `\(base.reward)`, \(base.steps) iterations each, " + (seeds == 1 ? "seed \(base.seed)" : "seeds \(base.seed)...\(base.seed &+ UInt64(seeds - 1)) (mean [95% bootstrap interval of the mean])") + ". Chart: compare.png; runs: one folder per algorithm" + (seeds == 1 ? "" : " and seed") + ".\n"
        try writeAtomically(md, to: dir.appendingPathComponent("compare.md"))
        try writeAtomically(JSONValue.array(rows.map { .object($0) }).text + "\n", to: dir.appendingPathComponent("compare.json"))
        print(md)
    }
}
