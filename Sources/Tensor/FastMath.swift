/// Vectorised exp for the element-wise kernels (GELU, SiLU, softmax). Range reduction
/// x = n ln2 + r with |r| <= ln2/2, a degree-7 polynomial for e^r, 2^n by exponent bits.
/// Relative error below 1e-6 over [-87, 88]; inputs are clamped to that range.
@inline(__always)
public func fastExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    // clamp with masks: the generic pointwiseMin/Max and rounded(.down) are not inlined into
    // vector code here (they showed as 15% of a GRPO iteration in a profile)
    var v = x
    v.replace(with: -87, where: v .< -87)
    v.replace(with: 88, where: v .> 88)
    // n = round(x / ln2) by the 1.5 * 2^23 trick; the sum's low mantissa bits hold n
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let shifted = v * 1.442_695_04 + magic
    let n = shifted - magic
    // r = x - n ln2, |r| <= ln2 / 2, with ln2 split in two parts for accuracy
    var r = v - n * 0.693_145_751_953_125
    r = r - n * 1.428_606_765_330_187_045e-06
    var p = SIMD8<Float>(repeating: 1.0 / 5040.0)
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    let ni = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let bits = (ni &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: SIMD8<Float>.self)
}

/// Scalar exp through the same polynomial (so that scalar tails match vector bodies).
@inline(__always)
public func fastExp(_ x: Float) -> Float { fastExp(SIMD8(repeating: x))[0] }

/// Applies `f` to 8 floats at a time over n elements of `src`, writing `dst`; the tail is
/// padded through a SIMD8 as well, so every element takes the same arithmetic path.
@inline(__always)
public func mapSIMD8(_ n: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                     _ f: (SIMD8<Float>) -> SIMD8<Float>) {
    var i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dst + i).storeBytes(of: f(v), as: SIMD8<Float>.self)
        i += 8
    }
    if i < n {
        var v = SIMD8<Float>(repeating: 0)
        for j in 0..<(n - i) { v[j] = src[i + j] }
        let r = f(v)
        for j in 0..<(n - i) { dst[i + j] = r[j] }
    }
}

extension UnsafePointer where Pointee == Float {
    /// The 8 floats at self + i (no alignment needed).
    @inline(__always) public func simd8(_ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<Float>.self)
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// The 8 floats at self + i (no alignment needed).
    @inline(__always) public func simd8(_ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(self + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Stores 8 floats at self + i.
    @inline(__always) public func store8(_ v: SIMD8<Float>, at i: Int) {
        UnsafeMutableRawPointer(self + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}
