import Testing
import Foundation
import Tensor
import Analysis
import Training
import TestSupport

/// `sweep` and `compare` as a user runs them: the real command-line tool on the tiny model.
@Suite struct SweepCommandTests {
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
        let names = try sweepGrid(base: FinetuneConfig(), vary: [(try SweepAxis("algo"), ["grpo", "grpo-guard"]), (try SweepAxis("lr"), ["1e-4", "3e-3"])], seeds: 2).map(\.name)
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

    /// `compare --seeds 2`: two runs per algorithm (algo=ALGO_seed=N folders), and a row per algorithm
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
        for name in ["algo=grpo_seed=0", "algo=grpo_seed=1", "algo=grpo-guard_seed=0", "algo=grpo-guard_seed=1"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).appendingPathComponent("metrics.jsonl").path), "\(name)")
        }
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("compare.json"))) as? [[String: Any]])
        #expect(rows.map { $0["configuration"] as? String } == ["algo=grpo", "algo=grpo-guard"])
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
