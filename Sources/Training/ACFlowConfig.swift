import Tensor

/// AC-Flow options (docs/ARCHITECTURE.md says where AC-Flow plugs in). The method section of the paper was not
/// available: this is a reconstruction consistent with its abstract and with its published
/// special case ORW-CFM-W2; every choice is a named option with the documented default.
/// How AC-Flow turns a clipped advantage A into a regression weight.
public enum ACFlowWeighting: String, Codable, CaseIterable, Sendable {
    case exp       // w = exp(tau A): always positive
    case signed    // w = A: negative weights push away (needs alpha > c_A)
}

public struct ACFlowConfig: Codable, Equatable, Sendable {
    public var kappa: Float = 1                 // reward shaping rt = tanh(z / kappa)
    public var shaping = true                   // false: rt = R (raw reward) — the ORW-CFM-W2 special case
    public var statsEMA: Float = 0              // 0: per-group statistics; in (0,1): EMA of batch mean/std (small G)
    public var criticWidth = 64                 // hidden width of the critic
    public var criticLR: Float = 1e-4           // critic AdamW learning rate
    public var criticSteps = 2                  // critic updates per actor update
    public var warmupFraction: Float = 0.1      // warm-up: first fraction of the run...
    public var warmupIterations: Int? = nil     // ...or exactly this many iterations
    public var mseGate: Float? = 0.5            // ...or until critic MSE < gate * Var(rt) (nil: no gate)
    public var advantageClip: Float = 1         // c_A
    public var tau: Float = 1                   // w = exp(tau * Ahat)
    public var weighting = ACFlowWeighting.exp  // exp | signed (w = Ahat; needs alpha > c_A)
    public var alpha: Float = 1                 // Wasserstein regulariser weight: alpha E||v - v_ref||^2
    public var useCritic = true                 // false: V = 0 (no baseline)
    public var sdeRollouts = false              // false: deterministic ODE rollouts
    public var trajectoryStates = true          // also train the critic on the rollout's own states

    public init() {}

    public func validate() throws {
        typealias C = OptionCheck
        try C.positive("--acflow-kappa", kappa)
        try C.within("--acflow-stats-ema", statsEMA, 0, 1, upperOpen: true)
        try C.positive("--acflow-critic-width", criticWidth)
        try C.positive("--acflow-critic-lr", criticLR)
        try C.positive("--acflow-critic-steps", criticSteps)
        try C.within("--acflow-warmup-fraction", warmupFraction, 0, 1)
        if let warmupIterations { try C.nonNegative("--acflow-warmup", warmupIterations) }
        if let mseGate { try C.nonNegative("--acflow-mse-gate", mseGate) }
        try C.positive("--acflow-adv-clip", advantageClip)
        try C.nonNegative("--acflow-tau", tau)
        try C.nonNegative("--acflow-alpha", alpha)
        if weighting == .signed, alpha <= advantageClip {
            throw FinetuneError("AC-Flow: signed weights need alpha (\(alpha)) > the advantage clip c_A (\(advantageClip)), otherwise the actor loss is unbounded below")
        }
    }

    /// Iterations of critic warm-up in a run of `steps` iterations.
    public func warmup(steps: Int) -> Int { warmupIterations ?? Int((Float(steps) * warmupFraction).rounded()) }
}
