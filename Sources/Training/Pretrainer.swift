import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Dataset

/// Pretraining on a folder of captioned images instead of the renderer: where the folder is,
/// how its images are read, the held-out split, and the vocabulary built from the captions
/// (`PretrainConfig.folder`, made from its settings).
public struct FolderTraining: Equatable, Sendable {
    public var folder: String
    public var heldOutFraction = 0.1       // images held out (never trained on) for the gold metrics
    public var splitSeed: UInt64 = 0
    public var flip = false                // horizontal flips, half of the draws
    public var background: [UInt8] = [255, 255, 255]    // under transparent pixels
    public var skipBad = false             // leave bad files out instead of stopping
    public var minWordCount = 1            // a word needs this many captions for an id of its own
    public var maxWords = 32               // the text length's cap
    public init(folder: String) { self.folder = folder }
}

/// An RGB colour setting: white, black, gray, or R,G,B with each 0...255 (JSON: its text, or
/// the [R, G, B] array older files hold).
public struct RGBColour: SettingValue, Sendable {
    public var channels: [UInt8]
    public init(_ channels: [UInt8]) { self.channels = channels }
    public init?(settingText text: String) {
        switch text.lowercased() {
        case "white": channels = [255, 255, 255]
        case "black": channels = [0, 0, 0]
        case "gray", "grey": channels = [128, 128, 128]
        default:
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { UInt8($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 3, parts.allSatisfy({ $0 != nil }) else { return nil }
            channels = parts.map { $0! }
        }
    }
    public var settingText: String {
        switch channels {
        case [255, 255, 255]: return "white"
        case [0, 0, 0]: return "black"
        case [128, 128, 128]: return "gray"
        default: return channels.map(String.init).joined(separator: ",")
        }
    }
    public static var settingPlaceholder: String { "colour" }
    public static var settingExpectation: String { "white, black, gray, or R,G,B with each 0-255 (e.g. 240,240,240)" }
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let a = try? c.decode([UInt8].self), a.count == 3 { channels = a; return }
        guard let v = RGBColour(settingText: try c.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a colour (\(Self.settingExpectation))")
        }
        self = v
    }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(settingText) }
}

extension CaptionNoise: SettingValue {
    public init?(settingText: String) { try? self.init(parsing: settingText) }
    public var settingText: String { description.isEmpty ? "none" : description }
    public static var settingPlaceholder: String { "spec" }
    public static var settingExpectation: String { "KIND=PROBABILITY,..." }
}

/// Flow-matching pretraining on freshly rendered shapes-world images, or on a folder of captioned
/// images. Each field's initial value is its default; `PretrainConfig.table` declares each
/// setting once (option, JSON key of the model's state, help, check).
public struct PretrainConfig: Codable, Equatable, Sendable {
    public var model = "s32"               // model configuration name
    public var steps = 20_000              // total optimiser steps
    public var batch = 64                  // images per step
    public var lr: Float = 1e-3            // peak learning rate (AdamW)
    public var minLR: Float = 3e-5         // learning rate at the end of the cosine tail
    public var warmup = 500                // linear warm-up steps
    public var decayFraction: Float = 0.4  // the last fraction of steps decays (cosine) to minLR
    public var weightDecay: Float = 0.01   // AdamW decoupled decay on linear weights
    public var gradClip: Float = 1.0       // global gradient-norm clip
    public var emaDecay: Float = 0.999     // EMA of the weights, used for sampling and shipped
    public var nullProbability: Float = 0.1 // NULL prompt rate (classifier-free guidance)
    public var tMean: Float = 0            // training times t ~ logit-normal(tMean, tStd)
    public var tStd: Float = 1
    public var seed: UInt64 = 0
    /// Guidance distillation: regress on this teacher's guided velocity (scale `distillCFG`)
    /// instead of the data's (nil: plain flow matching).
    public var distillFrom: String? = nil
    public var distillCFG: Float? = nil
    /// The prompt drawn for a caption is corrupted with these probabilities (empty: clean data).
    public var captionNoise = CaptionNoise()
    /// Train on this folder of captioned images (nil: the shapes world's renderer), and how.
    public var data: String? = nil
    public var heldOut = 0.1
    public var splitSeed: UInt64 = 0
    public var flip = false
    public var background = RGBColour([255, 255, 255])
    public var skipBad = false
    public var minWordCount = 1
    public var maxWords = 32
    public init() {}

    /// The folder's options (nil: the shapes world).
    public var folder: FolderTraining? {
        data.map { d in
            var f = FolderTraining(folder: d)
            f.heldOutFraction = heldOut; f.splitSeed = splitSeed; f.flip = flip; f.background = background.channels
            f.skipBad = skipBad; f.minWordCount = minWordCount; f.maxWords = maxWords
            return f
        }
    }

    typealias C = OptionCheck
    typealias S = Setting<PretrainConfig>

    /// Every pretraining setting.
    public static let table = SettingTable<PretrainConfig>(schedule + world, defaults: PretrainConfig())

    static let schedule: [S] = [
        S.value(\.model, "config", "Model configuration: s32, s32c (s32 with a convolutional output head), small or tiny.", placeholder: "name", legacy: "model"),
        S.value(\.steps, "steps", "Total optimiser steps.", check: C.positive, resume: true),
        S.value(\.batch, "batch", "Images per step.", check: { try C.positive($0, $1); try C.atMost($0, $1, C.maxBatch) }),
        S.value(\.lr, "lr", "Peak learning rate.", check: C.positive),
        S.value(\.minLR, "min-lr", "Final learning rate of the cosine tail.", check: C.nonNegative),
        S.value(\.warmup, "warmup", "Linear warm-up steps.", check: C.nonNegative),
        S.value(\.decayFraction, "decay-fraction", "Fraction of the run (at its end) over which the learning rate decays.", check: { try C.within($0, $1, 0, 1) }),
        S.value(\.weightDecay, "weight-decay", "AdamW decoupled weight decay of the linear weights.", check: C.nonNegative),
        S.value(\.gradClip, "grad-clip", "Gradient-norm clip.", check: C.positive),
        S.value(\.emaDecay, "ema-decay", "EMA decay of the weights used for sampling.", check: { try C.within($0, $1, 0, 1, upperOpen: true) }),
        S.value(\.nullProbability, "null-probability", "The fraction of NULL prompts (classifier-free guidance).", check: { try C.within($0, $1, 0, 1) }),
        S.value(\.tMean, "t-mean", "Training times t ~ logit-normal(mean, std): the mean (0: SD3's default; --t-mean=-1.2: EDM's noise levels).", check: C.finite),
        S.value(\.tStd, "t-std", "Training times t ~ logit-normal(mean, std): the std.", check: C.positive),
        S.value(\.seed, "seed", "Random seed."),
        S.optional(\.distillFrom, "distill-from", "Guidance distillation: regress on this model's classifier-free-guided velocity instead of the data's (with --distill-cfg; usually with --init-from the same model).",
                   none: "none", placeholder: "path"),
        S.optional(\.distillCFG, "distill-cfg", "The guidance scale of --distill-from's velocity: the student draws without guidance what the teacher draws at this scale.",
                   none: "none", check: { try C.within($0, $1, 0, 100) }),
        S.value(\.captionNoise, "caption-noise", "Draw each image for a corrupted prompt under the original caption, e.g. count=0.3,relation=0.3,binding=0.3 (kinds: \(CaptionNoise.Kind.allCases.map(\.rawValue).joined(separator: ", "))).",
                read: { try CaptionNoise(parsing: $0, named: "--caption-noise") }),
    ]

    static let world: [S] = [
        S.optional(\.data, "data", "Train on this folder of captioned images instead of the renderer: PNG and JPEG files, each captioned by NAME.txt beside it or by a metadata.jsonl line {\"file_name\": ..., \"text\": ...}.",
                   none: "the shapes world", placeholder: "dir", legacy: "data.folder"),
        S.value(\.heldOut, "held-out", "With --data: the fraction of the images held out (never trained on; the gold metrics compare against them).",
                check: { try C.within($0, Float($1), 0, 1, upperOpen: true) }, legacy: "data.heldOutFraction"),
        S.value(\.splitSeed, "split-seed", "With --data: the seed of the held-out split.", legacy: "data.splitSeed"),
        S.flag(\.flip, "flip", "With --data: flip half of the drawn images left to right.", legacy: "data.flip"),
        S.value(\.background, "background", "With --data: the colour under transparent pixels.", legacy: "data.background"),
        S.flag(\.skipBad, "skip-bad", "With --data: leave out images that do not decode or have no caption (each is named) instead of stopping.", legacy: "data.skipBad"),
        S.value(\.minWordCount, "min-word-count", "With --data: a word needs this many training captions to get an id of its own (rarer ones read as unknown).",
                check: C.positive, legacy: "data.minWordCount"),
        S.value(\.maxWords, "max-words", "With --data: the most words of a caption the model reads (the text length is the longest caption's, up to this).",
                check: { try C.positive($0, $1); try C.atMost($0, $1, WordVocabulary.maxTextLength) }, legacy: "data.maxWords"),
    ]

    /// Every value checked; the first bad one is an error naming its option and value.
    public func validate() throws {
        try Self.table.validate(self)
        if (distillFrom == nil) != (distillCFG == nil) {
            throw InvalidOption("--distill-from and --distill-cfg go together: give the teacher and its guidance scale")
        }
        if data == nil {
            for (flag, given) in [("--flip", flip), ("--skip-bad", skipBad)] where given { throw InvalidOption("\(flag) goes with --data (a folder of images)") }
        } else {
            guard captionNoise.isEmpty else { throw InvalidOption("--caption-noise corrupts shapes-world prompts; a folder's captions are what they are (drop --caption-noise or --data)") }
        }
    }

    public init(from decoder: Decoder) throws { self = try Self.table.decode(from: decoder) }
    public func encode(to encoder: Encoder) throws { try Self.table.encode(self, to: encoder) }

    /// Constant after warm-up, then a cosine tail over the last `decayFraction` of the run.
    public func learningRate(at step: Int) -> Float {
        if step < warmup { return lr * Float(step + 1) / Float(warmup) }
        let decaySteps = Int(Float(steps) * decayFraction)
        let start = steps - decaySteps
        if step < start || decaySteps == 0 { return lr }
        let p = min(1, Float(step - start) / Float(decaySteps))
        return minLR + 0.5 * (lr - minLR) * (1 + cos(Float.pi * p))
    }
}

/// Pretraining state: weights, EMA, optimiser, position. Saved as two safetensors files:
/// MODEL (the EMA weights, what sampling uses) and MODEL.state.safetensors (the rest).
public final class Pretrainer {
    public let config: PretrainConfig
    public let model: DiT
    public let ema: FloatBuffer
    public var optimizer: AdamW
    public var step = 0
    public var rng: RNG
    let generator: PromptGenerator
    let renderer: Renderer
    /// The folder's training images and their captions' tokens (nil: the renderer draws the data).
    let folder: FolderSource?
    struct FolderSource {
        let images: ImageFolder
        let train: [Int]            // the images drawn from
        let tokens: [[Int32]]       // every image's caption, encoded
    }
    /// The flow-matching steps, the batch split over the worker threads.
    let trainer: FlowMatchingTrainer
    /// Guidance distillation's frozen teacher (nil: targets from the data).
    let teacher: GuidedTeacher?
    /// The processes sharing each batch (one without mpirun): each trains a block of the images.
    public let world: World

    /// `initFrom`: start from these weights (the same network, or s32 for s32c) instead of random ones.
    /// `teacher`: the network `config.distillFrom` names (guidance distillation).
    /// `folder`: the images of `config.data`, read (the caller reports what the cache did).
    public init(config: PretrainConfig, excluding: Set<String>, initFrom: DiT? = nil, teacher: DiT? = nil, world: World = .single,
                folder images: ImageFolder? = nil) throws {
        try config.validate()
        guard config.batch >= world.size else { throw ModelError("--batch \(config.batch) is smaller than the \(world.size) processes sharing it") }
        guard (config.folder == nil) == (images == nil) else { throw ModelError("pretraining on a folder needs its images read") }
        self.config = config
        self.world = world
        var mc = try ModelConfig.named(config.model, vocabSize: Tokenizer.vocabularySize)
        var vocabulary = TextVocabulary.shapes, trainedOn: DataProvenance?
        if let data = config.folder, let images {
            guard images.size == mc.imageSize else { throw ModelError("the folder was read at \(images.size) px, '\(mc.name)' draws \(mc.imageSize) px") }
            let (train, held) = try images.split(heldOutFraction: data.heldOutFraction, seed: data.splitSeed)
            let v = WordVocabulary.build(captions: train.map { images.entries[$0].caption }, minCount: data.minWordCount, maxLength: data.maxWords)
            mc.vocabSize = v.size; mc.textLength = v.textLength
            vocabulary = .words(v)
            trainedOn = DataProvenance(folder: data.folder, checksum: images.contentChecksum, images: images.count,
                                       background: images.background, skipBad: data.skipBad, heldOutFraction: data.heldOutFraction,
                                       splitSeed: data.splitSeed, heldOut: held.map { images.entries[$0].file })
            folder = FolderSource(images: images, train: train, tokens: try images.entries.map { try v.encode($0.caption).tokens })
        } else {
            folder = nil
        }
        model = try DiT(config: mc, seed: config.seed)
        model.vocabulary = vocabulary; model.trainedOn = trainedOn
        if let initFrom {
            let missing = try model.initialise(from: initFrom)
            guard missing.isEmpty else { throw ModelError("cannot initialise '\(mc.name)' from '\(initFrom.config.name)': no weights for \(missing.joined(separator: ", "))") }
        }
        ema = model.params.copy()
        optimizer = AdamW(count: model.parameterCount, lr: config.lr, weightDecay: config.weightDecay,
                          maxGradNorm: config.gradClip, decayMask: model.layout.decayMask)
        rng = RNG(seed: config.seed).split(1)
        generator = PromptGenerator(excluding: excluding)
        renderer = Renderer(size: mc.imageSize)
        trainer = try FlowMatchingTrainer(model: model, batch: world.block(of: config.batch).count)
        guard (teacher == nil) == (config.distillCFG == nil) else { throw ModelError("guidance distillation needs both a teacher and its guidance scale") }
        if let teacher, let scale = config.distillCFG {
            let tc = teacher.config
            guard tc.imageSize == mc.imageSize, tc.channels == mc.channels, tc.textLength == mc.textLength, tc.vocabSize == mc.vocabSize,
                  teacher.vocabulary == vocabulary else {
                throw ModelError("the teacher '\(tc.name)' draws other images or reads other prompts than '\(mc.name)'")
            }
            self.teacher = try GuidedTeacher(model: teacher, scale: scale, batch: world.block(of: config.batch).count)
        } else {
            self.teacher = nil
        }
    }

    /// A batch of freshly rendered images with their prompts' tokens (deterministic in rng);
    /// with `rows`, only those images are rendered (the others stay 0). With caption noise an
    /// image is drawn for a corrupted prompt (from a stream of its own seed, so the batch's
    /// stream is the clean one's) under the original caption; a teacher reads the drawn prompt.
    public func makeBatch(rng: inout RNG, rows: Range<Int>? = nil) -> FlowMatchingBatch {
        if let folder { return folderBatch(folder, rng: &rng, rows: rows) }
        let B = config.batch, n = model.config.pixelsPerImage, L = model.config.textLength
        let specs = (0..<B).map { _ in generator.sample(rng: &rng) }
        let seeds = (0..<B).map { _ in rng.nextUInt64() }
        let drawn = config.captionNoise.isEmpty ? specs : (0..<B).map { b in
            var noise = RNG(seed: seeds[b]).split(7)
            return config.captionNoise.corrupt(specs[b], rng: &noise).drawn
        }
        var x0 = [Float](repeating: 0, count: B * n)
        x0.withUnsafeMutableBufferPointer { xp in
            let base = xp.baseAddress!
            let mine = rows ?? 0..<B
            parallelFor(mine.count) { r in
                for b in (mine.lowerBound + r.lowerBound)..<(mine.lowerBound + r.upperBound) {
                    var local = RNG(seed: seeds[b])
                    renderer.render(drawn[b], rng: &local, into: base + b * n)
                }
            }
        }
        func tokens(of specs: [PromptSpec]) -> [Int32] {
            var tokens = [Int32](repeating: 0, count: B * L)
            for b in 0..<B { tokens.replaceSubrange((b * L)..<((b + 1) * L), with: try! Tokenizer.encode(specs[b].text)) }
            return tokens
        }
        return FlowMatchingBatch(x0: x0, tokens: tokens(of: specs), teacherTokens: config.captionNoise.isEmpty ? nil : tokens(of: drawn))
    }

    /// A batch of the folder's training images, drawn uniformly with replacement (deterministic
    /// in rng), each flipped left to right with probability 1/2 when the run flips.
    func folderBatch(_ folder: FolderSource, rng: inout RNG, rows: Range<Int>?) -> FlowMatchingBatch {
        let B = config.batch, n = model.config.pixelsPerImage
        let picks = (0..<B).map { _ in folder.train[rng.int(folder.train.count)] }
        let flips = (0..<B).map { _ in config.flip && rng.nextUInt64() & 1 == 1 }
        var x0 = [Float](repeating: 0, count: B * n)
        x0.withUnsafeMutableBufferPointer { xp in
            for b in rows ?? 0..<B { folder.images.copyImage(picks[b], into: xp.baseAddress! + b * n, flipped: flips[b]) }
        }
        return FlowMatchingBatch(x0: x0, tokens: picks.flatMap { folder.tokens[$0] }, teacherTokens: nil)
    }

    /// One optimiser step; returns the loss. Spread over a world: each process renders and
    /// trains its block of the batch, the gradients (and the loss) are summed.
    @discardableResult
    public func trainStep() -> Float {
        let mine = world.isDistributed ? world.block(of: config.batch) : nil
        let batch = makeBatch(rng: &rng, rows: mine)
        model.grads.zero()
        var loss = trainer.step(batch: batch, rng: &rng, nullProbability: config.nullProbability,
                                    tMean: config.tMean, tStd: config.tStd, rows: mine, teacher: teacher)
        if world.isDistributed {
            world.sum(model.grads)
            loss = Float(world.sum(Double(loss)))
        }
        optimizer.lr = config.learningRate(at: step)
        optimizer.update(params: model.params.buffer, grads: model.grads.buffer)
        ema.ema(toward: model.params, decay: step < 100 ? 0 : config.emaDecay)
        step += 1
        return loss
    }

    // MARK: checkpoints

    public static func statePath(_ modelURL: URL) -> URL {
        modelURL.deletingPathExtension().appendingPathExtension("state.safetensors")
    }

    /// Writes MODEL.state.safetensors (weights, EMA, optimiser, RNG, step: everything a resume
    /// reads) and then MODEL (the EMA weights, for sampling), each atomically: a kill between
    /// the two leaves a state that resumes exactly and a model file one checkpoint older.
    public func save(to url: URL) throws {
        guard world.isRoot else { return }
        var state = try Checkpoint.file(config: model.config, params: model.params, kind: "pretrain-state",
                                        vocabulary: model.vocabulary, trainedOn: model.trainedOn)
        state.add("ema", shape: [ema.count], values: ema.array)
        state.add(optimizer, as: "adam")
        state.add(rng, as: "rng")
        state.metadata["step"] = String(step)
        state.metadata["pretrain_config"] = try sortedJSON(config)
        try writeAtomically(try state.serialized(), to: Self.statePath(url))
        var extra = ["step": String(step), "kind_detail": "ema"]
        if let w = config.distillCFG, let teacher = config.distillFrom { extra[Checkpoint.distilledCFGKey] = "\(w)"; extra[Checkpoint.distilledFromKey] = teacher }
        if !config.captionNoise.isEmpty { extra[Checkpoint.captionNoiseKey] = config.captionNoise.description }
        try Checkpoint.save(model, to: url, params: ema, extra: extra)
    }

    /// The run's options in its state must be `config`'s, but for those that may change on
    /// resume (--steps): the schedule and the data depend on them.
    static func checkResumeOptions(_ f: SafeTensorsFile, _ config: PretrainConfig, source: String) throws {
        guard let text = f.metadata["pretrain_config"] else { return }
        let stored: PretrainConfig
        do { stored = try JSONDecoder().decode(PretrainConfig.self, from: Data(text.utf8)) } catch {
            throw CheckpointError("\(source): its pretraining options are unreadable (\(error))")
        }
        let differing = PretrainConfig.table.differences(config, stored).filter { n in !PretrainConfig.table.changeableOnResume.contains { $0.name == n } }
        guard differing.isEmpty else {
            let list = differing.map { n in
                let s = PretrainConfig.table[n]!
                return "--\(n) \(s.text(of: config)) (the run has \(s.text(of: stored)))"
            }.joined(separator: ", ")
            throw CheckpointError("\(source): resumed with other options than the run was started with: \(list); resume with the run's options (only --steps may change)")
        }
    }

    /// Restores from MODEL.state.safetensors and MODEL (the EMA).
    public func resume(from url: URL) throws {
        let path = Self.statePath(url)
        // rank 0 reads the state and hands it to the others (their machines need not see it)
        var bytes: [UInt8] = []
        if world.isRoot {
            guard FileManager.default.fileExists(atPath: path.path) else {
                throw CheckpointError("no pretraining run to resume at \(url.path): its state \(path.lastPathComponent) is missing")
            }
            bytes = [UInt8](try SafeTensorsFile.read(path))
        }
        let f = try SafeTensorsFile(data: Data(world.broadcast(bytes)), source: path.path)
        let cfg = try Checkpoint.config(of: f, source: path.path)
        guard cfg == model.config else { throw CheckpointError("\(path.path): configuration '\(cfg.name)' differs from '\(model.config.name)'") }
        // a folder's run continues on the folder as it was: other images would change the vocabulary and the split
        let (vocabulary, trainedOn) = try Checkpoint.world(of: f, config: cfg, source: path.path)
        if trainedOn?.checksum != model.trainedOn?.checksum || vocabulary != model.vocabulary {
            throw CheckpointError("\(path.path): the run started on \(trainedOn.map { "\($0.folder) as it was then (checksum \($0.checksum))" } ?? "the shapes world"); "
                                  + (model.trainedOn.map { "\($0.folder) holds other images now (checksum \($0.checksum)): put them back as they were, or start a new run" } ?? "this is the shapes world"))
        }
        // the run's options must be the ones it was started with (the schedule depends on them);
        // only --steps may change (extending or shortening the run)
        try Self.checkResumeOptions(f, config, source: path.path)
        model.params.assign(from: try Checkpoint.params(from: f, config: cfg, source: path.path))
        guard let s = f.metadata["step"].flatMap(Int.init) else { throw CheckpointError("\(path.path): the step is missing") }
        try f.restore(&optimizer, as: "adam", source: path.path)
        step = s; rng = try f.rng("rng", source: path.path)
        if let stored = f.tensors["ema"] {
            guard stored.values.count == ema.count else { throw CheckpointError("\(path.path): the EMA has \(stored.values.count) values, the model \(ema.count)") }
            ema.pointer.update(from: stored.values, count: ema.count)
        } else {
            // a state written before it held the EMA: the model file must be of the same step
            let m = try SafeTensorsFile(contentsOf: url)
            guard m.metadata["step"] == String(s) else {
                throw CheckpointError("\(url.path) is of step \(m.metadata["step"] ?? "?"), its state of step \(s): the run cannot be resumed exactly")
            }
            ema.assign(from: try Checkpoint.load(m, source: url.path, expect: cfg).params)
        }
    }
}
