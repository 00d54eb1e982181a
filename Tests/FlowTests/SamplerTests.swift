import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

@Suite struct FlowTests {
    /// v(x, t) = a x has the exact flow x(t) = x(1) exp(a (t - 1)); Euler from t = 1 to 0 must
    /// converge to x(1) exp(-a) at first order: doubling the steps halves the error.
    @Test func eulerConvergesAtFirstOrder() {
        let a: Float = 1.3, x1: [Float] = [1.0, -2.0, 0.5]
        func error(_ steps: Int) -> Double {
            var x = x1
            EulerSampler(steps: steps).sample(ClosureVelocity(pixels: 3) { x, _ in x.map { a * $0 } }, x: &x, batch: 1)
            return zip(x, x1).map { abs(Double($0) - Double($1) * exp(-Double(a))) }.max()!
        }
        let e10 = error(10), e20 = error(20), e40 = error(40), e80 = error(80)
        for (coarse, fine) in [(e10, e20), (e20, e40), (e40, e80)] {
            #expect(abs(coarse / fine - 2) < 0.15, "ratio \(coarse / fine)")
        }
        #expect(e80 < 0.01)
    }

    /// Each step is x <- x - h v(x, t) at the grid's times: for v = t x (shifted grid) the result is
    /// x_0 prod_k (1 - h_k t_k), and the observer sees every step's state, time and velocity.
    @Test func eulerStepsMatchTheClosedForm() {
        let sampler = EulerSampler(steps: 7, shift: 3)
        let grid = timeGrid(steps: 7, shift: 3)
        var x: [Float] = [0.5, -1.25], seen: [(Int, Float, Float, Float)] = []
        sampler.sample(ClosureVelocity(pixels: 1) { x, t in x.map { t * $0 } }, x: &x, batch: 2) { k, t, state, v in
            seen.append((k, t, state[0], v[0]))
        }
        var expected = 1.0
        for k in 0..<7 { expected *= 1 - Double(grid[k] - grid[k + 1]) * Double(grid[k]) }
        #expect(abs(Double(x[0]) - 0.5 * expected) < 1e-6 && abs(Double(x[1]) + 1.25 * expected) < 1e-6)
        #expect(seen.map(\.0) == Array(0..<7) && seen.map(\.1) == Array(grid.prefix(7)))
        for s in seen { #expect(s.3 == s.1 * s.2) }
    }

    @Test func guidanceIsTheNullVelocityPlusScaledDifference() {
        let cond: [Float] = [1, -2, 0.5], null: [Float] = [0.25, 1, -1]
        var out = [Float](repeating: 0, count: 3)
        for w: Float in [0, 1, 3] {
            guidedVelocity(&out, conditional: cond, null: null, scale: w, count: 3)
            for i in 0..<3 { #expect(out[i] == null[i] + w * (cond[i] - null[i])) }
        }
    }

    /// The network with guidance w: its velocity is null + w (prompt - null) of two unguided
    /// evaluations, and the sampler takes Euler steps with it (observed at every step).
    @Test func guidedSamplingWithTheNetwork() throws {
        let m = try randomModel(seed: 21)
        let n = m.config.pixelsPerImage, B = 2
        var rng = RNG(seed: 2)
        let noise = rng.normals(B * n)
        let tokens = try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a black background")
        let nulls = Tokenizer.nullTokens + Tokenizer.nullTokens
        let ws = try m.makeWorkspace(batch: 2 * B, training: false), plain = try m.makeWorkspace(batch: B, training: false)
        func v(_ x: [Float], _ t: Float, _ tok: [Int32]) -> [Float] {
            Array(UnsafeBufferPointer(start: m.forward(plain, x: x, t: [t, t], tokens: tok, batch: B), count: B * n))
        }
        let w: Float = 2.5, grid = timeGrid(steps: 3)
        var expected = noise
        for k in 0..<3 {
            let vc = v(expected, grid[k], tokens), vn = v(expected, grid[k], nulls)
            for i in expected.indices { expected[i] -= (grid[k] - grid[k + 1]) * (vn[i] + w * (vc[i] - vn[i])) }
        }
        var x = noise, steps = 0
        EulerSampler(steps: 3, cfgScale: w).sample(model: m, ws: ws, x: &x, tokens: tokens) { _, _, _, _ in steps += 1 }
        #expect(steps == 3)
        #expect(zip(x, expected).map { abs($0 - $1) }.max()! < 1e-5)
        #expect(zip(x, noise).map { abs($0 - $1) }.max()! > 1e-2)     // the random network moved the state
    }

    @Test func timeGridWithShift() {
        let g = timeGrid(steps: 4, shift: 3)
        #expect(g.first == 1 && g.last == 0 && g.count == 5)
        #expect(abs(g[2] - 3 * 0.5 / (1 + 2 * 0.5)) < 1e-6)
        #expect(zip(g, g.dropFirst()).allSatisfy { $0 > $1 })
    }

    /// Finite-difference check of the flow-matching loss through the tiny model.
    @Test func flowMatchingLossGradient() throws {
        let m = try randomModel(seed: 11)
        let ws = try m.makeWorkspace(batch: 2, training: true)
        var rng = RNG(seed: 3)
        let x0 = rng.normals(2 * m.config.pixelsPerImage, scale: 0.5)
        let batch = FlowMatchingBatch(x0: x0, tokens: try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a black background"))
        func loss() -> Float {
            var r = RNG(seed: 5)
            return flowMatchingStep(model: m, ws: ws, batch: batch, rng: &r, nullProbability: 0.5, backward: false)
        }
        m.grads.zero()
        var r = RNG(seed: 5)
        flowMatchingStep(model: m, ws: ws, batch: batch, rng: &r, nullProbability: 0.5)
        let analytic = m.grads.copy()
        for e in m.layout.entries where e.name.contains("fc1") || e.name.contains("token_embed") || e.name.contains("final") {
            for k in 0..<3 {
                let i = e.offset + (k * 104_729 + 7) % e.count
                let orig = m.params[i]
                m.params[i] = orig + 1e-2; let lp = loss()
                m.params[i] = orig - 1e-2; let lm = loss()
                m.params[i] = orig
                let numeric = (lp - lm) / 2e-2
                #expect(abs(numeric - analytic[i]) / max(0.05, abs(numeric)) < 5e-2, "\(e.name): \(analytic[i]) vs \(numeric)")
            }
        }
    }

}

@Suite struct ParallelNoiseTests {
    /// The noise of a pretraining batch and of each SDE step is drawn on every worker, each image
    /// from its own place in the stream (or its own stream): one worker and two give the same loss,
    /// gradient, rollout states and log-probabilities to the bit, and leave the stream at the same
    /// place.
    @Test func oneWorkerAndTwoDrawTheSameNoise() throws {
        let m = try DiT(config: .tiny(vocabSize: Tokenizer.vocabularySize), seed: 4)
        let n = m.config.pixelsPerImage, B = 5
        var data = RNG(seed: 6)
        let tokens = try (0..<B).flatMap { _ in try Tokenizer.encode("three yellow triangles on a gray background") }
        let batch = FlowMatchingBatch(x0: data.normals(B * n, scale: 0.5), tokens: tokens)
        let noise = data.normals(B * n)
        let sde = SDESampler(config: SDEConfig(steps: 4, noiseLevel: 0.7))
        func run(workers: Int) throws -> (loss: Float, grads: [Float], after: RNG, states: [Float], logps: [Float], streams: [RNG]) {
            try Compute(workers: workers).run {
                let ws = try m.makeWorkspace(batch: B, training: true)
                m.grads.zero()
                var r = RNG(seed: 9)
                let loss = flowMatchingStep(model: m, ws: ws, batch: batch, rng: &r, nullProbability: 0.3)
                var streams = (0..<B).map { RNG(seed: 20).split(UInt64($0)) }
                let roll = sde.rollout(model: m, workspaces: [try m.makeWorkspace(batch: B, training: false)], noise: noise, tokens: tokens, rngs: &streams)
                return (loss, Array(m.grads.buffer), r, roll.states, roll.logps, streams)
            }
        }
        let one = try run(workers: 1), two = try run(workers: 2)
        #expect(one.loss == two.loss && one.grads == two.grads && one.after == two.after)
        #expect(one.states == two.states && one.logps == two.logps && one.streams == two.streams)
        #expect(one.logps.allSatisfy(\.isFinite) && one.loss > 0)
    }
}
