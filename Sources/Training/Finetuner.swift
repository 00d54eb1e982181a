import Foundation
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Rewards

/// What one iteration's rollout produced, handed to the algorithm.
public struct RolloutBatch {
    public var rollout: Rollout
    public var prompts: [String]            // per sample
    public var rewards: [Float]             // weighted total, per sample
    public var byScorer: [String: [Float]]  // every scorer's values, per sample
}

/// A fine-tuning algorithm: trains the policy on one rollout batch and returns its metrics.
/// The loop around it (prompts, rollouts, rewards, logging, checkpoints, evaluation) is shared.
public protocol FinetuneAlgorithm: AnyObject {
    var name: String { get }
    /// ODE rollouts (true) or SDE rollouts with log-probabilities (false).
    var deterministicRollout: Bool { get }
    func train(_ batch: RolloutBatch, _ run: Finetuner) throws -> [(String, JSONValue)]
    /// Extra state to checkpoint (e.g. a critic and its optimiser).
    func save(into f: inout SafeTensorsFile)
    func restore(from f: SafeTensorsFile, source: String) throws
}

/// The fine-tuning loop shared by every algorithm.
public final class Finetuner {
    public let config: FinetuneConfig
    public let runDir: URL
    public let policy: DiT
    public let reference: DiT               // the frozen base model
    public let reward: CombinedReward
    public let trainPrompts: PromptFile
    public let evalPrompts: [String]
    public var optimizer: AdamW
    public private(set) var iteration = 0
    public var rng: RNG
    public private(set) var algorithm: FinetuneAlgorithm!
    let rolloutWS: [Workspace]          // GRPO family: one training workspace per SDE step
    public let trainWS: Workspace
    public let refWS: Workspace
    public let gold: GoldMetrics

    public var metricsURL: URL { runDir.appendingPathComponent("metrics.jsonl") }
    public var policyURL: URL { runDir.appendingPathComponent("checkpoints/policy.safetensors") }
    public var stateURL: URL { runDir.appendingPathComponent("checkpoints/state.safetensors") }

    /// Sets up a run. With `resume`, the run's checkpoint and state are loaded and metrics.jsonl
    /// is cut back to the checkpoint's iteration.
    public init(config: FinetuneConfig, runDir: URL, resume: Bool = false) throws {
        try config.validate()
        self.config = config
        self.runDir = runDir
        let base = try Checkpoint.load(URL(fileURLWithPath: config.model))
        reference = base
        policy = base.clone()
        reward = try CombinedReward(parsing: config.reward, externalTimeout: config.externalTimeout)
        trainPrompts = try PromptFile(path: config.prompts)
        let evalFile = try PromptFile(path: config.evalPrompts)
        let limit = min(config.evalPrompts_limit, evalFile.prompts.count)
        evalPrompts = (0..<limit).map { evalFile.prompts[$0 * evalFile.prompts.count / limit] }
        for p in trainPrompts.prompts + evalPrompts { _ = try Tokenizer.encode(p) }
        optimizer = AdamW(count: policy.parameterCount, lr: config.lr, weightDecay: config.weightDecay,
                          maxGradNorm: config.gradClip, decayMask: policy.layout.decayMask)
        rng = RNG(seed: config.seed).split(0xF17E)
        let B = config.batchSize, mb = B / config.microBatches
        let net = policy
        rolloutWS = config.algo == "acflow" ? [net.makeWorkspace(batch: B, training: false)]
            : (0..<config.sde.steps).map { _ in net.makeWorkspace(batch: B, training: true) }
        trainWS = policy.makeWorkspace(batch: max(mb, config.algo == "acflow" ? B : mb), training: true)
        refWS = policy.makeWorkspace(batch: max(mb, config.algo == "acflow" ? B : mb), training: false)
        gold = GoldMetrics(config: config, reference: reference, evalPrompts: evalPrompts)
        switch config.algo {
        case "grpo": algorithm = GRPOFamily(objective: GRPOObjective(clipRange: config.effectiveClipRange), name: "grpo")
        case "grpo-guard": algorithm = GRPOFamily(objective: GRPOGuardObjective(clipRange: config.effectiveClipRange), name: "grpo-guard")
        default: algorithm = try ACFlow(config: config, model: policy.config)
        }
        if resume { try restore() }
    }

    // MARK: - the loop

    /// One iteration: prompts -> SDE/ODE rollouts -> rewards -> algorithm -> one metrics line.
    @discardableResult
    public func step() throws -> IterationSummary {
        let t0 = Date()
        let P = config.promptsPerIteration, G = config.groupSize, B = config.batchSize
        let n = policy.config.pixelsPerImage
        // P distinct prompts (with replacement only when the list is shorter than P)
        var chosen: [Int] = []
        while chosen.count < P {
            let i = rng.int(trainPrompts.prompts.count)
            if !chosen.contains(i) || trainPrompts.prompts.count < P { chosen.append(i) }
        }
        let prompts = chosen.flatMap { i in Array(repeating: trainPrompts.prompts[i], count: G) }
        let tokens = try prompts.flatMap { try Tokenizer.encode($0) }
        var noiseRNG = rng.split(UInt64(iteration) &* 7919)
        let noise = noiseRNG.normals(B * n)
        var stepRNG = rng.split(UInt64(iteration) &* 104_729 &+ 1)
        let sampler = SDESampler(config: config.sde)
        let rollout = sampler.rollout(model: policy, workspaces: rolloutWS, noise: noise, tokens: tokens, rng: &stepRNG,
                                      deterministic: algorithm.deterministicRollout)
        let tRollout = Date()
        let images = (0..<B).map { rollout.image($0) }
        let (total, byScorer) = try reward.evaluate(images, prompts: prompts, imageSize: policy.config.imageSize)
        let tReward = Date()
        let batch = RolloutBatch(rollout: rollout, prompts: prompts, rewards: total, byScorer: byScorer)
        let algoMetrics = try algorithm.train(batch, self)
        _ = rng.nextUInt64()      // advance the run's stream once per iteration
        iteration += 1
        let tTrain = Date()
        guard policy.params.buffer.allSatisfy({ $0.isFinite }) else {
            throw FinetuneError("iteration \(iteration): the weights became non-finite; the run stops, the last checkpoint is intact")
        }
        let mean = total.reduce(0, +) / Float(B)
        let std = Advantages.std(total[...])
        var line: [(String, JSONValue)] = [
            ("step", .int(iteration)), ("algo", .string(algorithm.name)),
            ("reward_mean", .double(Double(mean))), ("reward_std", .double(Double(std))),
            ("rewards", .object(reward.names.map { name in (name, .double(Double(byScorer[name]!.reduce(0, +) / Float(B)))) })),
            ("seconds", .double(tTrain.timeIntervalSince(t0))),
            ("rollout_seconds", .double(tRollout.timeIntervalSince(t0))),
            ("reward_seconds", .double(tReward.timeIntervalSince(tRollout))),
            ("train_seconds", .double(tTrain.timeIntervalSince(tReward))),
            ("lr", .double(Double(optimizer.lr))),
        ]
        line += algoMetrics
        var evalSummary: JSONValue?
        if config.evalEvery > 0 && (iteration % config.evalEvery == 0 || iteration == config.steps) {
            evalSummary = try evaluate()
            line.append(("eval", evalSummary!))
        }
        try appendLine(JSONValue.object(line).text, to: metricsURL)
        if iteration % config.checkpointEvery == 0 || iteration == config.steps { try save() }
        return IterationSummary(iteration: iteration, rewardMean: mean, seconds: tTrain.timeIntervalSince(t0), evaluated: evalSummary != nil)
    }

    /// The step-0 evaluation (the base model), written before the first iteration of a new run.
    public func evaluateBase() throws {
        guard config.evalEvery > 0, iteration == 0 else { return }
        let e = try evaluate()
        try appendLine(JSONValue.object([("step", .int(0)), ("algo", .string(algorithm.name)), ("eval", e)]).text, to: metricsURL)
    }

    /// Gold metrics and the grid for the current weights.
    public func evaluate() throws -> JSONValue {
        try gold.evaluate(policy: policy, reward: reward, step: iteration, gridURL: runDir.appendingPathComponent(String(format: "grids/step-%05d.png", iteration)))
    }

    // MARK: - checkpoints

    /// Writes the policy (a model checkpoint `sample`/`evaluate` can read) and the training state.
    public func save() throws {
        var state = SafeTensorsFile()
        state.add("adam.m", shape: [optimizer.m.count], values: optimizer.m)
        state.add("adam.v", shape: [optimizer.v.count], values: optimizer.v)
        algorithm.save(into: &state)
        state.metadata["format"] = "flowtune-finetune-state"
        state.metadata["iteration"] = String(iteration)
        state.metadata["adam_step"] = String(optimizer.step)
        state.metadata["rng"] = rng.stateWords.map(String.init).joined(separator: ",")
        try writeAtomically(try state.serialized(), to: stateURL)
        try Checkpoint.save(policy, to: policyURL, extra: ["iteration": String(iteration), "algo": config.algo])
    }

    func restore() throws {
        let f = try SafeTensorsFile(contentsOf: stateURL)
        guard f.metadata["format"] == "flowtune-finetune-state", let it = f.metadata["iteration"].flatMap(Int.init),
              let a = f.metadata["adam_step"].flatMap(Int.init),
              let words = f.metadata["rng"]?.split(separator: ",").compactMap({ UInt64($0) }), words.count == 4,
              let m = f.tensors["adam.m"], let v = f.tensors["adam.v"], m.values.count == optimizer.m.count, v.values.count == optimizer.v.count else {
            throw FinetuneError("\(stateURL.path): not a complete fine-tuning state")
        }
        let p = try Checkpoint.load(policyURL, expect: policy.config)
        policy.params.assign(from: p.params)
        optimizer.m = m.values; optimizer.v = v.values; optimizer.step = a
        rng = RNG(state: words)
        iteration = it
        try algorithm.restore(from: f, source: stateURL.path)
        try truncateJSONLines(metricsURL, maxStep: it)     // keep only the lines the checkpoint covers
    }
}

public struct IterationSummary {
    public var iteration: Int
    public var rewardMean: Float
    public var seconds: Double
    public var evaluated: Bool
}

/// Flow-GRPO and GRPO-Guard: group advantages, then `trainPolicyPass` with the objective.
public final class GRPOFamily: FinetuneAlgorithm {
    public let name: String
    public let objective: PolicyObjective
    public var deterministicRollout: Bool { false }
    public init(objective: PolicyObjective, name: String) { self.objective = objective; self.name = name }

    public func train(_ batch: RolloutBatch, _ run: Finetuner) throws -> [(String, JSONValue)] {
        let c = run.config
        let adv = Advantages(rewards: batch.rewards, groupSize: c.groupSize, globalStd: c.globalStd, clip: c.advantageClip)
        let stats = trainPolicyPass(policy: run.policy, reference: run.reference, beta: c.beta, objective: objective,
                                    rollout: batch.rollout, advantages: adv, microBatches: c.microBatches, epochs: c.innerEpochs,
                                    optimizer: &run.optimizer, ws: run.trainWS, refWS: c.beta > 0 ? run.refWS : nil, rng: &run.rng,
                                    rolloutWorkspaces: run.rolloutWS)
        let klMean = stats.steps.map { $0.sumKL / Double(max($0.count, 1)) }.reduce(0, +) / Double(max(stats.steps.count, 1))
        return [("onpolicy_ratio_max_dev", .double(stats.onPolicyMaxDeviation)),
                ("loss", .double(stats.loss)),
                ("grad_norm", .double(Double(stats.gradNorms.max() ?? 0))),
                ("kept_fraction", .double(Double(stats.kept) / Double(batch.rewards.count))),
                ("clip_range", .double(Double(objective.clipRange))),
                ("kl_ref", .double(klMean)),
                ("timesteps", .array(stats.steps.map(\.json)))]
    }
    public func save(into f: inout SafeTensorsFile) {}
    public func restore(from f: SafeTensorsFile, source: String) throws {}
}
