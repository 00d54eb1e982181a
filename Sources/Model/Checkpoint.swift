import Foundation
import Tensor
import Shapes

/// Model checkpoints: the network's parameters as a safetensors file, one tensor per named
/// view, with metadata {format: "flowtune", format_version, config (JSON), kind, crc32}.
public enum Checkpoint {
    public static let formatVersion = "1"
    /// Metadata of a guidance-distilled model: the CFG weight its teacher's guided velocity had,
    /// and the teacher's path.
    public static let distilledCFGKey = "distilled_cfg", distilledFromKey = "distilled_from"
    /// Metadata of a model pretrained on noisy captions: the noise, as `--caption-noise` reads it.
    public static let captionNoiseKey = "caption_noise"
    /// Metadata of a fine-tuned policy: the algorithm and iteration, the base model's path and
    /// CRC-32, the reward, and the base's caption noise (the base's guidance distillation is
    /// carried over under its own keys: the policy draws as its base does).
    public static let algoKey = "algo", iterationKey = "iteration", finetunedFromKey = "finetuned_from",
                      finetunedFromChecksumKey = "finetuned_from_crc32", rewardKey = "reward",
                      baseCaptionNoiseKey = "base_caption_noise"
    /// Metadata of a model trained on a folder of images: its word vocabulary and its data (JSON).
    public static let vocabularyKey = "vocabulary", dataKey = "data"

    /// The safetensors file of `params` laid out by `config` (plus extra metadata).
    public static func file(config: ModelConfig, params: FloatBuffer, kind: String = "model", extra: [String: String] = [:],
                            vocabulary: TextVocabulary = .shapes, trainedOn: DataProvenance? = nil) throws -> SafeTensorsFile {
        let layout = ParamLayout(config)
        var f = SafeTensorsFile()
        for e in layout.entries {
            f.add(e.name, shape: e.shape, values: Array(UnsafeBufferPointer(start: params.pointer + e.offset, count: e.count)))
        }
        f.metadata = extra
        f.metadata["format"] = "flowtune"
        f.metadata["format_version"] = formatVersion
        f.metadata["kind"] = kind
        f.metadata["config"] = try sortedJSON(config)
        if case .words(let v) = vocabulary { f.metadata[vocabularyKey] = try sortedJSON(v) }
        if let trainedOn { f.metadata[dataKey] = try sortedJSON(trainedOn) }
        return f
    }

    /// Writes a model checkpoint atomically.
    public static func save(_ model: DiT, to url: URL, params: FloatBuffer? = nil, extra: [String: String] = [:]) throws {
        let f = try file(config: model.config, params: params ?? model.params, extra: extra, vocabulary: model.vocabulary, trainedOn: model.trainedOn)
        try writeAtomically(try f.serialized(), to: url)
    }

    /// Where a fine-tuned policy came from, for people ("fine-tuned by grpo-guard for 800
    /// iterations from BASE, reward R; the base pretrained with caption noise N"); nil for a
    /// file without it (a base model, or a policy written before it was recorded).
    public static func provenance(_ metadata: [String: String]) -> String? {
        guard let algo = metadata[algoKey], let base = metadata[finetunedFromKey] else { return nil }
        let iterations = metadata[iterationKey].map { " for \($0) iterations" } ?? ""
        return "fine-tuned by \(algo)\(iterations) from \(base)" + (metadata[rewardKey].map { ", reward \($0)" } ?? "")
            + (metadata[baseCaptionNoiseKey].map { "; the base pretrained with caption noise \($0)" } ?? "")
    }

    /// The same as fields for a machine-readable report (`evaluate --json`'s "finetuned" object):
    /// algo, iteration, from, reward, base_caption_noise, those the file has; nil as above.
    public static func provenanceFields(_ metadata: [String: String]) -> [(String, String)]? {
        guard provenance(metadata) != nil else { return nil }
        return [algoKey, iterationKey, finetunedFromKey, rewardKey, baseCaptionNoiseKey]
            .compactMap { k in metadata[k].map { (k == finetunedFromKey ? "from" : k, $0) } }
    }

    /// The configuration stored in a flowtune safetensors file, validated.
    public static func config(of f: SafeTensorsFile, source: String) throws -> ModelConfig {
        guard f.metadata["format"] == "flowtune" else {
            throw CheckpointError("\(source): not a flowtune checkpoint (no flowtune metadata)")
        }
        guard f.metadata["format_version"] == formatVersion else {
            throw CheckpointError("\(source): checkpoint format version \(f.metadata["format_version"] ?? "?"), this flowtune reads \(formatVersion)")
        }
        guard let cfg = f.metadata["config"], let c = try? JSONDecoder().decode(ModelConfig.self, from: Data(cfg.utf8)) else {
            throw CheckpointError("\(source): the model configuration in the metadata is missing or unreadable")
        }
        do { try c.validate() } catch { throw CheckpointError("\(source): \(error)") }
        return c
    }

    /// The largest weight magnitude a checkpoint may hold: trained weights are of order 1, and a
    /// network of weights past this overflows Float arithmetic (its images would be NaN).
    public static let maxWeightMagnitude: Float = 1e6

    /// Parameters of `layout` from a file: every tensor present with the right shape, no tensor
    /// that the configuration does not have, every value finite and below `maxWeightMagnitude`.
    /// All of it is checked before the parameters are allocated (a configuration that claims far
    /// more weights than the file holds is refused, not allocated).
    public static func params(from f: SafeTensorsFile, config: ModelConfig, source: String) throws -> FloatBuffer {
        let layout = ParamLayout(config)
        let known = Set(layout.entries.map(\.name))
        for e in layout.entries {
            guard let t = f.tensors[e.name] else { throw CheckpointError("\(source): tensor '\(e.name)' is missing (the configuration '\(config.name)' needs it)") }
            guard t.shape == e.shape else {
                throw CheckpointError("\(source): tensor '\(e.name)' has shape \(t.shape), the configuration needs \(e.shape)")
            }
        }
        // weights of other networks (a state's optimiser moments, an EMA) have names of their own
        // (the network's names begin with one of its top-level parts: blocks, final, patch_embed, ...)
        let parts = Set(layout.entries.map { $0.name.split(separator: ".")[0] })
        if let extra = f.tensors.keys.sorted().first(where: { !known.contains($0) && parts.contains($0.split(separator: ".").first ?? "") }) {
            throw CheckpointError("\(source): tensor '\(extra)' is not part of the configuration '\(config.name)' (depth \(config.depth)): the configuration does not describe the weights")
        }
        for e in layout.entries {
            let values = f.tensors[e.name]!.values
            if let i = values.firstIndex(where: { !$0.isFinite || abs($0) > maxWeightMagnitude }) {
                let v = values[i]
                throw CheckpointError("\(source): tensor '\(e.name)' holds \(v.isFinite ? "the weight \(v), beyond \(maxWeightMagnitude)" : "a non-finite weight (\(v))") at index \(i): the model is damaged")
            }
        }
        let params = try FloatBuffer(count: layout.total, purpose: "the weights of '\(config.name)'")
        for e in layout.entries {
            f.tensors[e.name]!.values.withUnsafeBufferPointer { (params.pointer + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
        return params
    }

    /// What a checkpoint of `kind` is called in messages.
    static func kindName(_ kind: String) -> String {
        kind == "model" ? "generator" : kind == RewardModel.kind ? "reward model" : kind
    }

    /// Loads a model checkpoint. If `expect` is given, the stored configuration must equal it.
    public static func load(_ url: URL, expect: ModelConfig? = nil) throws -> DiT {
        try load(SafeTensorsFile(contentsOf: url), source: url.path, expect: expect)
    }

    /// The model in a file already read (`source` names it in errors). `kind`: the file must be
    /// of this kind; nil: a generator (any kind but a reward model's: its weights draw nothing).
    public static func load(_ f: SafeTensorsFile, source: String, expect: ModelConfig? = nil, kind: String? = nil) throws -> DiT {
        let cfg = try config(of: f, source: source)
        let stored = f.metadata["kind"] ?? "model"
        if let kind, stored != kind {
            throw CheckpointError("\(source): a flowtune \(kindName(stored)) checkpoint, not a \(kindName(kind))"
                                  + (kind == RewardModel.kind ? " (train one with flowtune train-reward)" : ""))
        }
        if kind == nil, stored == RewardModel.kind {
            throw CheckpointError("\(source): a reward model (flowtune train-reward), not a generator: use it as a scorer, --reward rm:\(source)")
        }
        if let expect, expect != cfg {
            throw CheckpointError("\(source): configuration '\(cfg.name)' does not match the expected '\(expect.name)'")
        }
        let (vocabulary, trainedOn) = try world(of: f, config: cfg, source: source)
        let model = try DiT(config: cfg, params: params(from: f, config: cfg, source: source))
        model.vocabulary = vocabulary; model.trainedOn = trainedOn
        return model
    }

    /// The vocabulary and training data a file records, checked against its configuration: the
    /// network reads token ids of that vocabulary, and another size or text length would index
    /// out of its tables.
    public static func world(of f: SafeTensorsFile, config cfg: ModelConfig, source: String) throws -> (TextVocabulary, DataProvenance?) {
        let trainedOn: DataProvenance?
        do { trainedOn = try f.metadata[dataKey].map { try JSONDecoder().decode(DataProvenance.self, from: Data($0.utf8)) } }
        catch { throw CheckpointError("\(source): the training data in the metadata is unreadable") }
        guard let text = f.metadata[vocabularyKey] else {
            guard cfg.vocabSize == Tokenizer.vocabularySize, cfg.textLength == Tokenizer.maxTokens else {
                throw CheckpointError("\(source): the model reads \(cfg.vocabSize) token ids of \(cfg.textLength) tokens, the shapes grammar has \(Tokenizer.vocabularySize) ids of \(Tokenizer.maxTokens) tokens")
            }
            return (.shapes, trainedOn)
        }
        let v: WordVocabulary
        do {
            v = try JSONDecoder().decode(WordVocabulary.self, from: Data(text.utf8))
            try v.validate()
        } catch { throw CheckpointError("\(source): the vocabulary in the metadata is unreadable (\(error))") }
        guard cfg.vocabSize == v.size, cfg.textLength == v.textLength else {
            throw CheckpointError("\(source): the model reads \(cfg.vocabSize) token ids of \(cfg.textLength) tokens, its vocabulary has \(v.size) ids of \(v.textLength) tokens")
        }
        return (.words(v), trainedOn)
    }
}

/// Where a model trained on a folder of captioned images learnt: the folder and its fingerprint
/// then, how its images were read, and the held-out split (the images the gold metrics compare
/// against, never trained on).
public struct DataProvenance: Codable, Equatable, Sendable {
    public var folder: String            // as given to pretrain --data (a relative path is read from the working directory)
    public var checksum: String          // of its images and captions as read (ImageFolder.contentChecksum)
    public var images: Int               // usable images
    public var background: [UInt8]       // what transparent pixels were composited over
    public var skipBad: Bool
    public var heldOutFraction: Double
    public var splitSeed: UInt64
    public var heldOut: [String]         // the held-out files, relative to the folder
    public init(folder: String, checksum: String, images: Int, background: [UInt8], skipBad: Bool,
                heldOutFraction: Double, splitSeed: UInt64, heldOut: [String]) {
        self.folder = folder; self.checksum = checksum; self.images = images; self.background = background
        self.skipBad = skipBad; self.heldOutFraction = heldOutFraction; self.splitSeed = splitSeed; self.heldOut = heldOut
    }
    enum CodingKeys: String, CodingKey {
        case folder, checksum, images, background, skipBad = "skip_bad", heldOutFraction = "held_out_fraction"
        case splitSeed = "split_seed", heldOut = "held_out"
    }
}


/// `value` as JSON with its keys sorted: the same bytes every time (checkpoints are reproducible).
public func sortedJSON<T: Encodable>(_ value: T) throws -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    return String(decoding: try enc.encode(value), as: UTF8.self)
}
