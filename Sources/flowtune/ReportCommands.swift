import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Training

/// Writes the report of a run; a failure is reported but does not fail the run that made it.
func writeReportIfPossible(_ dir: URL, progress: RunProgress? = nil) {
    do {
        let url = try writeReport(dir, progress: progress)
        if progress == nil { log("wrote \(url.path) and \(dir.appendingPathComponent("drift.png").path)") }
    } catch {
        log("warning: no report for \(dir.path): \(error)")
    }
}

/// The report of the run in `dir`, described by its config.json (a run without one, or with one
/// this flowtune cannot read, is reported from its metrics alone).
func writeReport(_ dir: URL, progress: RunProgress? = nil) throws -> URL {
    let configURL = dir.appendingPathComponent("config.json")
    let description = FileManager.default.fileExists(atPath: configURL.path)
        ? try RunDescription(try loadRunConfig(configURL, what: "cannot read the configuration", action: "report")) : nil
    return try Report.write(runDir: dir, description: description, progress: progress)
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write drift.png (proxy vs gold metrics, onset of over-optimisation marked) and report.html for a run.")
    @Argument(help: "Run folder (holding metrics.jsonl).") var runFolder: String

    func run() throws {
        let url = try writeReport(URL(fileURLWithPath: runFolder))
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

/// Several algorithms on the same prompts, seeds and budget: a grid of the sweep's with the
/// algorithm as its one axis, run here one after the other, and summarised by the sweep's tables.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run several algorithms on the same prompts, seeds and budget; write a table (markdown + JSON) and one chart.",
        discussion: FinetuneOptions.help("Every setting below applies to each algorithm's runs; each run is a folder algo=ALGO_seed=S under --out."))
    @Option(help: "Comma-separated algorithms.") var algos = "grpo,grpo-guard,acflow"
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Output folder (one run folder per algorithm and seed inside).") var out = "outputs/compare"
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into each run folder.") var tensorboard = true
    @Option(help: "Runs per algorithm (seeds --seed, --seed + 1, ...); with more than one, means with 95% bootstrap intervals.") var seeds = 1
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        enableGracefulInterrupt()
        let names = algos.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for name in names where Algorithm(rawValue: name) == nil {
            throw CLIError("--algos: unknown algorithm '\(name)'; known: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard !names.isEmpty, Set(names).count == names.count else { throw CLIError("--algos needs distinct algorithm names") }
        try OptionCheck.positive("--seeds", seeds)
        var base = try options.config
        base.precision = threads.chosenPrecision
        let points: [SweepPoint]
        do { points = try sweepGrid(base: base, vary: [(try SweepAxis("algo"), names)], seeds: seeds) } catch let e as InvalidOption { throw CLIError(e.description) }
        let dir = try outputURL(out)
        var rows: [SummaryRow] = []
        for p in points {
            log("== \(p.name) ==")
            let runDir = dir.appendingPathComponent(p.name)
            _ = try runFinetune(config: p.config, out: runDir, resume: false, tensorboard: tensorboard)
            writeReportIfPossible(runDir)
            rows.append(try SummaryRow(point: p, metrics: try RunMetrics(url: runDir.appendingPathComponent("metrics.jsonl"))))
        }
        let groups = SweepReport.groups(rows)
        // one chart: the proxy per run on top, a panel per gold metric below, onsets marked
        let curves = rows.enumerated().map { i, r in
            Report.RunCurves(name: r.settings.map { "\($0.0)=\($0.1)" }.joined(separator: " "), color: LineChart.palette[i % LineChart.palette.count], drift: r.summary.drift)
        }
        let chart = Report.metricPanels(curves, title: "eval proxy reward per algorithm (same prompts, seeds, budget; gold metrics below)")
        try writeAtomically(try chart.pngData(), to: dir.appendingPathComponent("compare.png"))
        var md = ConfigurationTable.markdown(groups)
        md += "\nReward `\(base.reward)`, \(base.steps) iterations each, " + (seeds == 1 ? "seed \(base.seed)" : "seeds \(base.seed)...\(base.seed &+ UInt64(seeds - 1)) (mean [95% bootstrap interval of the mean])") + ". Chart: compare.png; runs: one folder per algorithm and seed.\n"
        try writeAtomically(md, to: dir.appendingPathComponent("compare.md"))
        try writeAtomically(ConfigurationTable.json(groups).text + "\n", to: dir.appendingPathComponent("compare.json"))
        print(md)
    }
}
