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
    parallelFor(s.batch * H) { range in
        for bh in range {
            let b = bh / H, h = bh % H
            let base = qkv + b * T * 3 * D
            let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
            let p = probs + bh * T * T
            sgemm(transB: true, m: T, n: T, k: hd, alpha: s.scale, a: q, lda: 3 * D, b: k, ldb: 3 * D, c: p, ldc: T, parallel: false)
            let mask = keyMask.map { $0 + b * T }
            for i in 0..<T { softmaxRow(p + i * T, p + i * T, T, mask) }
            sgemm(m: T, n: hd, k: T, a: p, lda: T, b: v, ldb: 3 * D, c: out + b * T * D + h * hd, ldc: D, parallel: false)
        }
    }
}

/// dqkv (B, T, 3D) = gradient of the attention w.r.t. its packed input   (written).
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let T = s.tokens, D = s.width, hd = s.headDim, H = s.heads
    parallelFor(s.batch * H) { range in
        let dp = UnsafeMutablePointer<Float>.allocate(capacity: T * T)   // (T, T) scratch per worker
        defer { dp.deallocate() }
        for bh in range {
            let b = bh / H, h = bh % H
            let base = qkv + b * T * 3 * D, dbase = dqkv + b * T * 3 * D
            let q = base + h * hd, k = base + D + h * hd, v = base + 2 * D + h * hd
            let dq = dbase + h * hd, dk = dbase + D + h * hd, dv = dbase + 2 * D + h * hd
            let p = probs + bh * T * T
            let dO = dout + b * T * D + h * hd
            // dV = P^T dO ; dP = dO V^T
            sgemm(transA: true, m: T, n: hd, k: T, a: p, lda: T, b: dO, ldb: D, c: dv, ldc: 3 * D, parallel: false)
            sgemm(transB: true, m: T, n: T, k: hd, a: dO, lda: D, b: v, ldb: 3 * D, c: dp, ldc: T, parallel: false)
            // dS = P * (dP - rowsum(P * dP))   (masked keys have P = 0, so dS = 0 there)
            for i in 0..<T {
                let pr = p + i * T, dr = dp + i * T
                var sum: Float = 0
                for j in 0..<T { sum += pr[j] * dr[j] }
                for j in 0..<T { dr[j] = pr[j] * (dr[j] - sum) }
            }
            // dQ = scale dS K ; dK = scale dS^T Q
            sgemm(m: T, n: hd, k: T, alpha: s.scale, a: dp, lda: T, b: k, ldb: 3 * D, c: dq, ldc: 3 * D, parallel: false)
            sgemm(transA: true, m: T, n: hd, k: T, alpha: s.scale, a: dp, lda: T, b: q, ldb: 3 * D, c: dk, ldc: 3 * D, parallel: false)
        }
    }
}
