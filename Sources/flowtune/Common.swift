import ArgumentParser
import Foundation
import Analysis
import Tensor
import CProcess

/// An error the CLI reports as one line on stderr before exiting with `exitCode`: 1 for bad input
/// and failures, 128 + N when signal N stopped a long command (after it wrote its checkpoint).
/// Every command throws instead of exiting, so that the one exit point (`FlowTune.main`) is
/// reached only after the stack has unwound: the objects that own resources (an external
/// scorer's process group and its temporary folder) have then stopped and removed them.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 1
    var isInterruption = false
    init(_ message: String) { description = message }

    /// The signal `signal` stopped the command; `message` says what was saved and how to go on.
    static func interrupted(_ signal: Int32, _ message: String) -> CLIError {
        var e = CLIError(message)
        e.exitCode = 128 + signal
        e.isInterruption = true
        return e
    }
}

/// A grid of `perPrompt` images of `imageSize` pixels a side, each drawn `scale` times larger:
/// --scale in 1...32 and rows at most 32768 pixels wide.
func checkGrid(perPrompt: Int, scale: Int, imageSize: Int) throws {
    try OptionCheck.positive("--per-prompt", perPrompt)
    guard (1...32).contains(scale) else { throw CLIError("--scale must be between 1 and 32, got \(scale)") }
    let width = perPrompt.multipliedReportingOverflow(by: imageSize * scale + 2)
    guard !width.overflow, width.partialValue <= 32768 else {
        throw CLIError("a grid row of \(perPrompt) images at --scale \(scale) would be wider than 32768 pixels: lower --per-prompt or --scale")
    }
}

/// One line to stderr through write(2): a closed, full or broken stderr loses the line and
/// nothing else (the command goes on; Foundation's FileHandle would trap).
func log(_ s: String) { _ = Data((s + "\n").utf8).withUnsafeBytes { writeAll(2, $0) } }

func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    if t >= 3600 { return "\(t / 3600)h\(String(format: "%02ld", (t % 3600) / 60))m" }
    if t >= 60 { return "\(t / 60)m\(String(format: "%02ld", t % 60))s" }
    return "\(t)s"
}

extension Precision: ExpressibleByArgument {}

struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for BLAS and for flowtune's own parallel loops (default: all cores).")
    var threads: Int?
    @Option(help: "The matrix products' inputs: fp32 (the default), or bf16 (rounded to bfloat16 as they are multiplied, sums and everything else in fp32; needs a CPU with AVX512-BF16).")
    var precision: Precision?

    /// The kernels, thread count and precision for this command, from the environment,
    /// --threads and --precision (a bad value, or bf16 where the CPU cannot run it, is an error).
    func compute() throws -> Compute { try Compute.fromEnvironment(threads: threads, precision: chosenPrecision) }

    /// --precision, fp32 when it is not given.
    var chosenPrecision: Precision { precision ?? .fp32 }
}

func now() -> Double { Date().timeIntervalSince1970 }

/// Long commands (pretrain, finetune, compare) call this first: the first SIGINT (Ctrl-C) or
/// SIGTERM then asks the loop to stop after its current step and write a checkpoint; a second
/// one ends the process at once (the last checkpoint is still intact).
func enableGracefulInterrupt() { ft_enable_graceful_interrupt() }

/// The signal that asked the command to stop, if one did.
var interruptSignal: Int32? { let s = ft_interrupted(); return s == 0 ? nil : s }

/// The signal that asked any process of `world` to stop, if one did (a collective: every rank
/// calls it at the same point, so they all stop after the same step).
func interruptSignal(in world: World) -> Int32? {
    guard world.isDistributed else { return interruptSignal }
    let s = Int32(world.max(Double(interruptSignal ?? 0)))
    return s == 0 ? nil : s
}

/// An exclusive lock on a run folder (flock on RUN/.lock) for as long as one process writes the
/// run: a second flowtune on the same folder (a restarted sweep while a run of the first goes on)
/// gets a clear error instead of interleaving its checkpoints and metrics with the first's. The
/// kernel drops the lock when the process ends, however it ends.
final class RunLock {
    private var fd: Int32

    init(_ dir: URL) throws {
        try makeFolder(dir)
        fd = try Self.acquire(dir.appendingPathComponent(".lock").path, guarding: dir.path)
    }

    /// A lock on one file that is replaced as a whole on every save (a pretraining checkpoint and
    /// its state): the lock is a hidden `.NAME.lock` beside it, since the file's own inode changes.
    init(file: URL) throws {
        try makeFolder(file.deletingLastPathComponent())
        let lockPath = file.deletingLastPathComponent().appendingPathComponent("." + file.lastPathComponent + ".lock").path
        fd = try Self.acquire(lockPath, guarding: file.path)
    }

    private static func acquire(_ path: String, guarding what: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw CLIError("\(what) is being written by another flowtune process; wait for it to end (or stop it) and try again")
        }
        return fd
    }

    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }
    deinit { release() }
}

/// The path an output option names; an empty one is an error (it would name the current folder).
func outputURL(_ path: String, option: String = "--out") throws -> URL {
    guard !path.trimmingCharacters(in: .whitespaces).isEmpty else { throw CLIError("\(option) is empty: give a path") }
    return URL(fileURLWithPath: path)
}

/// The numbers of a comma-separated option value (none when the option is absent); anything
/// else is a one-line error naming the option.
func parseNumbers(_ text: String?, option: String) throws -> [Double] {
    guard let text else { return [] }
    let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
        throw CLIError("\(option) needs comma-separated numbers, got '\(text)'")
    }
    return values.map { $0! }
}
