import Tensor
import Model
import Flow

/// A PPO-style objective on the SDE transition's log-probability (the Flow-GRPO family).
/// `sampleLoss` also WRITES dL/dmu for the sample into `dmu` (n values).
public protocol PolicyObjective {
    var clipRange: Float { get }
    /// The step's weight in the loss (1, or 1/h for GRPO-Guard's reweighting).
    func stepWeight(_ c: StepCoefficients) -> Float
    func sampleLoss(_ c: StepCoefficients, xNext: UnsafePointer<Float>, muOld: UnsafePointer<Float>,
                    mu: UnsafePointer<Float>, n: Int, advantage: Float, dmu: UnsafeMutablePointer<Float>) -> SampleLoss
}

/// Flow-GRPO and GRPO-Guard as algorithms: group advantages, then `clippedRatioPass` with the
/// objective. Rollouts run in one training workspace per SDE step, so that the first
/// (on-policy) micro-batch reuses their activations instead of running the network again.
public final class ClippedRatioAlgorithm: FinetuneAlgorithm {
    public let kind: Algorithm
    public let objective: PolicyObjective
    public var deterministicRollout: Bool { false }
    public let rolloutWorkspaces: [Workspace]
    let trainWS: Workspace, refWS: Workspace
    let config: FinetuneConfig

    public init(kind: Algorithm, objective: PolicyObjective, config: FinetuneConfig, model: DiT) throws {
        self.kind = kind; self.objective = objective; self.config = config
        let B = config.batchSize, mb = B / config.microBatches
        rolloutWorkspaces = try (0..<config.sde.steps).map { _ in try model.makeWorkspace(batch: B, training: true) }
        trainWS = try model.makeWorkspace(batch: mb, training: true)
        refWS = try model.makeWorkspace(batch: mb, training: false)
    }

    public func train(_ batch: RolloutBatch, _ s: TrainingState, _ record: inout MetricsRecord) throws {
        let c = config
        let adv = Advantages(rewards: batch.rewards, groupSize: c.groupSize, globalStd: c.globalStd, clip: c.advantageClip)
        let stats = clippedRatioPass(policy: s.policy, reference: s.reference, beta: c.beta, objective: objective,
                                     rollout: batch.rollout, advantages: adv, microBatches: c.microBatches, epochs: c.innerEpochs,
                                     optimizer: &s.optimizer, ws: trainWS, refWS: c.beta > 0 ? refWS : nil, rng: &s.rng,
                                     rolloutWorkspaces: rolloutWorkspaces)
        record.onpolicyRatioMaxDev = stats.onPolicyMaxDeviation
        record.loss = stats.loss
        record.gradNorm = Double(stats.gradNorms.max() ?? 0)
        record.keptFraction = Double(stats.kept) / Double(batch.rewards.count)
        record.clipRange = Double(objective.clipRange)
        record.klRef = stats.steps.map { $0.sumKL / Double(max($0.count, 1)) }.reduce(0, +) / Double(max(stats.steps.count, 1))
        record.timesteps = stats.steps.map(\.record)
    }
    public func save(into f: inout SafeTensorsFile) {}
    public func restore(from f: SafeTensorsFile, source: String) throws {}
}

/// Per-timestep diagnostics of the ratios used in the loss.
public struct StepStats {
    public var k = 0, t: Float = 0
    var count = 0, kept = 0
    var sumR = 0.0, sumR2 = 0.0, sumLogR = 0.0, sumPlainLogR = 0.0, sumAbsA = 0.0, sumKL = 0.0
    var clipHigh = 0, clipLow = 0

    mutating func add(_ s: SampleLoss, advantage a: Float, eps: Float) {
        count += 1
        sumR += Double(s.ratio); sumR2 += Double(s.ratio) * Double(s.ratio)
        sumLogR += Double(s.logRatio); sumPlainLogR += Double(s.plainLogRatio); sumAbsA += Double(abs(a))
        if s.ratio > 1 + eps && a > 0 { clipHigh += 1 }
        if s.ratio < 1 - eps && a < 0 { clipLow += 1 }
    }

    public var ratioMean: Double { count == 0 ? 1 : sumR / Double(count) }
    public var ratioStd: Double { count == 0 ? 0 : max(0, sumR2 / Double(count) - ratioMean * ratioMean).squareRoot() }
    public var logRatioMean: Double { count == 0 ? 0 : sumLogR / Double(count) }

    public var record: TimestepRecord {
        let n = Double(max(count, 1))
        return TimestepRecord(k: k, t: Double(t), ratioMean: ratioMean, ratioStd: ratioStd, logratioMean: logRatioMean,
                              plainLogratioMean: sumPlainLogR / n, clipHigh: Double(clipHigh) / n, clipLow: Double(clipLow) / n,
                              absAdvMean: sumAbsA / n, klRef: sumKL / n)
    }
}

/// The result of one GRPO-family training pass over a rollout.
public struct PolicyPassStats {
    public var steps: [StepStats]
    public var onPolicyMaxDeviation: Double     // max |r - 1| on the first micro-batch, before any update
    public var loss: Double
    public var gradNorms: [Float]
    public var kept: Int
}

/// The clipped-ratio pass of Flow-GRPO and GRPO-Guard (which differ only in their
/// `PolicyObjective`). Trains `policy` on a rollout with a clipped-ratio objective: the batch is split into
/// micro-batches (in rollout order in the first epoch, whole groups each; shuffled in later
/// epochs); for each, the log-probabilities of the stored transitions are recomputed with the
/// current weights at every trained step, the clipped loss (+ beta KL to `reference`) is
/// back-propagated through v, and one AdamW step is taken.
///
/// `rolloutWorkspaces` (one training workspace per SDE step, filled by the rollout) lets the
/// first micro-batch skip its forward passes: before the first update the policy IS the
/// rollout policy, so the rollout's activations are exactly the ones its backward needs.
public func clippedRatioPass(policy: DiT, reference: DiT?, beta: Float, objective: PolicyObjective,
                            rollout r: Rollout, advantages: Advantages, microBatches M: Int, epochs: Int,
                            optimizer: inout AdamW, ws: Workspace, refWS: Workspace?, rng: inout RNG,
                            rolloutWorkspaces: [Workspace]? = nil) -> PolicyPassStats {
    let B = r.batch, n = r.pixels, cfg = r.config, K = cfg.stochasticSteps, L = r.tokens.count / B
    let mb = B / M
    precondition(ws.batch >= mb && ws.training)
    var steps = (0..<K).map { k -> StepStats in var s = StepStats(); s.k = k; s.t = cfg.coefficients(k).t; return s }
    var onPolicy = 0.0, totalLoss = 0.0, norms: [Float] = []
    var x = [Float](repeating: 0, count: mb * n), xNext = x, muOld = x, mu = x, dv = x, muRef = x
    var tt = [Float](repeating: 0, count: mb), tok = [Int32](repeating: 0, count: mb * L)
    var adv = [Float](repeating: 0, count: mb), keep = [Bool](repeating: false, count: mb)
    let kept = advantages.keep.filter { $0 }.count
    for epoch in 0..<epochs {
        // later epochs shuffle the samples (Fisher-Yates) before cutting micro-batches
        var order = Array(0..<B)
        if epoch > 0 { for i in stride(from: B - 1, to: 0, by: -1) { order.swapAt(i, rng.int(i + 1)) } }
        for m in 0..<M {
            let idx = Array(order[(m * mb)..<((m + 1) * mb)])
            let nKept = idx.filter { advantages.keep[$0] }.count
            policy.grads.zero()
            for (j, b) in idx.enumerated() {
                adv[j] = advantages.values[b]; keep[j] = advantages.keep[b]
                for l in 0..<L { tok[j * L + l] = r.tokens[b * L + l] }
            }
            for k in 0..<K {
                let c = cfg.coefficients(k)
                for (j, b) in idx.enumerated() {
                    let src = (k * B + b) * n, dst = j * n
                    for i in 0..<n {
                        x[dst + i] = r.states[src + i]
                        xNext[dst + i] = r.states[src + B * n + i]
                        muOld[dst + i] = r.means[src + i]
                    }
                    tt[j] = c.t
                }
                // reuse the rollout's activations (same weights, same inputs: rows 0..<mb of step k)
                let reuse = epoch == 0 && m == 0 && (rolloutWorkspaces?.count ?? 0) == cfg.steps && rolloutWorkspaces![k].training
                let stepWS = reuse ? rolloutWorkspaces![k] : ws
                let v = reuse ? UnsafeMutablePointer(stepWS.v.pointer) : policy.forward(ws, x: x, t: tt, tokens: tok, batch: mb)
                for i in 0..<(mb * n) { mu[i] = c.cx * x[i] + c.cv * v[i] }
                if beta > 0, let reference, let refWS {
                    let vr = reference.forward(refWS, x: x, t: tt, tokens: tok, batch: mb)
                    for i in 0..<(mb * n) { muRef[i] = c.cx * x[i] + c.cv * vr[i] }
                }
                let weight = objective.stepWeight(c) / Float(K) / Float(max(nKept, 1))
                for j in 0..<mb {
                    let o = j * n
                    let s = xNext.withUnsafeBufferPointer { xp in muOld.withUnsafeBufferPointer { op in mu.withUnsafeBufferPointer { mp in
                        dv.withUnsafeMutableBufferPointer { dp in
                            objective.sampleLoss(c, xNext: xp.baseAddress! + o, muOld: op.baseAddress! + o, mu: mp.baseAddress! + o,
                                                 n: n, advantage: adv[j], dmu: dp.baseAddress! + o)
                        }
                    } } }
                    steps[k].add(s, advantage: adv[j], eps: objective.clipRange)
                    if epoch == 0 && m == 0 { onPolicy = max(onPolicy, abs(Double(s.ratio) - 1)) }
                    // dL/dv = w * dL/dmu * dmu/dv  (+ beta KL)
                    var klGrad: Float = 0, kl = 0.0
                    if beta > 0 {
                        kl = mu.withUnsafeBufferPointer { mp in muRef.withUnsafeBufferPointer { rp in
                            stepKL(c, mu: mp.baseAddress! + o, muRef: rp.baseAddress! + o, n: n)
                        } }
                        klGrad = stepKLGradientScale(c, n: n, beta: beta) / Float(K) / Float(mb)
                        steps[k].sumKL += kl
                    }
                    if keep[j] {
                        totalLoss += Double(s.loss * weight) + Double(beta) * kl / Double(K) / Double(mb)
                        for i in 0..<n { dv[o + i] = (weight * dv[o + i] + klGrad * (mu[o + i] - muRef[o + i])) * c.cv }
                    } else {
                        totalLoss += Double(beta) * kl / Double(K) / Double(mb)
                        for i in 0..<n { dv[o + i] = klGrad * (mu[o + i] - muRef[o + i]) * c.cv }
                    }
                }
                policy.backward(stepWS, dv: dv, batch: mb)
            }
            norms.append(optimizer.update(params: policy.params.buffer, grads: policy.grads.buffer))
        }
    }
    return PolicyPassStats(steps: steps, onPolicyMaxDeviation: onPolicy, loss: totalLoss / Double(M * epochs),
                           gradNorms: norms, kept: kept)
}
