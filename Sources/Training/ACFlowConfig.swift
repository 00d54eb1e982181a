import Analysis
import Tensor

/// AC-Flow options (docs/ARCHITECTURE.md says where AC-Flow plugs in). The method section of the paper was not
/// available: this is a reconstruction consistent with its abstract and with its published
/// special case ORW-CFM-W2; every choice is a named option with the documented default.
/// How AC-Flow turns a clipped advantage A into a regression weight.
public enum ACFlowWeighting: String, Codable, CaseIterable, Sendable, SettingChoice {
    case exp       // w = exp(tau A): always positive
    case signed    // w = A: negative weights push away (needs alpha > c_A)
}

/// What AC-Flow's critic reads of a visited state.
public enum ACFlowCriticInput: String, Codable, CaseIterable, Sendable, SettingChoice {
    case pixels     // x_k, t_k and the prompt, through its own small network
    case features   // the policy's own image features of the state (DiT.imageFeatures) and t_k
    case lookahead  // no network: the reward of the policy's prediction of the final image at x_k, x_k - t_k v_k, shaped as rt
}

/// Where AC-Flow trusts its critic once the warm-up is over.
public enum ACFlowCriticTrust: String, Codable, CaseIterable, Sendable, SettingChoice {
    case all        // every visited step, from the iteration the warm-up latch opens (its explained variance over all steps)
    case perStep = "per-step"   // the steps whose own explained variance (a running mean over iterations) reaches the threshold; V = 0 at the others
}

/// What the actor regresses on.
public enum ACFlowTarget: String, Codable, CaseIterable, Sendable, SettingChoice {
    case visited   // (a) the rollout's own states x_k at t_k, target (x_k - x0) / t_k
    case fresh     // (b) fresh interpolants (1 - t) x0 + t eps, target eps - x0
    case transition // (c) the rollout's own transitions x_k -> x_k+1: weight A times their negative log-likelihood
    case nft        // (d) DiffusionNFT's contrast on fresh interpolants of the final images: implicit positive and negative policies around the sampling one
}

/// Version 2 by default (ALGORITHMS.md section 4; docs/ACFLOW.md has the ablation behind the
/// defaults). Version 1's actor (ODE rollouts, one step on fresh logit-normal interpolants, weights
/// not normalised) is `ACFlowConfig.version1`; with `useCritic` and `shaping` off and no clip it
/// is exactly ORW-CFM-W2.
public struct ACFlowConfig: Codable, Equatable, Sendable {
    // rollouts and shaping
    public var sdeRollouts = true               // false: deterministic ODE rollouts (version 1)
    public var kappa: Float = 1                 // reward shaping rt = tanh(z / kappa)
    public var shaping = true                   // false: rt = R (raw reward) — the ORW-CFM-W2 special case
    public var statsEMA: Float = 0              // 0: per-group statistics; in (0,1): EMA of batch mean/std (small G)
    // critic: trained by MSE on the visited states -> rt; its values for the advantages are read before its update
    public var useCritic = true                 // false: V = 0 (A = rt)
    public var criticInput = ACFlowCriticInput.pixels
    public var criticTrust = ACFlowCriticTrust.all
    public var criticWidth = 64                 // hidden width of the critic
    public var criticPositions = true           // patch features keep a learned 2-D position embedding before pooling
    public var criticLR: Float = 1e-3           // critic AdamW learning rate
    public var criticSteps = 4                  // critic AdamW steps per iteration (full batch of visited states)
    // warm-up (A = rt until it ends): at least warmupIterations AND explained variance >= the threshold; latched
    public var warmupIterations = 3
    public var warmupExplainedVariance: Float? = 0.3   // nil: the count alone
    // advantages
    public var lambda: Float = 1                // GAE: 1 = rt - V(x_k); 0 = V(x_{k+1}) - V(x_k)
    public var advantageClip: Float = 1         // c_A
    public var zeroAdvantages = false           // control: every advantage 0, every weight 1
    // actor
    public var target = ACFlowTarget.transition
    public var freshTMin: Float? = 0.5          // (b): t ~ U[tMin, 1); nil: logit-normal over all t (version 1)
    public var actorSteps = 8                   // AdamW steps per rollout batch
    public var actorBatch: Int? = nil           // samples per actor step (nil: the rollout batch size)
    public var tau: Float = 1                   // w = exp(tau * Ahat)
    public var weighting = ACFlowWeighting.exp  // exp | signed (w = Ahat; needs alpha > c_A)
    public var normaliseWeights = true          // weights / their mean (per time step for visited states)
    public var ratioClip: Float? = 1e-3         // (c): PPO's clipped ratio of each transition's probability, eps (nil: no ratio; other targets: unused)
    public var guardStepWeights = false         // (c): each step's transitions weighted s_k / h_k (mean 1), GRPO-Guard's per-step balance
    public var nftBeta: Float = 1               // (d): v+ = beta v + (1 - beta) v_old, v- = (1 + beta) v_old - beta v
    public var alpha: Float = 0.002             // Wasserstein regulariser weight: alpha E||v - v_ref||^2 (docs/ACFLOW.md: 0.1 and up hold the policy still)

    public init() {}

    /// Version 1's recipe: ODE rollouts, one actor step on fresh logit-normal interpolants of the
    /// whole batch, raw exp weights, the warm-up a count (10% of the run).
    public static func version1(steps: Int) -> ACFlowConfig {
        var c = ACFlowConfig()
        c.sdeRollouts = false; c.target = .fresh; c.freshTMin = nil; c.actorSteps = 1; c.actorBatch = nil; c.alpha = 1
        c.ratioClip = nil; c.normaliseWeights = false; c.criticPositions = false; c.criticLR = 1e-4; c.criticSteps = 2
        c.warmupIterations = Int((Float(steps) * 0.1).rounded()); c.warmupExplainedVariance = nil
        return c
    }

    typealias C = OptionCheck

    /// Every AC-Flow setting (lifted into the fine-tuning table; the defaults are version 2's).
    typealias S = Setting<ACFlowConfig>

    public static let table = SettingTable<ACFlowConfig>([
        S.value(\.kappa, "acflow-kappa", "AC-Flow: tanh shaping temperature kappa.", check: C.positive),
        S.flag(\.shaping, "acflow-no-shaping", "AC-Flow: no reward shaping (rt = R).", inverted: true),
        S.value(\.statsEMA, "acflow-stats-ema", "AC-Flow: EMA of batch reward statistics (0: per-group statistics).",
               check: { try C.within($0, $1, 0, 1, upperOpen: true) }),
        S.flag(\.sdeRollouts, "acflow-ode-rollouts", "AC-Flow: deterministic ODE rollouts instead of SDE ones.", inverted: true),
        S.flag(\.useCritic, "acflow-no-critic", "AC-Flow: no critic (V = 0, A = rt).", inverted: true),
        S.value(\.criticInput, "acflow-critic-input", "AC-Flow: the critic: pixels (x_k, t_k and the prompt, through a small network of its own), features (a head on the policy's own image features of the state) or lookahead (no network: the reward of the policy's one-step prediction of the final image, x_k - t_k v_k, shaped as rt)."),
        S.value(\.criticTrust, "acflow-critic-trust", "AC-Flow: where the critic is trusted after the warm-up: all (every visited step, once its explained variance over all of them reaches --acflow-warmup-ev) or per-step (each step whose own explained variance, a running mean over iterations, reaches it; V = 0 at the others)."),
        S.value(\.criticWidth, "acflow-critic-width", "AC-Flow: critic hidden width.", check: C.positive),
        S.flag(\.criticPositions, "acflow-no-positions", "AC-Flow: critic without position embeddings (a plain mean over patches).", inverted: true),
        S.value(\.criticLR, "acflow-critic-lr", "AC-Flow: critic learning rate.", check: C.positive),
        S.value(\.criticSteps, "acflow-critic-steps", "AC-Flow: critic AdamW steps per iteration.", check: C.positive),
        S.value(\.warmupIterations, "acflow-warmup", "AC-Flow: warm-up iterations at least.", check: C.nonNegative),
        S.optional(\.warmupExplainedVariance, "acflow-warmup-ev", "AC-Flow: the warm-up ends when the critic explains this fraction of the variance of rt (before its update; negative: the count alone).",
                  none: "the count alone", isNone: { $0 < 0 }, check: { try C.within($0, $1, 0, 1) }),
        S.value(\.lambda, "acflow-lambda", "AC-Flow: GAE lambda (1: A = rt - V(x_k); 0: A = V(x_k+1) - V(x_k)).", check: { try C.within($0, $1, 0, 1) }),
        S.value(\.advantageClip, "acflow-adv-clip", "AC-Flow: advantage clip c_A.", check: C.positive),
        S.flag(\.zeroAdvantages, "acflow-zero-advantages", "AC-Flow control run: every advantage 0 (weights 1 for the regression targets, 0 for transitions, r = 1/2 for nft): the drift of the actor's regression alone."),
        S.value(\.target, "acflow-target", "AC-Flow: actor target: transition (each visited transition x_k -> x_k+1 weighted by its advantage), visited (regression at the rollout's states toward the final image), fresh (interpolants of the final images) or nft (DiffusionNFT's contrast of implicit positive and negative policies on fresh interpolants; r = 1/2 + A / 2 c_A)."),
        S.optional(\.freshTMin, "acflow-fresh-t-min", "AC-Flow: fresh interpolants' t ~ U[t-min, 1) (negative: logit-normal over all t).",
                  none: "logit-normal over all t", isNone: { $0 < 0 }, check: { try C.within($0, $1, 0, 1, upperOpen: true) }),
        S.value(\.actorSteps, "acflow-actor-steps", "AC-Flow: actor AdamW steps per rollout batch.", check: C.positive),
        S.optional(\.actorBatch, "acflow-actor-batch", "AC-Flow: samples per actor step.", none: "the rollout batch",
                  check: { try C.positive($0, $1); try C.atMost($0, $1, C.maxBatch) }),
        S.value(\.tau, "acflow-tau", "AC-Flow: weight temperature tau, w = exp(tau A) (the transition target weighs by A itself).", check: C.nonNegative),
        S.value(\.weighting, "acflow-weighting", "AC-Flow: weighting of the visited/fresh targets (signed needs alpha > c_A)."),
        S.flag(\.normaliseWeights, "acflow-no-normalise", "AC-Flow: weights not normalised to mean 1.", inverted: true),
        S.optional(\.ratioClip, "acflow-ratio-clip", "AC-Flow: the transition target as PPO's clipped surrogate, each transition's probability ratio to the rollout's clipped to 1 +- EPS (0: no ratio, the weighted log-likelihood).",
                  none: "no ratio", isNone: { $0 == 0 }, check: C.positive,
                  whenGiven: { a in
                      guard a.target == .transition else {
                          throw InvalidOption("--acflow-ratio-clip clips the ratio of a transition's probability; it needs --acflow-target transition")
                      }
                  }),
        S.flag(\.guardStepWeights, "acflow-step-weights", "AC-Flow: the transition target's steps balanced as GRPO-Guard balances them: each step's advantages times s_k / h_k (its noise over its length, mean 1 over the stochastic steps), so that a step's gradient scales as 1 / (s h) instead of 1 / s^2 and the late, low-noise steps no longer dominate."),
        S.value(\.nftBeta, "acflow-nft-beta", "AC-Flow: the nft target's beta, v+ = beta v + (1 - beta) v_old.", check: C.positive),
        S.value(\.alpha, "acflow-alpha", "AC-Flow: Wasserstein regulariser weight alpha (version 1: 1).", check: C.nonNegative),
    ], defaults: ACFlowConfig())

    /// Every value checked, and the combinations that cannot work.
    public func validate() throws {
        if guardStepWeights && target != .transition {
            throw FinetuneError("AC-Flow: --acflow-step-weights weighs the transition target's steps; it needs --acflow-target transition")
        }
        try Self.table.validate(self)
        if target == .transition && !sdeRollouts {
            throw FinetuneError("AC-Flow: --acflow-target transition trains on the SDE rollouts' transitions; it cannot be combined with --acflow-ode-rollouts")
        }
        if weighting == .signed, target != .transition, alpha <= advantageClip {
            throw FinetuneError("AC-Flow: signed weights need alpha (\(alpha)) > the advantage clip c_A (\(advantageClip)), otherwise the actor loss is unbounded below")
        }
    }
}
