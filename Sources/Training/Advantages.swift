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
        let batchStd = Self.std(rewards[...])
        for g in stride(from: 0, to: n, by: G) {
            let group = rewards[g..<min(n, g + G)]
            let mean = group.reduce(0, +) / Float(group.count)
            let groupStd = Self.std(group)
            let std = globalStd ? batchStd : groupStd
            for i in group.indices {
                values[i] = max(-clip, min(clip, (rewards[i] - mean) / (std + 1e-4)))
                keep[i] = groupStd > 0
            }
        }
    }

    /// Population standard deviation.
    public static func std(_ x: ArraySlice<Float>) -> Float {
        guard !x.isEmpty else { return 0 }
        let m = x.reduce(0, +) / Float(x.count)
        return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(x.count)).squareRoot()
    }
}
