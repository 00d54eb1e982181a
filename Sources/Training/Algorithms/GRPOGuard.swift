import Flow
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// GRPO-Guard: RatioNorm, rhat = exp(s (logp_theta - logp_old + b)), b = ||mu - mu_old||^2 / (2 n s^2)
/// per sample (= exp(<z, dmu>/n), centred on 1), and the step's loss divided by h.
public struct GRPOGuardObjective: PolicyObjective {
    public var clipRange: Float
    public var ratioNorm = true        // RatioNorm on/off (ablation)
    public var reweight = true         // 1/h step reweighting on/off (ablation)
    public init(clipRange: Float, ratioNorm: Bool = true, reweight: Bool = true) {
        self.clipRange = clipRange; self.ratioNorm = ratioNorm; self.reweight = reweight
    }
    public func stepWeight(_ c: StepCoefficients) -> Float { reweight ? 1 / c.h : 1 }

    public func sampleLoss(_ c: StepCoefficients, xNext: UnsafePointer<Float>, muOld: UnsafePointer<Float>,
                           mu: UnsafePointer<Float>, n: Int, advantage: Float, dmu: UnsafeMutablePointer<Float>) -> SampleLoss {
        guard ratioNorm else {
            return GRPOObjective(clipRange: clipRange).sampleLoss(c, xNext: xNext, muOld: muOld, mu: mu, n: n, advantage: advantage, dmu: dmu)
        }
        let (lr, zd, _) = sdeLogRatio(c, xNext: xNext, muOld: muOld, mu: mu, n: n)
        // s (log r + b) = <z, dmu> / n exactly; zd is that quantity computed without cancellation
        let logHat = zd
        let r = Float(exp(logHat))
        let (loss, g, clipped) = clippedLoss(ratio: r, advantage: advantage, eps: clipRange)
        // d log rhat / d mu_d = (x'_d - mu_old_d) / (s n)
        let k = g / (c.s * Float(n))
        for i in 0..<n { dmu[i] = k * (xNext[i] - muOld[i]) }
        return SampleLoss(loss: loss, ratio: r, logRatio: Float(logHat), plainLogRatio: Float(lr), clipped: clipped)
    }
}
