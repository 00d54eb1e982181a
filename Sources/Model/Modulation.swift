import Tensor

// adaLN modulation and gated residuals, per sample b over its `rows` tokens.
// mod (B, modStride) holds the sample's chunks; shift/scale/gate are offsets into it.

/// out (B, rows, D) = x * (1 + scale[b]) + shift[b].
func modulateForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, mod: UnsafePointer<Float>,
                     modStride: Int, shift: Int, scale: Int, batch: Int, rows: Int, d: Int) {
    parallelFor(batch) { bs in
        for b in bs {
            let sh = mod + b * modStride + shift, sc = mod + b * modStride + scale
            for r in 0..<rows {
                let o = (b * rows + r) * d
                for i in 0..<d { out[o + i] = x[o + i] * (1 + sc[i]) + sh[i] }
            }
        }
    }
}

/// dx (written) = dout * (1 + scale[b]); dmod shift += sum dout; dmod scale += sum dout * x.
func modulateBackward(dx: UnsafeMutablePointer<Float>, dmod: UnsafeMutablePointer<Float>,
                      dout: UnsafePointer<Float>, x: UnsafePointer<Float>, mod: UnsafePointer<Float>,
                      modStride: Int, shift: Int, scale: Int, batch: Int, rows: Int, d: Int) {
    parallelFor(batch) { bs in
        for b in bs {
            let sc = mod + b * modStride + scale
            let dsh = dmod + b * modStride + shift, dsc = dmod + b * modStride + scale
            for r in 0..<rows {
                let o = (b * rows + r) * d
                for i in 0..<d {
                    let g = dout[o + i]
                    dx[o + i] = g * (1 + sc[i])
                    dsh[i] += g
                    dsc[i] += g * x[o + i]
                }
            }
        }
    }
}

/// out (B, rows, D) = res + gate[b] * x.
func gatedResidualForward(out: UnsafeMutablePointer<Float>, res: UnsafePointer<Float>, x: UnsafePointer<Float>,
                          mod: UnsafePointer<Float>, modStride: Int, gate: Int, batch: Int, rows: Int, d: Int) {
    parallelFor(batch) { bs in
        for b in bs {
            let gt = mod + b * modStride + gate
            for r in 0..<rows {
                let o = (b * rows + r) * d
                for i in 0..<d { out[o + i] = res[o + i] + gt[i] * x[o + i] }
            }
        }
    }
}

/// dx (written) = dout * gate[b]; dmod gate += sum dout * x. (The residual passes dout through.)
func gatedResidualBackward(dx: UnsafeMutablePointer<Float>, dmod: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           x: UnsafePointer<Float>, mod: UnsafePointer<Float>, modStride: Int, gate: Int,
                           batch: Int, rows: Int, d: Int) {
    parallelFor(batch) { bs in
        for b in bs {
            let gt = mod + b * modStride + gate, dg = dmod + b * modStride + gate
            for r in 0..<rows {
                let o = (b * rows + r) * d
                for i in 0..<d {
                    dx[o + i] = dout[o + i] * gt[i]
                    dg[i] += dout[o + i] * x[o + i]
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

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
