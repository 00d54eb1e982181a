import Tensor

/// Every parameter of the network lives in one flat buffer; this is the table of named views
/// into it (llm.c style). Names follow PyTorch conventions so checkpoints read naturally.
public struct ParamLayout: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
    }
    public private(set) var entries: [Entry] = []
    public private(set) var total = 0
    private var index: [String: Int] = [:]

    mutating func add(_ name: String, _ shape: [Int]) {
        index[name] = entries.count
        entries.append(Entry(name: name, shape: shape, offset: total))
        total += shape.reduce(1, *)
    }
    public func offset(_ name: String) -> Int { entries[index[name]!].offset }
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// A layout of the given tensors, in order (the critic's).
    public init(_ tensors: [(name: String, shape: [Int])]) {
        for t in tensors { add(t.name, t.shape) }
    }

    /// The DiT's layout for a configuration.
    public init(_ c: ModelConfig) {
        let D = c.width
        add("patch_embed.weight", [D, c.patchDim]); add("patch_embed.bias", [D])
        add("token_embed.weight", [c.vocabSize, D])
        add("text_pos", [c.textLength, D])
        add("t_mlp.0.weight", [D, c.freqDim]); add("t_mlp.0.bias", [D])
        add("t_mlp.2.weight", [D, D]); add("t_mlp.2.bias", [D])
        add("text_proj.weight", [D, D]); add("text_proj.bias", [D])
        for l in 0..<c.depth {
            let p = "blocks.\(l)."
            add(p + "adaLN.weight", [6 * D, D]); add(p + "adaLN.bias", [6 * D])
            add(p + "qkv.weight", [3 * D, D]); add(p + "qkv.bias", [3 * D])
            add(p + "proj.weight", [D, D]); add(p + "proj.bias", [D])
            add(p + "fc1.weight", [c.hidden, D]); add(p + "fc1.bias", [c.hidden])
            add(p + "fc2.weight", [D, c.hidden]); add(p + "fc2.bias", [D])
        }
        add("final.adaLN.weight", [2 * D, D]); add("final.adaLN.bias", [2 * D])
        add("final.linear.weight", [c.outPatchDim, D]); add("final.linear.bias", [c.outPatchDim])
        if c.convHead { add("final.conv.weight", [c.channels, c.headChannels, 3, 3]); add("final.conv.bias", [c.channels]) }
    }

    /// Weight decay applies to the matrices of linear layers only (not biases, embeddings, positions).
    public var decayMask: [Bool] {
        var m = [Bool](repeating: false, count: total)
        for e in entries where e.name.hasSuffix(".weight") && (e.shape.count == 2 || e.shape.count == 4) && !e.name.hasPrefix("token_embed") {
            for i in e.offset..<(e.offset + e.count) { m[i] = true }
        }
        return m
    }

    /// DiT initialisation: Xavier-uniform linears, N(0, 0.02) embeddings and timestep MLP,
    /// zeros for biases, every adaLN modulation and the last layer (adaLN-Zero): the final linear,
    /// or with a convolutional head the convolution (the final linear is then Xavier, so that the
    /// convolution's gradient is not zero at the start).
    public func initialise(_ params: FloatBuffer, rng: inout RNG) {
        params.zero()
        let convHead = entry("final.conv.weight") != nil
        for e in entries where e.shape.count == 2 {
            let p = params.pointer + e.offset
            if e.name.contains("adaLN") || (e.name.hasPrefix("final.linear") && !convHead) { continue }
            if e.name.hasPrefix("token_embed") || e.name == "text_pos" || e.name.hasPrefix("t_mlp") {
                for i in 0..<e.count { p[i] = rng.normal() * 0.02 }
            } else {
                let bound = (6 / Float(e.shape[0] + e.shape[1])).squareRoot()
                for i in 0..<e.count { p[i] = rng.uniform(-bound, bound) }
            }
        }
    }
}
