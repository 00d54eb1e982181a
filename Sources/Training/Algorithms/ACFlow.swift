import Foundation
import Analysis
import Tensor
import Model
import Flow
import Imaging

/// Reward shaping: z = (R - mean) / (std + 1e-6) per group (or with running batch statistics),
/// rt = tanh(z / kappa), in (-1, 1). Without shaping rt = R.
public func shapeRewards(_ r: [Float], groupSize G: Int, kappa: Float, shaping: Bool, stats: (mean: Float, std: Float)? = nil) -> [Float] {
    shapeValues(r, like: r, groupSize: G, kappa: kappa, shaping: shaping, stats: stats)
}

/// Values in rt's units: each block of r.count values ((T, B) order: a visited step's values of
/// every sample) shaped as rt is from r, with the statistics of the sample's group of rewards r
/// (or `stats`).
public func shapeValues(_ values: [Float], like r: [Float], groupSize G: Int, kappa: Float, shaping: Bool,
                        stats: (mean: Float, std: Float)? = nil) -> [Float] {
    guard shaping else { return values }
    let B = r.count
    var out = [Float](repeating: 0, count: values.count)
    for group in groupStatistics(r, groupSize: G) {
        let mean = stats?.mean ?? group.mean, std = stats?.std ?? group.std
        for k in 0..<(values.count / max(B, 1)) {
            for i in group.range { out[k * B + i] = tanhf((values[k * B + i] - mean) / (std + 1e-6) / kappa) }
        }
    }
    return out
}

/// GRPO-Guard's balance of the SDE steps for AC-Flow's transition target
/// (`--acflow-step-weights`): step k's weight s_k / h_k (its noise over its length) over the mean
/// of those on `steps`. A transition's log-probability gradient in v scales as |cv| / s^2, so the
/// late steps, of little noise, dominate the update and the KL it buys; weighted, a step's
/// gradient scales as 1 / (s h), as GRPO-Guard's reweighted RatioNorm gives it.
public func transitionStepWeights(_ steps: [StepCoefficients]) -> [Float] {
    let raw = steps.map { $0.s / $0.h }
    let mean = raw.reduce(0, +) / Float(max(raw.count, 1))
    return raw.map { $0 / mean }
}

/// Regression weights from advantages A (during warm-up A = rt): Ahat = clamp(A, -cA, cA),
/// w = exp(tau Ahat) ("exp") or w = Ahat ("signed"). Returns the weights and the clipped count.
public func advantageWeights(_ advantages: [Float], clip cA: Float, tau: Float, weighting: ACFlowWeighting) -> (weights: [Float], clipped: Int) {
    var clipped = 0
    let w = advantages.map { a -> Float in
        let ahat = max(-cA, min(cA, a))
        if ahat != a { clipped += 1 }
        return weighting == .signed ? ahat : expf(tau * ahat)
    }
    return (w, clipped)
}

/// Advantages of the visited states by GAE with gamma = 1 and the reward at the end:
/// `values` (T, B) holds V(x_k) for the states k = 0..<T of each sample, `rt` (B) the shaped
/// rewards, and V(x_T) := rt. delta_k = V(x_{k+1}) - V(x_k), A_k = sum_{j >= k} lambda^(j-k) delta_j:
/// lambda = 1 gives rt - V(x_k), lambda = 0 the one-step difference. Returns (T, B).
public func generalisedAdvantages(values: [Float], rewards rt: [Float], lambda: Float) -> [Float] {
    let B = rt.count, T = values.count / max(1, B)
    var A = [Float](repeating: 0, count: T * B)
    for b in 0..<B {
        var acc: Float = 0
        for k in stride(from: T - 1, through: 0, by: -1) {
            let next = k == T - 1 ? rt[b] : values[(k + 1) * B + b]
            acc = (next - values[k * B + b]) + lambda * acc
            A[k * B + b] = acc
        }
    }
    return A
}

/// The end of AC-Flow's warm-up, latched: at least `minimumIterations` iterations before it and
/// the critic's explained variance (before its update) at least `threshold` (if given), both at once.
public struct WarmupLatch: Equatable, Sendable {
    public let minimumIterations: Int
    public let threshold: Float?
    public var passed = false
    public init(minimumIterations: Int, threshold: Float?) { self.minimumIterations = minimumIterations; self.threshold = threshold }

    /// Whether the critic is trusted from iteration `iteration` on.
    public mutating func update(iteration: Int, explainedVariance: Float) -> Bool {
        if !passed && iteration >= minimumIterations && explainedVariance >= (threshold ?? -.infinity) { passed = true }
        return passed
    }
}

/// 1 - Var(target - prediction) / Var(target) (0 when the target does not vary).
public func explainedVariance(_ prediction: [Float], _ target: [Float]) -> Float {
    let (_, sd) = meanAndStd(target[...])
    guard sd > 0 else { return 0 }
    let (_, se) = meanAndStd(zip(target, prediction).map { $0 - $1 }[...])
    return 1 - (se * se) / (sd * sd)
}

/// AC-Flow: actor-critic fine-tuning with intermediate feedback (reconstruction; ACFlowConfig has
/// the options, docs/ACFLOW.md the measurements behind the defaults). One iteration:
///  1. the critic's values V(x_k) on the visited states of the rollouts (before its update) give
///     the warm-up test and the GAE advantages; then the critic takes its MSE steps to rt;
///  2. weights from the clipped advantages: A itself (transition), r = 1/2 + A / 2 c_A (nft), or
///     w = exp(tau A) normalised to mean 1 per time step (visited, fresh);
///  3. the actor takes `actorSteps` AdamW steps plus alpha W2 to the base model: the weighted
///     log-likelihood of visited transitions, weighted flow matching on visited states or fresh
///     interpolants, or DiffusionNFT's contrast on fresh interpolants (r = 1/2 + A / 2 c_A).
public final class ACFlow: FinetuneAlgorithm {
    public var kind: Algorithm { .acflow }
    public let options: ACFlowConfig
    let config: FinetuneConfig
    public let rolloutWorkspaces: [Workspace]
    let trainWS: Workspace, refWS: Workspace
    /// What the actor regresses on (`--acflow-target`).
    let target: ActorTarget
    let actorBatch: Int
    /// The policy's images (the lookahead critic scores its predictions).
    let image: (size: Int, channels: Int)
    /// The critic of x_k, t_k and the prompt (`--acflow-critic-input pixels`).
    public let critic: Critic
    /// The critic of the policy's image features (`--acflow-critic-input features`; nil otherwise).
    public let featureCritic: FeatureCritic?
    public var criticOptimizer: AdamW
    public var warmup: WarmupLatch
    public var criticInUse: Bool { warmup.passed }
    /// Per visited step: a running mean of the critic's explained variance there (per-step trust).
    public private(set) var stepExplainedVariance: [Float] = []
    var runningMean: Float = 0, runningStd: Float = 1, statsInitialised = false
    let noise: GradientNoise
    /// The last iteration's shaped rewards (B), advantages and weights ((T, B) visited states).
    public private(set) var lastShapedRewards: [Float] = [], lastAdvantages: [Float] = [], lastWeights: [Float] = []
    public var deterministicRollout: Bool { !options.sdeRollouts }
    /// The feature critic reads the policy's image features of the visited states.
    public var rolloutFeatures: Bool { featureCritic != nil && options.useCritic }

    public init(config: FinetuneConfig, model: DiT) throws {
        options = config.acflow
        self.config = config
        let B = config.batchSize
        actorBatch = options.actorBatch ?? B
        image = (model.config.imageSize, model.config.channels)
        rolloutWorkspaces = []                      // rolled out a pass at a time for inference only
        let u = min(config.passSize, actorBatch)
        trainWS = try model.makeWorkspace(batch: u, training: true)
        refWS = try model.makeWorkspace(batch: u, training: false)
        target = try makeActorTarget(options, sde: config.sde, model: model, passSize: u)
        critic = Critic(model: model.config, width: options.criticWidth, positions: options.criticPositions, seed: config.seed ^ 0xC817)
        featureCritic = options.criticInput == .features ? FeatureCritic(features: model.config.width, width: options.criticWidth, seed: config.seed ^ 0xC817) : nil
        criticOptimizer = AdamW(count: featureCritic?.params.count ?? critic.params.count, lr: options.criticLR, weightDecay: 1e-4, maxGradNorm: 1.0)
        warmup = WarmupLatch(minimumIterations: options.warmupIterations, threshold: options.warmupExplainedVariance)
        noise = GradientNoise(parameters: model.params.count, acrossSteps: true)
    }

    /// Trains the pixel critic by MSE to `target` on (x, t, tokens); returns the MSE before the update.
    @discardableResult
    public func trainCritic(x: [Float], t: [Float], tokens: [Int32], target: [Float]) -> Float {
        criticStep(count: target.count) { pass in
            let a = critic.forward(x: x, t: t, tokens: tokens)
            pass((a.value, { self.critic.backward(a, dValue: $0) }), target)
        }
    }

    /// One pass of the critic: its values of some visited states, and the backward of dL/dV.
    typealias CriticPass = (value: [Float], backward: ([Float]) -> Void)

    /// The critic in use: the feature critic's parameters and gradients, or the pixel critic's.
    var criticParams: (params: FloatBuffer, grads: FloatBuffer) {
        featureCritic.map { ($0.params, $0.grads) } ?? (critic.params, critic.grads)
    }

    /// One critic AdamW step by MSE, its gradient accumulated over passes and summed over
    /// `world`: `passes` hands each pass and its targets to its argument; `count` is the number of
    /// states in every pass of every process. Returns this process's part of the MSE before the
    /// update.
    @discardableResult
    func criticStep(count: Int, world: World = .single, passes: (_ pass: (CriticPass, [Float]) -> Void) -> Void) -> Float {
        var mse: Float = 0
        let net = criticParams
        net.grads.zero()
        passes { forward, target in
            let dV = zip(forward.value, target).map { v, y -> Float in
                let e = v - y
                mse += e * e / Float(count)
                return 2 * e / Float(count)
            }
            forward.backward(dV)
        }
        world.sum(net.grads)
        criticOptimizer.update(params: net.params.buffer, grads: net.grads.buffer)
        return mse
    }

    /// rt in (-1, 1): per-group z-scores (or running batch statistics) through tanh(z / kappa).
    func shaped(_ rewards: [Float]) -> [Float] {
        if options.statsEMA > 0 {
            let (m, s) = meanAndStd(rewards[...])
            if !statsInitialised { runningMean = m; runningStd = s; statsInitialised = true } else {
                runningMean = options.statsEMA * runningMean + (1 - options.statsEMA) * m
                runningStd = options.statsEMA * runningStd + (1 - options.statsEMA) * s
            }
        }
        return shaped(rewards, like: rewards)
    }

    /// `values` ((T, B) or (B)) shaped as this iteration's rt is from `rewards` (the running
    /// statistics as `shaped(_:)` left them, or the groups').
    func shaped(_ values: [Float], like rewards: [Float]) -> [Float] {
        shapeValues(values, like: rewards, groupSize: config.groupSize, kappa: options.kappa, shaping: options.shaping,
                    stats: options.statsEMA > 0 ? (runningMean, runningStd) : nil)
    }

    /// The critic's states per pass: it is small (its activations ~32 KB a state).
    static let criticPass = 256

    /// The critic's values of this process's visited states (k, row) in (k, row) order.
    func criticValues(_ r: Rollout, grid: [Float], T: Int) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(T * r.batch)
        forEachCriticPass(r, T: T) { out += criticForward(r, grid: grid, states: $0).value }
        return out
    }

    /// The critic on the visited states `states` ((k, row) indices k * Bl + row): from the
    /// policy's image features the rollout kept (the feature critic), or from x_k, t_k and the prompt.
    func criticForward(_ r: Rollout, grid: [Float], states idx: Range<Int>) -> CriticPass {
        let Bl = r.batch, n = r.pixels, L = r.tokens.count / max(Bl, 1)
        let t = idx.map { grid[$0 / Bl] }
        if let fc = featureCritic {
            let a = fc.forward(features: r.features[(idx.lowerBound * fc.features)..<(idx.upperBound * fc.features)], t: t)
            return (a.value, { fc.backward(a, dValue: $0) })
        }
        let x = Array(r.states[(idx.lowerBound * n)..<(idx.upperBound * n)])     // states (k, row) are contiguous in k * Bl + row order
        let tok = idx.flatMap { r.tokens[(($0 % Bl) * L)..<((($0 % Bl) + 1) * L)] }
        let a = critic.forward(x: x, t: t, tokens: tok)
        return (a.value, { self.critic.backward(a, dValue: $0) })
    }

    /// Calls body(indices) for passes of at most `criticPass` of the visited states (k, row) of
    /// this process (indices: k * Bl + row).
    func forEachCriticPass(_ r: Rollout, T: Int, _ body: (Range<Int>) -> Void) {
        var start = 0
        while start < T * r.batch {
            let end = min(T * r.batch, start + Self.criticPass)
            body(start..<end)
            start = end
        }
    }

    /// The report's chart of AC-Flow: how much of rt the critic predicts at each visited step
    /// (before its update), where per-state credit can come from.
    public static let diagnostics = DiagnosticsChart.perStep(key: "critic_explained_variance", title: "critic's explained variance of rt per visited step k (t), before its update", yLabel: "explained variance")

    public func train(_ batch: RolloutBatch, _ run: TrainingState) throws -> AlgorithmMetrics {
        let B = batch.rewards.count, T = config.sde.steps
        let rt = shaped(batch.rewards)
        let stateTargets = (0..<T).flatMap { _ in rt }
        // 1. the critic on the visited states: its values before its update, then its steps
        let c = try criticPhase(batch, rt: rt, stateTargets: stateTargets, iteration: run.iteration)
        // 2. advantages and weights of every visited state (the same on every process)
        let stepEV = (0..<T).map { k in explainedVariance(Array(c.before[(k * B)..<((k + 1) * B)]), Array(stateTargets[(k * B)..<((k + 1) * B)])) }
        let trustedSteps = trust(stepEV, iteration: run.iteration, latch: c.trusted)
        let anyTrusted = trustedSteps.contains(true)
        let advantages: [Float]
        if options.zeroAdvantages { advantages = [Float](repeating: 0, count: T * B) }
        else if anyTrusted {
            // V = 0 where the critic is not trusted (as in the warm-up)
            let values = (0..<(T * B)).map { trustedSteps[$0 / B] ? c.before[$0] : 0 }
            advantages = generalisedAdvantages(values: values, rewards: rt, lambda: options.lambda)
        } else { advantages = stateTargets }                              // warm-up: V = 0
        let (weights, clipped) = target.weights(advantages, T: T, B: B)
        lastShapedRewards = rt; lastAdvantages = advantages; lastWeights = weights
        // 3. the actor's steps
        let a = actorPhase(batch, run, weights: weights)
        let steps = Double(options.actorSteps)
        var m = AlgorithmMetrics()
        m["critic_mse"] = Double(c.mseBefore); m["critic_explained_variance"] = Double(c.evAfter)
        m["critic_explained_variance_before"] = Double(c.evBefore)
        m.set("critic_in_use", anyTrusted); m.set("warmup", options.useCritic && !anyTrusted)
        m["adv_clipped_fraction"] = Double(clipped) / Double(T * B)
        if options.target == .transition, options.ratioClip != nil {
            var counts = [Double(a.ratioClipped), Double(a.trained)]
            batch.layout.world.sum(&counts)
            m["ratio_clipped_fraction"] = counts[1] > 0 ? counts[0] / counts[1] : 0
        }
        m["weight_mean"] = Double(weights.reduce(0, +) / Float(T * B)); m["weight_max"] = Double(weights.max() ?? 0)
        m["w2"] = a.w2 / steps
        m["cov_w_rt"] = covariance(weights, stateTargets)
        if !a.cosines.isEmpty { m["grad_cosine"] = a.cosines.reduce(0, +) / Double(a.cosines.count) }
        m["actor_steps"] = Double(options.actorSteps)
        m["loss"] = a.loss / steps; m["grad_norm"] = a.norm / steps
        if options.target == .transition, let clip = options.ratioClip { m["clip_range"] = Double(clip) }
        if let (signal, trace) = noise.estimate(world: batch.layout.world) { m["grad_signal"] = signal; m["grad_noise"] = trace }
        // per visited step: how much of rt the critic predicted there (before its update), and
        // the spread of the advantages the actor used
        let grid = config.sde.grid
        m.steps = (0..<T).map { k in
            let at = (k * B)..<((k + 1) * B)
            return ["k": Double(k), "t": Double(grid[k]), "critic_explained_variance": Double(stepEV[k]),
                    "critic_trusted": trustedSteps[k] ? 1 : 0, "advantage_std": Double(meanAndStd(advantages[at]).std)]
        }
        return m
    }

    /// The steps at which the critic's values are used this iteration: every step once the
    /// warm-up latch is open (`all`), or (`per-step`) after the warm-up's iterations each step whose
    /// running mean of explained variance (decay 0.8) reaches the threshold.
    func trust(_ stepEV: [Float], iteration: Int, latch: Bool) -> [Bool] {
        guard options.useCritic else { return stepEV.map { _ in false } }
        guard options.criticTrust == .perStep else { return stepEV.map { _ in latch } }
        stepExplainedVariance = stepExplainedVariance.count == stepEV.count ? zip(stepExplainedVariance, stepEV).map { 0.8 * $0 + 0.2 * $1 } : stepEV
        let threshold = options.warmupExplainedVariance ?? 0
        return stepExplainedVariance.map { iteration >= options.warmupIterations && $0 >= threshold }
    }

    /// The critic's values of the visited states x_k (k = 0..<T, (T, B) order) before its update,
    /// their explained variance and MSE, whether the critic is trusted (the warm-up latch), its
    /// full-batch MSE steps over every process's states, and the explained variance after them.
    func criticPhase(_ batch: RolloutBatch, rt: [Float], stateTargets: [Float], iteration: Int) throws
        -> (before: [Float], evBefore: Float, evAfter: Float, mseBefore: Float, trusted: Bool) {
        let T = config.sde.steps, grid = config.sde.grid
        let lay = batch.layout, rollout = batch.rollout, Bl = rollout.batch
        // the lookahead critic has no network: its values are the reward of each state's
        // predicted final image, in rt's units, and nothing is trained
        let lookahead = options.criticInput == .lookahead
        let before = lookahead ? shaped(lay.gather(try lookaheadScores(batch), blocks: T), like: batch.rewards)
                               : lay.gather(criticValues(rollout, grid: grid, T: T), blocks: T)
        let evBefore = explainedVariance(before, stateTargets)
        let trusted = options.useCritic && warmup.update(iteration: iteration, explainedVariance: evBefore)
        let mseBefore = zip(before, stateTargets).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(before.count)
        if lookahead { return (before, evBefore, evBefore, mseBefore, trusted) }
        for _ in 0..<options.criticSteps {
            criticStep(count: T * batch.rewards.count, world: lay.world) { pass in
                forEachCriticPass(rollout, T: T) { idx in pass(criticForward(rollout, grid: grid, states: idx), idx.map { rt[lay.samples[$0 % Bl]] }) }
            }
        }
        let evAfter = explainedVariance(lay.gather(criticValues(rollout, grid: grid, T: T), blocks: T), stateTargets)
        return (before, evBefore, evAfter, mseBefore, trusted)
    }

    /// The lookahead critic's raw values: the reward of the policy's one-step prediction of the
    /// final image at each of this process's visited states, x0hat = x_k - t_k v_k (v_k read back
    /// from the rollout's mean: mu = cx x + cv v at a stochastic step, x - h v at an Euler step),
    /// with the prompt of its sample; (T, Bl).
    func lookaheadScores(_ batch: RolloutBatch) throws -> [Float] {
        let r = batch.rollout, Bl = r.batch, n = r.pixels, T = config.sde.steps
        let stochastic = options.sdeRollouts ? config.sde.stochasticSteps : 0
        var out: [Float] = []
        out.reserveCapacity(T * Bl)
        for k in 0..<T {
            let c = config.sde.coefficients(k)
            var x0 = [Float](repeating: 0, count: Bl * n)
            for i in 0..<(Bl * n) {
                let x = r.states[k * Bl * n + i], mu = r.means[k * Bl * n + i]
                let v = k < stochastic ? (mu - c.cx * x) / c.cv : (x - mu) / c.h
                x0[i] = max(-1, min(1, x - c.t * v))
            }
            out += try batch.score(ImageBatch(pixels: x0, size: image.size, channels: image.channels), batch.prompts)
        }
        return out
    }

    /// The actor's steps: every process draws the whole mini-batch (the run's random stream
    /// stays the same everywhere) and trains on the samples it holds, a pass at a time.
    func actorPhase(_ batch: RolloutBatch, _ run: TrainingState, weights: [Float])
        -> (loss: Double, w2: Double, norm: Double, cosines: [Double], ratioClipped: Int, trained: Int) {
        let B = batch.rewards.count, n = run.policy.config.pixelsPerImage, L = run.policy.config.textLength
        let rollout = batch.rollout, world = batch.layout.world, rowOf = batch.layout.rowOf
        let mb = actorBatch, u = trainWS.batch
        let previous = FloatBuffer(count: options.actorSteps > 1 ? run.policy.grads.count : 0)   // the last step's gradient
        var loss = 0.0, w2 = 0.0, norm = 0.0, cosines: [Double] = [], ratioClipped = 0, trained = 0
        let pass = ActorPass(capacity: u, pixels: n, textLength: L, sde: config.sde)
        noise.reset()                                                    // its pieces: the passes; a sample: a visited state
        target.begin(run)
        for step in 0..<options.actorSteps {
            run.policy.grads.zero()
            var stepLoss = 0.0, stepW2 = 0.0
            func flush() {
                guard pass.count > 0 else { return }
                let h = trainOn(pass, run, of: mb)
                stepLoss += h.loss; stepW2 += h.w2; ratioClipped += h.clipped; trained += pass.count
                pass.count = 0
            }
            for _ in 0..<mb {
                guard let (k, b) = target.draw(into: pass, batch, run) else { continue }
                pass.w[pass.count] = weights[k * B + b]
                for i in 0..<L { pass.tok[pass.count * L + i] = rollout.tokens[rowOf[b] * L + i] }
                pass.count += 1
                if pass.count == u { flush() }
            }
            flush()
            world.sum(run.policy.grads)
            noise.endStep(run.policy.grads, scale: Double(mb))
            if step > 0 { cosines.append(cosine(previous, run.policy.grads)) }
            if step < options.actorSteps - 1 { previous.assign(from: run.policy.grads) }
            norm += Double(run.optimizer.update(params: run.policy.params.buffer, grads: run.policy.grads.buffer))
            var sums = [stepLoss, stepW2]
            world.sum(&sums)
            loss += sums[0]; w2 += sums[1]
        }
        return (loss, w2, norm, cosines, ratioClipped, trained)
    }

    /// The forward, the target's loss and its backward on one pass (gradients accumulated, the
    /// gradient-noise piece recorded); the loss and w2 summed over the pass, and how many of its
    /// ratios were clipped (transition with a ratio clip).
    func trainOn(_ p: ActorPass, _ run: TrainingState, of mb: Int) -> (loss: Double, w2: Double, clipped: Int) {
        let c = p.count, n = run.policy.config.pixelsPerImage
        noise.beginPiece(run.policy.grads)
        let v = run.policy.forward(trainWS, x: p.x, t: p.t, tokens: p.tok, batch: c)
        let vRef = run.reference.forward(refWS, x: p.x, t: p.t, tokens: p.tok, batch: c)
        let heads = target.loss(p, v: v, vRef: vRef, pixels: n, of: mb)
        run.policy.backward(trainWS, dv: p.dv, batch: c)
        noise.endPiece(run.policy.grads, count: c, scale: Double(mb))
        return heads
    }

    public func save(into f: inout SafeTensorsFile) {
        f.add("critic.params", shape: [criticParams.params.count], values: criticParams.params.array)
        f.add(criticOptimizer, as: "critic.adam")
        f.metadata["critic_in_use"] = warmup.passed ? "1" : "0"
        f.metadata["critic_step_ev"] = stepExplainedVariance.map { "\($0)" }.joined(separator: ",")
        f.metadata["reward_stats"] = "\(statsInitialised ? 1 : 0),\(runningMean),\(runningStd)"
    }

    public func restore(from f: SafeTensorsFile, source: String) throws {
        guard let p = f.tensors["critic.params"], p.values.count == criticParams.params.count else {
            throw FinetuneError("\(source): the AC-Flow critic state is missing or does not match --acflow-critic-width and --acflow-critic-input")
        }
        try f.restore(&criticOptimizer, as: "critic.adam", source: source)
        criticParams.params.assign(from: FloatBuffer(p.values))
        warmup.passed = f.metadata["critic_in_use"] == "1"
        stepExplainedVariance = (f.metadata["critic_step_ev"] ?? "").split(separator: ",").compactMap { Float($0) }
        let s = (f.metadata["reward_stats"] ?? "0,0,1").split(separator: ",").compactMap { Float($0) }
        if s.count == 3 { statsInitialised = s[0] == 1; runningMean = s[1]; runningStd = s[2] }
    }
}

/// cos(a, b) of two gradient vectors (0 if either is zero).
func cosine(_ a: FloatBuffer, _ b: FloatBuffer) -> Double {
    var ab = 0.0, aa = 0.0, bb = 0.0
    for i in 0..<a.count {
        let x = Double(a[i]), y = Double(b[i])
        ab += x * y; aa += x * x; bb += y * y
    }
    return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
}

/// Cov(a, b) over paired values.
func covariance(_ a: [Float], _ b: [Float]) -> Double {
    let (ma, _) = meanAndStd(a[...]), (mb, _) = meanAndStd(b[...])
    return zip(a, b).reduce(0.0) { $0 + Double(($1.0 - ma) * ($1.1 - mb)) } / Double(max(1, a.count))
}
