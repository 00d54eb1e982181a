import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Rewards
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
    /// `shapesOnly`: the error for a model trained on a folder, thrown before its folder is read.
    func loadWithMetadata(shapesOnly: String? = nil) throws -> (DiT, PromptFile, [String: String], FolderData?) {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: model))
        let m = try Checkpoint.load(file, source: model)
        if m.trainedOn != nil, let shapesOnly { throw CLIError(shapesOnly) }
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
        let (m, f, metadata, folder) = try options.loadWithMetadata()
        if let from = Checkpoint.provenance(metadata) { log("\(options.model): \(from)") }
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
        abstract: "Score a checkpoint's samples with the rule-based checker: mean per task type and overall, and the Frechet distance to renderings of the same prompts beside its floor (a model trained on a folder: the Frechet distance of its samples to the held-out images).",
        discussion: "With --against BASE, the same prompts and initial noise are drawn by a second model too (a fine-tuned policy against its base, say), and each mean is printed beside BASE's with the change and its 95% interval: a paired bootstrap over the prompts, which share their noise between the two models.")
    @OptionGroup var options: SamplingOptions
    @Option(help: "A second shapes-world model to compare with, drawn with the same prompts, seeds and sampler.") var against: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Also print the pass rate of each kind of requirement per task type (to stderr with --json); the 'extra' rows are the strict checker's requirement that nothing but the asked objects is drawn.") var details = false
    @Flag(help: "Score with the strict checker (the shape-eval-strict scorer): one more requirement, that nothing but the asked objects is drawn. Either way the other checker's scores of the same images are printed too.")
    var strict = false
    @OptionGroup var threads: ThreadOptions

    /// The scorer whose checker this evaluation uses, and the other one (scored on the same images).
    var checkerName: String { (strict ? ShapeEvalScorer.Variant.strict : .eval).rawValue }
    var otherCheckerName: String { (strict ? ShapeEvalScorer.Variant.eval : .strict).rawValue }

    func run() throws { try threads.compute().run { try execute() } }

    /// One model's samples checked by the chosen checker (`tally`) and by the other (`other`:
    /// the lenient one with --strict, else the strict one), and their Frechet distance to
    /// renderings of the prompts.
    struct Checked {
        var model: String
        /// The file's metadata: its caption noise, and for a policy where it came from.
        var metadata: [String: String]
        var noise: String? { metadata[Checkpoint.captionNoiseKey] }
        var tally: CheckerTally
        var other: CheckerTally
        var fd: Double
        /// The strict checker's tally: its requirements are the lenient one's and "extra".
        func strictTally(_ strict: Bool) -> CheckerTally { strict ? tally : other }
    }

    func execute() throws {
        let shapesOnly = details ? "--details lists the checker's requirements; a model trained on a folder has no checker"
            : strict ? "--strict scores with the checker; a model trained on a folder has no checker"
            : against != nil ? "--against compares two shapes-world models with the checker; \(options.model) was trained on a folder" : nil
        let (m, f, metadata, folder) = try options.loadWithMetadata(shapesOnly: shapesOnly)
        if let folder { return try evaluateOnFolder(m, f, folder, metadata) }
        // image quality: the Frechet distance of the samples to renderings of the same prompts,
        // beside its floor (two independent renderings against each other)
        let (reference, second) = GoldMetrics.renderedReference(f.specs, perPrompt: options.perPrompt, size: m.config.imageSize)
        let floor = reference.count > 1 ? frechetDistance(second, reference) : 0
        func check(_ model: DiT, _ path: String, _ metadata: [String: String]) throws -> Checked {
            let images = try options.generate(model, f)
            let feats = images.flatMap { $0 }.map { ImageFeatures.extract($0, size: model.config.imageSize) }
            let tally = { (strict: Bool) in CheckerTally(checker: Checker(size: model.config.imageSize, strict: strict), specs: f.specs, images: images) }
            return Checked(model: path, metadata: metadata, tally: tally(strict), other: tally(!strict), fd: feats.count > 1 ? frechetDistance(feats, reference) : 0)
        }
        let main = try check(m, options.model, metadata)
        var base: Checked?
        if let against {
            var other = options
            other.model = against
            let (b, _, bMeta, bFolder) = try other.loadWithMetadata()
            if bFolder != nil { throw CLIError("--against \(against) was trained on a folder; the checker compares shapes-world models") }
            guard b.config.imageSize == m.config.imageSize else {
                throw CLIError("--against \(against) draws \(b.config.imageSize) px images, \(options.model) \(m.config.imageSize) px: the checker compares models of one size")
            }
            base = try check(b, against, bMeta)
        }
        if json { print(jsonReport(main, base, floor).text) } else { print(table(main, base, floor)) }
        if details {
            let text = detailsTable(main, base)
            if json { log(text) } else { print(text) }
        }
    }

    func table(_ main: Checked, _ base: Checked?, _ floor: Double) -> String {
        var lines: [String] = []
        for c in [main] + (base.map { [$0] } ?? []) {
            if let noise = c.noise { lines.append("\(c.model): pretrained with caption noise \(noise)") }
            if let from = Checkpoint.provenance(c.metadata) { lines.append("\(c.model): \(from)") }
        }
        if strict { lines.append("checker: strict (\(checkerName): nothing but the asked objects may be drawn)") }
        let otherLabel = strict ? "lenient checker (\(otherCheckerName)), the same images:"
                                : "strict checker (\(otherCheckerName): nothing but the asked objects), the same images:"
        guard let base else {
            lines.append(main.tally.scores.table)
            let s = main.other.scores
            lines.append(otherLabel + Task.allCases.map { t in " \(t.rawValue) " + (s.mean(t).map { String(format: "%.3f", $0) } ?? "-") }.joined(separator: ",")
                         + String(format: ", overall %.3f", s.overall))
            lines.append(String(format: "Frechet distance to renderings of the prompts  %.3f   (floor: two renderings against each other, %.3f)", main.fd, floor))
            return lines.joined(separator: "\n")
        }
        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: n, withPad: " ", startingAt: 0) }
        func row(_ name: String, _ task: Task?, _ tally: KeyPath<Checked, CheckerTally>) -> String {
            let (m, b) = (main[keyPath: tally], base[keyPath: tally])
            let x = task.map { m.scores.mean($0) } ?? m.scores.overall
            let y = task.map { b.scores.mean($0) } ?? b.scores.overall
            guard let x, let y, let d = m.change(from: b, task: task) else { return pad(name, 14) + "  -" }
            return pad(name, 14) + String(format: "%.3f   %.3f    %+.3f   [%+.3f, %+.3f]", x, y, d.mean, d.low, d.high)
        }
        lines.append("model:   \(main.model)\nagainst: \(base.model)")
        lines.append("task          model   against  change   95% interval (paired, over prompts)")
        lines += Task.allCases.map { row($0.rawValue, $0, \.tally) }
        lines.append(row("overall", nil, \.tally) + "   (\(main.tally.scores.images) images each)")
        lines.append(otherLabel)
        lines += Task.allCases.map { row($0.rawValue, $0, \.other) }
        lines.append(row("overall", nil, \.other))
        lines.append(String(format: "Frechet distance to renderings of the prompts  %.3f   against %.3f   (floor: two renderings against each other, %.3f)", main.fd, base.fd, floor))
        return lines.joined(separator: "\n")
    }

    func jsonReport(_ main: Checked, _ base: Checked?, _ floor: Double) -> JSONValue {
        func means(_ s: TaskScores) -> [(String, JSONValue)] {
            [("overall", .double(s.overall)), ("by_task", .object(Task.allCases.map { t in (t.rawValue, s.mean(t).map(JSONValue.double) ?? .null) }))]
        }
        func scores(_ c: Checked) -> [(String, JSONValue)] {
            return (c.noise.map { [("caption_noise", JSONValue.string($0))] } ?? []) + finetunedField(c.metadata)
                + means(c.tally.scores) + [("images", .int(c.tally.scores.images)), ("fd", .double(c.fd)),
                                            ("other_checker", .object([("checker", .string(otherCheckerName))] + means(c.other.scores)))]
        }
        var fields = scores(main) + [("fd_floor", .double(floor)), ("checker", .string(checkerName))]
        if let base {
            func changes(_ tally: KeyPath<Checked, CheckerTally>) -> [(String, JSONValue)] {
                func interval(_ task: Task?) -> JSONValue {
                    guard let d = main[keyPath: tally].change(from: base[keyPath: tally], task: task) else { return .null }
                    return .object([("mean", .double(d.mean)), ("low", .double(d.low)), ("high", .double(d.high))])
                }
                return [("overall", interval(nil)), ("by_task", .object(Task.allCases.map { ($0.rawValue, interval($0)) }))]
            }
            fields.append(("against", .object([("model", .string(base.model))] + scores(base))))
            fields.append(("change", .object(changes(\.tally) + [("other_checker", .object(changes(\.other)))])))
        }
        return .object(fields)
    }

    func detailsTable(_ main: Checked, _ base: Checked?) -> String {
        // the strict checker's requirements: the lenient one's, checked alike, and "extra"
        let (m, b) = (main.strictTally(strict), base?.strictTally(strict))
        var lines = ["requirement                 pass rate (checked)" + (base == nil ? "" : "  against  change")]
        for (k, v) in m.requirements.sorted(by: { $0.key < $1.key }) {
            var line = k.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%.3f  (%ld)", Double(v.passed) / Double(v.checked), v.checked)
            if let y = b?.passRate(k), let x = m.passRate(k) { line += String(format: "  %.3f    %+.3f", y, x - y) }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The "finetuned" field of a policy's JSON report (none for a base model).
    func finetunedField(_ metadata: [String: String]) -> [(String, JSONValue)] {
        Checkpoint.provenanceFields(metadata).map { [("finetuned", .object($0.map { ($0.0, JSONValue.string($0.1)) }))] } ?? []
    }

    /// A folder model: the Frechet distance (57 and 21 features) of its samples for the prompts to
    /// the folder's held-out images, beside the floor: as many of its training images against them.
    func evaluateOnFolder(_ m: DiT, _ f: PromptFile, _ folder: FolderData, _ metadata: [String: String]) throws {
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
            print(JSONValue.object(finetunedField(metadata) + counts + values.map { ($0.0, JSONValue.double($0.1)) }).text)
        } else {
            if let from = Checkpoint.provenance(metadata) { print("\(options.model): \(from)") }
            print("\(images.count) samples of \(f.entries.count) prompts (\(f.path)) against the \(held.count) held-out images of \(folder.images.root.path)")
            print(String(format: "Frechet distance  %.3f   (floor: %ld training images against them, %.3f)", values[0].1, real.count, values[1].1))
            print(String(format: "  21 features     %.3f   (floor %.3f)", values[2].1, values[3].1))
            print(String(format: "two halves of the folder's %ld images against each other: %.3f (21 features %.3f)", all.count, values[4].1, values[5].1))
            print(String(format: "%.1f s", now() - t0))
        }
    }
}
