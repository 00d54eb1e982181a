import ArgumentParser
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the hot workloads (release build): one line per workload with median seconds, GFLOP/s and its share of the GEMM's ceiling.")
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "Timed repetitions per workload (after one warm-up).") var repeats = 5
    @Option(help: "Comma-separated workloads (default: all): sgemm, mlp, pretrain_step, euler_sample, euler_sample_cfg, grpo, acflow_iteration, pretrain_step_s32c, euler_sample_s32c. Each runs in every precision the CPU has (fp32; bf16 with AVX512-BF16, its names ending in _bf16) unless --precision names one; each line gives its share of the GEMM ceiling (gemm_ceiling: the model's four linear-layer shapes, in that precision).")
    var only: String?
    @Option(help: "Also time the GRPO iteration spread over 1 and N processes (mpirun -np 1 and -np N, 1 thread each, this machine), beside this process's.")
    var mpi: Int?
    @OptionGroup var threads: ThreadOptions

    /// One workload's line: median seconds, GFLOP/s and, given the GEMM's ceiling in this
    /// precision, the share of it the workload reaches.
    func emit(_ name: String, _ seconds: Double, _ flops: Double, ceiling: Double? = nil, extra: [(String, JSONValue)] = []) {
        let gflops = flops / seconds / 1e9
        let compute = Compute.current
        var extra = extra
        if let ceiling { extra.insert(("ceiling_share", .double((gflops / ceiling * 100).rounded() / 100)), at: 0) }
        if json {
            print(JSONValue.object([("workload", .string(name)), ("seconds", .double(seconds)), ("gflops", .double(gflops)),
                                    ("threads", .int(compute.workers)), ("gemm", .string(compute.gemmName)),
                                    ("precision", .string(compute.precision.rawValue)), ("blas_core", .string(BLASThreads.coreName))] + extra).text)
        } else {
            print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%9.4f s  %7.1f GFLOP/s", seconds, gflops) + extra.map { "  \($0.0)=\($0.1.text)" }.joined())
        }
        fflush(stdout)
    }

    func median(_ body: () throws -> Void) rethrows -> Double {
        try body()    // warm-up
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.sorted()[times.count / 2]
    }

    func run() throws { try threads.compute().run { try execute() } }

    static let workloads = ["sgemm", "mlp", "pretrain_step", "euler_sample", "euler_sample_cfg", "grpo", "acflow_iteration",
                            "pretrain_step_s32c", "euler_sample_s32c"]

    func execute() throws {
        guard repeats > 0 else { throw CLIError("--repeats must be positive") }
        let world = try World.start()       // under mpirun: the GRPO workloads over every rank, rank 0 prints
        if let mpi { guard mpi >= 1 else { throw CLIError("--mpi must be at least 1 (processes)") } }
        if world.isDistributed {
            guard only == "grpo" || only == "grpo_iteration" else { throw CLIError("under mpirun, bench times only the GRPO iteration: give --only grpo") }
            guard mpi == nil else { throw CLIError("--mpi starts mpirun itself: run it without mpirun") }
        }
        let wanted = only.map { Set($0.split(separator: ",").map(String.init)) }
        if let unknown = wanted?.subtracting(Self.workloads).sorted(), !unknown.isEmpty {
            throw CLIError("--only: unknown workload(s) \(unknown.joined(separator: ", ")); known: \(Self.workloads.joined(separator: ", "))")
        }
        // every precision the kernels run, unless --precision names one
        let precisions = threads.precision.map { [$0] } ?? Precision.allCases.filter { Compute.current.kernels.runs($0) }
        if !json && world.isRoot {
            print("GEMM: \(Compute.current.gemmName) (OpenBLAS kernels: \(BLASThreads.coreName)), \(Compute.current.workers) thread(s); precisions: \(precisions.map(\.rawValue).joined(separator: ", "))")
        }
        let cfg = ModelConfig.s32(vocabSize: Tokenizer.vocabularySize)
        var rng = RNG(seed: 1)
        // Half a second of GEMMs first, so that the first workload does not pay for waking the
        // worker threads and raising the clock.
        do {
            let a = rng.normals(512 * 512)
            var c = [Float](repeating: 0, count: 512 * 512)
            let t0 = DispatchTime.now().uptimeNanoseconds
            while DispatchTime.now().uptimeNanoseconds - t0 < 500_000_000 {
                sgemm(m: 512, n: 512, k: 512, a: a, lda: 512, b: a, ldb: 512, c: &c, ldc: 512)
            }
        }
        for precision in precisions {
            let done = try Compute.current.with(precision).run {
                try timeWorkloads(cfg, suffix: precision == .fp32 ? "" : "_" + precision.rawValue, world: world, want: { wanted?.contains($0) ?? true })
            }
            if !done { return }
        }
    }

    /// The linear layers of `cfg` as the forward pass runs them (rows = 32 images x tokens,
    /// weights (out, in) transposed): each shape's seconds, and the ceiling, their total GFLOP/s.
    func gemmCeiling(_ cfg: ModelConfig, rng: inout RNG) -> (shapes: [(m: Int, k: Int, n: Int, seconds: Double)], seconds: Double, flops: Double) {
        let rows = 32 * cfg.tokens, D = cfg.width, H = cfg.hidden
        var shapes: [(m: Int, k: Int, n: Int, seconds: Double)] = []
        for (m, k, n) in [(rows, D, 3 * D), (rows, D, D), (rows, D, H), (rows, H, D)] {
            let a = rng.normals(m * k), b = rng.normals(k * n)
            var c = [Float](repeating: 0, count: m * n)
            let t = median { for _ in 0..<10 { sgemm(transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n) } } / 10
            shapes.append((m, k, n, t))
        }
        return (shapes, shapes.reduce(0) { $0 + $1.seconds }, shapes.reduce(0) { $0 + 2 * Double($1.m * $1.k * $1.n) })
    }

    /// Every wanted workload in the bound precision, names ending in `suffix`; false when this
    /// rank has nothing more to print (a worker rank under mpirun).
    func timeWorkloads(_ cfg: ModelConfig, suffix: String, world: World, want: (String) -> Bool) throws -> Bool {
        var rng = RNG(seed: 1)
        let model = try DiT(config: cfg, seed: 1)
        for i in 0..<model.params.count { model.params[i] += rng.normal() * 0.02 }   // non-zero adaLN/final layers
        let ceiling = gemmCeiling(cfg, rng: &rng)
        if world.isRoot { emit("gemm_ceiling" + suffix, ceiling.seconds, ceiling.flops) }
        func out(_ name: String, _ seconds: Double, _ flops: Double, _ extra: [(String, JSONValue)]) {
            emit(name + suffix, seconds, flops, ceiling: ceiling.flops / ceiling.seconds / 1e9, extra: extra)
        }
        if want("sgemm") {
            // the model's shapes (the ceiling's), and 1024^3: the GEMM in use, and OpenBLAS alone
            var openblas = Compute.current
            openblas.kernels = .openblas      // OpenBLAS's products are fp32 whatever the precision
            for s in ceiling.shapes + [(m: 1024, k: 1024, n: 1024, seconds: 0)] {
                let a = rng.normals(s.m * s.k), b = rng.normals(s.k * s.n)
                var c = [Float](repeating: 0, count: s.m * s.n)
                func time() -> Double {
                    median { for _ in 0..<10 { sgemm(transB: true, m: s.m, n: s.n, k: s.k, a: a, lda: s.k, b: b, ldb: s.k, c: &c, ldc: s.n) } } / 10
                }
                let flops = 2 * Double(s.m * s.n * s.k)
                let blas = openblas.run { time() }
                out("sgemm_\(s.m)x\(s.k)x\(s.n)", s.seconds > 0 ? s.seconds : time(), flops,
                    [("openblas_gflops", .double((flops / blas / 1e9 * 10).rounded() / 10))])
            }
        }
        if want("mlp") { try timeMLP(rng: &rng, out) }
        // The s32 network (the PyTorch peer's), and s32c (s32 with the convolutional output head)
        // for the two workloads where the head's cost shows.
        let conv = try DiT(config: .s32c(vocabSize: cfg.vocabSize), seed: 1)
        for i in 0..<conv.params.count { conv.params[i] += rng.normal() * 0.02 }
        for (netSuffix, net) in [("", model), ("_s32c", conv)] {
            try timeNetwork(net, suffix: netSuffix, rng: &rng, want: want, out)
        }
        if world.isDistributed && !want("grpo") { return false }
        if want("grpo") || want("acflow_iteration") { return try timeRL(model, world: world, want: want, out) }
        return true
    }

    /// A workload's line (name, seconds, FLOPs, extra fields) in the precision being timed.
    typealias Emit = (String, Double, Double, [(String, JSONValue)]) -> Void

    /// 2-layer MLP of width 512 on 2048 rows: forward + backward through the kernels, against the
    /// sum of its six GEMMs alone.
    func timeMLP(rng: inout RNG, _ out: Emit) throws {
        let N = 2048, D = 512
        let x = rng.normals(N * D), w1 = rng.normals(D * D, scale: 0.04), w2 = rng.normals(D * D, scale: 0.04)
        let b1 = [Float](repeating: 0, count: D), b2 = b1
        var h = [Float](repeating: 0, count: N * D), g = h, y = h, dy = rng.normals(N * D), dg = h, dh = h, dx = h
        var dw1 = [Float](repeating: 0, count: D * D), dw2 = dw1, db1 = b1, db2 = b1
        let full = median {
            linearForward(out: &h, inp: x, weight: w1, bias: b1, n: N, inFeatures: D, outFeatures: D)
            geluForward(out: &g, inp: h, count: N * D)
            linearForward(out: &y, inp: g, weight: w2, bias: b2, n: N, inFeatures: D, outFeatures: D)
            linearBackward(dinp: &dg, dweight: &dw2, dbias: &db2, dout: dy, inp: g, weight: w2, n: N, inFeatures: D, outFeatures: D)
            geluBackward(dinp: &dh, dout: dg, inp: h, count: N * D)
            linearBackward(dinp: &dx, dweight: &dw1, dbias: &db1, dout: dh, inp: x, weight: w1, n: N, inFeatures: D, outFeatures: D)
        }
        let gemms = median {
            for _ in 0..<2 { sgemm(transB: true, m: N, n: D, k: D, a: x, lda: D, b: w1, ldb: D, c: &h, ldc: D) }
            for _ in 0..<2 { sgemm(m: N, n: D, k: D, a: dy, lda: D, b: w2, ldb: D, c: &dg, ldc: D) }
            for _ in 0..<2 { sgemm(transA: true, m: D, n: D, k: N, a: dy, lda: D, b: g, ldb: D, beta: 1, c: &dw2, ldc: D) }
        }
        dy[0] += y[0] * 0 + dx[0] * 0   // keep the results alive
        out("mlp2_512_fwd_bwd", full, 6 * 2 * Double(N * D * D), [("gemm_only_seconds", .double(gemms))])
    }

    /// A pretraining step (batch 64) and Euler sampling (32 images x 20 steps, without and with
    /// guidance) of `net`.
    func timeNetwork(_ net: DiT, suffix: String, rng: inout RNG, want: (String) -> Bool, _ out: Emit) throws {
        let Fn = net.config.flopsPerImage, pixels = net.config.pixelsPerImage
        if want("pretrain_step" + suffix) {
            let trainer = try FlowMatchingTrainer(model: net, batch: 64)
            let tokens = try (0..<64).flatMap { _ in try Tokenizer.encode("a large red circle at the top left on a white background") }
            let batch = FlowMatchingBatch(x0: rng.normals(64 * pixels, scale: 0.5), tokens: tokens)
            var opt = AdamW(count: net.parameterCount, lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1, decayMask: net.layout.decayMask)
            var r = RNG(seed: 2)
            let t = median {
                net.grads.zero()
                trainer.step(batch: batch, rng: &r)
                opt.update(params: net.params.buffer, grads: net.grads.buffer)
            }
            out("pretrain_step" + suffix, t, 3 * 64 * Fn, [])
        }
        for (name, w) in [("euler_sample", Float(1)), ("euler_sample_cfg", Float(4))] where want(name + suffix) {
            let ws = try net.makeWorkspace(batch: w == 1 ? 32 : 64, training: false)
            let tokens = try (0..<32).flatMap { _ in try Tokenizer.encode("three green circles on a gray background") }
            let noise = rng.normals(32 * pixels)
            let t = median { var x = noise; EulerSampler(steps: 20, cfgScale: w).sample(model: net, ws: ws, x: &x, tokens: tokens) }
            out(name + suffix, t, 32 * 20 * Fn * (w == 1 ? 1 : 2), [])
        }
    }

    /// The GRPO iteration (rollout, training pass, whole) and the AC-Flow iteration of `model`
    /// through the Finetuner; false on a worker rank under mpirun.
    func timeRL(_ model: DiT, world: World, want: (String) -> Bool, _ out: Emit) throws -> Bool {
        let F = model.config.flopsPerImage
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flowtune-bench-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Checkpoint.save(model, to: dir.appendingPathComponent("model.safetensors"))
        let prompts = dir.appendingPathComponent("prompts.txt")
        try writeAtomically("a red circle on a blue background\nthree green squares on a black background\na yellow triangle above a pink circle on a gray background\na large white square at the center on a purple background\n", to: prompts)
        var c = FinetuneConfig()
        c.model = dir.appendingPathComponent("model.safetensors").path; c.prompts = prompts.path; c.evalPrompts = prompts.path
        c.reward = "brightness"; c.steps = 1_000_000; c.evalEvery = 0; c.checkpointEvery = 1_000_000
        c.sde = SDEConfig(steps: 10, noiseLevel: 0.7, stochasticLastStep: true)   // the peer trains all 10 steps
        c.microBatches = 1
        let precision = Compute.current.precision
        c.precision = precision
        if want("grpo") {
            c.algo = .grpo
            let run = try Finetuner(config: c, runDir: dir.appendingPathComponent("grpo"))
            var t = try median { try run.step() }
            t = world.max(t)
            let extra: [(String, JSONValue)] = world.isDistributed ? [("processes", .int(world.size))] : []
            guard world.isRoot else { return false }
            let lines = try RunMetrics(url: run.metricsURL).lines.suffix(repeats)
            func med(_ k: KeyPath<MetricsRecord, Double?>) -> Double { lines.compactMap { $0[keyPath: k] }.sorted()[repeats / 2] }
            out("grpo_rollout", med(\.rolloutSeconds), 320 * F, extra)
            out("grpo_train", med(\.trainSeconds), 3 * 320 * F, extra)
            out("grpo_iteration", t, 4 * 320 * F, extra)
            if let mpi, precision == .fp32 {
                for ranks in Set([1, mpi]).sorted() {
                    let seconds = try timeUnderMPI(ranks: ranks)
                    out("grpo_iteration_mpi\(ranks)", seconds, 4 * 320 * F, [("processes", .int(ranks)), ("threads_per_process", .int(1))])
                }
            }
        }
        if want("acflow_iteration") {
            c.algo = .acflow
            let run = try Finetuner(config: c, runDir: dir.appendingPathComponent("acflow"))
            let t = try median { try run.step() }
            // the rollout (320 network evaluations), then per actor step a forward and backward
            // (3 evaluations' worth) and the reference's forward on a mini-batch; the critic not counted
            let a = c.acflow
            out("acflow_iteration", t, Double(320 + a.actorSteps * 4 * (a.actorBatch ?? c.batchSize)) * F, [])
        }
        return true
    }

    /// The GRPO iteration's median seconds in `mpirun -np ranks` of this binary (1 thread each),
    /// from the child's JSON line.
    func timeUnderMPI(ranks: Int) throws -> Double {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        p.arguments = ["mpirun", "--oversubscribe", "-np", String(ranks)] + (getuid() == 0 ? ["--allow-run-as-root"] : [])
            + [me, "bench", "--only", "grpo", "--threads", "1", "--repeats", String(repeats), "--json"]
        let out = Pipe()
        p.standardOutput = out
        do { try p.run() } catch { throw CLIError("--mpi: cannot start mpirun (\(error)); install OpenMPI (scripts/setup.sh does)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CLIError("--mpi: mpirun -np \(ranks) exited with status \(p.terminationStatus)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        for line in lines {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["workload"] as? String == "grpo_iteration", let s = o["seconds"] as? Double else { continue }
            return s
        }
        throw CLIError("--mpi: mpirun -np \(ranks) printed no grpo_iteration line")
    }
}
