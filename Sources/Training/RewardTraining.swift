import Foundation
import Analysis
import Tensor
import Imaging
import Model
import Flow
import Rewards
import Shapes

/// Everything that decides a learned reward model: its data (what the base model drew, what
/// the gold said) and its training. Written into the model's state and checked on resume.
public struct RewardTrainConfig: Codable, Equatable, Sendable {
    public var preset = "rm-large"                       // network size (RewardModel.presets)
    public var initFrom: String? = nil                   // the pretrained generator (of the size's configuration) it starts from; nil: random weights
    public var base = "models/base-s32c-captions.safetensors"  // the generator whose samples are labelled
    public var prompts = "prompts/train.txt"
    public var gold = "shape-eval"                       // the labelling scorer (a reward spec: its weighted total)
    public var samplesPerPrompt = 8                      // base-model SDE samples per prompt
    public var rendersPerPrompt = 4                      // rendered images per prompt (the first clean, the others of a corrupted prompt)
    public var extraPrompts = 12_000                     // fresh grammar prompts with renderings only (training data)
    public var sampleSteps = 10                          // SDE steps of the base samples (the rollouts' sampler)
    public var heldOutFraction: Float = 0.2              // prompts never trained on, for the agreement
    public var pairs: Int? = nil                         // labelled training pairs (nil: every pair of differing gold)
    public var labelNoise: Float = 0                     // probability a training pair's label is flipped
    public var loss = RewardLoss.bradleyTerry
    public var steps = 6000
    public var batch = 16                                // pairs per step (regression: their images)
    public var lr: Float = 3e-4
    public var warmup = 100
    public var weightDecay: Float = 0.01
    public var seed: UInt64 = 0                          // initialisation, the order of the pairs, their label noise
    public var dataSeed: UInt64 = 0                      // the data: samples, renderings, extra prompts, the held-out split
    public init() {}

    public func validate() throws {
        typealias C = OptionCheck
        _ = try RewardModel.config(preset: preset)
        _ = try RewardSpec(parsing: gold)
        try C.atLeast("--samples-per-prompt", samplesPerPrompt, 0)
        try C.atMost("--samples-per-prompt", samplesPerPrompt, C.maxBatch)
        try C.atLeast("--renders-per-prompt", rendersPerPrompt, 0)
        try C.atMost("--renders-per-prompt", rendersPerPrompt, C.maxBatch)
        guard samplesPerPrompt + rendersPerPrompt >= 2 else {
            throw InvalidOption("--samples-per-prompt + --renders-per-prompt must be at least 2: pairs are of images of one prompt")
        }
        try C.atLeast("--extra-prompts", extraPrompts, 0)
        try C.atMost("--extra-prompts", extraPrompts, 1_000_000)
        try C.atLeast("--sample-steps", sampleSteps, 2)
        try C.atMost("--sample-steps", sampleSteps, C.maxSteps)
        try C.within("--held-out-fraction", heldOutFraction, 0, 1, upperOpen: true)
        guard heldOutFraction > 0 else { throw InvalidOption("--held-out-fraction must be above 0: the agreement is measured on prompts never trained on") }
        if let pairs { try C.positive("--pairs", pairs) }
        try C.within("--label-noise", labelNoise, 0, 0.5)
        if loss == .regression, labelNoise > 0 { throw InvalidOption("--label-noise flips pair labels; --loss regression has none (it regresses on the gold)") }
        try C.positive("--steps", steps)
        try C.positive("--batch", batch)
        try C.atMost("--batch", batch, C.maxBatch / 2)
        try C.positive("--lr", lr)
        try C.nonNegative("--warmup", warmup)
        try C.nonNegative("--weight-decay", weightDecay)
    }

    /// The options that decide the data (a data file made with other ones is not reused).
    public var dataKey: [String: String] {
        ["base": base, "prompts": prompts, "gold": gold, "samples_per_prompt": "\(samplesPerPrompt)",
         "renders_per_prompt": "\(rendersPerPrompt)", "extra_prompts": "\(extraPrompts)", "sample_steps": "\(sampleSteps)", "seed": "\(dataSeed)"]
    }

    public func learningRate(at step: Int) -> Float {
        if step < warmup { return lr * Float(step + 1) / Float(warmup) }
        let p = Float(step - warmup) / Float(max(1, steps - warmup))
        return lr * (0.05 + 0.95 * 0.5 * (1 + cos(Float.pi * min(1, p))))
    }
}

public enum RewardLoss: String, Codable, Sendable, CaseIterable {
    case bradleyTerry = "bradley-terry"
    case regression
}

/// The Bradley-Terry loss of one pair with score difference delta = r_i - r_j and label y
/// (1: i is the better one): -[y log s(delta) + (1 - y) log s(-delta)] = softplus(delta) - y delta,
/// and its derivative in delta, s(delta) - y (= dL/dr_i = -dL/dr_j).
public func bradleyTerry(delta: Float, y: Float) -> (loss: Float, dDelta: Float) {
    let d = Double(delta)
    let softplus = d > 0 ? d + log1p(exp(-d)) : log1p(exp(d))
    let sigmoid = d >= 0 ? 1 / (1 + exp(-d)) : exp(d) / (1 + exp(d))
    return (Float(softplus - Double(y) * d), Float(sigmoid - Double(y)))
}

/// A labelled pair of images of one prompt: y = 1 when image i is the better one.
public struct RewardPair: Equatable, Sendable {
    public var i: Int, j: Int
    public var y: Float
    public init(i: Int, j: Int, y: Float) { self.i = i; self.j = j; self.y = y }
}

/// The labelled images: for every prompt, the base model's samples and the renderings, with the
/// gold's score of each; the held-out prompts are marked.
public struct RewardData {
    public var imageSize: Int
    public var pixels: [Float]          // (N, S, S, 3) in [-1, 1]
    public var prompt: [Int]            // (N) the index of each image's prompt
    public var gold: [Float]            // (N)
    public var heldOut: [Bool]          // per prompt
    public var prompts: [Prompt]
    public var rendered: [Bool]         // (N) a rendering (else a base-model sample)
    public var count: Int { gold.count }
    public init(imageSize: Int, pixels: [Float], prompt: [Int], gold: [Float], heldOut: [Bool], prompts: [Prompt], rendered: [Bool]? = nil) {
        self.imageSize = imageSize; self.pixels = pixels; self.prompt = prompt; self.gold = gold; self.heldOut = heldOut; self.prompts = prompts
        self.rendered = rendered ?? [Bool](repeating: false, count: gold.count)
    }
    public var valuesPerImage: Int { imageSize * imageSize * 3 }

    /// The held-out prompts: a seeded shuffle's first ceil(fraction x count) (at least one, and
    /// at least one prompt is kept for training).
    public static func heldOut(prompts count: Int, fraction: Float, seed: UInt64) -> [Bool] {
        var rng = RNG(seed: seed).split(11)
        var order = Array(0..<count)
        for k in stride(from: count - 1, to: 0, by: -1) { order.swapAt(k, Int(rng.nextUInt64() % UInt64(k + 1))) }
        let n = min(count - 1, max(1, Int((Float(count) * fraction).rounded(.up))))
        var out = [Bool](repeating: false, count: count)
        for k in order.prefix(n) { out[k] = true }
        return out
    }

    /// The file's prompts, then `config.extraPrompts` fresh ones of the grammar (seeded; never
    /// one of the file's or of `excluding`).
    public static func allPrompts(config c: RewardTrainConfig, file: [Prompt], excluding: Set<String>) throws -> [Prompt] {
        let generator = PromptGenerator(excluding: excluding.union(file.map(\.text)))
        var rng = RNG(seed: c.dataSeed).split(15)
        return try file + (0..<c.extraPrompts).map { _ in try Prompt(generator.sample(rng: &rng).text) }
    }

    /// A checksum of the prompts' texts (a data file of other prompts is not reused).
    public static func checksum(of prompts: [Prompt]) -> String {
        SafeTensorsFile.checksum(of: Data(prompts.map(\.text).joined(separator: "\n").utf8))
    }

    /// Draws and labels the data: SDE samples of `base` for each prompt of the file (each image
    /// its own noise stream), and renderings (the first of each prompt clean, the others of the
    /// prompt with one requirement broken: a caption-noise kind that applies to it) for the
    /// file's prompts and for `extra` fresh prompts of the grammar (training only, never one of
    /// `excluding`), every image scored by `gold`.
    public static func make(config c: RewardTrainConfig, base: DiT, prompts file: [Prompt], excluding: Set<String> = [],
                            gold: CombinedReward, progress: (_ sampled: Int, _ samples: Int) -> Void = { _, _ in }) throws -> RewardData {
        let S = base.config.imageSize, n = base.config.pixelsPerImage
        let K = c.samplesPerPrompt, R = c.rendersPerPrompt
        let prompts = try allPrompts(config: c, file: file, excluding: excluding)
        let extraCount = prompts.count - file.count
        let total = file.count * K + prompts.count * R
        var pixels = [Float](repeating: 0, count: total * n)
        var promptOf: [Int] = []
        promptOf.reserveCapacity(total)
        // base samples, a chunk of images at a time: images 0 ..< file.count * K
        let sampler = SDESampler(config: SDEConfig(steps: c.sampleSteps))
        let jobs = file.indices.flatMap { i in (0..<K).map { (i, $0) } }
        let chunk = 32
        let ws = try base.makeWorkspace(batch: chunk, training: false)
        for start in stride(from: 0, to: jobs.count, by: chunk) {
            let part = jobs[start..<min(jobs.count, start + chunk)]
            let noise = part.flatMap { Generator.noise(seed: c.dataSeed, prompt: $0.0, image: $0.1, count: n) }
            var rngs = part.map { RNG(seed: c.dataSeed).split(UInt64($0.0)).split(UInt64($0.1)).split(3) }
            let r = sampler.rollout(model: base, workspaces: [ws], noise: noise, tokens: part.flatMap { file[$0.0].tokens }, rngs: &rngs)
            for (b, job) in part.enumerated() {
                let dst = (start + b) * n
                pixels.replaceSubrange(dst..<(dst + n), with: r.state(r.config.steps, b))
                promptOf.append(job.0)
            }
            progress(start + part.count, jobs.count)
        }
        // renderings: images file.count * K + i * R + k
        let first = jobs.count
        for i in prompts.indices { for _ in 0..<R { promptOf.append(i) } }
        let renderer = Renderer(size: S)
        let specs = try prompts.map { try $0.shapesSpec(for: "the reward data's renderings") }
        pixels.withUnsafeMutableBufferPointer { px in
            let basePtr = px.baseAddress!
            parallelFor(prompts.count) { range in
                for i in range {
                    for k in 0..<R {
                        var rng = RNG(seed: c.dataSeed).split(UInt64(i)).split(UInt64(1000 + k))
                        var spec = specs[i]
                        if k > 0 {
                            let kinds = CaptionNoise.Kind.allCases.compactMap { CaptionNoise.apply($0, to: spec, pick: rng.nextUInt64()) }
                            if !kinds.isEmpty { spec = kinds[Int(rng.nextUInt64() % UInt64(kinds.count))] }
                        }
                        renderer.render(spec, rng: &rng, into: basePtr + (first + i * R + k) * n)
                    }
                }
            }
        }
        let batch = ImageBatch(pixels: pixels, size: S)
        let labels = try gold.evaluate(batch, prompts: promptOf.map { prompts[$0] }).total
        let held = heldOut(prompts: file.count, fraction: c.heldOutFraction, seed: c.dataSeed) + [Bool](repeating: false, count: extraCount)
        return RewardData(imageSize: S, pixels: pixels, prompt: promptOf, gold: labels, heldOut: held, prompts: prompts,
                          rendered: (0..<total).map { $0 >= first })
    }

    /// Every pair (i < j) of one prompt whose gold differs, y = [gold_i > gold_j], for the
    /// held-out prompts or for the others.
    public func pairs(heldOut: Bool) -> [RewardPair] {
        var byPrompt = [[Int]](repeating: [], count: prompts.count)
        for k in 0..<count where self.heldOut[prompt[k]] == heldOut { byPrompt[prompt[k]].append(k) }
        var out: [RewardPair] = []
        for images in byPrompt {
            for a in images.indices { for b in (a + 1)..<images.count {
                let i = images[a], j = images[b]
                if gold[i] != gold[j] { out.append(RewardPair(i: i, j: j, y: gold[i] > gold[j] ? 1 : 0)) }
            } }
        }
        return out
    }

    /// The training pairs: a seeded shuffle of every training pair, the first `limit` of them,
    /// each label flipped with probability `labelNoise` (Coste et al.'s noisy preferences).
    public func trainingPairs(limit: Int?, labelNoise: Float, seed: UInt64) -> [RewardPair] {
        var all = pairs(heldOut: false)
        var rng = RNG(seed: seed).split(12)
        for k in stride(from: all.count - 1, to: 0, by: -1) { all.swapAt(k, Int(rng.nextUInt64() % UInt64(k + 1))) }
        if let limit, limit < all.count { all.removeLast(all.count - limit) }
        var noise = RNG(seed: seed).split(13)
        for k in all.indices where noise.uniform(0, 1) < labelNoise { all[k].y = 1 - all[k].y }
        return all
    }

    // MARK: the data file (reused by reward models of other sizes and by a resume)

    public func save(to url: URL, key: [String: String]) throws {
        var f = SafeTensorsFile()
        f.add("pixels", shape: [count, imageSize, imageSize, 3], values: pixels)
        f.add("gold", shape: [count], values: gold)
        f.add("prompt", shape: [count], values: prompt.map(Float.init))
        f.add("held_out", shape: [prompts.count], values: heldOut.map { $0 ? 1 : 0 })
        f.add("rendered", shape: [count], values: rendered.map { $0 ? 1 : 0 })
        f.metadata = key
        f.metadata["format"] = "flowtune-reward-data"
        try writeAtomically(try f.serialized(), to: url)
    }

    /// The data of a file written by `save` with the same key (the same base model, prompts,
    /// gold, counts and seed); nil when the file is absent.
    public static func load(from url: URL, key: [String: String], prompts: [Prompt]) throws -> RewardData? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let f = try SafeTensorsFile(contentsOf: url)
        let source = url.path
        guard f.metadata["format"] == "flowtune-reward-data" else { throw CheckpointError("\(source): not a flowtune reward-model data file") }
        let differing = key.keys.sorted().filter { f.metadata[$0] != key[$0] }
        guard differing.isEmpty else {
            let list = differing.map { "\($0) \(key[$0]!) (the file has \(f.metadata[$0] ?? "none"))" }.joined(separator: ", ")
            throw CheckpointError("\(source) was made with other options: \(list); give another --data path, or the options it was made with")
        }
        guard let px = f.tensors["pixels"], px.shape.count == 4, px.shape[3] == 3, px.shape[1] == px.shape[2],
              let g = f.tensors["gold"], let p = f.tensors["prompt"], let h = f.tensors["held_out"], let rd = f.tensors["rendered"],
              g.values.count == px.shape[0], p.values.count == px.shape[0], rd.values.count == px.shape[0], h.values.count == prompts.count,
              px.values.count == px.shape.reduce(1, *) else {
            throw CheckpointError("\(source): the data's tensors are missing or of inconsistent sizes")
        }
        let index = p.values.map { Int(exactly: $0) ?? -1 }
        guard index.allSatisfy({ prompts.indices.contains($0) }), g.values.allSatisfy(\.isFinite) else {
            throw CheckpointError("\(source): prompt indices or gold scores out of range: the file is damaged")
        }
        return RewardData(imageSize: px.shape[1], pixels: px.values, prompt: index, gold: g.values,
                          heldOut: h.values.map { $0 != 0 }, prompts: prompts, rendered: rd.values.map { $0 != 0 })
    }
}

/// Trains a reward model on pairs of `RewardData` (Bradley-Terry, or regression on the gold).
public final class RewardTrainer {
    public let config: RewardTrainConfig
    public let model: RewardModel
    public let data: RewardData
    public let train: [RewardPair]
    public let heldOut: [RewardPair]
    public var optimizer: AdamW
    public var rng: RNG
    public var step = 0
    let ws: Workspace

    /// `initFrom`: the generator `config.initFrom` names, whose network and weights the reward
    /// model starts from (as the field's reward models start from pretrained CLIP or BLIP).
    /// `network`: another configuration than the size's (the tests' 16-pixel tiny network).
    public init(config: RewardTrainConfig, data: RewardData, initFrom: DiT? = nil, network: ModelConfig? = nil) throws {
        try config.validate()
        self.config = config
        self.data = data
        guard (initFrom == nil) == (config.initFrom == nil) else { throw FinetuneError("--init-from names a generator; it must be given to the trainer") }
        let mc = try Self.network(config: config, imageSize: data.imageSize, initFrom: initFrom, network: network)
        if let initFrom {
            model = RewardModel(net: try DiT(config: mc, params: initFrom.params.copy()))
        } else {
            model = try RewardModel(config: mc, seed: config.seed)
        }
        train = data.trainingPairs(limit: config.pairs, labelNoise: config.labelNoise, seed: config.seed)
        heldOut = data.pairs(heldOut: true)
        guard !train.isEmpty else { throw FinetuneError("no training pair: every image of a training prompt has the same gold score (draw more samples per prompt)") }
        guard !heldOut.isEmpty else { throw FinetuneError("no held-out pair: every image of a held-out prompt has the same gold score (raise --held-out-fraction or the samples per prompt)") }
        optimizer = AdamW(count: model.parameterCount, lr: config.lr, weightDecay: config.weightDecay, maxGradNorm: 1, decayMask: model.net.layout.decayMask)
        rng = RNG(seed: config.seed).split(14)
        ws = try model.net.makeWorkspace(batch: 2 * config.batch, training: true)
    }

    /// The reward model's network (the size's, or `network`), checked against the images it
    /// will score and the generator it starts from.
    public static func network(config: RewardTrainConfig, imageSize: Int, initFrom: DiT?, network: ModelConfig? = nil) throws -> ModelConfig {
        let mc = try network ?? RewardModel.config(preset: config.preset)
        guard mc.imageSize == imageSize else {
            throw FinetuneError("reward model size \(config.preset) reads \(mc.imageSize)-pixel images, the data has \(imageSize)")
        }
        if let initFrom, initFrom.config != mc {
            throw FinetuneError("--init-from \(config.initFrom ?? "") is a '\(initFrom.config.name)' network; --size \(config.preset) is a '\(mc.name)' one: give a generator of that configuration")
        }
        return mc
    }

    /// One optimiser step on a random batch of training pairs; returns the mean loss.
    @discardableResult
    public func trainStep() -> Float {
        let B = min(config.batch, train.count), n = data.valuesPerImage, L = Tokenizer.maxTokens
        let batch = (0..<B).map { _ in train[Int(rng.nextUInt64() % UInt64(train.count))] }
        var images = [Float](repeating: 0, count: 2 * B * n), tokens = [Int32](repeating: 0, count: 2 * B * L)
        for (k, p) in batch.enumerated() {
            for (slot, index) in [(k, p.i), (B + k, p.j)] {
                images.replaceSubrange((slot * n)..<((slot + 1) * n), with: data.pixels[(index * n)..<((index + 1) * n)])
                tokens.replaceSubrange((slot * L)..<((slot + 1) * L), with: data.prompts[data.prompt[index]].tokens)
            }
        }
        model.net.grads.zero()
        let r = images.withUnsafeBufferPointer { im in tokens.withUnsafeBufferPointer { tk in
            model.scores(ws, images: im.baseAddress!, tokens: tk.baseAddress!, batch: 2 * B)
        } }
        var dr = [Float](repeating: 0, count: 2 * B)
        var loss: Float = 0
        for (k, p) in batch.enumerated() {
            switch config.loss {
            case .bradleyTerry:
                let (l, d) = bradleyTerry(delta: r[k] - r[B + k], y: p.y)
                loss += l; dr[k] = d / Float(B); dr[B + k] = -d / Float(B)
            case .regression:
                for (slot, index) in [(k, p.i), (B + k, p.j)] {
                    let e = r[slot] - data.gold[index]
                    loss += e * e / 2; dr[slot] = e / Float(2 * B)
                }
            }
        }
        model.backward(ws, dScores: dr)
        optimizer.lr = config.learningRate(at: step)
        optimizer.update(params: model.net.params.buffer, grads: model.net.grads.buffer)
        step += 1
        return config.loss == .regression ? loss / Float(2 * B) : loss / Float(B)
    }

    /// Raw scores of the given images of the data.
    public func scores(of indices: [Int]) throws -> [Float] {
        let n = data.valuesPerImage
        var pixels = [Float](), tokens = [Int32]()
        pixels.reserveCapacity(indices.count * n)
        for k in indices {
            pixels += data.pixels[(k * n)..<((k + 1) * n)]
            tokens += data.prompts[data.prompt[k]].tokens
        }
        return try model.scoreAll(images: pixels, tokens: tokens)
    }

    /// The training images the evaluation scores: those of a seeded sample of at most
    /// `evaluationPrompts` training prompts (their normalisation statistics and training pairs).
    public static let evaluationPrompts = 200
    lazy var evaluationImages: [Int] = {
        var prompts = data.prompts.indices.filter { !data.heldOut[$0] }
        var rng = RNG(seed: config.dataSeed).split(16)
        rng.shuffle(&prompts)
        let kept = Set(prompts.prefix(Self.evaluationPrompts))
        return (0..<data.count).filter { data.heldOut[data.prompt[$0]] || kept.contains(data.prompt[$0]) }
    }()

    /// The fraction of `pairs` whose score order is the gold's (a tie counts half).
    public static func agreement(_ pairs: [RewardPair], scores: [Float], gold: [Float]) -> Double {
        guard !pairs.isEmpty else { return .nan }
        var hits = 0.0
        for p in pairs {
            let ds = scores[p.i] - scores[p.j], dg = gold[p.i] - gold[p.j]
            hits += ds == 0 ? 0.5 : ((ds > 0) == (dg > 0) ? 1 : 0)
        }
        return hits / Double(pairs.count)
    }

    /// Held-out agreement with the gold (every held-out pair, and the pairs of two base-model
    /// samples alone: what RL's rollouts are), the training pairs' (by their true labels), and
    /// the mean and std of the raw scores of the training images (the normalisation); training
    /// figures from the images of `evaluationPrompts` sampled training prompts.
    public func evaluate() throws -> (heldOut: Double, heldOutSamples: Double, train: Double, mean: Float, std: Float) {
        // scores by image index, of the held-out images and those of the sampled training prompts
        let images = evaluationImages
        var s = [Float](repeating: .nan, count: data.count)
        for (k, v) in zip(images, try scores(of: images)) { s[k] = v }
        let trainImages = images.filter { !data.heldOut[data.prompt[$0]] }
        let mean = trainImages.reduce(0.0) { $0 + Double(s[$1]) } / Double(max(1, trainImages.count))
        let variance = trainImages.reduce(0.0) { $0 + (Double(s[$1]) - mean) * (Double(s[$1]) - mean) } / Double(max(1, trainImages.count))
        let samplePairs = heldOut.filter { !data.rendered[$0.i] && !data.rendered[$0.j] }
        let trainPairs = data.pairs(heldOut: false).filter { !s[$0.i].isNaN }
        return (Self.agreement(heldOut, scores: s, gold: data.gold), Self.agreement(samplePairs, scores: s, gold: data.gold),
                Self.agreement(trainPairs, scores: s, gold: data.gold), Float(mean), Float(max(variance.squareRoot(), 1e-6)))
    }

    // MARK: checkpoints

    public static func statePath(_ url: URL) -> URL { url.deletingPathExtension().appendingPathExtension("state.safetensors") }
    public static func dataPath(_ url: URL) -> URL { url.deletingPathExtension().appendingPathExtension("data.safetensors") }

    /// Writes RM.state.safetensors (weights, optimiser, RNG, step, options) and then RM (the
    /// model with its normalisation and agreement), each atomically.
    public func save(to url: URL, metadata: [String: String]) throws {
        var state = try Checkpoint.file(config: model.config, params: model.net.params, kind: "reward-train-state")
        state.add(optimizer, as: "adam")
        state.add(rng, as: "rng")
        state.metadata["step"] = String(step)
        state.metadata["reward_config"] = try sortedJSON(config)
        try writeAtomically(try state.serialized(), to: Self.statePath(url))
        var meta = metadata
        meta[RewardModel.Key.step] = String(step)
        try writeAtomically(try model.file(extra: meta).serialized(), to: url)
    }

    /// Restores the weights, optimiser, RNG and step from RM.state.safetensors; the options must
    /// be the run's (only --steps may change).
    public func resume(from url: URL) throws {
        let path = Self.statePath(url)
        guard FileManager.default.fileExists(atPath: path.path) else {
            throw CheckpointError("no reward-model training to resume at \(url.path): its state \(path.lastPathComponent) is missing")
        }
        let f = try SafeTensorsFile(contentsOf: path)
        guard try f.checkResumeOptions(config, key: "reward_config", sharedOnly: false, source: path.path) else {
            throw CheckpointError("\(path.path): not the state of a reward-model training (its options are missing)")
        }
        let net = try Checkpoint.load(f, source: path.path, expect: model.config, kind: "reward-train-state")
        model.net.params.assign(from: net.params)
        try f.restore(&optimizer, as: "adam", source: path.path)
        guard let s = f.metadata["step"].flatMap(Int.init), s >= 0 else { throw CheckpointError("\(path.path): the step is missing") }
        step = s
        rng = try f.rng("rng", source: path.path)
    }
}
