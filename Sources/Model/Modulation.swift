import Tensor
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// adaLN modulation and gated residuals, per sample b over its rows of tokens.
// mod (B, modStride) holds the sample's chunks; shift/scale/gate are offsets into it.

/// Which rows of a (rows, D) activation belong to which sample: sample b owns rows
/// first[b] ..< first[b + 1] (a sample's rows are contiguous; samples may differ in count).
struct SampleRows {
    var first: [Int]       // B + 1 entries, first[0] = 0
    var sample: [Int32]    // the sample of each row (first[B] entries in use)
    var batch: Int { first.count - 1 }
    var total: Int { first[batch] }
    func count(_ b: Int) -> Int { first[b + 1] - first[b] }

    /// B samples of `rows` rows each.
    init(batch B: Int, rows: Int) {
        first = (0...B).map { $0 * rows }
        sample = (0..<(B * rows)).map { Int32($0 / max(rows, 1)) }
    }

    /// Rows for the given counts, reusing this value's storage (no allocation once grown).
    mutating func set(counts: some Sequence<Int>) {
        first.removeAll(keepingCapacity: true); first.append(0)
        for n in counts { first.append(first[first.count - 1] + n) }
        if sample.count < total { sample = [Int32](repeating: 0, count: total) }
        for b in 0..<batch { for r in first[b]..<first[b + 1] { sample[r] = Int32(b) } }
    }
}

/// out rows = LN(x row) * (1 + scale[b]) + shift[b], LN without affine (eps 1e-6), in one pass
/// per row; mean/rstd saved per out row (the backward recomputes LN(x) from them). The out rows
/// (and mean, rstd) are laid out by `rows`; sample b's rows of x are contiguous from row xFirst[b].
func layerNormModulateForward(out: UnsafeMutablePointer<Float>,
                              mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                              x: UnsafePointer<Float>, xFirst: [Int], rows: SampleRows, mod: UnsafePointer<Float>,
                              modStride: Int, shift: Int, scale: Int, d: Int) {
    rows.sample.withUnsafeBufferPointer { sampleOf in xFirst.withUnsafeBufferPointer { xFirst in rows.first.withUnsafeBufferPointer { first in
        parallelFor(rows.total, minChunk: 64) { range in
            for row in range {
                let b = Int(sampleOf[row])
                let xr = x + (xFirst[b] + row - first[b]) * d, o = row * d
                let sh = mod + b * modStride + shift, sc = mod + b * modStride + scale
                let (m, rs) = layerNormStatistics(xr, d, eps: 1e-6)
                mean[row] = m; rstd[row] = rs
                layerNormRowForward(out + o, xr, d, mean: m, rstd: rs, scaleOffset: 1, scale: sc, shift: sh)
            }
        }
    } } }
}

/// The backward of layerNormModulateForward, row by row: dinp (laid out like x) += the
/// LayerNorm backward of g = dout * (1 + scale[b]); dmod shift += sum over rows of dout, dmod
/// scale += sum of dout * LN(x). LN(x) is recomputed from x, mean and rstd exactly as the forward
/// computed it. Parallel over samples (each owns its dmod row).
func layerNormModulateBackward(dinp: UnsafeMutablePointer<Float>, dmod: UnsafeMutablePointer<Float>,
                               dout: UnsafePointer<Float>, x: UnsafePointer<Float>, xFirst: [Int], rows: SampleRows,
                               mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, mod: UnsafePointer<Float>,
                               modStride: Int, shift: Int, scale: Int, d: Int) {
    parallelFor(rows.batch) { bs in
        let d8 = d / 8 * 8
        for b in bs {
            let sc = mod + b * modStride + scale
            let dsh = dmod + b * modStride + shift, dsc = dmod + b * modStride + scale
            for r in 0..<rows.count(b) {
                let row = rows.first[b] + r, xrow = xFirst[b] + r
                let xr = x + xrow * d, dy = dout + row * d
                let m = mean[row], rs = rstd[row]
                // the modulation's own gradients: shift += dy, scale += dy * LN(x)
                let mv = SIMD8<Float>(repeating: m), rv = SIMD8<Float>(repeating: rs)
                var i = 0
                while i < d8 {
                    let g = dy.simd8(i)
                    dsh.store8(dsh.simd8(i) + g, at: i)
                    dsc.store8(dsc.simd8(i) + g * ((xr.simd8(i) - mv) * rv), at: i)
                    i += 8
                }
                while i < d { dsh[i] += dy[i]; dsc[i] += dy[i] * ((xr[i] - m) * rs); i += 1 }
                layerNormRowBackward(dinp + xrow * d, dy, xr, d, mean: m, rstd: rs, scaleOffset: 1, scale: sc)
            }
        }
    }
}

/// out = res + gate[b] * x, row by row (all three laid out by `rows`).
func gatedResidualForward(out: UnsafeMutablePointer<Float>, res: UnsafePointer<Float>, x: UnsafePointer<Float>,
                          mod: UnsafePointer<Float>, modStride: Int, gate: Int, rows: SampleRows, d: Int) {
    rows.sample.withUnsafeBufferPointer { sampleOf in
        parallelFor(rows.total, minChunk: 64) { range in
            for row in range {
                let gt = mod + Int(sampleOf[row]) * modStride + gate, o = row * d
                var i = 0
                while i + 8 <= d { out.store8(res.simd8(o + i) + gt.simd8(i) * x.simd8(o + i), at: o + i); i += 8 }
                while i < d { out[o + i] = res[o + i] + gt[i] * x[o + i]; i += 1 }
            }
        }
    }
}

/// dx (written) = dout * gate[b]; dmod gate += sum dout * x. (The residual passes dout through.)
func gatedResidualBackward(dx: UnsafeMutablePointer<Float>, dmod: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           x: UnsafePointer<Float>, mod: UnsafePointer<Float>, modStride: Int, gate: Int,
                           rows: SampleRows, d: Int) {
    parallelFor(rows.batch) { bs in
        for b in bs {
            let gt = mod + b * modStride + gate, dg = dmod + b * modStride + gate
            let r0 = rows.first[b], r1 = rows.first[b + 1]
            var i = 0
            while i + 8 <= d {
                let gv = gt.simd8(i)
                var acc = SIMD8<Float>()
                for r in r0..<r1 {
                    let o = r * d + i
                    let g = dout.simd8(o)
                    dx.store8(g * gv, at: o)
                    acc += g * x.simd8(o)
                }
                dg.store8(dg.simd8(i) + acc, at: i)
                i += 8
            }
            for j in i..<d {
                for r in r0..<r1 {
                    let o = r * d + j
                    dx[o] = dout[o] * gt[j]; dg[j] += dout[o] * x[o]
                }
            }
        }
    }
}

/// DiT's 2-D sin-cos position embedding (P, D): the first D/2 channels encode the patch row,
/// the last D/2 the column; each half is D/4 sines then D/4 cosines, omega_i = 1/10000^(i/(D/4)).
public func sinCosPositionEmbedding(side: Int, width D: Int) -> [Float] {
    var out = [Float](repeating: 0, count: side * side * D)
    let q = D / 4
    for r in 0..<side {
        for col in 0..<side {
            let base = (r * side + col) * D
            for (half, pos) in [(0, Double(r)), (1, Double(col))] {
                for i in 0..<q {
                    let omega = 1 / pow(10000.0, Double(i) / Double(q))
                    out[base + half * (D / 2) + i] = Float(sin(pos * omega))
                    out[base + half * (D / 2) + q + i] = Float(cos(pos * omega))
                }
            }
        }
    }
    return out
}

/// Timestep features (B, F): [cos(1000 t w_i), sin(1000 t w_i)], w_i = 10000^(-i/(F/2)) (DiT's embedder).
func timestepFeatures(out: UnsafeMutablePointer<Float>, t: UnsafePointer<Float>, batch: Int, dim F: Int) {
    let half = F / 2
    for b in 0..<batch {
        for i in 0..<half {
            let w = exp(-log(10000.0) * Double(i) / Double(half))
            let a = Double(t[b]) * 1000 * w
            out[b * F + i] = Float(cos(a)); out[b * F + half + i] = Float(sin(a))
        }
    }
}


/// The pooled prompt: the mean of the embedding rows of a prompt's non-PAD tokens (no position),
/// written to out + b * outStride for each of the B prompts; `counts` receives each prompt's
/// token count (at least 1), which the backward divides by. The DiT conditions on it, and the
/// AC-Flow critic reads its own table the same way.
public func pooledTokenEmbedding(out: UnsafeMutablePointer<Float>, outStride: Int, counts: UnsafeMutablePointer<Float>,
                                 tokens: UnsafePointer<Int32>, table: UnsafePointer<Float>, batch B: Int, textLength L: Int, width D: Int) {
    for b in 0..<B {
        var n = 0
        for j in 0..<L where tokens[b * L + j] != 0 { n += 1 }
        counts[b] = Float(max(n, 1))
        let pr = out + b * outStride
        pr.update(repeating: 0, count: D)
        for j in 0..<L where tokens[b * L + j] != 0 {
            let row = table + Int(tokens[b * L + j]) * D
            for i in 0..<D { pr[i] += row[i] }
        }
        let inv = 1 / counts[b]
        for i in 0..<D { pr[i] *= inv }
    }
}

/// Accumulates into `dtable` the gradient of `pooledTokenEmbedding` given dout (at dout + b * doutStride).
public func pooledTokenEmbeddingBackward(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, doutStride: Int,
                                         counts: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, batch B: Int, textLength L: Int, width D: Int) {
    for b in 0..<B {
        let inv = 1 / counts[b], g = dout + b * doutStride
        for j in 0..<L where tokens[b * L + j] != 0 {
            let row = dtable + Int(tokens[b * L + j]) * D
            for i in 0..<D { row[i] += g[i] * inv }
        }
    }
}
