import Testing
import Foundation
import Tensor
import Model
import Flow
import Shapes
import TestSupport

@Suite struct PathKLTests {
    /// Two velocity fields that differ by a constant c: on every stochastic step the KL of the
    /// transitions is D (h (1 + a^2/2) c)^2 / (2 s_k^2); deterministic steps are left out.
    @Test func pathKLMatchesTheClosedFormForAConstantVelocityDifference() throws {
        let base = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 3)
        let policy = base.clone()
        let c: Float = 0.05
        let bias = policy.layout.entry("final.linear.bias")!
        for i in 0..<bias.count { policy.params.pointer[bias.offset + i] += c }
        let sde = SDESampler(config: SDEConfig(steps: 5, noiseLevel: 0.7))
        let n = base.config.pixelsPerImage, B = 3
        var rng = RNG(seed: 8)
        let noise = rng.normals(B * n)
        let tokens = (0..<B).flatMap { _ in try! Tokenizer.encode("a red circle on a blue background") }
        let ws = try base.makeWorkspace(batch: B, training: false)
        let r = sde.rollout(model: policy, ws: ws, noise: noise, tokens: tokens, rng: &rng)
        let kl = sde.pathKL(r, base: base, ws: try base.makeWorkspace(batch: B, training: false))
        var expected = 0.0
        for k in 0..<sde.config.stochasticSteps {
            let co = sde.config.coefficients(k)
            // d mu / d v = -h (1 + a^2/2) (but at t = 1, where 1 - t_1 stands in for 1 - t)
            if k > 0 { #expect(abs(co.cv + co.h * (1 + 0.7 * 0.7 / 2)) < 1e-5) }
            expected += Double(n) * pow(Double(co.cv * c), 2) / (2 * Double(co.s) * Double(co.s))
        }
        #expect(sde.config.stochasticSteps == 4)
        for v in kl { #expect(abs(v - expected) < 1e-3 * expected, "KL \(v), closed form \(expected)") }
        // the same field: zero
        #expect(sde.pathKL(r, base: policy, ws: ws).allSatisfy { abs($0) < 1e-6 })
    }
}
