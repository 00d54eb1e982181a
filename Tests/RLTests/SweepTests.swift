import Testing
import Foundation
import Tensor
import Training

/// A sweep axis by its name (the test's names exist).
func axis(_ name: String) -> SweepAxis { try! SweepAxis(name) }

@Suite struct SweepTests {
    @Test func gridExpandsEveryCombinationWithSeedsLast() throws {
        var base = FinetuneConfig()
        base.seed = 10
        let points = try sweepGrid(base: base, vary: [(axis("algo"), ["grpo", "grpo-guard"]), (axis("lr"), ["1e-4", "3e-4"])], seeds: 2)
        #expect(points.count == 8)
        #expect(points.map(\.name).prefix(3) == ["algo=grpo_lr=1e-4_seed=10", "algo=grpo_lr=1e-4_seed=11", "algo=grpo_lr=3e-4_seed=10"])
        #expect(points[2].config.lr == 3e-4 && points[2].config.algo == .grpo && points[2].config.seed == 10)
        #expect(points[7].config.algo == .grpoGuard && points[7].config.seed == 11)
        #expect(points[0].configurationKey == "algo=grpo, lr=1e-4" && points[1].configurationKey == points[0].configurationKey)
        let more = try sweepGrid(base: base, vary: [(axis("noise-level"), ["0.5"]), (axis("group-size"), ["4"]), (axis("acflow-alpha"), ["0.1"]), (axis("sde-window"), ["3"])], seeds: 1)
        #expect(more.count == 1 && more[0].config.sde.noiseLevel == 0.5 && more[0].config.groupSize == 4 && more[0].config.acflow.alpha == 0.1)
        #expect(more[0].config.sde.stochasticSteps == 3)
        let targets = try sweepGrid(base: base, vary: [(axis("acflow-target"), ["transition", "nft"])], seeds: 1)
        #expect(targets.map(\.config.acflow.target) == [.transition, .nft] && targets[1].name == "acflow-target=nft_seed=10")
    }

    @Test func badGridsAreErrorsNamingTheSetting() {
        let base = FinetuneConfig()
        func message(_ vary: [(SweepAxis, [String])], seeds: Int = 1) -> String {
            do { _ = try sweepGrid(base: base, vary: vary, seeds: seeds); return "" } catch { return "\(error)" }
        }
        #expect(message([(axis("lr"), ["fast"])]).contains("--vary lr: --lr 'fast': expected a number"))
        #expect(message([(axis("algo"), ["ppo"])]).contains("--algo 'ppo': expected one of grpo, grpo-guard, acflow"))
        #expect(message([(axis("lr"), ["1e-4"]), (axis("lr"), ["3e-4"])]).contains("--vary lr is given twice"))
        #expect(message([(axis("lr"), ["1e-4", "1e-4"])]).contains("needs distinct values"))
        #expect(message([(axis("group-size"), ["1"])]).contains("group-size=1") && message([(axis("group-size"), ["1"])]).contains("--group-size"))
        #expect(message([], seeds: 0).contains("--seeds must be at least 1"))
        #expect(message([(axis("sde-window"), ["11"])]).contains("--sde-window must be at most 10"))
        #expect(message([(axis("acflow-target"), ["best"])]).contains("'best': expected one of visited, fresh, transition, nft"))
        #expect(throws: InvalidOption.self) { try SweepAxis("seed") }         // --seeds gives the seeds
        #expect(throws: InvalidOption.self) { try SweepAxis("learning-rate") }
    }

    /// The gold metric where the proxy gain first reaches a value: linear between the two
    /// evaluations around it; the first crossing counts; a run that never reaches it has none.
    @Test func goldIsInterpolatedAtEqualProxyGain() throws {
        let t: [(gain: Double, gold: Double)] = [(0, 0), (0.1, -0.2), (0.3, -0.6), (0.2, -0.9), (0.5, -1.0)]
        #expect(abs(try #require(goldAtProxyGain(t, gain: 0.05)) - -0.1) < 1e-12)
        #expect(abs(try #require(goldAtProxyGain(t, gain: 0.2)) - -0.4) < 1e-12)       // first crossing, not the later 0.2
        let at04 = try #require(goldAtProxyGain(t, gain: 0.4)), want: Double = -0.9 - 0.2 / 3
        #expect(abs(at04 - want) < 1e-12)
        #expect(goldAtProxyGain(t, gain: 0.6) == nil)
        #expect(goldAtProxyGain([], gain: 0.1) == nil)
        #expect(goldAtProxyGain([(0.2, 1)], gain: 0.1) == 1)
    }

    /// The bootstrap interval of a mean: the same data give the same interval; it holds the
    /// mean, is empty for constant data, and narrows as the sample grows (1/sqrt(n)).
    @Test func bootstrapIntervalOfTheMean() throws {
        var rng = RNG(seed: 3)
        let small = (0..<8).map { _ in Double(rng.normal()) }, large = (0..<128).map { _ in Double(rng.normal()) }
        let a = try #require(bootstrapMeanInterval(small)), b = try #require(bootstrapMeanInterval(small))
        #expect(a.low == b.low && a.high == b.high)
        #expect(a.low < a.mean && a.mean < a.high)
        let wide = a.high - a.low, narrow = try #require(bootstrapMeanInterval(large)).high - bootstrapMeanInterval(large)!.low
        #expect(narrow < wide / 2)
        // ~ 2 x 1.96 / sqrt(128) = 0.35 for unit variance
        #expect(narrow > 0.25 && narrow < 0.45)
        let constant = try #require(bootstrapMeanInterval([2, 2, 2]))
        #expect(constant.low == 2 && constant.high == 2)
        #expect(bootstrapMeanInterval([]) == nil)
    }

    /// A sweep of 2 algorithms x 2 learning rates x 2 seeds on the tiny model: every run
    /// finishes with its own folder, the tables are written; the same command again skips them
    /// all; stopped by SIGTERM mid-way and run again, every run ends with each step once.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func sweepRunsResumesAndSkipsFinishedRuns() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let out = setup.dir.appendingPathComponent("sweep")
        func args(steps: Int) -> [String] {
            ["sweep", "--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
             "--reward", "brightness", "--steps", String(steps), "--prompts-per-iteration", "2", "--group-size", "4", "--sde-steps", "4",
             "--eval-every", "1", "--eval-per-prompt", "2", "--eval-steps", "4", "--checkpoint-every", "1",
             "--vary", "algo=grpo,grpo-guard", "--vary", "lr=1e-4,3e-3", "--seeds", "2", "--jobs", "2", "--threads", "2", "--out", out.path]
        }
        func run(_ a: [String], stopWhen: (() -> Bool)? = nil) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = cliBinary!
            p.arguments = a
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            if let stopWhen {
                let deadline = Date().addingTimeInterval(60)
                while p.isRunning && !stopWhen() && Date() < deadline { usleep(20_000) }
                if p.isRunning { kill(p.processIdentifier, SIGTERM) }
            }
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }
        let names = try sweepGrid(base: FinetuneConfig(), vary: [(axis("algo"), ["grpo", "grpo-guard"]), (axis("lr"), ["1e-4", "3e-3"])], seeds: 2).map(\.name)
        func steps(_ name: String) -> [Int] {
            ((try? metricLines(out.appendingPathComponent(name).appendingPathComponent("metrics.jsonl"))) ?? []).map { $0["step"] as! Int }
        }
        // stopped once the second run has logged an iteration
        let (stopped, text) = try run(args(steps: 6), stopWhen: { steps(names[1]).count >= 2 })
        #expect(stopped == 128 + SIGTERM, "\(text)")
        #expect(text.contains("run the same command again"))
        // run again: everything finishes, each step once
        let (status, again) = try run(args(steps: 6))
        #expect(status == 0, "\(again)")
        for n in names { #expect(steps(n) == Array(0...6), "\(n)") }
        let rows = try String(contentsOf: out.appendingPathComponent("sweep.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 8)
        let md = try String(contentsOf: out.appendingPathComponent("sweep.md"), encoding: .utf8)
        #expect(md.contains("| algo | lr | seed | proxy gain |") && md.contains("at equal proxy gain"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("frontier.png").path))
        // the gold against sqrt(KL): one fit per configuration (its two seeds pooled)
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("goodhart.png").path))
        let fits = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("goodhart.json"))) as? [[String: Any]])
        #expect(fits.count == 4 && fits.allSatisfy { ($0["runs"] as? Int) == 2 && ($0["form"] as? String) == "rl" }, "\(fits)")
        // and once more: nothing to do
        let (status3, third) = try run(args(steps: 6))
        #expect(status3 == 0 && third.contains("8 run(s) already finished, skipped"), "\(third)")
    }

    /// A sweep on a model trained on a folder of images (the bad-input fixtures' one): its
    /// captions are the prompts, the gold is the Frechet distance to the held-out images, and
    /// the tables have no checker column.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func sweepOnAFolderModel() throws {
        let fixtures = BadInputFixtures.shared
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ft-folder-sweep-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let p = Process()
        p.executableURL = cliBinary!
        p.arguments = ["sweep", "--model", fixtures.dir.appendingPathComponent("folder-model.safetensors").path, "--reward", "saturation,brightness=0",
                       "--steps", "2", "--prompts-per-iteration", "1", "--group-size", "4", "--sde-steps", "4", "--eval-every", "1",
                       "--eval-per-prompt", "2", "--eval-steps", "4", "--vary", "lr=1e-4,3e-3", "--seeds", "1", "--jobs", "1",
                       "--threads", "1", "--no-tensorboard", "--out", out.path]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        let md = try String(contentsOf: out.appendingPathComponent("sweep.md"), encoding: .utf8)
        #expect(md.contains("frechet distance change") && md.contains("brightness change") && !md.contains("shape-eval"), "\(md)")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("lr=1e-4_seed=0/config.json"))) as! [String: Any]
        #expect(config["prompts"] as? String == "data:train" && config["eval-prompts"] as? String == "data:held-out")
    }

    /// `compare --seeds 2`: two runs per algorithm (ALGO-seedN folders), and a row per algorithm
    /// with each number's mean, 95% bootstrap interval and the seeds' values.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func compareWithSeedsReportsMeansAndIntervals() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let out = setup.dir.appendingPathComponent("cmp")
        let p = Process()
        p.executableURL = cliBinary!
        p.arguments = ["compare", "--algos", "grpo,grpo-guard", "--seeds", "2", "--model", setup.model.path, "--prompts", setup.prompts.path,
                       "--eval-prompts", setup.evalPrompts.path, "--reward", "brightness", "--steps", "2", "--prompts-per-iteration", "2",
                       "--group-size", "4", "--sde-steps", "4", "--eval-every", "1", "--eval-per-prompt", "2", "--eval-steps", "4",
                       "--threads", "1", "--no-tensorboard", "--out", out.path]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        for name in ["grpo-seed0", "grpo-seed1", "grpo-guard-seed0", "grpo-guard-seed1"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).appendingPathComponent("metrics.jsonl").path), "\(name)")
        }
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("compare.json"))) as? [[String: Any]])
        #expect(rows.map { $0["algo"] as? String } == ["grpo", "grpo-guard"])
        for row in rows {
            let gain = try #require(row["proxy_gain"] as? [String: Any])
            let values = try #require(gain["values"] as? [Double])
            let mean = try #require(gain["mean"] as? Double), low = try #require(gain["low"] as? Double), high = try #require(gain["high"] as? Double)
            #expect(values.count == 2 && abs(mean - (values[0] + values[1]) / 2) < 1e-5)
            #expect(low <= mean + 1e-9 && mean <= high + 1e-9 && low >= values.min()! - 1e-9 && high <= values.max()! + 1e-9)
        }
        #expect(try String(contentsOf: out.appendingPathComponent("compare.md"), encoding: .utf8).contains("95% bootstrap interval"))
    }
}
