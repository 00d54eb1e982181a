import Analysis
import Tensor

/// The gradient noise scale of McCandlish et al. 2018 ("An empirical model of large-batch
/// training"): B_simple = tr(Sigma) / |G|^2, with G the expected gradient of one sample and Sigma
/// the covariance of one sample's gradient. It is the batch size (in samples) at which the noise
/// of a batch's gradient estimate is as large as the gradient itself: a run whose batch is far
/// below it takes steps that mostly follow noise, and needs about B_simple / batch times the
/// iterations (at a proportionally smaller step) to make the progress of one noise-free step.
///
/// Measured for free from the pieces an optimiser step's gradient is already accumulated from
/// (each forward/backward pass, on every process): with h_k the sum of the per-sample gradients
/// of piece k (n_k samples, N = sum n_k),
///
///     |G|^2     ~ (|sum_k h_k|^2 - sum_k |h_k|^2) / (N^2 - sum_k n_k^2)   (the cross terms only)
///     tr Sigma  ~ (sum_k |h_k|^2 - sum_k n_k^2 |G|^2) / N
///
/// both unbiased when the pieces are independent samples of the same gradient. The pairs are
/// those within a step, or (`acrossSteps`) within the iteration, the weights moving by its few
/// steps in between. Either estimate can be negative in one iteration; a run's figure is the
/// ratio of their means over iterations.
public final class GradientNoise {
    /// Whether pieces of different optimiser steps are paired too. Right when a step's loss is
    /// the same function whatever came before (AC-Flow's actor: only the weights move, a
    /// little); wrong for a clipped ratio, whose later steps keep the samples the earlier ones
    /// moved one way (their gradients are anti-correlated with the earlier steps').
    public let acrossSteps: Bool
    let before: FloatBuffer, total: FloatBuffer
    var local: [Double] = []            // per step: sum |h_k|^2, sum n_k^2, sum n_k over this process's pieces
    var wholes: [Double] = []           // per step: |sum_k h_k|^2 over every process's pieces (pairs within steps)
    var current = [0.0, 0.0, 0.0]

    public init(parameters: Int, acrossSteps: Bool) {
        self.acrossSteps = acrossSteps
        before = FloatBuffer(count: parameters)
        total = FloatBuffer(count: acrossSteps ? parameters : 0)
    }

    /// Starts an iteration's measurement.
    public func reset() {
        total.zero()
        local = []; wholes = []; current = [0, 0, 0]
    }

    /// Marks where a piece starts: `grads` before the piece's backward pass adds to it.
    public func beginPiece(_ grads: FloatBuffer) { before.assign(from: grads) }

    /// Ends a piece of `count` samples whose backward pass added `(grads - before) / scale` to
    /// `grads` (`scale`: what turns the loss's per-sample weights into 1, e.g. the step's sample
    /// count for a mean).
    public func endPiece(_ grads: FloatBuffer, count: Int, scale: Double) {
        guard count > 0 else { return }
        let g = grads.pointer, b = before.pointer
        for i in 0..<grads.count { b[i] = g[i] - b[i] }               // the piece, in place of the snapshot
        current[0] += scale * scale * squaredNorm(b, count: grads.count)
        current[1] += Double(count * count)
        current[2] += Double(count)
    }

    /// Ends an optimiser step: `grads` is the step's whole gradient (summed over processes), in
    /// the same `scale` as its pieces.
    public func endStep(_ grads: FloatBuffer, scale: Double) {
        let g = grads.pointer
        local += current; current = [0, 0, 0]
        if acrossSteps {                                              // pairs over the iteration: its total
            wholes.append(0)
            let t = total.pointer, s = Float(scale)
            for i in 0..<grads.count { t[i] += s * g[i] }
        } else {
            wholes.append(scale * scale * squaredNorm(g, count: grads.count))
        }
    }

    /// The iteration's estimates (|G|^2, tr Sigma), the same on every process; nil without two
    /// pieces to pair.
    public func estimate(world: World = .single) -> (signal: Double, noise: Double)? {
        var sums = local
        world.sum(&sums)
        let steps = wholes.count
        let s1 = (0..<steps).map { sums[3 * $0] }, s2 = (0..<steps).map { sums[3 * $0 + 1] }, n = (0..<steps).map { sums[3 * $0 + 2] }
        let (S1, S2, N) = (s1.reduce(0, +), s2.reduce(0, +), n.reduce(0, +))
        let cross: Double, pairs: Double
        if acrossSteps {
            (cross, pairs) = (squaredNorm(total.pointer, count: total.count) - S1, N * N - S2)
        } else {
            var c = 0.0, p = 0.0
            for k in 0..<steps { c += wholes[k] - s1[k]; p += n[k] * n[k] - s2[k] }
            (cross, pairs) = (c, p)
        }
        guard pairs > 0.5 else { return nil }
        let signal = cross / pairs
        return (signal, (S1 - S2 * signal) / N)
    }
}
