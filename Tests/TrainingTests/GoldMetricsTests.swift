import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Shapes
import Training

@Suite struct GoldMetricsTests {

    @Test func evaluationOfTheBaseModelItself() throws {
        let setup = try TinySetupForGold()
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let run = try Finetuner(config: setup.config, runDir: setup.dir.appendingPathComponent("run"))
        try run.evaluateBase()
        let m = try RunMetrics(url: run.metricsURL)
        #expect(m.lines.count == 1 && m.lines[0].step == 0 && m.lines[0].rewardMean == nil)
        let e = try #require(m.lines[0].eval)
        #expect(e.w2 == 0)          // the policy is the base model at step 0
        #expect(e.klBase == 0)      // and its path measure is the base model's
        for (key, v) in e.scalars { #expect(v.isFinite, "\(key)") }
        #expect(Set(e.scores.keys) == ["brightness", "jpeg-compressibility"])
        // a standard error for every gold scalar: the per-image spread over sqrt(n) (shape-eval
        // scores each image 0...1, so its error is at most 0.5 / sqrt(n - 1)); the FD's floor is
        // positive (two finite renderings differ) and its own error finite
        let se = e.se
        for (key, _) in e.scalars { #expect(se[key].map { $0.isFinite && $0 >= 0 } == true, "\(key)") }
        let n = Double(run.evalPrompts.count * setup.config.evalPerPrompt)
        #expect(se["shape_eval"]! <= 0.5 / (n - 1).squareRoot() + 1e-9)
        #expect(se["w2"] == 0)      // every image's W2 is 0 at step 0
        #expect(try #require(e.fdFloor) > 0)
        // the 21-value Frechet distance: its own floor, smaller than the 57-value one's (the bias
        // of a covariance estimated from 2 x 6 samples shrinks with the dimension)
        #expect(try #require(e.fd21Floor) > 0 && e.fd21Floor! < e.fdFloor!)
        #expect(try #require(e.fd21) >= 0)
        let grid = try RGBImage(pngData: [UInt8](Data(contentsOf: setup.dir.appendingPathComponent("run/grids/step-00000.png"))))
        #expect(grid.width > 16 * 3 * 2)
        // the same noise at every evaluation: evaluating again gives identical numbers
        let first = try #require(try run.evaluate()), again = try run.evaluate()
        #expect(first == again)
        #expect(abs(first.proxy - e.proxy) <= 1e-5 * max(1, abs(e.proxy)))   // the file keeps 6 digits
        // a policy moved off the base model: a positive KL, with its standard error
        for i in 0..<run.state.policy.params.count { run.state.policy.params[i] *= 1.05 }
        let moved = try #require(try run.evaluate())
        #expect(try #require(moved.klBase) > 0 && moved.se["kl_base"].map { $0 > 0 } == true)
    }

    /// The change since step 0 is paired: its standard error is that of the per-image
    /// differences, the same whether the step-0 evaluation was made in this process or, in a
    /// resumed one, the base model's images are drawn again for it.
    @Test func changeSinceTheStartIsPairedOverImages() throws {
        let setup = try TinySetupForGold()
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let run = try Finetuner(config: setup.config, runDir: setup.dir.appendingPathComponent("run"))
        let start = try #require(try run.gold.evaluate(policy: run.state.policy, reward: run.reward, step: 0, grid: "g0.png"))
        #expect(start.record.changeSE.isEmpty)
        for i in 0..<run.state.policy.params.count { run.state.policy.params[i] *= 1.05 }
        let moved = try #require(try run.gold.evaluate(policy: run.state.policy, reward: run.reward, step: 10, grid: "g10.png"))
        let differences = zip(moved.proxy, start.proxy).map { Double($0) - Double($1) }
        #expect(differences.contains { $0 != 0 })
        let paired = try #require(moved.record.changeSE["proxy"])
        #expect(abs(paired - standardError(differences)) <= 1e-9)
        // the same images scored against themselves would give 0; independent draws would give
        // sqrt(se0^2 + se1^2): the paired error differs from that
        let independent = (pow(start.record.se["proxy"]!, 2) + pow(moved.record.se["proxy"]!, 2)).squareRoot()
        #expect(abs(paired - independent) > 1e-6)
        for id in ["scores/brightness", "scores/jpeg-compressibility", "shape_eval"] { #expect(moved.record.changeSE[id] != nil, "\(id)") }
        // a resumed process: its first evaluation is at step 10, its start the base model's images
        let resumed = try Finetuner(config: setup.config, runDir: setup.dir.appendingPathComponent("resumed"))
        for i in 0..<run.state.policy.params.count { resumed.state.policy.params[i] = run.state.policy.params[i] }
        let again = try #require(try resumed.gold.evaluate(policy: resumed.state.policy, reward: resumed.reward, step: 10, grid: "g10.png"))
        for (id, v) in moved.record.changeSE { #expect(abs((again.record.changeSE[id] ?? .nan) - v) <= 1e-6, "\(id)") }
        // metrics.jsonl keeps them
        let read = try EvalRecord(json: moved.record.json())
        for (id, v) in moved.record.changeSE { #expect(abs((read.changeSE[id] ?? .nan) - v) <= 1e-6 * max(1, v), "\(id)") }
    }

    /// The requirement pass rates take the image as the unit: one value per image, its rate over
    /// its items of the kind (the two objects of a two-object image are one draw, not two), whose
    /// mean is the strict checker's tally over the items. Known images: renderings of the asked
    /// prompt, and of prompts with one or both objects, or the count, wrong.
    @Test func requirementPassRatesArePerImage() throws {
        let two = try PromptSpec(parsing: "a blue circle and a red square on a black background")
        let three = try PromptSpec(parsing: "three green squares on a gray background")
        let drawn = ["a blue circle and a red square on a black background", "a blue circle and a green triangle on a black background",
                     "a green triangle and a yellow circle on a black background", "three green squares on a gray background",
                     "two green squares on a gray background"]
        var rng = RNG(seed: 7)
        let images = try drawn.map { Renderer(size: 32).render(try PromptSpec(parsing: $0), rng: &rng) }
        let specs = [two, two, two, three, three]
        let rates = GoldMetrics.requirementPassRates(images, specs: specs, size: 32)
        #expect(rates["two_objects/object"] == [1, 0.5, 0])
        #expect(rates["two_objects/extra"] == [1, 0, 0])
        #expect(rates["two_objects/background"] == [1, 1, 1])
        #expect(rates["counting/count"] == [1, 0])
        #expect(rates["counting/object"] == [1, 1])
        let tally = CheckerTally(checker: Checker(size: 32, strict: true), specs: specs, images: images.map { [$0] })
        for (key, values) in rates {
            #expect(abs(values.reduce(0, +) / Double(values.count) - tally.passRate(key.replacingOccurrences(of: "/", with: " / "))!) <= 1e-12, "\(key)")
        }
    }

    /// Each kind of requirement's pass rate per task type is the strict checker's on the eval
    /// images (what `evaluate --details` tallies), its change since step 0 paired like the
    /// scores', and metrics.jsonl keeps them.
    @Test func requirementPassRatesAreTheStrictCheckersOnTheEvalImages() throws {
        let setup = try TinySetupForGold()
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let run = try Finetuner(config: setup.config, runDir: setup.dir.appendingPathComponent("run"))
        let start = try #require(try run.gold.evaluate(policy: run.state.policy, reward: run.reward, step: 0, grid: "g0.png"))
        let perPrompt = setup.config.evalPerPrompt
        let specs = run.evalPrompts.map { $0.spec! }
        let grouped = specs.indices.map { i in Array(start.images[i * perPrompt ..< (i + 1) * perPrompt]) }
        let tally = CheckerTally(checker: Checker(size: run.state.policy.config.imageSize, strict: true), specs: specs, images: grouped)
        let rates = start.record.shapeEvalByRequirement
        #expect(Set(rates.keys) == Set(tally.requirements.keys.map { $0.replacingOccurrences(of: " / ", with: "/") }))
        #expect(rates.keys.contains { $0.hasSuffix("/extra") } && rates.keys.contains { $0.hasSuffix("/background") })
        for (key, rate) in rates { #expect(abs(rate - tally.passRate(key.replacingOccurrences(of: "/", with: " / "))!) <= 1e-12, "\(key)") }
        // they are gold breakdowns: tables list them, the drift analysis does not track them
        let metric = GoldMetric.requirement(rates.keys.sorted()[0])
        #expect(start.record.metrics.contains(metric) && metric.isBreakdown && metric.isRequirement && start.record.value(metric) == rates[rates.keys.sorted()[0]])
        for i in 0..<run.state.policy.params.count { run.state.policy.params[i] *= 1.05 }
        let moved = try #require(try run.gold.evaluate(policy: run.state.policy, reward: run.reward, step: 10, grid: "g10.png"))
        for key in rates.keys { #expect(moved.record.changeSE[GoldMetric.requirement(key).id] != nil, "\(key)") }
        let read = try EvalRecord(json: moved.record.json())
        for (key, rate) in moved.record.shapeEvalByRequirement { #expect(abs((read.shapeEvalByRequirement[key] ?? .nan) - rate) <= 1e-6, "\(key)") }
    }
}

struct TinySetupForGold {
    let dir: URL
    var config = FinetuneConfig()
    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-gold-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 1)
        var rng = RNG(seed: 2)
        for i in 0..<m.params.count { m.params[i] = rng.normal() * 0.05 }
        try Checkpoint.save(m, to: dir.appendingPathComponent("m.safetensors"))
        try "a red circle on a blue background\nthree green squares on a gray background\n".write(to: dir.appendingPathComponent("p.txt"), atomically: true, encoding: .utf8)
        config.model = dir.appendingPathComponent("m.safetensors").path
        config.prompts = dir.appendingPathComponent("p.txt").path
        config.evalPrompts = config.prompts
        config.reward = "brightness=1,jpeg-compressibility=0"
        config.evalPerPrompt = 3; config.evalSteps = 3; config.steps = 2; config.sde.steps = 3
    }
}
