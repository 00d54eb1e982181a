import Testing
import TestSupport
import Foundation
import Tensor
import Model
import Flow
import Shapes
import Analysis
@testable import Training

/// AC-Flow's feature and lookahead critics and the per-step trust.
@Suite struct CriticTests {
    /// The feature critic's gradient against central differences of sum(V * r).
    @Test func featureCriticGradientMatchesFiniteDifferences() throws {
        let critic = FeatureCritic(features: 12, width: 8, seed: 4)
        var rng = RNG(seed: 5)
        for i in 0..<critic.params.count { critic.params[i] = rng.normal() * 0.3 }
        let B = 3
        let h = rng.normals(B * 12), t: [Float] = [0.2, 0.5, 0.9], r: [Float] = [0.7, -1.2, 0.4]
        func loss() -> Double { zip(critic.forward(features: h[...], t: t).value, r).reduce(0.0) { $0 + Double($1.0 * $1.1) } }
        critic.grads.zero()
        critic.backward(critic.forward(features: h[...], t: t), dValue: r)
        let mismatches = gradientMismatches(params: critic.params, layout: critic.layout, analytic: critic.grads.copy(), perEntry: 4, loss: loss)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    /// The rollout keeps the policy's image features: the mean of the last block's output over a
    /// sample's image rows, the same whatever else is in the batch.
    @Test func rolloutKeepsEachStatesImageFeatures() throws {
        let m = try randomTinyModel(seed: 31)
        var rng = RNG(seed: 32)
        let B = 2, n = m.config.pixelsPerImage, D = m.config.width
        let noise = rng.normals(B * n)
        let tokens = try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a black background")
        let cfg = SDEConfig(steps: 3)
        var rngs = SDESampler.streams(RNG(seed: 33), samples: [0, 1])
        let r = SDESampler(config: cfg).rollout(model: m, workspaces: [try m.makeWorkspace(batch: B, training: false)], noise: noise,
                                                tokens: tokens, rngs: &rngs, features: true)
        #expect(r.features.count == 3 * B * D)
        // the second sample's features at step 1, from a forward of it alone
        let ws = try m.makeWorkspace(batch: 1, training: false)
        let x1 = Array(r.states[((1 * B + 1) * n)..<((1 * B + 2) * n)])
        m.forward(ws, x: x1, t: [cfg.grid[1]], tokens: Array(tokens[(tokens.count / 2)...]), batch: 1)
        var alone = [Float](repeating: 0, count: D)
        alone.withUnsafeMutableBufferPointer { m.imageFeatures(ws, batch: 1, into: $0.baseAddress!) }
        let kept = Array(r.features[((1 * B + 1) * D)..<((1 * B + 2) * D)])
        #expect(zip(kept, alone).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        #expect(alone.contains { $0 != 0 })
    }

    /// The lookahead critic's value at the last visited state is the reward of the final image
    /// itself (x0hat = x_T-1 - t v is the last Euler step), so there it explains rt exactly; and
    /// per-step trust uses the critic there and not at a step where it explains nothing.
    @Test func lookaheadIsExactAtTheLastStateAndTrustedPerStep() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.acflow, steps: 1)
        c.acflow.criticInput = .lookahead; c.acflow.criticTrust = .perStep
        c.acflow.warmupIterations = 0; c.acflow.warmupExplainedVariance = 0.5
        let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run"))
        let ac = try #require(run.algorithm as? ACFlow)
        let batch = try run.rolloutBatch()
        let T = c.sde.steps, B = c.batchSize
        let raw = try ac.lookaheadScores(batch)
        #expect(raw.count == T * B)
        #expect(zip(raw[((T - 1) * B)...], batch.rewards).allSatisfy { abs($0 - $1) < 1e-4 }, "\(raw[((T - 1) * B)...]) vs \(batch.rewards)")
        let m = try ac.train(batch, run.state)
        let steps = try #require(m.steps)
        #expect(abs(try #require(steps[T - 1]["critic_explained_variance"]) - 1) < 1e-4)
        #expect(steps[T - 1]["critic_trusted"] == 1)
        for s in steps { #expect((s["critic_trusted"] == 1) == (try #require(s["critic_explained_variance"]) >= 0.5)) }
        // the advantage at a trusted last step: rt - V = 0
        #expect(try #require(steps[T - 1]["advantage_std"]) < 1e-4)
    }
}
