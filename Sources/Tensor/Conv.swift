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

/// acc (8 lanes) + tail += sum_i a[i] b[i], and y[i] += k x[i], over n values 8 at a time, then a
/// scalar tail: the inner operation of every tap, for any number of channels. The forward keeps
/// `acc` across the 9 taps and reduces it once per output.
@inline(__always)
func dot8(_ acc: inout SIMD8<Float>, _ tail: inout Float, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { acc += load8(a + i) * load8(b + i); i += 8 }
    while i < n { tail += a[i] * b[i]; i += 1 }
}

@inline(__always)
func axpy8(_ y: UnsafeMutablePointer<Float>, _ k: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let kv = SIMD8<Float>(repeating: k)
    var i = 0
    while i + 8 <= n { store8(load8(y + i) + kv * load8(x + i), y + i); i += 8 }
    while i < n { y[i] += k * x[i]; i += 1 }
}

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }

public func conv3x3Forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           bias: UnsafePointer<Float>, shape s: Conv3x3Shape) {
    let S = s.side, ci = s.inChannels, co = s.outChannels
    let wt = UnsafeMutablePointer<Float>.allocate(capacity: s.weightCount)
    defer { wt.deallocate() }
    conv3x3Reorder(wt, weight, cout: co, cin: ci)
    parallelFor(s.batch) { range in
        for b in range {
            let x = inp + b * S * S * ci, o = out + b * S * S * co
            for y in 0..<S { for xx in 0..<S {
                let px = y * S + xx
                for c in 0..<co {
                    var acc = SIMD8<Float>(), tail = bias[c]
                    forEachTap(y: y, x: xx, side: S) { tap, q in dot8(&acc, &tail, x + q * ci, wt + (c * 9 + tap) * ci, ci) }
                    o[px * co + c] = tail + acc.sum()
                }
            } }
        }
    }
}

/// dinp = conv^T(dout) (overwritten); dweight and dbias ACCUMULATE.
public func conv3x3Backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                            dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                            weight: UnsafePointer<Float>, shape s: Conv3x3Shape) {
    let S = s.side, ci = s.inChannels, co = s.outChannels, n = S * S
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
                    for c in 0..<co {
                        let gv = g[px * co + c]
                        forEachTap(y: y, x: xx, side: S) { tap, q in axpy8(dx + q * ci, gv, wt + (c * 9 + tap) * ci, ci) }
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
            for c in 0..<co {
                let gv = g[px * co + c]
                dbias[c] += gv
                forEachTap(y: y, x: xx, side: S) { tap, q in axpy8(wt + (c * 9 + tap) * ci, gv, x + q * ci, ci) }
            }
        } }
    }
    let back = UnsafeMutablePointer<Float>.allocate(capacity: s.weightCount)
    defer { back.deallocate() }
    conv3x3Reorder(back, wt, cout: co, cin: ci, inverse: true)
    for i in 0..<s.weightCount { dweight[i] += back[i] }
}
