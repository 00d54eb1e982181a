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
        let line = try #require(try String(contentsOf: run.metricsURL, encoding: .utf8).split(separator: "\n").first)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let e = try #require(o["eval"] as? [String: Any])
        #expect(o["step"] as? Int == 0)
        #expect(e["w2"] as? Double == 0)          // the policy is the base model at step 0
        for key in ["proxy", "shape_eval", "fd", "diversity"] { #expect((e[key] as? Double)?.isFinite == true, "\(key)") }
        let grid = try RGBImage(pngData: [UInt8](Data(contentsOf: setup.dir.appendingPathComponent("run/grids/step-00000.png"))))
        #expect(grid.width > 16 * 3 * 2)
        // the same noise at every evaluation: evaluating again gives identical numbers
        let again = try run.evaluate()
        #expect(again.text.contains("\"proxy\": \(JSONValue.double(e["proxy"] as! Double).text)"))
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
