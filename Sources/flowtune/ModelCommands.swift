import ArgumentParser
import Foundation
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Training

struct SamplingOptions: ParsableArguments {
    @Option(help: "Model checkpoint (safetensors).") var model = "models/base-s32c-distilled.safetensors"
    @Option(help: "Prompt file.") var prompts = "prompts/eval.txt"
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
        let (m, f, _) = try loadWithMetadata()
        return (m, f)
    }

    /// The model, the prompts and the model file's metadata.
    func loadWithMetadata() throws -> (DiT, PromptFile, [String: String]) {
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: model))
        let m = try Checkpoint.load(file, source: model)
        if cfg != 1, let w = file.metadata[Checkpoint.distilledCFGKey].flatMap(Float.init) {
            log("note: \(model) is guidance-distilled (it draws at --cfg 1 what its teacher drew at CFG \(w)); --cfg \(cfg) guides about as strongly as CFG \(cfg * w) would its teacher")
        }
        let f = try PromptFile(path: prompts)
        return (m, f, file.metadata)
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
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        guard out != nil || outDir != nil else { throw CLIError("give --out GRID.png and/or --out-dir DIR") }
        let (m, f) = try options.load()
        if out != nil { try checkGrid(perPrompt: options.perPrompt, scale: scale, imageSize: m.config.imageSize) }
        let t0 = now()
        let images = try options.generate(m, f)
        let S = m.config.imageSize
        if let out {
            let rows = zip(f.prompts, images).map { GridRow(caption: $0, images: $1.map { RGBImage(signedUnit: $0, width: S, height: S) }) }
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
        abstract: "Score a checkpoint's samples with the rule-based checker: mean per task type and overall.")
    @OptionGroup var options: SamplingOptions
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Also print the pass rate of each kind of requirement per task type (to stderr with --json).") var details = false
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        let (m, f, metadata) = try options.loadWithMetadata()
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
        if json {
            // the noise a model was pretrained with, as the first key (clean models: the same object as always)
            print(noise.map { "{\"caption_noise\": \(jsonQuote($0)), " + scores.json.dropFirst() } ?? scores.json)
        } else {
            if let noise { print("pretrained with caption noise \(noise)") }
            print(scores.table)
        }
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
