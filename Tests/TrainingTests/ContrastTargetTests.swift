import Testing
import TestSupport
import Foundation
@testable import Training
import Analysis
import Tensor

/// AC-Flow's nft target (DiffusionNFT's contrast of implicit positive and negative policies).
@Suite struct ContrastTargetTests {
    /// The loss of one sample written out from the formula, with the adaptive weights m+- held at
    /// the values of `frozen` (the paper treats them as constants).
    func reference(v: [Float], vOld: [Float], xt: [Float], x0: [Float], t: [Float], r: [Float], beta: Float,
                   vRef: [Float], alpha: Float, D: Int, frozen: [Float]) -> Double {
        var total = 0.0
        for b in 0..<r.count {
            let range = (b * D)..<((b + 1) * D)
            func errors(_ vv: [Float]) -> (p: [Double], n: [Double]) {
                let t = Double(t[b]), be = Double(beta)
                let p = range.map { Double(xt[$0]) - t * (be * Double(vv[$0]) + (1 - be) * Double(vOld[$0])) - Double(x0[$0]) }
                let n = range.map { Double(xt[$0]) - t * ((1 + be) * Double(vOld[$0]) - be * Double(vv[$0])) - Double(x0[$0]) }
                return (p, n)
            }
            let f = errors(frozen), e = errors(v)
            let mP = max(f.p.map(abs).reduce(0, +) / Double(D), 1e-5), mN = max(f.n.map(abs).reduce(0, +) / Double(D), 1e-5)
            let lp = e.p.map { $0 * $0 }.reduce(0, +) / (Double(D) * mP), ln = e.n.map { $0 * $0 }.reduce(0, +) / (Double(D) * mN)
            let reg = range.map { Double(v[$0] - vRef[$0]) * Double(v[$0] - vRef[$0]) }.reduce(0, +) / Double(D)
            total += (Double(r[b]) * lp + Double(1 - r[b]) * ln) / Double(beta) + Double(alpha) * reg
        }
        return total / Double(r.count)
    }

    /// The loss by hand, and dv its gradient (central differences with the adaptive weights held).
    @Test(arguments: [Float(1), 0.3]) func lossByHandAndItsGradient(beta: Float) {
        let D = 5, B = 3
        var rng = RNG(seed: 21)
        let v = rng.normals(B * D), vOld = rng.normals(B * D), xt = rng.normals(B * D), x0 = rng.normals(B * D), vRef = rng.normals(B * D)
        let t: [Float] = [0.9, 0.4, 0.1], r: [Float] = [1, 0.25, 0.5], alpha: Float = 0.05
        var dv = [Float](repeating: 0, count: B * D)
        let (loss, w2) = acflowContrastLoss(v: v, vOld: vOld, xt: xt, x0: x0, t: t, r: r, beta: beta, vRef: vRef, alpha: alpha, pixels: D, dv: &dv)
        let expected = reference(v: v, vOld: vOld, xt: xt, x0: x0, t: t, r: r, beta: beta, vRef: vRef, alpha: alpha, D: D, frozen: v)
        #expect(abs(loss - expected) < 1e-5 * max(1, abs(expected)), "\(loss) vs \(expected)")
        let reg = zip(v, vRef).map { Double(($0 - $1) * ($0 - $1)) }.reduce(0, +) / Double(B * D)
        #expect(abs(w2 - reg) < 1e-6)
        for i in 0..<(B * D) {
            let h: Float = 1e-2
            var up = v, down = v; up[i] += h; down[i] -= h
            let lp = reference(v: up, vOld: vOld, xt: xt, x0: x0, t: t, r: r, beta: beta, vRef: vRef, alpha: alpha, D: D, frozen: v)
            let lm = reference(v: down, vOld: vOld, xt: xt, x0: x0, t: t, r: r, beta: beta, vRef: vRef, alpha: alpha, D: D, frozen: v)
            let fd = (lp - lm) / Double(2 * h)     // exact for a quadratic
            #expect(abs(fd - Double(dv[i])) < 1e-4 * max(1, abs(fd)), "dv[\(i)] \(dv[i]) vs \(fd)")
        }
    }

    /// At v = v_old the gradient is the signed flow-matching step 2 t (1 - 2r)(x0hat - x0) / (D m)
    /// (per sample, over the batch): r = 1 pulls the clean-image prediction to the sample, r = 0
    /// pushes it away, r = 1/2 leaves it (the control cannot drift).
    @Test func atTheSamplingPolicyItIsASignedRegression() {
        let D = 6, B = 3
        var rng = RNG(seed: 5)
        let vOld = rng.normals(B * D), xt = rng.normals(B * D), x0 = rng.normals(B * D)
        let t: [Float] = [0.7, 0.7, 0.7], r: [Float] = [1, 0, 0.5]
        var dv = [Float](repeating: 0, count: B * D)
        _ = acflowContrastLoss(v: vOld, vOld: vOld, xt: xt, x0: x0, t: t, r: r, beta: 1, vRef: vOld, alpha: 0.1, pixels: D, dv: &dv)
        for b in 0..<B {
            let e = (0..<D).map { xt[b * D + $0] - t[b] * vOld[b * D + $0] - x0[b * D + $0] }
            let m = e.map(abs).reduce(0, +) / Float(D)
            for i in 0..<D {
                let expected = 2 * t[b] * (1 - 2 * r[b]) * e[i] / (Float(D) * m) / Float(B)
                #expect(abs(dv[b * D + i] - expected) < 1e-5, "sample \(b) pixel \(i): \(dv[b * D + i]) vs \(expected)")
            }
        }
        #expect(dv[(2 * D)..<(3 * D)].allSatisfy { $0 == 0 })
        // a small step down the gradient brings sample 0's prediction x_t - t v closer to x0
        let before = (0..<D).map { xt[$0] - t[0] * vOld[$0] - x0[$0] }.map { $0 * $0 }.reduce(0, +)
        let after = (0..<D).map { xt[$0] - t[0] * (vOld[$0] - 0.1 * dv[$0]) - x0[$0] }.map { $0 * $0 }.reduce(0, +)
        #expect(after < before)
    }

    @Test func optimalityProbabilityIsTheClippedAdvantage() {
        #expect(optimalityProbability(0, clip: 1) == 0.5)
        #expect(optimalityProbability(0.5, clip: 1) == 0.75 && optimalityProbability(-2, clip: 1) == 0)
        #expect(optimalityProbability(3, clip: 2) == 1 && optimalityProbability(-1, clip: 2) == 0.25)
        var a = ACFlowConfig()
        a.nftBeta = 0
        #expect(throws: InvalidOption.self) { try a.validate() }
    }
}
