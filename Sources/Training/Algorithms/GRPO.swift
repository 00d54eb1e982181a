import Flow
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Flow-GRPO: r = exp(logp_theta - logp_old), PPO clip, every step weighted equally.
public struct GRPOObjective: PolicyObjective {
    public var clipRange: Float
    public init(clipRange: Float) { self.clipRange = clipRange }
    public func stepWeight(_ c: StepCoefficients) -> Float { 1 }

    public func sampleLoss(_ c: StepCoefficients, xNext: UnsafePointer<Float>, muOld: UnsafePointer<Float>,
                           mu: UnsafePointer<Float>, n: Int, advantage: Float, dmu: UnsafeMutablePointer<Float>) -> SampleLoss {
        let lr = sdeLogRatio(c, xNext: xNext, muOld: muOld, mu: mu, n: n).logRatio
        let r = Float(exp(lr))
        let (loss, g, clipped) = clippedLoss(ratio: r, advantage: advantage, eps: clipRange)
        // d logp / d mu_d = (x'_d - mu_d) / (s^2 n)
        let k = g / (c.s * c.s * Float(n))
        for i in 0..<n { dmu[i] = k * (xNext[i] - mu[i]) }
        return SampleLoss(loss: loss, ratio: r, logRatio: Float(lr), plainLogRatio: Float(lr), clipped: clipped)
    }
}
