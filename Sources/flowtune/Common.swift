import ArgumentParser
import Foundation
import Tensor

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
