// Layer kernels as forward/backward pairs (llm.c style): each forward writes its output and
// whatever the backward needs; each backward ACCUMULATES (+=) into parameter gradients and
// WRITES (=) the gradient of its input unless documented otherwise. Shapes in comments;
// all buffers are row-major, contiguous.

// MARK: - Linear (PyTorch layout: weight (Out, In), y = x W^T + b)

/// out (N, Out) = inp (N, In) W^T + b; with `geluOut` (N, Out), also geluOut = GELU(out)
/// (fused into the GEMM's epilogue when flowtune's own kernel runs).
public func linearForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          n: Int, inFeatures: Int, outFeatures: Int,
                          geluOut: UnsafeMutablePointer<Float>? = nil) {
    sgemm(transB: true, m: n, n: outFeatures, k: inFeatures,
          a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
          c: out, ldc: outFeatures, bias: bias, geluOut: geluOut)
}

/// dinp (N, In) = dout W  (written, or accumulated if `accumulateInput`);
/// dweight (Out, In) += dout^T inp; dbias (Out) += sum_rows dout.
public func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                           dbias: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           n: Int, inFeatures: Int, outFeatures: Int, accumulateInput: Bool = false) {
    if let dinp {
        sgemm(m: n, n: inFeatures, k: outFeatures, a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
              beta: accumulateInput ? 1 : 0, c: dinp, ldc: inFeatures)
    }
    sgemm(transA: true, m: outFeatures, n: inFeatures, k: n, a: dout, lda: outFeatures,
          b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures)
    if let dbias { columnSumAccumulate(dbias, dout, rows: n, cols: outFeatures) }
}

/// acc (C) += sum over rows of m (R, C).
public func columnSumAccumulate(_ acc: UnsafeMutablePointer<Float>, _ m: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = m + r * cols
        for c in 0..<cols { acc[c] += row[c] }
    }
}

// MARK: - LayerNorm over the last dimension (optionally affine)

/// out (N, C) = (inp - mean) * rstd [* gamma + beta]; saves mean (N) and rstd (N).
public func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                             rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                             gamma: UnsafePointer<Float>? = nil, beta: UnsafePointer<Float>? = nil,
                             n: Int, c: Int, eps: Float = 1e-6) {
    parallelFor(n, minChunk: 256) { rows in
        for r in rows {
            let x = inp + r * c
            let (m, rs) = layerNormStatistics(x, c, eps: eps)
            layerNormRowForward(out + r * c, x, c, mean: m, rstd: rs, scale: gamma, shift: beta)
            mean[r] = m; rstd[r] = rs
        }
    }
}

/// Mean and 1/sqrt(variance + eps) of one row of c values (the variance about the mean).
@inline(__always)
public func layerNormStatistics(_ x: UnsafePointer<Float>, _ c: Int, eps: Float) -> (mean: Float, rstd: Float) {
    let m = sumSIMD(x, c) / Float(c)
    var acc = SIMD8<Float>(repeating: 0)
    let mv = SIMD8<Float>(repeating: m)
    var i = 0
    while i + 8 <= c { let d = x.simd8(i) - mv; acc += d * d; i += 8 }
    var v = acc.sum()
    while i < c { let d = x[i] - m; v += d * d; i += 1 }
    return (m, 1 / (v / Float(c) + eps).squareRoot())
}

/// dinp (N, C) += LayerNorm backward of dout; dgamma/dbeta (C) += when affine.
/// `inp` is the LayerNorm input; `mean`/`rstd` from the forward.
public func layerNormBackward(dinp: UnsafeMutablePointer<Float>, dgamma: UnsafeMutablePointer<Float>? = nil,
                              dbeta: UnsafeMutablePointer<Float>? = nil,
                              dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              gamma: UnsafePointer<Float>? = nil, n: Int, c: Int) {
    if let dgamma, let dbeta {
        for r in 0..<n {
            let x = inp + r * c, dy = dout + r * c
            let m = mean[r], rs = rstd[r]
            for i in 0..<c { dgamma[i] += dy[i] * (x[i] - m) * rs; dbeta[i] += dy[i] }
        }
    }
    parallelFor(n, minChunk: 64) { rows in
        for r in rows {
            layerNormRowBackward(dinp + r * c, dout + r * c, inp + r * c, c, mean: mean[r], rstd: rstd[r], scale: gamma)
        }
    }
}

// One row of LayerNorm followed by a per-channel affine map, shared by the plain/affine
// LayerNorm above and the adaLN modulation (Model/Modulation.swift), which differ only in the
// map: y = xhat * (scaleOffset + scale) + shift, xhat = (x - mean) * rstd, with
// (scaleOffset, scale, shift) = (0, gamma, beta) for an affine LayerNorm, (1, scale, shift) for
// adaLN, and scale = shift = nil for none.

/// y (c) = the row's LayerNorm through the affine map above.
@inline(__always)
public func layerNormRowForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ c: Int,
                                mean m: Float, rstd rs: Float, scaleOffset: Float = 0,
                                scale: UnsafePointer<Float>?, shift: UnsafePointer<Float>?) {
    let mv = SIMD8<Float>(repeating: m), rv = SIMD8<Float>(repeating: rs), ov = SIMD8<Float>(repeating: scaleOffset)
    var i = 0
    if let scale, let shift {
        while i + 8 <= c { y.store8((x.simd8(i) - mv) * rv * (ov + scale.simd8(i)) + shift.simd8(i), at: i); i += 8 }
        while i < c { y[i] = (x[i] - m) * rs * (scaleOffset + scale[i]) + shift[i]; i += 1 }
    } else {
        while i + 8 <= c { y.store8((x.simd8(i) - mv) * rv, at: i); i += 8 }
        while i < c { y[i] = (x[i] - m) * rs; i += 1 }
    }
}

/// dx (c) += the LayerNorm backward of one row whose output gradient, before the affine map, is
/// g = dy * (scaleOffset + scale) (g = dy without scale): dx += rstd (g - mean(g) - xhat mean(g xhat)).
@inline(__always)
public func layerNormRowBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                 _ c: Int, mean m: Float, rstd rs: Float, scaleOffset: Float = 0,
                                 scale: UnsafePointer<Float>?) {
    let c8 = c / 8 * 8
    let mv = SIMD8<Float>(repeating: m), rv = SIMD8<Float>(repeating: rs), ov = SIMD8<Float>(repeating: scaleOffset)
    @inline(__always) func g8(_ i: Int) -> SIMD8<Float> { scale.map { dy.simd8(i) * (ov + $0.simd8(i)) } ?? dy.simd8(i) }
    @inline(__always) func g1(_ i: Int) -> Float { scale.map { dy[i] * (scaleOffset + $0[i]) } ?? dy[i] }
    var sg8 = SIMD8<Float>(), sgx8 = SIMD8<Float>()
    var i = 0
    while i < c8 {
        let g = g8(i)
        sg8 += g; sgx8 += g * ((x.simd8(i) - mv) * rv); i += 8
    }
    var sg = sg8.sum(), sgx = sgx8.sum()
    while i < c { let g = g1(i); sg += g; sgx += g * ((x[i] - m) * rs); i += 1 }
    sg /= Float(c); sgx /= Float(c)
    let sgv = SIMD8<Float>(repeating: sg), sgxv = SIMD8<Float>(repeating: sgx)
    i = 0
    while i < c8 {
        let xhat = (x.simd8(i) - mv) * rv
        dx.store8(dx.simd8(i) + rv * (g8(i) - sgv - xhat * sgxv), at: i); i += 8
    }
    while i < c { dx[i] += rs * (g1(i) - sg - (x[i] - m) * rs * sgx); i += 1 }
}

// MARK: - Activations

/// GELU, tanh form: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) = x * sigmoid(2u).
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    parallelFor(count, minChunk: 1 << 15) { r in
        geluRow(out: out + r.lowerBound, inp: inp + r.lowerBound, count: r.count)
    }
}

/// GELU of `count` contiguous values on the calling thread.
@inline(__always)
public func geluRow(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    mapSIMD8(count, inp, out) { x in
        let u = 0.797_884_56 * (x + 0.044_715 * x * x * x)
        return x / (1 + fastExp(-2 * u))
    }
}

/// dinp = dout * gelu'(inp)   (written).
public func geluBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, count: Int) {
    parallelFor(count, minChunk: 1 << 15) { r in
        var i = r.lowerBound
        let end = r.upperBound
        @inline(__always) func grad(_ x: SIMD8<Float>) -> SIMD8<Float> {
            let u = 0.797_884_56 * (x + 0.044_715 * x * x * x)
            let s = 1 / (1 + fastExp(-2 * u))          // sigmoid(2u) = (1 + tanh u)/2
            let th = 2 * s - 1                         // tanh(u)
            let du = 0.797_884_56 * (1 + 3 * 0.044_715 * x * x)
            return s + 0.5 * x * (1 - th * th) * du
        }
        while i + 8 <= end {
            let x = UnsafeRawPointer(inp + i).loadUnaligned(as: SIMD8<Float>.self)
            let d = UnsafeRawPointer(dout + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dinp + i).storeBytes(of: d * grad(x), as: SIMD8<Float>.self)
            i += 8
        }
        while i < end {
            let g = grad(SIMD8(repeating: inp[i]))[0]
            dinp[i] = dout[i] * g
            i += 1
        }
    }
}

/// SiLU: x * sigmoid(x).
public func siluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    mapSIMD8(count, inp, out) { x in x / (1 + fastExp(-x)) }
}

/// dinp = dout * silu'(inp)   (written, or accumulated).
public func siluBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                         count: Int, accumulate: Bool = false) {
    for i in 0..<count {
        let x = inp[i]
        let s = 1 / (1 + fastExp(-x))
        let g = dout[i] * s * (1 + x * (1 - s))
        dinp[i] = accumulate ? dinp[i] + g : g
    }
}

// MARK: - Softmax over rows

@inline(__always)
func softmaxRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ c: Int, _ mask: UnsafePointer<Bool>?) {
    var mx = -Float.infinity
    for i in 0..<c where mask?[i] ?? true { mx = max(mx, x[i]) }
    if mx == -.infinity { y.update(repeating: 0, count: c); return }     // every key masked
    let m = SIMD8<Float>(repeating: mx)
    mapSIMD8(c, x, y) { fastExp($0 - m) }
    if let mask { for i in 0..<c where !mask[i] { y[i] = 0 } }
    let inv = 1 / sumSIMD(y, c)
    scaleSIMD(y, c, inv)
}

/// Sum of n floats with eight running accumulators (vectorised; the order differs from a
/// sequential loop only by float rounding).
@inline(__always)
public func sumSIMD(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    var i = 0
    while i + 8 <= n { acc += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
    var s = acc.sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// x[i] *= k for n floats.
@inline(__always)
public func scaleSIMD(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ k: Float) {
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) * k
        UnsafeMutableRawPointer(x + i).storeBytes(of: v, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { x[i] *= k; i += 1 }
}

// MARK: - Mean squared error

/// Returns mean((pred - target)^2) over `count` values and writes dpred = 2 (pred - target) / count * scale.
@discardableResult
public func mseForwardBackward(dpred: UnsafeMutablePointer<Float>?, pred: UnsafePointer<Float>,
                               target: UnsafePointer<Float>, count: Int, scale: Float = 1) -> Float {
    var s: Double = 0
    let g = 2 * scale / Float(count)
    for i in 0..<count {
        let d = pred[i] - target[i]
        s += Double(d * d)
        dpred?[i] = g * d
    }
    return Float(s / Double(count))
}
