import Flow
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What a clipped-ratio objective returns for one sample at one step.
public struct SampleLoss {
    public var loss: Float          // this sample's clipped loss (before the step weight)
    public var ratio: Float         // the ratio used in the loss (r, or rhat for GRPO-Guard)
    public var logRatio: Float      // its log
    public var plainLogRatio: Float // log r = logp_theta - logp_old (always logged)
    public var clipped: Bool        // the clipped branch is active (no gradient)
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

/// KL(pi_theta || pi_ref) of one SDE step: both are Gaussians with the variance s^2, so it is
/// ||mu - mu_ref||^2 / (2 s^2 n) per dimension (averaged over the n values, like the log-probs).
@inline(__always)
public func stepKL(_ c: StepCoefficients, mu: UnsafePointer<Float>, muRef: UnsafePointer<Float>, n: Int) -> Double {
    var kl = 0.0
    for i in 0..<n { let d = Double(mu[i] - muRef[i]); kl += d * d }
    return kl / (2 * Double(c.s * c.s) * Double(n))
}

/// d (beta stepKL) / d mu_i = (mu_i - mu_ref_i) * stepKLGradientScale(beta).
@inline(__always)
public func stepKLGradientScale(_ c: StepCoefficients, n: Int, beta: Float) -> Float { beta / (c.s * c.s * Float(n)) }

/// The AC-Flow actor loss, a weighted flow-matching regression with the Wasserstein regulariser:
///     L = mean_i [ w_i ||v_i - (eps_i - x0_i)||^2 / D ] + alpha mean_i [ ||v_i - vref_i||^2 / D ]
/// Writes dL/dv into `dv` and returns (loss, the W2 term mean_i ||v - vref||^2 / D).
public func acflowActorLoss(v: UnsafePointer<Float>, target: [Float], vRef: UnsafePointer<Float>, weights: [Float], alpha: Float,
                            pixels D: Int, dv: inout [Float], of total: Int? = nil) -> (loss: Double, w2: Double) {
    // `total`: the size of the whole batch when these B samples are one pass of it (the means
    // are over the whole batch, so the passes' losses and gradients add up to it)
    let B = weights.count, N = total ?? B
    var loss = 0.0, w2 = 0.0
    for b in 0..<B {
        var fm = 0.0, reg = 0.0
        for i in 0..<D {
            let k = b * D + i
            let e = v[k] - target[k], r = v[k] - vRef[k]
            fm += Double(e * e); reg += Double(r * r)
            dv[k] = 2 * (weights[b] * e + alpha * r) / Float(N * D)
        }
        loss += Double(weights[b]) * fm / Double(D) + Double(alpha) * reg / Double(D)
        w2 += reg / Double(D)
    }
    return (loss / Double(N), w2 / Double(N))
}

/// AC-Flow's transition target (c): the advantage-weighted negative log-likelihood of the
/// rollout's own SDE transitions x_i -> x'_i, with the W2 regulariser:
///     L = mean_i [ A_i ||x'_i - mu_i||^2 / (2 s_i^2 D) ] + alpha mean_i [ ||v_i - vref_i||^2 / D ],
///     mu_i = cx_i x_i + cv_i v_i
/// Its gradient is the policy gradient of each visited state with the critic's advantage (GRPO's
/// per-step gradient without the ratio and its clip); with every A = 0 only the regulariser
/// acts, so the regression cannot drift by itself. With `ratio` = (old log-probabilities, eps) it
/// is PPO's clipped surrogate instead, -min(rho A, clip(rho, 1 - eps, 1 + eps) A) with
/// rho = exp(logp - logp_old) (the per-value mean log-density, as GRPO's): the same gradient
/// times rho, and none where the clip holds. Writes dL/dv; returns (loss, the W2 term, the
/// samples the clip held).
@discardableResult
public func acflowTransitionLoss(v: UnsafePointer<Float>, x: [Float], xNext: [Float], steps: [StepCoefficients], vRef: UnsafePointer<Float>,
                                 advantages: [Float], alpha: Float, pixels D: Int, dv: inout [Float], of total: Int? = nil,
                                 ratio: (oldLogps: [Float], eps: Float)? = nil) -> (loss: Double, w2: Double, clipped: Int) {
    let B = advantages.count, N = total ?? B
    var loss = 0.0, w2 = 0.0, clipped = 0
    for b in 0..<B {
        let c = steps[b], a = advantages[b]
        var nll = 0.0, reg = 0.0
        for i in (b * D)..<((b + 1) * D) {
            let e = c.cx * x[i] + c.cv * v[i] - xNext[i], r = v[i] - vRef[i]
            nll += Double(e * e); reg += Double(r * r)
        }
        var scale: Float = 1                                   // d(surrogate)/d(-A logp): rho, or 0 where clipped
        if let ratio {
            let rho = Float(exp(Double(logProb(squaredDistance: nll, n: D, c: c)) - Double(ratio.oldLogps[b])))
            let held = (a > 0 && rho > 1 + ratio.eps) || (a < 0 && rho < 1 - ratio.eps)
            if held { clipped += 1; scale = 0 } else { scale = rho }
            loss -= Double(min(rho * a, min(max(rho, 1 - ratio.eps), 1 + ratio.eps) * a))
        } else {
            loss += Double(a) * nll / (2 * Double(c.s * c.s) * Double(D))
        }
        let k1 = scale * a / (c.s * c.s * Float(D) * Float(N)), k2 = 2 * alpha / Float(N * D)
        for i in (b * D)..<((b + 1) * D) {
            let e = c.cx * x[i] + c.cv * v[i] - xNext[i]
            dv[i] = k1 * e * c.cv + k2 * (v[i] - vRef[i])
        }
        loss += Double(alpha) * reg / Double(D)
        w2 += reg / Double(D)
    }
    return (loss / Double(N), w2 / Double(N), clipped)
}

/// AC-Flow's contrast target (DiffusionNFT, Zheng et al. 2025): on a fresh interpolant
/// x_t = (1 - t) x0 + t eps of a final image x0, the policy v and the sampling policy v_old
/// define an implicit positive and negative velocity,
///     v+ = beta v + (1 - beta) v_old,     v- = (1 + beta) v_old - beta v,
/// whose clean-image predictions x0+- = x_t - t v+- are pulled to x0 in proportion r and 1 - r,
///     L = mean_i [ r_i |x0+ - x0|^2 / (D m+) + (1 - r_i) |x0- - x0|^2 / (D m-) ] / beta
///         + alpha mean_i [ ||v_i - vref_i||^2 / D ],
/// r = 1/2 + A / (2 c_A) the advantage read as the probability of being better than the group,
/// m+- = max(mean |x0+- - x0|, 1e-5) held constant (the paper's adaptive weight). The loss is a
/// convex quadratic in v for every r in [0, 1]: at v = v_old its gradient is
/// 2 t (1 - 2 r) (x0hat - x0) / (D m), a signed flow-matching step, and with every r = 1/2 it
/// only pulls v back to v_old (no drift). `x0` holds the final images (B, D); writes dL/dv and
/// returns (loss, the W2 term).
public func acflowContrastLoss(v: UnsafePointer<Float>, vOld: UnsafePointer<Float>, xt: [Float], x0: [Float], t: [Float], r: [Float],
                               beta: Float, vRef: UnsafePointer<Float>, alpha: Float, pixels D: Int, dv: inout [Float],
                               of total: Int? = nil) -> (loss: Double, w2: Double) {
    let B = r.count, N = total ?? B
    var loss = 0.0, w2 = 0.0
    for b in 0..<B {
        let range = (b * D)..<((b + 1) * D), tb = t[b]
        var absP = 0.0, absN = 0.0
        for i in range {
            let ep = xt[i] - tb * (beta * v[i] + (1 - beta) * vOld[i]) - x0[i]
            let en = xt[i] - tb * ((1 + beta) * vOld[i] - beta * v[i]) - x0[i]
            absP += Double(abs(ep)); absN += Double(abs(en))
        }
        let mP = Float(max(absP / Double(D), 1e-5)), mN = Float(max(absN / Double(D), 1e-5))
        let kP = r[b] / (Float(D) * mP), kN = (1 - r[b]) / (Float(D) * mN), k2 = 2 * alpha / Float(N * D)
        var sP = 0.0, sN = 0.0, reg = 0.0
        for i in range {
            let ep = xt[i] - tb * (beta * v[i] + (1 - beta) * vOld[i]) - x0[i]
            let en = xt[i] - tb * ((1 + beta) * vOld[i] - beta * v[i]) - x0[i]
            let rv = v[i] - vRef[i]
            sP += Double(ep * ep); sN += Double(en * en); reg += Double(rv * rv)
            // d/dv of (kP ep^2 + kN en^2) / beta: dep/dv = -t beta, den/dv = t beta
            dv[i] = 2 * tb * (kN * en - kP * ep) / Float(N) + k2 * rv
        }
        loss += (Double(kP) * sP + Double(kN) * sN) / Double(beta) + Double(alpha) * reg / Double(D)
        w2 += reg / Double(D)
    }
    return (loss / Double(N), w2 / Double(N))
}

/// DiffusionNFT's optimality probability of an advantage: r = 1/2 + clamp(A / c, -1, 1) / 2.
@inline(__always)
public func optimalityProbability(_ advantage: Float, clip c: Float) -> Float { 0.5 + 0.5 * min(max(advantage / c, -1), 1) }
