import ArgumentParser
import Foundation
import Analysis
import Tensor
import Shapes

struct Prompts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a list of distinct random prompts of the shapes grammar, N per task type.")

    @Option(help: "Prompts per task type.") var perTask = 100
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Prompt files whose prompts must not appear (repeatable).") var exclude: [String] = []
    @Option(help: "Output file.") var out: String

    func run() throws {
        try OptionCheck.positive("--per-task", perTask)
        try OptionCheck.atMost("--per-task", perTask, 100_000)
        var excluded = Set<String>()
        for path in exclude { excluded.formUnion(try PromptFile(path: path).prompts) }
        var rng = RNG(seed: seed)
        let gen = PromptGenerator()
        var lines: [String] = []
        for task in Task.allCases {
            var seen = Set<String>()
            var tries = 0
            while seen.count < perTask {
                let text = gen.draw(task: task, rng: &rng).text
                tries += 1
                if tries > perTask * 1000 { throw CLIError("cannot find \(perTask) distinct \(task.rawValue) prompts") }
                if excluded.contains(text) || seen.contains(text) { continue }
                seen.insert(text); lines.append(text)
            }
        }
        try writeAtomically(lines.joined(separator: "\n") + "\n", to: try outputURL(out))
        log("wrote \(lines.count) prompts to \(out)")
    }
}
