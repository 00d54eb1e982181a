import ArgumentParser
import Foundation
import Tensor
import Model
import Flow
import Training

extension Algorithm: ExpressibleByArgument {}
extension ACFlowWeighting: ExpressibleByArgument {}

/// Flags for every fine-tuning hyperparameter (defaults documented in FinetuneConfig).
struct FinetuneOptions: ParsableArguments {
    @Option(help: "Algorithm.") var algo = Algorithm.grpoGuard
    @Option(help: "Base model checkpoint.") var model = "models/base-s32.safetensors"
    @Option(help: "Training prompt list.") var prompts = "prompts/train.txt"
    @Option(help: "Held-out prompt list for grids and gold metrics.") var evalPrompts = "prompts/eval.txt"
    @Option(help: "Reward: name[=weight],... (brightness, saturation, shape-eval, jpeg-compressibility, jpeg-incompressibility, external:CMD); weight 0 is logged, not optimised.")
    var reward = "shape-eval"
    @Option(help: "RL iterations.") var steps = 100
    @Option(help: "Prompts per iteration (P).") var promptsPerIteration = 4
    @Option(help: "Samples per prompt (G).") var groupSize = 8
    @Option(help: "SDE steps per rollout (T).") var sdeSteps = 10
    @Option(help: "SDE noise level a.") var noiseLevel: Float = 0.7
    @Option(help: "Time-grid shift of rollouts (1: uniform).") var shift: Float = 1
    @Flag(help: "Make the last rollout step stochastic and train it too (the peer benchmark's setting).") var trainLastStep = false
    @Option(help: "Micro-batches per epoch, one optimiser step each (the first is on-policy).") var microBatches = 2
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
    // AC-Flow
    @Option(help: "AC-Flow: tanh shaping temperature kappa.") var acflowKappa: Float = 1
    @Flag(help: "AC-Flow: no reward shaping (rt = R).") var acflowNoShaping = false
    @Option(help: "AC-Flow: EMA of batch reward statistics (0: per-group statistics).") var acflowStatsEma: Float = 0
    @Option(help: "AC-Flow: critic hidden width.") var acflowCriticWidth = 64
    @Option(help: "AC-Flow: critic learning rate.") var acflowCriticLr: Float = 1e-4
    @Option(help: "AC-Flow: critic updates per actor update.") var acflowCriticSteps = 2
    @Option(help: "AC-Flow: warm-up as a fraction of the run.") var acflowWarmupFraction: Float = 0.1
    @Option(help: "AC-Flow: warm-up iterations (overrides the fraction).") var acflowWarmup: Int?
    @Option(help: "AC-Flow: end warm-up early when critic MSE < gate * Var(rt) (negative: no gate).") var acflowMseGate: Float = 0.5
    @Option(help: "AC-Flow: advantage clip c_A.") var acflowAdvClip: Float = 1
    @Option(help: "AC-Flow: weight temperature tau (w = exp(tau A)).") var acflowTau: Float = 1
    @Option(help: "AC-Flow: weighting (signed needs alpha > c_A).") var acflowWeighting = ACFlowWeighting.exp
    @Option(help: "AC-Flow: Wasserstein regulariser weight alpha.") var acflowAlpha: Float = 1
    @Flag(help: "AC-Flow: no critic (V = 0).") var acflowNoCritic = false
    @Flag(help: "AC-Flow: SDE rollouts instead of ODE.") var acflowSdeRollouts = false

    var config: FinetuneConfig {
        var c = FinetuneConfig()
        c.algo = algo; c.model = model; c.prompts = prompts; c.evalPrompts = evalPrompts; c.reward = reward; c.steps = steps
        c.promptsPerIteration = promptsPerIteration; c.groupSize = groupSize
        c.sde = SDEConfig(steps: sdeSteps, noiseLevel: noiseLevel, shift: shift, stochasticLastStep: trainLastStep)
        c.microBatches = microBatches; c.innerEpochs = innerEpochs; c.lr = lr; c.weightDecay = weightDecay; c.gradClip = gradClip
        c.clipRange = clipRange; c.beta = beta; c.globalStd = globalStd; c.advantageClip = advantageClip; c.seed = seed
        c.checkpointEvery = checkpointEvery; c.evalEvery = evalEvery; c.evalPerPrompt = evalPerPrompt
        c.evalPrompts_limit = evalPromptCount; c.evalSteps = evalSteps; c.externalTimeout = externalTimeout
        var a = ACFlowConfig()
        a.kappa = acflowKappa; a.shaping = !acflowNoShaping; a.statsEMA = acflowStatsEma; a.criticWidth = acflowCriticWidth
        a.criticLR = acflowCriticLr; a.criticSteps = acflowCriticSteps; a.warmupFraction = acflowWarmupFraction
        a.warmupIterations = acflowWarmup; a.mseGate = acflowMseGate < 0 ? nil : acflowMseGate; a.advantageClip = acflowAdvClip
        a.tau = acflowTau; a.weighting = acflowWeighting; a.alpha = acflowAlpha; a.useCritic = !acflowNoCritic; a.sdeRollouts = acflowSdeRollouts
        c.acflow = a
        return c
    }
}

/// Runs (or resumes) a fine-tuning run in `out`, with a progress line per iteration.
func runFinetune(config: FinetuneConfig, out: URL, resume: Bool, quiet: Bool = false) throws -> Finetuner {
    let configURL = out.appendingPathComponent("config.json")
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    if !resume, FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.jsonl").path) {
        throw FinetuneError("\(out.path) already holds a run (metrics.jsonl); use --resume \(out.path) or another --out")
    }
    // set everything up (and fail on bad input) before writing anything into the run folder
    let run = try Finetuner(config: config, runDir: out, resume: resume)
    if run.startedOver && !quiet { log("\(out.path) holds no checkpoint yet (stopped before the first one): starting again from the base model") }
    try writeAtomically(try enc.encode(config), to: configURL)
    if !quiet {
        log("\(config.algo) on \(config.model): reward \(config.reward), \(config.steps) iterations of \(config.batchSize) samples, from iteration \(run.iteration); writing \(out.path)")
    }
    try run.evaluateBase()
    let start = Date(), first = run.iteration
    while run.iteration < config.steps {
        let s = try run.step()
        if let sig = interruptSignal {
            try run.save()
            throw CLIError.interrupted(sig, "interrupted (signal \(sig)) after iteration \(run.iteration): checkpoint written; continue with: flowtune finetune --resume \(out.path)")
        }
        let done = run.iteration - first
        let eta = Date().timeIntervalSince(start) / Double(done) * Double(config.steps - run.iteration)
        if !quiet {
            log(String(format: "iter %d/%d  reward %.4f  %.2f s  ETA %@%@", s.iteration, config.steps, s.rewardMean, s.seconds,
                       formatDuration(eta), s.evaluated ? "  (grid + gold metrics)" : ""))
        }
    }
    return run
}

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a base model with RL (grpo, grpo-guard, acflow) and log every diagnostic.")
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Run folder (config.json, metrics.jsonl, grids/, checkpoints/).") var out = "outputs/run"
    @Option(help: "Continue the run in this folder from its last checkpoint (its config.json is used; --steps may extend it).")
    var resume: String?
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        enableGracefulInterrupt()
        var config = options.config
        var dir = URL(fileURLWithPath: out)
        if let resume {
            dir = URL(fileURLWithPath: resume)
            let url = dir.appendingPathComponent("config.json")
            guard let data = try? Data(contentsOf: url) else { throw CLIError("\(url.path): no run to resume (config.json missing)") }
            var saved = try JSONDecoder().decode(FinetuneConfig.self, from: data)
            // a resumed run keeps its configuration: only --steps (extend or shorten) and --threads apply
            let given = CommandLine.arguments.filter { $0.hasPrefix("--") }.map { String($0.split(separator: "=")[0]) }
            let refused = given.filter { !["--resume", "--steps", "--threads"].contains($0) }
            guard refused.isEmpty else {
                throw CLIError("--resume continues a run with its own config.json; \(refused.joined(separator: ", ")) would be ignored: give only --steps (and --threads), or start a new run with --out")
            }
            if given.contains("--steps") { saved.steps = options.steps }
            config = saved
        }
        let run = try runFinetune(config: config, out: dir, resume: resume != nil)
        log("done: \(dir.path) at iteration \(run.iteration)")
        writeReportIfPossible(dir)
    }
}
