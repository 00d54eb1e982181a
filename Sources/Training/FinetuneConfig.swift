import Foundation
import Flow
import Rewards
import Analysis
import Tensor

extension Precision: SettingChoice {}

/// Every hyperparameter of a fine-tuning run; written to outputs/RUN/config.json. Each field's
/// initial value is its default; `FinetuneConfig.table` declares each setting once (its option,
/// JSON key, help, check, sweep axis and resume rule).
public struct FinetuneConfig: Codable, Equatable, Sendable {
    public var algo = Algorithm.grpoGuard
    public var model = "models/base-s32c-distilled.safetensors"
    public var prompts = "prompts/train.txt"
    public var evalPrompts = "prompts/eval.txt"
    /// Where the folder a data model was trained on is now (nil: the path in the model file).
    public var data: String? = nil
    public var reward = "shape-eval"
    public var steps = 100
    public var promptsPerIteration = 4
    public var groupSize = 8
    public var sde = SDEConfig()
    public var sharedInitialNoise = false
    public var microBatches = 2
    public var microBatchSize: Int? = nil   // nil: defaultPassSize
    public var innerEpochs = 1
    public var lr: Float = 1e-4
    public var weightDecay: Float = 1e-4
    public var gradClip: Float = 1.0
    public var clipRange: Float? = nil      // nil: the algorithm's default
    public var beta: Float = 0
    public var globalStd = false
    public var advantageClip: Float = 5
    public var seed: UInt64 = 0
    public var checkpointEvery = 10
    public var evalEvery = 10
    public var evalEarly = false
    public var evalPerPrompt = 4
    public var evalPromptCount = 16
    public var evalSteps = 20
    public var externalTimeout: Double = 30
    public var rmCombine = "mean"
    public var acflow = ACFlowConfig()
    public var precision = Precision.fp32
    /// The base model file's CRC-32 when the run started (a resume refuses another file at `model`).
    public var modelChecksum: String? = nil

    public init() {}

    public var batchSize: Int { promptsPerIteration * groupSize }
    public var ensembleCombine: EnsembleCombine { get throws { try EnsembleCombine(parsing: rmCombine) } }
    public var effectiveClipRange: Float { clipRange ?? algo.defaultClipRange }
    /// Samples per network pass: activations are kept for this many samples at a time.
    public var passSize: Int { microBatchSize ?? Self.defaultPassSize }
    public static let defaultPassSize = 32

    typealias C = OptionCheck
    typealias S = Setting<FinetuneConfig>

    /// Every fine-tuning setting (the AC-Flow ones from `ACFlowConfig.table`).
    public static let table = SettingTable<FinetuneConfig>(runSettings + trainingSettings + evaluationSettings + acflowSettings, defaults: FinetuneConfig())

    static let runSettings: [S] = [
        S.value(\.algo, "algo", "Algorithm."),
        S.value(\.model, "model", "Base model checkpoint.", placeholder: "path"),
        S.value(\.prompts, "prompts", "Training prompt list (data:train: a folder model's training captions, its default).", placeholder: "file"),
        S.value(\.evalPrompts, "eval-prompts", "Held-out prompt list for grids and gold metrics (data:held-out: a folder model's held-out captions, its default).", placeholder: "file"),
        S.optional(\.data, "data", "A model trained on a folder of images: where that folder is now. Such a model's prompts default to its training captions (data:train) and held-out captions (data:held-out).",
                  none: "where the model file says it was", placeholder: "dir", sweep: false),
        S.value(\.reward, "reward", "Reward: name[=weight],... (\(ScorerRegistry.names)); weight 0 is logged, not optimised.",
               check: { _, spec in _ = try RewardSpec(parsing: spec) }, placeholder: "spec"),
        S.value(\.steps, "steps", "RL iterations.", check: C.positive, sweep: false, resume: true),
        S.value(\.promptsPerIteration, "prompts-per-iteration", "Prompts per iteration (P).", check: C.positive),
        S.value(\.groupSize, "group-size", "Samples per prompt (G).", check: { try C.atLeast($0, $1, 2) }),
        S.value(\.sde.steps, "sde-steps", "SDE steps per rollout (T).", check: { try C.atLeast($0, $1, 2); try C.atMost($0, $1, C.maxSteps) }),
        S.value(\.sde.noiseLevel, "noise-level", "SDE noise level a.", check: C.positive),
        S.value(\.sde.shift, "shift", "Time-grid shift of rollouts (1: uniform).", check: C.positive),
        S.flag(\.sde.stochasticLastStep, "train-last-step", "Make the last rollout step stochastic and train it too (the peer benchmark's setting)."),
        S.flag(\.sharedInitialNoise, "shared-initial-noise", "Start every sample of a group from the same initial noise (the group's spread then comes from the SDE's steps alone)."),
        S.optional(\.sde.window, "sde-window", "Make only the first k rollout steps stochastic and train them; the later ones are deterministic Euler steps.",
                  none: "every step but the last", check: C.positive, placeholder: "k"),
    ]

    static let trainingSettings: [S] = [
        S.value(\.microBatches, "micro-batches", "Micro-batches per epoch, one optimiser step each (the first is on-policy).", check: C.positive),
        S.optional(\.microBatchSize, "micro-batch-size", "Samples per network pass: each optimiser step's gradient is accumulated over passes of at most this many, and activations are kept for that many samples at a time, so memory does not grow with prompts x group size.",
                  none: "\(defaultPassSize)", check: { try C.positive($0, $1); try C.atMost($0, $1, C.maxBatch) }),
        S.value(\.innerEpochs, "inner-epochs", "Passes over each rollout batch.", check: C.positive),
        S.value(\.lr, "lr", "Learning rate (AdamW).", check: C.positive),
        S.value(\.weightDecay, "weight-decay", "AdamW weight decay.", check: C.nonNegative),
        S.value(\.gradClip, "grad-clip", "Gradient-norm clip.", check: C.positive),
        S.optional(\.clipRange, "clip-range", "PPO clip range eps.", none: "1e-4 for grpo, 3e-6 for grpo-guard", check: C.positive),
        S.value(\.beta, "beta", "KL weight to the frozen base model.", check: C.nonNegative),
        S.flag(\.globalStd, "global-std", "Normalise advantages by the whole batch's std instead of each group's."),
        S.value(\.advantageClip, "advantage-clip", "Advantage clamp.", check: C.positive),
    ]

    static let evaluationSettings: [S] = [
        S.value(\.seed, "seed", "Random seed.", sweep: false),
        S.value(\.checkpointEvery, "checkpoint-every", "Checkpoint every N iterations.", check: C.positive, sweep: false),
        S.value(\.evalEvery, "eval-every", "Grids and gold metrics every N iterations (0: never).", check: C.nonNegative),
        S.flag(\.evalEarly, "eval-early", "Also evaluate at iterations 1, 2, 4, 8, ... below --eval-every: the start of a run, at small distances from the base model (the first points of a Goodhart curve)."),
        S.value(\.evalPerPrompt, "eval-per-prompt", "Seeds per eval prompt in grids and gold metrics.", check: C.positive),
        S.value(\.evalPromptCount, "eval-prompt-count", "Eval prompts used (spread over the list).",
               check: { try C.positive($0, $1); try C.atMost($0, $1, C.maxBatch) }, legacy: "evalPrompts_limit"),
        S.value(\.evalSteps, "eval-steps", "Euler steps for grids and gold metrics.", check: { try C.positive($0, $1); try C.atMost($0, $1, C.maxSteps) }),
        S.value(\.externalTimeout, "external-timeout", "Seconds an external scorer may take per image.", check: C.positive, sweep: false),
        S.value(\.rmCombine, "rm-combine", "How the members of an rm:P1+P2 ensemble combine: mean, min, or mean-std:LAMBDA (mean - LAMBDA x their std).",
               check: { name, v in do { _ = try EnsembleCombine(parsing: v) } catch { throw InvalidOption("\(name): \(error)") } }, placeholder: "rule"),
        // given by --precision (every command with --threads has it); stored and swept here
        S.value(\.precision, "precision", "The matrix products' inputs (rollouts and training passes alike).", commandLine: false),
        S.optional(\.modelChecksum, "model-checksum", "The base model file's CRC-32 when the run started.", none: "not recorded yet", sweep: false, commandLine: false),
    ]

    static let acflowSettings: [S] = [
        S.preset("acflow-v1", "AC-Flow: start from version 1's recipe (ODE rollouts, one actor step on fresh logit-normal interpolants, raw weights, a counted warm-up); other --acflow options still apply.") {
            $0.acflow = .version1(steps: $0.steps)
        },
    ] + ACFlowConfig.table.settings.map { $0.lifted(\FinetuneConfig.acflow) }

    /// The options of `names` (settings given on a command line) that `algo` does not read: every
    /// AC-Flow option under GRPO and GRPO-Guard, and the clipped-ratio pass's own (--beta,
    /// --clip-range, --inner-epochs, --global-std, --advantage-clip) under AC-Flow, which has its own
    /// regulariser and advantage clip. A run given one would go ahead as if it had not been.
    public static func unread(_ names: [String], by algo: Algorithm) -> [String] {
        let acflow = Set(acflowSettings.map(\.name))
        let clippedRatio: Set = ["beta", "clip-range", "inner-epochs", "global-std", "advantage-clip"]
        return names.filter { algo == .acflow ? clippedRatio.contains($0) : acflow.contains($0) }.map { "--" + $0 }
    }

    /// Whether iteration `it` (1 ... steps) writes an evaluation: every --eval-every-th, the last,
    /// and with --eval-early the powers of two below --eval-every. Never with --eval-every 0.
    public func evaluates(_ it: Int) -> Bool {
        guard evalEvery > 0, it > 0 else { return false }
        return it % evalEvery == 0 || it == steps || (evalEarly && it < evalEvery && it & (it - 1) == 0)
    }

    /// Every value checked; the first bad one is an error naming its option and value.
    public func validate() throws {
        try Self.table.validate(self)
        let (samples, overflow) = promptsPerIteration.multipliedReportingOverflow(by: groupSize)
        guard !overflow, samples <= C.maxBatch else {
            throw InvalidOption("--prompts-per-iteration x --group-size must be at most \(C.maxBatch) samples per iteration, got \(promptsPerIteration) x \(groupSize)")
        }
        if let w = sde.window { try C.atMost("--sde-window", w, sde.steps) }
        guard batchSize % microBatches == 0 else {
            throw InvalidOption("--micro-batches (\(microBatches)) must divide the batch of \(batchSize) samples (--prompts-per-iteration x --group-size)")
        }
        try C.positive("--clip-range", effectiveClipRange)
        try C.atMost("--eval-per-prompt", evalPerPrompt, C.maxBatch / evalPromptCount)
        try acflow.validate()     // written to config.json whatever the algorithm
    }

    public init(from decoder: Decoder) throws { self = try Self.table.decode(from: decoder) }
    public func encode(to encoder: Encoder) throws { try Self.table.encode(self, to: encoder) }
}

public struct FinetuneError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
