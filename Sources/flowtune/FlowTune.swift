import ArgumentParser

@main
struct FlowTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowtune",
        abstract: "Fine-tune a compact flow-matching image generator with RL and watch for reward hacking.",
        subcommands: [Render.self, CheckData.self, Prompts.self, Pretrain.self, PlotLoss.self, Sample.self, Evaluate.self, Finetune.self, ReportCommand.self, Compare.self, Bench.self])
}
