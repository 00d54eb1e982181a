import ArgumentParser
import Foundation
import Analysis
import Tensor
import CProcess

@main
struct FlowTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowtune",
        abstract: "Fine-tune a compact flow-matching image generator with RL and watch for reward hacking.",
        subcommands: [Render.self, CheckData.self, Prompts.self, Pretrain.self, PlotLoss.self, Sample.self, Evaluate.self, Finetune.self, ReportCommand.self, TensorBoardCommand.self, Compare.self, SweepCommand.self, TrainReward.self, BestOfNCommand.self, GoodhartCommand.self, Bench.self])

    /// The CLI's one exit point. Everything a command throws arrives here after its stack has
    /// unwound (so whatever it owned, an external scorer's process group say, is stopped) and
    /// becomes one line on stderr and a non-zero exit status: 1 for a failure, 64 for a bad
    /// command line, 128 + N after signal N. --help and --version print and exit 0.
    static func main() {
        ft_standard_streams()
        do {
            var command = try parseAsRoot()
            try command.run()
            World.current.finish()
            // what went to stdout must have arrived (a full disk, a closed pipe): else it is an error
            if fflush(stdout) != 0 || ferror(stdout) != 0 {
                let why = String(cString: strerror(errno))
                throw CLIError("cannot write to standard output: \(why)")
            }
        } catch let e as CLIError where World.current.isDistributed && e.isInterruption {
            // every rank stopped after the same iteration, rank 0 wrote the checkpoint
            if World.current.isRoot { log(e.description) }
            World.current.finish()
            exit(withError: ExitCode(e.exitCode))
        } catch where World.current.isDistributed {
            // one rank's error ends the MPI job (the others would wait for it forever)
            log("error (rank \(World.current.rank) of \(World.current.size)): \(error)")
            World.current.abort(code: 1)
            exit(withError: ExitCode.failure)
        } catch let e as CLIError {
            log(e.isInterruption ? e.description : "error: \(e.description)")
            exit(withError: ExitCode(e.exitCode))
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // ArgumentParser's own: help, a usage error, an ExitCode
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            // every rank of an mpirun job reads the same command line: rank 0 alone says what is wrong with it
            if World.launchedRank == 0 { log("error: \(message(for: error)) (see --help)") }
            exit(withError: code)
        } catch {
            log("error: \(error)")
            exit(withError: ExitCode.failure)
        }
    }
}
