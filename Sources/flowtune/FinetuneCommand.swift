import ArgumentParser
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Rewards
import Training

/// The fine-tuning settings of a command line: every word ArgumentParser does not claim for the
/// command's own options, read by `FinetuneConfig.table` (which also writes their help).
struct FinetuneOptions: ParsableArguments {
    @Argument(parsing: .allUnrecognized, help: .hidden) var words: [String] = []

    /// The settings' help, for a command's discussion.
    static func help(_ intro: String) -> String {
        intro + "\n\nSETTINGS (each also a key of config.json):\n" + FinetuneConfig.table.help()
    }

    func validate() throws { _ = try settings() }

    /// The configuration the command line gives, and the names of the settings it gives.
    func settings() throws -> (config: FinetuneConfig, given: [String]) {
        do { return try FinetuneConfig.table.parse(words, into: FinetuneConfig()) } catch let e as InvalidOption {
            throw ValidationError(e.description)
        }
    }

    /// The configuration the command line gives (checked by `validate` before the command runs).
    var config: FinetuneConfig { get throws { try settings().config } }
}

/// A run configuration (config.json) read back, or an error naming the file and what is wrong.
func loadRunConfig(_ url: URL, what: String, action: String = "resume") throws -> FinetuneConfig {
    guard let data = try? Data(contentsOf: url) else { throw CLIError("\(url.path): \(what)") }
    do { return try JSONDecoder().decode(FinetuneConfig.self, from: data) } catch {
        let why: String
        switch error {
        case DecodingError.keyNotFound(let key, _): why = "no '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
            why = c.codingPath.isEmpty ? "not JSON" : "a bad '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        default: why = "\(error)"
        }
        throw CLIError("\(url.path): not a run configuration this flowtune can \(action) (\(why)); runs written by other versions of flowtune resume with those")
    }
}

/// Runs (or resumes) a fine-tuning run in `out`, with a progress line per iteration. Under
/// mpirun every rank runs this; rank 0 alone locks and writes the run folder and prints.
/// `notes` are printed with the run's own once its set-up has passed.
func runFinetune(config given: FinetuneConfig, out: URL, resume: Bool, tensorboard: Bool = true, quiet: Bool = false,
                 notes: [String] = []) throws -> Finetuner {
    // the run's precision (its config.json's on resume) serves its rollouts and training passes alike
    return try Compute.current.with(given.precision).run {
        try finetuneLoop(config: given, out: out, resume: resume, tensorboard: tensorboard, quiet: quiet, notes: notes)
    }
}

private func finetuneLoop(config given: FinetuneConfig, out: URL, resume: Bool, tensorboard: Bool, quiet: Bool, notes: [String]) throws -> Finetuner {
    let world = World.current, root = world.isRoot, quiet = quiet || !root
    var config = given
    let configURL = out.appendingPathComponent("config.json")
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    if root, !resume, FileManager.default.fileExists(atPath: out.appendingPathComponent("metrics.jsonl").path) {
        throw FinetuneError("\(out.path) already holds a run (metrics.jsonl); use --resume \(out.path) or another --out")
    }
    if root, !resume { try checkNewRunFolder(out) }
    // one process per run folder: a second one (a sweep restarted while a run of the first goes
    // on) is refused; a new folder is locked once the set-up has passed (bad input creates nothing)
    var lock = root && FileManager.default.fileExists(atPath: out.path) ? try RunLock(out) : nil
    defer { lock?.release() }
    // set everything up (and fail on bad input) before writing anything into the run folder
    let run = try Finetuner(config: config, runDir: out, resume: resume, world: world, tensorboard: tensorboard)
    config = run.config        // a folder model's prompts resolved to its captions
    if !quiet { for note in notes + run.notes { log("note: " + note) } }
    if root && lock == nil { lock = try RunLock(out) }
    if run.startedOver && !quiet { log("\(out.path) holds no checkpoint yet (stopped before the first one): starting again from the base model") }
    if config.modelChecksum == nil { config.modelChecksum = run.modelChecksum }
    if root { try writeAtomically(try enc.encode(config), to: configURL) }
    if !quiet {
        log("\(config.algo) on \(config.model): reward \(config.reward), \(config.steps) iterations of \(config.batchSize) samples, from iteration \(run.iteration); writing \(out.path)"
            + (world.isDistributed ? " (\(world.size) processes)" : ""))
    }
    try run.evaluateBase()
    if root && run.iteration == 0 && config.evalEvery > 0 {
        writeReportIfPossible(out, progress: RunProgress(iteration: 0, steps: config.steps, eta: "not known yet"))
    }
    let start = Date(), first = run.iteration
    while run.iteration < config.steps {
        let s = try run.step()
        let done = run.iteration - first
        let eta = Date().timeIntervalSince(start) / Double(done) * Double(config.steps - run.iteration)
        if !quiet {
            log(String(format: "iter %ld/%ld  reward %.4f  %.2f s  ETA %@  peak %.0f MiB%@", s.iteration, config.steps, s.rewardMean, s.seconds,
                       formatDuration(eta), s.peakRSSMB, s.evaluated ? "  (grid + gold metrics)" : ""))
        }
        // every rank stops after the same iteration: a signal seen by any of them counts
        if let sig = interruptSignal(in: world) {
            try run.save()
            if root { writeReportIfPossible(out) }
            throw CLIError.interrupted(sig, "interrupted (signal \(sig)) after iteration \(run.iteration): checkpoint written; continue with: flowtune finetune --resume \(out.path)")
        }
        // the live report: rewritten at every evaluation before the last (the finished run writes its own)
        if root && s.evaluated && run.iteration < config.steps {
            writeReportIfPossible(out, progress: RunProgress(iteration: run.iteration, steps: config.steps, eta: formatDuration(eta)))
        }
    }
    return run
}

/// A new run goes into a folder that is missing, empty or holds only a run that never wrote
/// metrics (config.json; stopped during its set-up): never into one that holds a user's files.
func checkNewRunFolder(_ out: URL) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: out.path, isDirectory: &isDir) else { return }
    guard isDir.boolValue else { throw CLIError("--out \(out.path) is a file, not a folder") }
    // (a sweep writes the run's log, finetune.log, before the run starts)
    let entries = ((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).filter { $0 != ".lock" && $0 != "finetune.log" }.sorted()
    guard entries.isEmpty || entries.contains("config.json") else {
        let names = entries.prefix(3).joined(separator: ", ") + (entries.count > 3 ? ", ..." : "")
        throw CLIError("--out \(out.path) holds files that are not a flowtune run (\(names)); nothing is overwritten: give a new or empty folder")
    }
}

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a base model with RL (grpo, grpo-guard, acflow) and log every diagnostic.",
        discussion: FinetuneOptions.help("With --resume or --config, only the settings marked so below (--steps) may be given again: the run keeps the rest."))
    @OptionGroup var options: FinetuneOptions
    @Option(help: "Run folder (config.json, metrics.jsonl, grids/, checkpoints/; default: outputs/run).") var out: String?
    @Option(help: "Continue the run in this folder from its last checkpoint (its config.json is used; --steps may extend it).")
    var resume: String?
    @Option(name: .customLong("config"), help: "Take every hyperparameter from this config.json (as a run folder holds it; --steps may override).")
    var configFile: String?
    @Flag(inversion: .prefixedNo, help: "Write TensorBoard event files into the run folder (tensorboard --logdir outputs/).")
    var tensorboard = true
    @OptionGroup var threads: ThreadOptions

    func run() throws { try threads.compute().run { try execute() } }

    func execute() throws {
        enableGracefulInterrupt()
        let world = try World.start()      // ended in FlowTune.main (finish, or abort on an error)
        let (given, names) = try options.settings()
        var config = given
        config.precision = threads.chosenPrecision
        var dir = try outputURL(out ?? "outputs/run")
        if resume != nil || configFile != nil {
            // a resumed run keeps its configuration, a --config run takes the file's: only the
            // settings that may change on resume (--steps), --threads, --out (with --config) and
            // --[no-]tensorboard apply; the file's precision too
            guard !(resume != nil && configFile != nil) else {
                throw CLIError("--resume and --config cannot be combined (a resumed run keeps its own config.json)")
            }
            let url = resume.map { URL(fileURLWithPath: $0).appendingPathComponent("config.json") } ?? URL(fileURLWithPath: configFile!)
            if let resume { dir = URL(fileURLWithPath: resume) }
            var saved = try loadRunConfig(url, what: resume != nil ? "no run to resume (config.json missing)" : "cannot read the configuration", action: resume != nil ? "resume" : "read")
            let changeable = FinetuneConfig.table.changeableOnResume
            let refused = names.filter { n in !changeable.contains { $0.name == n } }.map { "--" + $0 } + (threads.precision != nil ? ["--precision"] : [])
                + (resume != nil && out != nil ? ["--out"] : [])
            guard refused.isEmpty else {
                let allowed = changeable.map(\.option).joined(separator: ", ")
                throw CLIError("\(resume != nil ? "--resume continues a run with its own config.json" : "--config takes every hyperparameter from the file"); \(refused.joined(separator: ", ")) would be ignored: give only \(allowed) (and --threads, --[no-]tensorboard\(resume == nil ? ", --out" : "")), or start a new run with --out")
            }
            for s in changeable where names.contains(s.name) { try s.set(&saved, s.text(of: given)) }
            config = saved
        }
        // options the algorithm does not read: said, not refused (a script may share one command
        // line between the algorithms)
        var notes: [String] = []
        if resume == nil && configFile == nil, case let unread = FinetuneConfig.unread(names, by: config.algo), !unread.isEmpty {
            let other = config.algo == .acflow ? "--algo grpo and grpo-guard" : "--algo acflow"
            notes.append("\(unread.joined(separator: ", ")) \(unread.count == 1 ? "is" : "are") read by \(other) only; this --algo \(config.algo.rawValue) run goes ahead without \(unread.count == 1 ? "it" : "them")")
        }
        let run = try runFinetune(config: config, out: dir, resume: resume != nil, tensorboard: tensorboard, notes: notes)
        guard world.isRoot else { return }
        log("done: \(dir.path) at iteration \(run.iteration)")
        writeReportIfPossible(dir)
    }
}
