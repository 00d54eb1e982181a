import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Training

/// OpenMPI's launcher, if installed (scripts/setup.sh installs it).
let mpirunBinary: URL? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let url = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    return nil
}()

/// Data-parallel runs under `mpirun -np 2` (loopback, oversubscribed, allowed as root) against
/// one process: the same metrics to the rounding of the reduction order.
@Suite(.serialized, .enabled(if: cliBinary != nil && mpirunBinary != nil,
                             "needs the flowtune binary beside the tests and OpenMPI's mpirun (scripts/setup.sh installs it)"))
struct MPITests {
    /// Runs `flowtune args` in one process, or in `ranks` processes under mpirun. With
    /// `killRank1After`, rank 1 is killed (SIGKILL) once that file exists. Returns the exit
    /// status and stderr.
    static func run(_ args: [String], ranks: Int? = nil, killRank1When file: URL? = nil) throws -> (Int32, String) {
        let p = Process()
        if let ranks {
            p.executableURL = mpirunBinary!
            p.arguments = ["--oversubscribe", "--allow-run-as-root", "--mca", "btl", "self,vader,tcp", "-np", String(ranks), cliBinary!.path] + args
        } else {
            p.executableURL = cliBinary!
            p.arguments = args
        }
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        p.environment = env
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("ft-mpi-\(UUID().uuidString).err")
        guard FileManager.default.createFile(atPath: errURL.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: errURL.path])
        }
        defer { try? FileManager.default.removeItem(at: errURL) }
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        if let file {
            let deadline = Date().addingTimeInterval(120)
            while p.isRunning && !FileManager.default.fileExists(atPath: file.path) && Date() < deadline { usleep(20_000) }
            if let pid = Self.rank1(of: args) { kill(pid, SIGKILL) }
        }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// The pid of the rank-1 flowtune process running `args` (from /proc: its command line and
    /// OMPI_COMM_WORLD_RANK in its environment).
    static func rank1(of args: [String]) -> pid_t? {
        let marker = args.joined(separator: "\0")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name),
                  let cmd = try? String(contentsOfFile: "/proc/\(name)/cmdline", encoding: .utf8), cmd.contains(marker),
                  !cmd.contains("mpirun"),
                  let env = try? String(contentsOfFile: "/proc/\(name)/environ", encoding: .utf8),
                  env.split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1") else { continue }
            return pid
        }
        return nil
    }

    /// Every number of every line of two metrics.jsonl files (timings and memory aside), paired.
    static func pairs(_ a: URL, _ b: URL) throws -> [(key: String, a: Double, b: Double)] {
        func flat(_ o: Any, _ path: String, _ out: inout [String: Any]) {
            if let d = o as? [String: Any] { for (k, v) in d { flat(v, path + "." + k, &out) } }
            else if let l = o as? [Any] { for (i, v) in l.enumerated() { flat(v, path + "[\(i)]", &out) } }
            else { out[path] = o }
        }
        func lines(_ url: URL) throws -> [[String: Any]] {
            try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
                var out: [String: Any] = [:]
                flat(try JSONSerialization.jsonObject(with: Data(line.utf8)), "", &out)
                return out.filter { !$0.key.contains("seconds") && !$0.key.contains("peak_rss") }
            }
        }
        let la = try lines(a), lb = try lines(b)
        #expect(la.count == lb.count, "\(la.count) lines vs \(lb.count)")
        var out: [(String, Double, Double)] = []
        for (i, (x, y)) in zip(la, lb).enumerated() {
            #expect(Set(x.keys) == Set(y.keys), "line \(i): keys differ: \(Set(x.keys).symmetricDifference(Set(y.keys)))")
            for (k, v) in x {
                if !(v is Bool), let n = v as? NSNumber, let m = y[k] as? NSNumber {
                    out.append(("line \(i) \(k)", n.doubleValue, m.doubleValue))
                } else {
                    #expect("\(v)" == "\(y[k] ?? "missing")", "line \(i) \(k)")
                }
            }
        }
        return out
    }

    /// The tolerance of "the same run": the reduction order (a sum over 2 processes' partial
    /// gradients instead of one pass) changes float rounding, ~1e-7 relative per step; after 2
    /// iterations the metrics agree to 1e-4 relative (+ 1e-6 absolute for values near 0, such
    /// as the spread of ratios that are 1 to 1e-6). The clipped-ratio loss is a sum of terms
    /// -A r that cancel (the advantages of a group sum to 0 and r = 1 +- 1e-5): its value is
    /// itself rounding noise of ~1e-5, so it gets an absolute tolerance of 1e-4.
    static func same(_ p: [(key: String, a: Double, b: Double)]) {
        #expect(!p.isEmpty)
        for (k, a, b) in p {
            let tolerance = k.hasSuffix(" .loss") ? 1e-4 : 1e-4 * max(abs(a), abs(b)) + 1e-6
            #expect(abs(a - b) <= tolerance, "\(k): \(a) vs \(b)")
        }
    }

    func runArgs(_ setup: TinySetup, _ algo: String, steps: Int, out: URL) -> [String] {
        ["finetune", "--model", setup.model.path, "--prompts", setup.prompts.path, "--eval-prompts", setup.evalPrompts.path,
         "--algo", algo, "--reward", "brightness", "--steps", String(steps), "--prompts-per-iteration", "4", "--group-size", "4",
         "--sde-steps", "4", "--seed", "7", "--eval-every", "2", "--checkpoint-every", "1", "--eval-per-prompt", "2",
         "--eval-steps", "4", "--micro-batch-size", "4", "--acflow-warmup", "1", "--acflow-warmup-ev=-1",
         "--threads", "1", "--out", out.path]
    }

    @Test(arguments: ["grpo", "grpo-guard", "acflow"])
    func twoRanksGiveTheSingleProcessMetrics(_ algo: String) throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let one = setup.dir.appendingPathComponent("one"), two = setup.dir.appendingPathComponent("two")
        let (s1, e1) = try Self.run(runArgs(setup, algo, steps: 2, out: one))
        #expect(s1 == 0, "\(e1)")
        // the shared command line's AC-Flow options are named as unread by the other algorithms
        #expect(e1.contains("note: --acflow-warmup, --acflow-warmup-ev are read by --algo acflow only") == (algo != "acflow"), "\(e1)")
        let (s2, e2) = try Self.run(runArgs(setup, algo, steps: 2, out: two), ranks: 2)
        #expect(s2 == 0, "\(e2)")
        #expect(e2.contains("(2 processes)"))
        // AC-Flow's passes hold each process's share of an actor batch, so its gradient-noise
        // pieces differ with the process count: the same quantity, estimated from other pieces
        let pieceFree = try Self.pairs(one.appendingPathComponent("metrics.jsonl"), two.appendingPathComponent("metrics.jsonl"))
            .filter { algo != "acflow" || !($0.0.hasSuffix(".grad_signal") || $0.0.hasSuffix(".grad_noise")) }
        Self.same(pieceFree)
        // rank 0 alone wrote the run: one grid per evaluation, one checkpoint
        #expect(FileManager.default.fileExists(atPath: two.appendingPathComponent("grids/step-00002.png").path))
        let a = try Checkpoint.load(one.appendingPathComponent("checkpoints/policy.safetensors")).params.array
        let b = try Checkpoint.load(two.appendingPathComponent("checkpoints/policy.safetensors")).params.array
        var worst: Float = 0
        for i in a.indices { worst = max(worst, abs(a[i] - b[i])) }
        #expect(worst < 1e-5, "largest weight difference \(worst)")
    }

    /// A 2-rank run resumes in 1 process (and the other way round) and ends where a 1-process run does.
    /// A bad command line under mpirun: one error line (rank 0's), not one per rank, and the
    /// usage status.
    @Test func aBadCommandLineIsReportedOnce() throws {
        let (status, err) = try Self.run(["finetune", "--steps", "many", "--threads", "1"], ranks: 2)
        #expect(status != 0)
        let lines = err.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(lines.count == 1, "\(err)")
        #expect(lines.first?.contains("--steps") == true, "\(err)")
    }

    @Test func resumesWithAnotherRankCount() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let one = setup.dir.appendingPathComponent("one")
        #expect(try Self.run(runArgs(setup, "grpo-guard", steps: 4, out: one)).0 == 0)
        for (first, then) in [(2, 1), (1, 2)] {
            let mixed = setup.dir.appendingPathComponent("mixed\(first)\(then)")
            #expect(try Self.run(runArgs(setup, "grpo-guard", steps: 2, out: mixed), ranks: first == 1 ? nil : first).0 == 0)
            #expect(try Self.run(["finetune", "--resume", mixed.path, "--steps", "4", "--threads", "1"], ranks: then == 1 ? nil : then).0 == 0)
            Self.same(try Self.pairs(one.appendingPathComponent("metrics.jsonl"), mixed.appendingPathComponent("metrics.jsonl")))
        }
    }

    /// A rank killed mid-run takes the job down (a non-zero exit, mpirun's message); the last
    /// checkpoint is intact and the run resumes to the uninterrupted run's metrics.
    @Test func aDeadRankEndsTheJobAndTheCheckpointSurvives() throws {
        let setup = try TinySetup()
        defer { setup.cleanUp() }
        let one = setup.dir.appendingPathComponent("one"), killed = setup.dir.appendingPathComponent("killed")
        #expect(try Self.run(runArgs(setup, "grpo", steps: 6, out: one)).0 == 0)
        let args = runArgs(setup, "grpo", steps: 6, out: killed)
        let (status, err) = try Self.run(args, ranks: 2, killRank1When: killed.appendingPathComponent("checkpoints/state.safetensors"))
        #expect(status != 0)
        #expect(err.contains("mpirun") || err.contains("MPI"), "\(err)")
        let state = try SafeTensorsFile(contentsOf: killed.appendingPathComponent("checkpoints/state.safetensors"))
        #expect(Int(state.metadata["iteration"] ?? "") ?? 0 >= 1)
        #expect(try Self.run(["finetune", "--resume", killed.path, "--threads", "1"], ranks: 2).0 == 0)
        Self.same(try Self.pairs(one.appendingPathComponent("metrics.jsonl"), killed.appendingPathComponent("metrics.jsonl")))
    }

    /// Pretraining with its batch split over 2 ranks logs the losses of the 1-process run.
    @Test func pretrainingOverTwoRanks() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ft-mpipt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func args(_ name: String) -> [String] {
            ["pretrain", "--config", "tiny", "--steps", "12", "--batch", "6", "--warmup", "2", "--seed", "3", "--log-every", "3",
             "--checkpoint-every", "6", "--threads", "1", "--out", dir.appendingPathComponent(name).path]
        }
        #expect(try Self.run(args("one.safetensors")).0 == 0)
        let (s, e) = try Self.run(args("two.safetensors"), ranks: 2)
        #expect(s == 0, "\(e)")
        func losses(_ name: String) throws -> [Double] {
            try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["loss"] as! Double
            }
        }
        let a = try losses("one.pretrain.jsonl"), b = try losses("two.pretrain.jsonl")
        #expect(a.count == 4 && a.count == b.count)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-5 * abs(x), "\(x) vs \(y)") }
        let wa = try Checkpoint.load(dir.appendingPathComponent("one.safetensors")).params.array
        let wb = try Checkpoint.load(dir.appendingPathComponent("two.safetensors")).params.array
        #expect(zip(wa, wb).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
