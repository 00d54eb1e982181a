import Foundation
import Imaging
import Shapes
import Model

/// How the members of a reward-model ensemble are combined into one score per image (Coste et
/// al. 2023): their mean, the worst case (min), or the uncertainty-weighted mean - lambda * std
/// (std: the members' population standard deviation). Members' scores are normalised first
/// (each by the mean and spread of its scores on its training images).
public enum EnsembleCombine: Equatable, Hashable, Sendable, CustomStringConvertible {
    case mean
    case min
    case meanMinusStd(Float)

    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        switch t {
        case "mean": self = .mean
        case "min": self = .min
        default:
            let prefix = "mean-std:"
            guard t.hasPrefix(prefix) else { throw RewardError("--rm-combine '\(text)': give mean, min or mean-std:LAMBDA") }
            let l = String(t.dropFirst(prefix.count))
            guard let v = Float(l), v.isFinite, v >= 0 else { throw RewardError("--rm-combine '\(text)': lambda '\(l)' is not a finite number >= 0") }
            self = .meanMinusStd(v)
        }
    }

    public var description: String {
        switch self {
        case .mean: return "mean"
        case .min: return "min"
        case .meanMinusStd(let l): return "mean-std:\(l)"
        }
    }

    /// One combined value from the members' scores of one image.
    public func combine(_ members: [Float]) -> Float {
        precondition(!members.isEmpty)
        let n = Float(members.count)
        let mean = members.reduce(0, +) / n
        switch self {
        case .mean: return mean
        case .min: return members.min()!
        case .meanMinusStd(let lambda):
            let variance = members.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
            return mean - lambda * variance.squareRoot()
        }
    }
}

/// The scorer `rm:PATH` (one learned reward model) or `rm:P1+P2+...` (an ensemble): each
/// member's normalised score, combined by `combine`. Batched through the DiT's kernels.
public final class LearnedRewardScorer: RewardScorer {
    public let name: String
    public let members: [RewardModel]
    public let combine: EnsembleCombine
    /// A reward model reads the shapes grammar's token ids.
    public let readsShapesPrompts = true
    /// Images per network pass.
    let batch = 64

    public static let prefix = "rm:"

    /// The paths of a term "rm:P1+P2" (its text after the prefix).
    public static func paths(of spec: String) -> [String] {
        spec.split(separator: "+", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    public init(spec: String, combine: EnsembleCombine = .mean) throws {
        let paths = Self.paths(of: spec)
        guard !paths.isEmpty, !paths.contains(where: \.isEmpty) else { throw RewardError("rm:\(spec): an empty reward model path") }
        self.name = Self.prefix + paths.joined(separator: "+")
        self.combine = combine
        members = try paths.map { path in
            do { return try RewardModel.load(URL(fileURLWithPath: path)).model }
            catch { throw RewardError("rm:\(path): \(error)") }
        }
        if let other = members.first(where: { $0.config.imageSize != members[0].config.imageSize }) {
            throw RewardError("\(name): the members read images of \(members[0].config.imageSize) and \(other.config.imageSize) pixels")
        }
    }

    /// Every member's normalised scores, member by member: members[m][i].
    public func memberScores(_ images: ImageBatch, prompts: [Prompt]) throws -> [[Float]] {
        guard images.count == prompts.count else { throw RewardError("\(name): \(images.count) images for \(prompts.count) prompts") }
        guard images.size == members[0].config.imageSize else {
            throw RewardError("\(name): the reward model reads images of \(members[0].config.imageSize) pixels, these have \(images.size)")
        }
        // a reward model reads the shapes grammar's token ids (a folder model's prompts have others)
        for p in prompts { _ = try p.shapesSpec(for: name) }
        let tokens = prompts.flatMap(\.tokens)
        return try members.map { try $0.normalised($0.scoreAll(images: images.pixels, tokens: tokens, batch: batch)) }
    }

    public func score(_ images: ImageBatch, prompts: [Prompt]) throws -> [Float] {
        let by = try memberScores(images, prompts: prompts)
        return (0..<images.count).map { i in combine.combine(by.map { $0[i] }) }
    }
}
