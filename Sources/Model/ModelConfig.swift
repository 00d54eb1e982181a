/// The velocity network's configuration: a plain value, stored in every checkpoint.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var name: String
    public var imageSize: Int        // image side in pixels
    public var channels: Int = 3     // RGB
    public var patch: Int            // patch side; tokens = (imageSize / patch)^2
    public var width: Int            // D, the token width
    public var depth: Int            // number of DiT blocks
    public var heads: Int            // attention heads (head dim = width / heads)
    public var mlpRatio: Int = 4     // MLP hidden = mlpRatio * width
    public var textLength: Int = 16  // L, text tokens (padded)
    public var vocabSize: Int        // token embedding rows (PAD, NULL and the words)
    public var freqDim: Int          // sinusoidal timestep features
    /// Output head. 0: the final linear layer emits each patch's pixels (the s32 network).
    /// K > 0: it emits K feature channels per pixel, and a 3x3 convolution (padding 1) maps the
    /// unpatchified (S, S, K) feature map to RGB (the s32c network).
    public var headChannels: Int = 0

    public init(name: String, imageSize: Int, patch: Int, width: Int, depth: Int, heads: Int,
                vocabSize: Int, freqDim: Int = 128, textLength: Int = 16) {
        self.name = name; self.imageSize = imageSize; self.patch = patch; self.width = width; self.depth = depth
        self.heads = heads; self.vocabSize = vocabSize; self.freqDim = freqDim; self.textLength = textLength
    }

    public var patchesPerSide: Int { imageSize / patch }
    public var imageTokens: Int { patchesPerSide * patchesPerSide }        // P
    public var tokens: Int { textLength + imageTokens }                   // T = L + P
    public var patchDim: Int { patch * patch * channels }                 // values per patch
    public var convHead: Bool { headChannels > 0 }
    public var outChannels: Int { convHead ? headChannels : channels }    // channels the final linear emits per pixel
    public var outPatchDim: Int { patch * patch * outChannels }           // values the final linear emits per patch
    public var headDim: Int { width / heads }
    public var hidden: Int { mlpRatio * width }
    public var pixelsPerImage: Int { imageSize * imageSize * channels }   // D in the algorithms
    /// The token ids the network reads as "no prompt" (classifier-free guidance): NULL (1), then
    /// PAD (0), which the network masks out. The tokenizer gives the same ids.
    public var nullTokens: [Int32] { [1] + [Int32](repeating: 0, count: textLength - 1) }

    /// Matmul + attention FLOPs (2 x MACs) for one image through the network once (one NFE):
    /// the PyTorch peer's formula, so that GFLOP/s figures compare (the convolutional head adds its own).
    public var flopsPerImage: Double {
        let P = Double(imageTokens), N = Double(tokens), D = Double(width), K = Double(patchDim), F = Double(freqDim)
        let H = Double(hidden)
        let perBlock = 6 * D * D + N * (3 * D * D + D * D + 2 * D * H) + 2 * N * N * D
        let head = P * D * Double(outPatchDim) + (convHead ? Double(imageSize * imageSize * 9 * headChannels * channels) : 0)
        let macs = P * K * D + F * D + 2 * D * D + Double(depth) * perBlock + 2 * D * D + head
        return 2 * macs
    }

    /// Checks that the configuration describes a buildable network of the shapes world. Every
    /// size is bounded (a corrupt checkpoint's metadata cannot make a size computation overflow).
    public func validate() throws {
        func bad(_ why: String) -> ModelError { ModelError("model configuration '\(name)': \(why)") }
        guard (16...256).contains(imageSize) else {
            throw bad("image size \(imageSize): the shapes world's renderer and checker work from 16 to 256 pixels")
        }
        guard patch > 0, imageSize % patch == 0 else { throw bad("image size \(imageSize) is not a multiple of patch \(patch)") }
        for (what, value, limit) in [("width", width, 4096), ("depth", depth, 256), ("heads", heads, 256), ("text length", textLength, 4096),
                                     ("vocabulary size", vocabSize, 1 << 20), ("frequency dimension", freqDim, 4096),
                                     ("MLP ratio", mlpRatio, 16), ("head channels", headChannels, 256)] {
            guard value <= limit else { throw bad("\(what) \(value) is larger than \(limit)") }
        }
        guard width > 0, heads > 0, width % heads == 0 else { throw bad("width \(width) is not a multiple of heads \(heads)") }
        guard depth > 0, textLength > 0, vocabSize > 2, freqDim > 0, freqDim % 2 == 0, mlpRatio > 0, channels == 3, headChannels >= 0 else {
            throw bad("depth, text length, frequency dimension and MLP ratio must be positive, the vocabulary larger than 2, 3 channels")
        }
    }

    /// The compact model of the PyTorch peer: 32x32, patch 4, width 128, 4 blocks, 4 heads.
    public static func s32(vocabSize: Int) -> ModelConfig {
        ModelConfig(name: "s32", imageSize: 32, patch: 4, width: 128, depth: 4, heads: 4, vocabSize: vocabSize)
    }
    /// s32 with a convolutional output head: 16 feature channels per pixel, then a 3x3 convolution to RGB.
    public static func s32c(vocabSize: Int) -> ModelConfig {
        var c = s32(vocabSize: vocabSize)
        c.name = "s32c"; c.headChannels = 16
        return c
    }
    /// A tiny configuration for tests: 16x16, patch 4, width 32, 1 block, 2 heads.
    public static func tiny(vocabSize: Int) -> ModelConfig {
        ModelConfig(name: "tiny", imageSize: 16, patch: 4, width: 32, depth: 1, heads: 2, vocabSize: vocabSize, freqDim: 32)
    }
    /// The tiny network at the shapes world's 32x32: width 32, 1 block, 2 heads (the smallest
    /// reward model's backbone).
    public static func tiny32(vocabSize: Int) -> ModelConfig {
        ModelConfig(name: "tiny32", imageSize: 32, patch: 4, width: 32, depth: 1, heads: 2, vocabSize: vocabSize, freqDim: 32)
    }
    /// A small configuration for quick experiments: 32x32, width 64, 2 blocks.
    public static func small(vocabSize: Int) -> ModelConfig {
        ModelConfig(name: "small", imageSize: 32, patch: 4, width: 64, depth: 2, heads: 2, vocabSize: vocabSize, freqDim: 64)
    }

    public static func named(_ name: String, vocabSize: Int) throws -> ModelConfig {
        switch name {
        case "s32": return .s32(vocabSize: vocabSize)
        case "s32c": return .s32c(vocabSize: vocabSize)
        case "tiny": return .tiny(vocabSize: vocabSize)
        case "small": return .small(vocabSize: vocabSize)
        case "tiny32": return .tiny32(vocabSize: vocabSize)
        default: throw ModelError("unknown model configuration '\(name)'; known: s32, s32c, small, tiny, tiny32")
        }
    }
}

extension ModelConfig {
    enum CodingKeys: String, CodingKey {
        case name, imageSize, channels, patch, width, depth, heads, mlpRatio, textLength, vocabSize, freqDim, headChannels
    }
    /// Checkpoints written before the convolutional head have no `headChannels`: they are plain heads.
    public init(from decoder: Decoder) throws {
        let k = try decoder.container(keyedBy: CodingKeys.self)
        name = try k.decode(String.self, forKey: .name)
        imageSize = try k.decode(Int.self, forKey: .imageSize)
        channels = try k.decodeIfPresent(Int.self, forKey: .channels) ?? 3
        patch = try k.decode(Int.self, forKey: .patch)
        width = try k.decode(Int.self, forKey: .width)
        depth = try k.decode(Int.self, forKey: .depth)
        heads = try k.decode(Int.self, forKey: .heads)
        mlpRatio = try k.decodeIfPresent(Int.self, forKey: .mlpRatio) ?? 4
        textLength = try k.decodeIfPresent(Int.self, forKey: .textLength) ?? 16
        vocabSize = try k.decode(Int.self, forKey: .vocabSize)
        freqDim = try k.decode(Int.self, forKey: .freqDim)
        headChannels = try k.decodeIfPresent(Int.self, forKey: .headChannels) ?? 0
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
