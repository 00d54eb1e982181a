import Testing
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// Finite-difference checks of every differentiable kernel: loss = sum(out * R) for a fixed
/// random R, so dL/dout = R; the analytic input/parameter gradients from each backward must
/// match central differences of the loss.
@Suite struct KernelGradientTests {
    /// Checks d(sum(f(x) * r))/dx against `analytic` at every entry of x.
    static func check(_ x: inout [Float], r: [Float], analytic: [Float], h: Float = 1e-2, tol: Float = 1e-2,
                      _ f: ([Float]) -> [Float], file: String = #fileID, line: Int = #line) {
        #expect(analytic.count == x.count)
        for i in x.indices {
            let orig = x[i]
            x[i] = orig + h
            let lp = zip(f(x), r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            x[i] = orig - h
            let lm = zip(f(x), r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            x[i] = orig
            let numeric = Float((lp - lm) / Double(2 * h))
            let err = abs(numeric - analytic[i]) / max(1, abs(numeric))
            #expect(err < tol, "entry \(i): analytic \(analytic[i]) numeric \(numeric)")
        }
    }

    @Test(arguments: KernelPath.available)
    func linear(path: KernelPath) {
        Compute(kernels: path).run { Self.linear() }
    }

    static func linear() {
        var rng = RNG(seed: 1)
        let n = 5, din = 4, dout = 3
        var x = rng.normals(n * din), w = rng.normals(dout * din), b = rng.normals(dout)
        let r = rng.normals(n * dout)
        func f(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * dout)
            linearForward(out: &out, inp: x, weight: w, bias: b, n: n, inFeatures: din, outFeatures: dout)
            return out
        }
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: b.count)
        linearBackward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, n: n, inFeatures: din, outFeatures: dout)
        Self.check(&x, r: r, analytic: dx) { f($0, w, b) }
        Self.check(&w, r: r, analytic: dw) { f(x, $0, b) }
        Self.check(&b, r: r, analytic: db) { f(x, w, $0) }
    }

    /// 4 input channels: the scalar tail only; 16 (the head's): two 8-wide chunks.
    @Test(arguments: [4, 16]) func conv3x3(inChannels ci: Int) {
        var rng = RNG(seed: 11)
        let shape = Conv3x3Shape(batch: 2, side: 5, inChannels: ci, outChannels: 3)
        var x = rng.normals(2 * 25 * ci), w = rng.normals(shape.weightCount), b = rng.normals(3)
        let r = rng.normals(2 * 25 * 3)
        func f(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: 2 * 25 * 3)
            conv3x3Forward(out: &out, inp: x, weight: w, bias: b, shape: shape)
            return out
        }
        // the forward against a direct reading of the definition (PyTorch's weight order, zero padding)
        let out = f(x, w, b)
        for (bi, y, xx, co) in [(0, 0, 0, 0), (1, 2, 3, 1), (1, 4, 4, 2), (0, 4, 1, 2)] {
            var ref = Double(b[co])
            for c in 0..<ci { for ky in 0..<3 { for kx in 0..<3 {
                let yy = y + ky - 1, xq = xx + kx - 1
                guard yy >= 0, yy < 5, xq >= 0, xq < 5 else { continue }
                ref += Double(x[((bi * 5 + yy) * 5 + xq) * ci + c]) * Double(w[((co * ci + c) * 3 + ky) * 3 + kx])
            } } }
            #expect(abs(Double(out[((bi * 5 + y) * 5 + xx) * 3 + co]) - ref) < 1e-4)
        }
        var dx = [Float](repeating: 7, count: x.count), dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: 3)
        conv3x3Backward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, shape: shape)
        Self.check(&x, r: r, analytic: dx) { f($0, w, b) }
        Self.check(&w, r: r, analytic: dw) { f(x, $0, b) }
        Self.check(&b, r: r, analytic: db) { f(x, w, $0) }
    }

    @Test(arguments: [false, true]) func layerNorm(affine: Bool) {
        var rng = RNG(seed: 2)
        let n = 4, c = 6
        var x = rng.normals(n * c), gamma = rng.normals(c), beta = rng.normals(c)
        let r = rng.normals(n * c)
        func f(_ x: [Float], _ g: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * c), m = [Float](repeating: 0, count: n), s = m
            if affine { layerNormForward(out: &out, mean: &m, rstd: &s, inp: x, gamma: g, beta: b, n: n, c: c) }
            else { layerNormForward(out: &out, mean: &m, rstd: &s, inp: x, n: n, c: c) }
            return out
        }
        var m = [Float](repeating: 0, count: n), s = m, out = [Float](repeating: 0, count: n * c)
        layerNormForward(out: &out, mean: &m, rstd: &s, inp: x, gamma: affine ? gamma : nil, beta: affine ? beta : nil, n: n, c: c)
        var dx = [Float](repeating: 0, count: n * c), dg = [Float](repeating: 0, count: c), db = dg
        if affine {
            layerNormBackward(dinp: &dx, dgamma: &dg, dbeta: &db, dout: r, inp: x, mean: m, rstd: s, gamma: gamma, n: n, c: c)
        } else {
            layerNormBackward(dinp: &dx, dout: r, inp: x, mean: m, rstd: s, n: n, c: c)
        }
        Self.check(&x, r: r, analytic: dx, h: 1e-3) { f($0, gamma, beta) }
        if affine {
            Self.check(&gamma, r: r, analytic: dg) { f(x, $0, beta) }
            Self.check(&beta, r: r, analytic: db) { f(x, gamma, $0) }
        }
    }

    @Test func gelu() {
        var rng = RNG(seed: 3)
        var x = rng.normals(37, scale: 2)   // not a multiple of 8: exercises the tail
        let r = rng.normals(37)
        func f(_ x: [Float]) -> [Float] { var o = x; geluForward(out: &o, inp: x, count: x.count); return o }
        var dx = [Float](repeating: 0, count: 37)
        geluBackward(dinp: &dx, dout: r, inp: x, count: 37)
        Self.check(&x, r: r, analytic: dx, h: 1e-3) { f($0) }
        // against the tanh formula itself
        let y = f(x)
        for i in x.indices {
            let u = Double(x[i])
            let ref = 0.5 * u * (1 + _tanh(0.7978845608 * (u + 0.044715 * u * u * u)))
            #expect(abs(Double(y[i]) - ref) < 1e-5)
        }
    }

    @Test func silu() {
        var rng = RNG(seed: 4)
        var x = rng.normals(19, scale: 2)
        let r = rng.normals(19)
        func f(_ x: [Float]) -> [Float] { var o = x; siluForward(out: &o, inp: x, count: x.count); return o }
        var dx = [Float](repeating: 0, count: 19)
        siluBackward(dinp: &dx, dout: r, inp: x, count: 19)
        Self.check(&x, r: r, analytic: dx, h: 1e-3) { f($0) }
    }

    @Test(arguments: KernelPath.available)
    func attentionWithKeyMask(path: KernelPath) {
        Compute(kernels: path).run { Self.attentionWithKeyMask() }
    }

    /// Two batch entries of 5 and 3 tokens back to back (rows first[b] ..< first[b + 1]), each
    /// with a padding token inside: probabilities, a padding token's zero output, one output
    /// against a direct evaluation, and the backward against finite differences.
    static func attentionWithKeyMask() {
        var rng = RNG(seed: 6)
        let s = AttentionShape(batch: 2, tokens: 5, heads: 2, headDim: 3)
        let D = s.width, first = [0, 5, 8], rows = 8
        var qkv = rng.normals(rows * 3 * D)
        let mask: [Bool] = [true, true, false, true, true, true, false, true]
        let r = rng.normals(rows * D)
        func f(_ qkv: [Float]) -> [Float] {
            var out = [Float](repeating: .nan, count: rows * D)
            var probs = [Float](repeating: 0, count: s.batch * s.heads * s.tokens * s.tokens)
            attentionForward(out: &out, probs: &probs, qkv: qkv, keyMask: mask, first: first, shape: s)
            return out
        }
        var out = [Float](repeating: .nan, count: rows * D)
        var probs = [Float](repeating: .nan, count: s.batch * s.heads * s.tokens * s.tokens)
        attentionForward(out: &out, probs: &probs, qkv: qkv, keyMask: mask, first: first, shape: s)
        // masked keys get no probability, a padding token attends to nothing (probs of entry b: n x n)
        for bh in 0..<(s.batch * s.heads) {
            let b = bh / s.heads, n = first[b + 1] - first[b]
            for i in 0..<n { for j in 0..<n where !mask[first[b] + j] || !mask[first[b] + i] {
                #expect(probs[bh * s.tokens * s.tokens + i * n + j] == 0)
            } }
        }
        // a padding token's own output is 0
        for row in 0..<rows where !mask[row] { #expect(out[(row * D)..<((row + 1) * D)].allSatisfy { $0 == 0 }) }
        // against a direct evaluation of softmax(q k^T / sqrt(hd)) v for one (b, h, i)
        let (b, h, i) = (1, 1, 2)
        let n = first[b + 1] - first[b], qi = first[b] + i
        var logits: [Double] = []
        for j in 0..<n {
            var dot = 0.0
            for d in 0..<s.headDim {
                dot += Double(qkv[qi * 3 * D + h * s.headDim + d]) * Double(qkv[(first[b] + j) * 3 * D + D + h * s.headDim + d])
            }
            logits.append(mask[first[b] + j] ? dot / Double(s.headDim).squareRoot() : -.infinity)
        }
        let mx = logits.max()!
        let e = logits.map { _exp($0 - mx) }
        let z = e.reduce(0, +)
        for d in 0..<s.headDim {
            var o = 0.0
            for j in 0..<n { o += e[j] / z * Double(qkv[(first[b] + j) * 3 * D + 2 * D + h * s.headDim + d]) }
            #expect(abs(Double(out[qi * D + h * s.headDim + d]) - o) < 1e-5)
        }
        var dqkv = [Float](repeating: .nan, count: qkv.count)
        attentionBackward(dqkv: &dqkv, dout: r, probs: probs, qkv: qkv, first: first, shape: s)
        Self.check(&qkv, r: r, analytic: dqkv, h: 1e-3) { f($0) }
    }

    @Test func meanSquaredError() {
        var rng = RNG(seed: 7)
        var p = rng.normals(11)
        let t = rng.normals(11)
        var dp = [Float](repeating: 0, count: 11)
        let loss = mseForwardBackward(dpred: &dp, pred: p, target: t, count: 11)
        let ref = zip(p, t).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / 11
        #expect(abs(loss - ref) < 1e-6)
        // loss is a scalar: use r = [1]
        Self.check(&p, r: [1], analytic: dp, h: 1e-3) { [mseForwardBackward(dpred: nil, pred: $0, target: t, count: 11)] }
    }
}

#if canImport(Glibc)
func _tanh(_ x: Double) -> Double { Glibc.tanh(x) }
func _exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
