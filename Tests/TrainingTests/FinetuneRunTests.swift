import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

@Suite struct FinetuneRunTests {
    /// ~30 iterations of a tiny model with the brightness reward raise the mean reward (fixed seed).
    @Test(.enabled(if: slowTestsEnabled, "a slow test: FLOWTUNE_SLOW_TESTS=1 runs it"), arguments: Algorithm.allCases)
    func brightnessRewardRises(_ algo: Algorithm) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(algo, steps: 30)
        switch algo {
        case .grpo: c.lr = 1e-3; c.clipRange = 1e-2
        case .grpoGuard: c.lr = 1e-3; c.clipRange = 1e-3
        case .acflow: c.lr = 1e-3
        }
        let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run"))
        var rewards: [Float] = []
        while run.iteration < c.steps { rewards.append(try run.step().rewardMean) }
        let first = rewards.prefix(5).reduce(0, +) / 5, last = rewards.suffix(5).reduce(0, +) / 5
        #expect(last > first, "\(algo): first \(first) last \(last)")
        let lines = try metricLines(run.metricsURL)
        #expect(lines.count == 30)
        if algo != .acflow {
            let ts = try #require(lines[0]["timesteps"] as? [[String: Any]])
            #expect(ts.count == 3)     // T = 4, the last step deterministic
            for key in ["k", "t", "ratio_mean", "ratio_std", "logratio_mean", "clip_high", "clip_low"] { #expect(ts[0][key] != nil, "\(key)") }
            #expect((lines[0]["onpolicy_ratio_max_dev"] as! Double) < 1e-6)
        } else {
            for key in ["critic_mse", "critic_explained_variance", "critic_explained_variance_before", "critic_in_use", "warmup",
                        "adv_clipped_fraction", "weight_mean", "weight_max", "w2", "cov_w_rt", "grad_cosine", "actor_steps"] {
                #expect(lines[0][key] != nil, "\(key)")
            }
        }
    }

    /// A stopped run resumes from its last checkpoint: metrics.jsonl keeps exactly the lines the
    /// checkpoint covers and the continued run matches an uninterrupted one.
    /// A run stopped before its first checkpoint resumes by starting again from the base model
    /// (saying so), and ends where an uninterrupted run ends; a policy checkpoint left one
    /// checkpoint behind its state (a kill between the two writes) does not matter.
    @Test func resumeBeforeTheFirstCheckpointAndAfterATornCheckpoint() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 4)
        c.checkpointEvery = 2; c.evalEvery = 2
        let full = try setup.uninterruptedRun(c, "full")
        // stopped after 1 iteration: metrics.jsonl has lines, there is no checkpoint
        let dir = setup.dir.appendingPathComponent("early")
        let a = try Finetuner(config: c, runDir: dir)
        try a.evaluateBase()
        try a.step()
        #expect(try metricLines(a.metricsURL).count == 2)
        let b = try Finetuner(config: c, runDir: dir, resume: true)
        #expect(b.startedOver && b.iteration == 0)
        #expect(try metricLines(b.metricsURL).isEmpty)
        try b.evaluateBase()
        while b.iteration < 4 { try b.step() }
        #expect(b.policy.params.array == full.policy.params.array)
        // a policy checkpoint one checkpoint older than the state: the state's weights are used
        let torn = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("torn"))
        try torn.evaluateBase()
        while torn.iteration < 2 { try torn.step() }
        let old = try Data(contentsOf: torn.policyURL)
        while torn.iteration < 3 { try torn.step() }
        var more = c; more.checkpointEvery = 3
        let t2 = try Finetuner(config: more, runDir: setup.dir.appendingPathComponent("torn"), resume: true)
        #expect(t2.iteration == 2)
        try t2.step(); try t2.save()
        try old.write(to: t2.policyURL)          // as if killed between the state and the policy write
        let t3 = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("torn"), resume: true)
        #expect(t3.iteration == 3 && !t3.startedOver)
        while t3.iteration < 4 { try t3.step() }
        #expect(t3.policy.params.array == full.policy.params.array)
    }

    /// --eval-early evaluates the powers of two below --eval-every as well (and nothing else
    /// changes: evaluation draws its own fixed noise, so the trained weights are those of a run
    /// without it); it is stored with the settings, and a config.json without it means off.
    @Test func earlyEvaluationsAddThePowersOfTwo() throws {
        var schedule = FinetuneConfig()
        schedule.evalEvery = 10; schedule.steps = 25; schedule.evalEarly = true
        #expect((0...25).filter(schedule.evaluates) == [1, 2, 4, 8, 10, 20, 25])
        schedule.evalEarly = false
        #expect((0...25).filter(schedule.evaluates) == [10, 20, 25])
        schedule.evalEvery = 0; schedule.evalEarly = true
        #expect((0...25).filter(schedule.evaluates).isEmpty)

        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 7)
        c.evalEvery = 5; c.checkpointEvery = 7
        let plain = try setup.uninterruptedRun(c, "plain")
        c.evalEarly = true
        let early = try setup.uninterruptedRun(c, "early")
        let evaluated = { (run: Finetuner) in try metricLines(run.metricsURL).filter { $0["eval"] != nil }.map { $0["step"] as! Int } }
        #expect(try evaluated(plain) == [0, 5, 7])
        #expect(try evaluated(early) == [0, 1, 2, 4, 5, 7])
        #expect(early.policy.params.array == plain.policy.params.array)
        let json = try JSONEncoder().encode(c)   // what config.json holds
        #expect(try JSONDecoder().decode(FinetuneConfig.self, from: json).evalEarly)
        var object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        #expect(object.removeValue(forKey: "eval-early") as? Bool == true)
        let older = try JSONSerialization.data(withJSONObject: object)
        #expect(try JSONDecoder().decode(FinetuneConfig.self, from: older).evalEarly == false)
    }

    /// Rewards whose sum overflows stop the run with a message naming the iteration and the
    /// quantity, before any update; the last checkpoint stays as it was.
    @Test func nonFiniteRewardStatisticsStopTheRun() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 2)
        c.reward = "external:while read -r l; do echo 3e38; done"
        let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run"))
        let before = run.policy.params.array
        #expect { try run.step() } throws: { "\($0)".contains("iteration 1: the rewards' mean is inf") }
        #expect(run.policy.params.array == before && run.iteration == 0)
    }

    @Test(arguments: [Algorithm.grpoGuard, .acflow]) func resumeContinuesExactly(_ algo: Algorithm) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(algo, steps: 8)
        c.checkpointEvery = 4; c.evalEvery = 4
        let full = try setup.uninterruptedRun(c, "full")
        // an interrupted run: 6 iterations (checkpoint at 4), then resumed
        let dir = setup.dir.appendingPathComponent("cut")
        let a = try Finetuner(config: c, runDir: dir)
        try a.evaluateBase()
        while a.iteration < 6 { try a.step() }
        let b = try Finetuner(config: c, runDir: dir, resume: true)
        #expect(b.iteration == 4)
        #expect(try metricLines(b.metricsURL).map { $0["step"] as! Int } == [0, 1, 2, 3, 4])
        while b.iteration < 8 { try b.step() }
        #expect(b.policy.params.array == full.policy.params.array)
        let rb = try metricLines(b.metricsURL).compactMap { $0["reward_mean"] as? Double }
        let rf = try metricLines(full.metricsURL).compactMap { $0["reward_mean"] as? Double }
        #expect(rb == rf)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("grids/step-00008.png").path))
    }
}

@Suite struct ACFlowTests {
    /// With V = 0, no clipping and no shaping, the actor loss is ORW-CFM-W2's:
    /// mean_i exp(tau R_i) ||v_i - (eps_i - x0_i)||^2 / D + alpha mean_i ||v_i - vref_i||^2 / D.
    @Test func actorLossReducesToORWCFMW2() {
        let R: [Float] = [0.2, -0.5, 1.0], tau: Float = 0.8, alpha: Float = 0.3, D = 4
        let v: [Float] = [0.1, 0.2, -0.3, 0.4, 1, 0, -1, 0.5, 0.3, 0.3, 0.3, -0.2]
        let target: [Float] = [0, 0.5, -0.5, 0.5, 0.5, 0.5, -0.5, 0, 0, 1, 0, 0]
        let vRef: [Float] = [0.1, 0.1, -0.1, 0.4, 0.9, 0.1, -0.8, 0.4, 0.2, 0.5, 0.3, -0.1]
        let (w, clipped) = advantageWeights(shapeRewards(R, groupSize: 3, kappa: 1, shaping: false),
                                         clip: .infinity, tau: tau, weighting: .exp)
        #expect(clipped == 0)
        var dv = [Float](repeating: 0, count: 12)
        let (loss, w2) = acflowActorLoss(v: v, target: target, vRef: vRef, weights: w, alpha: alpha, pixels: D, dv: &dv)
        // by hand
        var expected = 0.0, reg = 0.0
        for i in 0..<3 {
            var fm = 0.0, r = 0.0
            for d in 0..<D {
                fm += Double((v[i * D + d] - target[i * D + d]) * (v[i * D + d] - target[i * D + d]))
                r += Double((v[i * D + d] - vRef[i * D + d]) * (v[i * D + d] - vRef[i * D + d]))
            }
            expected += Double(exp(tau * R[i])) * fm / Double(D) + Double(alpha) * r / Double(D)
            reg += r / Double(D)
        }
        #expect(abs(loss - expected / 3) < 1e-6)
        #expect(abs(w2 - reg / 3) < 1e-6)
        // and dv is its gradient
        for i in [0, 5, 11] {
            var up = v; up[i] += 1e-3
            var scratch = dv
            let lp = acflowActorLoss(v: up, target: target, vRef: vRef, weights: w, alpha: alpha, pixels: D, dv: &scratch).loss
            #expect(abs((lp - loss) / 1e-3 - Double(dv[i])) < 1e-2)
        }
    }

    /// The transition target's loss is A ||x' - mu||^2 / (2 s^2 D) + alpha ||v - vref||^2 / D per
    /// sample (mu = cx x + cv v), by hand, and dv is its gradient (finite differences).
    @Test func transitionLossByHandAndItsGradient() {
        let D = 4, cfg = SDEConfig(steps: 5)
        let steps = [cfg.coefficients(0), cfg.coefficients(2), cfg.coefficients(3)]
        var rng = RNG(seed: 9)
        let v = rng.normals(3 * D), x = rng.normals(3 * D), xNext = rng.normals(3 * D), vRef = rng.normals(3 * D)
        let A: [Float] = [0.7, -0.4, 0], alpha: Float = 0.05
        var dv = [Float](repeating: 0, count: 3 * D)
        let (loss, w2, _) = acflowTransitionLoss(v: v, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &dv)
        var expected = 0.0, reg = 0.0
        for b in 0..<3 {
            let c = steps[b]
            var nll = 0.0, r = 0.0
            for d in (b * D)..<((b + 1) * D) {
                let mu = Double(c.cx) * Double(x[d]) + Double(c.cv) * Double(v[d])
                nll += (mu - Double(xNext[d])) * (mu - Double(xNext[d])); r += Double((v[d] - vRef[d]) * (v[d] - vRef[d]))
            }
            expected += Double(A[b]) * nll / (2 * Double(c.s * c.s) * Double(D)) + Double(alpha) * r / Double(D)
            reg += r / Double(D)
        }
        #expect(abs(loss - expected / 3) < 1e-4 * max(1, abs(expected)))
        #expect(abs(w2 - reg / 3) < 1e-6)
        for i in 0..<(3 * D) {
            let h: Float = 1e-3
            var up = v, down = v; up[i] += h; down[i] -= h
            var scratch = dv
            let lp = acflowTransitionLoss(v: up, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &scratch).loss
            let lm = acflowTransitionLoss(v: down, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &scratch).loss
            let fd = (lp - lm) / Double(2 * h)
            #expect(abs(fd - Double(dv[i])) < 1e-3 * max(1, abs(fd)), "dv[\(i)] \(dv[i]) vs \(fd)")
        }
    }

    /// With the ratio, the transition loss is PPO's clipped surrogate: at rho = 1 its gradient is
    /// the plain one; off it, dv is the surrogate's gradient (finite differences); where the
    /// clip holds, only the regulariser's gradient is left.
    @Test func clippedTransitionSurrogate() {
        let D = 4, cfg = SDEConfig(steps: 5)
        let steps = [cfg.coefficients(0), cfg.coefficients(1), cfg.coefficients(2), cfg.coefficients(3)]
        var rng = RNG(seed: 17)
        let v = rng.normals(4 * D), x = rng.normals(4 * D), vRef = rng.normals(4 * D)
        // x' near mu so the log-densities are moderate
        let xNext = (0..<(4 * D)).map { i in steps[i / D].cx * x[i] + steps[i / D].cv * v[i] + steps[i / D].s * rng.normal() }
        let A: [Float] = [0.8, -0.6, 0.5, -0.7], alpha: Float = 0.05, eps: Float = 0.2
        func logp(_ vv: [Float], _ b: Int) -> Float {
            let c = steps[b]
            var ss = 0.0
            for i in (b * D)..<((b + 1) * D) { let e = Double(c.cx * x[i] + c.cv * vv[i] - xNext[i]); ss += e * e }
            return Float(-ss / (2 * Double(c.s * c.s) * Double(D))) - c.logNormaliser
        }
        // rho = 1: the plain gradient
        var plain = [Float](repeating: 0, count: 4 * D), surrogate = plain
        acflowTransitionLoss(v: v, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &plain)
        let onPolicy = (0..<4).map { logp(v, $0) }
        let r0 = acflowTransitionLoss(v: v, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &surrogate,
                                      ratio: (onPolicy, eps))
        #expect(r0.clipped == 0)
        #expect(zip(plain, surrogate).allSatisfy { abs($0 - $1) < 1e-5 * max(1, abs($0)) })
        // old log-probabilities: samples 0 and 1 inside the clip, 2 above 1 + eps with A > 0, 3 below 1 - eps with A < 0
        let old = [onPolicy[0] - 0.1, onPolicy[1] + 0.05, onPolicy[2] - 0.5, onPolicy[3] + 0.5]
        var dv = plain
        let r = acflowTransitionLoss(v: v, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &dv, ratio: (old, eps))
        #expect(r.clipped == 2)
        for i in (2 * D)..<(4 * D) { #expect(abs(dv[i] - 2 * alpha * (v[i] - vRef[i]) / Float(4 * D)) < 1e-6) }
        for i in 0..<(2 * D) {
            let h: Float = 1e-3
            var up = v, down = v; up[i] += h; down[i] -= h
            var scratch = dv
            let lp = acflowTransitionLoss(v: up, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &scratch, ratio: (old, eps)).loss
            let lm = acflowTransitionLoss(v: down, x: x, xNext: xNext, steps: steps, vRef: vRef, advantages: A, alpha: alpha, pixels: D, dv: &scratch, ratio: (old, eps)).loss
            let fd = (lp - lm) / Double(2 * h)
            #expect(abs(fd - Double(dv[i])) < 2e-3 * max(1, abs(fd)), "dv[\(i)] \(dv[i]) vs \(fd)")
        }
        var bad = ACFlowConfig()
        bad.ratioClip = -1
        #expect(throws: InvalidOption.self) { try bad.validate() }
    }

    /// GAE with gamma = 1 and V(x_T) = rt, against a hand computation for lambda 0, 0.9 and 1.
    @Test func generalisedAdvantagesByHand() {
        // T = 3 states of B = 2 samples, (T, B) order
        let V: [Float] = [0.1, -0.2, 0.3, 0.0, 0.6, 0.4], rt: [Float] = [0.5, -0.5]
        // sample 0: V = 0.1, 0.3, 0.6; rt 0.5: deltas 0.2, 0.3, -0.1
        // sample 1: V = -0.2, 0.0, 0.4; rt -0.5: deltas 0.2, 0.4, -0.9
        let d0: [Float] = [0.2, 0.3, -0.1], d1: [Float] = [0.2, 0.4, -0.9]
        for lambda: Float in [0, 0.9, 1] {
            let A = generalisedAdvantages(values: V, rewards: rt, lambda: lambda)
            for (b, d) in [d0, d1].enumerated() {
                let expected = [d[0] + lambda * d[1] + lambda * lambda * d[2], d[1] + lambda * d[2], d[2]]
                for k in 0..<3 { #expect(abs(A[k * 2 + b] - expected[k]) < 1e-6, "lambda \(lambda) k \(k) b \(b)") }
            }
            if lambda == 1 { for k in 0..<3 { for b in 0..<2 { #expect(abs(A[k * 2 + b] - (rt[b] - V[k * 2 + b])) < 1e-6) } } }
        }
    }

    /// The warm-up ends only when both the iteration minimum and the explained variance are
    /// reached, and stays ended.
    @Test func warmupLatchNeedsBothAndLatches() {
        var latch = WarmupLatch(minimumIterations: 3, threshold: 0.3)
        let passed = [(1, 0.9), (3, 0.2), (4, -1), (5, 0.31), (6, -5)].map { latch.update(iteration: $0.0, explainedVariance: Float($0.1)) }
        // too early; not explained enough (twice); both; latched
        #expect(passed == [false, false, false, true, true])
        var count = WarmupLatch(minimumIterations: 2, threshold: nil)
        #expect([1, 2].map { count.update(iteration: $0, explainedVariance: -9) } == [false, true])
    }

    /// One AC-Flow iteration on a tiny model: the advantages come from the critic's values
    /// before this iteration's update (not after it), and the control option makes every weight 1
    /// (the regression targets), 0 (the transition target) or r = 1/2 (the nft target): with the
    /// last two the policy does not move.
    @Test(arguments: [ACFlowTarget.visited, .transition, .nft])
    func advantagesUseTheCriticBeforeItsUpdateAndTheControlWeighsAllOne(_ target: ACFlowTarget) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.acflow, steps: 2)
        c.acflow.criticLR = 3e-2; c.acflow.criticSteps = 3; c.acflow.lambda = 0.9; c.acflow.actorSteps = 2
        c.acflow.target = target
        for control in [false, true] {
            c.acflow.zeroAdvantages = control
            let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run-\(control)"))
            let ac = try #require(run.algorithm as? ACFlow)
            ac.warmup.passed = true
            let batch = try run.rolloutBatch()
            let T = c.sde.steps, B = c.batchSize, n = run.policy.config.pixelsPerImage, grid = c.sde.grid
            let states = Array(batch.rollout.states[0..<(T * B * n)])
            let t = (0..<T).flatMap { k in [Float](repeating: grid[k], count: B) }
            let tokens = (0..<T).flatMap { _ in batch.rollout.tokens }
            let before = ac.critic.forward(x: states, t: t, tokens: tokens).value
            let weightsBefore = run.policy.params.array
            let record = try ac.train(batch, run.state)
            let moved = zip(weightsBefore, run.policy.params.array).map { abs($0 - $1) }.max() ?? 0
            let after = ac.critic.forward(x: states, t: t, tokens: tokens).value
            #expect(zip(before, after).contains { abs($0 - $1) > 1e-3 })     // the critic did move
            let rt = ac.lastShapedRewards
            if control {
                let neutral: Float = target == .transition ? 0 : target == .nft ? 0.5 : 1
                #expect(ac.lastAdvantages.allSatisfy { $0 == 0 } && ac.lastWeights.allSatisfy { $0 == neutral })
                // the transition and nft controls have no gradient (v = v_ref = v_old): they cannot drift by themselves
                if target != .visited { #expect(moved == 0, "the control moved a weight by \(moved)") } else { #expect(moved > 0) }
            } else {
                #expect(moved > 0)
                let expected = generalisedAdvantages(values: before, rewards: rt, lambda: 0.9)
                let postUpdate = generalisedAdvantages(values: after, rewards: rt, lambda: 0.9)
                #expect(zip(ac.lastAdvantages, expected).allSatisfy { abs($0 - $1) < 1e-6 })
                #expect(zip(ac.lastAdvantages, postUpdate).contains { abs($0 - $1) > 1e-4 })
            }
            #expect(record["actor_steps"] == 2 && record["grad_cosine"] != nil && record["critic_explained_variance_before"] != nil)
            #expect((record["ratio_clipped_fraction"] != nil) == (target == .transition))
        }
    }

    @Test func shapingAndClipping() {
        let rt = shapeRewards([1, 2, 3, 10, 10, 10], groupSize: 3, kappa: 1, shaping: true)
        #expect(abs(rt[1]) < 1e-6 && rt[0] < 0 && rt[2] > 0 && rt.allSatisfy { abs($0) < 1 })
        #expect(rt[3] == 0)   // zero spread: z = 0
        let (w, clipped) = advantageWeights(zip([0.9, -0.9, 0.1], [-0.9, 0.9, 0]).map { $0 - $1 }, clip: 1, tau: 1, weighting: .exp)
        #expect(clipped == 2)
        #expect(abs(w[0] - exp(1)) < 1e-5 && abs(w[1] - exp(-1)) < 1e-5)
        let (s, _) = advantageWeights([0.5], clip: 1, tau: 1, weighting: .signed)
        #expect(s == [0.5])
    }

    @Test func signedWeightsNeedAlphaAboveTheClip() {
        var a = ACFlowConfig()
        a.target = .visited; a.weighting = .signed; a.alpha = 1; a.advantageClip = 1
        #expect(throws: FinetuneError.self) { try a.validate() }
        a.alpha = 1.5
        #expect(throws: Never.self) { try a.validate() }
        var c = FinetuneConfig()
        c.algo = .acflow; c.acflow.target = .fresh; c.acflow.weighting = .signed; c.acflow.alpha = 0.5
        #expect(throws: FinetuneError.self) { try c.validate() }
    }

    /// `--acflow-step-weights`: each stochastic step's weight is s_k / h_k over the steps' mean
    /// (mean 1, the early, noisy steps above the late ones, the ratios those of s / h), so that a
    /// step's gradient scale |cv| / s^2 becomes GRPO-Guard's |cv| / (s^2) * s / h; and it needs the
    /// transition target.
    @Test func transitionStepWeightsAreGuardsBalance() throws {
        let sde = SDEConfig(steps: 10)
        let steps = (0..<sde.stochasticSteps).map(sde.coefficients)
        let w = transitionStepWeights(steps)
        #expect(w.count == steps.count && abs(w.reduce(0, +) / Float(w.count) - 1) < 1e-5)
        for k in 1..<w.count {
            #expect(w[k] < w[k - 1], "step \(k)")
            #expect(abs(w[k] / w[0] - (steps[k].s / steps[k].h) / (steps[0].s / steps[0].h)) < 1e-5)
        }
        var a = ACFlowConfig()
        a.guardStepWeights = true
        #expect(throws: Never.self) { try a.validate() }
        a.target = .nft
        #expect(throws: FinetuneError.self) { try a.validate() }
        // the weights reach the actor: one iteration from the same seed moves the policy otherwise
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        func policy(weighted: Bool) throws -> [Float] {
            var c = setup.config(.acflow, steps: 1)
            c.acflow.guardStepWeights = weighted
            let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run-\(weighted)"))
            _ = try run.step()
            return (0..<run.state.policy.params.count).map { run.state.policy.params[$0] }
        }
        let (plain, weighted) = (try policy(weighted: false), try policy(weighted: true))
        #expect(plain != weighted)
    }

    /// The critic learns a known target on synthetic states: its MSE falls well below the variance.
    @Test func criticLearnsASyntheticTarget() throws {
        let cfg = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
        var fc = FinetuneConfig()
        fc.acflow.criticLR = 3e-3
        let ac = try ACFlow(config: fc, model: try DiT(config: cfg))
        var rng = RNG(seed: 3)
        let n = cfg.pixelsPerImage, B = 32
        // target: tanh of 3 x the mean of the red channel (a function of the state)
        func batch() -> ([Float], [Float], [Int32], [Float]) {
            var x = [Float](), t = [Float](), y = [Float]()
            for _ in 0..<B {
                let level = rng.uniform(-1, 1)
                let img = (0..<n).map { i in i % 3 == 0 ? level + rng.normal() * 0.1 : rng.normal() * 0.1 }
                x += img; t.append(rng.uniform(0.1, 0.9)); y.append(tanhf(2 * level))
            }
            let tok = try! (0..<B).flatMap { _ in try Tokenizer.encode("a red circle on a blue background") }
            return (x, t, tok, y)
        }
        let (vx, vt, vtok, vy) = batch()
        let mean = vy.reduce(0, +) / Float(B)
        let variance = vy.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(B)
        for _ in 0..<300 { let (x, t, tok, y) = batch(); ac.trainCritic(x: x, t: t, tokens: tok, target: y) }
        let pred = ac.critic.forward(x: vx, t: vt, tokens: vtok).value
        let mse = zip(pred, vy).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(B)
        #expect(mse < 0.1 * variance, "mse \(mse) variance \(variance)")
    }

    @Test func criticGradientMatchesFiniteDifferences() throws {
        let cfg = ModelConfig.tiny(vocabSize: Tokenizer.vocabularySize)
        let critic = Critic(model: cfg, width: 8, seed: 4)
        var rng = RNG(seed: 5)
        for i in 0..<critic.params.count { critic.params[i] = rng.normal() * 0.3 }
        let B = 3
        let x = rng.normals(B * cfg.pixelsPerImage), t: [Float] = [0.2, 0.5, 0.9]
        let tok = try Tokenizer.encode("a red circle on a blue background") + Tokenizer.encode("two green squares on a black background") + Tokenizer.nullTokens
        let r: [Float] = [0.7, -1.2, 0.4]
        func loss() -> Double { zip(critic.forward(x: x, t: t, tokens: tok).value, r).reduce(0.0) { $0 + Double($1.0 * $1.1) } }
        critic.grads.zero()
        critic.backward(critic.forward(x: x, t: t, tokens: tok), dValue: r)
        let mismatches = gradientMismatches(params: critic.params, layout: critic.layout, analytic: critic.grads.copy(), perEntry: 3, loss: loss)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func warmupSwitchesAtExactlyTheConfiguredIteration() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.acflow, steps: 6)
        c.acflow.warmupIterations = 3; c.acflow.warmupExplainedVariance = nil
        let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run"))
        while run.iteration < 6 { try run.step() }
        let inUse = try metricLines(run.metricsURL).map { $0["critic_in_use"] as! Bool }
        #expect(inUse == [false, false, false, true, true, true])
    }
}

/// --micro-batch-size decides memory, not results: the optimiser's batches are accumulated over
/// passes of at most that many samples, and the rollout runs a pass at a time.
@Suite struct MicroBatchSizeTests {
    @Test(arguments: [Algorithm.grpo, .grpoGuard, .acflow])
    func passSizeDoesNotChangeTheRun(_ algo: Algorithm) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var whole = setup.config(algo, steps: 3)
        whole.promptsPerIteration = 4; whole.innerEpochs = 2; whole.beta = 0.1   // shuffled epochs and the KL term too
        whole.acflow.warmupIterations = 1; whole.acflow.warmupExplainedVariance = nil
        var passes = whole
        passes.microBatchSize = 3               // mini-batches of 8 in passes of 3, 3 and 2
        let a = try setup.uninterruptedRun(whole, "whole"), b = try setup.uninterruptedRun(passes, "passes")
        if algo != .acflow {
            let rollout = try #require(a.algorithm.rolloutWorkspaces.first), small = try #require(b.algorithm.rolloutWorkspaces.first)
            #expect(rollout.batch == FinetuneConfig.defaultPassSize && small.batch == 3)
        }
        let la = try RunMetrics(url: a.metricsURL).lines, lb = try RunMetrics(url: b.metricsURL).lines
        #expect(la.count == 3 && lb.count == 3)
        for (x, y) in zip(la, lb) {
            #expect(x.rewardMean == y.rewardMean)     // the same samples: per-sample noise streams
            // the gradient noise is measured from passes smaller than a step (and, for AC-Flow,
            // from its several steps)
            #expect(y["grad_noise"].map { $0 > 0 } == true && y["grad_signal"] != nil)
            #expect((x["grad_noise"] != nil) == (algo == .acflow))
            let gx = try #require(x["grad_norm"]), gy = try #require(y["grad_norm"])
            #expect(abs(gx - gy) <= 1e-4 * gx, "grad norm \(gx) vs \(gy)")
            if let kx = x["kl_ref"], let ky = y["kl_ref"] { #expect(abs(kx - ky) <= 1e-4 * max(kx, 1e-9) + 1e-9, "KL \(kx) vs \(ky)") }
            if let wx = x["w2"], let wy = y["w2"] { #expect(abs(wx - wy) <= 1e-4 * wx + 1e-9, "w2 \(wx) vs \(wy)") }
        }
        var worst: Float = 0
        for i in 0..<a.policy.params.count { worst = max(worst, abs(a.policy.params[i] - b.policy.params[i])) }
        #expect(worst < 1e-5, "largest weight difference \(worst)")
    }

    /// `--shared-initial-noise`: a group's samples start from one noise (and the SDE's steps
    /// then part them); without it every sample has its own.
    @Test func sharedInitialNoiseIsOnePerGroup() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 1)
        c.microBatchSize = 3                                         // a group spans passes
        for shared in [false, true] {
            c.sharedInitialNoise = shared
            let batch = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run-\(shared)")).rolloutBatch()
            let r = batch.rollout, G = c.groupSize
            for b in 1..<c.batchSize {
                let sameGroup = b / G == (b - 1) / G
                #expect((r.state(0, b) == r.state(0, b - 1)) == (shared && sameGroup), "sample \(b)")
                #expect(r.state(1, b) != r.state(1, b - 1))               // the SDE's first step parts them
            }
        }
    }

    /// Workspaces are sized by the pass, not by prompts x group size.
    @Test func workspacesHoldAPassNotTheBatch() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        var c = setup.config(.grpo, steps: 1)
        c.promptsPerIteration = 4; c.groupSize = 8; c.microBatchSize = 4
        let run = try Finetuner(config: c, runDir: setup.dir.appendingPathComponent("run"))
        #expect(run.algorithm.rolloutWorkspaces.count == c.sde.steps && run.algorithm.rolloutWorkspaces.allSatisfy { $0.batch == 4 })
        try run.step()
        #expect(run.iteration == 1)
    }
}
