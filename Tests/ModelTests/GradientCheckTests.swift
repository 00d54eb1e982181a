import Testing
import TestSupport
import Analysis
import Tensor
import Model
import Shapes

/// Finite-difference checks of the whole network's backward pass on the tiny configuration.
@Suite struct ModelGradientTests {
    static func inputs(_ m: DiT, batch B: Int, seed: UInt64) throws -> ([Float], [Float], [Int32]) {
        var rng = RNG(seed: seed)
        let x = rng.normals(B * m.config.pixelsPerImage)
        let t = (0..<B).map { _ in rng.uniform(0.05, 0.95) }
        let prompts = ["a red circle on a blue background", "two green squares on a black background",
                       "a small yellow triangle at the top left on a gray background"]
        var tokens: [Int32] = []
        for b in 0..<B { tokens += b == B - 1 ? Tokenizer.nullTokens : try Tokenizer.encode(prompts[b % prompts.count]) }
        return (x, t, tokens)
    }

    /// loss = sum_i v_i R_i, accumulated in double precision.
    static func loss(_ m: DiT, _ ws: Workspace, _ x: [Float], _ t: [Float], _ tok: [Int32], _ r: [Float]) -> Double {
        let v = m.forward(ws, x: x, t: t, tokens: tok, batch: t.count)
        var s = 0.0
        for i in 0..<r.count { s += Double(v[i]) * Double(r[i]) }
        return s
    }

    @Test(arguments: KernelPath.available, [false, true])
    func fullNetworkGradientMatchesFiniteDifferences(path: KernelPath, convHead: Bool) throws {
        try Compute(kernels: path).run { try Self.fullNetworkGradient(convHead: convHead) }
    }

    static func fullNetworkGradient(convHead: Bool) throws {
        let m = try randomModel(convHead: convHead)
        let B = 3
        let (x, t, tok) = try Self.inputs(m, batch: B, seed: 7)
        var rng = RNG(seed: 9)
        let r = rng.normals(B * m.config.pixelsPerImage)
        let ws = try m.makeWorkspace(batch: B, training: true)
        _ = Self.loss(m, ws, x, t, tok, r)
        m.grads.zero()
        m.backward(ws, dv: r, batch: B)
        let analytic = m.grads.copy()
        // a few entries of every parameter tensor
        var checked = 0, worst: Float = 0
        for e in m.layout.entries {
            for k in 0..<4 {
                let i = e.offset + (k * 7919 + 13) % e.count
                let orig = m.params[i]
                let h: Float = 1e-2
                m.params[i] = orig + h
                let lp = Self.loss(m, ws, x, t, tok, r)
                m.params[i] = orig - h
                let lm = Self.loss(m, ws, x, t, tok, r)
                m.params[i] = orig
                let numeric = Float((lp - lm) / (2 * Double(h)))
                let a = analytic[i]
                let err = abs(numeric - a) / max(1, abs(numeric), abs(a))
                worst = max(worst, err)
                #expect(err < 2e-2, "\(e.name)[\(i - e.offset)]: analytic \(a), numeric \(numeric)")
                checked += 1
            }
        }
        #expect(checked == m.layout.entries.count * 4)
        #expect(worst < 2e-2)
    }

    @Test func padTokensDoNotChangeTheOutput() throws {
        // The same prompt with a different token in a PAD slot's embedding row must give the same v:
        // pads are masked out of attention keys and of the pooled text.
        let m = try randomModel(seed: 3)
        let (x, t, tok) = try Self.inputs(m, batch: 2, seed: 5)
        let ws = try m.makeWorkspace(batch: 2, training: false)
        let v1 = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: t, tokens: tok, batch: 2), count: 2 * m.config.pixelsPerImage))
        let padRow = m.layout.offset("token_embed.weight")
        for i in 0..<m.config.width { m.params[padRow + i] += 1 }   // change the PAD embedding
        let v2 = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: t, tokens: tok, batch: 2), count: 2 * m.config.pixelsPerImage))
        var d: Float = 0
        for i in v1.indices { d = max(d, abs(v1[i] - v2[i])) }
        #expect(d < 1e-5)
    }

    /// Prompts of different lengths share a batch (each sample's rows end at its last non-PAD
    /// token, so the samples' rows lie back to back at varying offsets): each velocity equals the
    /// one of its sample alone, on every kernel path. A PAD inside a prompt is a masked row.
    @Test(arguments: KernelPath.available)
    func samplesOfDifferentLengthsInOneBatchAreIndependent(path: KernelPath) throws {
        try Compute(kernels: path).run {
            let m = try randomModel(seed: 8)
            let (x, t, _) = try Self.inputs(m, batch: 4, seed: 9)
            var inner = try Tokenizer.encode("a red circle on a blue background")
            inner.insert(Tokenizer.pad, at: 2); inner.removeLast()          // a PAD inside the prompt
            let tokens = try Tokenizer.encode("a small yellow triangle at the top left on a gray background") + Tokenizer.nullTokens
                + inner + Tokenizer.encode("three circles")
            let n = m.config.pixelsPerImage, L = m.config.textLength
            let ws = try m.makeWorkspace(batch: 4, training: false), one = try m.makeWorkspace(batch: 1, training: false)
            let together = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: t, tokens: tokens, batch: 4), count: 4 * n))
            for b in 0..<4 {
                let alone = Array(UnsafeBufferPointer(start: m.forward(one, x: Array(x[(b * n)..<((b + 1) * n)]), t: [t[b]],
                                                                       tokens: Array(tokens[(b * L)..<((b + 1) * L)]), batch: 1), count: n))
                let worst = zip(alone, together[(b * n)..<((b + 1) * n)]).map { abs($0 - $1) }.max()!
                #expect(worst < 1e-5, "sample \(b): \(worst)")
            }
        }
    }

    @Test func s32HasTheSpecifiedParameterCountWithThePeerVocabulary() throws {
        let m = try DiT(config: .s32(vocabSize: 19))
        #expect(m.parameterCount == 1_286_832)
        #expect(abs(m.config.flopsPerImage - 141.46e6) < 0.01e6)
    }

    @Test func convolutionalHeadCostsAtMostFivePercentMoreFlops() throws {
        let plain = ModelConfig.s32(vocabSize: Tokenizer.vocabularySize), conv = ModelConfig.s32c(vocabSize: Tokenizer.vocabularySize)
        let m = try DiT(config: conv)
        #expect(m.parameterCount == 1_289_520 + 128 * (16 * 16 - 48) + (16 * 16 - 48) + 3 * 16 * 9 + 3)
        #expect(conv.flopsPerImage > plain.flopsPerImage)
        #expect(conv.flopsPerImage <= 1.05 * plain.flopsPerImage)
    }

    @Test func convolutionalHeadStartsAtZeroVelocityAndLearns() throws {
        // adaLN-Zero: the zero convolution gives v = 0 at initialisation; its weight gradient is not 0
        // (the final linear before it is random), so training can move it.
        let m = try DiT(config: .s32c(vocabSize: Tokenizer.vocabularySize), seed: 3)
        let (x, t, tok) = try Self.inputs(m, batch: 2, seed: 6)
        let ws = try m.makeWorkspace(batch: 2, training: true)
        let v = m.forward(ws, x: x, t: t, tokens: tok, batch: 2)
        #expect((0..<(2 * m.config.pixelsPerImage)).allSatisfy { v[$0] == 0 })
        m.grads.zero()
        m.backward(ws, dv: x, batch: 2)
        let e = m.layout.entry("final.conv.weight")!
        #expect((e.offset..<(e.offset + e.count)).contains { m.grads[$0] != 0 })
    }

    /// Every kernel path computes the same network to float rounding (the s32 shapes, whose
    /// strides the own GEMM reads in place, and the tiny ones, which it packs).
    @Test(.enabled(if: KernelPath.available.count > 1, "one kernel path on this CPU"))
    func kernelPathsAgree() throws {
        for config in [ModelConfig.s32(vocabSize: Tokenizer.vocabularySize), .tiny(vocabSize: Tokenizer.vocabularySize)] {
            let m = try DiT(config: config, seed: 5)
            var rng = RNG(seed: 8)
            for i in 0..<m.params.count { m.params[i] += rng.normal() * 0.05 }
            let (x, t, tok) = try Self.inputs(m, batch: 3, seed: 9)
            let n = 3 * config.pixelsPerImage
            let outs = try KernelPath.available.map { path in
                try Compute(kernels: path, workers: 2).run {
                    let ws = try m.makeWorkspace(batch: 3, training: true)
                    let v = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: t, tokens: tok, batch: 3), count: n))
                    m.grads.zero()
                    m.backward(ws, dv: x, batch: 3)
                    return (v, m.grads.array)
                }
            }
            for o in outs.dropFirst() {
                let dv = zip(o.0, outs[0].0).map { abs($0 - $1) }.max()!
                let dg = zip(o.1, outs[0].1).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                #expect(dv < 1e-4, "\(config.name): |v difference| \(dv)")
                #expect(dg < 1e-3, "\(config.name): gradient difference \(dg)")
            }
        }
    }

    /// A convolutional-head network initialised from a plain one computes the same velocity.
    @Test func convolutionalHeadInitialisedFromAPlainNetworkComputesTheSameVelocity() throws {
        let plain = try randomModel(seed: 31)
        var c = plain.config
        c.name = "tinyc"; c.headChannels = 6
        let conv = try DiT(config: c, seed: 2)
        #expect(try conv.initialise(from: plain).isEmpty)
        let (x, t, tok) = try Self.inputs(plain, batch: 3, seed: 4)
        let n = 3 * c.pixelsPerImage
        // the velocity lives in the workspace: keep each one alive until it is copied out
        let plainWS = try plain.makeWorkspace(batch: 3, training: false), convWS = try conv.makeWorkspace(batch: 3, training: false)
        let a = withExtendedLifetime(plainWS) { Array(UnsafeBufferPointer(start: plain.forward(plainWS, x: x, t: t, tokens: tok, batch: 3), count: n)) }
        let b = withExtendedLifetime(convWS) { Array(UnsafeBufferPointer(start: conv.forward(convWS, x: x, t: t, tokens: tok, batch: 3), count: n)) }
        #expect(zip(a, b).map { abs($0 - $1) }.max()! < 1e-5)
        // and a network of another width cannot be
        #expect(throws: ModelError.self) { try DiT(config: .small(vocabSize: Tokenizer.vocabularySize)).initialise(from: plain) }
    }

    @Test func trainingAndInferenceWorkspacesAgree() throws {
        let m = try DiT(config: .small(vocabSize: Tokenizer.vocabularySize), seed: 2)
        var rng = RNG(seed: 4)
        for i in 0..<m.params.count { m.params[i] = rng.normal() * 0.05 }
        let (x, t, tok) = try Self.inputs(m, batch: 2, seed: 6)
        let a = try m.makeWorkspace(batch: 2, training: true), b = try m.makeWorkspace(batch: 4, training: false)
        let va = Array(UnsafeBufferPointer(start: m.forward(a, x: x, t: t, tokens: tok, batch: 2), count: 2 * m.config.pixelsPerImage))
        let vb = Array(UnsafeBufferPointer(start: m.forward(b, x: x, t: t, tokens: tok, batch: 2), count: 2 * m.config.pixelsPerImage))
        #expect(va == vb)
    }
}
