/// Group-relative advantages (Flow-GRPO): A_i = (R_i - mean_group) / (std + 1e-4), with the
/// group's std or the whole batch's, clamped to +-clip. Samples of a group with zero spread carry
/// no signal: their `keep` flag is false and they are dropped from the loss.
public struct Advantages {
    public var values: [Float]
    public var keep: [Bool]

    public init(rewards: [Float], groupSize G: Int, globalStd: Bool, clip: Float) {
        let n = rewards.count
        values = [Float](repeating: 0, count: n)
        keep = [Bool](repeating: true, count: n)
        let batchStd = meanAndStd(rewards[...]).std
        for group in groupStatistics(rewards, groupSize: G) {
            let std = globalStd ? batchStd : group.std
            for i in group.range {
                values[i] = max(-clip, min(clip, (rewards[i] - group.mean) / (std + 1e-4)))
                keep[i] = group.std > 0
            }
        }
    }
}

/// Mean and population standard deviation (0 and 0 for no values).
public func meanAndStd(_ x: ArraySlice<Float>) -> (mean: Float, std: Float) {
    guard !x.isEmpty else { return (0, 0) }
    let m = x.reduce(0, +) / Float(x.count)
    return (m, (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(x.count)).squareRoot())
}

/// The statistics of each group of `G` consecutive values (the last group may be shorter):
/// every sample of a prompt's group is compared with the others of that group only.
public func groupStatistics(_ values: [Float], groupSize G: Int) -> [(range: Range<Int>, mean: Float, std: Float)] {
    stride(from: 0, to: values.count, by: G).map { g in
        let range = g..<min(values.count, g + G)
        let (m, s) = meanAndStd(values[range])
        return (range, m, s)
    }
}
