import Tensor

/// AC-Flow's lightweight critic V_phi(x_t, t, prompt) in (-1, 1):
///
///     patches (B, P, pp) -> Linear(pp, W) -> GELU -> mean over patches      (B, W)  image
///     sinusoidal(1000 t, F) -> Linear(F, W)                                  (B, W)  time
///     mean of its own token embeddings over non-pad tokens                   (B, W)  prompt
///     concat (B, 3W) -> LayerNorm -> Linear(3W, W) -> GELU -> Linear(W, 1) -> tanh
///
/// Explicit forward/backward like the DiT; `backward(dV)` accumulates into `grads`.
public final class Critic {
    public let width: Int
    public let freqDim = 32
    let model: ModelConfig
    public let params: FloatBuffer
    public let grads: FloatBuffer
    let offsets: [String: Int]
    public let shapes: [(String, [Int])]

    public init(model: ModelConfig, width: Int, seed: UInt64) {
        self.model = model; self.width = width
        let W = width
        shapes = [("patch.weight", [W, model.patchDim]), ("patch.bias", [W]), ("time.weight", [W, freqDim]), ("time.bias", [W]),
                  ("token_embed.weight", [model.vocabSize, W]), ("hidden.weight", [W, 3 * W]), ("hidden.bias", [W]),
                  ("out.weight", [1, W]), ("out.bias", [1])]
        var o: [String: Int] = [:], total = 0
        for (name, s) in shapes { o[name] = total; total += s.reduce(1, *) }
        offsets = o
        params = FloatBuffer(count: total); grads = FloatBuffer(count: total)
        var rng = RNG(seed: seed)
        for (name, s) in shapes where s.count == 2 {
            let p = params.pointer + o[name]!
            let bound = (6 / Float(s[0] + s[1])).squareRoot()
            for i in 0..<s.reduce(1, *) { p[i] = name.hasPrefix("token") ? rng.normal() * 0.02 : rng.uniform(-bound, bound) }
        }
    }

    @inline(__always) func p(_ n: String) -> UnsafeMutablePointer<Float> { params.pointer + offsets[n]! }
    @inline(__always) func g(_ n: String) -> UnsafeMutablePointer<Float> { grads.pointer + offsets[n]! }

    /// Saved activations for one batch.
    public final class Activations {
        let B: Int
        var patches, a1, g1, pooled, tf, cat, ln, mean, rstd, h, g2, o: [Float]
        public var value: [Float]       // (B) V in (-1, 1)
        var tokens: [Int32], counts: [Float]
        init(B: Int, c: Critic) {
            self.B = B
            let P = c.model.imageTokens, W = c.width
            patches = [Float](repeating: 0, count: B * P * c.model.patchDim)
            a1 = [Float](repeating: 0, count: B * P * W); g1 = a1
            pooled = [Float](repeating: 0, count: B * W); tf = [Float](repeating: 0, count: B * c.freqDim)
            cat = [Float](repeating: 0, count: B * 3 * W); ln = cat
            mean = [Float](repeating: 0, count: B); rstd = mean
            h = [Float](repeating: 0, count: B * W); g2 = h
            o = [Float](repeating: 0, count: B); value = o
            tokens = []; counts = [Float](repeating: 1, count: B)
        }
    }

    /// V for x (B, S, S, C), t (B), tokens (B, L).
    public func forward(x: [Float], t: [Float], tokens: [Int32]) -> Activations {
        let B = t.count, P = model.imageTokens, pp = model.patchDim, W = width, L = model.textLength
        let a = Activations(B: B, c: self)
        a.tokens = tokens
        patchify(model, &a.patches, x, batch: B)
        linearForward(out: &a.a1, inp: a.patches, weight: p("patch.weight"), bias: p("patch.bias"), n: B * P, inFeatures: pp, outFeatures: W)
        geluForward(out: &a.g1, inp: a.a1, count: B * P * W)
        for b in 0..<B { for q in 0..<P { for i in 0..<W { a.pooled[b * W + i] += a.g1[(b * P + q) * W + i] / Float(P) } } }
        timestepFeatures(out: &a.tf, t: t, batch: B, dim: freqDim)
        var te = [Float](repeating: 0, count: B * W)
        linearForward(out: &te, inp: a.tf, weight: p("time.weight"), bias: p("time.bias"), n: B, inFeatures: freqDim, outFeatures: W)
        let emb = p("token_embed.weight")
        for b in 0..<B {
            var cnt = 0
            for j in 0..<L where tokens[b * L + j] != 0 {
                cnt += 1
                let tok = Int(tokens[b * L + j])
                for i in 0..<W { a.cat[b * 3 * W + 2 * W + i] += emb[tok * W + i] }
            }
            a.counts[b] = Float(max(cnt, 1))
            for i in 0..<W {
                a.cat[b * 3 * W + 2 * W + i] /= a.counts[b]
                a.cat[b * 3 * W + i] = a.pooled[b * W + i]
                a.cat[b * 3 * W + W + i] = te[b * W + i]
            }
        }
        layerNormForward(out: &a.ln, mean: &a.mean, rstd: &a.rstd, inp: a.cat, n: B, c: 3 * W)
        linearForward(out: &a.h, inp: a.ln, weight: p("hidden.weight"), bias: p("hidden.bias"), n: B, inFeatures: 3 * W, outFeatures: W)
        geluForward(out: &a.g2, inp: a.h, count: B * W)
        linearForward(out: &a.o, inp: a.g2, weight: p("out.weight"), bias: p("out.bias"), n: B, inFeatures: W, outFeatures: 1)
        for b in 0..<B { a.value[b] = Float(tanh(Double(a.o[b]))) }
        return a
    }

    /// Accumulates dL/dphi given dL/dV (B).
    public func backward(_ a: Activations, dValue: [Float]) {
        let B = a.B, P = model.imageTokens, pp = model.patchDim, W = width, L = model.textLength
        let dO = (0..<B).map { dValue[$0] * (1 - a.value[$0] * a.value[$0]) }
        var dg2 = [Float](repeating: 0, count: B * W)
        linearBackward(dinp: &dg2, dweight: g("out.weight"), dbias: g("out.bias"), dout: dO, inp: a.g2, weight: p("out.weight"),
                       n: B, inFeatures: W, outFeatures: 1)
        var dh = [Float](repeating: 0, count: B * W)
        geluBackward(dinp: &dh, dout: dg2, inp: a.h, count: B * W)
        var dln = [Float](repeating: 0, count: B * 3 * W)
        linearBackward(dinp: &dln, dweight: g("hidden.weight"), dbias: g("hidden.bias"), dout: dh, inp: a.ln, weight: p("hidden.weight"),
                       n: B, inFeatures: 3 * W, outFeatures: W)
        var dcat = [Float](repeating: 0, count: B * 3 * W)
        layerNormBackward(dinp: &dcat, dout: dln, inp: a.cat, mean: a.mean, rstd: a.rstd, n: B, c: 3 * W)
        var dpooled = [Float](repeating: 0, count: B * W), dte = dpooled
        let gemb = g("token_embed.weight")
        for b in 0..<B {
            for i in 0..<W { dpooled[b * W + i] = dcat[b * 3 * W + i]; dte[b * W + i] = dcat[b * 3 * W + W + i] }
            for j in 0..<L where a.tokens[b * L + j] != 0 {
                let tok = Int(a.tokens[b * L + j])
                for i in 0..<W { gemb[tok * W + i] += dcat[b * 3 * W + 2 * W + i] / a.counts[b] }
            }
        }
        linearBackward(dinp: nil, dweight: g("time.weight"), dbias: g("time.bias"), dout: dte, inp: a.tf, weight: p("time.weight"),
                       n: B, inFeatures: freqDim, outFeatures: W)
        var dg1 = [Float](repeating: 0, count: B * P * W)
        for b in 0..<B { for q in 0..<P { for i in 0..<W { dg1[(b * P + q) * W + i] = dpooled[b * W + i] / Float(P) } } }
        var da1 = dg1
        geluBackward(dinp: &da1, dout: dg1, inp: a.a1, count: B * P * W)
        linearBackward(dinp: nil, dweight: g("patch.weight"), dbias: g("patch.bias"), dout: da1, inp: a.patches, weight: p("patch.weight"),
                       n: B * P, inFeatures: pp, outFeatures: W)
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
