import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Rewards

/// The fine-tuning loop shared by every algorithm.
public final class Finetuner {
    public let config: FinetuneConfig
    /// What the set-up found worth telling (words of the prompts the model's vocabulary lacks).
    public private(set) var notes: [String] = []
    public let runDir: URL
    public let state: TrainingState
    public let reward: CombinedReward
    public let trainPrompts: PromptFile
    public let evalPrompts: [Prompt]
    public let algorithm: FinetuneAlgorithm
    public let gold: GoldMetrics
    /// The processes this run is spread over (one without mpirun).
    public let world: World
    var inferenceWS: Workspace?

    public var policy: DiT { state.policy }
    public var reference: DiT { state.reference }       // the frozen base model
    public var iteration: Int { state.iteration }
    public var metricsURL: URL { runDir.appendingPathComponent("metrics.jsonl") }
    /// The base model file's CRC-32 (config.json records it when a run starts).
    public let modelChecksum: String
    /// What the policy checkpoint records of where it came from (Checkpoint.algoKey and the
    /// keys beside it), with its iteration added at each save.
    let policyMetadata: [String: String]
    public var policyURL: URL { runDir.appendingPathComponent("checkpoints/policy.safetensors") }
    public var stateURL: URL { runDir.appendingPathComponent("checkpoints/state.safetensors") }

    /// Sets up a run. With `resume`, the run's checkpoint and state are loaded and metrics.jsonl
    /// is cut back to the checkpoint's iteration. `tensorboard`: an event file beside
    /// metrics.jsonl. `algorithm`: made from the configuration unless given (a test's own).
    public init(config given: FinetuneConfig, runDir: URL, resume: Bool = false, world: World = .current, tensorboard: Bool = true,
                algorithm: ((FinetuneConfig, DiT) throws -> FinetuneAlgorithm)? = nil) throws {
        var config = given
        try config.validate()
        guard config.promptsPerIteration % world.size == 0 else {
            throw FinetuneError("\(world.size) processes cannot share \(config.promptsPerIteration) prompt groups evenly: give --prompts-per-iteration a multiple of the process count")
        }
        self.world = world
        self.runDir = runDir
        let modelData = try SafeTensorsFile.read(URL(fileURLWithPath: config.model))
        modelChecksum = SafeTensorsFile.checksum(of: modelData)
        if resume, let recorded = config.modelChecksum, recorded != modelChecksum {
            throw FinetuneError("\(config.model) is not the base model the run in \(runDir.path) started from (its CRC-32 was \(recorded), the file's is now \(modelChecksum)): put that model back, or start a new run")
        }
        let baseFile = try SafeTensorsFile(data: modelData, source: config.model)
        let base = try Checkpoint.load(baseFile, source: config.model)
        var provenance = [Checkpoint.algoKey: config.algo.rawValue, Checkpoint.finetunedFromKey: config.model,
                          Checkpoint.finetunedFromChecksumKey: modelChecksum, Checkpoint.rewardKey: config.reward]
        provenance[Checkpoint.baseCaptionNoiseKey] = baseFile.metadata[Checkpoint.captionNoiseKey]
        for key in [Checkpoint.distilledCFGKey, Checkpoint.distilledFromKey] { provenance[key] = baseFile.metadata[key] }
        policyMetadata = provenance
        let policy = base.clone()
        reward = try CombinedReward(parsing: config.reward, externalTimeout: config.externalTimeout, rmCombine: config.ensembleCombine)
        // a model trained on a folder: its captions are the default prompts, its held-out images the gold
        var folder: FolderData?
        if base.trainedOn != nil {
            let defaults = FinetuneConfig()
            if config.prompts == defaults.prompts { config.prompts = FolderData.trainCaptions }
            if config.evalPrompts == defaults.evalPrompts { config.evalPrompts = FolderData.heldOutCaptions }
            if let name = reward.terms.first(where: { $0.scorer.readsShapesPrompts })?.scorer.name {
                throw FinetuneError("\(name) reads shapes-world prompts; \(config.model) is trained on a folder of images: give a scorer that reads any image (brightness, saturation, jpeg-compressibility, external:COMMAND)")
            }
            folder = try FolderData(model: base, source: config.model, folder: config.data)
        } else if config.data != nil {
            throw FinetuneError("--data names the folder a model was trained on; \(config.model) is a shapes-world model")
        }
        self.config = config
        trainPrompts = try FolderData.promptFile(config.prompts, model: base, source: config.model, cached: folder)
        let evalFile = try FolderData.promptFile(config.evalPrompts, model: base, source: config.model, cached: folder)
        let limit = min(config.evalPromptCount, evalFile.entries.count)
        evalPrompts = (0..<limit).map { evalFile.entries[$0 * evalFile.entries.count / limit] }
        notes = [trainPrompts, evalFile].filter { $0.path != FolderData.trainCaptions }.compactMap(FolderData.unknownWordsNote)
        let optimizer = AdamW(count: policy.parameterCount, lr: config.lr, weightDecay: config.weightDecay,
                              maxGradNorm: config.gradClip, decayMask: policy.layout.decayMask)
        state = TrainingState(policy: policy, reference: base, optimizer: optimizer, rng: RNG(seed: config.seed).split(0xF17E))
        self.algorithm = try algorithm?(config, policy) ?? config.algo.make(config: config, model: policy)
        self.tensorboard = tensorboard
        gold = try GoldMetrics(config: config, reference: base, evalPrompts: evalPrompts, against: folder.map(GoldReference.folder) ?? .rendered)
        if resume { try restore() }
    }

    // MARK: - the loop

    /// The next iteration's prompts, SDE/ODE rollouts and rewards (drawn from the run's random
    /// stream). Every process draws the same P prompts and rolls out its share of the groups
    /// (`PassLayout(groups:...)`), a pass at a time; each sample's noise is its own stream, so the samples
    /// are the same whoever rolls them out. The rewards are gathered: every process has all B.
    public func rolloutBatch() throws -> RolloutBatch {
        let t0 = Date()
        let P = config.promptsPerIteration, G = config.groupSize, B = config.batchSize
        let n = policy.config.pixelsPerImage, L = policy.config.textLength
        // P distinct prompts (with replacement only when the list is shorter than P)
        var chosen: [Int] = []
        while chosen.count < P {
            let i = state.rng.int(trainPrompts.entries.count)
            if !chosen.contains(i) || trainPrompts.entries.count < P { chosen.append(i) }
        }
        let allPrompts = chosen.flatMap { i in Array(repeating: trainPrompts.entries[i], count: G) }
        var layout = PassLayout(groups: P, groupSize: G, microBatchSize: config.passSize, world: world)
        let samples = layout.samples
        let prompts = samples.map { allPrompts[$0] }
        let noiseRNG = state.rng.split(UInt64(iteration) &* 7919)
        let stepRNG = state.rng.split(UInt64(iteration) &* 104_729 &+ 1)
        let sampler = SDESampler(config: config.sde)
        // the first pass of the first mini-batch in the algorithm's training workspaces (reused
        // by its on-policy pass), the others a pass at a time in one inference workspace
        let u = config.passSize, mb = B / config.microBatches
        let reusable = algorithm.rolloutWorkspaces.isEmpty ? 0 : min(u, samples.filter { $0 < mb }.count)
        var rollout = Rollout(batch: samples.count, pixels: n, config: config.sde, tokenLength: L)
        if inferenceWS == nil && samples.count > reusable { inferenceWS = try policy.makeWorkspace(batch: u, training: false) }
        var start = 0
        while start < samples.count {
            let end = start == 0 && reusable > 0 ? reusable : min(samples.count, start + u)
            let chunk = Array(samples[start..<end])
            // the initial noise: each sample's own, or (shared) its group's: then a group's
            // spread comes from the SDE's steps alone, which the policy gradient can credit
            let noiseStreams = config.sharedInitialNoise ? chunk.map { $0 / G } : chunk
            let noise = SDESampler.streams(noiseRNG, samples: noiseStreams).flatMap { r -> [Float] in var r = r; return r.normals(n) }
            var rngs = SDESampler.streams(stepRNG, samples: chunk)
            let tokens = prompts[start..<end].flatMap(\.tokens)
            let part = sampler.rollout(model: policy, workspaces: start == 0 && reusable > 0 ? algorithm.rolloutWorkspaces : [inferenceWS!],
                                       noise: noise, tokens: tokens, rngs: &rngs, deterministic: algorithm.deterministicRollout,
                                       features: algorithm.rolloutFeatures)
            rollout.place(part, at: start)
            start = end
        }
        let tRollout = Date()
        let images = ImageBatch(pixels: Array(rollout.images), size: policy.config.imageSize)
        let (localTotal, localByScorer) = try reward.evaluate(images, prompts: prompts)
        let tReward = Date()
        // every process's rewards, in batch order
        let total = layout.gather(localTotal)
        let byScorer = Dictionary(uniqueKeysWithValues: reward.names.map { ($0, layout.gather(localByScorer[$0]!)) })
        let (mean, std) = meanAndStd(total[...])
        guard mean.isFinite, std.isFinite else {
            throw FinetuneError("iteration \(iteration + 1): the rewards' mean is \(mean) and spread \(std) (each reward is finite, their sum is not: rescale the reward); the run stops, \(checkpointNote)")
        }
        layout.reusableRows = reusable
        var batch = RolloutBatch(rollout: rollout, layout: layout, prompts: prompts, rewards: total, byScorer: byScorer)
        batch.score = { [reward] images, prompts in try reward.evaluate(images, prompts: prompts).total }
        var slowest = [tRollout.timeIntervalSince(t0), tReward.timeIntervalSince(tRollout)]
        world.max(&slowest)
        batch.rolloutSeconds = slowest[0]; batch.rewardSeconds = slowest[1]
        return batch
    }

    /// One iteration: prompts -> SDE/ODE rollouts -> rewards -> algorithm -> one metrics line.
    @discardableResult
    public func step() throws -> IterationSummary {
        let t0 = Date()
        let B = config.batchSize
        let batch = try rolloutBatch()
        let (mean, std) = meanAndStd(batch.rewards[...])
        var record = MetricsRecord(step: iteration + 1, algo: algorithm.kind)
        record.algorithm = try algorithm.train(batch, state)
        _ = state.rng.nextUInt64()      // advance the run's stream once per iteration
        state.iteration += 1
        let tTrain = Date()
        if let (name, v) = record.algorithm.scalars.first(where: { !$0.value.isFinite }) {
            throw FinetuneError("iteration \(iteration): the \(name.replacingOccurrences(of: "_", with: " ")) became \(v); the run stops, \(checkpointNote)")
        }
        guard policy.params.buffer.allSatisfy({ $0.isFinite }) else {
            throw FinetuneError("iteration \(iteration): the weights became non-finite; the run stops, \(checkpointNote)")
        }
        record.rewardMean = Double(mean); record.rewardStd = Double(std)
        record.rewards = Dictionary(uniqueKeysWithValues: reward.names.map { ($0, Double(batch.byScorer[$0]!.reduce(0, +) / Float(B))) })
        record.seconds = tTrain.timeIntervalSince(t0)
        record.rolloutSeconds = batch.rolloutSeconds
        record.rewardSeconds = batch.rewardSeconds
        record.trainSeconds = tTrain.timeIntervalSince(t0) - batch.rolloutSeconds - batch.rewardSeconds
        record.lr = Double(state.optimizer.lr)
        // the slowest process's times, the largest process's memory
        var most = [record.seconds!, record.trainSeconds!, peakResidentMemoryMB()]
        world.max(&most)
        record.seconds = most[0]; record.trainSeconds = most[1]; record.peakRSSMB = most[2]
        let evaluated = config.evaluates(iteration)
        if evaluated { record.eval = try evaluate() }
        try write(record)
        if iteration % config.checkpointEvery == 0 || iteration == config.steps { try save() }
        return IterationSummary(iteration: iteration, rewardMean: mean, seconds: record.seconds!, evaluated: evaluated,
                                peakRSSMB: record.peakRSSMB ?? 0)
    }

    /// The step-0 evaluation (the base model), written before the first iteration of a new run.
    public func evaluateBase() throws {
        guard config.evalEvery > 0, iteration == 0 else { return }
        var record = MetricsRecord(step: 0, algo: algorithm.kind)
        record.eval = try evaluate()
        try write(record)
    }

    /// Writes TensorBoard event files beside metrics.jsonl.
    public let tensorboard: Bool
    private var tensorboardLog: TensorBoardLog?

    /// Appends a metrics line, and its events to the run's TensorBoard file (rebuilt from
    /// metrics.jsonl when this process writes its first line, so a resume leaves no stale steps).
    func write(_ record: MetricsRecord) throws {
        guard world.isRoot else { return }
        if tensorboard && tensorboardLog == nil { tensorboardLog = try TensorBoardLog(runDir: runDir) }
        try appendLine(record.json(rewardNames: reward.names).text, to: metricsURL)
        try tensorboardLog?.append(record)
    }

    /// Gold metrics for the current weights, their grid written (nil on every process but rank 0).
    public func evaluate() throws -> EvalRecord? {
        guard let e = try gold.evaluate(policy: policy, reward: reward, step: iteration, grid: String(format: "grids/step-%05ld.png", iteration), world: world) else { return nil }
        try gold.save(e, in: runDir)
        return e.record
    }

    // MARK: - checkpoints

    /// Writes the policy (a model checkpoint `sample`/`evaluate` can read) and the training state.
    /// The training state (weights, optimiser, RNG, the algorithm's own state) goes into one
    /// file, written atomically first: it alone is what `--resume` reads. The policy checkpoint
    /// beside it is for `sample`/`evaluate` (a kill between the two leaves it one checkpoint old).
    public func save() throws {
        guard world.isRoot else { return }
        var f = try Checkpoint.file(config: policy.config, params: policy.params, kind: "finetune-state")
        f.add(state.optimizer, as: "adam")
        algorithm.save(into: &f)
        f.metadata[Checkpoint.iterationKey] = String(iteration)
        f.add(state.rng, as: "rng")
        try writeAtomically(try f.serialized(), to: stateURL)
        try Checkpoint.save(policy, to: policyURL, extra: policyMetadata.merging([Checkpoint.iterationKey: String(iteration)]) { $1 })
    }

    /// What a run that stops on an error leaves: its last checkpoint, or none yet.
    var checkpointNote: String {
        FileManager.default.fileExists(atPath: stateURL.path) ? "the last checkpoint is intact" : "no checkpoint was written yet"
    }

    /// True when `--resume` found no checkpoint (the run was stopped before its first one) and
    /// started again from the base model.
    public private(set) var startedOver = false

    func restore() throws {
        // rank 0 reads the state and hands it to the others (their machines need not see the run folder)
        var bytes: [UInt8] = []
        if world.isRoot, FileManager.default.fileExists(atPath: stateURL.path) { bytes = [UInt8](try Data(contentsOf: stateURL)) }
        bytes = world.broadcast(bytes)
        guard !bytes.isEmpty else {
            // stopped before the first checkpoint: nothing to continue, start again; but a trained
            // policy without its state is a damaged run, never overwritten
            if world.isRoot, FileManager.default.fileExists(atPath: policyURL.path) {
                let it = (try? SafeTensorsFile(contentsOf: policyURL))?.metadata[Checkpoint.iterationKey] ?? "?"
                throw FinetuneError("\(stateURL.path) is missing, but the run has a trained policy (\(policyURL.lastPathComponent), iteration \(it)): it cannot be resumed exactly and is not overwritten; restore the state file, or start a new run with another --out")
            }
            startedOver = true
            if world.isRoot { try truncateJSONLines(metricsURL, maxStep: -1) }
            return
        }
        let f = try SafeTensorsFile(data: Data(bytes), source: stateURL.path)
        let isState = f.metadata["kind"] == "finetune-state" || f.metadata["format"] == "flowtune-finetune-state"   // the latter: before the weights were kept in it
        guard isState, let it = f.metadata[Checkpoint.iterationKey].flatMap(Int.init) else {
            throw FinetuneError("\(stateURL.path): not a complete fine-tuning state")
        }
        if f.tensors[policy.layout.entries[0].name] != nil {
            let cfg = try Checkpoint.config(of: f, source: stateURL.path)
            guard cfg == policy.config else { throw FinetuneError("\(stateURL.path): configuration '\(cfg.name)' differs from the base model's '\(policy.config.name)'") }
            policy.params.assign(from: try Checkpoint.params(from: f, config: cfg, source: stateURL.path))
        } else {
            // a state written before the weights were kept in it: the policy checkpoint must be of the same iteration
            let pf = try SafeTensorsFile(contentsOf: policyURL)
            guard pf.metadata[Checkpoint.iterationKey] == String(it) else {
                throw FinetuneError("\(policyURL.path) is of iteration \(pf.metadata[Checkpoint.iterationKey] ?? "?"), the state of \(it): the run cannot be resumed exactly")
            }
            policy.params.assign(from: try Checkpoint.load(pf, source: policyURL.path, expect: policy.config).params)
        }
        try f.restore(&state.optimizer, as: "adam", source: stateURL.path)
        state.rng = try f.rng("rng", source: stateURL.path)
        state.iteration = it
        try algorithm.restore(from: f, source: stateURL.path)
        guard config.steps >= it else {
            throw FinetuneError("--steps \(config.steps) is below the run's iteration \(it): a run is extended, never cut back (its checkpoint is of iteration \(it))")
        }
        if world.isRoot {
            try checkHistory(through: it)                      // before anything is changed
            try truncateJSONLines(metricsURL, maxStep: it)     // keep only the lines the checkpoint covers
        }
    }

    /// metrics.jsonl must hold one line for each iteration the checkpoint covers (and the base
    /// model's step 0 when the run evaluates): a damaged or deleted history is an error, not a
    /// resume that silently lacks those steps.
    func checkHistory(through it: Int) throws {
        let text = (try? String(contentsOf: metricsURL, encoding: .utf8)) ?? ""
        var seen: [Int: Int] = [:]
        for line in text.split(separator: "\n") {
            if let s = jsonLineStep(line), s <= it { seen[s, default: 0] += 1 }
        }
        let first = config.evalEvery > 0 ? 0 : 1         // the base model's evaluation is step 0
        let missing = stride(from: first, through: it, by: 1).filter { seen[$0] == nil }
        let doubled = seen.filter { $0.value > 1 }.keys.sorted()
        guard missing.isEmpty, doubled.isEmpty else {
            let list = (missing.isEmpty ? doubled : missing).prefix(8).map(String.init).joined(separator: ", ") + (max(missing.count, doubled.count) > 8 ? ", ..." : "")
            throw FinetuneError("\(metricsURL.path) \(missing.isEmpty ? "holds iterations \(list) twice" : "lacks the lines of iteration(s) \(list)") that the checkpoint (iteration \(it)) covers: the run's history is damaged, so it is not resumed; restore metrics.jsonl, or start a new run with another --out")
        }
    }
}

public struct IterationSummary {
    public var iteration: Int
    public var rewardMean: Float
    public var seconds: Double
    public var evaluated: Bool
    public var peakRSSMB: Double
}

/// The process's peak resident memory so far (getrusage's ru_maxrss), in MiB.
public func peakResidentMemoryMB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024      // Linux reports KiB
}
