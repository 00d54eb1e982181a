import Testing
import Foundation
import Tensor
import Imaging
import Model
import Shapes
import Training

@Suite struct GoldMetricsTests {
    @Test func jacobiEigenOfAKnownMatrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3
        let (w, v) = jacobiEigen([2, 1, 1, 2], 2)
        #expect(Set(w.map { ($0 * 1e6).rounded() / 1e6 }) == [1, 3])
        // A v = w v for each column
        for k in 0..<2 {
            let x = v[0 * 2 + k], y = v[1 * 2 + k]
            #expect(abs(2 * x + y - w[k] * x) < 1e-9 && abs(x + 2 * y - w[k] * y) < 1e-9)
        }
    }

    @Test func frechetDistanceOfGaussians() {
        var rng = RNG(seed: 1)
        let a = (0..<400).map { _ in (0..<3).map { _ in Double(rng.normal()) } }
        let b = (0..<400).map { _ in (0..<3).map { _ in Double(rng.normal()) } }
        let shifted = b.map { $0.map { $0 + 2 } }
        let scaled = b.map { $0.map { $0 * 3 } }
        #expect(frechetDistance(a, a) < 1e-6)
        #expect(frechetDistance(a, b) < 0.2)
        // mean shift of 2 in 3 dims: ||dmu||^2 = 12; scale 3: 3 * (1 + 9 - 2*3) = 12
        #expect(abs(frechetDistance(a, shifted) - 12) < 1.5)
        #expect(abs(frechetDistance(a, scaled) - 12) < 2.0)
    }

    /// The compact features: the 2x2 pooled image is the mean of the 4x4 cells it covers, then
    /// the 9 contrast and edge values unchanged.
    @Test func compactFeaturesPoolTheCells() {
        let f = (0..<57).map(Double.init)
        let c = ImageFeatures.compact(f)
        #expect(c.count == ImageFeatures.compactDimension)
        // block (0, 0), channel 1: cells (0,0), (0,1), (1,0), (1,1) -> indices 1, 4, 13, 16
        #expect(c[1] == Double(1 + 4 + 13 + 16) / 4)
        // block (1, 1), channel 2: cells (2,2), (2,3), (3,2), (3,3) -> 32, 35, 44, 47
        #expect(c[11] == Double(32 + 35 + 44 + 47) / 4)
        #expect(Array(c[12...]) == Array(f[48...]))
    }

    @Test func featuresSeeLayoutColourAndTexture() {
        let flat = [Float](repeating: 0.5, count: 32 * 32 * 3)
        var rng = RNG(seed: 2)
        let noisy = flat.map { $0 + rng.normal() * 0.3 }
        let f = ImageFeatures.extract(flat, size: 32), g = ImageFeatures.extract(noisy, size: 32)
        #expect(f.count == ImageFeatures.dimension)
        #expect(abs(f[0] - 0.5) < 1e-6 && f[48] < 1e-6 && f[51] < 1e-6)
        #expect(g[48] > 0.2 && g[51] > 0.2 && g[54] > 0.2)
    }

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
        let se = try #require(e.se)
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
        #expect(try #require(moved.klBase) > 0 && moved.se?["kl_base"].map { $0 > 0 } == true)
    }

    /// A line written by the loop reads back as the same record (values with 6 digits or fewer).
    @Test func metricsRecordsRoundTrip() throws {
        var r = MetricsRecord(step: 3, algo: "grpo-guard")
        r.rewardMean = 0.25; r.rewards = ["shape-eval": 0.5, "brightness": 0.125]; r.seconds = 1.5; r.loss = -0.0625
        r.timesteps = [TimestepRecord(k: 0, t: 1, ratioMean: 1, ratioStd: 0.001, logratioMean: -0.0001, plainLogratioMean: 0.0002,
                                      clipHigh: 0.25, clipLow: 0, absAdvMean: 0.75, klRef: 0)]
        r.criticInUse = true
        r.eval = EvalRecord(proxy: 0.5, scores: ["brightness": 0.5], shapeEval: 0.75, shapeEvalByTask: ["single": 0.5, "position": nil],
                            fd: 12.5, diversity: 1.25, w2: 0.0078125, grid: "grids/step-00003.png")
        r.eval?.se = ["proxy": 0.125, "shape_eval": 0.0625, "fd": 2.5]
        r.eval?.fdFloor = 3.25
        r.eval?.klBase = 6.5
        let text = r.json(rewardNames: ["shape-eval", "brightness"]).text
        #expect(text.hasPrefix("{\"step\": 3, \"algo\": \"grpo-guard\", \"reward_mean\": 0.25, \"rewards\": {\"shape-eval\": 0.5, \"brightness\": 0.125}"))
        let back = try JSONDecoder().decode(MetricsRecord.self, from: Data(text.utf8))
        #expect(back == r)
        #expect(r.scalars.map(\.0).contains("rewards/brightness") && r.scalars.first { $0.0 == "critic_in_use" }?.1 == 1)
    }
}

/// A random tiny base model and prompt lists in a temporary folder.
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
