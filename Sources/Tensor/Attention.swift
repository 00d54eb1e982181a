import CKernels

/// Multi-head scaled dot-product attention over a packed qkv buffer, with a key padding mask.
///
/// qkv (rows, 3D): per token [q | k | v], head h owning columns h*hd ..< (h+1)*hd of each part.
/// The per-(batch, head) products are small (n x n x hd), so they run serially inside a
/// parallel loop over batch x heads.
public struct AttentionShape: Sendable {
    public var batch: Int, tokens: Int, heads: Int, headDim: Int
    public init(batch: Int, tokens: Int, heads: Int, headDim: Int) {
        self.batch = batch; self.tokens = tokens; self.heads = heads; self.headDim = headDim
    }
    public var width: Int { heads * headDim }
    public var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Rows: batch entry b's tokens are the rows first[b] ..< first[b + 1] of qkv (and of out and
/// dqkv), at most `tokens` of them: entries of different lengths lie back to back, so an entry
/// of n tokens costs an n x n attention (the network leaves its prompts' trailing padding out
/// this way); for entries of `tokens` rows each, first[b] = b T.
///
/// Padding: keyMask (one per row), false marking a padding token. A padding token is neither
/// attended to nor attends: its probabilities are 0 in every row, and its own row of
/// probabilities and of the output is 0 (so it receives no gradient either).
/// out = softmax(Q K^T / sqrt(hd), masked keys) V per head; the probabilities of (entry b,
/// head h), n x n (row stride n) for its n tokens, saved at the start of slot b H + h of probs
/// (B, H, T, T).
public func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Bool>?, first: UnsafePointer<Int>,
                             shape s: AttentionShape) {
    let T = s.tokens, D = s.width, hd = s.headDim, H = s.heads
    let kernels = Compute.current.kernels, own = kernels.attention
    parallelFor(s.batch * H) { range in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: T) { maskBuffer in   // per worker, on its stack
            let maskf = maskBuffer.baseAddress!
            var maskFor = -1, masked = false
            for bh in range {
                let b = bh / H, h = bh % H
                let r0 = first[b], n = first[b + 1] - r0
                precondition(n >= 0 && n <= T, "attention: batch entry \(b) has \(n) tokens, more than \(T)")
                if n == 0 { continue }
                if b != maskFor {
                    // a 0/1 float mask for the vector softmax, when the entry has a padding token
                    masked = false
                    if let keyMask {
                        for j in 0..<n { maskf[j] = keyMask[r0 + j] ? 1 : 0; masked = masked || !keyMask[r0 + j] }
                    }
                    maskFor = b
                }
                let mask: UnsafePointer<Float>? = masked ? UnsafePointer(maskf) : nil
                let base = qkv + r0 * 3 * D
                let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
                let p = probs + bh * T * T, o = out + r0 * D + h * hd
                if own?.forward(n, hd, s.scale, q, k, v, 3 * D, mask, p, o, D) != 0 {   // no own kernel, or out of memory
                    sgemm(transB: true, m: n, n: n, k: hd, alpha: s.scale, a: q, lda: 3 * D, b: k, ldb: 3 * D, c: p, ldc: n,
                          parallel: false, kernels: kernels)
                    if let mask {
                        for i in 0..<n { maskedSoftmaxRow(p + i * n, n, mask) }
                    } else {
                        for i in 0..<n { softmaxRow(p + i * n, p + i * n, n, nil) }
                    }
                    sgemm(m: n, n: hd, k: n, a: p, lda: n, b: v, ldb: 3 * D, c: o, ldc: D, parallel: false, kernels: kernels)
                }
                // a padding token does not attend: its rows of P and O are 0
                if let mask {
                    for i in 0..<n where mask[i] == 0 {
                        (p + i * n).update(repeating: 0, count: n); (o + i * D).update(repeating: 0, count: hd)
                    }
                }
            }
        }
    }
}

/// dqkv = gradient of the attention w.r.t. its packed input (written, rows as qkv's), for the
/// probs of the forward pass with the same rows.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, qkv: UnsafePointer<Float>, first: UnsafePointer<Int>,
                              shape s: AttentionShape) {
    let T = s.tokens, D = s.width, hd = s.headDim, H = s.heads
    let kernels = Compute.current.kernels, own = kernels.attention
    parallelFor(s.batch * H) { range in
        // (T, T) scratch per worker for the OpenBLAS path, allocated only when that path runs
        var scratch: UnsafeMutablePointer<Float>? = nil
        defer { scratch?.deallocate() }
        for bh in range {
            let b = bh / H, h = bh % H
            let r0 = first[b], n = first[b + 1] - r0
            if n == 0 { continue }
            let base = qkv + r0 * 3 * D, dbase = dqkv + r0 * 3 * D
            let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
            let dq = dbase + h * hd, dk = dbase + D + h * hd, dv = dbase + 2 * D + h * hd
            let p = probs + bh * T * T
            let dO = dout + r0 * D + h * hd
            if let own, own.backward(n, hd, s.scale, q, k, v, 3 * D, p, dO, D, dq, dk, dv, 3 * D) == 0 {
                continue
            }
            if scratch == nil { scratch = .allocate(capacity: T * T) }
            let dp = scratch!
            // dV = P^T dO ; dP = dO V^T
            sgemm(transA: true, m: n, n: hd, k: n, a: p, lda: n, b: dO, ldb: D, c: dv, ldc: 3 * D, parallel: false, kernels: kernels)
            sgemm(transB: true, m: n, n: n, k: hd, a: dO, lda: D, b: v, ldb: 3 * D, c: dp, ldc: n, parallel: false, kernels: kernels)
            // dS = P * (dP - rowsum(P * dP))   (masked keys have P = 0, so dS = 0 there)
            for i in 0..<n {
                let pr = p + i * n, dr = dp + i * n
                var sum: Float = 0
                for j in 0..<n { sum += pr[j] * dr[j] }
                for j in 0..<n { dr[j] = pr[j] * (dr[j] - sum) }
            }
            // dQ = scale dS K ; dK = scale dS^T Q
            sgemm(m: n, n: hd, k: n, alpha: s.scale, a: dp, lda: n, b: k, ldb: 3 * D, c: dq, ldc: 3 * D, parallel: false, kernels: kernels)
            sgemm(transA: true, m: n, n: hd, k: n, alpha: s.scale, a: dp, lda: n, b: q, ldb: 3 * D, c: dk, ldc: 3 * D, parallel: false, kernels: kernels)
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
