import Testing
import Foundation
import Model
import Tensor
import Training
import TestSupport

/// `evaluate --against`: two models drawn from the same prompts and noise, compared pair by pair.
@Suite struct EvaluateCommandTests {
    func evaluate(_ args: [String], json: Bool = true) throws -> (Int32, String, String) {
        try run(["evaluate", "--per-prompt", "3", "--steps", "2", "--cfg", "1", "--threads", "1"] + (json ? ["--json"] : []) + args)
    }

    /// `flowtune args`: the exit status, stdout and stderr.
    func run(_ args: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = cliBinary!
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, o, e)
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The tiny setup and a second, different tiny model beside it (for --against).
    func setupWithAnotherModel() throws -> (TinySetup, URL) {
        let setup = try TinySetup()
        let other = setup.dir.appendingPathComponent("other.safetensors")
        try Checkpoint.save(try randomTinyModel(seed: 6, scale: 0.05), to: other)
        return (setup, other)
    }

    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func againstItselfChangesNothingAndAgainstAnotherGivesThePairedDifference() throws {
        let (setup, other) = try setupWithAnotherModel()
        defer { setup.cleanUp() }
        let common = ["--model", setup.model.path, "--prompts", setup.prompts.path]

        // the same model: the same images, so every change is exactly zero
        let (s1, o1, e1) = try evaluate(common + ["--against", setup.model.path])
        #expect(s1 == 0, "\(e1)")
        let same = try object(o1)
        let change = try #require(same["change"] as? [String: Any])
        let overall = try #require(change["overall"] as? [String: Double])
        #expect(overall["mean"] == 0 && overall["low"] == 0 && overall["high"] == 0)
        #expect((same["against"] as? [String: Any])?["overall"] as? Double == same["overall"] as? Double)

        // another model: its figures are what evaluate alone prints for it, and the change is
        // the difference of the two means, inside its interval
        let (s2, o2, e2) = try evaluate(common + ["--against", other.path])
        #expect(s2 == 0, "\(e2)")
        let (s3, o3, _) = try evaluate(["--model", other.path, "--prompts", setup.prompts.path])
        #expect(s3 == 0)
        let pair = try object(o2), alone = try object(o3)
        let against = try #require(pair["against"] as? [String: Any])
        #expect(against["overall"] as? Double == alone["overall"] as? Double)
        #expect(against["fd"] as? Double == alone["fd"] as? Double)
        let main = try #require(pair["overall"] as? Double), base = try #require(alone["overall"] as? Double)
        let d = try #require((pair["change"] as? [String: Any])?["overall"] as? [String: Double])
        #expect(abs(d["mean"]! - (main - base)) < 1e-5)
        #expect(d["low"]! <= d["mean"]! && d["mean"]! <= d["high"]!)
        print("evaluate --against: \(main) vs \(base), change \(d)")
    }

    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func againstAMissingModelIsAOneLineError() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let missing = setup.dir.appendingPathComponent("missing.safetensors").path
        let (status, out, err) = try evaluate(["--model", setup.model.path, "--prompts", setup.prompts.path, "--against", missing])
        #expect(status != 0 && out.isEmpty)
        #expect(err.contains("missing.safetensors") && err.split(separator: "\n").count == 1, "\(err)")
    }

    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func bothCheckersScoreTheSameImagesAndStrictChoosesTheHeadline() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let common = ["--model", setup.model.path, "--prompts", setup.prompts.path, "--details"]
        let (s1, o1, e1) = try evaluate(common)
        let (s2, o2, e2) = try evaluate(common + ["--strict"])
        #expect(s1 == 0 && s2 == 0, "\(e1)\(e2)")
        let lenient = try object(o1), strict = try object(o2)
        #expect(lenient["checker"] as? String == "shape-eval" && strict["checker"] as? String == "shape-eval-strict")
        // each run prints the other checker's scores of the same images: the other run's headline
        let otherOfLenient = try #require(lenient["other_checker"] as? [String: Any])
        let otherOfStrict = try #require(strict["other_checker"] as? [String: Any])
        #expect(otherOfLenient["checker"] as? String == "shape-eval-strict" && otherOfStrict["checker"] as? String == "shape-eval")
        #expect(otherOfLenient["overall"] as? Double == strict["overall"] as? Double)
        #expect(otherOfStrict["overall"] as? Double == lenient["overall"] as? Double)
        #expect(otherOfLenient["by_task"] as? [String: Double] == strict["by_task"] as? [String: Double])
        // --details lists the strict checker's requirements either way: the lenient one's and "extra"
        let rows = { (text: String) in Set(text.split(separator: "\n").filter { $0.contains(" / ") }) }
        #expect(rows(e1) == rows(e2) && rows(e1).contains { $0.contains("/ extra") } && rows(e1).contains { !$0.contains("/ extra") }, "\(e1)")
    }

    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func againstGivesTheOtherCheckersChangeToo() throws {
        let (setup, other) = try setupWithAnotherModel()
        defer { setup.cleanUp() }
        let common = ["--model", setup.model.path, "--prompts", setup.prompts.path, "--against", other.path]
        let (s1, o1, e1) = try evaluate(common)
        let (s2, o2, e2) = try evaluate(common + ["--strict"])
        #expect(s1 == 0 && s2 == 0, "\(e1)\(e2)")
        let lenient = try object(o1), strict = try object(o2)
        // the lenient run's change by the strict checker is the strict run's change, and the reverse
        let change = { (o: [String: Any]) in o["change"] as? [String: Any] }
        let overall = { (c: [String: Any]?) in c?["overall"] as? [String: Double] }
        #expect(overall(change(lenient)?["other_checker"] as? [String: Any]) == overall(change(strict)))
        #expect(overall(change(strict)?["other_checker"] as? [String: Any]) == overall(change(lenient)))
        #expect(overall(change(lenient)) != nil)
    }

    /// A fine-tuned policy says where it came from: `evaluate` prints the algorithm, the
    /// iterations, the base model and the reward, and the base's caption noise (table and JSON).
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func aPolicySaysWhatItWasFineTunedFrom() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        // the base model as a caption-noise model: the same weights with the noise in its metadata
        let noisy = try SafeTensorsFile(contentsOf: setup.model)
        try Checkpoint.save(try Checkpoint.load(noisy, source: setup.model.path), to: setup.model, extra: [Checkpoint.captionNoiseKey: "count=0.3"])
        var c = setup.config(.grpoGuard, steps: 2)
        c.reward = "brightness,shape-eval=0"; c.checkpointEvery = 2
        let runDir = setup.dir.appendingPathComponent("run")
        let finetuner = try Finetuner(config: c, runDir: runDir)
        while finetuner.iteration < c.steps { _ = try finetuner.step() }
        try finetuner.save()
        let policy = runDir.appendingPathComponent("checkpoints/policy.safetensors").path

        let (s1, o1, e1) = try evaluate(["--model", policy, "--prompts", setup.prompts.path, "--against", setup.model.path])
        #expect(s1 == 0, "\(e1)")
        let finetuned = try #require(try object(o1)["finetuned"] as? [String: String])
        #expect(finetuned == ["algo": "grpo-guard", "iteration": "2", "from": setup.model.path, "reward": "brightness,shape-eval=0", "base_caption_noise": "count=0.3"])
        // the base model: its caption noise, and nothing fine-tuned
        let against = try #require(try object(o1)["against"] as? [String: Any])
        #expect(against["caption_noise"] as? String == "count=0.3" && against["finetuned"] == nil)
        let (s2, text, _) = try evaluate(["--model", policy, "--prompts", setup.prompts.path], json: false)
        #expect(s2 == 0)
        #expect(text.contains("\(policy): fine-tuned by grpo-guard for 2 iterations from \(setup.model.path), reward brightness,shape-eval=0; the base pretrained with caption noise count=0.3"), "\(text)")
        // sample says it too (on stderr: its output is the grid)
        let grid = setup.dir.appendingPathComponent("grid.png").path
        let (s3, _, e3) = try run(["sample", "--model", policy, "--prompts", setup.prompts.path, "--per-prompt", "1", "--steps", "2", "--threads", "1", "--out", grid])
        #expect(s3 == 0 && e3.contains("\(policy): fine-tuned by grpo-guard for 2 iterations from \(setup.model.path)"), "\(e3)")
        #expect(FileManager.default.fileExists(atPath: grid))
    }

    /// A policy fine-tuned from a model trained on a folder says so too (table and JSON).
    @Test(.enabled(if: cliBinary != nil, "the flowtune binary is not built beside the tests (swift build --build-tests builds it)"))
    func aFolderPolicySaysWhatItWasFineTunedFrom() throws {
        let fm = try FolderModel()
        defer { fm.remove() }
        let finetuner = try Finetuner(config: fm.finetuneConfig(steps: 2), runDir: fm.dir.appendingPathComponent("run"))
        while finetuner.iteration < 2 { _ = try finetuner.step() }
        try finetuner.save()
        let policy = finetuner.policyURL.path
        let (s1, o1, e1) = try evaluate(["--model", policy])
        #expect(s1 == 0, "\(e1)")
        let finetuned = try #require(try object(o1)["finetuned"] as? [String: String])
        #expect(finetuned == ["algo": "grpo-guard", "iteration": "2", "from": fm.model.path, "reward": "saturation"])
        #expect(try object(o1)["fd"] is Double)
        let (s2, text, _) = try evaluate(["--model", policy], json: false)
        #expect(s2 == 0 && text.contains("\(policy): fine-tuned by grpo-guard for 2 iterations from \(fm.model.path), reward saturation"), "\(text)")
    }
}
