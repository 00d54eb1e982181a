import Foundation
import Rewards
import Analysis
import Tensor
import Imaging

/// A setting a sweep varies: any sweepable setting of `FinetuneConfig.table` by its name, or
/// `rm`, the reward model of the reward's rm: term (its path, or P1+P2 for an ensemble).
public struct SweepAxis: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public var description: String { name }

    /// The axis named `name`; an unknown one is an error naming the known ones.
    public init(_ name: String) throws {
        guard name == Self.rm || FinetuneConfig.table.sweepable.contains(where: { $0.name == name }) else {
            throw InvalidOption("--vary \(name): not a setting a sweep can vary; axes: \(Self.names.joined(separator: ", "))")
        }
        self.name = name
    }

    static let rm = "rm"
    /// Every axis a sweep can vary.
    public static var names: [String] { FinetuneConfig.table.sweepable.map { $0.name } + [rm] }

    /// Sets this axis of `c` to `value`; a value the option would refuse is an error naming both.
    func apply(_ value: String, to c: inout FinetuneConfig) throws {
        guard name == Self.rm else {
            let s = FinetuneConfig.table[name]!
            // (its range is checked with the whole point's configuration, which names the point)
            do { try s.set(&c, value) } catch let e as InvalidOption { throw InvalidOption("--vary \(name): \(e.description)") }
            return
        }
        var terms = try RewardSpec(parsing: c.reward).terms
        guard let k = terms.firstIndex(where: { $0.name.hasPrefix(ScorerRegistry.learnedPrefix) }) else {
            throw InvalidOption("--vary rm: the reward \"\(c.reward)\" has no rm: term whose model to vary (give e.g. --reward rm:RM.safetensors,shape-eval=0)")
        }
        guard !value.isEmpty else { throw InvalidOption("--vary rm: an empty path") }
        terms[k].name = ScorerRegistry.learnedPrefix + value
        c.reward = RewardSpec(terms: terms).description
    }
}

/// One run of a sweep: its settings (the varied axes and the seed) and its configuration.
public struct SweepPoint: Sendable {
    public var settings: [(String, String)]
    public var config: FinetuneConfig
    /// The run folder's name: the settings as key=value joined by "_" (file-name safe).
    /// The settings but the seed: the runs of one configuration share it.
    public var configurationKey: String { SummaryRow.configurationKey(settings) }
    public var name: String {
        settings.map { k, v in "\(k)=\(v)" }.joined(separator: "_")
            .map { $0.isLetter || $0.isNumber || "=._-+".contains($0) ? String($0) : "-" }.joined()
    }
}

/// The grid of a sweep: every combination of the varied values (the first axis slowest), each
/// with seeds base, base + 1, ..., base + seeds - 1.
public func sweepGrid(base: FinetuneConfig, vary: [(SweepAxis, [String])], seeds: Int) throws -> [SweepPoint] {
    guard seeds >= 1 else { throw InvalidOption("--seeds must be at least 1, got \(seeds)") }
    var seen: Set<SweepAxis> = []
    for (axis, values) in vary {
        guard seen.insert(axis).inserted else { throw InvalidOption("--vary \(axis.name) is given twice") }
        guard !values.isEmpty, Set(values).count == values.count else {
            throw InvalidOption("--vary \(axis.name) needs distinct values, got '\(values.joined(separator: ","))'")
        }
    }
    var points = [SweepPoint(settings: [], config: base)]
    for (axis, values) in vary {
        points = try points.flatMap { p in
            try values.map { v in
                var q = p
                try axis.apply(v, to: &q.config)
                q.settings.append((axis.name, v))
                return q
            }
        }
    }
    points = points.flatMap { p in
        (0..<seeds).map { s in
            var q = p
            q.config.seed = base.seed &+ UInt64(s)
            q.settings.append(("seed", String(q.config.seed)))
            return q
        }
    }
    for p in points {
        do { try p.config.validate() } catch { throw InvalidOption("sweep point \(p.name): \(error)") }
    }
    return points
}

extension SummaryRow {
    /// A finished or stopped run of a sweep's grid, as the sweep's tables read it.
    public init(point: SweepPoint, metrics: RunMetrics) throws {
        self.init(settings: point.settings, metrics: metrics, optimised: try RewardSpec(parsing: point.config.reward).optimisedNames,
                  finished: (metrics.lines.last?.step ?? 0) >= point.config.steps)
    }
}

extension RunDescription {
    /// What a report says of a run with this configuration.
    public init(_ c: FinetuneConfig) throws {
        self.init(reward: c.reward, optimised: try RewardSpec(parsing: c.reward).optimisedNames, steps: c.steps,
                  promptsPerIteration: c.promptsPerIteration, groupSize: c.groupSize, lr: c.lr, seed: c.seed, model: c.model,
                  diagnostics: c.algo.type.diagnostics)
    }
}
