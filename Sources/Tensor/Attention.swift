import CKernels

/// Multi-head scaled dot-product attention over a packed qkv buffer, with a key padding mask.
///
/// qkv (B, T, 3D): per token [q | k | v], head h owning columns h*hd ..< (h+1)*hd of each part.
/// The per-(batch, head) products are small (T x T x hd), so they run serially inside a
/// parallel loop over batch x heads.
public struct AttentionShape: Sendable {
    public var batch: Int, tokens: Int, heads: Int, headDim: Int
    public init(batch: Int, tokens: Int, heads: Int, headDim: Int) {
        self.batch = batch; self.tokens = tokens; self.heads = heads; self.headDim = headDim
    }
    public var width: Int { heads * headDim }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// out (B, T, D) = softmax(Q K^T / sqrt(hd), masked keys) V per head; probs (B, H, T, T) saved.
/// keyMask (B, T): false marks a padding key that no query may attend to.
public func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Bool>?, shape s: AttentionShape) {
    let T = s.tokens, D = s.width, hd = s.headDim, H = s.heads
    let kernels = Compute.current.kernels, own = kernels.attention
    parallelFor(s.batch * H) { range in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: T) { maskBuffer in   // per worker, on its stack
            let maskf = maskBuffer.baseAddress!
            var maskFor = -1
            for bh in range {
                let b = bh / H, h = bh % H
                let base = qkv + b * T * 3 * D
                let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
                let p = probs + bh * T * T, o = out + b * T * D + h * hd
                if let keyMask, b != maskFor {
                    // a 0/1 float mask for the vector softmax (rebuilt when the batch entry changes)
                    for j in 0..<T { maskf[j] = keyMask[b * T + j] ? 1 : 0 }
                    maskFor = b
                }
                if let own, own.forward(T, hd, s.scale, q, k, v, 3 * D, keyMask == nil ? nil : maskf, p, o, D) == 0 {
                    continue
                }
                sgemm(transB: true, m: T, n: T, k: hd, alpha: s.scale, a: q, lda: 3 * D, b: k, ldb: 3 * D, c: p, ldc: T, parallel: false, kernels: kernels)
                if keyMask != nil {
                    for i in 0..<T { maskedSoftmaxRow(p + i * T, T, maskf) }
                } else {
                    for i in 0..<T { softmaxRow(p + i * T, p + i * T, T, nil) }
                }
                sgemm(m: T, n: hd, k: T, a: p, lda: T, b: v, ldb: 3 * D, c: o, ldc: D, parallel: false, kernels: kernels)
            }
        }
    }
}

/// dqkv (B, T, 3D) = gradient of the attention w.r.t. its packed input   (written).
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let T = s.tokens, D = s.width, hd = s.headDim, H = s.heads
    let kernels = Compute.current.kernels, own = kernels.attention
    parallelFor(s.batch * H) { range in
        // (T, T) scratch per worker for the OpenBLAS path, allocated only when that path runs
        var scratch: UnsafeMutablePointer<Float>? = nil
        defer { scratch?.deallocate() }
        for bh in range {
            let b = bh / H, h = bh % H
            let base = qkv + b * T * 3 * D, dbase = dqkv + b * T * 3 * D
            let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
            let dq = dbase + h * hd, dk = dbase + D + h * hd, dv = dbase + 2 * D + h * hd
            let p = probs + bh * T * T
            let dO = dout + b * T * D + h * hd
            if let own, own.backward(T, hd, s.scale, q, k, v, 3 * D, p, dO, D, dq, dk, dv, 3 * D) == 0 {
                continue
            }
            if scratch == nil { scratch = .allocate(capacity: T * T) }
            let dp = scratch!
            // dV = P^T dO ; dP = dO V^T
            sgemm(transA: true, m: T, n: hd, k: T, a: p, lda: T, b: dO, ldb: D, c: dv, ldc: 3 * D, parallel: false, kernels: kernels)
            sgemm(transB: true, m: T, n: T, k: hd, a: dO, lda: D, b: v, ldb: 3 * D, c: dp, ldc: T, parallel: false, kernels: kernels)
            // dS = P * (dP - rowsum(P * dP))   (masked keys have P = 0, so dS = 0 there)
            for i in 0..<T {
                let pr = p + i * T, dr = dp + i * T
                var sum: Float = 0
                for j in 0..<T { sum += pr[j] * dr[j] }
                for j in 0..<T { dr[j] = pr[j] * (dr[j] - sum) }
            }
            // dQ = scale dS K ; dK = scale dS^T Q
            sgemm(m: T, n: hd, k: T, alpha: s.scale, a: dp, lda: T, b: k, ldb: 3 * D, c: dq, ldc: 3 * D, parallel: false, kernels: kernels)
            sgemm(transA: true, m: T, n: hd, k: T, alpha: s.scale, a: dp, lda: T, b: q, ldb: 3 * D, c: dk, ldc: 3 * D, parallel: false, kernels: kernels)
        }
    }
}

/// In-place softmax of one row of scores with a 0/1 float key mask (masked keys get exactly 0),
/// all in 8-wide vectors.
@inline(__always)
func maskedSoftmaxRow(_ y: UnsafeMutablePointer<Float>, _ c: Int, _ mask: UnsafePointer<Float>) {
    var mx = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i + 8 <= c {
        var v = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        let m = UnsafeRawPointer(mask + i).loadUnaligned(as: SIMD8<Float>.self)
        v.replace(with: -.infinity, where: m .== 0)
        mx.replace(with: v, where: v .> mx)
        i += 8
    }
    var best = -Float.infinity
    for k in 0..<8 { best = max(best, mx[k]) }
    while i < c { if mask[i] != 0 { best = max(best, y[i]) }; i += 1 }
    if best == -.infinity { y.update(repeating: 0, count: c); return }
    let b = SIMD8<Float>(repeating: best)
    var acc = SIMD8<Float>(repeating: 0)
    i = 0
    while i + 8 <= c {
        let v = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        let m = UnsafeRawPointer(mask + i).loadUnaligned(as: SIMD8<Float>.self)
        let e = fastExp(v - b) * m
        UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: SIMD8<Float>.self)
        acc += e
        i += 8
    }
    var sum = acc.sum()
    while i < c { let e = mask[i] != 0 ? fastExp(y[i] - best) : 0; y[i] = e; sum += e; i += 1 }
    scaleSIMD(y, c, 1 / sum)
}
