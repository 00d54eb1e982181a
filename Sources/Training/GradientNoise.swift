import Tensor

/// The gradient noise scale of McCandlish et al. 2018 ("An empirical model of large-batch
/// training"): B_simple = tr(Sigma) / |G|^2, with G the expected gradient of one sample and Sigma
/// the covariance of one sample's gradient. It is the batch size (in samples) at which the noise
/// of a batch's gradient estimate is as large as the gradient itself: a run whose batch is far
/// below it takes steps that mostly follow noise, and needs about B_simple / batch times the
/// iterations (at a proportionally smaller step) to make the progress of one noise-free step.
///
/// Measured for free from the pieces a training step's gradient is already accumulated from
/// (each forward/backward pass, on every process), over the first pass of one iteration: with
/// h_k the sum of the per-sample gradients of piece k (n_k samples, N = sum n_k),
///
///     |G|^2     ~ (|sum_k h_k|^2 - sum_k |h_k|^2) / (N^2 - sum_k n_k^2)   (the cross terms only)
///     tr Sigma  ~ (sum_k |h_k|^2 - sum_k n_k^2 |G|^2) / N
///
/// both unbiased when the pieces are independent samples of the same gradient (the weights move
/// by the iteration's few optimiser steps in between, which the estimate ignores). Either can be
/// negative in one iteration; a run's figure is the ratio of their means over iterations.
public final class GradientNoise {
    let before: FloatBuffer, total: FloatBuffer
    var pieceSquares = 0.0, countSquares = 0.0, samples = 0.0

    public init(parameters: Int) {
        before = FloatBuffer(count: parameters)
        total = FloatBuffer(count: parameters)
    }

    /// Starts an iteration's measurement.
    public func reset() {
        total.zero()
        pieceSquares = 0; countSquares = 0; samples = 0
    }

    /// Marks where a piece starts: `grads` before the piece's backward pass adds to it.
    public func beginPiece(_ grads: FloatBuffer) { before.assign(from: grads) }

    /// Ends a piece of `count` samples whose backward pass added `(grads - before) / scale` to
    /// `grads` (`scale`: what turns the loss's per-sample weights into 1, e.g. the step's sample
    /// count for a mean).
    public func endPiece(_ grads: FloatBuffer, count: Int, scale: Double) {
        guard count > 0 else { return }
        var s = 0.0
        let g = grads.pointer, b = before.pointer
        for i in 0..<grads.count { let d = Double(g[i] - b[i]); s += d * d }
        pieceSquares += scale * scale * s
        countSquares += Double(count * count)
        samples += Double(count)
    }

    /// Ends an optimiser step: `grads` is the step's whole gradient (summed over processes), in
    /// the same `scale` as its pieces.
    public func endStep(_ grads: FloatBuffer, scale: Double) {
        let g = grads.pointer, t = total.pointer, s = Float(scale)
        for i in 0..<grads.count { t[i] += s * g[i] }
    }

    /// The iteration's estimates (|G|^2, tr Sigma), the same on every process; nil with fewer
    /// than two pieces.
    public func estimate(world: World = .single) -> (signal: Double, noise: Double)? {
        var sums = [pieceSquares, countSquares, samples]
        world.sum(&sums)
        let (s1, s2, n) = (sums[0], sums[1], sums[2])
        guard n * n - s2 > 0.5 else { return nil }
        var whole = 0.0
        let t = total.pointer
        for i in 0..<total.count { whole += Double(t[i]) * Double(t[i]) }
        let signal = (whole - s1) / (n * n - s2)
        return (signal, (s1 - s2 * signal) / n)
    }
}

/// The gradient noise scale of a run: the ratio of the mean noise to the mean signal over its
/// iterations (McCandlish et al.'s estimator of the ratio of expectations); nil when the mean
/// signal is not positive (the gradient is not told from noise).
public func gradientNoiseScale(signal: [Double], noise: [Double]) -> Double? {
    guard !signal.isEmpty, signal.count == noise.count else { return nil }
    let g = signal.reduce(0, +) / Double(signal.count), s = noise.reduce(0, +) / Double(noise.count)
    return g > 0 ? s / g : nil
}
