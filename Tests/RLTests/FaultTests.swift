import Testing
import Foundation
import Tensor
import Model
import Training

/// The real command-line tool, built beside this test bundle by `swift build --build-tests`.
let cliBinary: URL? = {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = url.deletingLastPathComponent()
    // the test runner is .build/<config>/flowtunePackageTests.xctest (a file on Linux)
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("flowtune")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return nil
}()

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

    /// metrics.jsonl without the timings (which differ from run to run).
    static func metricsWithoutTimings(_ url: URL) throws -> [MetricsRecord] {
        try RunMetrics(url: url).lines.map { l in
            var r = l
            r.seconds = nil; r.rolloutSeconds = nil; r.rewardSeconds = nil; r.trainSeconds = nil
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
}
