import Flow

/// Every hyperparameter of a fine-tuning run; written to outputs/RUN/config.json.
public struct FinetuneConfig: Codable, Equatable, Sendable {
    public var algo = Algorithm.grpoGuard  // grpo | grpo-guard | acflow
    public var model = "models/base-s32.safetensors"
    public var prompts = "prompts/train.txt"
    public var evalPrompts = "prompts/eval.txt"
    public var reward = "shape-eval"        // "name=weight,..." (weight 0: logged, not optimised)
    public var steps = 100                  // RL iterations
    public var promptsPerIteration = 4      // P
    public var groupSize = 8                // G (samples per prompt)
    public var sde = SDEConfig()            // T = 10, a = 0.7
    public var microBatches = 2             // M optimiser steps per epoch (the first is on-policy)
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
    public var acflow = ACFlowConfig()      // AC-Flow options (used when algo == acflow)

    public init() {}

    public var batchSize: Int { promptsPerIteration * groupSize }
    public var effectiveClipRange: Float { clipRange ?? algo.defaultClipRange }

    public func validate() throws {
        func bad(_ s: String) -> FinetuneError { FinetuneError(s) }
        guard steps > 0, promptsPerIteration > 0, groupSize > 1 else { throw bad("--steps and --prompts-per-iteration must be positive and --group-size at least 2") }
        guard sde.steps >= 2, sde.noiseLevel > 0, sde.shift > 0 else { throw bad("--sde-steps must be at least 2 and --noise-level, --shift positive") }
        guard microBatches >= 1, batchSize % microBatches == 0 else { throw bad("--micro-batches (\(microBatches)) must divide the batch of \(batchSize) samples") }
        guard innerEpochs >= 1, lr > 0, lr.isFinite, gradClip > 0, effectiveClipRange > 0, beta >= 0 else {
            throw bad("--inner-epochs, --lr, --grad-clip and --clip-range must be positive, --beta non-negative")
        }
        guard checkpointEvery > 0, evalEvery >= 0, evalPerPrompt > 0, evalSteps > 0, evalPrompts_limit > 0 else {
            throw bad("--checkpoint-every, --eval-per-prompt and --eval-steps must be positive")
        }
        if algo == .acflow { try acflow.validate() }
    }
}

public struct FinetuneError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
