#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// AdamW (decoupled weight decay, Loshchilov & Hutter) over one flat parameter buffer,
/// with global gradient-norm clipping. The moments are plain arrays so they can be saved.
public struct AdamW: Sendable {
    public var lr: Float                 // learning rate
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float        // decoupled: p -= lr * wd * p
    public var maxGradNorm: Float?       // clip the global L2 norm to this (nil: no clipping)
    public var step: Int = 0             // number of updates taken
    public var m: [Float]                // first moment  (P)
    public var v: [Float]                // second moment (P)
    /// Per-parameter flag: false excludes a parameter from weight decay (biases, embeddings...).
    public var decayMask: [Bool]?

    public init(count: Int, lr: Float, weightDecay: Float = 0, maxGradNorm: Float? = 1.0, decayMask: [Bool]? = nil) {
        self.lr = lr; self.weightDecay = weightDecay; self.maxGradNorm = maxGradNorm
        m = [Float](repeating: 0, count: count); v = [Float](repeating: 0, count: count)
        self.decayMask = decayMask
    }

    /// Takes one step. Returns the gradient norm before clipping.
    @discardableResult
    public mutating func update(params: UnsafeMutableBufferPointer<Float>, grads: UnsafeMutableBufferPointer<Float>) -> Float {
        precondition(params.count == m.count && grads.count == m.count, "AdamW: buffer sizes differ")
        let norm = l2Norm(UnsafeBufferPointer(grads))
        var scale: Float = 1
        if let maxGradNorm, norm > maxGradNorm { scale = maxGradNorm / (norm + 1e-6) }
        step += 1
        let bc1 = 1 - pow(beta1, Float(step)), bc2 = 1 - pow(beta2, Float(step))
        let lr = self.lr, b1 = beta1, b2 = beta2, eps = self.eps, wd = weightDecay
        let mask = decayMask
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                for i in 0..<params.count {
                    let g = grads[i] * scale
                    m[i] = b1 * m[i] + (1 - b1) * g
                    v[i] = b2 * v[i] + (1 - b2) * g * g
                    let mhat = m[i] / bc1, vhat = v[i] / bc2
                    var p = params[i]
                    if wd != 0, mask?[i] ?? true { p -= lr * wd * p }
                    params[i] = p - lr * mhat / (vhat.squareRoot() + eps)
                }
            }
        }
        return norm
    }
}

/// L2 norm of a buffer, accumulated in double precision.
public func l2Norm(_ x: UnsafeBufferPointer<Float>) -> Float {
    guard let p = x.baseAddress else { return 0 }
    return Float(squaredNorm(p, count: x.count).squareRoot())
}
