import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

/// mu_theta for the stored states of step k, for all samples.
func means(_ m: DiT, _ r: Rollout, step k: Int) throws -> [Float] {
    let n = r.pixels, B = r.batch, c = r.config.coefficients(k)
    let ws = try m.makeWorkspace(batch: B, training: false)
    let x = Array(r.states[(k * B * n)..<((k + 1) * B * n)])
    let v = m.forward(ws, x: x, t: [Float](repeating: c.t, count: B), tokens: r.tokens, batch: B)
    return (0..<(B * n)).map { c.cx * x[$0] + c.cv * v[$0] }
}

func lossAt(_ obj: PolicyObjective, _ r: Rollout, _ mu: [Float], step k: Int, sample b: Int, advantage: Float) -> (SampleLoss, [Float]) {
    let n = r.pixels, B = r.batch, c = r.config.coefficients(k)
    let xNext = Array(r.states[(((k + 1) * B + b) * n)..<(((k + 1) * B + b + 1) * n)])
    let muOld = Array(r.means[((k * B + b) * n)..<((k * B + b + 1) * n)])
    let muB = Array(mu[(b * n)..<((b + 1) * n)])
    var dmu = [Float](repeating: 0, count: n)
    let s = obj.sampleLoss(c, xNext: xNext, muOld: muOld, mu: muB, n: n, advantage: advantage, dmu: &dmu)
    return (s, dmu)
}

@Suite struct GRPOTests {
    /// The precisions this CPU's best kernels run (bf16 where it has AVX512-BF16).
    static let precisions = Precision.allCases.filter { KernelPath.best.runs($0) }

    /// The rollout and the training pass run in one precision, so the first micro-batch's
    /// probability ratios are 1 in bf16 as in fp32 (no log-probability mismatch between them).
    @Test(arguments: [Algorithm.grpo, .grpoGuard], precisions) func onPolicyRatioIsOne(_ algo: Algorithm, _ precision: Precision) throws {
        try Compute(precision: precision).run {
            let m = try randomTinyModel(seed: 11)
            let r = try tinyRollout(m, batch: 4, config: SDEConfig(steps: 5), seed: 12)
            if precision != .fp32 {   // the precision is in effect: the rollout is not fp32's
                let fp32 = try Compute(precision: .fp32).run { try tinyRollout(m, batch: 4, config: SDEConfig(steps: 5), seed: 12) }
                #expect(fp32.means != r.means)
            }
            let obj: PolicyObjective = algo == .grpo ? GRPOObjective(clipRange: 1e-4) : GRPOGuardObjective(clipRange: 3e-6)
            // through the trainer: a training workspace of a different batch size, before the update
            var opt = AdamW(count: m.parameterCount, lr: 1e-3)
            let adv = Advantages(rewards: [0.1, 0.5, 0.2, 0.9], groupSize: 2, globalStd: false, clip: 5)
            var rng = RNG(seed: 1)
            let stats = ClippedRatioPass(policy: m, reference: nil, beta: 0, objective: obj,
                                         workspaces: RatioPassWorkspaces(train: try m.makeWorkspace(batch: 2, training: true)))
                .run(rollout: r, advantages: adv, layout: PassLayout(total: 4, microBatchSize: 2, world: .single), microBatches: 2, epochs: 1,
                     optimizer: &opt, rng: &rng)
            #expect(stats.onPolicyMaxDeviation < 1e-6, "\(precision): \(stats.onPolicyMaxDeviation)")
            // the second micro-batch saw moved weights: its ratios are no longer all 1
            #expect(stats.steps.contains { $0.ratioStd > 0 })
        }
    }

    @Test func ratioNormIdentityHolds() throws {
        // log rhat = s (logp_theta - logp_old + b) = <z, dmu> / D with z = (x' - mu_old) / s
        let m = try randomTinyModel(seed: 21)
        let r = try tinyRollout(m, batch: 2, config: SDEConfig(steps: 5), seed: 22)
        for i in 0..<m.params.count { m.params[i] *= 1.02 }   // move the policy
        let n = r.pixels
        for k in 0..<4 {
            let c = r.config.coefficients(k)
            let mu = try means(m, r, step: k)
            for b in 0..<2 {
                let (s, _) = lossAt(GRPOGuardObjective(clipRange: 1), r, mu, step: k, sample: b, advantage: 1)
                let xNext = Array(r.state(k + 1, b)), muOld = Array(r.means[((k * 2 + b) * n)..<((k * 2 + b + 1) * n)])
                let muB = Array(mu[(b * n)..<((b + 1) * n)])
                let logpNew = Double(meanLogProb(xNext, muB, n: n, c: c)), logpOld = Double(meanLogProb(xNext, muOld, n: n, c: c))
                var bias = 0.0, zd = 0.0
                for i in 0..<n {
                    let d = Double(muB[i] - muOld[i])
                    bias += d * d; zd += (Double(xNext[i] - muOld[i]) / Double(c.s)) * d
                }
                bias /= 2 * Double(n) * Double(c.s * c.s)
                let viaDoc = Double(c.s) * (logpNew - logpOld + bias)
                #expect(abs(Double(s.logRatio) - zd / Double(n)) < 1e-9 + 1e-6 * abs(zd / Double(n)))
                #expect(abs(Double(s.logRatio) - viaDoc) < 2e-6, "step \(k): \(s.logRatio) vs \(viaDoc)")
            }
        }
    }

    @Test func plainLogRatioDriftsNegativeAtLowNoiseWhileRatioNormStaysCentred() throws {
        // After perturbing the weights, the mean plain log-ratio is negative and larger in
        // magnitude at low-noise (late) steps; RatioNorm's stays near 0.
        let m = try randomTinyModel(seed: 31)
        let cfg = SDEConfig(steps: 8, noiseLevel: 0.7)
        let B = 24
        let r = try tinyRollout(m, batch: B, config: cfg, seed: 32)
        var rng = RNG(seed: 33)
        for i in 0..<m.params.count { m.params[i] += rng.normal() * 0.01 }
        var plain: [Double] = [], normed: [Double] = []
        for k in 0..<cfg.stochasticSteps {
            let mu = try means(m, r, step: k)
            var p = 0.0, q = 0.0
            for b in 0..<B {
                let (s, _) = lossAt(GRPOGuardObjective(clipRange: 1), r, mu, step: k, sample: b, advantage: 1)
                p += Double(s.plainLogRatio); q += Double(s.logRatio)
            }
            plain.append(p / Double(B)); normed.append(q / Double(B))
        }
        #expect(plain.allSatisfy { $0 < 0 }, "\(plain)")
        #expect(abs(plain.last!) > 3 * abs(plain[1]), "\(plain)")
        let scale = plain.map(abs).max()!
        #expect(normed.allSatisfy { abs($0) < 0.1 * scale }, "normed \(normed) plain \(plain)")
    }

    /// |dL/dv| per step for one sample: with RatioNorm + 1/h the same at every step; without, not.
    func velocityGradientNorms(_ obj: PolicyObjective, _ r: Rollout, _ m: DiT) throws -> [Double] {
        try (0..<r.config.stochasticSteps).map { k in
            let c = r.config.coefficients(k)
            let mu = try means(m, r, step: k)
            var total = 0.0
            for b in 0..<r.batch {
                let (_, dmu) = lossAt(obj, r, mu, step: k, sample: b, advantage: 1)
                let w = Double(obj.stepWeight(c) * c.cv)
                total += dmu.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() * abs(w)
            }
            return total / Double(r.batch)
        }
    }

    @Test func reweightingEqualisesVelocityGradientsAcrossSteps() throws {
        let m = try randomTinyModel(seed: 41)
        let cfg = SDEConfig(steps: 8, noiseLevel: 0.7, shift: 3)     // shifted grid: h differs per step
        let r = try tinyRollout(m, batch: 16, config: cfg, seed: 42)
        func spread(_ x: [Double]) -> Double { x.max()! / x.min()! }
        let guardNorms = try velocityGradientNorms(GRPOGuardObjective(clipRange: 10), r, m)
        let noReweight = try velocityGradientNorms(GRPOGuardObjective(clipRange: 10, reweight: false), r, m)
        let plain = try velocityGradientNorms(GRPOObjective(clipRange: 10), r, m)
        // below t = 1 (at t = 1 the drift's (1 - t) v term vanishes, so d mu / d v = -h there, as in Flow-GRPO)
        #expect(spread(Array(guardNorms.dropFirst())) < 1.1, "guard \(guardNorms)")
        #expect(spread(Array(noReweight.dropFirst())) > 1.5, "no 1/h \(noReweight)")
        #expect(spread(Array(plain.dropFirst())) > 1.5, "grpo \(plain)")
        // the analytic factor: d mu / d v = -h (1 + a^2/2) below t = 1
        let c = cfg.coefficients(3)
        #expect(abs(c.cv + c.h * (1 + 0.49 / 2)) < 1e-6)
    }

    @Test func objectiveGradientMatchesFiniteDifferences() throws {
        let m = try randomTinyModel(seed: 51)
        let r = try tinyRollout(m, batch: 2, config: SDEConfig(steps: 4), seed: 52)
        for i in 0..<m.params.count { m.params[i] *= 1.01 }
        let k = 1, n = r.pixels
        let mu = try means(m, r, step: k)
        for obj in [GRPOObjective(clipRange: 10) as PolicyObjective, GRPOGuardObjective(clipRange: 10)] {
            let (_, dmu) = lossAt(obj, r, mu, step: k, sample: 0, advantage: 0.7)
            for i in stride(from: 0, to: n, by: 101) {
                var up = mu, down = mu
                up[i] += 1e-3; down[i] -= 1e-3
                let lp = lossAt(obj, r, up, step: k, sample: 0, advantage: 0.7).0.loss
                let lm = lossAt(obj, r, down, step: k, sample: 0, advantage: 0.7).0.loss
                let numeric = (lp - lm) / 2e-3
                #expect(abs(numeric - dmu[i]) < 1e-3 * max(1, abs(dmu[i])), "\(i): \(dmu[i]) vs \(numeric)")
            }
        }
    }

    @Test func advantagesAreGroupRelativeAndDropZeroSpreadGroups() {
        let a = Advantages(rewards: [1, 2, 3, 5, 5, 5], groupSize: 3, globalStd: false, clip: 5)
        #expect(abs(a.values[0] + a.values[2]) < 1e-6 && a.values[1] == 0)
        #expect(abs(a.values[2] - 1 / (Float(2.0 / 3.0).squareRoot() + 1e-4)) < 1e-4)
        #expect(a.keep == [true, true, true, false, false, false])
        let g = Advantages(rewards: [0, 100, 0, 0], groupSize: 2, globalStd: true, clip: 0.5)
        #expect(g.values.allSatisfy { abs($0) <= 0.5 })
    }
}

@Suite struct ActivationReuseTests {
    /// The first micro-batch may reuse the rollout's activations instead of recomputing them:
    /// the update must be the same as with a fresh forward pass (to float rounding).
    @Test(arguments: [1, 2]) func reusingRolloutActivationsGivesTheSameUpdate(_ microBatches: Int) throws {
        let cfg = SDEConfig(steps: 4, stochasticLastStep: true)
        var results: [[Float]] = []
        var devs: [Double] = []
        for reuse in [false, true] {
            let m = try randomTinyModel(seed: 61)
            var rng = RNG(seed: 62)
            let B = 4, n = m.config.pixelsPerImage
            let noise = rng.normals(B * n)
            let tokens = try (0..<B).flatMap { try Tokenizer.encode($0 < 2 ? "a red circle on a blue background" : "two green squares on a black background") }
            let wss = try (0..<cfg.steps).map { _ in try m.makeWorkspace(batch: B, training: true) }
            let r = SDESampler(config: cfg).rollout(model: m, workspaces: wss, noise: noise, tokens: tokens, rng: &rng)
            var opt = AdamW(count: m.parameterCount, lr: 1e-3)
            let adv = Advantages(rewards: [0.1, 0.5, 0.2, 0.9], groupSize: 2, globalStd: false, clip: 5)
            var prng = RNG(seed: 63)
            let u = B / microBatches
            let stats = ClippedRatioPass(policy: m, reference: nil, beta: 0, objective: GRPOObjective(clipRange: 1e-4),
                                         workspaces: RatioPassWorkspaces(train: try m.makeWorkspace(batch: u, training: true), rollout: reuse ? wss : []))
                .run(rollout: r, advantages: adv, layout: PassLayout(total: B, microBatchSize: u, reusableRows: reuse ? B : 0, world: .single),
                     microBatches: microBatches, epochs: 1, optimizer: &opt, rng: &prng)
            results.append(m.params.array); devs.append(stats.onPolicyMaxDeviation)
        }
        var worst: Float = 0
        for i in results[0].indices { worst = max(worst, abs(results[0][i] - results[1][i])) }
        #expect(worst < 1e-5, "max parameter difference \(worst)")
        #expect(devs.allSatisfy { $0 < 1e-6 })
    }
}
