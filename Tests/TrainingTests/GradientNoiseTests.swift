import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

@Suite struct GradientNoiseTests {
    /// Synthetic per-sample gradients g = G + sigma z in pieces of unequal sizes over two steps, as
    /// a training pass feeds them: over many iterations the estimates' means approach |G|^2 and
    /// tr Sigma = sigma^2 D, and their ratio the noise scale, whether pieces are paired within
    /// steps only or across them.
    @Test(arguments: [false, true]) func estimatesConvergeToTheSignalAndTheNoise(_ acrossSteps: Bool) {
        let D = 40, sigma: Float = 0.5
        var rng = RNG(seed: 3)
        let G = rng.normals(D, scale: 0.1)
        let signalTrue = G.reduce(0.0) { $0 + Double($1 * $1) }, noiseTrue = Double(sigma * sigma) * Double(D)
        let noise = GradientNoise(parameters: D, acrossSteps: acrossSteps), grads = FloatBuffer(count: D)
        let steps = [[3, 5], [4, 1, 2]]                 // samples per piece, two optimiser steps
        var signals: [Double] = [], traces: [Double] = []
        for _ in 0..<3000 {
            noise.reset()
            for pieces in steps {
                let total = pieces.reduce(0, +)
                grads.zero()
                for count in pieces {
                    noise.beginPiece(grads)
                    for _ in 0..<count { for i in 0..<D { grads[i] += (G[i] + sigma * rng.normal()) / Float(total) } }
                    noise.endPiece(grads, count: count, scale: Double(total))
                }
                noise.endStep(grads, scale: Double(total))
            }
            let e = try! #require(noise.estimate())
            signals.append(e.signal); traces.append(e.noise)
        }
        let s = signals.reduce(0, +) / 3000, t = traces.reduce(0, +) / 3000
        #expect(abs(s - signalTrue) < 0.1 * signalTrue, "signal \(s) vs \(signalTrue)")
        #expect(abs(t - noiseTrue) < 0.03 * noiseTrue, "noise \(t) vs \(noiseTrue)")
        let scale = gradientNoiseScale(signal: signals, noise: traces)
        let estimate = try! #require(scale.estimate), atLeast = try! #require(scale.atLeast)
        #expect(abs(estimate - noiseTrue / signalTrue) < 0.12 * noiseTrue / signalTrue)
        #expect(atLeast < estimate && atLeast > 0.5 * estimate)
        // one piece says nothing about the noise; one piece a step only when steps are paired
        noise.reset(); grads.zero()
        noise.beginPiece(grads); grads[0] = 1; noise.endPiece(grads, count: 4, scale: 4); noise.endStep(grads, scale: 4)
        #expect(noise.estimate() == nil)
        noise.beginPiece(grads); grads[0] = 2; noise.endPiece(grads, count: 4, scale: 4); noise.endStep(grads, scale: 4)
        #expect((noise.estimate() != nil) == acrossSteps)
        // a signal not told from noise: no estimate, but a bound from its spread
        let unresolved = gradientNoiseScale(signal: [-1, 0.5, 0.2], noise: [2, 2, 2])
        #expect(unresolved.estimate == nil && unresolved.atLeast.map { abs($0 - 2 / (-0.1 + 2 * (0.63 / 3).squareRoot())) < 1e-9 } == true)
    }

    /// In a real clipped-ratio pass cut into passes of one sample, the pieces are the samples'
    /// own gradients: the estimates must equal those computed from each sample's gradient alone
    /// (a pass in which only that sample is kept).
    @Test func aPassMeasuresEachSamplesGradient() throws {
        let cfg = SDEConfig(steps: 3)
        let m = try randomTinyModel(seed: 71)
        var rng = RNG(seed: 72)
        let B = 4, n = m.config.pixelsPerImage
        let tokens = try (0..<B).flatMap { try Tokenizer.encode($0 < 2 ? "a red circle on a blue background" : "two green squares on a black background") }
        let wss = try (0..<cfg.steps).map { _ in try m.makeWorkspace(batch: B, training: true) }
        let r = SDESampler(config: cfg).rollout(model: m, workspaces: wss, noise: rng.normals(B * n), tokens: tokens, rng: &rng)
        let adv = Advantages(rewards: [0.1, 0.5, 0.2, 0.9], groupSize: 2, globalStd: false, clip: 5)
        let ws = try m.makeWorkspace(batch: 1, training: true)
        func pass(_ a: Advantages, _ noise: GradientNoise? = nil) -> [Float] {
            var opt = AdamW(count: m.parameterCount, lr: 0)          // the weights stay: every pass is on-policy
            var prng = RNG(seed: 73)
            _ = ClippedRatioPass(policy: m, reference: nil, beta: 0, objective: GRPOObjective(clipRange: 1e-4), workspaces: RatioPassWorkspaces(train: ws))
                .run(rollout: r, advantages: a, layout: PassLayout(total: B, microBatchSize: 1, world: .single), microBatches: 1, epochs: 1,
                     optimizer: &opt, rng: &prng, noise: noise)
            return m.grads.array
        }
        let noise = GradientNoise(parameters: m.parameterCount, acrossSteps: false)
        noise.reset()
        _ = pass(adv, noise)
        let measured = try #require(noise.estimate())
        // each sample's gradient: a pass that keeps only it (its weight is then 1)
        var h: [[Double]] = []
        for i in 0..<B {
            var only = adv
            only.keep = (0..<B).map { $0 == i }
            h.append(pass(only).map(Double.init))
        }
        let sumSq = h.reduce(0.0) { $0 + $1.reduce(0) { $0 + $1 * $1 } }
        let whole = (0..<h[0].count).reduce(0.0) { s, j in let v = h.reduce(0.0) { $0 + $1[j] }; return s + v * v }
        let signal = (whole - sumSq) / Double(B * B - B), trace = (sumSq - Double(B) * signal) / Double(B)
        #expect(trace > 0 && abs(measured.noise - trace) < 1e-3 * trace, "noise \(measured.noise) vs \(trace)")
        #expect(abs(measured.signal - signal) < 1e-3 * trace, "signal \(measured.signal) vs \(signal)")
    }
}
