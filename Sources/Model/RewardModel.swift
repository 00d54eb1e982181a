import Foundation
import Tensor
import Shapes

/// A learned reward model r_phi(image, prompt) -> one number: the DiT network read on the clean
/// image (t = 0), its score the mean of its output over the image's pixel values. The mean of the
/// final linear layer's outputs is a learned linear readout of the image tokens, each of which
/// has attended to the prompt's tokens and been modulated by the pooled prompt, so the score
/// depends on what is where in the image and on what the prompt asks. Forward and backward are
/// the DiT's (the same kernels as the generator's).
///
/// A trained model also carries the mean and standard deviation of its raw scores on the images
/// it was trained on: `normalised` scores are (raw - mean) / std, so that members of an
/// ensemble, whose Bradley-Terry scores have arbitrary offsets and scales, are combined on one
/// scale.
public final class RewardModel {
    public static let kind = "reward-model"
    public let net: DiT
    public var scoreMean: Float = 0
    public var scoreStd: Float = 1
    public var config: ModelConfig { net.config }
    public var parameterCount: Int { net.parameterCount }

    /// The sizes by name, smallest first: each is a generator configuration of the shapes world
    /// (32x32), started by default from a generator of that configuration pretrained by flowtune
    /// (its backbone), as the field's reward models start from pretrained CLIP or BLIP.
    public static let presets: [(name: String, config: String, backbone: String)] = [
        ("rm-tiny", "tiny32", "models/backbone-tiny32.safetensors"),
        ("rm-small", "small", "models/backbone-small.safetensors"),
        ("rm-large", "s32c", "models/base-s32c.safetensors"),
    ]
    public static var presetNames: String { presets.map(\.name).joined(separator: ", ") }

    static func preset(_ name: String) throws -> (name: String, config: String, backbone: String) {
        guard let p = presets.first(where: { $0.name == name }) else {
            throw ModelError("unknown reward model size '\(name)'; known: \(presetNames)")
        }
        return p
    }

    /// The network configuration of a size.
    public static func config(preset: String) throws -> ModelConfig {
        try ModelConfig.named(try Self.preset(preset).config, vocabSize: Tokenizer.vocabularySize)
    }

    /// The pretrained generator a size starts from by default.
    public static func backbone(preset: String) throws -> String { try Self.preset(preset).backbone }

    public init(net: DiT) { self.net = net }

    public convenience init(config: ModelConfig, seed: UInt64) throws {
        self.init(net: try DiT(config: config, seed: seed))
    }

    /// Raw scores of a batch of B images (B, S, S, C) in [-1, 1] with their token ids (B, L).
    /// The activations stay in `ws` for `backward`.
    public func scores(_ ws: Workspace, images: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, batch B: Int) -> [Float] {
        let zeros = [Float](repeating: 0, count: B)
        let n = config.pixelsPerImage
        let v = zeros.withUnsafeBufferPointer { net.forward(ws, x: images, t: $0.baseAddress!, tokens: tokens, batch: B) }
        return (0..<B).map { b in
            var s: Double = 0
            for i in 0..<n { s += Double(v[b * n + i]) }
            return Float(s / Double(n))
        }
    }

    /// Accumulates d(loss)/d(phi) into `net.grads` given d(loss)/d(raw score) of each image of
    /// the last `scores` call on `ws`.
    public func backward(_ ws: Workspace, dScores: [Float]) {
        let n = config.pixelsPerImage, B = dScores.count
        var dv = [Float](repeating: 0, count: B * n)
        for b in 0..<B { for i in 0..<n { dv[b * n + i] = dScores[b] / Float(n) } }
        dv.withUnsafeBufferPointer { net.backward(ws, dv: $0.baseAddress!, batch: B) }
    }

    /// The inference workspace of `scoreAll`, kept for the next call while it is large enough.
    var inference: Workspace?

    /// Raw scores of many images, `batch` at a time, in an inference workspace.
    public func scoreAll(images: [Float], tokens: [Int32], batch: Int = 64) throws -> [Float] {
        let n = config.pixelsPerImage, L = config.textLength
        let count = images.count / n
        guard count * n == images.count, tokens.count == count * L else {
            throw ModelError("reward model '\(config.name)': \(images.count) pixel values and \(tokens.count) tokens are not whole images of \(n) values with \(L) tokens each")
        }
        let needed = max(1, min(batch, count))
        if inference.map({ $0.batch < needed }) ?? true { inference = try net.makeWorkspace(batch: needed, training: false) }
        let ws = inference!
        var out: [Float] = []
        out.reserveCapacity(count)
        var start = 0
        while start < count {
            let B = min(needed, count - start)
            images.withUnsafeBufferPointer { im in tokens.withUnsafeBufferPointer { tk in
                out += scores(ws, images: im.baseAddress! + start * n, tokens: tk.baseAddress! + start * L, batch: B)
            } }
            start += B
        }
        return out
    }

    /// (raw - mean) / std with the stored statistics.
    public func normalised(_ raw: [Float]) -> [Float] { raw.map { ($0 - scoreMean) / scoreStd } }

    // MARK: files

    /// Metadata keys of a reward model file (beside the checkpoint's own).
    public enum Key {
        public static let scoreMean = "score_mean", scoreStd = "score_std", agreement = "agreement", pairs = "pairs"
        public static let gold = "gold", loss = "loss", labelNoise = "label_noise", base = "base_model", preset = "preset"
        public static let heldOutPairs = "held_out_pairs", seed = "seed", step = "step"
    }

    /// The safetensors file of this model with `extra` metadata (agreement, data size, gold...).
    public func file(extra: [String: String]) throws -> SafeTensorsFile {
        var meta = extra
        meta[Key.scoreMean] = "\(scoreMean)"; meta[Key.scoreStd] = "\(scoreStd)"
        return try Checkpoint.file(config: config, params: net.params, kind: Self.kind, extra: meta)
    }

    /// Loads a reward model file: a flowtune checkpoint of kind "reward-model" with every check
    /// the generator's loading makes (shapes, finite weights, this tokenizer), and finite
    /// normalisation statistics. A generator or a foreign file is an error naming the file.
    public static func load(_ url: URL) throws -> (model: RewardModel, metadata: [String: String]) {
        let f = try SafeTensorsFile(contentsOf: url)
        let source = url.path
        let net = try Checkpoint.load(f, source: source, kind: Self.kind)
        let rm = RewardModel(net: net)
        guard let mean = f.metadata[Key.scoreMean].flatMap(Float.init), let std = f.metadata[Key.scoreStd].flatMap(Float.init),
              mean.isFinite, std.isFinite, std > 0 else {
            throw CheckpointError("\(source): the reward model's score statistics (score_mean, score_std) are missing or not finite positive numbers")
        }
        rm.scoreMean = mean; rm.scoreStd = std
        return (rm, f.metadata)
    }
}
