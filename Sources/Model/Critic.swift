import Tensor
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The part AC-Flow's critics share: a time embedding sinusoidal(1000 t, F) -> Linear(F, W)
/// written into some W columns of the concatenation of their inputs (B, C), and the head on that
/// concatenation, LayerNorm -> Linear(C, W) -> GELU -> Linear(W, 1) -> tanh, with its backward.
/// Its parameters are the entries "time.*", "hidden.*" and "out.*" of the critic's layout.
protocol ValueHeadNetwork: AnyObject {
    var width: Int { get }
    var freqDim: Int { get }
    var params: FloatBuffer { get }
    var grads: FloatBuffer { get }
    var layout: ParamLayout { get }
}

/// A critic's saved activations for one batch: the head's (the concatenation of its inputs on);
/// the pixel critic keeps its own on top.
public class ValueHeadActivations {
    let B: Int, C: Int
    var tf, cat, ln, mean, rstd, h, g2, o: [Float]
    public var value: [Float]       // (B) V in (-1, 1)
    init(B: Int, inputs C: Int, width W: Int, freqDim: Int) {
        self.B = B; self.C = C
        tf = [Float](repeating: 0, count: B * freqDim)
        cat = [Float](repeating: 0, count: B * C); ln = cat
        mean = [Float](repeating: 0, count: B); rstd = mean
        h = [Float](repeating: 0, count: B * W); g2 = h
        o = [Float](repeating: 0, count: B); value = o
    }
}

/// The critics' initialisation: Glorot-uniform matrices (or N(0, 0.02) where `small`), zero biases.
func initialiseCritic(_ params: FloatBuffer, _ layout: ParamLayout, seed: UInt64, small: (String) -> Bool = { _ in false }) {
    var rng = RNG(seed: seed)
    for e in layout.entries where e.shape.count == 2 {
        let p = params.pointer + e.offset
        let bound = (6 / Float(e.shape[0] + e.shape[1])).squareRoot()
        let isSmall = small(e.name)
        for i in 0..<e.count { p[i] = isSmall ? rng.normal() * 0.02 : rng.uniform(-bound, bound) }
    }
}

extension ValueHeadNetwork {
    @inline(__always) func p(_ n: String) -> UnsafeMutablePointer<Float> { params.pointer + layout.offset(n) }
    @inline(__always) func g(_ n: String) -> UnsafeMutablePointer<Float> { grads.pointer + layout.offset(n) }

    /// The time embedding of t (B) into columns column..<column+W of `a.cat`.
    func timeForward(_ a: ValueHeadActivations, t: [Float], column: Int) {
        let B = a.B, W = width
        timestepFeatures(out: &a.tf, t: t, batch: B, dim: freqDim)
        var te = [Float](repeating: 0, count: B * W)
        linearForward(out: &te, inp: a.tf, weight: p("time.weight"), bias: p("time.bias"), n: B, inFeatures: freqDim, outFeatures: W)
        for b in 0..<B { for i in 0..<W { a.cat[b * a.C + column + i] = te[b * W + i] } }
    }

    /// V from the filled `a.cat`.
    func headForward(_ a: ValueHeadActivations) {
        let B = a.B, C = a.C, W = width
        layerNormForward(out: &a.ln, mean: &a.mean, rstd: &a.rstd, inp: a.cat, n: B, c: C)
        linearForward(out: &a.h, inp: a.ln, weight: p("hidden.weight"), bias: p("hidden.bias"), n: B, inFeatures: C, outFeatures: W)
        geluForward(out: &a.g2, inp: a.h, count: B * W)
        linearForward(out: &a.o, inp: a.g2, weight: p("out.weight"), bias: p("out.bias"), n: B, inFeatures: W, outFeatures: 1)
        for b in 0..<B { a.value[b] = Float(tanh(Double(a.o[b]))) }
    }

    /// Accumulates the head's gradients given dL/dV (B) and returns dL/dcat (B, C).
    func headBackward(_ a: ValueHeadActivations, dValue: [Float]) -> [Float] {
        let B = a.B, C = a.C, W = width
        let dO = (0..<B).map { dValue[$0] * (1 - a.value[$0] * a.value[$0]) }
        var dg2 = [Float](repeating: 0, count: B * W)
        linearBackward(dinp: &dg2, dweight: g("out.weight"), dbias: g("out.bias"), dout: dO, inp: a.g2, weight: p("out.weight"),
                       n: B, inFeatures: W, outFeatures: 1)
        var dh = [Float](repeating: 0, count: B * W)
        geluBackward(dinp: &dh, dout: dg2, inp: a.h, count: B * W)
        var dln = [Float](repeating: 0, count: B * C)
        linearBackward(dinp: &dln, dweight: g("hidden.weight"), dbias: g("hidden.bias"), dout: dh, inp: a.ln, weight: p("hidden.weight"),
                       n: B, inFeatures: C, outFeatures: W)
        var dcat = [Float](repeating: 0, count: B * C)
        layerNormBackward(dinp: &dcat, dout: dln, inp: a.cat, mean: a.mean, rstd: a.rstd, n: B, c: C)
        return dcat
    }

    /// Accumulates the time embedding's gradients from columns column..<column+W of dL/dcat.
    func timeBackward(_ a: ValueHeadActivations, dcat: [Float], column: Int) {
        let B = a.B, W = width
        var dte = [Float](repeating: 0, count: B * W)
        for b in 0..<B { for i in 0..<W { dte[b * W + i] = dcat[b * a.C + column + i] } }
        linearBackward(dinp: nil, dweight: g("time.weight"), dbias: g("time.bias"), dout: dte, inp: a.tf, weight: p("time.weight"),
                       n: B, inFeatures: freqDim, outFeatures: W)
    }
}

/// AC-Flow's lightweight critic V_phi(x_t, t, prompt) in (-1, 1):
///
///     patches (B, P, pp) -> Linear(pp, W) [+ pos (P, W)] -> GELU -> mean     (B, W)  image
///     sinusoidal(1000 t, F) -> Linear(F, W)                                  (B, W)  time
///     mean of its own token embeddings over non-pad tokens                   (B, W)  prompt
///     concat (B, 3W) -> LayerNorm -> Linear(3W, W) -> GELU -> Linear(W, 1) -> tanh
///
/// With `positions`, each patch's features get a learned embedding of its place before the
/// nonlinearity, so the pooled features can tell where things are (without, a mean over patches
/// cannot). Explicit forward/backward like the DiT; `backward(dV)` accumulates into `grads`.
public final class Critic: ValueHeadNetwork {
    public let width: Int
    public let freqDim = 32
    let model: ModelConfig
    public let params: FloatBuffer
    public let grads: FloatBuffer
    public let layout: ParamLayout
    public let positions: Bool

    public init(model: ModelConfig, width: Int, positions: Bool = false, seed: UInt64) {
        self.model = model; self.width = width; self.positions = positions
        let W = width
        layout = ParamLayout([("patch.weight", [W, model.patchDim]), ("patch.bias", [W]), ("time.weight", [W, freqDim]), ("time.bias", [W]),
                              ("token_embed.weight", [model.vocabSize, W]), ("hidden.weight", [W, 3 * W]), ("hidden.bias", [W]),
                              ("out.weight", [1, W]), ("out.bias", [1])] + (positions ? [("pos_embed", [model.imageTokens, W])] : []))
        params = FloatBuffer(count: layout.total); grads = FloatBuffer(count: layout.total)
        initialiseCritic(params, layout, seed: seed, small: { $0.hasPrefix("token") || $0 == "pos_embed" })
    }

    /// Saved activations for one batch: the head's, and the image and prompt branches'.
    public final class Activations: ValueHeadActivations {
        var patches, a1, g1, pooled: [Float]
        var tokens: [Int32], counts: [Float]
        init(B: Int, c: Critic) {
            let P = c.model.imageTokens, W = c.width
            patches = [Float](repeating: 0, count: B * P * c.model.patchDim)
            a1 = [Float](repeating: 0, count: B * P * W); g1 = a1
            pooled = [Float](repeating: 0, count: B * W)
            tokens = []; counts = [Float](repeating: 1, count: B)
            super.init(B: B, inputs: 3 * W, width: W, freqDim: c.freqDim)
        }
    }

    /// V for x (B, S, S, C), t (B), tokens (B, L).
    public func forward(x: [Float], t: [Float], tokens: [Int32]) -> Activations {
        let B = t.count, P = model.imageTokens, pp = model.patchDim, W = width, L = model.textLength
        let a = Activations(B: B, c: self)
        a.tokens = tokens
        patchify(model, &a.patches, x, batch: B)
        linearForward(out: &a.a1, inp: a.patches, weight: p("patch.weight"), bias: p("patch.bias"), n: B * P, inFeatures: pp, outFeatures: W)
        if positions {
            let pos = p("pos_embed")
            for b in 0..<B { for j in 0..<(P * W) { a.a1[b * P * W + j] += pos[j] } }
        }
        geluForward(out: &a.g1, inp: a.a1, count: B * P * W)
        for b in 0..<B { for q in 0..<P { for i in 0..<W { a.pooled[b * W + i] += a.g1[(b * P + q) * W + i] / Float(P) } } }
        for b in 0..<B { for i in 0..<W { a.cat[b * 3 * W + i] = a.pooled[b * W + i] } }
        timeForward(a, t: t, column: W)
        a.cat.withUnsafeMutableBufferPointer { cat in a.counts.withUnsafeMutableBufferPointer { cnt in
            pooledTokenEmbedding(out: cat.baseAddress! + 2 * W, outStride: 3 * W, counts: cnt.baseAddress!, tokens: tokens,
                                 table: p("token_embed.weight"), batch: B, textLength: L, width: W)
        } }
        headForward(a)
        return a
    }

    /// Accumulates dL/dphi given dL/dV (B).
    public func backward(_ a: Activations, dValue: [Float]) {
        let B = a.B, P = model.imageTokens, pp = model.patchDim, W = width, L = model.textLength
        let dcat = headBackward(a, dValue: dValue)
        var dpooled = [Float](repeating: 0, count: B * W)
        for b in 0..<B { for i in 0..<W { dpooled[b * W + i] = dcat[b * 3 * W + i] } }
        dcat.withUnsafeBufferPointer { d in
            pooledTokenEmbeddingBackward(dtable: g("token_embed.weight"), dout: d.baseAddress! + 2 * W, doutStride: 3 * W,
                                         counts: a.counts, tokens: a.tokens, batch: B, textLength: L, width: W)
        }
        timeBackward(a, dcat: dcat, column: W)
        var dg1 = [Float](repeating: 0, count: B * P * W)
        for b in 0..<B { for q in 0..<P { for i in 0..<W { dg1[(b * P + q) * W + i] = dpooled[b * W + i] / Float(P) } } }
        var da1 = dg1
        geluBackward(dinp: &da1, dout: dg1, inp: a.a1, count: B * P * W)
        if positions {
            let dpos = g("pos_embed")
            for b in 0..<B { for j in 0..<(P * W) { dpos[j] += da1[b * P * W + j] } }
        }
        linearBackward(dinp: nil, dweight: g("patch.weight"), dbias: g("patch.bias"), dout: da1, inp: a.patches, weight: p("patch.weight"),
                       n: B * P, inFeatures: pp, outFeatures: W)
    }
}

/// AC-Flow's feature critic V_phi(h, t) in (-1, 1), read from the policy's own image features h
/// of a visited state (DiT.imageFeatures: the residual stream after its last block, averaged over
/// the image rows, where the network has already joined the state, its time and its prompt):
///
///     concat(h (D), Linear(sinusoidal(1000 t), W)) -> LayerNorm -> Linear(D + W, W) -> GELU -> Linear(W, 1) -> tanh
///
/// A pretrained network's features say what is being drawn for which words; the pixel critic
/// above has to learn that from the rollouts alone.
public final class FeatureCritic: ValueHeadNetwork {
    public let width: Int, features: Int
    public let freqDim = 32
    public let params: FloatBuffer
    public let grads: FloatBuffer
    public let layout: ParamLayout
    public typealias Activations = ValueHeadActivations

    public init(features D: Int, width W: Int, seed: UInt64) {
        width = W; features = D
        layout = ParamLayout([("time.weight", [W, freqDim]), ("time.bias", [W]), ("hidden.weight", [W, D + W]), ("hidden.bias", [W]),
                              ("out.weight", [1, W]), ("out.bias", [1])])
        params = FloatBuffer(count: layout.total); grads = FloatBuffer(count: layout.total)
        initialiseCritic(params, layout, seed: seed)
    }

    /// V for features h (B, D) and times t (B).
    public func forward(features h: ArraySlice<Float>, t: [Float]) -> Activations {
        let B = t.count, W = width, D = features, C = D + W
        precondition(h.count == B * D, "FeatureCritic: \(h.count) feature values for \(B) states of \(D)")
        let a = Activations(B: B, inputs: C, width: W, freqDim: freqDim)
        for b in 0..<B { for i in 0..<D { a.cat[b * C + i] = h[h.startIndex + b * D + i] } }
        timeForward(a, t: t, column: D)
        headForward(a)
        return a
    }

    /// Accumulates dL/dphi given dL/dV (B).
    public func backward(_ a: Activations, dValue: [Float]) {
        timeBackward(a, dcat: headBackward(a, dValue: dValue), column: features)
    }
}
