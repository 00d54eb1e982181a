import Foundation
import Tensor
import Model
import Flow

/// Reward shaping: z = (R - mean) / (std + 1e-6) per group (or with running batch statistics),
/// rt = tanh(z / kappa), in (-1, 1). Without shaping rt = R.
public func shapeRewards(_ r: [Float], groupSize G: Int, kappa: Float, shaping: Bool, stats: (mean: Float, std: Float)? = nil) -> [Float] {
    guard shaping else { return r }
    var out = [Float](repeating: 0, count: r.count)
    for group in groupStatistics(r, groupSize: G) {
        let mean = stats?.mean ?? group.mean, std = stats?.std ?? group.std
        for i in group.range { out[i] = tanhf((r[i] - mean) / (std + 1e-6) / kappa) }
    }
    return out
}

/// Critic-weighted regression weights: A = rt - V (V = 0 during warm-up), Ahat = clamp(A, -cA, cA),
/// w = exp(tau Ahat) ("exp") or w = Ahat ("signed"). Returns the weights and the clipped count.
public func criticWeights(shaped rt: [Float], values: [Float]?, clip cA: Float, tau: Float, weighting: ACFlowWeighting) -> (weights: [Float], clipped: Int) {
    var clipped = 0
    let w = rt.indices.map { i -> Float in
        let a = rt[i] - (values?[i] ?? 0)
        let ahat = max(-cA, min(cA, a))
        if ahat != a { clipped += 1 }
        return weighting == .signed ? ahat : expf(tau * ahat)
    }
    return (w, clipped)
}

/// AC-Flow: actor-critic fine-tuning with intermediate feedback (reconstruction; see ACFlowConfig).
public final class ACFlow: FinetuneAlgorithm {
    public var kind: Algorithm { .acflow }
    public let options: ACFlowConfig
    let config: FinetuneConfig
    public let rolloutWorkspaces: [Workspace]
    let trainWS: Workspace, refWS: Workspace
    public let critic: Critic
    public var criticOptimizer: AdamW
    public private(set) var criticInUse = false      // latched once warm-up ends
    var runningMean: Float = 0, runningStd: Float = 1, statsInitialised = false
    public var deterministicRollout: Bool { !options.sdeRollouts }

    public init(config: FinetuneConfig, model: DiT) throws {
        options = config.acflow
        self.config = config
        let B = config.batchSize
        rolloutWorkspaces = [try model.makeWorkspace(batch: B, training: false)]
        trainWS = try model.makeWorkspace(batch: B, training: true)
        refWS = try model.makeWorkspace(batch: B, training: false)
        critic = Critic(model: model.config, width: options.criticWidth, seed: config.seed ^ 0xC817)
        criticOptimizer = AdamW(count: critic.params.count, lr: options.criticLR, weightDecay: 1e-4, maxGradNorm: 1.0)
    }

    /// Trains the critic by MSE to `target` on (x, t, tokens); returns the MSE before the update.
    @discardableResult
    public func trainCritic(x: [Float], t: [Float], tokens: [Int32], target: [Float]) -> Float {
        let a = critic.forward(x: x, t: t, tokens: tokens)
        var mse: Float = 0
        var dV = [Float](repeating: 0, count: t.count)
        for i in 0..<t.count {
            let e = a.value[i] - target[i]
            mse += e * e / Float(t.count)
            dV[i] = 2 * e / Float(t.count)
        }
        critic.grads.zero()
        critic.backward(a, dValue: dV)
        criticOptimizer.update(params: critic.params.buffer, grads: critic.grads.buffer)
        return mse
    }

    public func train(_ batch: RolloutBatch, _ run: TrainingState, _ record: inout MetricsRecord) throws {
        let c = config, B = batch.rewards.count, n = run.policy.config.pixelsPerImage, T = c.sde.steps
        // shaped target in (-1, 1)
        var stats: (Float, Float)? = nil
        if options.statsEMA > 0 {
            let (m, s) = meanAndStd(batch.rewards[...])
            if !statsInitialised { runningMean = m; runningStd = s; statsInitialised = true } else {
                runningMean = options.statsEMA * runningMean + (1 - options.statsEMA) * m
                runningStd = options.statsEMA * runningStd + (1 - options.statsEMA) * s
            }
            stats = (runningMean, runningStd)
        }
        let rt = shapeRewards(batch.rewards, groupSize: c.groupSize, kappa: options.kappa, shaping: options.shaping, stats: stats)
        // intermediate states: x_t = (1 - t) x0 + t eps with fresh eps (actor and critic), plus
        // the rollout's own trajectory states (critic)
        var t = [Float](repeating: 0, count: B), eps = [Float](repeating: 0, count: B * n)
        var xt = eps, target = eps
        for b in 0..<B {
            t[b] = logitNormal(&run.rng)
            let x0 = batch.rollout.image(b)
            x0.withUnsafeBufferPointer { x0p in xt.withUnsafeMutableBufferPointer { xp in
                target.withUnsafeMutableBufferPointer { tp in eps.withUnsafeMutableBufferPointer { ep in
                    flowMatchingPair(x0: x0p.baseAddress!, t: t[b], n: n, rng: &run.rng, xt: xp.baseAddress! + b * n,
                                     target: tp.baseAddress! + b * n, eps: ep.baseAddress! + b * n)
                } }
            } }
        }
        let tokens = batch.rollout.tokens
        var cx = xt, ct = t, ctok = tokens, crt = rt
        if options.trajectoryStates {
            let grid = c.sde.grid
            for b in 0..<B {
                let k = 1 + run.rng.int(T - 1)           // an intermediate grid point, 0 < t < 1
                cx += batch.rollout.state(k, b); ct.append(grid[k]); let L = run.policy.config.textLength
                ctok += tokens[(b * L)..<((b + 1) * L)]; crt.append(rt[b])
            }
        }
        var criticMSE: Float = 0
        for s in 0..<options.criticSteps {
            let m = trainCritic(x: cx, t: ct, tokens: ctok, target: crt)
            if s == 0 { criticMSE = m }
        }
        // the critic's values on the actor's states (after its update)
        let values = critic.forward(x: xt, t: t, tokens: tokens).value
        let rtMean = rt.reduce(0, +) / Float(B)
        let varRt = rt.reduce(0) { $0 + ($1 - rtMean) * ($1 - rtMean) } / Float(B)
        var resid: [Float] = (0..<B).map { rt[$0] - values[$0] }
        let rMean = resid.reduce(0, +) / Float(B)
        let varRes = resid.reduce(0) { $0 + ($1 - rMean) * ($1 - rMean) } / Float(B)
        resid.removeAll()
        let explained = varRt > 0 ? 1 - varRes / varRt : 0
        // warm-up: the critic is trained but not trusted until the configured iteration (or the MSE gate)
        let warm = options.warmup(steps: c.steps)
        if !criticInUse && options.useCritic {
            if run.iteration >= warm { criticInUse = true }
            else if let gate = options.mseGate, varRt > 0, criticMSE < gate * varRt { criticInUse = true }
        }
        let (weights, clipped) = criticWeights(shaped: rt, values: criticInUse ? values : nil, clip: options.advantageClip,
                                               tau: options.tau, weighting: options.weighting)
        // actor: weighted flow matching + W2 regulariser against the frozen base model
        run.policy.grads.zero()
        let v = run.policy.forward(trainWS, x: xt, t: t, tokens: tokens, batch: B)
        let vRef = run.reference.forward(refWS, x: xt, t: t, tokens: tokens, batch: B)
        var dv = [Float](repeating: 0, count: B * n)
        let (loss, w2) = acflowActorLoss(v: v, target: target, vRef: vRef, weights: weights, alpha: options.alpha, pixels: n, dv: &dv)
        run.policy.backward(trainWS, dv: dv, batch: B)
        let norm = run.optimizer.update(params: run.policy.params.buffer, grads: run.policy.grads.buffer)
        record.criticMse = Double(criticMSE); record.criticExplainedVariance = Double(explained); record.criticInUse = criticInUse
        record.advClippedFraction = Double(clipped) / Double(B)
        record.weightMean = Double(weights.reduce(0, +) / Float(B)); record.weightMax = Double(weights.max() ?? 0)
        record.w2 = w2; record.loss = loss; record.gradNorm = Double(norm)
    }

    public func save(into f: inout SafeTensorsFile) {
        f.add("critic.params", shape: [critic.params.count], values: critic.params.array)
        f.add(criticOptimizer, as: "critic.adam")
        f.metadata["critic_in_use"] = criticInUse ? "1" : "0"
        f.metadata["reward_stats"] = "\(statsInitialised ? 1 : 0),\(runningMean),\(runningStd)"
    }

    public func restore(from f: SafeTensorsFile, source: String) throws {
        guard let p = f.tensors["critic.params"], p.values.count == critic.params.count else {
            throw FinetuneError("\(source): the AC-Flow critic state is missing or does not match --acflow-critic-width")
        }
        try f.restore(&criticOptimizer, as: "critic.adam", source: source)
        critic.params.assign(from: FloatBuffer(p.values))
        criticInUse = f.metadata["critic_in_use"] == "1"
        let s = (f.metadata["reward_stats"] ?? "0,0,1").split(separator: ",").compactMap { Float($0) }
        if s.count == 3 { statsInitialised = s[0] == 1; runningMean = s[1]; runningStd = s[2] }
    }
}
