import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Shapes
import Dataset
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain the velocity network by flow matching on freshly rendered shapes-world images, or on a folder of captioned images (--data).",
        discussion: "SETTINGS (each also a key of the run's state, MODEL.state.safetensors):\n" + PretrainConfig.table.help())

    @Option(help: "Prompt list whose prompts are never drawn (held out).") var exclude = "prompts/eval.txt"
    @Option(help: "Checkpoint (EMA weights); its state goes beside it as NAME.state.safetensors.") var out = "models/base-s32.safetensors"
    @Option(help: "Write a checkpoint every N steps.") var checkpointEvery = 500
    @Option(help: "Print progress every N steps.") var logEvery = 50
    @Flag(help: "Continue from the checkpoint at --out.") var resume = false
    @Option(help: "Start from this model's weights (the same configuration, or an s32 model for s32c: the convolutional head starts as the identity, so the network starts as that model).")
    var initFrom: String?
    @Argument(parsing: .allUnrecognized, help: .hidden) var words: [String] = []
    @OptionGroup var threads: ThreadOptions

    func validate() throws { _ = try settings() }

    /// The pretraining configuration the command line gives.
    func settings() throws -> PretrainConfig {
        do { return try PretrainConfig.table.parse(words, into: PretrainConfig()).0 } catch let e as InvalidOption { throw ValidationError(e.description) }
    }

    func run() throws { try threads.compute().run { try execute() } }

    /// The folder's images, read through its cache.
    func readFolder(_ f: FolderTraining, imageSize: Int, say: (String) -> Void) throws -> ImageFolder {
        let t0 = now()
        let images = try ImageFolder(path: f.folder, size: imageSize, background: (f.background[0], f.background[1], f.background[2]), skipBad: f.skipBad)
        say("\(f.folder): \(images.count) images at \(imageSize) px (cache \(images.cacheNote), \(formatDuration(now() - t0)))")
        if !images.problems.isEmpty {
            say("left out \(images.problems.count) bad file\(images.problems.count == 1 ? "" : "s") (--skip-bad):\n" + images.problems.map { "  " + $0 }.joined(separator: "\n"))
        }
        return images
    }

    func execute() throws {
        enableGracefulInterrupt()
        let world = try World.start()      // ended in FlowTune.main
        let root = world.isRoot
        let say: (String) -> Void = { if root { log($0) } }     // rank 0 prints
        try OptionCheck.positive("--checkpoint-every", checkpointEvery)
        try OptionCheck.positive("--log-every", logEvery)
        let cfg = try settings()
        do { try cfg.validate() } catch let e as InvalidOption { throw CLIError(e.description) }     // before the folder is read (and its cache written)
        if resume && initFrom != nil { throw CLIError("--init-from starts a new run; --resume continues one: give one of them") }
        if root, !resume, FileManager.default.fileExists(atPath: out) {
            throw CLIError("\(out) already exists; continue its run with --resume, or give another --out (nothing is overwritten)")
        }
        let excluded = cfg.data == nil ? Set(try PromptFile(path: exclude).prompts) : []
        let images = try cfg.folder.map { try readFolder($0, imageSize: try ModelConfig.named(cfg.model, vocabSize: Tokenizer.vocabularySize).imageSize, say: say) }
        let start = try initFrom.map { path in try Checkpoint.load(URL(fileURLWithPath: path)) }
        let teacher = try cfg.distillFrom.map { path in try Checkpoint.load(URL(fileURLWithPath: path)) }
        let trainer = try Pretrainer(config: cfg, excluding: excluded, initFrom: start, teacher: teacher, world: world, folder: images)
        let url = try outputURL(out)
        // a resume is checked (configuration, options, state) before the lock is taken, so that a
        // refused one leaves no trace
        if resume { try trainer.resume(from: url) }
        // one process writes a checkpoint at a time: a second run on the same --out (a resume
        // while the first still trains) is refused instead of interleaving their saves
        let lock = root ? try RunLock(file: url) : nil
        defer { lock?.release() }
        if let initFrom { say("starting from the weights of \(initFrom)") }
        if let distillFrom = cfg.distillFrom, let distillCfg = cfg.distillCFG { say("distilling \(distillFrom) guided at CFG \(distillCfg)") }
        if !cfg.captionNoise.isEmpty { say("caption noise: \(cfg.captionNoise)") }
        if let v = trainer.model.trainedOn, case .words(let words) = trainer.model.vocabulary {
            say("\(v.images - v.heldOut.count) training images, \(v.heldOut.count) held out (seed \(v.splitSeed)); vocabulary of \(words.words.count) words (min count \(words.minCount)), \(words.textLength) tokens a caption")
        }
        if resume {
            try trainer.resume(from: url)       // again under the lock: a run that ended meanwhile saved a later state
            say("resumed \(out) at step \(trainer.step)")
        }
        let logURL = url.deletingPathExtension().appendingPathExtension("pretrain.jsonl")
        if resume && root { try truncateJSONLines(logURL, maxStep: trainer.step) }
        say("pretraining \(cfg.model) (\(trainer.model.parameterCount) parameters), batch \(cfg.batch), \(cfg.steps) steps"
            + (world.isDistributed ? " (\(world.size) processes)" : ""))
        try train(trainer, cfg, checkpoint: url, log: logURL, saved: resume, world: world, say: say)
        say("done: \(out) at step \(trainer.step)")
    }

    /// The steps up to --steps: progress and a log line every --log-every steps, a checkpoint
    /// every --checkpoint-every and at the end (or at a signal, then the interruption is thrown).
    /// `saved`: a checkpoint at the output already holds this run's last good state (a resume).
    func train(_ trainer: Pretrainer, _ cfg: PretrainConfig, checkpoint url: URL, log logURL: URL, saved wasSaved: Bool,
               world: World, say: (String) -> Void) throws {
        let root = world.isRoot
        var saved = wasSaved
        var window: [Float] = []
        var t0 = now()
        let startStep = trainer.step
        let runStart = now()
        let steps = cfg.steps
        while trainer.step < steps {
            let loss = trainer.trainStep()
            guard loss.isFinite else {
                throw CLIError("loss became \(loss) at step \(trainer.step); " + (saved ? "the last checkpoint at \(out) is intact" : "no checkpoint was written"))
            }
            window.append(loss)
            if trainer.step % logEvery == 0 || trainer.step == steps {
                let mean = window.reduce(0, +) / Float(window.count)
                let dt = now() - t0
                let rate = Double(window.count) / dt
                let eta = Double(steps - trainer.step) / max(1e-9, Double(trainer.step - startStep) / (now() - runStart))
                say(String(format: "step %ld/%ld  loss %.4f  lr %.2e  %.2f steps/s  ETA %@", trainer.step, steps, mean,
                           cfg.learningRate(at: trainer.step - 1), rate, formatDuration(eta)))
                if root { try appendLine(String(format: "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"steps_per_s\": %.3f, \"precision\": \"%@\"}",
                                      trainer.step, mean, cfg.learningRate(at: trainer.step - 1), rate, Compute.current.precision.rawValue), to: logURL) }
                window.removeAll(); t0 = now()
            }
            if trainer.step % checkpointEvery == 0 || trainer.step == steps {
                try trainer.save(to: url)
                saved = true
            }
            // every rank stops after the same step: a signal seen by any of them counts
            if let sig = interruptSignal(in: world) {
                try trainer.save(to: url)
                throw CLIError.interrupted(sig, "interrupted (signal \(sig)) at step \(trainer.step): checkpoint written; continue with the same command and --resume")
            }
        }
        if trainer.step == startStep {
            // nothing left to train (a resume of a finished run): write the checkpoint again, so
            // that a model file left one checkpoint behind its state (a kill between the two
            // writes of the last save) ends as the state says
            try trainer.save(to: url)
        }
    }
}

/// Pretraining loss curves (one or more NAME.pretrain.jsonl logs) as one chart.
struct PlotLoss: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plot-loss",
        abstract: "Draw the loss curves of pretraining logs (MODEL.pretrain.jsonl) in one chart.")
    @Argument(help: "Pretraining logs.") var logs: [String]
    @Option(help: "Comma-separated series names (default: the file names).") var names: String?
    @Option(help: "Leave out the steps before this one (the warm-up's large losses).") var fromStep = 0
    @Option(help: "Chart title.") var title = "pretraining loss (mean over each logged window)"
    @Option(help: "Output PNG.") var out: String

    func run() throws {
        guard !logs.isEmpty else { throw CLIError("give at least one pretraining log") }
        let labels = names.map { $0.split(separator: ",").map(String.init) } ?? logs.map { URL(fileURLWithPath: $0).lastPathComponent }
        guard labels.count == logs.count else { throw CLIError("--names has \(labels.count) names for \(logs.count) logs") }
        var chart = LineChart(title: title, xLabel: "step", yLabel: "loss")
        chart.width = 720; chart.height = 400
        for (i, path) in logs.enumerated() {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(path): cannot read the log") }
            var points: [(x: Double, y: Double)] = []
            for (n, line) in text.split(separator: "\n").enumerated() {
                guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                      let step = o["step"] as? Int, let loss = o["loss"] as? Double else { throw CLIError("\(path) line \(n + 1): not a pretraining log line") }
                if step >= fromStep { points.append((Double(step), loss)) }
            }
            chart.series.append(.init(name: labels[i], points: points, color: LineChart.palette[i % LineChart.palette.count]))
        }
        try writeAtomically(try chart.render().pngData(), to: try outputURL(out))
        log("wrote \(out)")
    }
}
