import Testing
import TestSupport
import Foundation
import Analysis
import Tensor
import Model
import Flow
import Shapes
import Training

@Suite struct SDETests {
    @Test func logProbabilityIsTheClosedFormGaussianDensity() throws {
        let m = try randomTinyModel(seed: 1)
        let cfg = SDEConfig(steps: 5, noiseLevel: 0.7)
        let r = try tinyRollout(m, batch: 3, config: cfg, seed: 2)
        let n = r.pixels
        for k in 0..<cfg.stochasticSteps {
            let c = cfg.coefficients(k)
            // sigma_t = a sqrt(t / (1 - t)), with 1 - t_1 at t = 1
            let g = cfg.grid
            let expectedSigma = 0.7 * (g[k] / (k == 0 ? 1 - g[1] : 1 - g[k])).squareRoot()
            #expect(abs(c.sigma - expectedSigma) < 1e-6)
            for b in 0..<3 {
                let x1 = r.state(k + 1, b), mu = r.means[((k * 3 + b) * n)..<((k * 3 + b + 1) * n)]
                var logp = 0.0
                for (xv, mv) in zip(x1, mu) {
                    let s = Double(c.s)
                    logp += -Double(xv - mv) * Double(xv - mv) / (2 * s * s) - log(s) - 0.5 * log(2 * Double.pi)
                }
                logp /= Double(n)
                #expect(abs(Double(r.logps[k * 3 + b]) - logp) < 1e-5, "step \(k) sample \(b)")
            }
        }
        // the last step is deterministic: x_T = mu = x - h v
        #expect(r.logps[(cfg.steps - 1) * 3] == 0)
    }

    @Test func rolloutsAreDeterministicGivenTheSeed() throws {
        let m = try randomTinyModel(seed: 3)
        let a = try tinyRollout(m, batch: 2, config: SDEConfig(steps: 4), seed: 9)
        let b = try tinyRollout(m, batch: 2, config: SDEConfig(steps: 4), seed: 9)
        let c = try tinyRollout(m, batch: 2, config: SDEConfig(steps: 4), seed: 10)
        #expect(a.states == b.states && a.logps == b.logps)
        #expect(a.states != c.states)
    }

    /// `window` keeps the first steps stochastic and makes the later ones the ODE's Euler steps,
    /// x_k+1 = x_k - h v (no log-probability, not trained).
    @Test func aWindowMakesTheLaterStepsDeterministic() throws {
        let m = try randomTinyModel(seed: 6)
        let cfg = SDEConfig(steps: 5, window: 2)
        #expect(cfg.stochasticSteps == 2 && SDEConfig(steps: 5, stochasticLastStep: true, window: 5).stochasticSteps == 5)
        let r = try tinyRollout(m, batch: 2, config: cfg, seed: 7), n = r.pixels
        let ws = try m.makeWorkspace(batch: 2, training: false)
        for k in 0..<cfg.steps {
            #expect((r.logps[k * 2] != 0) == (k < 2), "step \(k)")
            guard k >= 2 else { continue }
            let c = cfg.coefficients(k), x = Array(r.states[(k * 2 * n)..<((k + 1) * 2 * n)])
            let v = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: [c.t, c.t], tokens: r.tokens, batch: 2), count: 2 * n))
            var worst: Float = 0
            for i in 0..<(2 * n) { worst = max(worst, abs(r.states[(k + 1) * 2 * n + i] - (x[i] - c.h * v[i]))) }
            #expect(worst < 1e-5, "step \(k): \(worst)")
        }
    }

    @Test func meanFollowsTheSDEDrift() throws {
        // mu = x - h [v + sigma^2/(2t) (x + (1 - t) v)], checked against the stored mean with v from the network
        let m = try randomTinyModel(seed: 4)
        let cfg = SDEConfig(steps: 4, noiseLevel: 0.5)
        let r = try tinyRollout(m, batch: 2, config: cfg, seed: 5)
        let n = r.pixels, k = 1, c = cfg.coefficients(k)
        let ws = try m.makeWorkspace(batch: 2, training: false)
        let x = Array(r.states[(k * 2 * n)..<((k + 1) * 2 * n)])
        let v = Array(UnsafeBufferPointer(start: m.forward(ws, x: x, t: [c.t, c.t], tokens: r.tokens, batch: 2), count: 2 * n))
        for i in stride(from: 0, to: 2 * n, by: 37) {
            let mu = x[i] - c.h * (v[i] + c.sigma * c.sigma / (2 * c.t) * (x[i] + (1 - c.t) * v[i]))
            #expect(abs(mu - r.means[k * 2 * n + i]) < 1e-5)
        }
    }
}
