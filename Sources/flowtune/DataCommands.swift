import ArgumentParser
import Foundation
import Analysis
import Tensor
import Imaging
import Shapes

/// Renders `perPrompt` images of each prompt: image j of prompt i uses seed (seed, i, j).
func renderPrompts(_ file: PromptFile, perPrompt: Int, seed: UInt64, size: Int = 32) -> [[[Float]]] {
    let renderer = Renderer(size: size)
    let base = RNG(seed: seed)
    return file.specs.enumerated().map { i, spec in
        (0..<perPrompt).map { j in
            var rng = base.split(UInt64(i)).split(UInt64(j))
            return renderer.render(spec, rng: &rng)
        }
    }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw shapes-world data: one captioned row per prompt.")
    @Option(help: "Prompt file.") var prompts = "prompts/eval.txt"
    @Option(help: "Images per prompt.") var perPrompt = 4
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Upscaling factor of each image in the grid.") var scale = 3
    @Option(help: "Output PNG.") var out = "outputs/render.png"

    func run() throws {
        try checkGrid(perPrompt: perPrompt, scale: scale, imageSize: 32)
        let file = try PromptFile(path: prompts)
        let images = renderPrompts(file, perPrompt: perPrompt, seed: seed)
        let rows = zip(file.prompts, images).map { GridRow(caption: $0, images: $1.map { RGBImage(signedUnit: $0, width: 32, height: 32) }) }
        let grid = composeGrid(rows: rows, scale: scale, title: "shapes world: \(prompts), seed \(seed)")
        try writeAtomically(try grid.pngData(), to: try outputURL(out))
        log("wrote \(out) (\(file.prompts.count) prompts x \(perPrompt))")
    }
}

struct CheckData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-data",
        abstract: "Render prompts and score them with the rule-based checker (mean per task type).")
    @Option(help: "Prompt file.") var prompts = "prompts/eval.txt"
    @Option(help: "Images per prompt.") var perPrompt = 8
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Flag(help: "Print one JSON object instead of a table.") var json = false

    func run() throws {
        try OptionCheck.positive("--per-prompt", perPrompt)
        try OptionCheck.atMost("--per-prompt", perPrompt, OptionCheck.maxBatch)
        let file = try PromptFile(path: prompts)
        let images = renderPrompts(file, perPrompt: perPrompt, seed: seed)
        let checker = Checker(size: 32)
        var scores = TaskScores()
        for (spec, imgs) in zip(file.specs, images) {
            for img in imgs { scores.add(spec.task, checker.check(img, spec: spec).score) }
        }
        print(json ? scores.json : scores.table)
    }
}
