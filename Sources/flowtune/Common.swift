import ArgumentParser
import Foundation
import Tensor
import CProcess

/// Prints an error message to stderr and exits non-zero (the CLI's one exit path for user errors).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    Foundation.exit(1)
}

/// Runs `body`, turning any thrown error into a clear message and a non-zero exit.
func guarded<T>(_ body: () throws -> T) -> T {
    do { return try body() } catch let e as CustomStringConvertible { fail(e.description) } catch { fail("\(error)") }
}

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    return "\(t)s"
}

struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and for flowtune's own parallel loops (default: all cores).")
    var threads: Int?

    /// The kernels and thread count for this command, from the environment and --threads
    /// (resolved once; a bad value is an error).
    var compute: Compute { guarded { try Compute.fromEnvironment(threads: threads) } }
}

func now() -> Double { Date().timeIntervalSince1970 }

/// Long commands (pretrain, finetune, compare) call this first: the first SIGINT (Ctrl-C) or
/// SIGTERM then asks the loop to stop after its current step and write a checkpoint; a second
/// one ends the process at once (the last checkpoint is still intact).
func enableGracefulInterrupt() { ft_enable_graceful_interrupt() }

/// The signal that asked the command to stop, if one did.
var interruptSignal: Int32? { let s = ft_interrupted(); return s == 0 ? nil : s }

/// Exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as a shell expects.
func exitInterrupted(_ signal: Int32, _ message: String) -> Never {
    log(message)
    Foundation.exit(128 + signal)
}
