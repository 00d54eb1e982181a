import Analysis
import Tensor
import Model
import Flow

/// One pass's samples of AC-Flow's actor mini-batch: inputs, targets, times, weights, tokens,
/// and for the transition target each step's coefficients and the rollout's log-probability;
/// with the rollout's time grid and step coefficients, worked out once per batch.
final class ActorPass {
    var x: [Float], target: [Float], t: [Float], w: [Float], dv: [Float], tok: [Int32]
    var coefficients: [StepCoefficients], oldLogps: [Float]
    var count = 0
    let grid: [Float], stepCoefficients: [StepCoefficients]
    init(capacity u: Int, pixels n: Int, textLength L: Int, sde: SDEConfig) {
        x = [Float](repeating: 0, count: u * n); target = x; dv = x
        t = [Float](repeating: 0, count: u); w = t; oldLogps = t
        tok = [Int32](repeating: 0, count: u * L)
        grid = sde.grid
        stepCoefficients = (0..<sde.steps).map(sde.coefficients)
        coefficients = [StepCoefficients](repeating: stepCoefficients[0], count: u)
    }
}

/// What AC-Flow's actor regresses on (`--acflow-target`), as `PolicyObjective` is for the GRPO
/// family: each visited state's weight from its advantage, how a sample of the actor's
/// mini-batch is drawn from the rollout, and the loss head on a pass (which writes dL/dv).
protocol ActorTarget: AnyObject {
    /// Each visited state's weight in the loss ((T, B) order) and how many advantages were clipped.
    func weights(_ advantages: [Float], T: Int, B: Int) -> (weights: [Float], clipped: Int)
    /// Before the actor's steps on a batch (nft keeps the policy that rolled it out).
    func begin(_ run: TrainingState)
    /// Draws the next sample into `pass` (at pass.count) and returns its visited state (k, b);
    /// nil when the sample is another process's (its random draws made all the same).
    func draw(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState) -> (k: Int, b: Int)?
    /// The loss of a pass given the policy's and the base model's velocities; writes dL/dv into
    /// pass.dv; returns the loss and w2 summed over the pass and how many ratios were clipped.
    func loss(_ pass: ActorPass, v: UnsafeMutablePointer<Float>, vRef: UnsafeMutablePointer<Float>, pixels n: Int, of mb: Int)
        -> (loss: Double, w2: Double, clipped: Int)
}

extension ActorTarget {
    func begin(_ run: TrainingState) {}
}

/// The target of `options` for a run.
func makeActorTarget(_ options: ACFlowConfig, sde: SDEConfig, model: DiT, passSize u: Int) throws -> ActorTarget {
    switch options.target {
    case .transition: return TransitionTarget(options, sde: sde)
    case .visited: return VisitedTarget(options, steps: sde.steps)
    case .fresh: return FreshTarget(options, steps: sde.steps)
    case .nft: return try NFTTarget(options, steps: sde.steps, model: model, passSize: u)
    }
}

/// Exp weights w = exp(tau A) normalised to mean 1 per time step (or signed ones, A itself):
/// the regression targets' weighting.
func regressionWeights(_ advantages: [Float], T: Int, B: Int, options: ACFlowConfig) -> (weights: [Float], clipped: Int) {
    var (weights, clipped) = advantageWeights(advantages, clip: options.advantageClip, tau: options.tau, weighting: options.weighting)
    if options.normaliseWeights && options.weighting == .exp {
        for k in 0..<T {
            let mean = weights[(k * B)..<((k + 1) * B)].reduce(0, +) / Float(B)
            if mean > 0 { for b in 0..<B { weights[k * B + b] /= mean } }
        }
    }
    return (weights, clipped)
}

/// Visited (k, b) pairs of the rollout, drawn without replacement in a shuffled order (a new
/// shuffle when they are used up) from the first `steps` steps.
final class VisitedPairs {
    let steps: Int
    var order: [Int] = [], next = 0
    init(steps: Int) { self.steps = steps }
    /// Forgets the last batch's order: the next draw shuffles anew.
    func reset() { order = []; next = 0 }
    /// The next pair, its time set in `pass` (at pass.count); nil (and the pair used up) when
    /// the sample is another process's. `xk`: where x_k begins in the rollout's states.
    func draw(into pass: ActorPass, _ batch: RolloutBatch, rng: inout RNG) -> (k: Int, b: Int, row: Int, xk: Int)? {
        let B = batch.rewards.count, r = batch.rollout
        if next == order.count { order = Array(0..<(steps * B)); rng.shuffle(&order); next = 0 }
        let k = order[next] / B, b = order[next] % B, row = batch.layout.rowOf[b]
        next += 1
        guard row >= 0 else { return nil }
        pass.t[pass.count] = pass.grid[k]
        return (k, b, row, (k * r.batch + row) * r.pixels)
    }
}

/// (c) The rollout's own transitions x_k -> x_k+1, each weighted by its clipped advantage: a
/// policy gradient on the transition's negative log-likelihood, as PPO's clipped surrogate when
/// `ratioClip` is set.
final class TransitionTarget: ActorTarget {
    let options: ACFlowConfig
    let pairs: VisitedPairs
    /// Each stochastic step's weight (`--acflow-step-weights`; nil without: the advantages as they are).
    let stepWeights: [Float]?
    init(_ options: ACFlowConfig, sde: SDEConfig) {
        self.options = options; pairs = VisitedPairs(steps: sde.stochasticSteps)
        stepWeights = options.guardStepWeights ? transitionStepWeights((0..<sde.stochasticSteps).map(sde.coefficients)) : nil
    }

    func weights(_ advantages: [Float], T: Int, B: Int) -> (weights: [Float], clipped: Int) {
        advantageWeights(advantages, clip: options.advantageClip, tau: options.tau, weighting: .signed)
    }

    func begin(_ run: TrainingState) { pairs.reset() }

    func draw(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState) -> (k: Int, b: Int)? {
        guard let (k, b, row, xk) = pairs.draw(into: pass, batch, rng: &run.rng) else { return nil }
        let r = batch.rollout, n = r.pixels, c = pass.count
        pass.coefficients[c] = pass.stepCoefficients[k]; pass.oldLogps[c] = r.logps[k * r.batch + row]
        for i in 0..<n { pass.x[c * n + i] = r.states[xk + i]; pass.target[c * n + i] = r.states[xk + r.batch * n + i] }
        return (k, b)
    }

    func loss(_ p: ActorPass, v: UnsafeMutablePointer<Float>, vRef: UnsafeMutablePointer<Float>, pixels n: Int, of mb: Int) -> (loss: Double, w2: Double, clipped: Int) {
        let c = p.count
        let advantages = stepWeights.map { sw in (0..<c).map { p.w[$0] * sw[p.coefficients[$0].k] } } ?? Array(p.w[0..<c])
        let h = acflowTransitionLoss(v: v, x: p.x, xNext: p.target, steps: Array(p.coefficients[0..<c]), vRef: vRef, advantages: advantages,
                                     alpha: options.alpha, pixels: n, dv: &p.dv, of: mb,
                                     ratio: options.ratioClip.map { (Array(p.oldLogps[0..<c]), $0) })
        return (h.loss, h.w2, h.clipped)
    }
}

/// (a) Weighted flow matching at the rollout's own states x_k, toward its final image: target
/// (x_k - x0) / t_k.
final class VisitedTarget: ActorTarget {
    let options: ACFlowConfig
    let pairs: VisitedPairs
    init(_ options: ACFlowConfig, steps: Int) { self.options = options; pairs = VisitedPairs(steps: steps) }

    func weights(_ advantages: [Float], T: Int, B: Int) -> (weights: [Float], clipped: Int) {
        regressionWeights(advantages, T: T, B: B, options: options)
    }

    func begin(_ run: TrainingState) { pairs.reset() }

    func draw(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState) -> (k: Int, b: Int)? {
        guard let (k, b, row, xk) = pairs.draw(into: pass, batch, rng: &run.rng) else { return nil }
        let r = batch.rollout, n = r.pixels, c = pass.count, x0 = r.images.startIndex + row * n
        for i in 0..<n { pass.x[c * n + i] = r.states[xk + i]; pass.target[c * n + i] = (r.states[xk + i] - r.images[x0 + i]) / pass.grid[k] }
        return (k, b)
    }

    func loss(_ p: ActorPass, v: UnsafeMutablePointer<Float>, vRef: UnsafeMutablePointer<Float>, pixels n: Int, of mb: Int) -> (loss: Double, w2: Double, clipped: Int) {
        let h = acflowActorLoss(v: v, target: p.target, vRef: vRef, weights: Array(p.w[0..<p.count]), alpha: options.alpha, pixels: n, dv: &p.dv, of: mb)
        return (h.loss, h.w2, 0)
    }
}

/// A fresh interpolant (1 - t) x0 + t eps of a final image x0 of the batch, t ~ U[t-min, 1) (or
/// logit-normal); its visited state is the rollout step nearest t.
func drawInterpolant(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState, options: ACFlowConfig, steps T: Int) -> (k: Int, b: Int, row: Int)? {
    let r = batch.rollout, n = r.pixels, grid = pass.grid, c = pass.count
    let b = run.rng.int(batch.rewards.count)
    let tj = options.freshTMin.map { run.rng.uniform($0, 1) } ?? logitNormal(&run.rng)
    let k = (0..<T).min { abs(grid[$0] - tj) < abs(grid[$1] - tj) }!
    let row = batch.layout.rowOf[b]
    guard row >= 0 else { run.rng.skipNormals(n); return nil }    // another process's sample: its draws, unused
    pass.t[c] = tj
    r.images.withUnsafeBufferPointer { x0p in pass.x.withUnsafeMutableBufferPointer { xp in pass.target.withUnsafeMutableBufferPointer { tp in
        flowMatchingPair(x0: x0p.baseAddress! + row * n, t: tj, n: n, rng: &run.rng, xt: xp.baseAddress! + c * n, target: tp.baseAddress! + c * n)
    } } }
    return (k, b, row)
}

/// (b) Weighted flow matching on fresh interpolants of the final images: target eps - x0.
final class FreshTarget: ActorTarget {
    let options: ACFlowConfig
    let steps: Int
    init(_ options: ACFlowConfig, steps: Int) { self.options = options; self.steps = steps }

    func weights(_ advantages: [Float], T: Int, B: Int) -> (weights: [Float], clipped: Int) {
        regressionWeights(advantages, T: T, B: B, options: options)
    }

    func draw(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState) -> (k: Int, b: Int)? {
        drawInterpolant(into: pass, batch, run, options: options, steps: steps).map { ($0.k, $0.b) }
    }

    func loss(_ p: ActorPass, v: UnsafeMutablePointer<Float>, vRef: UnsafeMutablePointer<Float>, pixels n: Int, of mb: Int) -> (loss: Double, w2: Double, clipped: Int) {
        let h = acflowActorLoss(v: v, target: p.target, vRef: vRef, weights: Array(p.w[0..<p.count]), alpha: options.alpha, pixels: n, dv: &p.dv, of: mb)
        return (h.loss, h.w2, 0)
    }
}

/// (d) DiffusionNFT's contrast on fresh interpolants of the final images: implicit positive and
/// negative policies around v_old, the policy that rolled the batch out; each state's weight is
/// its optimality probability r = 1/2 + A / 2 c_A.
final class NFTTarget: ActorTarget {
    let options: ACFlowConfig
    let steps: Int
    let old: DiT, oldWS: Workspace
    init(_ options: ACFlowConfig, steps: Int, model: DiT, passSize u: Int) throws {
        self.options = options; self.steps = steps
        old = model.clone()
        oldWS = try old.makeWorkspace(batch: u, training: false)
    }

    func weights(_ advantages: [Float], T: Int, B: Int) -> (weights: [Float], clipped: Int) {
        let clipped = advantages.filter { abs($0) > options.advantageClip }.count
        return (advantages.map { optimalityProbability($0, clip: options.advantageClip) }, clipped)
    }

    func begin(_ run: TrainingState) { old.params.assign(from: run.policy.params) }

    func draw(into pass: ActorPass, _ batch: RolloutBatch, _ run: TrainingState) -> (k: Int, b: Int)? {
        guard let (k, b, row) = drawInterpolant(into: pass, batch, run, options: options, steps: steps) else { return nil }
        // the target is the final image itself
        let n = batch.rollout.pixels, c = pass.count, x0 = batch.rollout.images.startIndex + row * n
        for i in 0..<n { pass.target[c * n + i] = batch.rollout.images[x0 + i] }
        return (k, b)
    }

    func loss(_ p: ActorPass, v: UnsafeMutablePointer<Float>, vRef: UnsafeMutablePointer<Float>, pixels n: Int, of mb: Int) -> (loss: Double, w2: Double, clipped: Int) {
        let c = p.count
        let vOld = old.forward(oldWS, x: p.x, t: p.t, tokens: p.tok, batch: c)
        let h = acflowContrastLoss(v: v, vOld: vOld, xt: p.x, x0: p.target, t: p.t, r: Array(p.w[0..<c]), beta: options.nftBeta,
                                   vRef: vRef, alpha: options.alpha, pixels: n, dv: &p.dv, of: mb)
        return (h.loss, h.w2, 0)
    }
}
