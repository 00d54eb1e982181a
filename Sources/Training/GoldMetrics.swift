import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Flow
import Shapes
import Rewards

/// What the Frechet distance compares the generated images against.
public enum GoldReference {
    /// Renderings of the eval prompts (the shapes world), and a second rendering for the floor.
    case rendered
    /// The held-out images of a folder; the floor compares them with as many of its training
    /// images as the evaluation generates (real against real at the same sample sizes).
    case folder(FolderData)
}

/// Held-out evaluation at logged steps: eval prompts x fixed seeds sampled with the Euler ODE
/// sampler from the current weights (the same noise every time), scored by every scorer of the
/// reward (optimised or not) and by the gold metrics the run does not optimise: shape-eval per
/// task (shapes-world prompts only), a Frechet distance to rendered shapes-world images of the
/// same prompts (or to a folder's held-out images), within-prompt diversity, the mean squared
/// velocity difference to the base model (the W2 proxy) and the exact path KL to it.
public final class GoldMetrics {
    let config: FinetuneConfig
    let reference: DiT
    public let prompts: [Prompt]
    let referenceFeatures: [[Double]]
    /// The Frechet distance between the reference features and a second, independent rendering
    /// of the same prompts: the value that means "no difference" at this sample size.
    public let fdFloor: Double
    /// The same for the 21-value features (`ImageFeatures.compact`).
    public let fd21Floor: Double
    let referenceCompact: [[Double]]
    let noise: [Float]                      // (prompts x seeds, n), fixed for the whole run
    var ws: Workspace?, refWS: Workspace?
    let shapeEval = ShapeEvalScorer()
    /// Each per-image metric's values at step 0 (EvalRecord.se's ids), what every later
    /// evaluation's paired change is measured from: kept from the step-0 evaluation, or, in a
    /// process that resumes a run, measured once on the base model's images (the policy at
    /// step 0 is the base model, and the noise is the run's).
    var start: [String: [Double]]?
    /// Whether `start` is known on rank 0: set on every process, which all draw the base model's
    /// images together when it is not.
    var startKnown = false

    /// Whether the eval prompts are of the shapes world (the checker scores them).
    public let checksShapes: Bool

    public init(config: FinetuneConfig, reference: DiT, evalPrompts: [Prompt], against gold: GoldReference = .rendered) throws {
        self.config = config; self.reference = reference; prompts = evalPrompts
        let S = reference.config.imageSize, n = reference.config.pixelsPerImage
        checksShapes = evalPrompts.allSatisfy { $0.spec != nil }
        let second: [[Double]]
        switch gold {
        case .rendered:
            let specs = try evalPrompts.map { try $0.shapesSpec(for: "the rendered reference of the Frechet distance") }
            (referenceFeatures, second) = Self.renderedReference(specs, perPrompt: config.evalPerPrompt, size: S)
        case .folder(let f):
            guard !f.heldOut.isEmpty, !f.train.isEmpty else { throw FinetuneError("the gold metrics need held-out and training images of the folder") }
            referenceFeatures = f.heldOut.map { ImageFeatures.extract(f.images.image($0), size: S) }
            var rng = RNG(seed: FolderData.floorSeed)
            second = f.floorImages(count: evalPrompts.count * config.evalPerPrompt, rng: &rng).map { ImageFeatures.extract($0, size: S) }
        }
        fdFloor = referenceFeatures.count > 1 ? frechetDistance(referenceFeatures, second) : 0
        referenceCompact = referenceFeatures.map(ImageFeatures.compact)
        fd21Floor = referenceFeatures.count > 1 ? frechetDistance(referenceCompact, second.map(ImageFeatures.compact)) : 0
        noise = (0..<evalPrompts.count).flatMap { i in
            (0..<config.evalPerPrompt).flatMap { j in Generator.noise(seed: config.seed ^ 0xE7A1, prompt: i, image: j, count: n) }
        }
    }

    /// The features of two independent renderings of `perPrompt` images of each prompt: the
    /// Frechet distance's reference (the first) and the rendering its floor compares with it.
    public static func renderedReference(_ specs: [PromptSpec], perPrompt: Int, size S: Int) -> (reference: [[Double]], second: [[Double]]) {
        let renderer = Renderer(size: S)
        func rendered(_ seed: UInt64) -> [[Double]] {
            var feats: [[Double]] = []
            let base = RNG(seed: seed)
            for (i, spec) in specs.enumerated() {
                for j in 0..<perPrompt {
                    var r = base.split(UInt64(i)).split(UInt64(j))
                    feats.append(ImageFeatures.extract(renderer.render(spec, rng: &r), size: S))
                }
            }
            return feats
        }
        return (rendered(0x5EED_DA7A), rendered(0x5EED_DA7B))
    }

    /// Bootstrap resamples behind the Frechet distance's standard error.
    static let fdBootstrapResamples = 30

    /// An evaluation: its numbers and the images they were measured on, with each image's proxy
    /// reward (what the grid shows); `save` writes the grids.
    public struct Evaluation {
        public var record: EvalRecord
        public var images: [[Float]]
        public var proxy: [Float]
        public var title: String
    }

    /// The evaluation of the current weights at `step`, its grid to be saved as `grid` (relative
    /// to the run folder). Spread over a world's processes: each samples a block of the images,
    /// rank 0 gathers them, scores them and returns the evaluation; the others return nil.
    public func evaluate(policy: DiT, reward: CombinedReward, step: Int, grid: String, world: World = .single) throws -> Evaluation? {
        let S = policy.config.imageSize, perPrompt = config.evalPerPrompt, N = prompts.count * perPrompt
        let promptsPerImage = prompts.flatMap { Array(repeating: $0, count: perPrompt) }
        // a resumed run's start: the base model's images, drawn on every process
        let startDrawn = !startKnown && step > 0 ? try draw(reference, promptsPerImage, world: world, distances: false) : nil
        startKnown = true
        let drawn = try draw(policy, promptsPerImage, world: world)
        guard world.isRoot else { return nil }
        if let startDrawn {
            let base = try perImageScores(ImageBatch(pixels: startDrawn.pixels, size: S), promptsPerImage, reward: reward)
            start = base.values
        }
        let batch = ImageBatch(pixels: drawn.pixels, size: S)
        let images = batch.images
        let scored = try perImageScores(batch, promptsPerImage, reward: reward)
        let (total, byScorer, shape) = (scored.total, scored.byScorer, scored.shape)
        let feats = images.map { ImageFeatures.extract($0, size: S) }, compact = feats.map(ImageFeatures.compact)
        let diversityPerPrompt = diversity(feats)
        let mean: ([Float]) -> Double = { Double($0.reduce(0, +)) / Double(max($0.count, 1)) }
        let taskMean: (Task) -> Double? = { t in scored.values["shape_eval_by_task/" + t.rawValue].map { $0.reduce(0, +) / Double($0.count) } }
        var record = EvalRecord(proxy: mean(total), scores: Dictionary(uniqueKeysWithValues: reward.names.map { ($0, mean(byScorer[$0]!)) }),
                                shapeEval: checksShapes ? mean(shape) : nil,
                                shapeEvalByTask: checksShapes ? Dictionary(uniqueKeysWithValues: Task.allCases.map { ($0.rawValue, taskMean($0)) }) : [:],
                                fd: frechetDistance(feats, referenceFeatures),
                                diversity: diversityPerPrompt.isEmpty ? 0 : diversityPerPrompt.reduce(0, +) / Double(diversityPerPrompt.count),
                                w2: drawn.w2.reduce(0, +) / Double(max(N, 1)), grid: grid)
        // standard errors: the spread over images (prompts, for diversity) over sqrt(n); the
        // Frechet distance's: the spread of its value over bootstrap resamples of the images
        var se: [String: Double] = ["diversity": standardError(diversityPerPrompt), "w2": standardError(drawn.w2),
                                    "kl_base": standardError(drawn.kl)]
        for (id, values) in scored.values { se[id] = standardError(values) }
        // the change since step 0, paired over the same images
        if step == 0 && start == nil { start = scored.values }
        if step > 0, let start {
            for (id, now) in scored.values { if let then = start[id] { record.changeSE[id] = standardError(zip(now, then).map { $0 - $1 }) } }
        }
        (se["fd"], se["fd21"]) = fdBootstrap(feats, compact)
        record.fd21 = frechetDistance(compact, referenceCompact)
        record.se = se
        for (id, passed) in scored.values where id.hasPrefix(GoldMetric.requirementPrefix) {
            record.shapeEvalByRequirement[String(id.dropFirst(GoldMetric.requirementPrefix.count))] = passed.reduce(0, +) / Double(passed.count)
        }
        record.fdFloor = fdFloor
        record.fd21Floor = fd21Floor
        record.klBase = drawn.kl.reduce(0, +) / Double(max(N, 1))
        return Evaluation(record: record, images: images, proxy: total, title: "step \(step): proxy \(reward.spec)")
    }

    /// The reward's and the checker's scores of the eval images: the total, each scorer's, the
    /// checker's (empty where the prompts are not of the shapes world), and every per-image
    /// metric by its id (proxy, scores/NAME, shape_eval, shape_eval_by_task/TASK, and
    /// shape_eval_by_requirement/TASK/KIND: `requirementPassRates`, the same images in the same
    /// order at every evaluation, since which requirements an image has follows from its prompt).
    func perImageScores(_ batch: ImageBatch, _ promptsPerImage: [Prompt], reward: CombinedReward) throws
        -> (total: [Float], byScorer: [String: [Float]], shape: [Float], values: [String: [Double]]) {
        let (total, byScorer) = try reward.evaluate(batch, prompts: promptsPerImage)
        let shape = checksShapes ? try byScorer["shape-eval"] ?? shapeEval.score(batch, prompts: promptsPerImage) : []
        let doubles: ([Float]) -> [Double] = { $0.map(Double.init) }
        var values: [String: [Double]] = ["proxy": doubles(total)]
        for name in reward.names { values["scores/" + name] = doubles(byScorer[name]!) }
        if checksShapes {
            values["shape_eval"] = doubles(shape)
            for (i, s) in shape.enumerated() { values["shape_eval_by_task/" + promptsPerImage[i].spec!.task.rawValue, default: []].append(Double(s)) }
            for (key, rates) in Self.requirementPassRates(batch.images, specs: promptsPerImage.map { $0.spec! }, size: batch.size) {
                values[GoldMetric.requirement(key).id] = rates
            }
        }
        return (total, byScorer, shape, values)
    }

    /// The strict checker's verdicts on `images` (`specs[i]` the prompt of `images[i]`) by
    /// "TASK/KIND" (e.g. "counting/count"): one value per image that has requirements of the kind,
    /// its pass rate over them, in the order of the images. The image is the unit (of the
    /// standard errors, of the paired changes): the two objects of a two-object or position image
    /// are one draw of their rate, not two independent ones. A task's images all have as many
    /// items of a kind, so the mean of a key's values is the pass rate over all its items.
    public static func requirementPassRates(_ images: [[Float]], specs: [PromptSpec], size: Int) -> [String: [Double]] {
        let strict = Checker(size: size, strict: true)
        var rates: [String: [Double]] = [:]
        for (image, spec) in zip(images, specs) {
            var passed: [String: (yes: Int, items: Int)] = [:]
            for q in strict.check(image, spec: spec).requirements {
                passed[q.kind, default: (0, 0)].yes += q.passed ? 1 : 0
                passed[q.kind, default: (0, 0)].items += 1
            }
            for (kind, p) in passed { rates[spec.task.rawValue + "/" + kind, default: []].append(Double(p.yes) / Double(p.items)) }
        }
        return rates
    }

    /// The eval images of `policy` from the fixed noise (Euler, as the grids are drawn), each
    /// image's mean squared velocity difference to the base model along the way (w2), and the
    /// exact path KL of SDE rollouts of the policy to the base model's; this process's block of
    /// the images, gathered on rank 0 (which alone gets every image). Without `distances`, the
    /// images alone (w2 and the KL left 0).
    func draw(_ policy: DiT, _ promptsPerImage: [Prompt], world: World, distances: Bool = true) throws -> (pixels: [Float], w2: [Double], kl: [Double]) {
        let n = policy.config.pixelsPerImage, N = promptsPerImage.count
        let mine = world.block(of: N), Nl = mine.count
        if ws == nil { ws = try policy.makeWorkspace(batch: max(Nl, 1), training: false); refWS = try reference.makeWorkspace(batch: max(Nl, 1), training: false) }
        let tokens = Array(promptsPerImage[mine]).tokens
        var x = Array(noise[(mine.lowerBound * n)..<(mine.upperBound * n)])
        var w2PerImage = [Double](repeating: 0, count: N), w2Steps = 0
        var tt = [Float](repeating: 0, count: Nl)
        // w2: at each Euler step, the base model's velocity at the same state
        let w2Step: ((Int, Float, [Float], UnsafePointer<Float>) -> Void)? = !distances ? nil : { _, t, xt, v in
            for b in 0..<Nl { tt[b] = t }
            let vr = self.reference.forward(self.refWS!, x: xt, t: tt, tokens: tokens, batch: Nl)
            for b in 0..<Nl {
                var s = 0.0
                for i in (b * n)..<((b + 1) * n) { let d = Double(v[i] - vr[i]); s += d * d }
                w2PerImage[mine.lowerBound + b] += s / Double(n)
            }
            w2Steps += 1
        }
        if Nl > 0 { EulerSampler(steps: config.evalSteps).sample(model: policy, ws: ws!, x: &x, tokens: tokens, observe: w2Step) }
        for b in 0..<N { w2PerImage[b] /= Double(max(w2Steps, 1)) }
        // the exact path KL to the base model, on SDE rollouts of the policy (the run's schedule,
        // every step but the last stochastic) from the same start noise and fixed step noise
        var klPerImage = [Double](repeating: 0, count: N)
        if Nl > 0 && distances {
            let sde = SDESampler(config: SDEConfig(steps: config.sde.steps, noiseLevel: config.sde.noiseLevel, shift: config.sde.shift))
            var rngs = mine.map { RNG(seed: config.seed ^ 0x1C1_BA5E).split(UInt64($0)) }
            let r = sde.rollout(model: policy, workspaces: [ws!], noise: Array(noise[(mine.lowerBound * n)..<(mine.upperBound * n)]),
                                tokens: tokens, rngs: &rngs)
            for (b, kl) in sde.pathKL(r, base: reference, ws: refWS!).enumerated() { klPerImage[mine.lowerBound + b] = kl }
        }
        // every block to rank 0 (the other ranks' entries of w2PerImage are 0: a sum is a gather)
        x = world.gather(x, counts: world.blockCounts(of: N).map { $0 * n })
        world.sum(&w2PerImage)
        world.sum(&klPerImage)
        return (x, w2PerImage, klPerImage)
    }

    /// Diversity: per prompt, the mean feature distance between its images.
    func diversity(_ feats: [[Double]]) -> [Double] {
        let perPrompt = config.evalPerPrompt
        var diversityPerPrompt: [Double] = []
        for p in 0..<prompts.count where perPrompt > 1 {
            var sum = 0.0, pairs = 0
            for a in 0..<perPrompt { for b in (a + 1)..<perPrompt {
                let fa = feats[p * perPrompt + a], fb = feats[p * perPrompt + b]
                sum += zip(fa, fb).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot(); pairs += 1
            } }
            diversityPerPrompt.append(sum / Double(pairs))
        }
        return diversityPerPrompt
    }

    /// Writes an evaluation's grid (one row per prompt, each image labelled with its proxy
    /// reward) at its path in `runDir`, and beside it the bare images (prompts x seeds, unscaled)
    /// and the prompts, for the report's per-prompt strips.
    public func save(_ e: Evaluation, in runDir: URL) throws {
        let images = e.images, total = e.proxy, title = e.title, S = reference.config.imageSize
        let gridURL = runDir.appendingPathComponent(e.record.grid)
        let perPrompt = config.evalPerPrompt
        let rows = prompts.enumerated().map { p, prompt in
            GridRow(caption: prompt.text, images: (0..<perPrompt).map { RGBImage(signedUnit: images[p * perPrompt + $0], width: S, height: S) },
                    labels: (0..<perPrompt).map { String(format: "%.3g", total[p * perPrompt + $0]) })
        }
        try writeAtomically(try composeGrid(rows: rows, scale: 3, title: title).pngData(), to: gridURL)
        let gridsDir = gridURL.deletingLastPathComponent()
        try writeAtomically(try tiled(rows.map(\.images)).pngData(), to: gridsDir.appendingPathComponent("raw/" + gridURL.lastPathComponent))
        try writeAtomically(prompts.map { $0.text + "\n" }.joined(), to: gridsDir.appendingPathComponent("prompts.txt"))
    }

    /// The standard deviations of the Frechet distance (full and 21-feature) over bootstrap
    /// resamples of the images.
    func fdBootstrap(_ feats: [[Double]], _ compact: [[Double]]) -> (Double, Double) {
        var rng = RNG(seed: 0xFD5E)
        var resampled: [Double] = [], resampled21: [Double] = []
        for _ in 0..<Self.fdBootstrapResamples {
            let pick = (0..<feats.count).map { _ in rng.int(feats.count) }
            resampled.append(frechetDistance(pick.map { feats[$0] }, referenceFeatures))
            resampled21.append(frechetDistance(pick.map { compact[$0] }, referenceCompact))
        }
        return (standardDeviation(resampled), standardDeviation(resampled21))
    }
}
