import Flow

/// What a clipped-ratio objective returns for one sample at one step.
public struct SampleLoss {
    public var loss: Float          // this sample's clipped loss (before the step weight)
    public var ratio: Float         // the ratio used in the loss (r, or rhat for GRPO-Guard)
    public var logRatio: Float      // its log
    public var plainLogRatio: Float // log r = logp_theta - logp_old (always logged)
    public var clipped: Bool        // the clipped branch is active (no gradient)
}

/// A PPO-style objective on the SDE transition's log-probability (the Flow-GRPO family).
/// `sampleLoss` also WRITES dL/dmu for the sample into `dmu` (n values).
public protocol PolicyObjective {
    var clipRange: Float { get }
    /// The step's weight in the loss (1, or 1/h for GRPO-Guard's reweighting).
    func stepWeight(_ c: StepCoefficients) -> Float
    func sampleLoss(_ c: StepCoefficients, xNext: UnsafePointer<Float>, muOld: UnsafePointer<Float>,
                    mu: UnsafePointer<Float>, n: Int, advantage: Float, dmu: UnsafeMutablePointer<Float>) -> SampleLoss
}

/// log r = logp(x' | mu) - logp(x' | mu_old), from the identity
/// (x' - mu_old)^2 - (x' - mu)^2 = (mu - mu_old)(2x' - mu - mu_old), in double precision
/// (the difference of two stored log-probabilities would lose most of its digits in Float).
@inline(__always)
public func sdeLogRatio(_ c: StepCoefficients, xNext: UnsafePointer<Float>, muOld: UnsafePointer<Float>,
                          mu: UnsafePointer<Float>, n: Int) -> (logRatio: Double, zDotDmu: Double, dmuSquared: Double) {
    var acc = 0.0, zd = 0.0, dd = 0.0
    for i in 0..<n {
        let d = Double(mu[i]) - Double(muOld[i])
        acc += d * (2 * Double(xNext[i]) - Double(mu[i]) - Double(muOld[i]))
        zd += (Double(xNext[i]) - Double(muOld[i])) * d
        dd += d * d
    }
    let s = Double(c.s)
    return (acc / (2 * s * s * Double(n)), zd / (s * Double(n)), dd)
}

/// PPO clipped loss max(-A r, -A clip(r, 1-eps, 1+eps)) and its derivative in log r.
@inline(__always)
func clippedLoss(ratio r: Float, advantage a: Float, eps: Float) -> (loss: Float, dLogRatio: Float, clipped: Bool) {
    let unclipped = -a * r
    let clipped = -a * min(max(r, 1 - eps), 1 + eps)
    if unclipped >= clipped { return (unclipped, -a * r, false) }
    return (clipped, 0, true)
}

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

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
