import Testing
import Foundation
import Tensor
import Imaging
import Shapes
import Rewards
import Training

/// 32x32 images as a batch, and prompts of the grammar.
func batch(_ images: [[Float]]) -> ImageBatch { ImageBatch(images: images, size: 32) }
func prompts(_ n: Int, _ text: String = "a red circle on a blue background") -> [Prompt] { Array(repeating: try! Prompt(text), count: n) }

@Suite struct RewardTests {
    static let flat = [Float](repeating: 0.2, count: 32 * 32 * 3)
    static let noise: [Float] = { var r = RNG(seed: 1); return (0..<(32 * 32 * 3)).map { _ in r.uniform(-1, 1) } }()

    @Test func jpegRewardsOrderFlatAndNoiseImages() throws {
        let comp = try JPEGScorer(compressible: true).score(batch([Self.flat, Self.noise]), prompts: prompts(2))
        let incomp = try JPEGScorer(compressible: false).score(batch([Self.flat, Self.noise]), prompts: prompts(2))
        #expect(comp[0] > comp[1])            // the flat image compresses better
        #expect(incomp[1] > incomp[0])
        #expect(comp[0] == -incomp[0])
        // kB at quality 95
        let bytes = try RGBImage(signedUnit: Self.noise, width: 32, height: 32).jpegData(quality: 95).count
        #expect(abs(incomp[1] - Float(bytes) / 1000) < 1e-6)
    }

    @Test func brightnessSaturationAndShapeEval() throws {
        let white = [Float](repeating: 1, count: 32 * 32 * 3), black = [Float](repeating: -1, count: 32 * 32 * 3)
        #expect(try BrightnessScorer().score(batch([white, black]), prompts: prompts(2)) == [1, 0])
        var red = [Float](repeating: -1, count: 32 * 32 * 3)
        for p in 0..<(32 * 32) { red[3 * p] = 1 }
        #expect(try SaturationScorer().score(batch([red, white]), prompts: prompts(2)) == [1, 0])
        var rng = RNG(seed: 3)
        let spec = try PromptSpec(parsing: "a red circle on a blue background")
        let img = Renderer(size: 32).render(spec, rng: &rng)
        #expect(try ShapeEvalScorer().score(batch([img, white]), prompts: prompts(2, spec.text)) == [1, 0])
    }

    /// The spec is parsed once into a value; every built-in name of the registry parses and makes
    /// its scorer; a bad spec is an error wherever it is read (a run's configuration, the report's
    /// optimised scorers), never an empty set that turns the optimised scorer into a gold metric.
    @Test func rewardSpecIsOneValueAndABadOneIsAnErrorEverywhere() throws {
        for entry in ScorerRegistry.builtIn {
            let spec = try RewardSpec(parsing: "\(entry.name)=2")
            #expect(spec.terms == [RewardSpec.Term(name: entry.name, weight: 2)])
            #expect(try spec.makeReward().names == [entry.name])
        }
        let ext = try RewardSpec(parsing: "brightness=0, external: cat =1.5")
        #expect(ext.terms.map(\.name) == ["brightness", "external:cat"] && ext.optimisedNames == ["external:cat"])
        #expect(throws: RewardError.self) { try optimisedScorers("sharpness=1,shape-eval=0") }
        var c = FinetuneConfig()
        c.reward = "brightness=1,shap-eval=0"
        #expect(throws: RewardError.self) { try c.validate() }
        #expect(ScorerRegistry.names.hasSuffix("jpeg-incompressibility, external:COMMAND, rm:PATH[+PATH...]"))
    }

    @Test func rewardSpecParsing() throws {
        let r = try CombinedReward(parsing: "shape-eval=1, jpeg-compressibility=0")
        #expect(r.names == ["shape-eval", "jpeg-compressibility"])
        #expect(r.terms.map(\.weight) == [1, 0])
        let (total, by) = try r.evaluate(batch([Self.flat]), prompts: prompts(1))
        #expect(total[0] == by["shape-eval"]![0])     // weight 0: logged, not in the total
        #expect(by["jpeg-compressibility"] != nil)
        #expect(try CombinedReward(parsing: "brightness").terms[0].weight == 1)
        func message(_ spec: String) -> String { do { _ = try CombinedReward(parsing: spec); return "" } catch { return "\(error)" } }
        #expect(message("sharpness=1").contains("unknown reward 'sharpness'"))
        #expect(message("brightness=abc").contains("not a finite number"))
        #expect(message("brightness=-0.5").contains("negative"))
        #expect(message("brightness=inf").contains("not a finite number"))
        #expect(message("").contains("empty"))
        #expect(message("brightness=0").contains("nothing to optimise"))
        #expect(message("brightness,brightness=2").contains("twice"))
        #expect(message("brightness,,saturation").contains("empty term"))
        #expect(message("external:").contains("needs a command"))
    }
}

@Suite struct ExternalScorerTests {
    static let image: [Float] = { var r = RNG(seed: 2); return (0..<(32 * 32 * 3)).map { _ in r.uniform(-1, 1) } }()

    func message(_ command: String, timeout: Double = 5) -> String {
        do { _ = try ExternalScorer(command: command, timeout: timeout).score(batch([Self.image]), prompts: prompts(1)); return "" }
        catch { return "\(error)" }
    }

    @Test func happyPathReadsTheImageAndAnswersPerLine() throws {
        // answers with the PNG file's size, so the reply depends on the file the request named
        let cmd = #"while read -r line; do f=$(printf '%s' "$line" | sed 's/.*"image": "\([^"]*\)".*/\1/'); stat -c %s "$f"; done"#
        let s = ExternalScorer(command: cmd, timeout: 10)
        let out = try s.score(batch([Self.image, Self.image]), prompts: prompts(1) + prompts(1, "two green squares on a black background"))
        let size = Float(try RGBImage(signedUnit: Self.image, width: 32, height: 32).pngData().count)
        #expect(out == [size, size])
        // the same process serves later batches
        #expect(try s.score(batch([Self.image]), prompts: prompts(1)) == [size])
    }

    @Test func crashIsAnError() {
        let m = message("read -r line; exit 3")
        #expect(m.contains("exited") && m.contains("external scorer"))
    }

    @Test func hangHitsTheTimeout() {
        let start = Date()
        let m = message("while read -r line; do sleep 30; done", timeout: 1)
        #expect(m.contains("no answer within"))
        #expect(Date().timeIntervalSince(start) < 10)
    }

    /// The processes whose command line contains `marker` (zombies included), from /proc.
    static func processes(containing marker: String) -> [String] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return ids.compactMap { id in
            guard let data = FileManager.default.contents(atPath: "/proc/\(id)/cmdline"), !data.isEmpty else { return nil }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmd.contains(marker) ? "\(id): \(cmd)" : nil
        }
    }

    /// A scorer that starts a sleeping grandchild and then hangs: after the timeout error, no
    /// process of that scorer is left, grandchild included.
    @Test func aHangingScorerAndItsDescendantsAreStoppedAndReaped() {
        let marker = "\(4_000_000 + Int.random(in: 0..<999_999))"
        let m = message("sleep \(marker) & sh -c 'sleep \(marker)' & while read -r line; do sleep \(marker); done", timeout: 1)
        #expect(m.contains("no answer within"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "left: \(Self.processes(containing: "sleep \(marker)"))")
        // and one that exits while a grandchild sleeps on
        let m2 = message("sleep \(marker) & read -r line; exit 3")
        #expect(m2.contains("exited (status 3)"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty)
    }

    /// Replies are matched one to one with requests: an id echoed back is checked; answering
    /// twice for one image, or without reading, is an error instead of shifted rewards; CRLF
    /// line ends are accepted; a huge line is refused without quadratic scanning.
    @Test func repliesAreMatchedOneToOneWithRequests() throws {
        let two = [Self.image, Self.image]
        let prompts2 = prompts(1) + prompts(1)
        func message(_ command: String, timeout: Double = 5) -> String {
            do { _ = try ExternalScorer(command: command, timeout: timeout).score(batch(two), prompts: prompts2); return "" }
            catch { return "\(error)" }
        }
        // the id form: the reply echoes the request's id
        let echo = #"while read -r line; do id=$(printf '%s' "$line" | sed 's/^{"id": \([0-9]*\).*/\1/'); echo "{\"id\": $id, \"score\": $id.5}"; done"#
        #expect(try ExternalScorer(command: echo, timeout: 10).score(batch(two), prompts: prompts2) == [1.5, 2.5])
        #expect(message(#"while read -r line; do echo '{"id": 7, "score": 1}'; done"#).contains("the id must be the request's"))
        #expect(message(#"while read -r line; do echo '{"id": 1}'; done"#).contains("without a numeric \"score\""))
        // two lines for one image, and answers printed without reading
        // (each in one write, so that it is there by the next request however loaded the machine is)
        #expect(message(#"while read -r line; do printf '0.5\n0.7\n'; sleep 0.2; done"#).contains("answered more lines than it was asked"))
        #expect(message(#"printf '0.5\n%.0s' $(seq 100); sleep 5"#).contains("answered more lines than it was asked"))
        // with ids, a stale answer is told from the right one whenever it arrives
        let stale = message(#"read -r line; echo '{"id": 1, "score": 0.5}'; sleep 0.3; echo '{"id": 1, "score": 0.5}'; read -r line; sleep 5"#)
        #expect(stale.contains("the id must be the request's") || stale.contains("answered more lines"), "\(stale)")
        // CRLF
        #expect(try ExternalScorer(command: #"while read -r line; do printf '0.25\r\n'; done"#, timeout: 10).score(batch(two), prompts: prompts2) == [0.25, 0.25])
        // a 20 MB line: refused at the limit, in well under the time quadratic scanning took
        let start = Date()
        #expect(message("read -r line; head -c 20000000 /dev/zero | tr '\\0' 7; echo", timeout: 30).contains("a line longer than"))
        #expect(Date().timeIntervalSince(start) < 8)
    }

    /// A scorer's descendant that left its process group (setsid) is stopped with the scorer;
    /// image folders of flowtune processes that were killed are removed at the next start.
    @Test func escapedDescendantsAndStaleFoldersAreCleanedUp() throws {
        let marker = "\(5_000_000 + Int.random(in: 0..<999_999))"
        func scoreOnce() throws -> [Float] {     // the scorer is stopped when it goes out of scope
            let s = ExternalScorer(command: "setsid sleep \(marker) & while read -r line; do echo 0.5; done", timeout: 10)
            let scores = try s.score(batch([Self.image]), prompts: prompts(1))
            usleep(100_000)
            #expect(!Self.processes(containing: "sleep \(marker)").isEmpty)
            return scores
        }
        #expect(try scoreOnce() == [0.5])
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "left: \(Self.processes(containing: "sleep \(marker)"))")
        let m = message("setsid sleep \(marker) & read -r line; exit 3")
        #expect(m.contains("exited (status 3)"))
        #expect(Self.processes(containing: "sleep \(marker)").isEmpty, "after an exit: \(Self.processes(containing: "sleep \(marker)"))")
        let stale = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-external-2147483646-12345")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        let live = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-external-\(getppid())-12345")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: live); try? FileManager.default.removeItem(at: stale) }
        _ = try ExternalScorer(command: "while read -r line; do echo 0.5; done", timeout: 10).score(batch([Self.image]), prompts: prompts(1))
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
    }

    @Test func garbageNaNAndShortRepliesAreErrors() {
        #expect(message("while read -r line; do echo hello; done").contains("not a JSON number"))
        #expect(message("while read -r line; do echo NaN; done").contains("not a finite number"))
        #expect(message("while read -r line; do echo 1e999; done").contains("not a finite number"))
        #expect(message("read -r line; printf '0.5'").contains("partial line"))
        #expect(message("/nonexistent/scorer-binary").contains("exited"))
    }
}

@Suite struct ReportTests {
    /// A synthetic run: the proxy rises throughout; shape-eval falls after step 20.
    static func syntheticRun() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("grids"), withIntermediateDirectories: true)
        var config = FinetuneConfig()
        config.reward = "jpeg-compressibility=1,shape-eval=0"
        try JSONEncoder().encode(config).write(to: dir.appendingPathComponent("config.json"))
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
            l += ", \"eval\": {\"proxy\": \(proxy), \"scores\": {\"jpeg-compressibility\": \(proxy), \"shape-eval\": \(shape)}, \"shape_eval\": \(shape), \"shape_eval_by_task\": {\"single\": \(shape), \"two_objects\": null, \"counting\": 0.5, \"position\": 0.5}, \"fd\": \(1 + Double(step) * 0.001), \"diversity\": 1.0, \"w2\": \(Double(step) * 0.001), \"grid\": \"\(name)\"}}"
            lines.append(l)
        }
        try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        try "a red circle on a blue background\ntwo green squares on a white background\n".write(to: dir.appendingPathComponent("grids/prompts.txt"), atomically: true, encoding: .utf8)
        return dir
    }

    static func colour(step: Int, prompt: Int, seed: Int) -> (UInt8, UInt8, UInt8) { (UInt8(step * 5 + 1), UInt8(prompt * 100 + 50), UInt8(seed * 100 + 50)) }

    /// The path of a page reference without its cache-busting query.
    static func file(_ ref: String) -> String { String(ref.split(separator: "?")[0]) }

    @Test func reportMarksTheOnsetAndEveryReferencedFileExists() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Report.write(runDir: dir)
        let html = try String(contentsOf: url, encoding: .utf8)
        #expect(html.contains("onset at iteration 30"))
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
        #expect(d.onset == 30 && d.onsetMetrics.contains("shape-eval"))
    }

    /// drift.png: the proxy across the top, then a panel per gold metric (shape-eval, Frechet
    /// distance, diversity, W2: the optimised scorer has none), each with the onset marked.
    @Test func driftChartHasAPanelPerGoldMetricWithTheOnsetOnEach() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try Report.write(runDir: dir)
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
        let html = try String(contentsOf: try Report.write(runDir: dir), encoding: .utf8)
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
        let live = try String(contentsOf: try Report.write(runDir: dir, progress: RunProgress(iteration: 40, steps: 100, eta: "1m05s")), encoding: .utf8)
        #expect(live.contains("<meta http-equiv=\"refresh\" content=\"\(Report.reloadSeconds)\">"))
        #expect(live.contains("iteration 40 of 100, ETA 1m05s"))
        // the synthetic config has 100 steps and the metrics end at 40: stopped
        let stopped = try String(contentsOf: try Report.write(runDir: dir), encoding: .utf8)
        #expect(!stopped.contains("http-equiv=\"refresh\""))
        #expect(stopped.contains("Run stopped</b> at iteration 40 of 100") && stopped.contains("--resume"))
        var config = FinetuneConfig()
        config.steps = 40; config.reward = "jpeg-compressibility=1,shape-eval=0"
        try JSONEncoder().encode(config).write(to: dir.appendingPathComponent("config.json"))
        let done = try String(contentsOf: try Report.write(runDir: dir), encoding: .utf8)
        #expect(!done.contains("http-equiv=\"refresh\"") && done.contains("Run finished</b>: 40 iterations"))
    }

    /// The page in a real browser: headless Chromium loads every image (scripts/check-report.sh).
    @Test(.enabled(if: ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].contains { FileManager.default.isExecutableFile(atPath: $0) },
                   "no chromium installed (apt-get install chromium)"))
    func everyImageLoadsInChromium() throws {
        let dir = try Self.syntheticRun()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try Report.write(runDir: dir)
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
        func analysis(se: Double) -> DriftAnalysis {
            var lines = m.lines
            for i in lines.indices { lines[i].eval?.se = ["shape_eval": se, "fd": 1, "diversity": 1, "w2": 1, "scores/shape-eval": se] }
            var copy = m
            copy.lines = lines
            return DriftAnalysis(copy, optimised: ["jpeg-compressibility"])
        }
        // shape-eval falls by 0.2 at step 30, 0.4 at step 40; the fixed band alone gives onset 30
        #expect(analysis(se: 0.05).onset == 30)                   // 0.2 > 2 * sqrt(2) * 0.05 = 0.14
        #expect(analysis(se: 0.1).onset == 40)                    // 0.2 < 0.28 < 0.4
        #expect(analysis(se: 0.2).onset == nil)                   // 0.4 < 0.57
        #expect(analysis(se: 0.05).gold.first { $0.name == "shape-eval" }!.se.allSatisfy { $0 == 0.05 })
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
        #expect(throws: FinetuneError.self) { try Report.write(runDir: dir) }
        try "{\"step\": 1}\nnot json\n".write(to: dir.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
        #expect(throws: FinetuneError.self) { try Report.write(runDir: dir) }
    }
}
