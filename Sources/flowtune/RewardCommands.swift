import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Flow
import Model
import Rewards
import Shapes
import Training

/// Trains a learned reward model on a gold scorer's comparisons of a base model's samples.
struct TrainReward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train-reward",
        abstract: "Train a learned reward model r(image, prompt) on a gold scorer's labels of a base model's samples (Bradley-Terry on pairs of one prompt).")

    @Option(help: "Prompts whose images are labelled; a fraction is held out for the agreement.") var prompts = RewardTrainConfig().prompts
    @Option(help: "The reward model written (its state and data go beside it: NAME.state.safetensors, NAME.data.safetensors).") var out: String
    @Option(help: ArgumentHelp("Network size: \(RewardModel.presetNames).", valueName: "size")) var size = RewardTrainConfig().preset
    @Option(help: "The pretrained generator of the size's configuration to start from (a pretrained start, as the field's reward models start from CLIP or BLIP); 'auto': the size's shipped backbone; 'none': random weights.")
    var initFrom = "auto"
    @Option(help: "The generator whose samples are labelled.") var base = RewardTrainConfig().base
    @Option(help: "The gold scorer that labels the images (a reward spec: its weighted total).") var gold = RewardTrainConfig().gold
    @Option(help: "Base-model SDE samples per prompt.") var samplesPerPrompt = RewardTrainConfig().samplesPerPrompt
    @Option(help: "Rendered images per prompt (the first of the prompt, the others of the prompt with one requirement broken).") var rendersPerPrompt = RewardTrainConfig().rendersPerPrompt
    @Option(help: "Fresh prompts of the grammar (never one of --prompts or --exclude) with renderings only, added to the training data.") var extraPrompts = RewardTrainConfig().extraPrompts
    @Option(help: "Prompt list never drawn as an extra prompt (held out from the reward model as from pretraining).") var exclude = "prompts/eval.txt"
    @Option(help: "SDE steps of the base samples.") var sampleSteps = RewardTrainConfig().sampleSteps
    @Option(help: "Fraction of the prompts held out (never trained on) for the agreement.") var heldOutFraction = RewardTrainConfig().heldOutFraction
    @Option(help: "Labelled training pairs (default: every pair of one prompt whose gold differs).") var pairs: Int?
    @Option(help: "Probability that a training pair's label is flipped.") var labelNoise = RewardTrainConfig().labelNoise
    @Option(help: "bradley-terry (pairs) or regression (MSE on the gold score).") var loss = RewardTrainConfig().loss
    @Option(help: "Optimiser steps.") var steps = RewardTrainConfig().steps
    @Option(help: "Pairs per step.") var batch = RewardTrainConfig().batch
    @Option(help: "Peak learning rate (linear warm-up, cosine decay to 5%).") var lr = RewardTrainConfig().lr
    @Option(help: "Random seed of the training: initialisation, the order of the pairs, their label noise (members of an ensemble differ by it).") var seed = RewardTrainConfig().seed
    @Option(help: "Random seed of the data: the samples, renderings, extra prompts and the held-out split.") var dataSeed = RewardTrainConfig().dataSeed
    @Option(help: "The labelled images (default: NAME.data.safetensors beside --out); reused when it exists and was made with the same data options.")
    var data: String?
    @Option(help: "Write a checkpoint (and measure the held-out agreement) every N steps.") var checkpointEvery = 250
    @Option(help: "Print progress every N steps.") var logEvery = 50
    @Flag(help: "Continue the training at --out.") var resume = false
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    /// The generator the reward model starts from (nil: random weights).
    var backbone: String? {
        switch initFrom {
        case "none": return nil
        case "auto": return try? RewardModel.backbone(preset: size)
        default: return initFrom
        }
    }

    var config: RewardTrainConfig {
        var c = RewardTrainConfig()
        c.preset = size; c.initFrom = backbone; c.base = base; c.prompts = prompts; c.gold = gold; c.samplesPerPrompt = samplesPerPrompt
        c.rendersPerPrompt = rendersPerPrompt; c.extraPrompts = extraPrompts; c.sampleSteps = sampleSteps; c.heldOutFraction = heldOutFraction; c.pairs = pairs
        c.labelNoise = labelNoise; c.loss = loss; c.steps = steps; c.batch = batch; c.lr = lr; c.seed = seed; c.dataSeed = dataSeed
        return c
    }

    func execute() throws {
        enableGracefulInterrupt()
        let cfg = config
        try cfg.validate()
        try OptionCheck.positive("--checkpoint-every", checkpointEvery)
        try OptionCheck.positive("--log-every", logEvery)
        let url = try outputURL(out)
        if !resume, FileManager.default.fileExists(atPath: url.path) {
            throw CLIError("\(out) already exists; continue its training with --resume, or give another --out (nothing is overwritten)")
        }
        let dataURL = try data.map { try outputURL($0, option: "--data") } ?? RewardTrainer.dataPath(url)
        let promptFile = try PromptFile(path: prompts)
        // everything that can be refused is checked before anything is drawn or written
        let network = try RewardModel.config(preset: size)
        if let backbone, !FileManager.default.fileExists(atPath: backbone) {
            throw CLIError("\(backbone): no such generator to start the reward model from; pretrain one (flowtune pretrain --config \(network.name) --out \(backbone)), or give --init-from none for random weights")
        }
        let initial = try backbone.map { try Checkpoint.load(URL(fileURLWithPath: $0)) }
        let baseData = try SafeTensorsFile.read(URL(fileURLWithPath: base))
        let generator = try Checkpoint.load(SafeTensorsFile(data: baseData, source: base), source: base)
        _ = try RewardTrainer.network(config: cfg, imageSize: generator.config.imageSize, initFrom: initial)
        let goldReward = try CombinedReward(parsing: gold)
        let excluded = Set(try PromptFile(path: exclude).prompts)
        let lock = try RunLock(file: url)
        defer { lock.release() }
        let labelled = try labelledData(cfg, generator: generator, baseChecksum: SafeTensorsFile.checksum(of: baseData), prompts: promptFile,
                                        excluding: excluded, gold: goldReward, at: dataURL)
        let trainer = try RewardTrainer(config: cfg, data: labelled, initFrom: initial)
        if resume {
            try trainer.resume(from: url)
            log("resumed \(out) at step \(trainer.step)")
        }
        let logURL = url.deletingPathExtension().appendingPathExtension("train.jsonl")
        if resume { try truncateJSONLines(logURL, maxStep: trainer.step) }
        log("training \(size) from \(backbone ?? "random weights") (\(trainer.model.parameterCount) parameters) on \(trainer.train.count) pairs"
            + (labelNoise > 0 ? " (labels flipped with probability \(labelNoise))" : "")
            + "; \(trainer.heldOut.count) held-out pairs of \(labelled.heldOut.filter { $0 }.count) prompts")
        var metadata = modelMetadata(trainer, labelled)
        func checkpoint() throws -> (all: Double, samples: Double) {
            let e = try trainer.evaluate()
            trainer.model.scoreMean = e.mean; trainer.model.scoreStd = e.std
            metadata[RewardModel.Key.agreement] = String(format: "%.4f", e.heldOut)
            metadata["agreement_samples"] = String(format: "%.4f", e.heldOutSamples)
            metadata["train_agreement"] = String(format: "%.4f", e.train)
            try trainer.save(to: url, metadata: metadata)
            try appendLine(String(format: "{\"step\": %ld, \"agreement\": %.6f, \"agreement_samples\": %.6f, \"train_agreement\": %.6f}",
                                  trainer.step, e.heldOut, e.heldOutSamples, e.train), to: logURL)
            return (e.heldOut, e.heldOutSamples)
        }
        let runStart = now(), startStep = trainer.step
        var window: [Float] = []
        var agreement = (all: Double.nan, samples: Double.nan)
        while trainer.step < steps {
            let l = trainer.trainStep()
            guard l.isFinite else { throw CLIError("the loss became \(l) at step \(trainer.step)") }
            window.append(l)
            if trainer.step % logEvery == 0 || trainer.step == steps {
                let mean = window.reduce(0, +) / Float(window.count)
                let rate = Double(trainer.step - startStep) / (now() - runStart)
                log(String(format: "step %ld/%ld  loss %.4f  %.1f steps/s  ETA %@", trainer.step, steps, mean, rate,
                           formatDuration(Double(steps - trainer.step) / max(rate, 1e-9))))
                try appendLine(String(format: "{\"step\": %ld, \"loss\": %.6f}", trainer.step, mean), to: logURL)
                window.removeAll()
            }
            if trainer.step % checkpointEvery == 0 || trainer.step == steps {
                agreement = try checkpoint()
                log(String(format: "step %ld: held-out agreement %.3f (pairs of two base samples: %.3f)", trainer.step, agreement.all, agreement.samples))
            }
            if let sig = interruptSignal {
                _ = try checkpoint()
                throw CLIError.interrupted(sig, "interrupted (signal \(sig)) at step \(trainer.step): checkpoint written; continue with the same command and --resume")
            }
        }
        if trainer.step == startStep { agreement = try checkpoint() }
        log(String(format: "done: %@ (%@, %ld parameters), held-out agreement with %@ %.3f on %ld pairs (%.3f on pairs of two base samples)", out, size,
                   trainer.model.parameterCount, gold, agreement.all, trainer.heldOut.count, agreement.samples))
    }

    /// The labelled images: read back from `url` when they were drawn for this configuration,
    /// base model and prompts; else drawn from the base model and the renderer, labelled by the
    /// gold and written there first (progress with ETA).
    func labelledData(_ cfg: RewardTrainConfig, generator: DiT, baseChecksum: String, prompts promptFile: PromptFile,
                      excluding excluded: Set<String>, gold goldReward: CombinedReward, at dataURL: URL) throws -> RewardData {
        let everyPrompt = try RewardData.allPrompts(config: cfg, file: promptFile.entries, excluding: excluded)
        var key = cfg.dataKey
        key["base_checksum"] = baseChecksum
        key["prompts_checksum"] = RewardData.checksum(of: everyPrompt)
        if let stored = try RewardData.load(from: dataURL, key: key, prompts: everyPrompt) {
            log("data: \(stored.count) labelled images of \(everyPrompt.count) prompts from \(dataURL.path)")
            return stored
        }
        let start = now()
        log("drawing \(samplesPerPrompt) samples (SDE, \(sampleSteps) steps) and \(rendersPerPrompt) renderings for each of \(promptFile.entries.count) prompts from \(base)"
            + (extraPrompts > 0 ? ", and \(rendersPerPrompt) renderings for each of \(extraPrompts) fresh prompts" : ""))
        var last = 0.0
        let labelled = try RewardData.make(config: cfg, base: generator, prompts: promptFile.entries, excluding: excluded, gold: goldReward) { done, total in
            let t = now() - start
            guard t - last > 5 || done == total else { return }
            last = t
            let eta = Double(total - done) * t / Double(max(1, done))
            log(String(format: "base samples %ld/%ld  %.0f s  ETA %@", done, total, t, formatDuration(eta)))
        }
        try labelled.save(to: dataURL, key: key)
        log(String(format: "data: %ld images labelled by %@ in %.0f s, written to %@", labelled.count, gold, now() - start, dataURL.path))
        return labelled
    }

    /// What the reward model's file says of its training (the agreement is added at each checkpoint).
    func modelMetadata(_ trainer: RewardTrainer, _ labelled: RewardData) -> [String: String] {
        [
            RewardModel.Key.pairs: String(trainer.train.count), RewardModel.Key.heldOutPairs: String(trainer.heldOut.count),
            RewardModel.Key.gold: gold, RewardModel.Key.loss: loss.rawValue, RewardModel.Key.labelNoise: "\(labelNoise)",
            RewardModel.Key.base: base, RewardModel.Key.preset: size, "init_from": backbone ?? "none", RewardModel.Key.seed: String(seed), "data_seed": String(dataSeed),
            "images": String(labelled.count), "prompts": prompts, "samples_per_prompt": String(samplesPerPrompt),
            "renders_per_prompt": String(rendersPerPrompt), "extra_prompts": String(extraPrompts),
        ]
    }
}

extension RewardLoss: ExpressibleByArgument {}

/// Best-of-n sampling from the base model against a reward spec's proxy, with the gold of its
/// weight-0 scorers: the KL-efficiency reference of the Goodhart chart.
struct BestOfNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "best-of-n",
        abstract: "Best-of-n from the base model: for n = 1, 2, 4, ... the proxy's pick among n candidates and its gold, with KL = log n - (n-1)/n; writes bon.jsonl, bon.png and picks.png.")

    @Option(help: "Reward spec: the weighted scorers are the proxy, the weight-0 ones the gold (e.g. rm:RM.safetensors,shape-eval=0).") var reward: String
    @Option(help: "Prompts, each given --max-n candidates.") var prompts = "prompts/eval.txt"
    @Option(help: "Candidates per prompt (the largest n).") var maxN = 64
    @Option(help: "The base model.") var model = "models/base-s32c-captions.safetensors"
    @Option(help: "Euler steps per candidate (the evaluation's sampler).") var steps = 20
    @Option(help: "Random seed of the candidates' noise.") var seed: UInt64 = 0
    @Option(help: "How the members of an rm:P1+P2 ensemble combine: mean, min, or mean-std:LAMBDA.") var rmCombine = "mean"
    @Option(help: "Output folder.") var out: String
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        try OptionCheck.atLeast("--max-n", maxN, 2)
        try OptionCheck.atMost("--max-n", maxN, 4096)
        try OptionCheck.positive("--steps", steps)
        try OptionCheck.atMost("--steps", steps, OptionCheck.maxSteps)
        let spec = try RewardSpec(parsing: reward)
        let goldNames = spec.terms.filter { $0.weight == 0 }.map(\.name)
        guard !goldNames.isEmpty else { throw CLIError("--reward \"\(reward)\" has no weight-0 scorer: give the gold as one, e.g. \(reward),shape-eval=0") }
        let combined = try spec.makeReward(rmCombine: try EnsembleCombine(parsing: rmCombine))
        let dir = try outputURL(out)
        try makeFolder(dir)
        let lock = try RunLock(dir)
        defer { lock.release() }
        let file = try PromptFile(path: prompts)
        let base = try Checkpoint.load(URL(fileURLWithPath: model))
        let S = base.config.imageSize
        var proxy: [[Float]] = [], gold: [String: [[Float]]] = [:]
        var picksImages: [[[Float]]] = []
        let start = now()
        for (i, prompt) in file.entries.enumerated() {
            // prompt i's candidates: noise of a seed of its own
            var promptRNG = RNG(seed: seed).split(UInt64(i))
            var gen = Generator(sampler: EulerSampler(steps: steps))
            gen.batch = min(64, maxN)
            let images = try gen.generate(model: base, prompts: [prompt], perPrompt: maxN, seed: promptRNG.nextUInt64())[0]
            let (total, by) = try combined.evaluate(ImageBatch(images: images, size: S), prompts: Array(repeating: prompt, count: maxN))
            proxy.append(total)
            for g in goldNames { gold[g, default: []].append(by[g]!) }
            if i < 8 { picksImages.append(BestOfN.sizes(maxN: maxN).map { n in images[BestOfN.selections(proxy: total, n: n)[0]] }) }
            let t = now() - start
            log(String(format: "prompt %ld/%ld  %.0f s  ETA %@", i + 1, file.entries.count, t,
                       formatDuration(t / Double(i + 1) * Double(file.entries.count - i - 1))))
            if let sig = interruptSignal { throw CLIError.interrupted(sig, "interrupted (signal \(sig)) at prompt \(i + 1): nothing written") }
        }
        let rows = BestOfN.rows(proxy: proxy, gold: gold, maxN: maxN)
        try writeAtomically(rows.map { BestOfN.jsonLine($0) + "\n" }.joined(), to: dir.appendingPathComponent("bon.jsonl"))
        var chart = LineChart(title: "best-of-n from \(URL(fileURLWithPath: model).lastPathComponent), \(file.entries.count) prompts",
                              xLabel: "d = sqrt(KL to the base model)", yLabel: "score")
        chart.width = 720; chart.height = 400
        chart.series.append(.init(name: "proxy (\(spec.terms.filter { $0.weight != 0 }.map(\.name).joined(separator: "+")))",
                                  points: rows.map { ($0.d, $0.proxy) }, color: LineChart.palette[0]))
        for (k, g) in goldNames.enumerated() {
            chart.series.append(.init(name: "gold \(g)", points: rows.map { ($0.d, $0.gold[g]!) }, color: LineChart.palette[(k + 1) % LineChart.palette.count]))
        }
        try writeAtomically(try chart.render().pngData(), to: dir.appendingPathComponent("bon.png"))
        let gridRows = picksImages.enumerated().map { p, imgs in
            GridRow(caption: file.entries[p].text, images: imgs.map { RGBImage(signedUnit: $0, width: S, height: S) },
                    labels: BestOfN.sizes(maxN: maxN).map { "n=\($0)" })
        }
        try writeAtomically(try composeGrid(rows: gridRows, scale: 3, title: "the proxy's pick among n (first group)").pngData(), to: dir.appendingPathComponent("picks.png"))
        for r in rows {
            log(String(format: "n %4ld  d %.3f  proxy %.4f  ", r.n, r.d, r.proxy) + goldNames.map { String(format: "%@ %.4f ± %.4f", $0, r.gold[$0]!, r.goldSE[$0]!) }.joined(separator: "  "))
        }
        log("wrote \(dir.path)/bon.jsonl, bon.png, picks.png")
    }
}

/// The Goodhart chart: the gold against d = sqrt(KL to the base model) for every evaluation of
/// RL runs (their kl_base) and for best-of-n, with Gao et al.'s forms fitted per group.
struct GoodhartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "goodhart",
        abstract: "Gold and proxy against sqrt(KL) for RL runs (every evaluation's kl_base) and best-of-n folders, with Gao et al.'s forms fitted (bootstrap intervals over runs); writes a PNG and a JSON of the fits.")

    @Argument(help: "Run folders (metrics.jsonl with kl_base), each optionally LABEL=FOLDER: runs of one label are fitted together.") var runs: [String] = []
    @Option(help: "A best-of-n folder (bon.jsonl), optionally LABEL=FOLDER; may repeat.") var bon: [String] = []
    @Option(help: "The gold scorer's name (a weight-0 scorer of the runs, or shape-eval).") var gold = "shape-eval"
    @Option(help: "Output PNG (the fits go beside it as NAME.json, the table of each group's gain, peak and fall as NAME.md).") var out: String
    @Option(name: .customLong("at-d"), help: "Comma-separated distances d at which the table gives each group's gold gain (equal KL).") var atD: String?
    @Option(help: "Comma-separated proxy scores at which the table gives each group's gold gain (equal proxy).") var atProxy: String?

    func run() throws {
        guard !runs.isEmpty || !bon.isEmpty else { throw CLIError("give run folders and/or --bon folders") }
        let levels = (try parseNumbers(atD, option: "--at-d"), try parseNumbers(atProxy, option: "--at-proxy"))
        let url = try outputURL(out)
        var chart = GoodhartChart(gold: gold)
        func split(_ arg: String, _ fallback: String) -> (String, String) {
            if let eq = arg.firstIndex(of: "="), !FileManager.default.fileExists(atPath: arg) { return (String(arg[..<eq]), String(arg[arg.index(after: eq)...])) }
            return (fallback, arg)
        }
        for arg in runs {
            let (label, folder) = split(arg, "RL")
            try chart.addRun(label: label, folder: URL(fileURLWithPath: folder))
        }
        for arg in bon {
            let (label, folder) = split(arg, "best-of-n")
            try chart.addBestOfN(label: label, folder: URL(fileURLWithPath: folder))
        }
        let (image, fits) = chart.render()
        try writeAtomically(try image.pngData(), to: url)
        try writeAtomically(GoodhartChart.json(fits), to: url.deletingPathExtension().appendingPathExtension("json"))
        let table = GoodhartSummary.markdown(chart.groups.map { GoodhartSummary(group: $0, atD: levels.0, atProxy: levels.1) }, gold: gold)
        try writeAtomically(table, to: url.deletingPathExtension().appendingPathExtension("md"))
        print(table, terminator: "")
        for f in fits { log(f.summary) }
        for (label, d) in chart.unmeasuredStarts {
            log(String(format: "note: %@: no evaluation between the base model and d = %.3g; the fitted form's shape there is not measured (--eval-early evaluates at iterations 1, 2, 4, ... as well)", label, d))
        }
        log("wrote \(url.path), its fits (.json) and its table (.md)")
    }
}
