import Analysis
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

    /// The report's chart of this family: the log-ratio the loss used, per trained SDE step.
    public static let diagnostics = DiagnosticsChart.perStep(key: "logratio_mean", title: "mean log-ratio used in the loss, per SDE step k (t)", yLabel: "log r")

    public func train(_ batch: RolloutBatch, _ s: TrainingState) throws -> AlgorithmMetrics {
        let c = config
        let adv = Advantages(rewards: batch.rewards, groupSize: c.groupSize, globalStd: c.globalStd, clip: c.advantageClip)
        noise.reset()
        let pass = ClippedRatioPass(policy: s.policy, reference: s.reference, beta: c.beta, objective: objective,
                                    workspaces: RatioPassWorkspaces(train: trainWS, reference: c.beta > 0 ? refWS : nil, rollout: rolloutWorkspaces))
        let stats = pass.run(rollout: batch.rollout, advantages: adv, layout: batch.layout, microBatches: c.microBatches, epochs: c.innerEpochs,
                             optimizer: &s.optimizer, rng: &s.rng, noise: noise)
        var m = AlgorithmMetrics()
        m["onpolicy_ratio_max_dev"] = stats.onPolicyMaxDeviation
        m["loss"] = stats.loss
        m["grad_norm"] = Double(stats.gradNorms.max() ?? 0)
        m["kept_fraction"] = Double(stats.kept) / Double(batch.rewards.count)
        m["clip_range"] = Double(objective.clipRange)
        m["kl_ref"] = stats.steps.map { $0.sumKL / Double(max($0.count, 1)) }.reduce(0, +) / Double(max(stats.steps.count, 1))
        if let (signal, trace) = noise.estimate(world: batch.layout.world) { m["grad_signal"] = signal; m["grad_noise"] = trace }
        m.steps = stats.steps.map(\.scalars)
        return m
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

    /// The step's statistics as metrics.jsonl's "timesteps" entries hold them.
    public var scalars: Scalars {
        let n = Double(max(count, 1))
        return ["k": Double(k), "t": Double(t), "ratio_mean": ratioMean, "ratio_std": ratioStd, "logratio_mean": logRatioMean,
                "plain_logratio_mean": sumPlainLogR / n, "clip_high": Double(clipHigh) / n, "clip_low": Double(clipLow) / n,
                "abs_adv_mean": sumAbsA / n, "kl_ref": sumKL / n]
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

/// The workspaces a clipped-ratio pass runs in: a training workspace for its passes, the base
/// model's (for the KL term; nil without one), and the rollout's per-step training workspaces,
/// whose activations the first on-policy pass reuses (empty: none to reuse).
public struct RatioPassWorkspaces {
    public var train: Workspace
    public var reference: Workspace?
    public var rollout: [Workspace]
    public init(train: Workspace, reference: Workspace? = nil, rollout: [Workspace] = []) {
        self.train = train; self.reference = reference; self.rollout = rollout
    }
}

/// The per-pass arrays of the clipped-ratio objective (at most `u` samples a pass).
final class RatioPassBuffers {
    var x: [Float], xNext: [Float], muOld: [Float], mu: [Float], dv: [Float], muRef: [Float]
    var t: [Float], tokens: [Int32], advantages: [Float], keep: [Bool]
    init(samples u: Int, pixels n: Int, textLength L: Int) {
        x = [Float](repeating: 0, count: u * n); xNext = x; muOld = x; mu = x; dv = x; muRef = x
        t = [Float](repeating: 0, count: u); tokens = [Int32](repeating: 0, count: u * L)
        advantages = t; keep = [Bool](repeating: false, count: u)
    }
}

/// The clipped-ratio pass of Flow-GRPO and GRPO-Guard (which differ only in their
/// `PolicyObjective`). Trains `policy` on a rollout with a clipped-ratio objective: the batch is
/// split into `microBatches` optimiser batches (in rollout order in the first epoch, whole
/// groups each; shuffled in later epochs); for each (`microBatch`), the log-probabilities of the
/// stored transitions are recomputed with the current weights at every trained step, the
/// clipped loss (+ beta KL to `reference`) is back-propagated through v pass by pass
/// (`layout`), the gradients are summed over the world's processes, and one AdamW step is taken.
///
/// The rollout's workspaces (one training workspace per SDE step, filled by the rollout) let
/// the first pass skip its forward passes: before the first update the policy IS the rollout
/// policy, so the rollout's activations are exactly the ones its backward needs.
public struct ClippedRatioPass {
    public let policy: DiT, reference: DiT?
    public let beta: Float
    public let objective: PolicyObjective
    public let workspaces: RatioPassWorkspaces

    public init(policy: DiT, reference: DiT?, beta: Float, objective: PolicyObjective, workspaces: RatioPassWorkspaces) {
        self.policy = policy; self.reference = reference; self.beta = beta; self.objective = objective; self.workspaces = workspaces
    }

    /// What one call trains on, and what it accumulates.
    final class Run {
        let r: Rollout, advantages: Advantages, layout: PassLayout, rowOf: [Int]
        let coefficients: [StepCoefficients], mb: Int
        let buffers: RatioPassBuffers
        var steps: [StepStats]
        var onPolicy = 0.0, totalLoss = 0.0
        init(_ r: Rollout, _ advantages: Advantages, _ layout: PassLayout, microBatch mb: Int) {
            self.r = r; self.advantages = advantages; self.layout = layout; rowOf = layout.rowOf; self.mb = mb
            let K = r.config.stochasticSteps, cf = (0..<K).map(r.config.coefficients)
            coefficients = cf
            steps = (0..<K).map { k -> StepStats in var s = StepStats(); s.k = k; s.t = cf[k].t; return s }
            buffers = RatioPassBuffers(samples: layout.microBatchSize, pixels: r.pixels, textLength: r.tokens.count / max(r.batch, 1))
        }
    }

    /// `epochs` passes over the rollout in `microBatches` optimiser steps. `noise` measures the
    /// gradient noise scale of the first (on-policy) micro-batch from its passes (a trajectory a
    /// sample): it needs passes smaller than the micro-batch.
    public func run(rollout r: Rollout, advantages: Advantages, layout: PassLayout, microBatches M: Int, epochs: Int,
                    optimizer: inout AdamW, rng: inout RNG, noise: GradientNoise? = nil) -> PolicyPassStats {
        let B = layout.total, world = layout.world
        precondition(r.batch == layout.samples.count && workspaces.train.batch >= layout.microBatchSize && workspaces.train.training)
        let state = Run(r, advantages, layout, microBatch: B / M)
        var norms: [Float] = []
        for epoch in 0..<epochs {
            // later epochs shuffle the samples (Fisher-Yates) before cutting mini-batches
            var order = Array(0..<B)
            if epoch > 0 { for i in stride(from: B - 1, to: 0, by: -1) { order.swapAt(i, rng.int(i + 1)) } }
            for m in 0..<M {
                microBatch(order[(m * state.mb)..<((m + 1) * state.mb)], state, onPolicy: epoch == 0 && m == 0, noise: noise)
                norms.append(optimizer.update(params: policy.params.buffer, grads: policy.grads.buffer))
            }
        }
        // every process's share of the statistics
        let K = state.steps.count
        var sums = [state.totalLoss] + state.steps.flatMap(\.sums)
        world.sum(&sums)
        for k in 0..<K { state.steps[k].sums = Array(sums[(1 + k * StepStats.sumCount)..<(1 + (k + 1) * StepStats.sumCount)]) }
        return PolicyPassStats(steps: state.steps, onPolicyMaxDeviation: world.max(state.onPolicy), loss: sums[0] / Double(M * epochs),
                               gradNorms: norms, kept: advantages.keep.filter { $0 }.count)
    }

    /// One optimiser batch's gradient (batch indices `idx`), accumulated pass by pass and summed
    /// over the world's processes. The on-policy one (the first of the first epoch) may reuse
    /// the rollout's activations, gives the on-policy ratio check, and is the one `noise` measures
    /// when it has pieces to pair (several passes, or one on each of several processes).
    func microBatch(_ idx: ArraySlice<Int>, _ s: Run, onPolicy first: Bool, noise: GradientNoise?) {
        let lay = s.layout, world = lay.world
        let nKept = idx.filter { s.advantages.keep[$0] }.count
        policy.grads.zero()
        let passes = lay.passes(idx, rowOf: s.rowOf)
        let measure = first && (passes.count > 1 || world.isDistributed) ? noise : nil
        let canReuse = workspaces.rollout.count == s.r.config.steps && workspaces.rollout.allSatisfy(\.training)
        for (p, rows) in passes.enumerated() {
            measure?.beginPiece(policy.grads)
            // reuse the rollout's activations (same weights, same inputs: rows 0..<c of step k)
            let reuse = canReuse && first && p == 0 && rows == Array(0..<rows.count) && rows.count <= lay.reusableRows
            pass(rows, s, onPolicy: first, reuse: reuse, kept: nKept)
            measure?.endPiece(policy.grads, count: s.buffers.keep[0..<rows.count].reduce(0) { $0 + ($1 ? 1 : 0) }, scale: Double(max(nKept, 1)))
        }
        world.sum(policy.grads)
        measure?.endStep(policy.grads, scale: Double(max(nKept, 1)))
    }

    /// One pass (local rows `rows`): at every trained step, the policy's means, the objective's
    /// loss and dL/dmu per sample, the KL to the base model, and the backward through v.
    func pass(_ rows: [Int], _ s: Run, onPolicy first: Bool, reuse: Bool, kept nKept: Int) {
        let r = s.r, b = s.buffers, c = rows.count, n = r.pixels, Bl = r.batch, K = s.coefficients.count, L = b.tokens.count / max(b.t.count, 1)
        for (j, row) in rows.enumerated() {
            let i = s.layout.samples[row]
            b.advantages[j] = s.advantages.values[i]; b.keep[j] = s.advantages.keep[i]
            for l in 0..<L { b.tokens[j * L + l] = r.tokens[row * L + l] }
        }
        for k in 0..<K {
            let cf = s.coefficients[k]
            for (j, row) in rows.enumerated() {
                let src = (k * Bl + row) * n, dst = j * n
                for i in 0..<n {
                    b.x[dst + i] = r.states[src + i]
                    b.xNext[dst + i] = r.states[src + Bl * n + i]
                    b.muOld[dst + i] = r.means[src + i]
                }
                b.t[j] = cf.t
            }
            let stepWS = reuse ? workspaces.rollout[k] : workspaces.train
            let v = reuse ? UnsafeMutablePointer(stepWS.v.pointer) : policy.forward(workspaces.train, x: b.x, t: b.t, tokens: b.tokens, batch: c)
            for i in 0..<(c * n) { b.mu[i] = cf.cx * b.x[i] + cf.cv * v[i] }
            if beta > 0, let reference, let refWS = workspaces.reference {
                let vr = reference.forward(refWS, x: b.x, t: b.t, tokens: b.tokens, batch: c)
                for i in 0..<(c * n) { b.muRef[i] = cf.cx * b.x[i] + cf.cv * vr[i] }
            }
            let weight = objective.stepWeight(cf) / Float(K) / Float(max(nKept, 1))
            for j in 0..<c {
                let o = j * n
                let sl = b.xNext.withUnsafeBufferPointer { xp in b.muOld.withUnsafeBufferPointer { op in b.mu.withUnsafeBufferPointer { mp in
                    b.dv.withUnsafeMutableBufferPointer { dp in
                        objective.sampleLoss(cf, xNext: xp.baseAddress! + o, muOld: op.baseAddress! + o, mu: mp.baseAddress! + o,
                                             n: n, advantage: b.advantages[j], dmu: dp.baseAddress! + o)
                    }
                } } }
                s.steps[k].add(sl, advantage: b.advantages[j], eps: objective.clipRange)
                if first { s.onPolicy = max(s.onPolicy, abs(Double(sl.ratio) - 1)) }
                // dL/dv = w * dL/dmu * dmu/dv  (+ beta KL)
                var klGrad: Float = 0, kl = 0.0
                if beta > 0 {
                    kl = b.mu.withUnsafeBufferPointer { mp in b.muRef.withUnsafeBufferPointer { rp in
                        stepKL(cf, mu: mp.baseAddress! + o, muRef: rp.baseAddress! + o, n: n)
                    } }
                    klGrad = stepKLGradientScale(cf, n: n, beta: beta) / Float(K) / Float(s.mb)
                    s.steps[k].sumKL += kl
                }
                if b.keep[j] {
                    s.totalLoss += Double(sl.loss * weight) + Double(beta) * kl / Double(K) / Double(s.mb)
                    for i in 0..<n { b.dv[o + i] = (weight * b.dv[o + i] + klGrad * (b.mu[o + i] - b.muRef[o + i])) * cf.cv }
                } else {
                    s.totalLoss += Double(beta) * kl / Double(K) / Double(s.mb)
                    for i in 0..<n { b.dv[o + i] = klGrad * (b.mu[o + i] - b.muRef[o + i]) * cf.cv }
                }
            }
            policy.backward(stepWS, dv: b.dv, batch: c)
        }
    }
}
