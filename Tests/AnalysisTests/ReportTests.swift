import Testing
import Foundation
import Tensor
import Imaging
import Analysis

@Suite struct ReportTests {
    /// A synthetic run: the proxy rises throughout; shape-eval falls after step 20.
    static func syntheticRun() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("grids"), withIntermediateDirectories: true)
        try "{}".write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)    // the page links it
        var lines: [String] = []
        let grid = try RGBImage(width: 8, height: 8, fill: (10, 200, 10)).pngData()
        for step in stride(from: 0, through: 40, by: 10) {
            let proxy = -2.0 + Double(step) * 0.03
            let shape = step <= 20 ? 0.8 : 0.8 - Double(step - 20) * 0.02
            let name = String(format: "grids/step-%05d.png", step)
            try Data(grid).write(to: dir.appendingPathComponent(name))
            // the bare images (2 prompts x 2 seeds of 4x4 pixels): a colour per step, prompt and seed
            let raw = tiled((0..<2).map { p in (0..<2).map { sd in RGBImage(width: 4, height: 4, fill: Self.colour(step: step, prompt: p, seed: sd)) } })
            try makeFolder(dir.appendingPathComponent("grids/raw"))
            try Data(try raw.pngData()).write(to: dir.appendingPathComponent("grids/raw/" + URL(fileURLWithPath: name).lastPathComponent))
            var l = "{\"step\": \(step), \"algo\": \"grpo\""
            if step > 0 {
                l += ", \"reward_mean\": \(proxy), \"seconds\": 1.5, \"timesteps\": [{\"k\": 0, \"t\": 1, \"ratio_mean\": 1, \"ratio_std\": 0.001, \"logratio_mean\": -0.0001, \"plain_logratio_mean\": -0.0001, \"clip_high\": 0.1, \"clip_low\": 0.05, \"abs_adv_mean\": 0.8, \"kl_ref\": 0}]"
            }
            l += ", \"eval\": {\"proxy\": \(proxy), \"scores\": {\"jpeg-compressibility\": \(proxy), \"shape-eval\": \(shape)}, \"shape_eval\": \(shape), \"shape_eval_by_task\": {\"single\": \(shape), \"two_objects\": null, \"counting\": 0.5, \"position\": 0.5}, \"fd\": \(1 + Double(step) * 0.001), \"diversity\": 1.0, \"w2\": \(Double(step) * 0.001), \"grid\": \"\(name)\""
            l += ", \"shape_eval_by_requirement\": {\"counting/count\": \(0.25 + Double(step) * 0.01), \"counting/extra\": \(0.75 - Double(step) * 0.01)}"
            if step > 0 { l += ", \"change_se\": {\"shape_eval\": 0.005, \"shape_eval_by_requirement/counting/count\": 0.03}" }
            l += "}}"
            lines.append(l)
        }
        try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        try "a red circle on a blue background\ntwo green squares on a white background\n".write(to: dir.appendingPathComponent("grids/prompts.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    /// The synthetic run's settings as its report reads them.
    static func description(steps: Int = 100) -> RunDescription {
        RunDescription(reward: "jpeg-compressibility=1,shape-eval=0", optimised: ["jpeg-compressibility"], steps: steps, promptsPerIteration: 4,
                       groupSize: 8, lr: 1e-4, seed: 0, model: "m.safetensors", diagnostics: .perStep(key: "logratio_mean", title: "log-ratio", yLabel: "log r"))
    }

    static func colour(step: Int, prompt: Int, seed: Int) -> (UInt8, UInt8, UInt8) { (UInt8(step * 5 + 1), UInt8(prompt * 100 + 50), UInt8(seed * 100 + 50)) }

    /// The path of a page reference without its cache-busting query.
    static func file(_ ref: String) -> String { String(ref.split(separator: "?")[0]) }

    @Test func reportMarksTheOnsetAndEveryReferencedFileExists() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Report.write(runDir: dir, description: Self.description())
        let html = try String(contentsOf: url, encoding: .utf8)
        #expect(html.contains("onset at iteration 30"))
        #expect(html.contains("(Δ ± 0.0050)"))     // the paired error of shape-eval's change
        // every src= / href= target exists, and every grid is shown
        let pattern = try NSRegularExpression(pattern: #"(?:src|href)="([^"]+)""#)
        let refs = pattern.matches(in: html, range: NSRange(html.startIndex..., in: html)).map { String(html[Range($0.range(at: 1), in: html)!]) }
        #expect(refs.count >= 5 + 3)
        for r in refs { #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(Self.file(r)).path), "\(r)") }
        for step in stride(from: 0, through: 40, by: 10) { #expect(html.contains(String(format: "grids/step-%05d.png", step))) }
        let drift = try RGBImage(pngData: [UInt8](Data(contentsOf: dir.appendingPathComponent("drift.png"))))
        #expect(drift.width > 100)
        let m = try RunMetrics(url: dir.appendingPathComponent("metrics.jsonl"))
        let d = DriftAnalysis(m, optimised: ["jpeg-compressibility"])
        #expect(d.onset == 30 && d.onsetMetrics.contains(.shapeEval))
    }

    /// The Goodhart section says where the run has no evaluation near the base model.
    @Test func goodhartSectionNamesAnUnmeasuredStart() throws {
        for (early, expected) in [(false, true), (true, false)] {
            let dir = try Self.syntheticRun()
            defer { try? FileManager.default.removeItem(at: dir) }
            // KL to the base model: 64 nats and up from the first evaluation on (d >= 8), or growing from 1
            let url = dir.appendingPathComponent("metrics.jsonl")
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").enumerated().map { i, l in
                let kl = i == 0 ? 0 : early ? Double(i * i * i) : 64 + Double(i * 10)
                return l.replacingOccurrences(of: "\"w2\":", with: "\"kl_base\": \(kl), \"w2\":")
            }
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
            let html = try String(contentsOf: try Report.write(runDir: dir, description: Self.description()), encoding: .utf8)
            #expect(html.contains("Gold against sqrt(KL to the base model)"))
            #expect(html.contains("No evaluation between the base model and d = 8.6") == expected)
        }
    }

    /// The requirements' pass rates have a table of their own (every evaluation here, the change
    /// with its paired error), not columns of the evaluations table nor panels of drift.png.
    @Test func requirementsHaveATableOfTheirOwn() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let html = try String(contentsOf: try Report.write(runDir: dir, description: Self.description()), encoding: .utf8)
        let evaluations = try #require(html.range(of: "<h2>Evaluations</h2>")), requirements = try #require(html.range(of: "<h2>What the prompts ask, requirement by requirement</h2>"))
        #expect(evaluations.upperBound < requirements.lowerBound)
        #expect(!html[evaluations.upperBound..<requirements.lowerBound].contains("counting / count"))
        let table = html[requirements.upperBound...]
        #expect(table.contains("<td>counting / count</td>") && table.contains("<td>counting / extra</td>"))
        for step in stride(from: 0, through: 40, by: 10) { #expect(table.contains("<th>step \(step)</th>"), "\(step)") }
        #expect(table.contains("<td>0.250</td>") && table.contains("<td>0.650</td>"))
        #expect(table.contains("+0.400<small> ± 0.0300</small>") && table.contains("-0.400</td>"))
    }

    /// drift.png: the proxy across the top, then a panel per gold metric (shape-eval, Frechet
    /// distance, diversity, W2: the optimised scorer has none), each with the onset marked.
    @Test func driftChartHasAPanelPerGoldMetricWithTheOnsetOnEach() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try Report.write(runDir: dir, description: Self.description())
        let drift = try RGBImage(pngData: [UInt8](Data(contentsOf: dir.appendingPathComponent("drift.png"))))
        let topH = 250, panelW = 430, panelH = 200
        #expect(drift.width == 2 * panelW && drift.height == topH + 2 * panelH)
        func hasMarker(_ img: RGBImage) -> Bool { img.pixels.indices.contains { $0 % 3 == 0 && img.pixels[$0] == 200 && img.pixels[$0 + 1] == 0 && img.pixels[$0 + 2] == 0 } }
        #expect(hasMarker(drift.cropped(x: 0, y: 0, width: drift.width, height: topH)))
        for i in 0..<4 {
            #expect(hasMarker(drift.cropped(x: (i % 2) * panelW, y: topH + (i / 2) * panelH, width: panelW, height: panelH)), "panel \(i)")
        }
    }

    /// strips/prompt-NN.png: one row per evaluation of that prompt's seeds, from the bare grids.
    @Test func stripsShowEachPromptAtEveryEvaluation() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let html = try String(contentsOf: try Report.write(runDir: dir, description: Self.description()), encoding: .utf8)
        for p in 0..<2 {
            let name = String(format: "strips/prompt-%02d.png", p)
            #expect(html.contains(name))
            let strip = try RGBImage(pngData: [UInt8](Data(contentsOf: dir.appendingPathComponent(name))))
            var seen: Set<[UInt8]> = []
            for i in stride(from: 0, to: strip.pixels.count, by: 3) { seen.insert(Array(strip.pixels[i..<i + 3])) }
            for step in stride(from: 0, through: 40, by: 10) {
                for sd in 0..<2 {
                    let c = Self.colour(step: step, prompt: p, seed: sd)
                    #expect(seen.contains([c.0, c.1, c.2]), "prompt \(p) step \(step) seed \(sd)")
                    let other = Self.colour(step: step, prompt: 1 - p, seed: sd)
                    #expect(!seen.contains([other.0, other.1, other.2]))
                }
            }
        }
    }

    /// A report written during the run reloads itself and says where the run is; written after
    /// the run, it does not reload and says the run finished (or stopped, and how to resume).
    @Test func liveReportReloadsUntilTheRunEnds() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let live = try String(contentsOf: try Report.write(runDir: dir, description: Self.description(), progress: RunProgress(iteration: 40, steps: 100, eta: "1m05s")), encoding: .utf8)
        #expect(live.contains("<meta http-equiv=\"refresh\" content=\"\(Report.reloadSeconds)\">"))
        #expect(live.contains("iteration 40 of 100, ETA 1m05s"))
        // the synthetic config has 100 steps and the metrics end at 40: stopped
        let stopped = try String(contentsOf: try Report.write(runDir: dir, description: Self.description()), encoding: .utf8)
        #expect(!stopped.contains("http-equiv=\"refresh\""))
        #expect(stopped.contains("Run stopped</b> at iteration 40 of 100") && stopped.contains("--resume"))
        let done = try String(contentsOf: try Report.write(runDir: dir, description: Self.description(steps: 40)), encoding: .utf8)
        #expect(!done.contains("http-equiv=\"refresh\"") && done.contains("Run finished</b>: 40 iterations"))
    }

    /// The page in a real browser: headless Chromium loads every image (scripts/check-report.sh).
    @Test(.enabled(if: ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].contains { FileManager.default.isExecutableFile(atPath: $0) },
                   "no chromium installed (apt-get install chromium)"))
    func everyImageLoadsInChromium() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try Report.write(runDir: dir, description: Self.description())
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/check-report.sh").standardized
        func check() throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [script.path, dir.path]
            p.standardError = FileHandle.nullDevice
            try p.run(); p.waitUntilExit()
            return p.terminationStatus
        }
        #expect(try check() == 0)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("strips/prompt-01.png"))
        #expect(try check() == 1)
    }

    /// With standard errors in the metrics, a gold metric has fallen when it is worse than at
    /// step 0 by more than twice the standard error of the difference, not by a fixed band.
    @Test func onsetUsesTheStandardErrors() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("metrics.jsonl")
        let m = try RunMetrics(url: url)
        func analysis(se: Double, paired: Double? = nil) -> DriftAnalysis {
            var lines = m.lines
            for i in lines.indices {
                lines[i].eval?.se = ["shape_eval": se, "fd": 1, "diversity": 1, "w2": 1, "scores/shape-eval": se]
                let later = lines[i].step > 0
                lines[i].eval?.changeSE = paired.map { later ? ["shape_eval": $0] : [:] } ?? [:]
            }
            var copy = m
            copy.lines = lines
            return DriftAnalysis(copy, optimised: ["jpeg-compressibility"])
        }
        // shape-eval falls by 0.2 at step 30, 0.4 at step 40; the fixed band alone gives onset 30
        #expect(analysis(se: 0.05).onset == 30)                   // 0.2 > 2 * sqrt(2) * 0.05 = 0.14
        #expect(analysis(se: 0.1).onset == 40)                    // 0.2 < 0.28 < 0.4
        #expect(analysis(se: 0.2).onset == nil)                   // 0.4 < 0.57
        #expect(analysis(se: 0.05).gold.first { $0.name == "shape-eval" }!.se.allSatisfy { $0 == 0.05 })
        // the change's own, paired standard error decides where the evaluation logs it
        #expect(analysis(se: 0.2, paired: 0.05).onset == 30)      // 0.2 > 2 * 0.05
        #expect(analysis(se: 0.05, paired: 0.15).onset == 40)     // 0.2 < 0.3 < 0.4
    }

    @Test func noOnsetWhenGoldHolds() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        // optimising shape-eval itself: the gold metrics left are the Frechet distance, which
        // moves by 4% (inside its 5% band), and the others, which do not move
        let m = try RunMetrics(url: dir.appendingPathComponent("metrics.jsonl"))
        let d = DriftAnalysis(m, optimised: ["jpeg-compressibility", "shape-eval"])
        #expect(!d.gold.contains { $0.name == "shape-eval" })
        #expect(d.gold.contains { $0.name == "frechet distance" })
        #expect(d.onset == nil && d.onsetMetrics.isEmpty)
    }

    @Test func badMetricsFilesAreErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-report-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: AnalysisError.self) { try Report.write(runDir: dir, description: Self.description()) }
        try "{\"step\": 1}\nnot json\n".write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        #expect(throws: AnalysisError.self) { try Report.write(runDir: dir, description: Self.description()) }
    }
}
