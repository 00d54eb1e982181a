import Flow
import Rewards
import Tensor

/// Every hyperparameter of a fine-tuning run; written to outputs/RUN/config.json.
public struct FinetuneConfig: Codable, Equatable, Sendable {
    public var algo = Algorithm.grpoGuard  // grpo | grpo-guard | acflow
    public var model = "models/base-s32c-distilled.safetensors"
    public var prompts = "prompts/train.txt"
    public var evalPrompts = "prompts/eval.txt"
    /// Where the folder a data model was trained on is now (nil: the path in the model file).
    public var data: String? = nil
    public var reward = "shape-eval"        // "name=weight,..." (weight 0: logged, not optimised)
    public var steps = 100                  // RL iterations
    public var promptsPerIteration = 4      // P
    public var groupSize = 8                // G (samples per prompt)
    public var sde = SDEConfig()            // T = 10, a = 0.7
    public var sharedInitialNoise: Bool? = nil  // one initial noise x_1 per group (nil, false: one per sample)
    public var microBatches = 2             // M optimiser steps per epoch (the first is on-policy)
    public var microBatchSize: Int? = nil   // samples per forward/backward pass (nil: up to 32); bounds the activations' memory
    public var innerEpochs = 1              // passes over each rollout batch
    public var lr: Float = 1e-4             // AdamW learning rate
    public var weightDecay: Float = 1e-4
    public var gradClip: Float = 1.0
    public var clipRange: Float? = nil      // PPO clip eps (nil: 1e-4 for grpo, 3e-6 for grpo-guard)
    public var beta: Float = 0              // KL to the frozen base model
    public var globalStd = false            // advantages normalised by the batch std instead of the group's
    public var advantageClip: Float = 5
    public var seed: UInt64 = 0
    public var checkpointEvery = 10         // iterations between checkpoints
    public var evalEvery = 10               // iterations between grids / gold metrics (0: never)
    public var evalPerPrompt = 4            // seeds per eval prompt in grids and gold metrics
    public var evalPrompts_limit = 16       // eval prompts used in grids and gold metrics
    public var evalSteps = 20               // Euler steps for grids and gold metrics
    public var externalTimeout: Double = 30 // seconds an external scorer may take per image
    public var rmCombine: String? = nil     // how an rm:P1+P2 ensemble's members combine (nil: mean)
    public var acflow = ACFlowConfig()      // AC-Flow options (used when algo == acflow)
    public var precision: Precision? = nil  // the GEMMs' input format, rollouts and training passes alike (nil: fp32)
    /// The base model file's CRC-32 when the run started (a resume refuses another file at `model`).
    public var modelChecksum: String? = nil

    public init() {}

    /// The run's precision: fp32 when `precision` is absent, and fp32 stored as absent (as in
    /// the config.json of runs without the field).
    public var runPrecision: Precision {
        get { precision ?? .fp32 }
        set { precision = newValue == .fp32 ? nil : newValue }
    }
    public var batchSize: Int { promptsPerIteration * groupSize }
    public var ensembleCombine: EnsembleCombine { get throws { try rmCombine.map(EnsembleCombine.init(parsing:)) ?? .mean } }
    public var effectiveClipRange: Float { clipRange ?? algo.defaultClipRange }
    /// Samples per network pass: activations are kept for this many samples at a time.
    public var passSize: Int { microBatchSize ?? Self.defaultPassSize }
    public static let defaultPassSize = 32

    /// Every value checked; the first bad one is an error naming its option and value.
    public func validate() throws {
        typealias C = OptionCheck
        try C.positive("--steps", steps)
        try C.positive("--prompts-per-iteration", promptsPerIteration)
        try C.atLeast("--group-size", groupSize, 2)
        let (samples, overflow) = promptsPerIteration.multipliedReportingOverflow(by: groupSize)
        guard !overflow, samples <= C.maxBatch else {
            throw InvalidOption("--prompts-per-iteration x --group-size must be at most \(C.maxBatch) samples per iteration, got \(promptsPerIteration) x \(groupSize)")
        }
        try C.atLeast("--sde-steps", sde.steps, 2)
        try C.atMost("--sde-steps", sde.steps, C.maxSteps)
        if let w = sde.window { try C.positive("--sde-window", w); try C.atMost("--sde-window", w, sde.steps) }
        try C.positive("--noise-level", sde.noiseLevel)
        try C.positive("--shift", sde.shift)
        try C.positive("--micro-batches", microBatches)
        guard batchSize % microBatches == 0 else {
            throw InvalidOption("--micro-batches (\(microBatches)) must divide the batch of \(batchSize) samples (--prompts-per-iteration x --group-size)")
        }
        if let microBatchSize { try C.positive("--micro-batch-size", microBatchSize); try C.atMost("--micro-batch-size", microBatchSize, C.maxBatch) }
        try C.positive("--inner-epochs", innerEpochs)
        try C.positive("--lr", lr)
        try C.nonNegative("--weight-decay", weightDecay)
        try C.positive("--grad-clip", gradClip)
        try C.positive("--clip-range", effectiveClipRange)
        try C.nonNegative("--beta", beta)
        try C.positive("--advantage-clip", advantageClip)
        try C.positive("--checkpoint-every", checkpointEvery)
        try C.nonNegative("--eval-every", evalEvery)
        try C.positive("--eval-per-prompt", evalPerPrompt)
        try C.positive("--eval-prompt-count", evalPrompts_limit)
        try C.positive("--eval-steps", evalSteps)
        try C.atMost("--eval-steps", evalSteps, C.maxSteps)
        try C.atMost("--eval-prompt-count", evalPrompts_limit, C.maxBatch)
        try C.atMost("--eval-per-prompt", evalPerPrompt, C.maxBatch / evalPrompts_limit)
        try C.positive("--external-timeout", externalTimeout)
        _ = try RewardSpec(parsing: reward)
        _ = try ensembleCombine
        try acflow.validate()     // written to config.json whatever the algorithm
    }
}

public struct FinetuneError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
