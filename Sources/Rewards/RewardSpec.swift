import Foundation
import Imaging
import Shapes
/// The built-in scorers by name (which also make the help text's list); `external:COMMAND` is
/// the one scorer outside the table. A new scorer is one row here (and its type).
public enum ScorerRegistry {
    public static let builtIn: [(name: String, make: @Sendable () -> RewardScorer)] = [
        ("brightness", { BrightnessScorer() }),
        ("saturation", { SaturationScorer() }),
        ("shape-eval", { ShapeEvalScorer() }),
        ("shape-soft", { ShapeEvalScorer(.soft) }),
        ("shape-eval-strict", { ShapeEvalScorer(.strict) }),
        ("jpeg-compressibility", { JPEGScorer(compressible: true) }),
        ("jpeg-incompressibility", { JPEGScorer(compressible: false) }),
    ]
    public static let externalPrefix = "external:"
    public static let learnedPrefix = LearnedRewardScorer.prefix
    /// "brightness, saturation, ..., external:COMMAND, rm:PATH[+PATH...]"
    public static var names: String {
        (builtIn.map(\.name) + [externalPrefix + "COMMAND", learnedPrefix + "PATH[+PATH...]"]).joined(separator: ", ")
    }
}

/// A reward spec, parsed once: "name[=weight],..." (a bare name has weight 1; weight 0 logs a
/// scorer without optimising it). Every place that reads a run's reward reads it through this,
/// so a bad spec is the same error wherever it is read.
public struct RewardSpec: Equatable, Sendable, CustomStringConvertible {
    public struct Term: Equatable, Sendable {
        public var name: String
        public var weight: Float
        public init(name: String, weight: Float) { self.name = name; self.weight = weight }
    }
    public let terms: [Term]
    /// The scorers with a non-zero weight (the rest are gold metrics riding along).
    public var optimisedNames: Set<String> { Set(terms.filter { $0.weight != 0 }.map(\.name)) }

    public init(terms: [Term]) { self.terms = terms }

    /// The spec as written: "shape-eval=1,jpeg-compressibility=0".
    public var description: String { terms.map { "\($0.name)=\($0.weight)" }.joined(separator: ",") }

    public init(parsing text: String) throws {
        var terms: [Term] = []
        let known = ScorerRegistry.names
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw RewardError("empty reward spec; give e.g. \"shape-eval=1\" (scorers: \(known))") }
        for raw in Self.splitTerms(text) {
            let part = raw.trimmingCharacters(in: .whitespaces)
            guard !part.isEmpty else { throw RewardError("reward spec \"\(text)\": empty term") }
            var name = part, weight: Float = 1
            // a command or a path may hold '=': there only a number after the last one is a weight
            let free = part.hasPrefix(ScorerRegistry.externalPrefix) || part.hasPrefix(ScorerRegistry.learnedPrefix)
            if let eq = part.lastIndex(of: "="), !free || part[eq...].dropFirst().allSatisfy({ "0123456789.-+e".contains($0) }) {
                name = String(part[..<eq]).trimmingCharacters(in: .whitespaces)
                let w = String(part[part.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
                guard let v = Float(w), v.isFinite else { throw RewardError("reward spec \"\(text)\": weight '\(w)' of \(name) is not a finite number") }
                guard v >= 0 else {
                    throw RewardError("reward spec \"\(text)\": weight \(w) of \(name) is negative; weights are >= 0 (every scorer counts higher as better; 0 logs a scorer without optimising it)")
                }
                weight = v
            }
            if name.hasPrefix(ScorerRegistry.externalPrefix) {
                let cmd = String(name.dropFirst(ScorerRegistry.externalPrefix.count)).trimmingCharacters(in: .whitespaces)
                guard !cmd.isEmpty else { throw RewardError("reward spec \"\(text)\": external: needs a command") }
                name = ScorerRegistry.externalPrefix + cmd
            } else if name.hasPrefix(ScorerRegistry.learnedPrefix) {
                let paths = LearnedRewardScorer.paths(of: String(name.dropFirst(ScorerRegistry.learnedPrefix.count)))
                guard !paths.contains(where: \.isEmpty) else { throw RewardError("reward spec \"\(text)\": rm: needs the path of a reward model (rm:PATH, or rm:P1+P2 for an ensemble)") }
                name = ScorerRegistry.learnedPrefix + paths.joined(separator: "+")
            } else if !ScorerRegistry.builtIn.contains(where: { $0.name == name }) {
                throw RewardError("unknown reward '\(name)'; known scorers: \(known)")
            }
            guard !terms.contains(where: { $0.name == name }) else { throw RewardError("reward spec \"\(text)\": \(name) appears twice") }
            terms.append(Term(name: name, weight: weight))
        }
        guard terms.contains(where: { $0.weight != 0 }) else { throw RewardError("reward spec \"\(text)\": every weight is 0, nothing to optimise") }
        self.terms = terms
    }

    /// The scorers, ready to score (an external one starts at its first batch; a reward model
    /// is read now, and an ensemble's members are combined by `rmCombine`).
    public func makeReward(externalTimeout: Double = 30, rmCombine: EnsembleCombine = .mean) throws -> CombinedReward {
        CombinedReward(terms: try terms.map { t in
            let scorer: RewardScorer
            if t.name.hasPrefix(ScorerRegistry.externalPrefix) {
                scorer = ExternalScorer(command: String(t.name.dropFirst(ScorerRegistry.externalPrefix.count)), timeout: externalTimeout)
            } else if t.name.hasPrefix(ScorerRegistry.learnedPrefix) {
                scorer = try LearnedRewardScorer(spec: String(t.name.dropFirst(ScorerRegistry.learnedPrefix.count)), combine: rmCombine)
            } else {
                scorer = ScorerRegistry.builtIn.first { $0.name == t.name }!.make()
            }
            return (scorer, t.weight)
        })
    }

    /// Splits on commas outside an external command's quotes.
    static func splitTerms(_ text: String) -> [String] {
        var out: [String] = [], cur = "", quote: Character?
        for ch in text {
            if let q = quote { if ch == q { quote = nil }; cur.append(ch); continue }
            if ch == "\"" || ch == "'" { quote = ch; cur.append(ch); continue }
            if ch == "," { out.append(cur); cur = ""; continue }
            cur.append(ch)
        }
        out.append(cur)
        return out
    }

}

/// A weighted combination of scorers: reward = sum_k weight_k * scorer_k. A scorer with weight 0
/// is computed and logged but not optimised (a gold metric riding along).
public final class CombinedReward {
    public let terms: [(scorer: RewardScorer, weight: Float)]
    public init(terms: [(scorer: RewardScorer, weight: Float)]) { self.terms = terms }

    /// Parses a spec and makes its scorers (`RewardSpec(parsing:).makeReward`).
    public convenience init(parsing text: String, externalTimeout: Double = 30, rmCombine: EnsembleCombine = .mean) throws {
        self.init(terms: try RewardSpec(parsing: text).makeReward(externalTimeout: externalTimeout, rmCombine: rmCombine).terms)
    }

    /// The spec as written: "shape-eval=1,jpeg-compressibility=0".
    public var spec: String { RewardSpec(terms: terms.map { .init(name: $0.scorer.name, weight: $0.weight) }).description }
    public var names: [String] { terms.map(\.scorer.name) }

    /// Every scorer's values (by name) and the weighted total, per image.
    public func evaluate(_ images: ImageBatch, prompts: [Prompt]) throws -> (total: [Float], byScorer: [String: [Float]]) {
        var total = [Float](repeating: 0, count: images.count)
        var by: [String: [Float]] = [:]
        for (scorer, weight) in terms {
            let s = try scorer.score(images, prompts: prompts)
            guard s.count == images.count else { throw RewardError("\(scorer.name): returned \(s.count) values for \(images.count) images") }
            if let bad = s.firstIndex(where: { !$0.isFinite }) { throw RewardError("\(scorer.name): non-finite reward \(s[bad]) for image \(bad)") }
            by[scorer.name] = s
            for i in total.indices { total[i] += weight * s[i] }
        }
        return (total, by)
    }
}
