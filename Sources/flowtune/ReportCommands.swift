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
        abstract: "Run several algorithms on the same prompts, seeds and budget; write a table (markdown + JSON) and one chart.")
    @Option(help: "Comma-separated algorithms.") var algos = "grpo,grpo-guard,acflow"
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Output folder (one run folder per algorithm inside).") var out = "outputs/compare"
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into each run folder.") var tensorboard = true
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
        let dir = URL(fileURLWithPath: out)
        var rows: [[(String, JSONValue)]] = []
        var curves: [Report.RunCurves] = []
        for (i, algo) in list.enumerated() {
            var c = options.config
            c.algo = algo
            try c.validate()
            let runDir = dir.appendingPathComponent(algo.rawValue)
            log("== \(algo) ==")
            let t0 = Date()
            _ = try runFinetune(config: c, out: runDir, resume: false, tensorboard: tensorboard)
            let seconds = Date().timeIntervalSince(t0)
            writeReportIfPossible(runDir)
            let m = try RunMetrics(url: runDir.appendingPathComponent("metrics.jsonl"))
            let d = DriftAnalysis(m, optimised: optimisedScorers(c.reward))
            var row: [(String, JSONValue)] = [("algo", .string(algo.rawValue))]
            row.append(("proxy_gain", .double((d.proxy.last?.y ?? 0) - (d.proxy.first?.y ?? 0))))
            for g in d.gold { row.append((g.name + " change", .double((g.points.last?.y ?? 0) - (g.points.first?.y ?? 0)))) }
            row.append(("onset_step", d.onset.map { .int($0) } ?? .null))
            row.append(("seconds", .double(seconds)))
            rows.append(row)
            curves.append(Report.RunCurves(name: algo.rawValue, color: LineChart.palette[i % LineChart.palette.count], drift: d))
        }
        // one chart: the proxy per algorithm on top, a panel per gold metric below, onsets marked
        let both = Report.metricPanels(curves, title: "eval proxy reward per algorithm (same prompts, seeds, budget; gold metrics below)")
        try writeAtomically(try both.pngData(), to: dir.appendingPathComponent("compare.png"))
        let keys = rows.first!.map(\.0)
        var md = "| " + keys.joined(separator: " | ") + " |\n|" + keys.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { md += "| " + r.map { v in if case .string(let s) = v.1 { return s }; return v.1.text }.joined(separator: " | ") + " |\n" }
        md += "\nReward `\(options.reward)`, \(options.steps) iterations each, seed \(options.seed). Chart: compare.png; runs: one folder per algorithm.\n"
        try writeAtomically(md, to: dir.appendingPathComponent("compare.md"))
        try writeAtomically(JSONValue.array(rows.map { .object($0) }).text + "\n", to: dir.appendingPathComponent("compare.json"))
        print(md)
    }
}
