import ArgumentParser
import Foundation
import Tensor
import Model
import Flow
import Rewards
import Training

extension Algorithm: ExpressibleByArgument {}
extension ACFlowWeighting: ExpressibleByArgument {}
extension ACFlowTarget: ExpressibleByArgument {}

/// Flags for every fine-tuning hyperparameter (defaults documented in FinetuneConfig).
struct FinetuneOptions: ParsableArguments {
    @Option(help: "Algorithm.") var algo = Algorithm.grpoGuard
    @Option(help: "Base model checkpoint.") var model = "models/base-s32c-distilled.safetensors"
    @Option(help: "Training prompt list (data:train: a folder model's training captions, its default).") var prompts = "prompts/train.txt"
    @Option(help: "Held-out prompt list for grids and gold metrics (data:held-out: a folder model's held-out captions, its default).") var evalPrompts = "prompts/eval.txt"
    @Option(help: ArgumentHelp("A model trained on a folder of images: where that folder is now (default: where the model file says it was). Such a model's prompts default to its training captions (data:train) and held-out captions (data:held-out).", valueName: "dir"))
    var data: String?
    @Option(help: ArgumentHelp("Reward: name[=weight],... (\(ScorerRegistry.names)); weight 0 is logged, not optimised."))
    var reward = "shape-eval"
    @Option(help: "RL iterations.") var steps = 100
    @Option(help: "Prompts per iteration (P).") var promptsPerIteration = 4
    @Option(help: "Samples per prompt (G).") var groupSize = 8
    @Option(help: "SDE steps per rollout (T).") var sdeSteps = 10
    @Option(help: "SDE noise level a.") var noiseLevel: Float = 0.7
    @Option(help: "Time-grid shift of rollouts (1: uniform).") var shift: Float = 1
    @Flag(help: "Make the last rollout step stochastic and train it too (the peer benchmark's setting).") var trainLastStep = false
    @Flag(help: "Start every sample of a group from the same initial noise (the group's spread then comes from the SDE's steps alone).") var sharedInitialNoise = false
    @Option(help: "Make only the first k rollout steps stochastic and train them; the later ones are deterministic Euler steps (default: every step but the last).") var sdeWindow: Int?
    @Option(help: "Micro-batches per epoch, one optimiser step each (the first is on-policy).") var microBatches = 2
    @Option(help: "Samples per network pass (default 32): each optimiser step's gradient is accumulated over passes of at most this many, and activations are kept for that many samples at a time, so memory does not grow with prompts x group size.")
    var microBatchSize: Int?
    @Option(help: "Passes over each rollout batch.") var innerEpochs = 1
    @Option(help: "Learning rate (AdamW).") var lr: Float = 1e-4
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 1e-4
    @Option(help: "Gradient-norm clip.") var gradClip: Float = 1.0
    @Option(help: "PPO clip range eps (default: 1e-4 for grpo, 3e-6 for grpo-guard).") var clipRange: Float?
    @Option(help: "KL weight to the frozen base model.") var beta: Float = 0
    @Flag(help: "Normalise advantages by the whole batch's std instead of each group's.") var globalStd = false
    @Option(help: "Advantage clamp.") var advantageClip: Float = 5
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Checkpoint every N iterations.") var checkpointEvery = 10
    @Option(help: "Grids and gold metrics every N iterations (0: never).") var evalEvery = 10
    @Option(help: "Seeds per eval prompt in grids.") var evalPerPrompt = 4
    @Option(help: "Eval prompts used (spread over the list).") var evalPromptCount = 16
    @Option(help: "Euler steps for grids and gold metrics.") var evalSteps = 20
    @Option(help: "Seconds an external scorer may take per image.") var externalTimeout: Double = 30
    @Option(help: "How the members of an rm:P1+P2 ensemble combine: mean, min, or mean-std:LAMBDA (mean - LAMBDA x their std).")
    var rmCombine: String = "mean"
    // AC-Flow (nil: the default of version 2, or of version 1 with --acflow-v1)
    @Flag(help: "AC-Flow: start from version 1's recipe (ODE rollouts, one actor step on fresh logit-normal interpolants, raw weights, a counted warm-up); other --acflow options still apply.")
    var acflowV1 = false
    @Option(help: "AC-Flow: tanh shaping temperature kappa (default 1).") var acflowKappa: Float?
    @Flag(help: "AC-Flow: no reward shaping (rt = R).") var acflowNoShaping = false
    @Option(help: "AC-Flow: EMA of batch reward statistics (default 0: per-group statistics).") var acflowStatsEma: Float?
    @Flag(help: "AC-Flow: deterministic ODE rollouts instead of SDE ones.") var acflowOdeRollouts = false
    @Flag(help: "AC-Flow: no critic (V = 0, A = rt).") var acflowNoCritic = false
    @Option(help: "AC-Flow: critic hidden width (default 64).") var acflowCriticWidth: Int?
    @Flag(help: "AC-Flow: critic without position embeddings (a plain mean over patches).") var acflowNoPositions = false
    @Option(help: "AC-Flow: critic learning rate (default 1e-3).") var acflowCriticLr: Float?
    @Option(help: "AC-Flow: critic AdamW steps per iteration (default 4).") var acflowCriticSteps: Int?
    @Option(help: "AC-Flow: warm-up iterations at least (default 3).") var acflowWarmup: Int?
    @Option(help: "AC-Flow: the warm-up ends when the critic explains this fraction of the variance of rt (before its update; default 0.3; negative: the count alone).")
    var acflowWarmupEv: Float?
    @Option(help: "AC-Flow: GAE lambda (1: A = rt - V(x_k); 0: A = V(x_k+1) - V(x_k); default 1).") var acflowLambda: Float?
    @Option(help: "AC-Flow: advantage clip c_A (default 1).") var acflowAdvClip: Float?
    @Flag(help: "AC-Flow control run: every advantage 0 (weights 1 for the regression targets, 0 for transitions, r = 1/2 for nft): the drift of the actor's regression alone.") var acflowZeroAdvantages = false
    @Option(help: "AC-Flow: actor target: transition (default: each visited transition x_k -> x_k+1 weighted by its advantage), visited (regression at the rollout's states toward the final image), fresh (interpolants of the final images) or nft (DiffusionNFT's contrast of implicit positive and negative policies on fresh interpolants; r = 1/2 + A / 2 c_A).")
    var acflowTarget: ACFlowTarget?
    @Option(help: "AC-Flow: fresh interpolants' t ~ U[t-min, 1) (default 0.5; negative: logit-normal over all t).") var acflowFreshTMin: Float?
    @Option(help: "AC-Flow: actor AdamW steps per rollout batch (default 8).") var acflowActorSteps: Int?
    @Option(help: "AC-Flow: samples per actor step (default: the rollout batch).") var acflowActorBatch: Int?
    @Option(help: "AC-Flow: weight temperature tau, w = exp(tau A) (default 1; the transition target weighs by A itself).") var acflowTau: Float?
    @Option(help: "AC-Flow: weighting of the visited/fresh targets, exp or signed (signed needs alpha > c_A).") var acflowWeighting: ACFlowWeighting?
    @Flag(help: "AC-Flow: weights not normalised to mean 1.") var acflowNoNormalise = false
    @Option(help: "AC-Flow: the transition target as PPO's clipped surrogate, each transition's probability ratio to the rollout's clipped to 1 +- EPS (default 1e-3; 0: no ratio, the weighted log-likelihood).") var acflowRatioClip: Float?
    @Option(help: "AC-Flow: the nft target's beta, v+ = beta v + (1 - beta) v_old (default 1).") var acflowNftBeta: Float?
    @Option(help: "AC-Flow: Wasserstein regulariser weight alpha (default 0.002; version 1: 1).") var acflowAlpha: Float?

    func validate() throws {
        if acflowRatioClip != nil, config.acflow.target != .transition {
            throw ValidationError("--acflow-ratio-clip clips the ratio of a transition's probability; it needs --acflow-target transition")
        }
    }

    var config: FinetuneConfig {
        var c = FinetuneConfig()
        c.algo = algo; c.model = model; c.prompts = prompts; c.evalPrompts = evalPrompts; c.data = data; c.reward = reward; c.steps = steps
        c.promptsPerIteration = promptsPerIteration; c.groupSize = groupSize
        c.sde = SDEConfig(steps: sdeSteps, noiseLevel: noiseLevel, shift: shift, stochasticLastStep: trainLastStep, window: sdeWindow)
        c.sharedInitialNoise = sharedInitialNoise ? true : nil
        c.microBatches = microBatches; c.microBatchSize = microBatchSize; c.innerEpochs = innerEpochs; c.lr = lr; c.weightDecay = weightDecay; c.gradClip = gradClip
        c.clipRange = clipRange; c.beta = beta; c.globalStd = globalStd; c.advantageClip = advantageClip; c.seed = seed
        c.checkpointEvery = checkpointEvery; c.evalEvery = evalEvery; c.evalPerPrompt = evalPerPrompt
        c.evalPrompts_limit = evalPromptCount; c.evalSteps = evalSteps; c.externalTimeout = externalTimeout
        c.rmCombine = rmCombine == "mean" ? nil : rmCombine
        var a = acflowV1 ? ACFlowConfig.version1(steps: steps) : ACFlowConfig()
        func set<T>(_ value: T?, _ path: WritableKeyPath<ACFlowConfig, T>) { if let value { a[keyPath: path] = value } }
        set(acflowKappa, \.kappa); set(acflowStatsEma, \.statsEMA); set(acflowCriticWidth, \.criticWidth)
        set(acflowCriticLr, \.criticLR); set(acflowCriticSteps, \.criticSteps); set(acflowWarmup, \.warmupIterations)
        set(acflowLambda, \.lambda)
        if let acflowWarmupEv { a.warmupExplainedVariance = acflowWarmupEv < 0 ? nil : acflowWarmupEv }
        set(acflowAdvClip, \.advantageClip); set(acflowTarget, \.target); set(acflowActorSteps, \.actorSteps)
        set(acflowTau, \.tau); set(acflowWeighting, \.weighting); set(acflowAlpha, \.alpha)
        set(acflowNftBeta, \.nftBeta)
        if let acflowRatioClip { a.ratioClip = acflowRatioClip == 0 ? nil : acflowRatioClip }
        if let acflowFreshTMin { a.freshTMin = acflowFreshTMin < 0 ? nil : acflowFreshTMin }
        if let acflowActorBatch { a.actorBatch = acflowActorBatch }
        if acflowNoShaping { a.shaping = false }
        if acflowOdeRollouts { a.sdeRollouts = false }
        if acflowNoCritic { a.useCritic = false }
        if acflowNoPositions { a.criticPositions = false }
        if acflowZeroAdvantages { a.zeroAdvantages = true }
        if acflowNoNormalise { a.normaliseWeights = false }
        c.acflow = a
        return c
    }
}

/// A run configuration (config.json) read back, or an error naming the file and what is wrong.
func loadRunConfig(_ url: URL, what: String, action: String = "resume") throws -> FinetuneConfig {
    guard let data = try? Data(contentsOf: url) else { throw CLIError("\(url.path): \(what)") }
    do { return try JSONDecoder().decode(FinetuneConfig.self, from: data) } catch {
        let why: String
        switch error {
        case DecodingError.keyNotFound(let key, _): why = "no '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
            why = c.codingPath.isEmpty ? "not JSON" : "a bad '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: why = "\(error)"
        }
        throw CLIError("\(url.path): not a run configuration this flowtune can \(action) (\(why)); runs written by other versions of flowtune resume with those")
    }
}

/// Runs (or resumes) a fine-tuning run in `out`, with a progress line per iteration. Under
/// mpirun every rank runs this; rank 0 alone locks and writes the run folder and prints.
func runFinetune(config given: FinetuneConfig, out: URL, resume: Bool, tensorboard: Bool = true, quiet: Bool = false) throws -> Finetuner {
    // the run's precision (its config.json's on resume) serves its rollouts and training passes alike
    return try Compute.current.with(given.runPrecision).run { try finetuneLoop(config: given, out: out, resume: resume, tensorboard: tensorboard, quiet: quiet) }
}

private func finetuneLoop(config given: FinetuneConfig, out: URL, resume: Bool, tensorboard: Bool, quiet: Bool) throws -> Finetuner {
    let world = World.current, root = world.isRoot, quiet = quiet || !root
    var config = given
    let configURL = out.appendingPathComponent("config.json")
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    if root, !resume, FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.jsonl").path) {
        throw FinetuneError("\(out.path) already holds a run (metrics.jsonl); use --resume \(out.path) or another --out")
    }
    if root, !resume { try checkNewRunFolder(out) }
    // one process per run folder: a second one (a sweep restarted while a run of the first goes
    // on) is refused; a new folder is locked once the set-up has passed (bad input creates nothing)
    var lock = root && FileManager.default.fileExists(atPath: out.path) ? try RunLock(out) : nil
    defer { lock?.release() }
    // set everything up (and fail on bad input) before writing anything into the run folder
    let run = try Finetuner(config: config, runDir: out, resume: resume, world: world)
    config = run.config        // a folder model's prompts resolved to its captions
    if !quiet { for note in run.notes { log("note: " + note) } }
    if root && lock == nil { lock = try RunLock(out) }
    run.tensorboard = tensorboard
    if run.startedOver && !quiet { log("\(out.path) holds no checkpoint yet (stopped before the first one): starting again from the base model") }
    if config.modelChecksum == nil { config.modelChecksum = run.modelChecksum }
    if root { try writeAtomically(try enc.encode(config), to: configURL) }
    if !quiet {
        log("\(config.algo) on \(config.model): reward \(config.reward), \(config.steps) iterations of \(config.batchSize) samples, from iteration \(run.iteration); writing \(out.path)"
            + (world.isDistributed ? " (\(world.size) processes)" : ""))
    }
    try run.evaluateBase()
    if root && run.iteration == 0 && config.evalEvery > 0 {
        writeReportIfPossible(out, progress: RunProgress(iteration: 0, steps: config.steps, eta: "not known yet"))
    }
    let start = Date(), first = run.iteration
    while run.iteration < config.steps {
        let s = try run.step()
        // every rank stops after the same iteration: a signal seen by any of them counts
        if let sig = interruptSignal(in: world) {
            try run.save()
            if root { writeReportIfPossible(out) }
            throw CLIError.interrupted(sig, "interrupted (signal \(sig)) after iteration \(run.iteration): checkpoint written; continue with: flowtune finetune --resume \(out.path)")
        }
        let done = run.iteration - first
        let eta = Date().timeIntervalSince(start) / Double(done) * Double(config.steps - run.iteration)
        if !quiet {
            log(String(format: "iter %ld/%ld  reward %.4f  %.2f s  ETA %@  peak %.0f MiB%@", s.iteration, config.steps, s.rewardMean, s.seconds,
                       formatDuration(eta), s.peakRSSMB, s.evaluated ? "  (grid + gold metrics)" : ""))
        }
        // the live report: rewritten at every evaluation before the last (the finished run writes its own)
        if root && s.evaluated && run.iteration < config.steps {
            writeReportIfPossible(out, progress: RunProgress(iteration: run.iteration, steps: config.steps, eta: formatDuration(eta)))
        }
    }
    return run
}

/// A new run goes into a folder that is missing, empty or holds only a run that never wrote
/// metrics (config.json; stopped during its set-up): never into one that holds a user's files.
func checkNewRunFolder(_ out: URL) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: out.path, isDirectory: &isDir) else { return }
    guard isDir.boolValue else { throw CLIError("--out \(out.path) is a file, not a folder") }
    // (a sweep writes the run's log, finetune.log, before the run starts)
    let entries = ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).filter { $0 != ".lock" && $0 != "finetune.log" }.sorted()
    guard entries.isEmpty || entries.contains("config.json") else {
        let names = entries.prefix(3).joined(separator: ", ") + (entries.count > 3 ? ", ..." : "")
        throw CLIError("--out \(out.path) holds files that are not a flowtune run (\(names)); nothing is overwritten: give a new or empty folder")
    }
}

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a base model with RL (grpo, grpo-guard, acflow) and log every diagnostic.")
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Run folder (config.json, metrics.jsonl, grids/, checkpoints/).") var out = "outputs/run"
    @Option(help: "Continue the run in this folder from its last checkpoint (its config.json is used; --steps may extend it).")
    var resume: String?
    @Option(name: .customLong("config"), help: "Take every hyperparameter from this config.json (as a run folder holds it; --steps may override).")
    var configFile: String?
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into the run folder (tensorboard --logdir outputs/).")
    var tensorboard = true
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        enableGracefulInterrupt()
        let world = try World.start()      // ended in FlowTune.main (finish, or abort on an error)
        var config = options.config
        config.runPrecision = threads.chosenPrecision
        var dir = try outputURL(out)
        if resume != nil || configFile != nil {
            // a resumed run keeps its configuration, a --config run takes the file's: only --steps
            // (extend or shorten), --threads, --out (with --config) and --[no-]tensorboard apply; the
            // file's precision too
            let url = resume.map { URL(fileURLWithPath: $0).appendingPathComponent("config.json") } ?? URL(fileURLWithPath: configFile!)
            if let resume { dir = URL(fileURLWithPath: resume) }
            var saved = try loadRunConfig(url, what: resume != nil ? "no run to resume (config.json missing)" : "cannot read the configuration", action: resume != nil ? "resume" : "read")
            let given = CommandLine.arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=")[0]) }
            let allowed = ["--resume", "--config", "--steps", "--threads", "--tensorboard", "--no-tensorboard"] + (resume == nil ? ["--out"] : [])
            let refused = given.filter { !allowed.contains($0) }
            guard refused.isEmpty, !(resume != nil && configFile != nil) else {
                throw CLIError(resume != nil && configFile != nil ? "--resume and --config cannot be combined (a resumed run keeps its own config.json)"
                    : "\(resume != nil ? "--resume continues a run with its own config.json" : "--config takes every hyperparameter from the file"); \(refused.joined(separator: ", ")) would be ignored: give only --steps (and --threads, --[no-]tensorboard\(resume == nil ? ", --out" : "")), or start a new run with --out")
            }
            if given.contains("--steps") { saved.steps = options.steps }
            config = saved
        }
        let run = try runFinetune(config: config, out: dir, resume: resume != nil, tensorboard: tensorboard)
        guard world.isRoot else { return }
        log("done: \(dir.path) at iteration \(run.iteration)")
        writeReportIfPossible(dir)
    }
}
