import Tensor
import Model
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The Flow-GRPO SDE sampler for RL rollouts: the ODE's marginals with noise level a,
///
///     sigma_t = a sqrt(t / (1 - t))      (at t = 1: 1 - t_1 in place of 1 - t)
///     mu      = x_t - h [v + sigma_t^2 / (2t) (x_t + (1 - t) v)]
///     x_{t-h} = mu + sigma_t sqrt(h) z
///     logp    = mean_d [-(x_{t-h} - mu)^2 / (2 s^2)] - log s - log sqrt(2 pi),   s = sigma_t sqrt(h)
public struct SDEConfig: Codable, Equatable, Sendable {
    public var steps = 10                  // T
    public var noiseLevel: Float = 0.7     // a
    public var shift: Float = 1            // time-grid shift m
    public var stochasticLastStep = false  // false: the last step is a deterministic Euler step, not trained
    /// Only the first `window` steps stochastic (and trained), the later ones deterministic Euler
    /// steps (MixGRPO's idea, here a window at the start): nil, every step but the last.
    public var window: Int? = nil
    public init(steps: Int = 10, noiseLevel: Float = 0.7, shift: Float = 1, stochasticLastStep: Bool = false, window: Int? = nil) {
        self.steps = steps; self.noiseLevel = noiseLevel; self.shift = shift; self.stochasticLastStep = stochasticLastStep
        self.window = window
    }

    public var grid: [Float] { timeGrid(steps: steps, shift: shift) }
    /// Steps with a log-probability (the ones that can be trained): the first ones.
    public var stochasticSteps: Int { min(window ?? steps, stochasticLastStep ? steps : steps - 1) }

    /// Coefficients of step k: t, h, sigma, s = sigma sqrt(h), and mu = cx x + cv v.
    public func coefficients(_ k: Int) -> StepCoefficients {
        let g = grid
        let t = g[k], h = g[k] - g[k + 1]
        let oneMinus = t >= 1 ? 1 - g[k + 1] : 1 - t
        let sigma = noiseLevel * (t / oneMinus).squareRoot()
        let s = sigma * h.squareRoot()
        let cx = 1 - h * sigma * sigma / (2 * t)
        let cv = -h * (1 + sigma * sigma * (1 - t) / (2 * t))
        return StepCoefficients(k: k, t: t, h: h, sigma: sigma, s: s, cx: cx, cv: cv)
    }
}

public struct StepCoefficients: Sendable {
    public var k: Int
    public var t: Float, h: Float, sigma: Float, s: Float
    public var cx: Float, cv: Float        // mu = cx x_t + cv v ; d mu / d v = cv

    /// log sqrt(2 pi) + log s: the constant part of the per-pixel-mean Gaussian log density.
    public var logNormaliser: Float { Float(0.918_938_533_204_672_7) + logf(s) }
}

/// Everything a rollout keeps: states, means, old log-probabilities, noise, the final images.
public struct Rollout {
    public let batch: Int                  // B samples
    public let pixels: Int                 // n values per image
    public let config: SDEConfig
    public var states: [Float]             // (T+1, B, n): x at grid points t_0 = 1 ... t_T = 0
    public var means: [Float]              // (T, B, n): mu_old of every step
    public var logps: [Float]              // (T, B): logp_old (0 for a deterministic step)
    public var tokens: [Int32]             // (B, L)
    /// The policy's image features at every visited state (T, B, D) when the rollout kept them
    /// (DiT.imageFeatures; empty otherwise).
    public var features: [Float] = []

    public init(batch: Int, pixels: Int, config: SDEConfig, states: [Float], means: [Float], logps: [Float], tokens: [Int32]) {
        self.batch = batch; self.pixels = pixels; self.config = config
        self.states = states; self.means = means; self.logps = logps; self.tokens = tokens
    }

    /// A rollout of B samples to be filled chunk by chunk (`place`).
    public init(batch B: Int, pixels n: Int, config: SDEConfig, tokenLength L: Int) {
        let T = config.steps
        self.init(batch: B, pixels: n, config: config, states: [Float](repeating: 0, count: (T + 1) * B * n),
                  means: [Float](repeating: 0, count: T * B * n), logps: [Float](repeating: 0, count: T * B),
                  tokens: [Int32](repeating: 0, count: B * L))
    }

    /// Copies the rollout of a chunk of samples into rows `at..<at + chunk.batch`.
    public mutating func place(_ chunk: Rollout, at row: Int) {
        let n = pixels, B = batch, c = chunk.batch, T = config.steps
        precondition(chunk.pixels == n && row + c <= B && chunk.config == config)
        for k in 0...T { states.replaceSubrange(((k * B + row) * n)..<((k * B + row + c) * n), with: chunk.states[(k * c * n)..<((k + 1) * c * n)]) }
        for k in 0..<T {
            means.replaceSubrange(((k * B + row) * n)..<((k * B + row + c) * n), with: chunk.means[(k * c * n)..<((k + 1) * c * n)])
            logps.replaceSubrange((k * B + row)..<(k * B + row + c), with: chunk.logps[(k * c)..<((k + 1) * c)])
        }
        let L = chunk.tokens.count / max(c, 1)
        tokens.replaceSubrange((row * L)..<((row + c) * L), with: chunk.tokens)
        if !chunk.features.isEmpty {
            let D = chunk.features.count / max(T * c, 1)
            if features.isEmpty { features = [Float](repeating: 0, count: T * B * D) }
            for k in 0..<T { features.replaceSubrange(((k * B + row) * D)..<((k * B + row + c) * D), with: chunk.features[(k * c * D)..<((k + 1) * c * D)]) }
        }
    }

    /// x_{t_k} of sample b.
    public func state(_ k: Int, _ b: Int) -> ArraySlice<Float> { states[((k * batch + b) * pixels)..<((k * batch + b + 1) * pixels)] }
    /// The final images (B, n).
    public var images: ArraySlice<Float> { states[(config.steps * batch * pixels)...] }
    public func image(_ b: Int) -> [Float] { Array(state(config.steps, b)) }
}

/// Gaussian log-density of x under N(mu, s^2 I), averaged over the n values (with the constant).
@inline(__always)
public func meanLogProb(_ x: UnsafePointer<Float>, _ mu: UnsafePointer<Float>, n: Int, c: StepCoefficients) -> Float {
    var ss: Double = 0
    for i in 0..<n { let d = Double(x[i] - mu[i]); ss += d * d }
    return logProb(squaredDistance: ss, n: n, c: c)
}

/// The mean log-probability per dimension from the squared distance |x - mu|^2 over n values.
@inline(__always)
public func logProb(squaredDistance ss: Double, n: Int, c: StepCoefficients) -> Float {
    Float(-ss / (2 * Double(c.s) * Double(c.s) * Double(n))) - c.logNormaliser
}

public struct SDESampler {
    public var config: SDEConfig
    public init(config: SDEConfig) { self.config = config }

    /// Runs T steps from the given noise (B, n) with the model; `rngs[b]` draws sample b's
    /// per-step noise (a stream per sample: the same sample gets the same noise whichever chunk
    /// or process rolls it out). With `deterministic`, every step is an Euler ODE step (no
    /// log-probabilities). `workspaces` holds one workspace for all steps, or one per step:
    /// training workspaces then keep each step's activations, so the on-policy training pass can
    /// reuse them.
    /// `features`: keep the policy's image features at every visited state (`Rollout.features`).
    public func rollout(model: DiT, workspaces: [Workspace], noise: [Float], tokens: [Int32], rngs: inout [RNG],
                        deterministic: Bool = false, features: Bool = false) -> Rollout {
        precondition(workspaces.count == 1 || workspaces.count == config.steps, "one workspace, or one per step")
        let n = model.config.pixelsPerImage, B = noise.count / n, T = config.steps
        precondition(rngs.count == B, "one random stream per sample")
        var r = Rollout(batch: B, pixels: n, config: config,
                        states: [Float](repeating: 0, count: (T + 1) * B * n),
                        means: [Float](repeating: 0, count: T * B * n),
                        logps: [Float](repeating: 0, count: T * B), tokens: tokens)
        r.states.replaceSubrange(0..<(B * n), with: noise)
        let D = model.config.width
        if features { r.features = [Float](repeating: 0, count: T * B * D) }
        var tt = [Float](repeating: 0, count: B)
        for k in 0..<T {
            let c = config.coefficients(k)
            let stochastic = !deterministic && k < config.stochasticSteps
            for b in 0..<B { tt[b] = c.t }
            r.states.withUnsafeMutableBufferPointer { sp in
                r.means.withUnsafeMutableBufferPointer { mp in
                    let x = sp.baseAddress! + k * B * n, xNext = sp.baseAddress! + (k + 1) * B * n
                    let mu = mp.baseAddress! + k * B * n
                    let v = tt.withUnsafeBufferPointer { tp in
                        tokens.withUnsafeBufferPointer { kp in
                            model.forward(workspaces[workspaces.count == 1 ? 0 : k], x: x, t: tp.baseAddress!, tokens: kp.baseAddress!, batch: B)
                        }
                    }
                    if features {
                        r.features.withUnsafeMutableBufferPointer { fp in
                            model.imageFeatures(workspaces[workspaces.count == 1 ? 0 : k], batch: B, into: fp.baseAddress! + k * B * D)
                        }
                    }
                    if stochastic {
                        // one pass per image, the images spread over the workers (each has
                        // its own stream): the mean, the sample, and its log-probability (the
                        // same arithmetic as meanLogProb, accumulated on the way)
                        rngs.withUnsafeMutableBufferPointer { streams in r.logps.withUnsafeMutableBufferPointer { lp in
                            let (streams, lp) = (streams, lp), kernels = Compute.current.kernels
                            parallelFor(B) { images in
                                withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { eps in
                                    for b in images {
                                        streams[b].fillNormal(eps, kernels: kernels)
                                        var ss: Double = 0
                                        for j in 0..<n {
                                            let i = b * n + j
                                            mu[i] = c.cx * x[i] + c.cv * v[i]
                                            xNext[i] = mu[i] + c.s * eps[j]
                                            let d = Double(xNext[i] - mu[i]); ss += d * d
                                        }
                                        lp[k * B + b] = logProb(squaredDistance: ss, n: n, c: c)
                                    }
                                }
                            }
                        } }
                    } else {
                        eulerStep(mu, x: x, v: v, h: c.h, count: B * n)     // deterministic: the ODE's step
                        xNext.update(from: mu, count: B * n)
                    }
                }
            }
        }
        return r
    }

    /// The same with one random stream: sample b draws from `rng.split(b)`; `rng` then moves on.
    public func rollout(model: DiT, workspaces: [Workspace], noise: [Float], tokens: [Int32], rng: inout RNG,
                        deterministic: Bool = false) -> Rollout {
        var rngs = Self.streams(rng, samples: Array(0..<(noise.count / model.config.pixelsPerImage)))
        _ = rng.nextUInt64()
        return rollout(model: model, workspaces: workspaces, noise: noise, tokens: tokens, rngs: &rngs, deterministic: deterministic)
    }

    /// The streams of the given samples (their indices in the batch): sample b's is `rng.split(b)`.
    public static func streams(_ rng: RNG, samples: [Int]) -> [RNG] { samples.map { rng.split(UInt64($0)) } }

    public func rollout(model: DiT, ws: Workspace, noise: [Float], tokens: [Int32], rng: inout RNG,
                        deterministic: Bool = false) -> Rollout {
        rollout(model: model, workspaces: [ws], noise: noise, tokens: tokens, rng: &rng, deterministic: deterministic)
    }

    /// The exact KL divergence of the path measure of the rollout's policy to that of `base`
    /// (the same schedule and start), for each sample of a rollout of the policy: the sum over
    /// its stochastic steps k of ||mu_policy,k - mu_base,k||^2 / (2 s_k^2), over all n values
    /// (nats). Both transitions are Gaussians of the same covariance s_k^2 I, so this is the
    /// chain rule of the KL along the path, evaluated at the policy's own states (an unbiased
    /// estimate of the expectation over the policy's paths). Deterministic steps (s_k = 0) are
    /// left out: the KL of two point masses at different places is not defined.
    public func pathKL(_ r: Rollout, base: DiT, ws: Workspace) -> [Double] {
        precondition(r.config == config, "pathKL: a rollout of another schedule")
        let n = r.pixels, B = r.batch
        var kl = [Double](repeating: 0, count: B)
        for k in 0..<config.stochasticSteps {
            let c = config.coefficients(k)
            let t = [Float](repeating: c.t, count: B)
            r.states.withUnsafeBufferPointer { sp in
                r.tokens.withUnsafeBufferPointer { kp in
                    t.withUnsafeBufferPointer { tp in
                        let x = sp.baseAddress! + k * B * n
                        let v = base.forward(ws, x: x, t: tp.baseAddress!, tokens: kp.baseAddress!, batch: B)
                        let scale = 1 / (2 * Double(c.s) * Double(c.s))
                        for b in 0..<B {
                            var ss = 0.0
                            for i in (b * n)..<((b + 1) * n) {
                                let d = Double(r.means[k * B * n + i]) - Double(c.cx * x[i] + c.cv * v[i])
                                ss += d * d
                            }
                            kl[b] += ss * scale
                        }
                    }
                }
            }
        }
        return kl
    }
}
