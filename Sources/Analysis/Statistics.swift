import Foundation
import Tensor
import Shapes

/// The sample standard deviation (0 for fewer than two values).
public func standardDeviation(_ x: [Double]) -> Double {
    guard x.count > 1 else { return 0 }
    let m = x.reduce(0, +) / Double(x.count)
    return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
}

/// The standard error of the mean of `x`: its standard deviation over sqrt(n).
public func standardError(_ x: [Double]) -> Double { x.isEmpty ? 0 : standardDeviation(x) / Double(x.count).squareRoot() }

/// The value of y where x first reaches `level` along `points` (in order), linearly interpolated
/// between the two points around it; nil if x never reaches it. With x a run's proxy gain and y
/// a gold metric, the gold at equal proxy gain; with x = sqrt(KL), the gold at equal distance.
public func valueWhereFirstReached(_ points: [(x: Double, y: Double)], level: Double) -> Double? {
    guard let first = points.first else { return nil }
    if first.x >= level { return first.y }
    for i in 1..<max(1, points.count) {
        let a = points[i - 1], b = points[i]
        if b.x >= level {
            let f = b.x == a.x ? 1 : (level - a.x) / (b.x - a.x)
            return a.y + f * (b.y - a.y)
        }
    }
    return nil
}

/// A percentile-bootstrap confidence interval of the mean of `values` (`level` e.g. 0.95),
/// from `resamples` resamples drawn with a fixed seed (the same data give the same interval).
public func bootstrapMeanInterval(_ values: [Double], level: Double = 0.95, resamples: Int = 2000, seed: UInt64 = 0xB007)
    -> (mean: Double, low: Double, high: Double)? {
    guard !values.isEmpty else { return nil }
    let mean = values.reduce(0, +) / Double(values.count)
    guard values.count > 1 else { return (mean, mean, mean) }
    var rng = RNG(seed: seed)
    var means = (0..<resamples).map { _ in
        (0..<values.count).reduce(0.0) { acc, _ in acc + values[rng.int(values.count)] } / Double(values.count)
    }
    means.sort()
    let tail = (1 - level) / 2
    func q(_ p: Double) -> Double { means[min(means.count - 1, max(0, Int((p * Double(means.count - 1)).rounded())))] }
    return (mean, q(tail), q(1 - tail))
}

/// The gradient noise scale of a run: the ratio of the mean noise to the mean signal over its
/// iterations (McCandlish et al.'s estimator of the ratio of expectations; nil when the mean
/// signal is not positive: the gradient is not told from its noise), and a lower bound, the
/// ratio with the signal two standard errors (over iterations) higher (nil when even that is not
/// positive, or with one iteration).
public func gradientNoiseScale(signal: [Double], noise: [Double]) -> (estimate: Double?, atLeast: Double?) {
    guard !signal.isEmpty, signal.count == noise.count else { return (nil, nil) }
    let n = Double(signal.count)
    let g = signal.reduce(0, +) / n, s = noise.reduce(0, +) / n
    let se = signal.count > 1 ? (signal.reduce(0) { $0 + ($1 - g) * ($1 - g) } / (n - 1) / n).squareRoot() : Double.infinity
    let high = g + 2 * se
    return (g > 0 ? s / g : nil, high > 0 && high.isFinite ? s / high : nil)
}

extension CheckerTally {
    /// The change from `base` to these verdicts of the mean score, over all prompts or those of
    /// one task, with its 95% interval: a percentile bootstrap over the prompts of their paired
    /// differences (both tallies of the same prompts in the same order, each prompt's images drawn
    /// from the same noise, as `evaluate --against` draws them). Nil when no prompt is of `task`.
    public func change(from base: CheckerTally, task: Task? = nil) -> (mean: Double, low: Double, high: Double)? {
        precondition(prompts.count == base.prompts.count && zip(prompts, base.prompts).allSatisfy { $0.0.task == $0.1.task },
                     "a paired change needs the same prompts in both tallies")
        let pairs = zip(prompts, base.prompts).filter { task == nil || $0.0.task == task }
        return bootstrapMeanInterval(pairs.map { $0.0.mean - $0.1.mean })
    }
}
