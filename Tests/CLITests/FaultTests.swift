import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Training

@Suite struct FaultTests {
    /// Runs the CLI; kills it with SIGKILL after `killAfter` seconds if given. Returns the exit
    /// status (nil if it was killed).
    static func run(_ args: [String], killAfter: Double? = nil) throws -> Int32? {
        let p = Process()
        p.executableURL = cliBinary!
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        if let killAfter {
            let deadline = Date().addingTimeInterval(killAfter)
            while p.isRunning && Date() < deadline { usleep(5_000) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                return nil
            }
        }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// metrics.jsonl without the timings and the peak memory (which differ from run to run).
    static func metricsWithoutTimings(_ url: URL) throws -> [MetricsRecord] {
        try RunMetrics(url: url).lines.map { l in
            var r = l
            r.seconds = nil; r.rolloutSeconds = nil; r.rewardSeconds = nil; r.trainSeconds = nil; r.peakRSSMB = nil
            return r
        }
    }

    /// `finetune` killed with SIGKILL at 10 moments (a fixed seed picks them) and resumed each
    /// time ends with the same metrics.jsonl and the same policy as an uninterrupted run.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func killedAtRandomMomentsAndResumedEqualsAnUninterruptedRun() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let common = ["--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
                      "--algo", "grpo", "--reward", "brightness", "--steps", "10", "--prompts-per-iteration", "2",
                      "--group-size", "4", "--sde-steps", "4", "--seed", "7", "--eval-every", "4", "--checkpoint-every", "2",
                      "--eval-per-prompt", "2", "--eval-steps", "4", "--threads", "1"]
        let reference = setup.dir.appendingPathComponent("reference")
        let start = Date()
        #expect(try Self.run(["finetune"] + common + ["--out", reference.path]) == 0)
        let duration = Date().timeIntervalSince(start)

        let dir = setup.dir.appendingPathComponent("killed")
        var rng = RNG(seed: 99)
        var kills = 0, finished = false
        for _ in 0..<40 where !finished {
            let resume = FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path)
            let args = resume ? ["finetune", "--resume", dir.path] : ["finetune"] + common + ["--out", dir.path]
            let killAfter: Double? = kills < 10 ? Double(rng.uniform(0.05, Float(max(duration / 6, 0.3)))) : nil
            let status = try Self.run(args, killAfter: killAfter)
            if status == nil { kills += 1; continue }
            #expect(status == 0)
            finished = true
        }
        #expect(finished && kills >= 5, "\(kills) kills")   // up to 10; a resumed run may finish before its kill time
        #expect(try Self.metricsWithoutTimings(dir.appendingPathComponent("metrics.jsonl"))
                == Self.metricsWithoutTimings(reference.appendingPathComponent("metrics.jsonl")))
        let a = try Checkpoint.load(dir.appendingPathComponent("checkpoints/policy.safetensors"))
        let b = try Checkpoint.load(reference.appendingPathComponent("checkpoints/policy.safetensors"))
        #expect(a.params.array == b.params.array)
    }

    /// A scratch folder for a pretraining run and a one-prompt exclusion list inside it.
    static func pretrainingFolder(_ prefix: String) throws -> (dir: URL, excluded: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let excluded = dir.appendingPathComponent("none.txt")
        try "a red circle on a blue background\n".write(to: excluded, atomically: true, encoding: .utf8)
        return (dir, excluded)
    }

    /// `pretrain` killed with SIGKILL at 8 moments and resumed each time ends with the same
    /// model, state and log (timings aside) as an uninterrupted run: a kill between the state
    /// and the model file, or in a log append, loses nothing.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func pretrainingKilledAndResumedEqualsAnUninterruptedRun() throws {
        let (dir, excluded) = try Self.pretrainingFolder("ft-ptkill")
        defer { try? FileManager.default.removeItem(at: dir) }
        func args(_ out: URL) -> [String] {
            ["pretrain", "--config", "tiny", "--steps", "40", "--batch", "4", "--warmup", "5", "--seed", "3", "--checkpoint-every", "3",
             "--log-every", "1", "--exclude", excluded.path, "--threads", "1", "--out", out.path]
        }
        let reference = dir.appendingPathComponent("reference.safetensors")
        let start = Date()
        #expect(try Self.run(args(reference)) == 0)
        let duration = Date().timeIntervalSince(start)

        let killed = dir.appendingPathComponent("killed.safetensors")
        var rng = RNG(seed: 5)
        var kills = 0, finished = false
        for _ in 0..<30 where !finished {
            let resume = FileManager.default.fileExists(atPath: killed.path)
            // windows of an eighth of the reference's time: under a loaded CI machine the reference can
            // take longer than the resumed runs, and wider windows let too many finish unkilled
            let killAfter: Double? = kills < 8 ? Double(rng.uniform(0.05, Float(max(duration / 8, 0.2)))) : nil
            let status = try Self.run(args(killed) + (resume ? ["--resume"] : []), killAfter: killAfter)
            if status == nil {
                kills += 1
                // killed before the first checkpoint: no model yet, but maybe a log of the first steps
                if !FileManager.default.fileExists(atPath: killed.path) {
                    try? FileManager.default.removeItem(at: dir.appendingPathComponent("killed.pretrain.jsonl"))
                }
                continue
            }
            #expect(status == 0)
            finished = true
        }
        #expect(finished && kills >= 4, "\(kills) kills")
        func log(_ url: URL) throws -> [String] {
            try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { $0.replacingOccurrences(of: #", "steps_per_s": [0-9.]+"#, with: "", options: .regularExpression) }
        }
        #expect(try log(dir.appendingPathComponent("killed.pretrain.jsonl")) == log(dir.appendingPathComponent("reference.pretrain.jsonl")))
        #expect(try Checkpoint.load(killed).params.array == Checkpoint.load(reference).params.array)
        let a = try SafeTensorsFile(contentsOf: Pretrainer.statePath(killed)), b = try SafeTensorsFile(contentsOf: Pretrainer.statePath(reference))
        #expect(a.tensors.keys.sorted() == b.tensors.keys.sorted())
        for (name, t) in a.tensors { #expect(t.values == b.tensors[name]?.values, "\(name)") }
    }

    /// A kill between the last save's two writes leaves the state at the last step and the model
    /// file one checkpoint behind; resuming the finished run then rewrites the model file from
    /// the state (nothing is left to train, so the loop alone would never save).
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func resumingAFinishedRunRepairsAModelFileBehindItsState() throws {
        let (dir, excluded) = try Self.pretrainingFolder("ft-ptfin")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m.safetensors"), older = dir.appendingPathComponent("older.safetensors")
        func args(_ steps: Int) -> [String] {
            ["pretrain", "--config", "tiny", "--steps", "\(steps)", "--batch", "2", "--warmup", "1", "--seed", "3", "--checkpoint-every", "2",
             "--exclude", excluded.path, "--threads", "1", "--out", out.path]
        }
        #expect(try Self.run(args(2)) == 0)
        try FileManager.default.copyItem(at: out, to: older)
        #expect(try Self.run(args(4) + ["--resume"]) == 0)
        let final = try Data(contentsOf: out)
        try FileManager.default.removeItem(at: out)
        try FileManager.default.copyItem(at: older, to: out)          // the model file of step 2, the state of step 4
        #expect(try Data(contentsOf: out) != final)
        #expect(try Self.run(args(4) + ["--resume"]) == 0)
        #expect(try Data(contentsOf: out) == final)
    }

    /// While a run trains, a second process on the same output (a --resume typed in another
    /// terminal) is refused with a clear error and leaves the first run's files alone; the
    /// first run goes on and ends normally. Both commands: pretrain (a lock beside the model
    /// file) and finetune (a lock in the run folder).
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func aSecondWriterOfARunningRunIsRefused() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let model = setup.dir.appendingPathComponent("pt.safetensors")
        let pretrain = ["pretrain", "--config", "tiny", "--steps", "100000", "--batch", "2", "--checkpoint-every", "1", "--log-every", "1",
                        "--exclude", setup.evalPrompts.path, "--threads", "1", "--out", model.path]
        let run = setup.dir.appendingPathComponent("run")
        let finetune = ["finetune", "--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
                        "--reward", "brightness", "--steps", "100000", "--prompts-per-iteration", "2", "--group-size", "2", "--sde-steps", "2",
                        "--eval-every", "0", "--checkpoint-every", "1", "--threads", "1", "--out", run.path]
        for (first, written, second) in [(pretrain, model, pretrain + ["--resume"]), (finetune, run.appendingPathComponent("checkpoints/policy.safetensors"), ["finetune", "--resume", run.path])] {
            let p = Process()
            p.executableURL = cliBinary!
            p.arguments = first
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning && Date() < deadline && !FileManager.default.fileExists(atPath: written.path) { usleep(10_000) }
            #expect(p.isRunning, "\(first[0]) ended early")
            let (status, stderr) = try BadInputTests.run(cliBinary!, second, in: setup.dir)
            #expect(status == 1)
            #expect(stderr.contains("is being written by another flowtune process"), "\(stderr)")
            kill(p.processIdentifier, SIGTERM)      // the first stops at a checkpoint, as always
            p.waitUntilExit()
            #expect(p.terminationReason == .exit && p.terminationStatus == 128 + SIGTERM)
        }
    }

    /// The processes whose command line starts with `marker`, from /proc.
    static func processes(startingWith marker: String) -> [String] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return ids.compactMap { id in
            guard let data = FileManager.default.contents(atPath: "/proc/\(id)/cmdline"), !data.isEmpty else { return nil }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmd.hasPrefix(marker) ? "\(id): \(cmd)" : nil
        }
    }

    /// SIGTERM to `finetune` while an external scorer (which started a sleeping grandchild)
    /// scores: the step finishes, a checkpoint is written, the exit status is 143, and no process
    /// of the scorer is left. Two SIGINTs in a row end flowtune at once, and again the scorer's
    /// processes are gone.
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"),
          arguments: [[SIGTERM], [SIGINT, SIGINT]])
    func signalsStopTheScorerAndEveryProcessItStarted(_ signals: [Int32]) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let marker = "\(5_000_000 + Int.random(in: 0..<999_999))"
        let scorer = "external:sleep \(marker) & while read -r line; do sleep 0.01; echo 0.5; done"
        let dir = setup.dir.appendingPathComponent("run")
        let p = Process()
        p.executableURL = cliBinary!
        p.arguments = ["finetune", "--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
                       "--algo", "grpo", "--reward", scorer, "--steps", "1000", "--prompts-per-iteration", "2", "--group-size", "4",
                       "--sde-steps", "4", "--eval-every", "0", "--checkpoint-every", "1000", "--threads", "1", "--out", dir.path]
        let errURL = setup.dir.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // wait for the scorer (and its grandchild) and a couple of iterations
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && (Self.processes(startingWith: "sleep \(marker)").isEmpty
                                    || ((try? String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3) {
            usleep(20_000)
        }
        #expect(!Self.processes(startingWith: "sleep \(marker)").isEmpty, "the scorer never started")
        for s in signals { kill(p.processIdentifier, s); usleep(30_000) }
        p.waitUntilExit()
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        if signals == [SIGTERM] {
            #expect(p.terminationReason == .exit && p.terminationStatus == 143, "\(stderr)")
            #expect(stderr.contains("checkpoint written") && stderr.contains("--resume"))
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("checkpoints/state.safetensors").path))
        } else {
            // the second SIGINT: at once, by the signal (or 130 if the first had already finished the step)
            #expect((p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGINT) || p.terminationStatus == 130, "\(stderr)")
        }
        var left = Self.processes(startingWith: "sleep \(marker)")
        for _ in 0..<100 where !left.isEmpty { usleep(20_000); left = Self.processes(startingWith: "sleep \(marker)") }
        #expect(left.isEmpty, "left: \(left)")
    }
}

