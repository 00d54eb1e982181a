import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Training

struct SamplingOptions: ParsableArguments {
    @Option(help: "Model checkpoint (safetensors).") var model = "models/base-s32c-distilled.safetensors"
    static let defaultPrompts = "prompts/eval.txt"
    @Option(help: "Prompt file (data:train or data:held-out: the captions of a model trained on a folder, whose default is data:held-out).")
    var prompts = defaultPrompts
    @Option(help: ArgumentHelp("A model trained on a folder of images: where that folder is now (default: where the model file says it was).", valueName: "dir"))
    var data: String?
    @Option(help: "Images per prompt.") var perPrompt = 4
    @Option(help: "Euler steps.") var steps = 20
    @Option(help: "Classifier-free guidance scale (1: no guidance, one network evaluation per step).") var cfg: Float = 3
    @Option(help: "Time shift m of the sampling grid (1: uniform).") var shift: Float = 1
    @Option(help: "Random seed of the initial noise.") var seed: UInt64 = 0

    func validate() throws {
        guard perPrompt > 0 else { throw ValidationError("--per-prompt must be positive") }
        guard perPrompt <= OptionCheck.maxBatch else { throw ValidationError("--per-prompt must be at most \(OptionCheck.maxBatch)") }
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        guard steps <= OptionCheck.maxSteps else { throw ValidationError("--steps must be at most \(OptionCheck.maxSteps), got \(steps)") }
        guard shift > 0, cfg.isFinite, shift.isFinite else { throw ValidationError("--shift must be positive and --cfg finite") }
    }

    func load() throws -> (DiT, PromptFile) {
        let (m, f, _, _) = try loadWithMetadata()
        return (m, f)
    }

    /// The model, the prompts, the model file's metadata, and (a model trained on a folder) its folder read.
    func loadWithMetadata() throws -> (DiT, PromptFile, [String: String], FolderData?) {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: model))
        let m = try Checkpoint.load(file, source: model)
        if cfg != 1, let w = file.metadata[Checkpoint.distilledCFGKey].flatMap(Float.init) {
            log("note: \(model) is guidance-distilled (it draws at --cfg 1 what its teacher drew at CFG \(w)); --cfg \(cfg) guides about as strongly as CFG \(cfg * w) would its teacher")
        }
        let folder = m.trainedOn == nil ? nil : try FolderData(model: m, source: model, folder: data)
        if folder == nil, data != nil { throw CLIError("--data names the folder a model was trained on; \(model) is a shapes-world model") }
        let path = folder != nil && prompts == Self.defaultPrompts ? FolderData.heldOutCaptions : prompts
        let f = try FolderData.promptFile(path, model: m, source: model, cached: folder)
        if let note = FolderData.unknownWordsNote(f) { log("note: " + note) }
        return (m, f, file.metadata, folder)
    }

    func generate(_ m: DiT, _ f: PromptFile) throws -> [[[Float]]] {
        let gen = Generator(sampler: EulerSampler(steps: steps, cfgScale: cfg, shift: shift))
        return try gen.generate(model: m, prompts: f.entries, perPrompt: perPrompt, seed: seed)
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sample images from a checkpoint with the Euler ODE sampler.")
    @OptionGroup var options: SamplingOptions
    @Option(help: "Captioned grid PNG.") var out: String?
    @Option(help: "Folder for one PNG per image plus index.jsonl (file, prompt, seed).") var outDir: String?
    @Option(help: "Upscaling factor in the grid.") var scale = 3
    @Flag(help: "A model trained on a folder: begin each grid row with the folder's image of that caption (labelled \"real\"), where it has one.")
    var real = false
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        guard out != nil || outDir != nil else { throw CLIError("give --out GRID.png and/or --out-dir DIR") }
        let (m, f, _, folder) = try options.loadWithMetadata()
        if real && (folder == nil || out == nil) { throw CLIError("--real shows a folder model's images in the grid: it needs a model trained on a folder and --out") }
        if out != nil { try checkGrid(perPrompt: options.perPrompt + (real ? 1 : 0), scale: scale, imageSize: m.config.imageSize) }
        let t0 = now()
        let images = try options.generate(m, f)
        let S = m.config.imageSize
        if let out {
            // the folder's image of each caption (the first of that caption), for --real
            let byCaption = Dictionary(folder?.images.entries.enumerated().map { ($1.caption, $0) } ?? [], uniquingKeysWith: { a, _ in a })
            let rows = zip(f.prompts, images).map { prompt, imgs in
                let samples = imgs.map { RGBImage(signedUnit: $0, width: S, height: S) }
                guard real, let folder else { return GridRow(caption: prompt, images: samples) }
                let first = byCaption[prompt].map { RGBImage(signedUnit: folder.images.image($0), width: S, height: S) } ?? RGBImage(width: S, height: S)
                return GridRow(caption: prompt, images: [first] + samples, labels: [byCaption[prompt] == nil ? "none" : "real"] + samples.map { _ in "" })
            }
            let grid = composeGrid(rows: rows, scale: scale, title: "\(options.model): \(options.steps) Euler steps, cfg \(options.cfg), seed \(options.seed)")
            try writeAtomically(try grid.pngData(), to: try outputURL(out))
            log("wrote \(out)")
        }
        if let outDir {
            let dir = try outputURL(outDir, option: "--out-dir")
            var index = ""
            for (i, prompt) in f.prompts.enumerated() {
                for j in 0..<options.perPrompt {
                    let name = String(format: "p%03ld-s%02ld.png", i, j)
                    try writeAtomically(try RGBImage(signedUnit: images[i][j], width: S, height: S).pngData(), to: dir.appendingPathComponent(name))
                    index += jsonObject(["file": .string(name), "prompt": .string(prompt), "seed": .int(Int(options.seed)),
                                         "prompt_index": .int(i), "image_index": .int(j)]) + "\n"
                }
            }
            try writeAtomically(index, to: dir.appendingPathComponent("index.jsonl"))
            log("wrote \(f.prompts.count * options.perPrompt) images and index.jsonl to \(outDir)")
        }
        log(String(format: "%ld images in %.1f s", f.prompts.count * options.perPrompt, now() - t0))
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a checkpoint's samples with the rule-based checker: mean per task type and overall, and the Frechet distance to renderings of the same prompts beside its floor (a model trained on a folder: the Frechet distance of its samples to the held-out images).")
    @OptionGroup var options: SamplingOptions
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Also print the pass rate of each kind of requirement per task type (to stderr with --json).") var details = false
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        let (m, f, metadata, folder) = try options.loadWithMetadata()
        if let folder { return try evaluateOnFolder(m, f, folder) }
        let noise = metadata[Checkpoint.captionNoiseKey]
        let images = try options.generate(m, f)
        let checker = Checker(size: m.config.imageSize)
        var scores = TaskScores()
        var kinds: [String: (Int, Int)] = [:]
        for (spec, imgs) in zip(f.specs, images) {
            for img in imgs {
                let r = checker.check(img, spec: spec)
                scores.add(spec.task, r.score)
                for q in r.requirements {
                    let key = "\(spec.task.rawValue) / \(q.kind)"
                    kinds[key, default: (0, 0)].0 += q.passed ? 1 : 0
                    kinds[key, default: (0, 0)].1 += 1
                }
            }
        }
        // image quality: the Frechet distance of the samples to renderings of the same prompts,
        // beside its floor (two independent renderings against each other)
        let (reference, second) = GoldMetrics.renderedReference(f.specs, perPrompt: options.perPrompt, size: m.config.imageSize)
        let feats = images.flatMap { $0 }.map { ImageFeatures.extract($0, size: m.config.imageSize) }
        let fd = feats.count > 1 ? frechetDistance(feats, reference) : 0, floor = feats.count > 1 ? frechetDistance(second, reference) : 0
        if json {
            // the noise a model was pretrained with, as the first key (clean models: the same object as always)
            let fields = String(scores.json.dropLast()) + String(format: ", \"fd\": %.6g, \"fd_floor\": %.6g}", fd, floor)
            print(noise.map { "{\"caption_noise\": \(jsonQuote($0)), " + fields.dropFirst() } ?? fields)
        } else {
            if let noise { print("pretrained with caption noise \(noise)") }
            print(scores.table)
            print(String(format: "Frechet distance to renderings of the prompts  %.3f   (floor: two renderings against each other, %.3f)", fd, floor))
        }
        try printDetails(kinds)
    }

    /// A folder model: the Frechet distance (57 and 21 features) of its samples for the prompts to
    /// the folder's held-out images, beside the floor: as many of its training images against them.
    func evaluateOnFolder(_ m: DiT, _ f: PromptFile, _ folder: FolderData) throws {
        if details { throw CLIError("--details lists the checker's requirements; a model trained on a folder has no checker") }
        let t0 = now()
        let images = try options.generate(m, f).flatMap { $0 }
        let S = m.config.imageSize
        let feats = images.map { ImageFeatures.extract($0, size: S) }
        let held = folder.heldOut.map { ImageFeatures.extract(folder.images.image($0), size: S) }
        var rng = RNG(seed: FolderData.floorSeed)
        let real = folder.floorImages(count: images.count, rng: &rng).map { ImageFeatures.extract($0, size: S) }
        // and two random halves of the whole folder against each other
        var all = Array(folder.images.entries.indices)
        rng.shuffle(&all)
        let halves = [all.prefix(all.count / 2), all.dropFirst(all.count / 2)].map { $0.map { ImageFeatures.extract(folder.images.image($0), size: S) } }
        let c = ImageFeatures.compact
        let values: [(String, Double)] = [
            ("fd", frechetDistance(feats, held)), ("fd_floor", frechetDistance(real, held)),
            ("fd21", frechetDistance(feats.map(c), held.map(c))), ("fd21_floor", frechetDistance(real.map(c), held.map(c))),
            ("fd_halves", frechetDistance(halves[0], halves[1])), ("fd21_halves", frechetDistance(halves[0].map(c), halves[1].map(c))),
        ]
        if json {
            let counts: [(String, JSONValue)] = [("images", .int(images.count)), ("held_out", .int(held.count)), ("floor_images", .int(real.count))]
            print(JSONValue.object(counts + values.map { ($0.0, JSONValue.double($0.1)) }).text)
        } else {
            print("\(images.count) samples of \(f.entries.count) prompts (\(f.path)) against the \(held.count) held-out images of \(folder.images.root.path)")
            print(String(format: "Frechet distance  %.3f   (floor: %ld training images against them, %.3f)", values[0].1, real.count, values[1].1))
            print(String(format: "  21 features     %.3f   (floor %.3f)", values[2].1, values[3].1))
            print(String(format: "two halves of the folder's %ld images against each other: %.3f (21 features %.3f)", all.count, values[4].1, values[5].1))
            print(String(format: "%.1f s", now() - t0))
        }
    }

    func printDetails(_ kinds: [String: (Int, Int)]) throws {
        if details {
            var lines = ["requirement                 pass rate"]
            for (k, v) in kinds.sorted(by: { $0.key < $1.key }) {
                lines.append(k.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%.3f  (%ld)", Double(v.0) / Double(v.1), v.1))
            }
            let text = lines.joined(separator: "\n")
            if json { log(text) } else { print(text) }
        }
    }
}
