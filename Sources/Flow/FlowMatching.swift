import Tensor
import Model

/// Rectified flow (SD3 convention): x_t = (1 - t) x0 + t eps, target v = eps - x0,
/// t ~ logit-normal(0, 1). Returns the mean squared error and accumulates its gradient.
public struct FlowMatchingBatch {
    public var x0: [Float]          // (B, S, S, C) data in [-1, 1]
    public var tokens: [Int32]      // (B, L)
    /// The prompts a guidance-distillation teacher reads, when they are not `tokens` (caption
    /// noise: the prompts the images were drawn for).
    public var teacherTokens: [Int32]?
    public init(x0: [Float], tokens: [Int32], teacherTokens: [Int32]? = nil) {
        self.x0 = x0; self.tokens = tokens; self.teacherTokens = teacherTokens
    }
}

/// logit-normal(mean, std): the sigmoid of a normal. (0, 1) is SD3's default; a negative mean
/// puts more of the training on low noise (EDM's log-normal noise levels are logit-normal(-1.2, 1.2)
/// in this parametrisation, since t / (1 - t) = sigma).
@inline(__always)
public func logitNormal(_ rng: inout RNG, mean: Float = 0, std: Float = 1) -> Float {
    1 / (1 + fastExp(-(mean + std * rng.normal())))
}

/// The interpolant x_t = (1 - t) x0 + t eps and the regression target v = eps - x0 of one image,
/// with eps ~ N(0, I) drawn from `rng` (n values, in order; also written to `eps` if given) by
/// `kernels` (see `RNG.fillNormal`).
@inline(__always)
public func flowMatchingPair(x0: UnsafePointer<Float>, t: Float, n: Int, rng: inout RNG, xt: UnsafeMutablePointer<Float>,
                             target: UnsafeMutablePointer<Float>, eps: UnsafeMutablePointer<Float>? = nil,
                             kernels: KernelPath = Compute.current.kernels) {
    func fill(_ e: UnsafeMutablePointer<Float>) {
        rng.fillNormal(UnsafeMutableBufferPointer(start: e, count: n), kernels: kernels)
        for i in 0..<n {
            let x = x0[i]
            xt[i] = (1 - t) * x + t * e[i]
            target[i] = e[i] - x
        }
    }
    if let eps { fill(eps) } else { withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { fill($0.baseAddress!) } }
}

/// Guidance distillation: a frozen teacher network whose classifier-free-guided velocity
/// v_null + w (v_prompt - v_null) at (x_t, t, prompt) replaces the data target eps - x0, so the
/// student learns to draw without guidance what the teacher draws with it (Meng et al. 2023,
/// "On distillation of guided diffusion models"). For a NULL prompt the target is the teacher's
/// unguided velocity, so the student's NULL branch (and guidance on top of it) stays meaningful.
public final class GuidedTeacher {
    public let model: DiT
    public let scale: Float
    let ws: Workspace
    var xin: [Float], tt: [Float], tokens: [Int32]

    /// `batch`: the most images one call sees (the teacher evaluates twice as many).
    public init(model: DiT, scale: Float, batch: Int) throws {
        self.model = model; self.scale = scale
        ws = try model.makeWorkspace(batch: 2 * batch, training: false)
        xin = [Float](repeating: 0, count: 2 * batch * model.config.pixelsPerImage)
        tt = [Float](repeating: 0, count: 2 * batch)
        tokens = [Int32](repeating: 0, count: 2 * batch * model.config.textLength)
    }

    /// The guided velocity at the states `xt` (B, n), times `t` (B) and prompts `tokens` (B, L)
    /// into `target` (B, n): one teacher pass over the prompts and the NULL prompt together.
    public func target(xt: UnsafePointer<Float>, t: UnsafePointer<Float>, tokens prompts: UnsafePointer<Int32>, batch B: Int,
                       into target: UnsafeMutablePointer<Float>) {
        let n = B * model.config.pixelsPerImage, L = model.config.textLength, null = model.config.nullTokens
        precondition(2 * n <= xin.count, "GuidedTeacher: batch \(B) exceeds its workspace")
        for i in 0..<n { xin[i] = xt[i]; xin[n + i] = xt[i] }
        for b in 0..<B {
            tt[b] = t[b]; tt[B + b] = t[b]
            for j in 0..<L { tokens[b * L + j] = prompts[b * L + j]; tokens[(B + b) * L + j] = null[j] }
        }
        let v = model.forward(ws, x: xin, t: tt, tokens: tokens, batch: 2 * B)
        guidedVelocity(target, conditional: v, null: v + n, scale: scale, count: n)
    }
}

/// One flow-matching loss evaluation on `batch` (forward + backward into model.grads).
/// `nullProbability` replaces prompts by the NULL prompt for classifier-free guidance;
/// t is drawn logit-normal(tMean, tStd).
/// When `backward` is false only the loss is computed. With `rows`, only those images of the
/// batch are trained (a process's share of a data-parallel batch): the random draws of the
/// others are still made, so the stream stays the same, and the loss and gradient are scaled to
/// their share of the whole batch's mean (the processes' sums are the batch's). With a
/// `teacher` the target is its guided velocity at the same (x_t, t, prompt) instead of eps - x0.
@discardableResult
public func flowMatchingStep(model: DiT, ws: Workspace, batch: FlowMatchingBatch, rng: inout RNG,
                             nullProbability: Float = 0.1, tMean: Float = 0, tStd: Float = 1, backward: Bool = true,
                             rows: Range<Int>? = nil, teacher: GuidedTeacher? = nil) -> Float {
    let c = model.config, n = c.pixelsPerImage, L = c.textLength
    let B = batch.x0.count / n, mine = rows ?? 0..<B, R = mine.count
    var t = [Float](repeating: 0, count: R)
    var xt = [Float](repeating: 0, count: R * n)
    var target = [Float](repeating: 0, count: R * n)
    var tokens = [Int32](repeating: 0, count: R * L)
    // the teacher's prompts, where they differ from the student's (caption noise)
    let drawn = teacher == nil ? nil : batch.teacherTokens
    var teacherTokens = drawn == nil ? [] : [Int32](repeating: 0, count: R * L)
    let null = c.nullTokens
    // the draws in the stream's order (each image: t, the NULL coin, its n noise values); the
    // noise itself, most of the work (a logarithm and a cosine per value), is drawn afterwards
    // on every worker from each image's own place in the stream: the same values, in parallel
    var noiseFrom = [(row: Int, image: Int, rng: RNG)]()
    for b in 0..<B {
        let tb = logitNormal(&rng, mean: tMean, std: tStd)
        let isNull = rng.uniform() < nullProbability
        guard mine.contains(b) else { rng.skipNormals(n); continue }      // another process's image
        let r = b - mine.lowerBound
        t[r] = tb
        for j in 0..<L { tokens[r * L + j] = isNull ? null[j] : batch.tokens[b * L + j] }
        if let drawn { for j in 0..<L { teacherTokens[r * L + j] = isNull ? null[j] : drawn[b * L + j] } }
        noiseFrom.append((r, b, rng))
        rng.skipNormals(n)
    }
    batch.x0.withUnsafeBufferPointer { x0 in xt.withUnsafeMutableBufferPointer { xp in target.withUnsafeMutableBufferPointer { tp in
        let (x0, xp, tp) = (x0.baseAddress!, xp.baseAddress!, tp.baseAddress!)
        let kernels = Compute.current.kernels
        parallelFor(noiseFrom.count) { images in
            for (r, b, start) in noiseFrom[images] {
                var stream = start
                flowMatchingPair(x0: x0 + b * n, t: t[r], n: n, rng: &stream, xt: xp + r * n, target: tp + r * n, kernels: kernels)
            }
        }
    } } }
    if let teacher {
        (teacherTokens.isEmpty ? tokens : teacherTokens).withUnsafeBufferPointer { kp in xt.withUnsafeBufferPointer { xp in t.withUnsafeBufferPointer { tp in
            target.withUnsafeMutableBufferPointer { teacher.target(xt: xp.baseAddress!, t: tp.baseAddress!, tokens: kp.baseAddress!, batch: R, into: $0.baseAddress!) }
        } } }
    }
    let v = xt.withUnsafeBufferPointer { xp in
        t.withUnsafeBufferPointer { tp in
            tokens.withUnsafeBufferPointer { kp in
                model.forward(ws, x: xp.baseAddress!, t: tp.baseAddress!, tokens: kp.baseAddress!, batch: R)
            }
        }
    }
    var dv = [Float](repeating: 0, count: R * n)
    var loss = target.withUnsafeBufferPointer { tp in
        dv.withUnsafeMutableBufferPointer { dp in
            mseForwardBackward(dpred: backward ? dp.baseAddress! : nil, pred: v, target: tp.baseAddress!, count: R * n)
        }
    }
    if R != B {
        let share = Float(R) / Float(B)
        loss *= share
        for i in 0..<(R * n) { dv[i] *= share }
    }
    if backward { dv.withUnsafeBufferPointer { model.backward(ws, dv: $0.baseAddress!, batch: R) } }
    return loss
}

/// Flow-matching steps with the batch split over the worker threads: each worker trains a
/// contiguous block of the images on a replica of the network (the same weights, its own
/// activations and gradients) with the matrix products unsplit, and the replicas' gradients are
/// summed into `model.grads`. The draws are those of one `flowMatchingStep` on the whole batch
/// (each worker makes every draw and keeps its block's), so the loss and the gradient are the
/// whole batch's up to the order of the sums.
///
/// Why: split inside each product, both threads pack the whole of the operand they share (the
/// weight gradients' k = batch x tokens rows of it) and meet at each of a step's many loops;
/// split by images, each packs only its own and they meet a few times a step. A pretraining
/// step at 2 threads is 2-5% faster so (docs/PERFORMANCE.md). One worker, a teacher (guidance
/// distillation: it has one workspace), or fewer than two images a worker: `flowMatchingStep`
/// itself, the products split as usual. At 1 thread nothing changes; at more, a fixed-seed
/// run's weights differ from the unsplit step's by the order of the gradient's sums.
public final class FlowMatchingTrainer {
    public let model: DiT
    let ws: Workspace
    /// Replicas 1... (replica 0 is `model` with `ws`), one for each worker after the first.
    let replicas: [(model: DiT, ws: Workspace)]

    /// `batch`: the most images a step trains (the process's block of the batch), split over
    /// `Compute.current.workers` (the replicas are made here: an allocation that fails is an error).
    public init(model: DiT, batch: Int) throws {
        self.model = model
        ws = try model.makeWorkspace(batch: batch, training: true)
        let W = min(Compute.current.workers, batch / 2), per = (batch + W - 1) / max(W, 1)
        replicas = try (1..<max(W, 1)).map { _ in
            let replica = try DiT(config: model.config, params: model.params)
            return (replica, try replica.makeWorkspace(batch: per, training: true))
        }
    }

    /// `flowMatchingStep` on `rows` of `batch` (nil: all), its gradient added to model.grads.
    @discardableResult
    public func step(batch: FlowMatchingBatch, rng: inout RNG, nullProbability: Float = 0.1, tMean: Float = 0, tStd: Float = 1,
                     rows: Range<Int>? = nil, teacher: GuidedTeacher? = nil) -> Float {
        let compute = Compute.current
        let mine = rows ?? 0..<(batch.x0.count / model.config.pixelsPerImage)
        let W = min(compute.workers, mine.count / 2, replicas.count + 1)
        let per = (mine.count + W - 1) / max(W, 1)
        guard W > 1, teacher == nil, per <= replicas[0].ws.batch else {
            return flowMatchingStep(model: model, ws: ws, batch: batch, rng: &rng, nullProbability: nullProbability,
                                    tMean: tMean, tStd: tStd, rows: rows, teacher: teacher)
        }
        let blocks = (0..<W).map { i in (mine.lowerBound + min(i * per, mine.count))..<(mine.lowerBound + min((i + 1) * per, mine.count)) }
        let nets = [(model, ws)] + replicas.prefix(W - 1)
        var serial = compute
        serial.workers = 1
        // every worker makes the whole batch's draws from the same start; the first's end state is the step's
        var losses = [Float](repeating: 0, count: W), end = rng
        let start = rng
        losses.withUnsafeMutableBufferPointer { lp in withUnsafeMutablePointer(to: &end) { ep in
            parallelForEach(W) { i in
                serial.run {
                    if i > 0 { nets[i].0.grads.zero() }          // a replica's gradient is its own step's alone
                    var r = start
                    lp[i] = flowMatchingStep(model: nets[i].0, ws: nets[i].1, batch: batch, rng: &r, nullProbability: nullProbability,
                                             tMean: tMean, tStd: tStd, rows: blocks[i])
                    if i == 0 { ep.pointee = r }
                }
            }
        } }
        rng = end
        // the replicas' gradients into the model's, spread over the workers
        let total = model.grads.pointer, count = model.parameterCount
        let others = nets.dropFirst().map { $0.0.grads.pointer }
        parallelFor(count, minChunk: 1 << 14) { range in
            for g in others { for j in range { total[j] += g[j] } }
        }
        return losses.reduce(0, +)
    }
}
