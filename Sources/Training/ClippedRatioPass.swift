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
    let noise: GradientNoise

    public init(kind: Algorithm, objective: PolicyObjective, config: FinetuneConfig, model: DiT) throws {
        self.kind = kind; self.objective = objective; self.config = config
        let u = config.passSize
        rolloutWorkspaces = try (0..<config.sde.steps).map { _ in try model.makeWorkspace(batch: u, training: true) }
        trainWS = try model.makeWorkspace(batch: u, training: true)
        refWS = try model.makeWorkspace(batch: u, training: false)
        noise = GradientNoise(parameters: model.params.count, acrossSteps: false)
    }

    public func train(_ batch: RolloutBatch, _ s: TrainingState, _ record: inout MetricsRecord) throws {
        let c = config
        let adv = Advantages(rewards: batch.rewards, groupSize: c.groupSize, globalStd: c.globalStd, clip: c.advantageClip)
        noise.reset()
        let stats = clippedRatioPass(policy: s.policy, reference: s.reference, beta: c.beta, objective: objective,
                                     rollout: batch.rollout, advantages: adv, microBatches: c.microBatches, epochs: c.innerEpochs,
                                     optimizer: &s.optimizer, ws: trainWS, refWS: c.beta > 0 ? refWS : nil, rng: &s.rng,
                                     rolloutWorkspaces: rolloutWorkspaces, layout: batch.layout, noise: noise)
        if let (signal, trace) = noise.estimate(world: batch.layout.world) { record.gradSignal = signal; record.gradNoise = trace }
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

    /// The accumulators as numbers to sum over processes (count, kept, sums, clip counts).
    static let sumCount = 10
    var sums: [Double] {
        get { [Double(count), Double(kept), sumR, sumR2, sumLogR, sumPlainLogR, sumAbsA, sumKL, Double(clipHigh), Double(clipLow)] }
        set {
            count = Int(newValue[0]); kept = Int(newValue[1]); sumR = newValue[2]; sumR2 = newValue[3]; sumLogR = newValue[4]
            sumPlainLogR = newValue[5]; sumAbsA = newValue[6]; sumKL = newValue[7]; clipHigh = Int(newValue[8]); clipLow = Int(newValue[9])
        }
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

/// Which samples of a rollout batch this process holds, and how a pass cuts them.
/// `samples[i]` is the batch index (0..<total) of local row i, ascending; a single process holds
/// them all. `microBatchSize` caps the samples of one forward/backward pass: the optimiser's
/// batches are accumulated over passes of at most that many, so activations take memory for
/// that many samples, whatever the batch. `reusableRows`: the leading local rows whose
/// activations the rollout left in its training workspaces (one per SDE step).
public struct PassLayout {
    public var total: Int
    public var samples: [Int]
    public var microBatchSize: Int
    public var reusableRows = 0
    public var world: World
    /// Every process's `samples`, in rank order.
    public var everyRank: [[Int]]

    public init(total: Int, samples: [Int]? = nil, microBatchSize: Int, reusableRows: Int = 0, world: World = .single) {
        self.total = total; self.samples = samples ?? Array(0..<total)
        self.microBatchSize = microBatchSize; self.reusableRows = reusableRows; self.world = world
        everyRank = [self.samples]
    }

    /// P groups of G shared over the world's processes: rank r holds the groups r, r + N, ...
    /// (a group never spans processes; every optimiser batch is spread over them).
    public init(groups P: Int, groupSize G: Int, microBatchSize: Int, world: World) {
        let everyRank = (0..<world.size).map { r in stride(from: r, to: P, by: world.size).flatMap { p in (p * G)..<((p + 1) * G) } }
        self.init(total: P * G, samples: everyRank[world.rank], microBatchSize: microBatchSize, world: world)
        self.everyRank = everyRank
    }

    /// Values laid out (blocks, this process's samples) from every process, as (blocks, total)
    /// in batch order (blocks: 1 for a value per sample, T for one per visited state).
    public func gather(_ local: [Float], blocks: Int = 1) -> [Float] {
        let all = world.gather(local, counts: everyRank.map { blocks * $0.count })
        var out = [Float](repeating: 0, count: blocks * total), o = 0
        for samples in everyRank {
            for k in 0..<blocks { for b in samples { out[k * total + b] = all[o]; o += 1 } }
        }
        return out
    }

    /// Local rows of the given batch indices (those this process holds), in the order given,
    /// cut into passes of at most `microBatchSize`.
    func passes(_ indices: ArraySlice<Int>, rowOf: [Int]) -> [[Int]] {
        let rows = indices.compactMap { rowOf[$0] >= 0 ? rowOf[$0] : nil }
        return stride(from: 0, to: rows.count, by: microBatchSize).map { Array(rows[$0..<min(rows.count, $0 + microBatchSize)]) }
    }
    var rowOf: [Int] {
        var r = [Int](repeating: -1, count: total)
        for (i, b) in samples.enumerated() { r[b] = i }
        return r
    }
}

/// The clipped-ratio pass of Flow-GRPO and GRPO-Guard (which differ only in their
/// `PolicyObjective`). Trains `policy` on a rollout with a clipped-ratio objective: the batch is
/// split into `microBatches` optimiser batches (in rollout order in the first epoch, whole
/// groups each; shuffled in later epochs); for each, the log-probabilities of the stored
/// transitions are recomputed with the current weights at every trained step, the clipped loss
/// (+ beta KL to `reference`) is back-propagated through v pass by pass (`layout`), the
/// gradients are summed over the world's processes, and one AdamW step is taken.
///
/// `rolloutWorkspaces` (one training workspace per SDE step, filled by the rollout) lets the
/// first pass skip its forward passes: before the first update the policy IS the rollout
/// policy, so the rollout's activations are exactly the ones its backward needs.
/// `noise` measures the gradient noise scale of the first (on-policy) micro-batch from its
/// passes (a trajectory a sample): it needs passes smaller than the micro-batch.
public func clippedRatioPass(policy: DiT, reference: DiT?, beta: Float, objective: PolicyObjective,
                            rollout r: Rollout, advantages: Advantages, microBatches M: Int, epochs: Int,
                            optimizer: inout AdamW, ws: Workspace, refWS: Workspace?, rng: inout RNG,
                            rolloutWorkspaces: [Workspace]? = nil, layout: PassLayout? = nil,
                            noise: GradientNoise? = nil) -> PolicyPassStats {
    let lay = layout ?? PassLayout(total: r.batch, microBatchSize: ws.batch,
                                   reusableRows: rolloutWorkspaces?.first?.batch ?? 0, world: .single)
    let world = lay.world, rowOf = lay.rowOf
    let B = lay.total, Bl = r.batch, n = r.pixels, cfg = r.config, K = cfg.stochasticSteps, L = r.tokens.count / max(Bl, 1)
    let mb = B / M, u = lay.microBatchSize
    precondition(Bl == lay.samples.count && ws.batch >= u && ws.training)
    let canReuse = (rolloutWorkspaces?.count ?? 0) == cfg.steps && rolloutWorkspaces!.allSatisfy { $0.training }
    let coefficients = (0..<K).map(cfg.coefficients)
    var steps = (0..<K).map { k -> StepStats in var s = StepStats(); s.k = k; s.t = coefficients[k].t; return s }
    var onPolicy = 0.0, totalLoss = 0.0, norms: [Float] = []
    var x = [Float](repeating: 0, count: u * n), xNext = x, muOld = x, mu = x, dv = x, muRef = x
    var tt = [Float](repeating: 0, count: u), tok = [Int32](repeating: 0, count: u * L)
    var adv = [Float](repeating: 0, count: u), keep = [Bool](repeating: false, count: u)
    let kept = advantages.keep.filter { $0 }.count
    for epoch in 0..<epochs {
        // later epochs shuffle the samples (Fisher-Yates) before cutting mini-batches
        var order = Array(0..<B)
        if epoch > 0 { for i in stride(from: B - 1, to: 0, by: -1) { order.swapAt(i, rng.int(i + 1)) } }
        for m in 0..<M {
            let idx = order[(m * mb)..<((m + 1) * mb)]
            let nKept = idx.filter { advantages.keep[$0] }.count
            policy.grads.zero()
            // the on-policy step (the policy gradient) is measured when it has pieces to pair:
            // several passes, or one on each of several processes
            let passes = lay.passes(idx, rowOf: rowOf)
            let measure = epoch == 0 && m == 0 && (passes.count > 1 || world.isDistributed) ? noise : nil
            for (p, rows) in passes.enumerated() {
                let c = rows.count
                measure?.beginPiece(policy.grads)
                for (j, row) in rows.enumerated() {
                    let b = lay.samples[row]
                    adv[j] = advantages.values[b]; keep[j] = advantages.keep[b]
                    for l in 0..<L { tok[j * L + l] = r.tokens[row * L + l] }
                }
                // reuse the rollout's activations (same weights, same inputs: rows 0..<c of step k)
                let reuse = canReuse && epoch == 0 && m == 0 && p == 0 && rows == Array(0..<c) && c <= lay.reusableRows
                for k in 0..<K {
                    let cf = coefficients[k]
                    for (j, row) in rows.enumerated() {
                        let src = (k * Bl + row) * n, dst = j * n
                        for i in 0..<n {
                            x[dst + i] = r.states[src + i]
                            xNext[dst + i] = r.states[src + Bl * n + i]
                            muOld[dst + i] = r.means[src + i]
                        }
                        tt[j] = cf.t
                    }
                    let stepWS = reuse ? rolloutWorkspaces![k] : ws
                    let v = reuse ? UnsafeMutablePointer(stepWS.v.pointer) : policy.forward(ws, x: x, t: tt, tokens: tok, batch: c)
                    for i in 0..<(c * n) { mu[i] = cf.cx * x[i] + cf.cv * v[i] }
                    if beta > 0, let reference, let refWS {
                        let vr = reference.forward(refWS, x: x, t: tt, tokens: tok, batch: c)
                        for i in 0..<(c * n) { muRef[i] = cf.cx * x[i] + cf.cv * vr[i] }
                    }
                    let weight = objective.stepWeight(cf) / Float(K) / Float(max(nKept, 1))
                    for j in 0..<c {
                        let o = j * n
                        let s = xNext.withUnsafeBufferPointer { xp in muOld.withUnsafeBufferPointer { op in mu.withUnsafeBufferPointer { mp in
                            dv.withUnsafeMutableBufferPointer { dp in
                                objective.sampleLoss(cf, xNext: xp.baseAddress! + o, muOld: op.baseAddress! + o, mu: mp.baseAddress! + o,
                                                     n: n, advantage: adv[j], dmu: dp.baseAddress! + o)
                            }
                        } } }
                        steps[k].add(s, advantage: adv[j], eps: objective.clipRange)
                        if epoch == 0 && m == 0 { onPolicy = max(onPolicy, abs(Double(s.ratio) - 1)) }
                        // dL/dv = w * dL/dmu * dmu/dv  (+ beta KL)
                        var klGrad: Float = 0, kl = 0.0
                        if beta > 0 {
                            kl = mu.withUnsafeBufferPointer { mp in muRef.withUnsafeBufferPointer { rp in
                                stepKL(cf, mu: mp.baseAddress! + o, muRef: rp.baseAddress! + o, n: n)
                            } }
                            klGrad = stepKLGradientScale(cf, n: n, beta: beta) / Float(K) / Float(mb)
                            steps[k].sumKL += kl
                        }
                        if keep[j] {
                            totalLoss += Double(s.loss * weight) + Double(beta) * kl / Double(K) / Double(mb)
                            for i in 0..<n { dv[o + i] = (weight * dv[o + i] + klGrad * (mu[o + i] - muRef[o + i])) * cf.cv }
                        } else {
                            totalLoss += Double(beta) * kl / Double(K) / Double(mb)
                            for i in 0..<n { dv[o + i] = klGrad * (mu[o + i] - muRef[o + i]) * cf.cv }
                        }
                    }
                    policy.backward(stepWS, dv: dv, batch: c)
                }
                measure?.endPiece(policy.grads, count: keep[0..<c].reduce(0) { $0 + ($1 ? 1 : 0) }, scale: Double(max(nKept, 1)))
            }
            world.sum(policy.grads)
            measure?.endStep(policy.grads, scale: Double(max(nKept, 1)))
            norms.append(optimizer.update(params: policy.params.buffer, grads: policy.grads.buffer))
        }
    }
    // every process's share of the statistics
    var sums = [totalLoss] + steps.flatMap(\.sums)
    world.sum(&sums)
    totalLoss = sums[0]
    for k in 0..<K { steps[k].sums = Array(sums[(1 + k * StepStats.sumCount)..<(1 + (k + 1) * StepStats.sumCount)]) }
    onPolicy = world.max(onPolicy)
    return PolicyPassStats(steps: steps, onPolicyMaxDeviation: onPolicy, loss: totalLoss / Double(M * epochs),
                           gradNorms: norms, kept: kept)
}
