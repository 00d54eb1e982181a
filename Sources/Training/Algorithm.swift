import Analysis
import Tensor
import Model
import Flow
import Shapes
import Imaging

extension Algorithm {
    /// The type that runs it.
    public var type: FinetuneAlgorithm.Type {
        switch self {
        case .grpo, .grpoGuard: return ClippedRatioAlgorithm.self
        case .acflow: return ACFlow.self
        }
    }

    /// A new instance of the algorithm for a run, with its own workspaces and state.
    public func make(config: FinetuneConfig, model: DiT) throws -> FinetuneAlgorithm {
        switch self {
        case .grpo: return try ClippedRatioAlgorithm(kind: self, objective: GRPOObjective(clipRange: config.effectiveClipRange), config: config, model: model)
        case .grpoGuard: return try ClippedRatioAlgorithm(kind: self, objective: GRPOGuardObjective(clipRange: config.effectiveClipRange), config: config, model: model)
        case .acflow: return try ACFlow(config: config, model: model)
        }
    }
}

/// What one iteration's rollout produced, handed to the algorithm. The rollout holds this
/// process's samples (`layout.samples`: their batch indices); rewards are the whole batch's.
public struct RolloutBatch {
    public var rollout: Rollout
    public var layout: PassLayout
    public var prompts: [Prompt]            // per local sample
    public var rewards: [Float]             // weighted total, per sample of the whole batch
    public var byScorer: [String: [Float]]  // every scorer's values, per sample of the whole batch
    public var rolloutSeconds = 0.0, rewardSeconds = 0.0
    /// The reward (its weighted total) of other images of this process's samples, each with the
    /// prompt of its sample: what an algorithm asks of the reward beyond the final images (AC-Flow's
    /// lookahead critic scores the predicted final image of every visited state).
    public var score: (_ images: ImageBatch, _ prompts: [Prompt]) throws -> [Float] = { images, _ in [Float](repeating: 0, count: images.count) }
}

/// What every algorithm trains and advances: the policy, the frozen reference (the base model),
/// the policy's optimiser, the run's random stream and the iteration count.
public final class TrainingState {
    public let policy: DiT
    public let reference: DiT
    public var optimizer: AdamW
    public var rng: RNG
    public var iteration = 0

    public init(policy: DiT, reference: DiT, optimizer: AdamW, rng: RNG) {
        self.policy = policy; self.reference = reference; self.optimizer = optimizer; self.rng = rng
    }
}

/// A fine-tuning algorithm: trains the policy on one rollout batch and returns its metrics.
/// The loop around it (prompts, rollouts, rewards, logging, checkpoints, evaluation) is shared
/// (`Finetuner`); each algorithm owns its workspaces and any state of its own (a critic).
public protocol FinetuneAlgorithm: AnyObject {
    var kind: Algorithm { get }
    /// The chart of its own metrics the report draws (diagnostics.png).
    static var diagnostics: DiagnosticsChart { get }
    /// ODE rollouts (true) or SDE rollouts with log-probabilities (false).
    var deterministicRollout: Bool { get }
    /// One training workspace per SDE step for the rollout's first pass (whose activations the
    /// algorithm reuses), or none.
    var rolloutWorkspaces: [Workspace] { get }
    /// Whether the rollout keeps the policy's image features of every visited state.
    var rolloutFeatures: Bool { get }
    /// Trains on the batch and returns what it measured (metrics.jsonl writes it after the
    /// loop's fields; TensorBoard and the report's table list it).
    func train(_ batch: RolloutBatch, _ state: TrainingState) throws -> AlgorithmMetrics
    /// Extra state to checkpoint (e.g. a critic and its optimiser).
    func save(into f: inout SafeTensorsFile)
    func restore(from f: SafeTensorsFile, source: String) throws
}

extension FinetuneAlgorithm {
    public var rolloutFeatures: Bool { false }
}
