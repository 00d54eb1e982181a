/// 3x3 convolution with zero padding 1 (same size), on channel-last images:
/// out (B, S, S, Cout) = conv(inp (B, S, S, Cin), weight (Cout, Cin, 3, 3)) + bias (Cout).
/// The weight is stored in PyTorch's (out, in, kh, kw) order; the kernels work on a copy with
/// the input channel innermost, so every tap is a contiguous dot product over Cin.
public struct Conv3x3Shape: Sendable {
    public var batch, side, inChannels, outChannels: Int
    public init(batch: Int, side: Int, inChannels: Int, outChannels: Int) {
        self.batch = batch; self.side = side; self.inChannels = inChannels; self.outChannels = outChannels
    }
    public var weightCount: Int { outChannels * inChannels * 9 }
}

/// (Cout, Cin, 3, 3) -> (Cout, 3, 3, Cin), and back (`inverse`).
@inline(__always)
func conv3x3Reorder(_ out: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, cout: Int, cin: Int, inverse: Bool = false) {
    for co in 0..<cout { for ci in 0..<cin { for tap in 0..<9 {
        let pt = (co * cin + ci) * 9 + tap, tapMajor = (co * 9 + tap) * cin + ci
        if inverse { out[pt] = w[tapMajor] } else { out[tapMajor] = w[pt] }
    } } }
}

/// The taps of output pixel (y, x) that fall inside the image: calls body(tap, input pixel).
@inline(__always)
func forEachTap(y: Int, x: Int, side S: Int, _ body: (Int, Int) -> Void) {
    for ky in 0..<3 {
        let yy = y + ky - 1
        if yy < 0 || yy >= S { continue }
        for kx in 0..<3 {
            let xx = x + kx - 1
            if xx < 0 || xx >= S { continue }
            body(ky * 3 + kx, yy * S + xx)
        }
    }
}

public func conv3x3Forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>, shape s: Conv3x3Shape) {
    let S = s.side, ci = s.inChannels, co = s.outChannels
    let wt = UnsafeMutablePointer<Float>.allocate(capacity: s.weightCount)
    defer { wt.deallocate() }
    conv3x3Reorder(wt, weight, cout: co, cin: ci)
    let rgb8 = co == 3 && ci % 8 == 0     // the convolutional head's case, 8 input channels per vector
    parallelFor(s.batch) { range in
        for b in range {
            let x = inp + b * S * S * ci, o = out + b * S * S * co
            for y in 0..<S { for xx in 0..<S {
                let px = y * S + xx
                if rgb8 {
                    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>()
                    forEachTap(y: y, x: xx, side: S) { tap, q in
                        let src = x + q * ci, w0 = wt + tap * ci, w1 = wt + (9 + tap) * ci, w2 = wt + (18 + tap) * ci
                        for c in stride(from: 0, to: ci, by: 8) {
                            let f = load8(src + c)
                            a0 += f * load8(w0 + c); a1 += f * load8(w1 + c); a2 += f * load8(w2 + c)
                        }
                    }
                    o[px * 3] = bias[0] + a0.sum(); o[px * 3 + 1] = bias[1] + a1.sum(); o[px * 3 + 2] = bias[2] + a2.sum()
                    continue
                }
                for c in 0..<co {
                    var acc = bias[c]
                    forEachTap(y: y, x: xx, side: S) { tap, q in
                        let src = x + q * ci, w = wt + (c * 9 + tap) * ci
                        var d: Float = 0
                        for i in 0..<ci { d += src[i] * w[i] }
                        acc += d
                    }
                    o[px * co + c] = acc
                }
            } }
        }
    }
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }

/// dinp = conv^T(dout) (overwritten); dweight and dbias ACCUMULATE.
public func conv3x3Backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                            dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                            weight: UnsafePointer<Float>, shape s: Conv3x3Shape) {
    let S = s.side, ci = s.inChannels, co = s.outChannels, n = S * S
    let rgb8 = co == 3 && ci % 8 == 0
    let wt = UnsafeMutablePointer<Float>.allocate(capacity: s.weightCount)
    defer { wt.deallocate() }
    if let dinp {
        conv3x3Reorder(wt, weight, cout: co, cin: ci)
        parallelFor(s.batch) { range in
            for b in range {
                let dx = dinp + b * n * ci, g = dout + b * n * co
                dx.update(repeating: 0, count: n * ci)
                for y in 0..<S { for xx in 0..<S {
                    let px = y * S + xx
                    if rgb8 {
                        let g0 = SIMD8<Float>(repeating: g[px * 3]), g1 = SIMD8<Float>(repeating: g[px * 3 + 1])
                        let g2 = SIMD8<Float>(repeating: g[px * 3 + 2])
                        forEachTap(y: y, x: xx, side: S) { tap, q in
                            let dst = dx + q * ci, w0 = wt + tap * ci, w1 = wt + (9 + tap) * ci, w2 = wt + (18 + tap) * ci
                            for c in stride(from: 0, to: ci, by: 8) {
                                store8(load8(dst + c) + g0 * load8(w0 + c) + g1 * load8(w1 + c) + g2 * load8(w2 + c), dst + c)
                            }
                        }
                        continue
                    }
                    for c in 0..<co {
                        let gv = g[px * co + c]
                        forEachTap(y: y, x: xx, side: S) { tap, q in
                            let dst = dx + q * ci, w = wt + (c * 9 + tap) * ci
                            for i in 0..<ci { dst[i] += gv * w[i] }
                        }
                    }
                } }
            }
        }
    }
    // weight and bias gradients, in the tap-major order, then added back in PyTorch order
    wt.update(repeating: 0, count: s.weightCount)
    for b in 0..<s.batch {
        let x = inp + b * n * ci, g = dout + b * n * co
        for y in 0..<S { for xx in 0..<S {
            let px = y * S + xx
            for c in 0..<co { dbias[c] += g[px * co + c] }
            if rgb8 {
                let g0 = SIMD8<Float>(repeating: g[px * 3]), g1 = SIMD8<Float>(repeating: g[px * 3 + 1])
                let g2 = SIMD8<Float>(repeating: g[px * 3 + 2])
                forEachTap(y: y, x: xx, side: S) { tap, q in
                    let src = x + q * ci, w0 = wt + tap * ci, w1 = wt + (9 + tap) * ci, w2 = wt + (18 + tap) * ci
                    for c in stride(from: 0, to: ci, by: 8) {
                        let f = load8(src + c)
                        store8(load8(w0 + c) + g0 * f, w0 + c); store8(load8(w1 + c) + g1 * f, w1 + c); store8(load8(w2 + c) + g2 * f, w2 + c)
                    }
                }
                continue
            }
            for c in 0..<co {
                let gv = g[px * co + c]
                forEachTap(y: y, x: xx, side: S) { tap, q in
                    let src = x + q * ci, dw = wt + (c * 9 + tap) * ci
                    for i in 0..<ci { dw[i] += gv * src[i] }
                }
            }
        } }
    }
    let back = UnsafeMutablePointer<Float>.allocate(capacity: s.weightCount)
    defer { back.deallocate() }
    conv3x3Reorder(back, wt, cout: co, cin: ci, inverse: true)
    for i in 0..<s.weightCount { dweight[i] += back[i] }
}
